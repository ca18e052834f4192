//! Where `hearth cost`'s inputs come from: flags first, then the config file's `[cost]`
//! section, then the environment (`HEARTH_ENERGY_PRICE`, `HEARTH_CURRENCY`,
//! `HEARTH_GRID_INTENSITY`); tokens per day and energy per token also from the server's
//! daily usage (`--from-usage`) or the bench history, with where each came from kept for display.

use super::model::{CloudModel, Inputs};
use super::CostArgs;
use crate::history::BenchRecord;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Default years the hardware lasts, when neither a flag nor the config file says.
const DEFAULT_LIFETIME_YEARS: f64 = 3.0;
const DEFAULT_HOURS_ON: f64 = 24.0;

/// `[cost]` in the config file: the same settings as the flags, which override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    pub tokens_per_day: Option<f64>,
    pub tokens_in_per_day: Option<f64>,
    pub tokens_out_per_day: Option<f64>,
    pub hardware_price: Option<f64>,
    pub lifetime_years: Option<f64>,
    pub idle_watts: Option<f64>,
    pub hours_on: Option<f64>,
    pub electricity_price: Option<f64>,
    pub currency: Option<String>,
    pub joules_per_token: Option<f64>,
    /// `[[cost.cloud]]`: the cloud models to compare with, by name.
    #[serde(default)]
    pub cloud: Vec<CloudConfig>,
}

/// One `[[cost.cloud]]` entry: prices per million tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    pub name: String,
    pub input: f64,
    pub output: f64,
    /// When the prices were read (`2026-12`), printed beside every use of them.
    pub as_of: Option<String>,
}

/// Where the energy per token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyOrigin {
    /// `--joules-per-token` or the config file.
    Given,
    /// The bench history.
    Bench,
    /// The server's daily usage.
    Usage,
}

/// The energy per token and what it rests on.
#[derive(Debug, Clone, Serialize)]
pub struct EnergyFigure {
    pub joules_per_input_token: f64,
    pub joules_per_output_token: f64,
    pub origin: EnergyOrigin,
    /// `given`, `measured` or `estimated`.
    pub source: String,
    /// Where the figure came from, in a line.
    pub description: String,
    /// How prompt tokens were counted, when it is not their own figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_note: Option<String>,
    /// The bench run's speeds, tokens a second, for the hours a day's tokens keep the machine busy.
    #[serde(skip)]
    pub speeds: Option<(f64, f64)>,
}

impl EnergyFigure {
    /// Whether every figure computed from the energy is an estimate.
    pub fn estimated(&self) -> bool {
        self.source == "estimated"
    }
}

/// The days of the server's usage a figure was averaged over.
#[derive(Debug, Clone, Serialize)]
pub struct UsageSpan {
    pub file: String,
    pub days: usize,
    pub first: String,
    pub last: String,
    /// Whether today, not yet over, was all there was.
    pub today_only: bool,
    pub tokens_in_per_day: f64,
    pub tokens_out_per_day: f64,
    /// Gross joules over all tokens, prompt and generated; none when no answer reported energy.
    pub joules_per_token: Option<f64>,
    pub energy_source: Option<String>,
}

impl UsageSpan {
    pub fn describe(&self) -> String {
        if self.today_only {
            format!("today ({}) so far, the only day recorded", self.first)
        } else if self.days == 1 {
            format!("1 complete day ({})", self.first)
        } else {
            format!("{} complete days ({} to {})", self.days, self.first, self.last)
        }
    }
}

/// Everything resolved: the model's inputs and what the display needs to say about them.
pub struct Resolved {
    pub inputs: Inputs,
    pub currency: String,
    /// How tokens per day were arrived at, in a line.
    pub tokens_note: String,
    pub energy: EnergyFigure,
    pub usage: Option<UsageSpan>,
    /// Whether the lifetime is the default rather than given.
    pub default_lifetime: bool,
}

pub fn resolve(args: &CostArgs, config: &CostConfig) -> Result<Resolved> {
    let prices = crate::energy::prices()?;
    let usage = if args.from_usage { Some(usage_span()?) } else { None };
    let (tokens_in_per_day, tokens_out_per_day, tokens_note) = tokens(args, config, usage.as_ref())?;
    let energy = energy(args, config, usage.as_ref())?;
    let hardware_price = args.hardware_price.or(config.hardware_price).context(
        "no hardware price: pass --hardware-price (what the machine cost) or set hardware_price in [cost] of the config file",
    )?;
    let lifetime_years = args.lifetime_years.or(config.lifetime_years);
    let electricity_price = args
        .electricity_price
        .or(config.electricity_price)
        .or(prices.price_per_kwh)
        .context("no electricity price: pass --electricity-price (per kWh) or set HEARTH_ENERGY_PRICE")?;
    let currency = args
        .currency
        .clone()
        .or(config.currency.clone())
        .or(Some(prices.currency).filter(|c| !c.is_empty()))
        .unwrap_or_else(|| "USD".to_string());
    let inputs = Inputs {
        tokens_in_per_day,
        tokens_out_per_day,
        hardware_price,
        lifetime_years: lifetime_years.unwrap_or(DEFAULT_LIFETIME_YEARS),
        idle_watts: args.idle_watts.or(config.idle_watts).unwrap_or(0.0),
        hours_on: args.hours_on.or(config.hours_on).unwrap_or(DEFAULT_HOURS_ON),
        electricity_price,
        joules_per_input_token: energy.joules_per_input_token,
        joules_per_output_token: energy.joules_per_output_token,
        grams_co2e_per_kwh: prices.grams_co2e_per_kwh,
        clouds: clouds(args, config)?,
    };
    inputs.check()?;
    Ok(Resolved { inputs, currency, tokens_note, energy, usage, default_lifetime: lifetime_years.is_none() })
}

