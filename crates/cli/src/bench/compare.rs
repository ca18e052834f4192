//! `hearth bench --compare BEFORE AFTER`: ratios between two saved `--json` reports, target
//! by target (matched by name, else by position), for every figure both reports have.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fmt::Write;
use std::path::Path;

/// A figure: where it is in a target's JSON, and whether more is better.
const FIGURES: [(&str, &str, bool); 14] = [
    ("pp tok/s", "/fixed/prompt_tokens_per_second/median", true),
    ("tg tok/s", "/fixed/generation_tokens_per_second/median", true),
    ("TTFT ms", "/fixed/ttft_ms/median", false),
    ("warm TTFT ms", "/fixed/warm_ttft_ms/median", false),
    ("ITL p50 ms", "/fixed/inter_token_ms/p50", false),
    ("ITL p99 ms", "/fixed/inter_token_ms/p99", false),
    ("J/tok", "/fixed/energy/joules_per_generated_token/median", false),
    ("prompts TTFT ms", "/prompts/ttft_ms/median", false),
    ("prompts e2e ms", "/prompts/e2e_ms/median", false),
    ("prompts tg tok/s", "/prompts/generation_tokens_per_second/median", true),
    ("prompts J/tok", "/prompts/energy/joules_per_generated_token/median", false),
    ("peak MiB", "/peak_rss_mib", false),
    ("perplexity", "/perplexity/value", false),
    ("KL mean", "/divergence/kl_mean", false),
];

fn read(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let report: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a `hearth bench --json` report", path.display()))?;
    if !report["targets"].is_array() {
        bail!("{} is not a `hearth bench --json` report (it has no targets)", path.display());
    }
    Ok(report)
}

/// The load levels of a target, by their label ("4 clients", "2 req/s").
fn levels(target: &Value) -> Vec<(String, f64)> {
    let Some(levels) = target["load"].as_array() else { return Vec::new() };
    levels
        .iter()
        .filter_map(|l| {
            let label = match (l["concurrency"].as_u64(), l["rate"].as_f64()) {
                (Some(c), _) => format!("load {c} clients tok/s"),
                (_, Some(r)) => format!("load {r} req/s tok/s"),
                _ => return None,
            };
            Some((label, l["generation_tokens_per_second"].as_f64()?))
        })
        .collect()
}

pub fn compare(before_path: &Path, after_path: &Path) -> Result<String> {
    let (before, after) = (read(before_path)?, read(after_path)?);
    let mut out = String::new();
    let machine = |r: &Value| format!("{} ({} threads)", r["machine"]["cpu"].as_str().unwrap_or("?"), r["threads"]);
    if machine(&before) != machine(&after) {
        let _ = writeln!(out, "note: different machines or threads: {} vs {}\n", machine(&before), machine(&after));
    }
    let empty = Vec::new();
    let (old, new) = (before["targets"].as_array().unwrap_or(&empty), after["targets"].as_array().unwrap_or(&empty));
    let name = |t: &Value| t["name"].as_str().unwrap_or("?").to_string();
    let mut pairs = Vec::new();
    for (index, b) in old.iter().enumerate() {
        let matched = new.iter().find(|a| name(a) == name(b)).or_else(|| new.get(index));
        if let Some(a) = matched {
            pairs.push((b, a));
        }
    }
    if pairs.is_empty() {
        bail!("the two reports have no targets to compare");
    }
    for (b, a) in pairs {
        let title = if name(a) == name(b) { name(a) } else { format!("{} -> {}", name(b), name(a)) };
        let _ = writeln!(out, "{title}");
        let _ = writeln!(out, "  {:<24} {:>12} {:>12} {:>9}", "figure", "before", "after", "after/before");
        let mut rows: Vec<(String, f64, f64, bool)> = FIGURES
            .iter()
            .filter_map(|(label, pointer, more_is_better)| {
                Some((label.to_string(), b.pointer(pointer)?.as_f64()?, a.pointer(pointer)?.as_f64()?, *more_is_better))
            })
            .collect();
        let after_levels = levels(a);
        for (label, value) in levels(b) {
            if let Some((_, new_value)) = after_levels.iter().find(|(l, _)| *l == label) {
                rows.push((label, value, *new_value, true));
            }
        }
        for (label, old_value, new_value, more_is_better) in rows {
            let ratio = if old_value != 0.0 { new_value / old_value } else { f64::NAN };
            let verdict = if !ratio.is_finite() || (ratio - 1.0).abs() < 0.02 {
                ""
            } else if (ratio > 1.0) == more_is_better {
                "  better"
            } else {
                "  worse"
            };
            let _ = writeln!(out, "  {label:<24} {old_value:>12.4} {new_value:>12.4} {ratio:>8.3}x{verdict}");
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_of_matching_targets_and_levels() {
        let dir = tempfile::tempdir().unwrap();
        let report = |tg: f64, joules: f64, load: f64| {
            serde_json::json!({
                "machine": {"cpu": "x"}, "threads": 2,
                "targets": [{
                    "name": "smol",
                    "fixed": {"generation_tokens_per_second": {"median": tg},
                              "energy": {"joules_per_generated_token": {"median": joules}}},
                    "load": [{"concurrency": 4, "generation_tokens_per_second": load}],
                }],
            })
        };
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(&a, report(100.0, 0.2, 150.0).to_string()).unwrap();
        std::fs::write(&b, report(120.0, 0.25, 150.0).to_string()).unwrap();
        let out = compare(&a, &b).unwrap();
        assert!(out.contains("smol"), "{out}");
        let line = |label: &str| out.lines().find(|l| l.trim_start().starts_with(label)).unwrap().to_string();
        assert!(line("tg tok/s").contains("1.200x  better"), "{out}");
        assert!(line("J/tok").contains("1.250x  worse"), "{out}");
        assert!(line("load 4 clients").ends_with("1.000x"), "{out}");
        std::fs::write(&b, "{}").unwrap();
        assert!(compare(&a, &b).is_err());
    }
}
