//! `hearth fit --check`: each local model's predictions beside a real `hearth bench` run of
//! it (this same binary, so the bench is the one users run): generation and prompt speed,
//! energy per token, and the memory estimate beside the buffers llama.cpp itself reports
//! when it loads the model.

use super::candidate::Candidate;
use super::{settings, ModelFit};
use crate::bench::fixed::Plan;
use crate::list::columns;
use anyhow::{bail, Context, Result};
use hearth_core::KvType;
use serde::{Deserialize, Serialize};
use std::process::Command;

/// The bench's fixed-size workload, at its defaults: 512 prompt tokens, 128 generated.
const PROMPT: u32 = 512;
const GENERATE: u32 = 128;

#[derive(Debug, Serialize)]
pub struct Checked {
    pub model: String,
    pub generation: Pair,
    pub prompt: Pair,
    pub joules_per_token: Option<Pair>,
    pub energy_source: Option<String>,
    /// The estimate's buffers (weights, KV cache, compute, outputs) beside the sum of the
    /// buffer sizes llama.cpp logged, at the bench's settings.
    pub memory_buffers_bytes: Option<Pair>,
    /// The bench process's peak resident memory, for reference: below the estimate, because
    /// pages of the buffers a short run never touches are never resident.
    pub peak_resident_bytes: Option<u64>,
}

/// A prediction and what was measured, with the prediction's error in percent of the
/// measured value.
#[derive(Debug, Serialize)]
pub struct Pair {
    pub predicted: f64,
    pub measured: f64,
    pub error_percent: f64,
}

impl Pair {
    fn new(predicted: f64, measured: f64) -> Self {
        Self { predicted, measured, error_percent: 100.0 * (predicted - measured) / measured }
    }
}

/// What this check reads of `hearth bench --json`.
#[derive(Deserialize)]
struct BenchReport {
    targets: Vec<BenchTarget>,
}

#[derive(Deserialize)]
struct BenchTarget {
    fixed: Option<BenchFixed>,
    peak_rss_mib: Option<f64>,
}

#[derive(Deserialize)]
struct BenchFixed {
    prompt_tokens_per_second: Median,
    generation_tokens_per_second: Median,
    energy: Option<BenchEnergy>,
}

#[derive(Deserialize)]
struct BenchEnergy {
    joules_per_generated_token: Median,
    source: String,
}

#[derive(Deserialize)]
struct Median {
    median: f64,
}

pub fn run(groups: &[Vec<Candidate>], fits: &[ModelFit], threads: u32, kv_type: KvType) -> Result<Vec<Checked>> {
    let mut checked = Vec::new();
    for (candidate, fit) in groups.iter().flatten().zip(fits) {
        let Some(path) = &candidate.path else {
            bail!("--check runs the model, so it must be on this machine: `hearth pull {}` first", candidate.label);
        };
        eprintln!(
            "checking {}: hearth bench -p {PROMPT} -n {GENERATE} -t {threads} --kv-type {kv_type}",
            candidate.label
        );
        let output = Command::new(std::env::current_exe()?)
            .args([
                "bench",
                "--json",
                "-p",
                &PROMPT.to_string(),
                "-n",
                &GENERATE.to_string(),
                "-t",
                &threads.to_string(),
                "--kv-type",
                kv_type.as_str(),
            ])
            .arg(path)
            .env("HEARTH_LOG", "llama_cpp=debug")
            .output()
            .context("running hearth bench")?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("hearth bench failed: {}", log.lines().last().unwrap_or_default());
        }
        let report: BenchReport =
            serde_json::from_slice(&output.stdout).context("reading hearth bench's JSON report")?;
        let target = report.targets.into_iter().next().context("hearth bench reported no model")?;
        let fixed = target.fixed.context("hearth bench ran no fixed-size workload")?;
        // At the settings the bench sized for its workload, in one slot.
        let plan = Plan { prompt: PROMPT, generate: GENERATE, depth: 0, repetitions: 1 };
        let memory = hearth_engine::estimate_memory(
            &candidate.header,
            &settings(plan.context(), 1, plan.batch_size(), kv_type),
        )?;
        let reported = llama_cpp_buffers(&log);
        checked.push(Checked {
            model: candidate.label.clone(),
            generation: Pair::new(
                fit.predicted.generation_tokens_per_second,
                fixed.generation_tokens_per_second.median,
            ),
            prompt: Pair::new(fit.predicted.prompt_tokens_per_second, fixed.prompt_tokens_per_second.median),
            joules_per_token: fixed
                .energy
                .as_ref()
                .map(|e| Pair::new(fit.predicted.joules_per_token, e.joules_per_generated_token.median)),
            energy_source: fixed.energy.map(|e| e.source),
            memory_buffers_bytes: (reported > 0).then(|| Pair::new(memory.buffers() as f64, reported as f64)),
            peak_resident_bytes: target.peak_rss_mib.map(|mib| (mib * 1048576.0) as u64),
        });
    }
    Ok(checked)
}