/// Tokens in and out per day: the flags, else the server's usage, else the config file.
fn tokens(args: &CostArgs, config: &CostConfig, usage: Option<&UsageSpan>) -> Result<(f64, f64, String)> {
    let flags = (args.tokens_per_day, args.tokens_in_per_day, args.tokens_out_per_day);
    if flags != (None, None, None) {
        return split(flags);
    }
    if let Some(usage) = usage {
        let note = format!("the server's average over {}", usage.describe());
        return Ok((usage.tokens_in_per_day, usage.tokens_out_per_day, note));
    }
    let file = (config.tokens_per_day, config.tokens_in_per_day, config.tokens_out_per_day);
    if file != (None, None, None) {
        return split(file);
    }
    bail!("no tokens per day: pass --tokens-per-day (or --tokens-in-per-day and --tokens-out-per-day), or --from-usage for what hearth serve answered")
}

/// Prompt and generated tokens from a total and either part: a total alone is half each.
fn split((total, input, output): (Option<f64>, Option<f64>, Option<f64>)) -> Result<(f64, f64, String)> {
    let given = "as given".to_string();
    Ok(match (total, input, output) {
        (Some(total), None, None) => (
            total / 2.0,
            total / 2.0,
            "split half prompt, half generated; --tokens-in-per-day and --tokens-out-per-day set the mix".into(),
        ),
        (Some(total), Some(input), None) if input <= total => (input, total - input, given),
        (Some(total), None, Some(output)) if output <= total => (total - output, output, given),
        (Some(total), Some(input), Some(output)) if (input + output - total).abs() <= 1e-9 * total.abs() => {
            (input, output, given)
        }
        (Some(total), _, _) => bail!(
            "--tokens-per-day {total} is less than or not the sum of --tokens-in-per-day and --tokens-out-per-day"
        ),
        (None, input, output) => (input.unwrap_or(0.0), output.unwrap_or(0.0), given),
    })
}

/// The energy per token: `--joules-per-token`, `--model`'s newest bench record, the
/// server's usage, the config file, the newest bench record, in that order.
fn energy(args: &CostArgs, config: &CostConfig, usage: Option<&UsageSpan>) -> Result<EnergyFigure> {
    if let Some(joules) = args.joules_per_token {
        return Ok(given(joules, "--joules-per-token"));
    }
    let history = crate::history::read();
    if let Some(model) = &args.model {
        let record = history.iter().rev().find(|r| &r.model == model).with_context(|| {
            format!(
                "no bench record of {model:?} in {}: run `hearth bench {model}` first",
                crate::history::path().display()
            )
        })?;
        return from_record(record);
    }
    if let Some(usage) = usage {
        if let Some(joules) = usage.joules_per_token {
            let source = usage.energy_source.clone().unwrap_or_else(|| "estimated".into());
            return Ok(EnergyFigure {
                joules_per_input_token: joules,
                joules_per_output_token: joules,
                origin: EnergyOrigin::Usage,
                description: format!(
                    "{joules:.3} J/token (prompt and generated together), {source} by hearth serve over {}",
                    usage.describe()
                ),
                source,
                input_note: Some(
                    "prompt tokens counted at the same figure: the server's totals do not split them".into(),
                ),
                speeds: None,
            });
        }
    }
    if let Some(joules) = config.joules_per_token {
        return Ok(given(joules, "joules_per_token in the config file"));
    }
    match history.last() {
        Some(record) => from_record(record),
        None => bail!("no energy per token: run `hearth bench MODEL` to measure one, or pass --joules-per-token"),
    }
}

fn given(joules: f64, how: &str) -> EnergyFigure {
    EnergyFigure {
        joules_per_input_token: joules,
        joules_per_output_token: joules,
        origin: EnergyOrigin::Given,
        source: "given".into(),
        description: format!("{joules} J/token, given ({how})"),
        input_note: Some("prompt tokens counted at the same figure".into()),
        speeds: None,
    }
}

