//! `hearth bench`: speed, latency, memory, energy and quality of models run here and of
//! servers reached over HTTP, on the same workloads in the same run. Workloads: fixed-size
//! runs as llama.cpp's llama-bench does them (`fixed`), real prompts (`prompts`) and a
//! serving load (`load`). Every repeated figure is the median with min and max.

mod compare;
mod endpoint;
pub(crate) mod fixed;
mod load;
pub(crate) mod machine;
mod meter;
// Its axis and text helpers also draw `hearth cost --plot`.
pub(crate) mod plot;
mod real;
mod report;
mod stats;
mod target;
mod workload;

use crate::models;
use anyhow::{bail, Context, Result};
use endpoint::Endpoint;
use fixed::{Fixed, Plan};
use hearth_core::{FlashAttention, KvCache, KvType};
use hearth_energy::EstimateScope;
use hearth_engine::quality::{self, QualitySettings};
use hearth_engine::{Engine, EngineSettings};
use indicatif::{ProgressBar, ProgressStyle};
use load::{Level, LoadLevel, LoadPlan};
use machine::Machine;
use meter::Meter;
use real::Real;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use target::{Local, Target};
use workload::RealPrompt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// -p prompt tokens and -n generated tokens at depth -d (llama-bench's workload)
    Fixed,
    /// Real chat, summarization and code prompts (built in, or --prompts FILE)
    Prompts,
    /// Concurrent clients (-c) or a Poisson arrival rate (--rate)
    Load,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Models to measure in this process: names in the store or GGUF files
    #[arg(required_unless_present_any = ["endpoint", "compare"])]
    models: Vec<String>,
    /// A server to measure, as [MODEL=]URL: a URL ending in /v1 speaks OpenAI's API (hearth,
    /// llama.cpp's server, vLLM), any other Ollama's; without MODEL, the first it lists. Repeatable
    #[arg(long, value_name = "[MODEL=]URL")]
    endpoint: Vec<String>,
    /// Workloads to run, comma-separated; default: fixed, plus prompts with --prompts and load
    /// with -c or --rate
    #[arg(short = 'w', long, value_delimiter = ',')]
    workload: Vec<Workload>,
    /// Prompt tokens per prompt-processing run
    #[arg(short = 'p', long, default_value_t = 512)]
    prompt: u32,
    /// Tokens generated per run (an upper bound for real prompts and the load)
    #[arg(short = 'n', long, default_value_t = 128)]
    generate: u32,
    /// Tokens already in the context before each fixed-size run
    #[arg(short = 'd', long, default_value_t = 0)]
    depth: u32,
    /// Repetitions of each run, after one warm-up
    #[arg(short = 'r', long, default_value_t = 3)]
    repetitions: usize,
    /// Threads; default: the physical cores
    #[arg(short = 't', long)]
    threads: Option<u32>,
    /// KV cache types to run each model with, comma-separated (f16, q8_0, q4_0): each type is
    /// a row of its own, to compare them in one run
    #[arg(long, value_name = "TYPES", value_delimiter = ',', value_parser = crate::kv::kv_type)]
    kv_type: Vec<KvType>,
    /// Flash attention: auto (llama.cpp decides; on for the CPU), on or off
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = crate::kv::flash_attention)]
    flash_attn: FlashAttention,
    /// A JSONL file of prompts ({"prompt": ...} or {"messages": [...]}, optional "kind")
    #[arg(long, value_name = "FILE")]
    prompts: Option<PathBuf>,
    /// Concurrent clients of the serving load, comma-separated levels
    #[arg(short = 'c', long, value_delimiter = ',')]
    concurrency: Vec<u32>,
    /// Poisson arrival rates of the serving load, requests per second, comma-separated
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// Requests per load level; default: 4 per client (at least 8), or 16 at a rate
    #[arg(long)]
    requests: Option<usize>,
    /// Seconds after which a load level sends no more requests
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// Also score each model's perplexity on this text (chunks of 512 tokens)
    #[arg(long, value_name = "FILE")]
    quality: Option<PathBuf>,
    /// With --quality: each model's KL divergence from this one (its parent, in practice)
    #[arg(long, requires = "quality")]
    reference: Option<String>,
    /// Chunks of the quality text to score
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    /// Print JSON instead of a table
    #[arg(long, conflicts_with_all = ["csv", "markdown"])]
    json: bool,
    /// Print CSV instead of a table
    #[arg(long, conflicts_with = "markdown")]
    csv: bool,
    /// Print Markdown tables
    #[arg(long)]
    markdown: bool,
    /// Draw energy against speed (and quality) as an SVG, with the Pareto front
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Print the ratios between two saved `--json` reports instead of measuring
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"], conflicts_with_all = ["models", "endpoint"])]
    compare: Vec<PathBuf>,
}

