//! `hearth cost`: what answering locally costs against cloud APIs — per million tokens,
//! per day, break-even months for the hardware and three years' total — from a day's
//! tokens, the machine's price and the energy per token hearth measured (or was given),
//! as a table, `--json`, or a chart (`--plot`).

mod inputs;
mod model;
mod plot;

pub use inputs::CostConfig;

use anyhow::{Context, Result};
use inputs::{EnergyFigure, Resolved, UsageSpan};
use model::{Outcome, DAYS_PER_YEAR, TCO_YEARS};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CostArgs {
    /// Tokens a day, prompt and answer together (half each unless --tokens-in-per-day or --tokens-out-per-day says)
    #[arg(long, allow_negative_numbers = true)]
    tokens_per_day: Option<f64>,
    /// Prompt tokens a day
    #[arg(long, allow_negative_numbers = true)]
    tokens_in_per_day: Option<f64>,
    /// Generated tokens a day
    #[arg(long, allow_negative_numbers = true)]
    tokens_out_per_day: Option<f64>,
    /// Tokens a day and energy per token from what `hearth serve` answered (its daily totals)
    #[arg(long)]
    from_usage: bool,
    /// What the machine cost
    #[arg(long, allow_negative_numbers = true)]
    hardware_price: Option<f64>,
    /// Years the machine is used (default 3)
    #[arg(long, allow_negative_numbers = true)]
    lifetime_years: Option<f64>,
    /// The machine's power while on and idle, W (counted over --hours-on)
    #[arg(long, allow_negative_numbers = true)]
    idle_watts: Option<f64>,
    /// Hours a day the machine is on (default 24)
    #[arg(long, allow_negative_numbers = true)]
    hours_on: Option<f64>,
    /// Price of a kWh (default: HEARTH_ENERGY_PRICE)
    #[arg(long, allow_negative_numbers = true)]
    electricity_price: Option<f64>,
    /// The prices' currency (default: HEARTH_CURRENCY, else USD)
    #[arg(long)]
    currency: Option<String>,
    /// Energy per token, J (default: measured, from the bench history or the server's usage)
    #[arg(long, allow_negative_numbers = true)]
    joules_per_token: Option<f64>,
    /// Take the energy per token from this model's newest `hearth bench` run
    #[arg(long)]
    model: Option<String>,
    /// A cloud model and its prices per million input and output tokens, `NAME=INPUT,OUTPUT`
    /// (repeatable); a bare NAME picks one from [[cost.cloud]] of the config file
    #[arg(long = "cloud", value_name = "NAME=INPUT,OUTPUT")]
    clouds: Vec<String>,
    /// A cloud model's price per million input tokens (with --cloud-price-output; named "cloud")
    #[arg(long, allow_negative_numbers = true)]
    cloud_price_input: Option<f64>,
    /// A cloud model's price per million output tokens
    #[arg(long, allow_negative_numbers = true)]
    cloud_price_output: Option<f64>,
    /// Write cumulative cost curves with the break-even points to this SVG file
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Print the figures as JSON
    #[arg(long)]
    json: bool,
    /// The config file (default ~/.hearth/config.toml): a [cost] section with the same settings
    #[arg(long, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
}

/// `--json`: the inputs as used, where the energy came from, and every figure of the table.
#[derive(Serialize)]
struct Report<'a> {
    currency: &'a str,
    tokens_in_per_day: f64,
    tokens_out_per_day: f64,
    tokens_note: &'a str,
    hardware_price: f64,
    lifetime_years: f64,
    idle_watts: f64,
    hours_on: f64,
    electricity_price: f64,
    grams_co2e_per_kwh: Option<f64>,
    energy: &'a EnergyFigure,
    /// Whether the energy per token, and every figure computed from it, is an estimate.
    estimated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a UsageSpan>,
    /// Hours a day the tokens keep the machine busy at the bench run's speeds, one request
    /// at a time; absent when the energy did not come from a bench run.
    #[serde(skip_serializing_if = "Option::is_none")]
    busy_hours_per_day: Option<f64>,
    #[serde(flatten)]
    outcome: &'a Outcome,
}

