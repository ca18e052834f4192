//! `hearth quantize MODEL OUTPUT --type Q4_K_M`: a smaller (or larger) copy of a model with
//! its weights in another type, made by llama.cpp's quantizer; `hearth eval --reference` and
//! `hearth bench --reference` then measure what it costs.

use crate::models;
use anyhow::Result;
use hearth_engine::quantize::{quantize, QUANT_TYPES};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// The model to quantize: a name in the store or a GGUF file (F16/BF16/F32 ideally)
    model: String,
    /// The GGUF file to write
    output: PathBuf,
    /// The type to write: F16, BF16, Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q5_1, Q5_0, Q4_K_M, Q4_K_S,
    /// Q4_1, Q4_0, Q3_K_L, Q3_K_M, Q3_K_S, Q2_K, IQ4_NL or IQ4_XS
    #[arg(long = "type", short = 'q', value_name = "TYPE")]
    kind: String,
    /// Threads; default: all cores
    #[arg(short = 't', long)]
    threads: Option<u32>,
}

pub fn run(args: QuantizeArgs) -> Result<ExitCode> {
    if !QUANT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(&args.kind)) {
        anyhow::bail!("unknown quantization {:?}; one of {}", args.kind, QUANT_TYPES.join(", "));
    }
    let source = models::resolve(&args.model)?.path;
    let done = quantize(&source, &args.output, &args.kind, args.threads)?;
    let mib = |bytes: u64| bytes as f64 / f64::from(1u32 << 20);
    println!(
        "{} {} ({:.1} MiB) -> {} {} ({:.1} MiB, {:.0}%) in {:.1}s",
        args.model,
        done.source_type,
        mib(done.source_bytes),
        args.output.display(),
        done.target_type,
        mib(done.output_bytes),
        100.0 * done.output_bytes as f64 / done.source_bytes.max(1) as f64,
        done.seconds
    );
    if done.requantized {
        eprintln!(
            "note: the source is already {}; the result cannot be better than it. Quantize from F16 or BF16 where you can.",
            done.source_type
        );
    }
    Ok(ExitCode::SUCCESS)
}
