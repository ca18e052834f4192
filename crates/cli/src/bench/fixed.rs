//! The fixed-size workload, as llama-bench runs it: `-p` prompt tokens processed, and `-n`
//! tokens generated after a one-token prompt, both on top of `-d` tokens already in the cache
//! (context depth), each repeated `-r` times after a warm-up. The same prompt sent again
//! gives the warm time to first token.

use super::meter::{Energy, Meter};
use super::stats::{Latencies, Spread};
use super::target::{Answer, Ask, Input, Target};
use super::workload::{random_tokens, random_words};
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde::Serialize;

/// The sizes of the workload.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub prompt: u32,
    pub generate: u32,
    pub depth: u32,
    pub repetitions: usize,
}

impl Plan {
    /// Context a model needs for this workload: the depth, the prompt, the answer and a
    /// margin, and never under 512.
    pub fn context(&self) -> u32 {
        (self.depth + self.prompt + self.generate + 8).max(512)
    }

    /// Tokens per batch: the whole prompt at once, up to 2048.
    pub fn batch_size(&self) -> u32 {
        self.prompt.clamp(1, 2048)
    }

    /// Requests one target sends, warm-up included, for the progress bar.
    pub fn requests(&self) -> u64 {
        1 + self.repetitions as u64 * (3 + u64::from(self.depth > 0))
    }
}

#[derive(Debug, Serialize)]
pub struct Fixed {
    pub prompt_tokens_per_second: Spread,
    pub generation_tokens_per_second: Spread,
    /// Time to first token of a prompt run: the whole prompt processed (after the depth).
    pub ttft_ms: Spread,
    /// Time to first token of the same prompt sent again, from the target's cache.
    pub warm_ttft_ms: Spread,
    pub inter_token_ms: Latencies,
    pub energy: Option<Energy>,
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

/// Synthetic prompts: token ids for a model here (`vocab` known), words for a server.
fn input(vocab: Option<u32>, prefix: &Input, count: u32, seed: u64) -> Input {
    match (vocab, prefix) {
        (Some(vocab), Input::Tokens(before)) => {
            Input::Tokens(before.iter().copied().chain(random_tokens(count, vocab, seed)).collect())
        }
        (_, Input::Text(before)) if !before.is_empty() => {
            Input::Text(format!("{before} {}", random_words(count, seed)))
        }
        _ => Input::Text(random_words(count, seed)),
    }
}

pub fn measure(
    target: &dyn Target,
    plan: &Plan,
    vocab: Option<u32>,
    meter: &mut Meter,
    progress: &ProgressBar,
) -> Result<Fixed> {
    let ask = |input: Input, max_tokens: u32| -> Result<Answer> {
        let answer = target.ask(&Ask { input, max_tokens, ignore_eos: true });
        progress.inc(1);
        answer
    };
    let empty = if vocab.is_some() { Input::Tokens(Vec::new()) } else { Input::Text(String::new()) };
    // Warm-up: first touches of the weights and buffers are not counted.
    ask(input(vocab, &empty, plan.prompt.min(32), 1), 2)?;
    let (mut prompt_rates, mut generation_rates, mut ttft, mut warm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut gaps, mut windows, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..plan.repetitions as u64 {
        let prefix = if plan.depth > 0 {
            let prefix = input(vocab, &empty, plan.depth, 300 + rep);
            ask(prefix.clone(), 1)?;
            prefix
        } else {
            empty.clone()
        };
        let prompt = input(vocab, &prefix, plan.prompt, 100 + rep);
        let prompt_run = ask(prompt.clone(), 1)?;
        let rate = prompt_run.prompt_rate().context("the target reported no prompt tokens")?;
        prompt_rates.push(rate);
        let (tokens, seconds) = (prompt_run.processed_tokens().unwrap_or(0), prompt_run.prompt_seconds());
        runs.push(RunRecord { kind: "prompt", tokens, seconds, tokens_per_second: rate });
        ttft.push(prompt_run.ttft * 1e3);
        warm.push(ask(prompt, 1)?.ttft * 1e3);
        // One prompt token, then N decoded one at a time: N + 1 sampled tokens, N decodes.
        let started = meter.start();
        let generation = ask(input(vocab, &prefix, 1, 200 + rep), plan.generate + 1)?;
        if let Some(reading) = meter.stop(started) {
            windows.push((reading, generation.completion_tokens));
        }
        let rate = generation.generation_rate().context("the target generated fewer than two tokens")?;
        generation_rates.push(rate);
        let (tokens, seconds) = (generation.decoded_tokens(), generation.generation_seconds());
        runs.push(RunRecord { kind: "generation", tokens, seconds, tokens_per_second: rate });
        gaps.extend(generation.gaps_ms);
    }
    let spread = |values: &[f64]| Spread::of(values).expect("at least one repetition");
    Ok(Fixed {
        prompt_tokens_per_second: spread(&prompt_rates),
        generation_tokens_per_second: spread(&generation_rates),
        ttft_ms: spread(&ttft),
        warm_ttft_ms: spread(&warm),
        inter_token_ms: Latencies::of(&gaps),
        energy: meter.energy(&windows),
        runs,
    })
}