pub fn run(args: CostArgs) -> Result<ExitCode> {
    let config = crate::config::Config::load(args.config.as_deref())?;
    let resolved = inputs::resolve(&args, &config.cost)?;
    let outcome = model::compute(&resolved.inputs);
    let estimated = resolved.energy.estimated();
    if let Some(path) = &args.plot {
        std::fs::write(path, plot::svg(&resolved.inputs, &outcome, &resolved.currency, estimated))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        let inputs = &resolved.inputs;
        let report = Report {
            currency: &resolved.currency,
            tokens_in_per_day: inputs.tokens_in_per_day,
            tokens_out_per_day: inputs.tokens_out_per_day,
            tokens_note: &resolved.tokens_note,
            hardware_price: inputs.hardware_price,
            lifetime_years: inputs.lifetime_years,
            idle_watts: inputs.idle_watts,
            hours_on: inputs.hours_on,
            electricity_price: inputs.electricity_price,
            grams_co2e_per_kwh: inputs.grams_co2e_per_kwh,
            energy: &resolved.energy,
            estimated,
            usage: resolved.usage.as_ref(),
            busy_hours_per_day: busy_hours(&resolved),
            outcome: &outcome,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&resolved, &outcome));
        if let Some(path) = &args.plot {
            println!("chart: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Hours a day the tokens take at the bench run's speeds: a day that needs more than the
/// machine is on cannot be answered by it at all, whatever it costs.
fn busy_hours(resolved: &Resolved) -> Option<f64> {
    let (prompt_speed, generation_speed) = resolved.energy.speeds?;
    let inputs = &resolved.inputs;
    Some((inputs.tokens_in_per_day / prompt_speed + inputs.tokens_out_per_day / generation_speed) / 3600.0)
}

/// The terminal report: inputs and their sources, the comparison, energy, the sensitivity table.
fn table(resolved: &Resolved, outcome: &Outcome) -> String {
    let inputs = &resolved.inputs;
    let currency = &resolved.currency;
    let estimated = resolved.energy.estimated();
    // Figures that rest on the energy per token carry a star when it is an estimate.
    let star = if estimated { "*" } else { "" };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "tokens:      {} a day: {} prompt, {} generated ({})",
        grouped(inputs.tokens_per_day()),
        grouped(inputs.tokens_in_per_day),
        grouped(inputs.tokens_out_per_day),
        resolved.tokens_note
    );
    let _ = writeln!(out, "energy:      {}", resolved.energy.description);
    if let Some(note) = &resolved.energy.input_note {
        let _ = writeln!(out, "             {note}");
    }
    let lifetime = if resolved.default_lifetime { " (default; --lifetime-years)" } else { "" };
    let _ = writeln!(
        out,
        "hardware:    {} {currency} over {} years{lifetime}",
        money(inputs.hardware_price),
        inputs.lifetime_years
    );
    if inputs.idle_watts > 0.0 {
        let _ = writeln!(out, "idle:        {} W for {} hours a day", inputs.idle_watts, inputs.hours_on);
    }
    let _ = writeln!(out, "electricity: {} {currency}/kWh", money(inputs.electricity_price));
    out.push('\n');

    let local = &outcome.local;
    let tokens_energy_per_day = local.energy_only_per_million * inputs.tokens_per_day() / 1e6;
    let mut rows: Vec<[String; 5]> = vec![
        [
            "this machine, tokens' energy".into(),
            format!("{}{star}", money(local.energy_only_per_million)),
            format!("{}{star}", money(tokens_energy_per_day)),
            String::new(),
            String::new(),
        ],
        [
            "this machine, all in".into(),
            format!("{}{star}", money(local.with_hardware_per_million)),
            format!("{}{star}", money(local.cost_per_day)),
            String::new(),
            format!("{}{star}", money(local.three_year_cost)),
        ],
    ];
    for cloud in &outcome.clouds {
        let model = &cloud.model;
        let as_of = model.as_of.as_ref().map_or(String::new(), |date| format!(", as of {date}"));
        rows.push([
            format!(
                "{} ({} in, {} out{as_of})",
                model.name,
                money(model.input_per_million),
                money(model.output_per_million)
            ),
            money(cloud.per_million),
            money(cloud.cost_per_day),
            format!("{}{star}", months(cloud.break_even_months)),
            money(cloud.three_year_cost),
        ]);
    }
    let header = [
        String::new(),
        format!("{currency}/1M tokens"),
        format!("{currency}/day"),
        "break-even".into(),
        format!("{TCO_YEARS} years"),
    ];
    let widths: Vec<usize> =
        (0..5).map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for (cell, width) in row.iter().zip(&widths).skip(1) {
            let _ = write!(line, "  {cell:>width$}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out.push('\n');

    let life_months = inputs.lifetime_years * 12.0;
    for cloud in &outcome.clouds {
        if cloud.break_even_months.is_none_or(|m| m > life_months) {
            let _ = writeln!(
                out,
                "against {}, the machine does not pay for itself within its {} years{star}",
                cloud.model.name, inputs.lifetime_years
            );
        }
    }
    let idle = if local.idle_energy_wh_per_day > 0.0 {
        format!(" ({:.1} Wh tokens, {:.1} Wh idle)", local.token_energy_wh_per_day, local.idle_energy_wh_per_day)
    } else {
        String::new()
    };
    let co2e = match (local.co2e_grams_per_day, inputs.grams_co2e_per_kwh) {
        (Some(grams), Some(intensity)) => format!("; {grams:.1} g CO2e a day{star} at {intensity} g/kWh"),
        _ => "; set HEARTH_GRID_INTENSITY (g CO2e per kWh) for CO2e".into(),
    };
    let _ = writeln!(out, "energy a day: {:.1} Wh{star}{idle}{co2e}", local.energy_wh_per_day);
    let _ = writeln!(
        out,
        "hardware a day: {} {currency} ({} over {} days)",
        money(local.hardware_cost_per_day),
        money(inputs.hardware_price),
        inputs.lifetime_years * DAYS_PER_YEAR
    );
    if let (Some(hours), Some((prompt_speed, generation_speed))) = (busy_hours(resolved), resolved.energy.speeds) {
        let over = if hours > inputs.hours_on {
            format!(": more than the {} hours it is on, so it cannot answer them all", inputs.hours_on)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "busy: {hours:.1} hours a day at the bench run's {prompt_speed:.0} prompt and {generation_speed:.1} generated tokens/s, one request at a time{over}"
        );
    }
    if estimated {
        let _ =
            writeln!(out, "* rests on an estimated energy figure (no energy counter was readable when it was taken)");
    }
    out.push('\n');

    let sensitivity = &outcome.sensitivity;
    let _ =
        writeln!(out, "break-even months against {}, by tokens a day and electricity price{star}:", sensitivity.cloud);
    let columns: Vec<String> =
        sensitivity.electricity_prices.iter().map(|p| format!("{} {currency}/kWh", money(*p))).collect();
    let width = columns.iter().map(|c| c.len()).max().unwrap_or(0).max(10);
    let mut line = format!("{:>14}", "tokens/day");
    for column in &columns {
        let _ = write!(line, "  {column:>width$}");
    }
    let _ = writeln!(out, "{line}");
    for row in &sensitivity.rows {
        let mut line = format!("{:>14}", grouped(row.tokens_per_day));
        for cell in &row.break_even_months {
            let _ = write!(line, "  {:>width$}", months(*cell).trim_end_matches(" months"));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

fn months(value: Option<f64>) -> String {
    value.map_or("never".into(), |m| format!("{m:.1} months"))
}

/// Money with the precision its size needs: fractions of a cent show for small figures.
fn money(value: f64) -> String {
    if value.abs() < 1.0 && value != 0.0 {
        // Four decimals, less the zeros after the cents: 0.0113, 0.30.
        let text = format!("{value:.4}");
        let trimmed = text.trim_end_matches('0');
        let decimals = trimmed.len() - trimmed.find('.').map_or(trimmed.len(), |dot| dot + 1);
        return if decimals < 2 { format!("{value:.2}") } else { trimmed.to_string() };
    }
    let cents = (value.abs() * 100.0).round();
    let sign = if value < 0.0 { "-" } else { "" };
    format!("{sign}{}.{:02}", grouped((cents / 100.0).floor()), cents % 100.0)
}

/// A whole number with thousands separated by commas.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(1_000_000.0), "1,000,000");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(-12_345.0), "-12,345");
        assert_eq!(money(3600.0), "3,600.00");
        assert_eq!(money(9.855), "9.86");
        assert_eq!(money(0.0113), "0.0113");
        assert_eq!(money(0.3), "0.30");
        assert_eq!(money(0.125), "0.125");
        assert_eq!(money(0.0), "0.00");
        assert_eq!(money(9.999), "10.00");
        assert_eq!(money(-1234.5), "-1,234.50");
        assert_eq!(months(None), "never");
        assert_eq!(months(Some(13.27)), "13.3 months");
    }
}