/// One model's or server's figures.
#[derive(Debug, Serialize)]
pub struct TargetResult {
    pub name: String,
    /// `model` (run in this process) or `endpoint`.
    pub kind: &'static str,
    pub url: Option<String>,
    pub model: Option<ModelFacts>,
    pub fixed: Option<Fixed>,
    pub prompts: Option<Real>,
    pub load: Vec<LoadLevel>,
    /// This process's peak resident memory while the model ran (models only).
    pub peak_rss_mib: Option<f64>,
    /// Power with nothing running, subtracted for the net energy figures.
    pub idle_watts: Option<f64>,
    pub perplexity: Option<Perplexity>,
    pub divergence: Option<Divergence>,
    /// The KV cache a model ran with (models only).
    pub kv_cache_type: Option<String>,
}

/// What a model in this process is.
#[derive(Debug, Serialize)]
pub struct ModelFacts {
    pub architecture: String,
    pub quantization: String,
    pub parameters: String,
    pub file_mib: f64,
    pub load_seconds: f64,
    /// Memory bandwidth over the weights' size: the generation speed reading every weight
    /// once per token allows.
    pub bandwidth_bound_tokens_per_second: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Perplexity {
    pub value: f64,
    pub uncertainty: f64,
    pub chunks: usize,
}

/// KL divergence from `--reference`, as llama.cpp's perplexity tool reports it.
#[derive(Debug, Serialize)]
pub struct Divergence {
    pub reference: String,
    pub kl_mean: f64,
    pub kl_uncertainty: f64,
    pub kl_max: f64,
    pub same_top_token: f64,
}

/// The whole run: the machine, the workloads and the targets' figures.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub workloads: Vec<Workload>,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub depth: u32,
    pub repetitions: usize,
    pub threads: u32,
    pub batch_size: u32,
    /// The caches the models ran with, comma-separated (`f16`, `q8_0/f16` when keys and
    /// values differ).
    pub kv_cache_type: String,
    pub flash_attention: FlashAttention,
    pub targets: Vec<TargetResult>,
}

/// What to run, settled from the arguments.
struct Settings {
    workloads: Vec<Workload>,
    plan: Plan,
    prompts: Vec<RealPrompt>,
    prompts_source: String,
    levels: Vec<Level>,
    threads: u32,
    batch_size: u32,
    /// Each model runs once per cache.
    kv_caches: Vec<KvCache>,
}

impl Settings {
    fn new(args: &BenchArgs) -> Result<Self> {
        if args.repetitions == 0 || args.generate == 0 || args.prompt == 0 {
            bail!("-p, -n and -r must be at least 1");
        }
        if args.concurrency.contains(&0) || args.rate.iter().any(|r| !r.is_finite() || *r <= 0.0) {
            bail!("-c and --rate take levels above 0");
        }
        let mut workloads = args.workload.clone();
        if workloads.is_empty() {
            workloads.push(Workload::Fixed);
            if args.prompts.is_some() {
                workloads.push(Workload::Prompts);
            }
            if !args.concurrency.is_empty() || !args.rate.is_empty() {
                workloads.push(Workload::Load);
            }
        }
        workloads.dedup();
        let (prompts, prompts_source) = match &args.prompts {
            Some(path) => (workload::from_jsonl(path)?, path.display().to_string()),
            None => (workload::built_in(), "built-in".to_string()),
        };
        let mut levels: Vec<Level> = args.concurrency.iter().map(|&c| Level::Concurrency(c)).collect();
        levels.extend(args.rate.iter().map(|&r| Level::Rate(r)));
        if workloads.contains(&Workload::Load) && levels.is_empty() {
            levels = vec![Level::Concurrency(1), Level::Concurrency(4)];
        }
        let plan =
            Plan { prompt: args.prompt, generate: args.generate, depth: args.depth, repetitions: args.repetitions };
        Ok(Self {
            workloads,
            plan,
            prompts,
            prompts_source,
            levels,
            threads: args.threads.unwrap_or_else(hearth_engine::physical_cores),
            batch_size: plan.batch_size(),
            kv_caches: kv_caches(&args.kv_type, args.flash_attn)?,
        })
    }

