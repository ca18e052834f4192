//! Measures the engine the way llama.cpp's `llama-bench -p P -n N` does, so the two can be
//! compared side by side (bench/engine.sh): prompt processing of P random tokens on an empty
//! cache, and generation of N tokens from an empty cache, each repeated after a warm-up.
//!
//! Usage: engine_bench MODEL [-p 512] [-n 128] [-t THREADS] [-r 5]

use hearth_core::{GenerateRequest, Prompt, SamplingParams, StreamEvent, Timings, Usage};
use hearth_engine::workload::random_tokens;
use hearth_engine::{Engine, EngineSettings};
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    model: PathBuf,
    prompt: u32,
    generate: u32,
    threads: Option<u32>,
    repetitions: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args { model: PathBuf::new(), prompt: 512, generate: 128, threads: None, repetitions: 5 };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "-p" => parsed.prompt = value()?.parse().map_err(|e| format!("-p: {e}"))?,
            "-n" => parsed.generate = value()?.parse().map_err(|e| format!("-n: {e}"))?,
            "-t" => parsed.threads = Some(value()?.parse().map_err(|e| format!("-t: {e}"))?),
            "-r" => parsed.repetitions = value()?.parse().map_err(|e| format!("-r: {e}"))?,
            _ if parsed.model.as_os_str().is_empty() => parsed.model = PathBuf::from(arg),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    if parsed.model.as_os_str().is_empty() {
        return Err("usage: engine_bench MODEL [-p 512] [-n 128] [-t THREADS] [-r 5]".into());
    }
    Ok(parsed)
}

fn run(engine: &Engine, tokens: Vec<u32>, generate: u32) -> Result<(Usage, Timings), String> {
    let sampling = SamplingParams { max_tokens: Some(generate), ignore_eos: true, ..SamplingParams::greedy() };
    let request = GenerateRequest::new(Prompt::Tokens(tokens), sampling);
    for event in engine.generate(request).iter() {
        match event {
            StreamEvent::Token(_) | StreamEvent::Logprob(_) => {}
            StreamEvent::Done { usage, timings, .. } => return Ok((usage, timings)),
            StreamEvent::Error(e) => return Err(e.to_string()),
        }
    }
    Err("the engine stopped".into())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> ExitCode {
    match bench() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench() -> Result<(), String> {
    let args = parse_args()?;
    let settings = EngineSettings {
        threads: args.threads,
        context_size: Some((args.prompt + args.generate + 8).max(512)),
        batch_size: Some(args.prompt.clamp(1, 2048)),
        ..Default::default()
    };
    let engine = Engine::load(&args.model, &settings).map_err(|e| e.to_string())?;
    let vocab = u32::try_from(engine.info().vocab_size.ok_or("the model has no vocabulary size")?).unwrap_or(u32::MAX);

    // Warm-up, as llama-bench does: first touches of the weights and buffers are not counted.
    run(&engine, random_tokens(args.prompt.min(32), vocab, 1), 2)?;

    let mut prompt_rates = Vec::new();
    let mut generation_rates = Vec::new();
    for rep in 0..args.repetitions as u64 {
        // Prompt processing: P tokens, one token sampled.
        let (usage, timings) = run(&engine, random_tokens(args.prompt, vocab, 100 + rep), 1)?;
        prompt_rates.push(timings.prompt_tokens_per_second(&usage).ok_or("no prompt timing")?);
        // Generation: one prompt token, then N tokens decoded one at a time. The first
        // sampled token comes from the prompt pass, so N + 1 are sampled to time N decodes.
        let (usage, timings) = run(&engine, random_tokens(1, vocab, 200 + rep), args.generate + 1)?;
        generation_rates.push(timings.generation_tokens_per_second(&usage).ok_or("no generation timing")?);
    }
    let settings = engine.settings();
    println!(
        "model={} threads={} pp{}={:.1} tg{}={:.1}",
        args.model.display(),
        settings.threads,
        args.prompt,
        median(prompt_rates),
        args.generate,
        median(generation_rates)
    );
    Ok(())
}
