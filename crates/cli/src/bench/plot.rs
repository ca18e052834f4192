//! `--plot out.svg`: the trade-off at a glance. Energy per generated token across, generation
//! speed up (and, with `--quality`, perplexity in a second panel), one point per target, the
//! Pareto front (the targets nothing else beats on both axes) joined by a dashed line.

use super::{Report, TargetResult};
use std::fmt::Write;

const PANEL_WIDTH: f64 = 460.0;
const HEIGHT: f64 = 380.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 50.0;
const MARGIN_BOTTOM: f64 = 55.0;
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

/// One target on the chart.
struct Point {
    label: String,
    joules: f64,
    speed: f64,
    perplexity: Option<f64>,
    colour: &'static str,
}

/// The figures a point is drawn from: the fixed workload's, else the real prompts'.
fn point(t: &TargetResult, colour: &'static str) -> Option<Point> {
    let (energy, speed) = match (&t.fixed, &t.prompts) {
        (Some(f), _) => (f.energy.as_ref()?, f.generation_tokens_per_second.median),
        (None, Some(r)) => (r.energy.as_ref()?, r.generation_tokens_per_second.median),
        _ => return None,
    };
    let quant = t.model.as_ref().map(|m| format!(" {}", m.quantization)).unwrap_or_default();
    let label = if t.name.contains(quant.trim()) { t.name.clone() } else { format!("{}{quant}", t.name) };
    Some(Point {
        label,
        joules: energy.joules_per_generated_token.median,
        speed,
        perplexity: t.perplexity.as_ref().map(|p| p.value),
        colour,
    })
}

/// Indices of the points no other point beats on both axes: less energy, and a `y` that is
/// higher (or lower, when `lower_is_better`). Ordered by energy.
fn pareto(points: &[(f64, f64)], lower_is_better: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0).then(points[b].1.total_cmp(&points[a].1)));
    let mut front = Vec::new();
    let mut best: Option<f64> = None;
    for i in order {
        let y = points[i].1;
        let better = best.is_none_or(|b| if lower_is_better { y < b } else { y > b });
        if better {
            front.push(i);
            best = Some(y);
        }
    }
    front
}

/// A round step giving about `ticks` ticks over `span`.
fn step(span: f64, ticks: f64) -> f64 {
    let raw = (span / ticks).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    magnitude
        * if fraction <= 1.0 {
            1.0
        } else if fraction <= 2.0 {
            2.0
        } else if fraction <= 5.0 {
            5.0
        } else {
            10.0
        }
}

/// Axis bounds on round steps around `values`, from zero when `from_zero`.
fn bounds(values: &[f64], from_zero: bool) -> (f64, f64, f64) {
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let lo = if from_zero { 0.0 } else { lo - (hi - lo).max(hi.abs() * 0.05) * 0.2 };
    let hi = hi + (hi - lo).max(hi.abs() * 0.05) * 0.15;
    let step = step(hi - lo, 5.0);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn number(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{value:.decimals$}")
}

/// One panel at horizontal offset `left`: axes, grid, front and points.
fn panel(
    out: &mut String,
    left: f64,
    title: &str,
    y_label: &str,
    points: &[(f64, f64, &Point)],
    lower_is_better: bool,
) {
    let (plot_w, plot_h) = (PANEL_WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM);
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let (x0, x1, xstep) = bounds(&xs, true);
    let (y0, y1, ystep) = bounds(&ys, !lower_is_better);
    let x_at = |x: f64| left + MARGIN_LEFT + (x - x0) / (x1 - x0) * plot_w;
    // Better is up: a figure where lower is better runs downwards.
    let y_at = |y: f64| {
        let t = (y - y0) / (y1 - y0);
        MARGIN_TOP + if lower_is_better { t * plot_h } else { (1.0 - t) * plot_h }
    };
    let (ox, oy) = (left + MARGIN_LEFT, MARGIN_TOP);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="28" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"#,
        ox + plot_w / 2.0,
        escape(title)
    );
    let _ =
        writeln!(out, r##"<rect x="{ox}" y="{oy}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##);
    let mut x = x0;
    while x <= x1 + xstep / 2.0 {
        let px = x_at(x);
        let _ = writeln!(out, r##"<line x1="{px:.1}" y1="{oy}" x2="{px:.1}" y2="{}" stroke="#e4e4e4"/>"##, oy + plot_h);
        let _ = writeln!(
            out,
            r#"<text x="{px:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            oy + plot_h + 16.0,
            number(x, xstep)
        );
        x += xstep;
    }
    let mut y = y0;
    while y <= y1 + ystep / 2.0 {
        let py = y_at(y);
        let _ = writeln!(out, r##"<line x1="{ox}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e4e4e4"/>"##, ox + plot_w);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            ox - 6.0,
            py + 4.0,
            number(y, ystep)
        );
        y += ystep;
    }
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">joules per generated token (less is better)</text>"#,
        ox + plot_w / 2.0,
        HEIGHT - 14.0
    );
    let (lx, ly) = (left + 18.0, MARGIN_TOP + plot_h / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{lx}" y="{ly}" font-size="12" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text>"#,
        escape(y_label)
    );
    let front = pareto(&points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(), lower_is_better);
    if front.len() > 1 {
        let path: Vec<String> =
            front.iter().map(|&i| format!("{:.1},{:.1}", x_at(points[i].0), y_at(points[i].1))).collect();
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="#888" stroke-width="1.5" stroke-dasharray="5,4"/>"##,
            path.join(" ")
        );
    }
    for (i, (x, y, p)) in points.iter().enumerate() {
        let (px, py) = (x_at(*x), y_at(*y));
        let ring = if front.contains(&i) { r##" stroke="#000" stroke-width="1.5""## } else { "" };
        let _ = writeln!(
            out,
            r#"<circle cx="{px:.1}" cy="{py:.1}" r="6" fill="{}"{ring}><title>{}: {x:.4} J/token, {y:.2}</title></circle>"#,
            p.colour,
            escape(&p.label)
        );
        let anchor = if px > ox + plot_w * 0.6 { ("end", -9.0) } else { ("start", 9.0) };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="{}">{}</text>"#,
            px + anchor.1,
            py - 8.0,
            anchor.0,
            escape(&p.label)
        );
    }
}