    fn runs(&self, workload: Workload) -> bool {
        self.workloads.contains(&workload)
    }

    /// Requests one target is sent, for the progress bar.
    fn requests(&self, args: &BenchArgs) -> u64 {
        let mut total = 0;
        if self.runs(Workload::Fixed) {
            total += self.plan.requests();
        }
        if self.runs(Workload::Prompts) {
            total += real::requests(&self.prompts, self.plan.repetitions);
        }
        if self.runs(Workload::Load) {
            total +=
                self.levels.iter().map(|l| args.requests.unwrap_or_else(|| l.default_requests()) as u64).sum::<u64>();
        }
        total
    }

    /// Engine settings for a model here, with `kv_cache`: slots for the most concurrent
    /// clients, each with room for the longest request.
    fn engine(&self, kv_cache: KvCache) -> EngineSettings {
        let mut slots = 1;
        let mut context = self.plan.context();
        if self.runs(Workload::Load) {
            let most = self.levels.iter().map(|l| if let Level::Concurrency(c) = l { *c } else { 4 }).max();
            slots = most.unwrap_or(1);
        }
        if self.runs(Workload::Prompts) || self.runs(Workload::Load) {
            context = context.max(2048 + self.plan.generate);
        }
        EngineSettings {
            threads: Some(self.threads),
            context_size: Some(context),
            batch_size: Some(self.batch_size),
            parallel: Some(slots),
            kv_keys: Some(kv_cache.keys),
            kv_values: Some(kv_cache.values),
            flash_attention: Some(kv_cache.flash_attention),
            ..Default::default()
        }
    }
}