fn from_record(record: &BenchRecord) -> Result<EnergyFigure> {
    let Some(joules) = record.joules_per_token else {
        bail!(
            "the bench record of {:?} has no energy figure (no energy meter then): pass --joules-per-token",
            record.model
        )
    };
    let source = record.energy_source.clone().unwrap_or_else(|| "estimated".into());
    let (year, month, day) = hearth_core::clock::civil_from_days((record.at / 86_400) as i64);
    let description = format!(
        "{joules:.3} J/token generated, {source} by hearth bench of {} on {year:04}-{month:02}-{day:02}",
        record.model
    );
    // Prompt tokens are processed in batches, many per step: the same power over far more
    // tokens a second.
    let (input, input_note) = match record.watts {
        Some(watts) if record.prompt_tokens_per_second > 0.0 => (
            watts / record.prompt_tokens_per_second,
            Some(format!(
                "prompt tokens at {:.4} J/token: its {watts:.1} W over {:.0} prompt tokens/s",
                watts / record.prompt_tokens_per_second,
                record.prompt_tokens_per_second
            )),
        ),
        _ => {
            (joules, Some("prompt tokens counted at the generation figure (the record has no power to divide)".into()))
        }
    };
    Ok(EnergyFigure {
        joules_per_input_token: input,
        joules_per_output_token: joules,
        origin: EnergyOrigin::Bench,
        source,
        description,
        input_note,
        speeds: (record.prompt_tokens_per_second > 0.0 && record.generation_tokens_per_second > 0.0)
            .then_some((record.prompt_tokens_per_second, record.generation_tokens_per_second)),
    })
}

/// The server's daily totals averaged over the complete days (before today, UTC), or over
/// today when it is the only day.
fn usage_span() -> Result<UsageSpan> {
    let path = hearth_server::usage::default_path();
    let days = hearth_server::usage::read(&path)?;
    let today = hearth_server::usage::date_of(SystemTime::now());
    let complete: Vec<_> = days.iter().filter(|d| d.date < today).collect();
    let (used, today_only) =
        if complete.is_empty() { (days.iter().collect::<Vec<_>>(), true) } else { (complete, false) };
    let (Some(first), Some(last)) = (used.first(), used.last()) else {
        bail!("no usage recorded in {}: hearth serve writes it as it answers", path.display())
    };
    let n = used.len() as f64;
    let prompt: u64 = used.iter().map(|d| d.prompt_tokens).sum();
    let completion: u64 = used.iter().map(|d| d.completion_tokens).sum();
    let metered: Vec<_> = used.iter().filter(|d| d.energy_source.is_some()).collect();
    let metered_tokens: u64 = metered.iter().map(|d| d.prompt_tokens + d.completion_tokens).sum();
    let joules: f64 = metered.iter().map(|d| d.joules).sum();
    let energy_source = if metered.is_empty() {
        None
    } else if metered.iter().all(|d| d.energy_source.as_deref() == Some("measured")) {
        Some("measured".to_string())
    } else {
        Some("estimated".to_string())
    };
    Ok(UsageSpan {
        file: path.display().to_string(),
        days: used.len(),
        first: first.date.clone(),
        last: last.date.clone(),
        today_only,
        tokens_in_per_day: prompt as f64 / n,
        tokens_out_per_day: completion as f64 / n,
        joules_per_token: (metered_tokens > 0).then(|| joules / metered_tokens as f64),
        energy_source,
    })
}

/// The cloud models: `--cloud` and the `--cloud-price-*` pair, else the config file's. A
/// `--cloud NAME` without prices picks that model from the config file.
fn clouds(args: &CostArgs, config: &CostConfig) -> Result<Vec<CloudModel>> {
    let from_config = |entry: &CloudConfig| CloudModel {
        name: entry.name.clone(),
        input_per_million: entry.input,
        output_per_million: entry.output,
        as_of: entry.as_of.clone(),
    };
    let mut clouds = Vec::new();
    for text in &args.clouds {
        match text.split_once('=') {
            Some((name, prices)) => {
                let parsed = prices
                    .split_once(',')
                    .and_then(|(input, output)| Some((input.trim().parse().ok()?, output.trim().parse().ok()?)));
                let Some((input, output)) = parsed else {
                    bail!("--cloud {text}: expected NAME=INPUT,OUTPUT, prices per million tokens (e.g. sonnet=3,15)")
                };
                clouds.push(CloudModel {
                    name: name.trim().to_string(),
                    input_per_million: input,
                    output_per_million: output,
                    as_of: None,
                });
            }
            None => match config.cloud.iter().find(|c| c.name == *text) {
                Some(entry) => clouds.push(from_config(entry)),
                None => bail!(
                    "no prices for the cloud model {text:?}: hearth ships no price list; give them as --cloud {text}=INPUT,OUTPUT (per million tokens) or in [[cost.cloud]] of the config file"
                ),
            },
        }
    }
    match (args.cloud_price_input, args.cloud_price_output) {
        (Some(input), Some(output)) => clouds.push(CloudModel {
            name: "cloud".into(),
            input_per_million: input,
            output_per_million: output,
            as_of: None,
        }),
        (None, None) => {}
        _ => bail!("--cloud-price-input and --cloud-price-output go together (prices per million tokens)"),
    }
    if clouds.is_empty() {
        clouds = config.cloud.iter().map(from_config).collect();
    }
    Ok(clouds)
}