/// The chart as an SVG document.
pub fn svg(report: &Report) -> String {
    let points: Vec<Point> =
        report.targets.iter().enumerate().filter_map(|(i, t)| point(t, COLOURS[i % COLOURS.len()])).collect();
    let speed: Vec<(f64, f64, &Point)> = points.iter().map(|p| (p.joules, p.speed, p)).collect();
    let quality: Vec<(f64, f64, &Point)> = points.iter().filter_map(|p| Some((p.joules, p.perplexity?, p))).collect();
    let panels = if quality.is_empty() { 1.0 } else { 2.0 };
    let width = PANEL_WIDTH * panels;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" viewBox="0 0 {width} {}" font-family="sans-serif">"#,
        HEIGHT + 24.0,
        HEIGHT + 24.0
    );
    out.push('\n');
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    if speed.is_empty() {
        let _ = writeln!(
            out,
            r#"<text x="20" y="40" font-size="14">No target has both an energy figure and a speed to draw.</text>"#
        );
    } else {
        panel(&mut out, 0.0, "Speed against energy", "generated tokens per second", &speed, false);
        if !quality.is_empty() {
            panel(&mut out, PANEL_WIDTH, "Quality against energy", "perplexity (lower is better, up)", &quality, true);
        }
    }
    let sources: Vec<&str> = report
        .targets
        .iter()
        .filter_map(|t| {
            t.fixed.as_ref().and_then(|f| f.energy.as_ref()).or(t.prompts.as_ref().and_then(|r| r.energy.as_ref()))
        })
        .map(|e| e.source)
        .collect();
    let estimated =
        if sources.contains(&"estimated") { " Energy estimated from CPU time (no counter readable)." } else { "" };
    let m = &report.machine;
    let _ = writeln!(
        out,
        r##"<text x="10" y="{}" font-size="10" fill="#555">{} · {} threads · hearth bench · dashed: Pareto front.{estimated}</text>"##,
        HEIGHT + 14.0,
        escape(&m.cpu),
        report.threads
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_only_undominated_points() {
        // (J/token, tok/s): the second is beaten by the first on both axes.
        let points = [(0.1, 100.0), (0.2, 90.0), (0.3, 150.0), (0.05, 40.0)];
        assert_eq!(pareto(&points, false), vec![3, 0, 2]);
        // Perplexity: lower is better.
        let points = [(0.1, 14.0), (0.2, 13.0), (0.3, 13.5), (0.05, 20.0)];
        assert_eq!(pareto(&points, true), vec![3, 0, 1]);
    }

    #[test]
    fn steps_and_bounds_are_round() {
        assert_eq!(step(0.37, 5.0), 0.1);
        assert_eq!(step(130.0, 5.0), 50.0);
        let (lo, hi, step) = bounds(&[0.13, 0.32], true);
        assert_eq!(lo, 0.0);
        assert!(hi >= 0.32 && (hi / step - (hi / step).round()).abs() < 1e-9);
        let (lo, hi, _) = bounds(&[13.4, 19.1], false);
        assert!(lo < 13.4 && lo > 0.0 && hi > 19.1);
    }
}
