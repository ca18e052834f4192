//! `hearth eval MODEL --text FILE`: what a model (or a quantization of it) costs in
//! quality: its perplexity on a text, and with `--reference` its KL divergence from another
//! model's predictions, computed the way llama.cpp's perplexity tool does.

use crate::models;
use anyhow::{Context, Result};
use hearth_engine::quality::{self, QualitySettings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The model to evaluate: a name in the store or a GGUF file
    model: String,
    /// The text to score (plain UTF-8)
    #[arg(long)]
    text: PathBuf,
    /// A model to compare with (the unquantized parent, say): KL divergence and agreement
    #[arg(long)]
    reference: Option<String>,
    /// Tokens per chunk (llama.cpp's -c)
    #[arg(long, default_value_t = 512)]
    ctx: u32,
    /// Score at most this many chunks (llama.cpp's --chunks)
    #[arg(long)]
    chunks: Option<usize>,
    /// Threads; default: the physical cores
    #[arg(long)]
    threads: Option<u32>,
    /// Print the figures as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvalArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.text).with_context(|| format!("reading {}", args.text.display()))?;
    let settings = QualitySettings {
        chunk_tokens: args.ctx,
        max_chunks: args.chunks,
        threads: args.threads,
        ..Default::default()
    };
    let model = models::resolve(&args.model)?.path;
    let started = Instant::now();
    let Some(reference) = &args.reference else {
        let result = quality::perplexity(&model, &text, &settings)?;
        let seconds = started.elapsed().as_secs_f64();
        if args.json {
            let json = serde_json::json!({
                "model": args.model, "perplexity": result.perplexity, "uncertainty": result.uncertainty,
                "chunks": result.chunks, "tokens_scored": result.tokens_scored, "seconds": seconds,
            });
            println!("{json}");
        } else {
            println!(
                "{}: perplexity {:.4} ± {:.4} ({} chunks of {}, {} tokens scored, {seconds:.1} s)",
                args.model, result.perplexity, result.uncertainty, result.chunks, args.ctx, result.tokens_scored
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let reference_path = models::resolve(reference)?.path;
    let result = quality::divergence(&reference_path, &model, &text, &settings)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let json = serde_json::json!({
            "model": args.model, "reference": reference,
            "perplexity": result.model.perplexity, "uncertainty": result.model.uncertainty,
            "reference_perplexity": result.reference.perplexity, "reference_uncertainty": result.reference.uncertainty,
            "kl_divergence": result.kl_mean, "kl_uncertainty": result.kl_uncertainty, "kl_max": result.kl_max,
            "same_top_token": result.same_top_token, "chunks": result.model.chunks,
            "tokens_scored": result.model.tokens_scored, "seconds": seconds,
        });
        println!("{json}");
    } else {
        let ratio = result.model.perplexity / result.reference.perplexity;
        println!(
            "{}: perplexity {:.4} ± {:.4}, {:+.2}% against {reference} ({:.4} ± {:.4})",
            args.model,
            result.model.perplexity,
            result.model.uncertainty,
            (ratio - 1.0) * 100.0,
            result.reference.perplexity,
            result.reference.uncertainty
        );
        println!(
            "KL divergence {:.6} ± {:.6} nats per token (max {:.4}), same top token {:.2}% ({} chunks, {} tokens, {seconds:.1} s)",
            result.kl_mean,
            result.kl_uncertainty,
            result.kl_max,
            result.same_top_token * 100.0,
            result.model.chunks,
            result.model.tokens_scored
        );
    }
    Ok(ExitCode::SUCCESS)
}
