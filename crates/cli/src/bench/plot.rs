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
pub(crate) const COLOURS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

/// One target on the chart.
struct Point {
    label: String,
    quantization: Option<String>,
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
    Some(Point {
        label: t.name.clone(),
        quantization: t.model.as_ref().map(|m| m.quantization.clone()),
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
pub(crate) fn step(span: f64, ticks: f64) -> f64 {
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

/// Axis bounds on round steps around `values`, with a margin so no point sits on an edge.
pub(crate) fn bounds(values: &[f64]) -> (f64, f64, f64) {
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let margin = (hi - lo).max(hi.abs() * 0.05) * 0.2;
    let (lo, hi) = ((lo - margin).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY }), hi + margin);
    let step = step(hi - lo, 5.0);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

/// One axis of a chart: a tick every `step` from `from` to `to`, placed by `at`.
pub(crate) struct Axis<'a> {
    pub from: f64,
    pub to: f64,
    pub step: f64,
    pub at: &'a dyn Fn(f64) -> f64,
}

/// A chart's frame: its title above, the plot area's border, and a light grid line with a
/// label at every tick of both axes. `area` is (left, top, width, height).
pub(crate) fn frame(out: &mut String, title: &str, area: (f64, f64, f64, f64), x: Axis<'_>, y: Axis<'_>) {
    let (left, top, width, height) = area;
    let _ = writeln!(
        out,
        r#"<text x="{}" y="28" font-size="15" font-weight="bold" text-anchor="middle">{}</text>"#,
        left + width / 2.0,
        escape(title)
    );
    let _ =
        writeln!(out, r##"<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="#444"/>"##);
    let mut value = x.from;
    while value <= x.to + x.step / 2.0 {
        let px = (x.at)(value);
        let _ =
            writeln!(out, r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{}" stroke="#e4e4e4"/>"##, top + height);
        let _ = writeln!(
            out,
            r#"<text x="{px:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            top + height + 16.0,
            number(value, x.step)
        );
        value += x.step;
    }
    let mut value = y.from;
    while value <= y.to + y.step / 2.0 {
        let py = (y.at)(value);
        let _ =
            writeln!(out, r##"<line x1="{left}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e4e4e4"/>"##, left + width);
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            left - 6.0,
            py + 4.0,
            number(value, y.step)
        );
        value += y.step;
    }
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(crate) fn number(value: f64, step: f64) -> String {
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
    let (x0, x1, xstep) = bounds(&xs);
    let (y0, y1, ystep) = bounds(&ys);
    let x_at = |x: f64| left + MARGIN_LEFT + (x - x0) / (x1 - x0) * plot_w;
    // Better is up: a figure where lower is better runs downwards.
    let y_at = |y: f64| {
        let t = (y - y0) / (y1 - y0);
        MARGIN_TOP + if lower_is_better { t * plot_h } else { (1.0 - t) * plot_h }
    };
    let (ox, oy) = (left + MARGIN_LEFT, MARGIN_TOP);
    let x_axis = Axis { from: x0, to: x1, step: xstep, at: &x_at };
    let y_axis = Axis { from: y0, to: y1, step: ystep, at: &y_at };
    frame(out, title, (ox, oy, plot_w, plot_h), x_axis, y_axis);
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
    // Labels keep clear of every point as well as of each other.
    let mut placed: Vec<Rect> =
        points.iter().map(|(x, y, _)| (x_at(*x) - 7.0, y_at(*y) - 7.0, x_at(*x) + 7.0, y_at(*y) + 7.0)).collect();
    for (i, (x, y, p)) in points.iter().enumerate() {
        let (px, py) = (x_at(*x), y_at(*y));
        let ring = if front.contains(&i) { r##" stroke="#000" stroke-width="1.5""## } else { "" };
        let _ = writeln!(
            out,
            r#"<circle cx="{px:.1}" cy="{py:.1}" r="6" fill="{}"{ring}><title>{}: {x:.4} J/token, {y:.2}</title></circle>"#,
            p.colour,
            escape(&p.label)
        );
        let (lx, ly, anchor) = place_label(&p.label, px, py, (ox, oy, ox + plot_w, oy + plot_h), &mut placed);
        let _ = writeln!(
            out,
            r#"<text x="{lx:.1}" y="{ly:.1}" font-size="11" text-anchor="{anchor}">{}</text>"#,
            escape(&p.label)
        );
    }
}

/// A label's box: left, top, right, bottom.
type Rect = (f64, f64, f64, f64);

/// Where a point's label goes: beside the point, on the first side (right or left, above or
/// below, then further out) where it overlaps nothing placed before and stays in the plot.
fn place_label(label: &str, px: f64, py: f64, plot: Rect, placed: &mut Vec<Rect>) -> (f64, f64, &'static str) {
    let width = label.chars().count() as f64 * 6.3;
    let overlaps = |a: &Rect, b: &Rect| a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3;
    let mut choice = None;
    // Level with the point first, then above and below it, further out each round.
    'search: for distance in [0.0, 13.0, 26.0, 39.0, 52.0] {
        let sides = [(10.0, 4.0 - distance), (10.0, 4.0 + distance), (-10.0, 4.0 - distance), (-10.0, 4.0 + distance)];
        for (dx, dy) in sides {
            let (left, right) = if dx > 0.0 { (px + dx, px + dx + width) } else { (px + dx - width, px + dx) };
            let rect = (left, py + dy - 10.0, right, py + dy + 2.0);
            let inside = rect.0 >= plot.0 && rect.2 <= plot.2 && rect.1 >= plot.1 && rect.3 <= plot.3;
            if inside && !placed.iter().any(|other| overlaps(&rect, other)) {
                choice = Some((rect, dx, py + dy));
                break 'search;
            }
        }
    }
    let (rect, dx, y) = choice.unwrap_or(((px + 9.0, py - 18.0, px + 9.0 + width, py - 6.0), 9.0, py - 8.0));
    placed.push(rect);
    if dx > 0.0 {
        (px + dx, y, "start")
    } else {
        (px + dx, y, "end")
    }
}

/// The chart as an SVG document.
pub fn svg(report: &Report) -> String {
    let mut title_note = String::new();
    let mut points: Vec<Point> =
        report.targets.iter().enumerate().filter_map(|(i, t)| point(t, COLOURS[i % COLOURS.len()])).collect();
    // Variants of one model are told apart by their quantization alone.
    let models: Vec<_> = report.targets.iter().filter_map(|t| t.model.as_ref()).collect();
    let variants = models.len() == report.targets.len()
        && models.iter().all(|m| (&m.architecture, &m.parameters) == (&models[0].architecture, &models[0].parameters))
        && models.iter().map(|m| &m.quantization).collect::<std::collections::HashSet<_>>().len() == models.len();
    if variants {
        let first = &report.targets[0].name;
        for point in &mut points {
            point.label = point.quantization.clone().unwrap_or_default();
        }
        title_note = format!(" · variants of {first}");
    }
    let speed: Vec<(f64, f64, &Point)> = points.iter().map(|p| (p.joules, p.speed, p)).collect();
    let quality: Vec<(f64, f64, &Point)> = points.iter().filter_map(|p| Some((p.joules, p.perplexity?, p))).collect();
    let panels = if quality.is_empty() { 1.0 } else { 2.0 };
    let width = PANEL_WIDTH * panels;
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" viewBox="0 0 {width} {}" font-family="sans-serif">"#,
        HEIGHT + 44.0,
        HEIGHT + 44.0
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
    // A legend, so points that sit close together are still told apart by colour.
    let mut x = 10.0;
    for p in &points {
        let _ = writeln!(out, r#"<circle cx="{:.1}" cy="{}" r="5" fill="{}"/>"#, x + 5.0, HEIGHT + 6.0, p.colour);
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" font-size="11">{}</text>"#,
            x + 14.0,
            HEIGHT + 10.0,
            escape(&p.label)
        );
        x += 28.0 + p.label.chars().count() as f64 * 6.3;
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
        r##"<text x="10" y="{}" font-size="10" fill="#555">{} · {} threads{title_note} · dashed: Pareto front.{estimated}</text>"##,
        HEIGHT + 34.0,
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
    fn labels_move_aside_instead_of_overlapping() {
        let plot = (0.0, 0.0, 400.0, 300.0);
        let mut placed = Vec::new();
        let first = place_label("Q4_0", 100.0, 100.0, plot, &mut placed);
        let second = place_label("Q4_1", 101.0, 101.0, plot, &mut placed);
        assert_ne!((first.0, first.1), (second.0, second.1));
        let (a, b) = (placed[0], placed[1]);
        assert!(!(a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3), "{placed:?}");
        let near_edge = place_label("a long label here", 395.0, 150.0, plot, &mut placed);
        assert_eq!(near_edge.2, "end", "a label at the right edge goes left");
    }

    #[test]
    fn steps_and_bounds_are_round() {
        assert_eq!(step(0.37, 5.0), 0.1);
        assert_eq!(step(130.0, 5.0), 50.0);
        let (lo, hi, step) = bounds(&[0.13, 0.32]);
        assert!((0.0..0.13).contains(&lo) && hi > 0.32);
        assert!((hi / step - (hi / step).round()).abs() < 1e-9 && (lo / step - (lo / step).round()).abs() < 1e-9);
        let (lo, hi, _) = bounds(&[13.4, 19.1]);
        assert!(lo < 13.4 && lo > 0.0 && hi > 19.1);
        let (lo, hi, _) = bounds(&[0.2]);
        assert!(lo < 0.2 && hi > 0.2, "one point still gets a range");
    }
}
