//! `hearth cost --plot cost.svg`: cumulative cost over the months, the local machine's
//! (its price up front, again at the end of each lifetime, and electricity every day) against
//! each cloud model's bill, with the point where the machine has paid for itself marked.

use super::model::{Inputs, Outcome, DAYS_PER_MONTH};
use crate::bench::plot::{bounds, escape, frame, step, Axis, COLOURS};
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 30.0;
const MARGIN_TOP: f64 = 50.0;
const MARGIN_BOTTOM: f64 = 75.0;
/// The chart covers three years, or longer to show a later break-even, up to ten.
const MIN_MONTHS: f64 = 36.0;
const MAX_MONTHS: f64 = 120.0;
const LOCAL_COLOUR: &str = "#222";

/// Months shown: enough for every break-even within ten years, with room after it.
fn horizon(outcome: &Outcome) -> f64 {
    let latest =
        outcome.clouds.iter().filter_map(|c| c.break_even_months).filter(|m| *m <= MAX_MONTHS).fold(0.0, f64::max);
    (latest * 1.25).ceil().clamp(MIN_MONTHS, MAX_MONTHS)
}

/// The local machine's cumulative cost at the corners of its curve: a step up at each
/// purchase, a straight line of electricity between.
fn local_curve(inputs: &Inputs, outcome: &Outcome, months: f64) -> Vec<(f64, f64)> {
    let per_month = outcome.local.energy_cost_per_day * DAYS_PER_MONTH;
    let lifetime_months = inputs.lifetime_years * 12.0;
    let mut points = vec![(0.0, 0.0), (0.0, inputs.hardware_price)];
    let mut bought = inputs.hardware_price;
    let mut next = lifetime_months;
    while next < months {
        let before = bought + per_month * next;
        points.push((next, before));
        bought += inputs.hardware_price;
        points.push((next, before + inputs.hardware_price));
        next += lifetime_months;
    }
    points.push((months, bought + per_month * months));
    points
}

