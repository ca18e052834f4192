//! This machine's benchmark history (`~/.hearth/bench-history.jsonl`, `HEARTH_BENCH_HISTORY`):
//! one line per model `hearth bench` measured here, so `hearth fit` can calibrate its
//! predictions and `hearth cost` can use a measured energy per token. Append-only, one
//! `write` per line; lines that do not parse (a newer format, a torn write) are skipped.

use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

/// Lines kept: the file is rewritten with the newest ones when it grows past twice this.
const KEPT: usize = 1000;

/// One model's fixed-size run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The name it was benchmarked under.
    pub model: String,
    pub architecture: String,
    pub quantization: String,
    pub parameters: u64,
    pub file_bytes: u64,
    pub threads: u32,
    /// Transformer blocks, weight bytes read per generated token, and the multiply-adds
    /// (×2) of one prompt token: the shape `hearth fit` predicts from (0 in records
    /// written before hearth kept them).
    #[serde(default)]
    pub layers: u64,
    #[serde(default)]
    pub bytes_per_token: u64,
    #[serde(default)]
    pub flops_per_token: f64,
    pub context: u32,
    pub batch_size: u32,
    pub kv_cache_type: String,
    /// The machine's read bandwidth and compute throughput measured in the same run.
    pub bandwidth_gb_s: Option<f64>,
    #[serde(default)]
    pub compute_gflops: Option<f64>,
    pub prompt_tokens_per_second: f64,
    pub generation_tokens_per_second: f64,
    pub joules_per_token: Option<f64>,
    /// Average power while generating, W.
    pub watts: Option<f64>,
    /// `measured` or `estimated`, as the meter said.
    pub energy_source: Option<String>,
    pub peak_rss_bytes: Option<u64>,
}

impl BenchRecord {
    /// Whether `other` is the same model file (by what its header says, not its name).
    pub fn same_model(&self, architecture: &str, parameters: u64, file_bytes: u64) -> bool {
        self.architecture == architecture && self.parameters == parameters && self.file_bytes == file_bytes
    }
}

pub fn path() -> PathBuf {
    hearth_core::home::file("HEARTH_BENCH_HISTORY", "bench-history.jsonl")
}

/// Every record, oldest first; none when there is no history yet.
pub fn read() -> Vec<BenchRecord> {
    let Ok(text) = std::fs::read_to_string(path()) else { return Vec::new() };
    text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// Adds `records`; a history that cannot be written costs the benchmark nothing but a note.
pub fn append(records: &[BenchRecord]) {
    if records.is_empty() {
        return;
    }
    if let Err(e) = try_append(records) {
        eprintln!("note: the bench history {} was not updated: {e}", path().display());
    }
}

fn try_append(records: &[BenchRecord]) -> std::io::Result<()> {
    let path = path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    file.write_all(lines(records)?.as_bytes())?;
    drop(file);
    let all = read();
    if all.len() > 2 * KEPT {
        let temporary = path.with_extension("jsonl.tmp");
        std::fs::write(&temporary, lines(&all[all.len() - KEPT..])?)?;
        std::fs::rename(&temporary, &path)?;
    }
    Ok(())
}

/// `records` as JSON lines.
fn lines(records: &[BenchRecord]) -> std::io::Result<String> {
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    Ok(text)
}