/// The caches to compare: each type for keys and values alike (f16 when none is given),
/// checked before anything loads.
fn kv_caches(types: &[KvType], flash_attention: FlashAttention) -> Result<Vec<KvCache>> {
    let mut types = if types.is_empty() { vec![KvType::default()] } else { types.to_vec() };
    types.dedup();
    types
        .into_iter()
        .map(|kind| {
            let cache = KvCache { keys: kind, values: kind, flash_attention };
            cache.check().map_err(anyhow::Error::msg)?;
            Ok(cache)
        })
        .collect()
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    if let [before, after] = args.compare.as_slice() {
        print!("{}", compare::compare(before, after)?);
        return Ok(ExitCode::SUCCESS);
    }
    let settings = Settings::new(&args)?;
    let quality_text = match &args.quality {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let endpoints = args.endpoint.iter().map(|spec| Endpoint::open(spec)).collect::<Result<Vec<_>>>()?;
    let machine = Machine::this(settings.threads);
    let per_target = settings.requests(&args);
    let progress = ProgressBar::new(per_target * (args.models.len() + endpoints.len()) as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} requests, {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    // Speed first for every model, then quality: a long perplexity run left the next
    // model's generation measured at half its speed on this machine.
    let mut targets = Vec::new();
    let mut paths = Vec::new();
    let mut caches = Vec::new();
    let mut history = Vec::new();
    let models_and_caches = args
        .models
        .iter()
        .map(|name| models::resolve(name).map(|model| (name, model.path)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flat_map(|(name, path)| settings.kv_caches.iter().map(move |kv| (name, path.clone(), *kv)));
    for (name, path, kv_cache) in models_and_caches {
        let shown = shown_name(name, &path);
        progress.set_message(shown.clone());
        hearth_engine::reset_peak_resident_memory();
        let engine_settings = settings.engine(kv_cache);
        let engine = Engine::load(&path, &engine_settings)?;
        let info = engine.info().clone();
        let vocab = info.vocab_size.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        let facts = ModelFacts {
            architecture: info.architecture.clone(),
            quantization: info.quantization.clone(),
            parameters: info.parameter_size(),
            file_mib: info.file_size as f64 / f64::from(1u32 << 20),
            load_seconds: engine.load_duration().as_secs_f64(),
            bandwidth_bound_tokens_per_second: machine
                .memory_bandwidth_gb_s
                .map(|gb_s| gb_s * 1e9 / (info.file_size as f64).max(1.0)),
        };
        let local = Local { engine };
        let meter = Meter::new(crate::energy::scoped_meter(false, EstimateScope::Process));
        let mut result = measure(&local, vocab, meter, &settings, &args, &progress)?;
        let peak_rss = hearth_engine::peak_resident_memory();
        if let Some(fixed) = &result.fixed {
            let shape = crate::fit::predict::ModelShape::of(&hearth_engine::GgufHeader::read(&path)?);
            history.push(history_record(&shown, &info, shape, fixed, &engine_settings, &machine, peak_rss));
        }
        // Rows of one model with several caches are told apart by it.
        result.name = if settings.kv_caches.len() > 1 { format!("{shown} kv={}", kv_cache.label()) } else { shown };
        result.kind = "model";
        result.kv_cache_type = Some(kv_cache.label());
        result.model = Some(facts);
        result.peak_rss_mib = peak_rss.map(|b| b as f64 / f64::from(1u32 << 20));
        targets.push(result);
        paths.push(path);
        caches.push(kv_cache);
    }
    for endpoint in &endpoints {
        progress.set_message(endpoint.label());
        // A server here is another process: only a machine-wide meter sees what it spends.
        let meter = if endpoint.is_local() {
            Meter::new(crate::energy::scoped_meter(false, EstimateScope::Machine))
        } else {
            Meter::new(None)
        };
        let mut result = measure(endpoint, None, meter, &settings, &args, &progress)?;
        result.name = endpoint.label();
        result.kind = "endpoint";
        result.url = Some(endpoint.url.clone());
        targets.push(result);
    }
    progress.finish_and_clear();
    crate::history::append(&history);
    if let Some(text) = &quality_text {
        let reference = args.reference.as_deref().map(|name| models::resolve(name).map(|m| m.path)).transpose()?;
        let reference_name = args.reference.as_deref().zip(reference.as_deref()).map(|(n, p)| shown_name(n, p));
        for ((result, path), kv_cache) in targets.iter_mut().zip(&paths).zip(&caches) {
            eprintln!("quality: {}", result.name);
            let quality_settings = QualitySettings {
                chunk_tokens: 512,
                max_chunks: Some(args.chunks),
                threads: Some(settings.threads),
                kv_cache: *kv_cache,
            };
            let perplexity = match &reference {
                Some(reference) => {
                    let scored = quality::divergence(reference, path, text, &quality_settings)?;
                    result.divergence = Some(Divergence {
                        reference: reference_name.clone().unwrap_or_default(),
                        kl_mean: scored.kl_mean,
                        kl_uncertainty: scored.kl_uncertainty,
                        kl_max: scored.kl_max,
                        same_top_token: scored.same_top_token,
                    });
                    scored.model
                }
                None => quality::perplexity(path, text, &quality_settings)?,
            };
            result.perplexity = Some(Perplexity {
                value: perplexity.perplexity,
                uncertainty: perplexity.uncertainty,
                chunks: perplexity.chunks,
            });
        }
    }
    let report = Report {
        machine,
        workloads: settings.workloads.clone(),
        prompt_tokens: args.prompt,
        generated_tokens: args.generate,
        depth: args.depth,
        repetitions: args.repetitions,
        threads: settings.threads,
        batch_size: settings.batch_size,
        kv_cache_type: settings.kv_caches.iter().map(KvCache::label).collect::<Vec<_>>().join(","),
        flash_attention: args.flash_attn,
        targets,
    };
    if let Some(path) = &args.plot {
        std::fs::write(path, plot::svg(&report)).with_context(|| format!("writing {}", path.display()))?;
    }
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

/// What `hearth fit` and `hearth cost` keep of a model's fixed-size run.
fn history_record(
    name: &str,
    info: &hearth_core::ModelInfo,
    shape: crate::fit::predict::ModelShape,
    fixed: &Fixed,
    engine: &EngineSettings,
    machine: &Machine,
    peak_rss_bytes: Option<u64>,
) -> crate::history::BenchRecord {
    crate::history::BenchRecord {
        at: hearth_core::clock::unix_seconds(std::time::SystemTime::now()),
        model: name.to_string(),
        architecture: info.architecture.clone(),
        quantization: info.quantization.clone(),
        parameters: info.parameter_count,
        file_bytes: info.file_size,
        threads: engine.threads.unwrap_or(0),
        layers: shape.layers,
        bytes_per_token: shape.bytes_per_token,
        flops_per_token: shape.flops_per_token,
        context: engine.context_size.unwrap_or(0),
        batch_size: engine.batch_size.unwrap_or(0),
        kv_cache_type: engine.kv_cache().label(),
        bandwidth_gb_s: machine.memory_bandwidth_gb_s,
        compute_gflops: machine.compute_gflops,
        prompt_tokens_per_second: fixed.prompt_tokens_per_second.median,
        generation_tokens_per_second: fixed.generation_tokens_per_second.median,
        joules_per_token: fixed.energy.as_ref().map(|e| e.joules_per_generated_token.median),
        watts: fixed.energy.as_ref().map(|e| e.watts.median),
        energy_source: fixed.energy.as_ref().map(|e| e.source.to_string()),
        peak_rss_bytes,
    }
}

/// How a model is named in the report: a file by its file name, a model of the store by the
/// name it was given.
fn shown_name(name: &str, path: &Path) -> String {
    if Path::new(name).is_file() {
        path.file_name().map_or(name.to_string(), |f| f.to_string_lossy().into_owned())
    } else {
        name.to_string()
    }
}

/// Runs the chosen workloads on one target.
fn measure(
    target: &dyn Target,
    vocab: Option<u32>,
    mut meter: Meter,
    settings: &Settings,
    args: &BenchArgs,
    progress: &ProgressBar,
) -> Result<TargetResult> {
    meter.measure_idle(Duration::from_secs(1));
    let fixed = if settings.runs(Workload::Fixed) {
        Some(fixed::measure(target, &settings.plan, vocab, &mut meter, progress)?)
    } else {
        None
    };
    let prompts = if settings.runs(Workload::Prompts) {
        let source = &settings.prompts_source;
        let (generate, repetitions) = (settings.plan.generate, settings.plan.repetitions);
        Some(real::measure(target, &settings.prompts, source, generate, repetitions, &mut meter, progress)?)
    } else {
        None
    };
    let mut levels = Vec::new();
    if settings.runs(Workload::Load) {
        let plan = LoadPlan {
            prompts: &settings.prompts,
            generate: settings.plan.generate,
            requests: args.requests,
            duration: Duration::from_secs(args.duration),
        };
        for (index, level) in settings.levels.iter().enumerate() {
            // Nonces differ across levels, so no level finds another's prompts cached.
            let nonce = 1_000_000 * (index as u64 + 1);
            levels.push(load::measure(target, *level, &plan, nonce, &mut meter, progress));
        }
    }
    Ok(TargetResult {
        name: String::new(),
        kind: "",
        url: None,
        model: None,
        fixed,
        prompts,
        load: levels,
        peak_rss_mib: None,
        idle_watts: meter.idle_watts,
        perplexity: None,
        divergence: None,
        kv_cache_type: None,
    })
}