/// The chart as an SVG document; `estimated` says the energy is an estimate.
pub fn svg(inputs: &Inputs, outcome: &Outcome, currency: &str, estimated: bool) -> String {
    let months = horizon(outcome);
    let local = local_curve(inputs, outcome, months);
    let clouds: Vec<(&str, f64, Option<f64>)> = outcome
        .clouds
        .iter()
        .map(|c| (c.model.name.as_str(), c.cost_per_day * DAYS_PER_MONTH, c.break_even_months))
        .collect();
    let top = local.iter().map(|p| p.1).chain(clouds.iter().map(|c| c.1 * months)).fold(0.0, f64::max);
    let (_, y1, ystep) = bounds(&[0.0, top.max(1.0)]);
    let xstep = step(months, 6.0);
    let (plot_w, plot_h) = (WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM);
    let x_at = |m: f64| MARGIN_LEFT + m / months * plot_w;
    let y_at = |cost: f64| MARGIN_TOP + (1.0 - cost / y1) * plot_h;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">"#
    );
    out.push('\n');
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let x_axis = Axis { from: 0.0, to: months, step: xstep, at: &x_at };
    let y_axis = Axis { from: 0.0, to: y1, step: ystep, at: &y_at };
    let title = "Cumulative cost: this machine against the cloud";
    frame(&mut out, title, (MARGIN_LEFT, MARGIN_TOP, plot_w, plot_h), x_axis, y_axis);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">months</text>"#,
        MARGIN_LEFT + plot_w / 2.0,
        MARGIN_TOP + plot_h + 34.0
    );
    let (lx, ly) = (20.0, MARGIN_TOP + plot_h / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{lx}" y="{ly}" font-size="12" text-anchor="middle" transform="rotate(-90 {lx} {ly})">cumulative cost ({})</text>"#,
        escape(currency)
    );
    for (i, (name, per_month, _)) in clouds.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            out,
            r#"<polyline points="{:.1},{:.1} {:.1},{:.1}" fill="none" stroke="{colour}" stroke-width="2"><title>{}</title></polyline>"#,
            x_at(0.0),
            y_at(0.0),
            x_at(months),
            y_at(per_month * months),
            escape(name)
        );
    }
    let path: Vec<String> = local.iter().map(|(m, c)| format!("{:.1},{:.1}", x_at(*m), y_at(*c))).collect();
    let _ = writeln!(
        out,
        r#"<polyline points="{}" fill="none" stroke="{LOCAL_COLOUR}" stroke-width="2.5"><title>this machine</title></polyline>"#,
        path.join(" ")
    );
    for (i, (name, per_month, break_even)) in clouds.iter().enumerate() {
        let Some(at) = break_even.filter(|m| *m <= months) else { continue };
        let (px, py) = (x_at(at), y_at(per_month * at));
        let _ = writeln!(
            out,
            r##"<circle class="break-even" cx="{px:.1}" cy="{py:.1}" r="6" fill="white" stroke="{}" stroke-width="2.5"><title>break-even with {}: {at:.1} months</title></circle>"##,
            COLOURS[i % COLOURS.len()],
            escape(name)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11">break-even with {}: {at:.1} months</text>"#,
            px + 9.0,
            py + 16.0 + 13.0 * i as f64,
            escape(name)
        );
    }
    // A legend in the top left corner, where the curves start low.
    let mut y = MARGIN_TOP + 18.0;
    let entries = std::iter::once(("this machine".to_string(), LOCAL_COLOUR))
        .chain(clouds.iter().enumerate().map(|(i, (name, _, _))| (name.to_string(), COLOURS[i % COLOURS.len()])));
    for (label, colour) in entries {
        let x = MARGIN_LEFT + 12.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{colour}" stroke-width="2.5"/>"#,
            y - 4.0,
            x + 22.0,
            y - 4.0
        );
        let _ = writeln!(out, r#"<text x="{}" y="{y:.1}" font-size="11">{}</text>"#, x + 28.0, escape(&label));
        y += 16.0;
    }
    let estimate = if estimated { " Energy estimated (no energy counter was readable)." } else { "" };
    let _ = writeln!(
        out,
        r##"<text x="10" y="{}" font-size="10" fill="#555">this machine: {} {} up front, every {} years; {} {} a day of electricity ({:.0} Wh).{estimate}</text>"##,
        HEIGHT - 12.0,
        super::money(inputs.hardware_price),
        escape(currency),
        inputs.lifetime_years,
        format_args!("{:.2}", outcome.local.energy_cost_per_day),
        escape(currency),
        outcome.local.energy_wh_per_day
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::{compute, CloudModel};
    use super::*;

    fn inputs(lifetime_years: f64) -> Inputs {
        Inputs {
            tokens_in_per_day: 5e5,
            tokens_out_per_day: 5e5,
            hardware_price: 3600.0,
            lifetime_years,
            idle_watts: 0.0,
            hours_on: 24.0,
            electricity_price: 0.3,
            joules_per_input_token: 0.0,
            joules_per_output_token: 0.0,
            grams_co2e_per_kwh: None,
            clouds: vec![CloudModel {
                name: "a<b".into(),
                input_per_million: 3.0,
                output_per_million: 15.0,
                as_of: None,
            }],
        }
    }

    #[test]
    fn the_local_curve_steps_up_at_each_purchase() {
        let inputs = inputs(1.0);
        let outcome = compute(&inputs);
        let curve = local_curve(&inputs, &outcome, 36.0);
        assert_eq!(
            curve,
            vec![
                (0.0, 0.0),
                (0.0, 3600.0),
                (12.0, 3600.0),
                (12.0, 7200.0),
                (24.0, 7200.0),
                (24.0, 10800.0),
                (36.0, 10800.0)
            ]
        );
    }

    #[test]
    fn break_even_is_marked_and_names_escaped() {
        let inputs = inputs(3.0);
        let svg = svg(&inputs, &compute(&inputs), "USD", true);
        assert!(svg.contains(r#"class="break-even""#), "{svg}");
        assert!(svg.contains("break-even with a&lt;b: 13.2 months"), "{svg}");
        assert!(svg.contains("Energy estimated"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
