//! `hearth bench MODEL...`: speed, latency, memory, energy and (with `--quality`) quality of
//! each model on the same fixed-size workload, the way llama.cpp's llama-bench measures
//! speed: `-p` random prompt tokens from an empty cache, and `-n` tokens generated from an
//! empty cache, each repeated `-r` times after a warm-up; every figure is the median with
//! min and max over the repetitions.

mod machine;
mod report;
mod stats;
mod workload;

use crate::models;
use anyhow::{bail, Context, Result};
use hearth_core::{EnergyReport, GenerateRequest, Prompt, SamplingParams, StreamEvent, Timings, Usage};
use hearth_engine::quality::{self, QualitySettings};
use hearth_engine::{Engine, EngineSettings};
use machine::Machine;
use serde::Serialize;
use stats::{percentile, Spread};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use workload::random_tokens;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Models to measure: names in the store or GGUF files
    #[arg(required = true)]
    models: Vec<String>,
    /// Prompt tokens per prompt-processing run
    #[arg(short = 'p', long, default_value_t = 512)]
    prompt: u32,
    /// Tokens generated per generation run
    #[arg(short = 'n', long, default_value_t = 128)]
    generate: u32,
    /// Repetitions of each run, after one warm-up
    #[arg(short = 'r', long, default_value_t = 3)]
    repetitions: usize,
    /// Threads; default: the physical cores
    #[arg(short = 't', long)]
    threads: Option<u32>,
    /// Also score each model's perplexity on this text (chunks of 512 tokens)
    #[arg(long)]
    quality: Option<PathBuf>,
    /// Chunks of the quality text to score
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    /// Print JSON instead of a table
    #[arg(long, conflicts_with_all = ["csv", "markdown"])]
    json: bool,
    /// Print CSV instead of a table
    #[arg(long, conflicts_with = "markdown")]
    csv: bool,
    /// Print a Markdown table
    #[arg(long)]
    markdown: bool,
}

/// One model's figures.
#[derive(Debug, Serialize)]
pub struct ModelResult {
    pub model: String,
    pub architecture: String,
    pub quantization: String,
    pub parameters: String,
    pub file_mib: f64,
    pub load_seconds: f64,
    pub prompt_tokens_per_second: Spread,
    pub generation_tokens_per_second: Spread,
    /// Time to first token of a prompt-processing run (the whole prompt, cold cache).
    pub ttft_ms: Spread,
    pub inter_token_ms: Latencies,
    pub peak_rss_mib: Option<f64>,
    pub energy: Option<Energy>,
    pub perplexity: Option<Perplexity>,
    /// Every measured run, for checking the figures above or computing others.
    pub runs: Vec<RunRecord>,
}

