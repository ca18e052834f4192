//! `hearth fit [MODEL...]`: whether a model fits this machine and how fast it would run here,
//! before it is downloaded: this machine measured (memory, bandwidth, compute), each model's
//! needs from its GGUF header (read by range where it is remote), predicted speed and energy
//! calibrated by this machine's own bench history, and, with `--check`, the predictions
//! beside a real `hearth bench` run.

mod candidate;
mod check;
pub mod predict;

use crate::list::{columns, human_size};
use anyhow::{bail, Result};
use candidate::Candidate;
use hearth_core::KvType;
use hearth_engine::limits::MIN_CONTEXT_SIZE;
use hearth_engine::{estimate_memory, EngineSettings, MemoryEstimate, Verdict, DEFAULT_CONTEXT_SIZE};
use predict::{Calibration, ModelShape, Speed, Throughput};
use serde::Serialize;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct FitArgs {
    /// Models: names in the store, GGUF files, or anything `hearth pull` accepts (a URL,
    /// `hf.co/org/repo[:QUANT]`, an Ollama library name), read without downloading
    models: Vec<String>,
    /// Tokens of context per slot to size the KV cache for
    #[arg(short = 'c', long = "ctx-size", default_value_t = hearth_engine::DEFAULT_CONTEXT_SIZE)]
    context: u32,
    /// Slots (requests decoded together), each with its own context
    #[arg(long, default_value_t = 1)]
    parallel: u32,
    /// Tokens per batch during prompt processing
    #[arg(long, default_value_t = hearth_engine::DEFAULT_BATCH_SIZE)]
    batch_size: u32,
    /// Threads; default: the physical cores
    #[arg(short = 't', long)]
    threads: Option<u32>,
    /// The KV cache's type for keys and values: f16, q8_0 or q4_0
    #[arg(long, value_name = "TYPE", default_value = "f16", value_parser = crate::kv::kv_type)]
    kv_type: KvType,
    /// Talk plain HTTP to a registry (one on your own network)
    #[arg(long)]
    insecure: bool,
    /// Also run `hearth bench` on each local model and show predicted beside measured
    #[arg(long)]
    check: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// This machine, as `hearth fit` measured it just now.
#[derive(Debug, Serialize)]
pub struct ThisMachine {
    pub cpu: String,
    pub physical_cores: u32,
    pub logical_cores: usize,
    pub simd: Vec<String>,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    /// Memory a running `hearth serve` holds for its loaded models, which unloading frees.
    pub memory_held_by_server_bytes: u64,
    pub threads: u32,
    pub bandwidth_gb_s: f64,
    pub compute_gflops: f64,
    pub gpus: String,
    pub energy_meter: String,
}

#[derive(Debug, Serialize)]
pub struct Memory {
    pub weights: u64,
    pub kv_cache: u64,
    pub compute: u64,
    pub outputs: u64,
    pub overhead: u64,
    pub total: u64,
}

impl From<MemoryEstimate> for Memory {
    fn from(m: MemoryEstimate) -> Self {
        Self {
            weights: m.weights,
            kv_cache: m.kv_cache,
            compute: m.compute,
            outputs: m.outputs,
            overhead: m.overhead,
            total: m.total(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub context: u32,
    pub slots: u32,
    pub batch_size: u32,
    pub kv_cache_type: KvType,
}

/// One model's verdict; every speed and energy figure is `predicted`.
#[derive(Debug, Serialize)]
pub struct ModelFit {
    pub model: String,
    /// `file`, `store`, or the URL its header was read from.
    pub location: String,
    pub architecture: String,
    pub quantization: String,
    pub parameters: u64,
    pub bits_per_weight: f64,
    pub file_bytes: u64,
    pub trained_context: Option<u64>,
    /// Bytes read to learn all this (the header's).
    pub header_bytes_read: u64,
    /// The file whose header stood in for this one's (another quantization of the repository).
    pub header_of: Option<String>,
    pub settings: Settings,
    pub memory: Memory,
    pub verdict: Verdict,
    /// The most context per slot that fits in available memory.
    pub largest_context: Option<u32>,
    /// Context (up to 8192, as much as fits) and slots (up to 4) to run it with here.
    pub recommended_context: Option<u32>,
    pub recommended_slots: Option<u32>,
    pub predicted: Speed,
    pub recommendation: String,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: ThisMachine,
    models: Vec<ModelFit>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    check: Vec<check::Checked>,
}

pub fn run(args: FitArgs) -> Result<ExitCode> {
    if args.context == 0 || args.parallel == 0 || args.batch_size == 0 {
        bail!("--ctx-size, --parallel and --batch-size must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(hearth_engine::physical_cores).max(1);
    let groups = args.models.iter().map(|arg| candidate::resolve(arg, args.insecure)).collect::<Result<Vec<_>>>()?;
    let machine = this_machine(threads);
    let history = crate::history::read();
    let throughput = Throughput { bandwidth_gb_s: machine.bandwidth_gb_s, compute_gflops: machine.compute_gflops };
    let fallback_watts = f64::from(threads) * crate::energy::watts_per_core(&crate::energy::roots());
    let mut models = Vec::new();
    for group in &groups {
        let fits: Vec<ModelFit> = group
            .iter()
            .map(|candidate| {
                let calibration = calibration(&history, threads, candidate, args.kv_type);
                assess(candidate, &args, &machine, throughput, calibration.as_ref(), fallback_watts)
            })
            .collect::<Result<_>>()?;
        models.extend(recommend(fits, &machine));
    }
    let check = if args.check { check::run(&groups, &models, threads, args.kv_type)? } else { Vec::new() };
    let report = Report { machine, models, check };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// The history's verdict on other models than `candidate`, from runs with the same KV cache
/// type (a quantized cache runs at other speeds).
fn calibration(
    history: &[crate::history::BenchRecord],
    threads: u32,
    candidate: &Candidate,
    kv_type: KvType,
) -> Option<Calibration> {
    let info = candidate.header.model_info();
    Calibration::from_history(history, threads, |r| {
        r.kv_cache_type != kv_type.as_str() || r.same_model(&info.architecture, info.parameter_count, info.file_size)
    })
}

fn this_machine(threads: u32) -> ThisMachine {
    let bench = crate::bench::machine::Machine::this(threads);
    let total = hearth_engine::total_memory().unwrap_or(0);
    let held = crate::ps::call("GET", "/api/ps", None)
        .ok()
        .and_then(|reply| {
            reply["models"].as_array().map(|models| models.iter().filter_map(|m| m["size"].as_u64()).sum())
        })
        .unwrap_or(0);
    let energy = hearth_energy::detect(&crate::energy::roots(), crate::energy::watts_per_core_override())
        .map_or_else(|e| format!("none ({e})"), |d| d.description);
    ThisMachine {
        cpu: bench.cpu,
        physical_cores: bench.physical_cores,
        logical_cores: bench.logical_cores,
        simd: bench.simd,
        memory_total_bytes: total,
        memory_available_bytes: hearth_engine::available_memory().unwrap_or(0),
        memory_held_by_server_bytes: held,
        threads,
        bandwidth_gb_s: bench.memory_bandwidth_gb_s.unwrap_or(1.0),
        compute_gflops: bench.compute_gflops.unwrap_or(1.0),
        gpus: if hearth_engine::gpu_offload_available() {
            "a GPU backend is built in and found a device".into()
        } else {
            "none (this build runs on the CPU)".into()
        },
        energy_meter: energy,
    }
}

fn settings(context: u32, slots: u32, batch_size: u32, kv_type: KvType) -> EngineSettings {
    EngineSettings {
        context_size: Some(context),
        parallel: Some(slots),
        batch_size: Some(batch_size),
        kv_keys: Some(kv_type),
        kv_values: Some(kv_type),
        ..Default::default()
    }
}

fn assess(
    candidate: &Candidate,
    args: &FitArgs,
    machine: &ThisMachine,
    throughput: Throughput,
    calibration: Option<&Calibration>,
    fallback_watts: f64,
) -> Result<ModelFit> {
    let header = &candidate.header;
    let info = header.model_info();
    let trained = info.context_length.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let context = trained.map_or(args.context, |t| args.context.min(t));
    let memory = estimate_memory(header, &settings(context, args.parallel, args.batch_size, args.kv_type))?;
    let available = machine.memory_available_bytes;
    let verdict = Verdict::of(memory.total(), available, machine.memory_held_by_server_bytes);
    let needed_at = |context: u32, slots: u32| {
        estimate_memory(header, &settings(context, slots, args.batch_size, args.kv_type))
            .map_or(u64::MAX, |m| m.total())
    };
    let largest_context = largest(MIN_CONTEXT_SIZE, trained.unwrap_or(DEFAULT_CONTEXT_SIZE), |c| {
        needed_at(c, args.parallel) <= available
    });
    let recommended_context =
        largest_context.map(|most| most.min(trained.unwrap_or(u32::MAX).min(8192)).max(context.min(most)));
    let recommended_slots = recommended_context.and_then(|c| largest(1, 4, |n| needed_at(c, n) <= available));
    Ok(ModelFit {
        model: candidate.label.clone(),
        location: candidate.location.clone(),
        architecture: info.architecture.clone(),
        quantization: candidate.quantization.clone(),
        parameters: info.parameter_count,
        bits_per_weight: 8.0 * candidate.file_size() as f64 / info.parameter_count.max(1) as f64,
        file_bytes: candidate.file_size(),
        trained_context: info.context_length,
        header_bytes_read: candidate.bytes_read,
        header_of: candidate.header_of.clone(),
        settings: Settings { context, slots: args.parallel, batch_size: args.batch_size, kv_cache_type: args.kv_type },
        memory: memory.into(),
        verdict,
        largest_context,
        recommended_context,
        recommended_slots,
        predicted: predict::speed(
            &ModelShape::of(header),
            &candidate.quantization,
            throughput,
            calibration,
            fallback_watts,
        ),
        recommendation: String::new(),
    })
}

/// The largest value in `low..=high` for which `ok` holds, when `ok` holds up to some point
/// and not after (more context never needs less memory).
fn largest(low: u32, high: u32, ok: impl Fn(u32) -> bool) -> Option<u32> {
    if low > high || !ok(low) {
        return None;
    }
    let (mut good, mut bad) = (low, high.saturating_add(1));
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if ok(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(good)
}

/// Each candidate's recommendation, knowing its siblings (other quantizations of the same
/// repository), so one too large can point at one that fits.
fn recommend(mut fits: Vec<ModelFit>, machine: &ThisMachine) -> Vec<ModelFit> {
    let fitting: Vec<(String, f64)> = fits
        .iter()
        .filter(|f| f.verdict == Verdict::Fits)
        .map(|f| (f.quantization.clone(), f.bits_per_weight))
        .collect();
    for fit in &mut fits {
        let settings = &fit.settings;
        fit.recommendation = match (fit.verdict, fit.recommended_context, fit.recommended_slots) {
            (Verdict::Fits, Some(context), Some(slots)) => {
                format!("{} at {context} context, {slots} slot{}", fit.quantization, if slots == 1 { "" } else { "s" })
            }
            (Verdict::Fits, ..) => {
                format!("{} at {} context, {} slots", fit.quantization, settings.context, settings.slots)
            }
            (Verdict::FitsAfterUnloading, ..) => format!(
                "{} fits once the server's loaded models ({}) are unloaded",
                fit.quantization,
                human_size(machine.memory_held_by_server_bytes)
            ),
            (Verdict::DoesNotFit, ..) => match (fitting.first(), fit.largest_context) {
                (Some((quantization, bits)), _) => format!(
                    "too large: {quantization} fits, at {bits:.1} bits per weight instead of {:.1}",
                    fit.bits_per_weight
                ),
                (None, Some(context)) => {
                    format!("too large at {} context: fits at {context} at most", settings.context)
                }
                (None, None) => format!(
                    "too large: needs {}, {} available",
                    human_size(fit.memory.total),
                    human_size(machine.memory_available_bytes)
                ),
            },
        };
    }
    fits
}

fn table(report: &Report) -> String {
    let m = &report.machine;
    let gib = |bytes: u64| bytes as f64 / f64::from(1u32 << 30);
    let mut out = format!(
        "this machine: {}, {} cores ({} threads){}, {:.1} GiB memory, {:.1} GiB available\n",
        m.cpu,
        m.physical_cores,
        m.logical_cores,
        if m.simd.is_empty() { String::new() } else { format!(", {}", m.simd.join(" ")) },
        gib(m.memory_total_bytes),
        gib(m.memory_available_bytes),
    );
    out += &format!(
        "measured now with {} threads: {:.1} GB/s memory read, {:.1} GFLOP/s multiply-add\nGPUs: {}\nenergy: {}\n",
        m.threads, m.bandwidth_gb_s, m.compute_gflops, m.gpus, m.energy_meter
    );
    if report.models.is_empty() {
        return out;
    }
    let header = ["MODEL", "QUANT", "SIZE", "MEMORY", "FITS", "MAX CONTEXT", "PROMPT tok/s", "GEN tok/s", "J/tok"]
        .map(String::from)
        .to_vec();
    let mut rows = vec![header];
    for fit in &report.models {
        rows.push(vec![
            fit.model.clone(),
            fit.quantization.clone(),
            human_size(fit.file_bytes),
            human_size(fit.memory.total),
            match fit.verdict {
                Verdict::Fits => "yes".into(),
                Verdict::FitsAfterUnloading => "after unloading".into(),
                Verdict::DoesNotFit => "no".into(),
            },
            fit.largest_context.map_or_else(|| "-".into(), |c| c.to_string()),
            format!("{:.0}", fit.predicted.prompt_tokens_per_second),
            format!("{:.1}", fit.predicted.generation_tokens_per_second),
            format!("{:.3}", fit.predicted.joules_per_token),
        ]);
    }
    let first = &report.models[0];
    out += &format!(
        "\nmemory at {} context, {} slot(s), batch {}, {} KV cache; speeds and energy predicted\n",
        first.settings.context, first.settings.slots, first.settings.batch_size, first.settings.kv_cache_type
    );
    out += &columns(&rows);
    let one_basis = report.models.iter().all(|fit| fit.predicted.basis == first.predicted.basis);
    if one_basis {
        out += &format!("\npredicted from: {}\n", first.predicted.basis);
    } else {
        out.push('\n');
    }
    for fit in &report.models {
        out += &format!("{}: {}\n", fit.model, fit.recommendation);
        if !one_basis {
            out += &format!("  predicted from: {}\n", fit.predicted.basis);
        }
        if let Some(of) = &fit.header_of {
            out += &format!("  (shape read from the header of {of}; its own size from the listing)\n");
        }
    }
    if !report.check.is_empty() {
        out += &check::table(&report.check);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn largest_finds_the_edge() {
        assert_eq!(super::largest(1, 100, |c| c <= 37), Some(37));
        assert_eq!(super::largest(1, 100, |_| true), Some(100));
        assert_eq!(super::largest(1, 100, |_| false), None);
        assert_eq!(super::largest(1, u32::MAX, |c| c <= 5000), Some(5000));
    }
}