/// The sum of the `... buffer size = N MiB` lines llama.cpp logs as it loads a model
/// (weights, repacked weights, KV caches, outputs, compute), in bytes.
fn llama_cpp_buffers(log: &str) -> u64 {
    log.lines()
        .filter_map(|line| line.split_once("buffer size =").map(|(_, rest)| rest))
        .filter_map(|rest| rest.trim().strip_suffix("MiB")?.trim().parse::<f64>().ok())
        .map(|mib| (mib * 1048576.0) as u64)
        .sum()
}

pub fn table(checked: &[Checked]) -> String {
    let mut rows = vec![["MODEL", "FIGURE", "PREDICTED", "MEASURED", "ERROR"].map(String::from).to_vec()];
    let mib = |bytes: f64| format!("{:.1} MiB", bytes / 1048576.0);
    for check in checked {
        let mut row = |figure: &str, pair: &Pair, shown: &dyn Fn(f64) -> String| {
            rows.push(vec![
                check.model.clone(),
                figure.to_string(),
                shown(pair.predicted),
                shown(pair.measured),
                format!("{:+.1}%", pair.error_percent),
            ]);
        };
        row("generation tok/s", &check.generation, &|v| format!("{v:.1}"));
        row("prompt tok/s", &check.prompt, &|v| format!("{v:.0}"));
        if let Some(pair) = &check.joules_per_token {
            let source = check.energy_source.as_deref().unwrap_or("estimated");
            row(&format!("J/token ({source})"), pair, &|v| format!("{v:.3}"));
        }
        if let Some(pair) = &check.memory_buffers_bytes {
            row("memory: llama.cpp's buffers", pair, &mib);
        }
        if let Some(bytes) = check.peak_resident_bytes {
            let untouched = "(buffers not all touched)".to_string();
            rows.push(vec![
                check.model.clone(),
                "memory: peak resident".into(),
                "-".into(),
                mib(bytes as f64),
                untouched,
            ]);
        }
    }
    format!(
        "\ncheck: predicted (before the run, from other models' history) beside hearth bench -p {PROMPT} -n {GENERATE}\n{}",
        columns(&rows)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn buffer_lines_are_summed() {
        let log = "x load_tensors:   CPU_Mapped model buffer size =    92.10 MiB\n\
                   y llama_context:        CPU  output buffer size =     0.19 MiB\n\
                   z llama_kv_cache: size =   12.00 MiB (  4096 cells)\n\
                   w sched_reserve:        CPU compute buffer size =   106.77 MiB\n";
        let expected = ((92.10 * 1048576.0) as u64) + ((0.19 * 1048576.0) as u64) + ((106.77 * 1048576.0) as u64);
        assert_eq!(super::llama_cpp_buffers(log), expected);
    }
}