#[derive(Debug, Serialize)]
pub struct RunRecord {
    /// `prompt` (tokens processed) or `generation` (tokens decoded after the first).
    pub kind: &'static str,
    pub tokens: u32,
    pub seconds: f64,
    pub tokens_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct Latencies {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Energy of the generation runs.
#[derive(Debug, Serialize)]
pub struct Energy {
    pub joules_per_generated_token: Spread,
    pub wh_per_1000_tokens: Spread,
    pub watts: Spread,
    /// Joules per generated token above the idle baseline, once it is known.
    pub net_joules_per_generated_token: Option<Spread>,
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Perplexity {
    pub value: f64,
    pub uncertainty: f64,
    pub chunks: usize,
}

/// The whole run: the machine, the workload and the models' figures.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub repetitions: usize,
    pub threads: u32,
    pub batch_size: u32,
    pub kv_cache_type: &'static str,
    pub models: Vec<ModelResult>,
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.repetitions == 0 || args.generate == 0 || args.prompt == 0 {
        bail!("-p, -n and -r must be at least 1");
    }
    let quality_text = match &args.quality {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let threads = args.threads.unwrap_or_else(hearth_engine::physical_cores);
    let batch_size = args.prompt.clamp(1, 2048);
    // Speed first for every model, then quality: a long perplexity run left the next
    // model's generation measured at half its speed on this machine.
    let mut results = Vec::new();
    let mut paths = Vec::new();
    for (index, name) in args.models.iter().enumerate() {
        eprintln!("[{}/{}] {name}", index + 1, args.models.len());
        let path = models::resolve(name)?.path;
        // A file is shown by its name; a model of the store by the name it was given.
        let shown = if std::path::Path::new(name).is_file() {
            path.file_name().map_or(name.clone(), |f| f.to_string_lossy().into_owned())
        } else {
            name.clone()
        };
        results.push(measure(&shown, &path, &args, threads, batch_size)?);
        paths.push(path);
    }
    if let Some(text) = &quality_text {
        for (result, path) in results.iter_mut().zip(&paths) {
            eprintln!("quality: {}", result.model);
            let settings = QualitySettings { chunk_tokens: 512, max_chunks: Some(args.chunks), threads: Some(threads) };
            let scored = quality::perplexity(path, text, &settings)?;
            result.perplexity =
                Some(Perplexity { value: scored.perplexity, uncertainty: scored.uncertainty, chunks: scored.chunks });
        }
    }
    let report = Report {
        machine: Machine::this(),
        prompt_tokens: args.prompt,
        generated_tokens: args.generate,
        repetitions: args.repetitions,
        threads,
        batch_size,
        kv_cache_type: "f16",
        models: results,
    };
    let out = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else if args.csv {
        report::csv(&report)
    } else if args.markdown {
        report::markdown(&report)
    } else {
        report::table(&report)
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// What one run gives back: counts, the engine's timings, energy, and the gaps between
/// tokens as they arrived.
struct Run {
    usage: Usage,
    timings: Timings,
    energy: Option<EnergyReport>,
    gaps_ms: Vec<f64>,
}

fn one_run(engine: &Engine, tokens: Vec<u32>, generate: u32) -> Result<Run> {
    let sampling = SamplingParams { max_tokens: Some(generate), ignore_eos: true, ..SamplingParams::greedy() };
    let events = engine.generate(GenerateRequest::new(Prompt::Tokens(tokens), sampling));
    let mut gaps_ms = Vec::new();
    let mut last: Option<Instant> = None;
    for event in events.iter() {
        match event {
            StreamEvent::Token(_) => {
                let now = Instant::now();
                if let Some(then) = last {
                    gaps_ms.push((now - then).as_secs_f64() * 1e3);
                }
                last = Some(now);
            }
            StreamEvent::Logprob(_) => {}
            StreamEvent::Done { usage, timings, energy, .. } => return Ok(Run { usage, timings, energy, gaps_ms }),
            StreamEvent::Error(e) => bail!(e),
        }
    }
    bail!("the engine stopped")
}

fn measure(name: &str, path: &std::path::Path, args: &BenchArgs, threads: u32, batch_size: u32) -> Result<ModelResult> {
    let settings = EngineSettings {
        threads: Some(threads),
        context_size: Some((args.prompt + args.generate + 8).max(512)),
        batch_size: Some(batch_size),
        ..Default::default()
    };
    let engine = Engine::load_metered(path, &settings, crate::energy::meter(false))?;
    let info = engine.info().clone();
    let vocab = u32::try_from(info.vocab_size.context("the model has no vocabulary size")?).unwrap_or(u32::MAX);
    // Warm-up: first touches of the weights and buffers are not counted.
    one_run(&engine, random_tokens(args.prompt.min(32), vocab, 1), 2)?;
    let (mut prompt_rates, mut generation_rates, mut ttft) = (Vec::new(), Vec::new(), Vec::new());
    let (mut gaps, mut joules_per_token, mut wh, mut watts, mut net) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut source = None;
    let mut runs = Vec::new();
    for rep in 0..args.repetitions as u64 {
        let prompt_run = one_run(&engine, random_tokens(args.prompt, vocab, 100 + rep), 1)?;
        let rate = prompt_run.timings.prompt_tokens_per_second(&prompt_run.usage).context("no prompt timing")?;
        prompt_rates.push(rate);
        let tokens = prompt_run.usage.prompt_tokens - prompt_run.usage.cached_prompt_tokens;
        let seconds = prompt_run.timings.prompt_eval.as_secs_f64();
        runs.push(RunRecord { kind: "prompt", tokens, seconds, tokens_per_second: rate });
        ttft.push(prompt_run.timings.time_to_first_token.as_secs_f64() * 1e3);
        // One prompt token, then N decoded one at a time: N + 1 sampled times N decodes.
        let generation = one_run(&engine, random_tokens(1, vocab, 200 + rep), args.generate + 1)?;
        let rate =
            generation.timings.generation_tokens_per_second(&generation.usage).context("no generation timing")?;
        generation_rates.push(rate);
        let tokens = generation.usage.completion_tokens - 1;
        let seconds = generation.timings.eval.as_secs_f64();
        runs.push(RunRecord { kind: "generation", tokens, seconds, tokens_per_second: rate });
        gaps.extend(generation.gaps_ms);
        if let Some(energy) = generation.energy {
            let tokens = generation.usage.completion_tokens;
            if let Some(j) = energy.joules_per_generated_token(tokens) {
                joules_per_token.push(j);
                wh.push(j * 1000.0 / 3600.0);
            }
            watts.extend(energy.average_watts());
            if let Some(n) = energy.net_joules() {
                net.push(n / f64::from(tokens.max(1)));
            }
            source = Some(energy.source.as_str());
        }
    }
    let spread = |values: &[f64]| Spread::of(values).expect("at least one repetition");
    let energy = source.map(|source| Energy {
        joules_per_generated_token: spread(&joules_per_token),
        wh_per_1000_tokens: spread(&wh),
        watts: spread(&watts),
        net_joules_per_generated_token: Spread::of(&net),
        source,
    });
    Ok(ModelResult {
        model: name.to_string(),
        architecture: info.architecture.clone(),
        quantization: info.quantization.clone(),
        parameters: info.parameter_size(),
        file_mib: info.file_size as f64 / (1 << 20) as f64,
        load_seconds: engine.load_duration().as_secs_f64(),
        prompt_tokens_per_second: spread(&prompt_rates),
        generation_tokens_per_second: spread(&generation_rates),
        ttft_ms: spread(&ttft),
        inter_token_ms: Latencies {
            p50: percentile(&gaps, 50.0).unwrap_or(0.0),
            p95: percentile(&gaps, 95.0).unwrap_or(0.0),
            p99: percentile(&gaps, 99.0).unwrap_or(0.0),
        },
        peak_rss_mib: hearth_engine::peak_resident_memory().map(|bytes| bytes as f64 / f64::from(1u32 << 20)),
        energy,
        perplexity: None,
        runs,
    })
}
