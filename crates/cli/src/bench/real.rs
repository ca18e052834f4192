//! The real-prompt workload: every prompt of the set (built-in, or a user's JSONL file) sent
//! `-r` times, each time made unique so it starts cold, then sent again unchanged for the
//! warm time to first token. Greedy, up to `-n` tokens, stopping where the model stops.

use super::meter::{Energy, Meter};
use super::stats::{Latencies, Spread};
use super::target::{Answer, Ask, Input, Target};
use super::workload::{cold, RealPrompt};
use anyhow::Result;
use indicatif::ProgressBar;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Real {
    /// `built-in`, or the prompt file.
    pub prompts: String,
    pub requests: usize,
    pub ttft_ms: Spread,
    pub warm_ttft_ms: Spread,
    /// From sending a request to the end of its answer.
    pub e2e_ms: Spread,
    pub prompt_tokens_per_second: Spread,
    pub generation_tokens_per_second: Spread,
    pub inter_token_ms: Latencies,
    pub prompt_tokens: Spread,
    pub completion_tokens: Spread,
    pub energy: Option<Energy>,
    /// Medians per kind of prompt (chat, summarization, code, ...).
    pub kinds: Vec<Kind>,
}

#[derive(Debug, Serialize)]
pub struct Kind {
    pub kind: String,
    pub requests: usize,
    pub ttft_ms: f64,
    pub e2e_ms: f64,
    pub generation_tokens_per_second: Option<f64>,
}

/// Requests one target sends, warm-up included, for the progress bar.
pub fn requests(prompts: &[RealPrompt], repetitions: usize) -> u64 {
    1 + (prompts.len() * repetitions * 2) as u64
}

pub fn measure(
    target: &dyn Target,
    prompts: &[RealPrompt],
    source: &str,
    generate: u32,
    repetitions: usize,
    meter: &mut Meter,
    progress: &ProgressBar,
) -> Result<Real> {
    let ask = |turns, max_tokens| -> Result<Answer> {
        let answer = target.ask(&Ask { input: Input::Chat(turns), max_tokens, ignore_eos: false });
        progress.inc(1);
        answer
    };
    ask(cold(&prompts[0], 0), 4)?;
    let mut answers: Vec<(&str, Answer)> = Vec::new();
    let (mut warm, mut windows) = (Vec::new(), Vec::new());
    for rep in 0..repetitions {
        for (index, prompt) in prompts.iter().enumerate() {
            let turns = cold(prompt, 1 + (rep * prompts.len() + index) as u64);
            let started = meter.start();
            let answer = ask(turns.clone(), generate)?;
            if let Some(reading) = meter.stop(started) {
                windows.push((reading, answer.completion_tokens));
            }
            warm.push(ask(turns, 1)?.ttft * 1e3);
            answers.push((&prompt.kind, answer));
        }
    }
    let spread = |values: Vec<f64>| Spread::of(&values).unwrap_or(Spread { median: 0.0, min: 0.0, max: 0.0 });
    let all = |figure: fn(&Answer) -> Option<f64>| answers.iter().filter_map(|(_, a)| figure(a)).collect::<Vec<_>>();
    let mut kinds: Vec<Kind> = Vec::new();
    for prompt in prompts {
        if kinds.iter().any(|k| k.kind == prompt.kind) {
            continue;
        }
        let of_kind: Vec<&Answer> = answers.iter().filter(|(k, _)| *k == prompt.kind).map(|(_, a)| a).collect();
        let median = |values: Vec<f64>| Spread::of(&values).map(|s| s.median);
        kinds.push(Kind {
            kind: prompt.kind.clone(),
            requests: of_kind.len(),
            ttft_ms: median(of_kind.iter().map(|a| a.ttft * 1e3).collect()).unwrap_or(0.0),
            e2e_ms: median(of_kind.iter().map(|a| a.total * 1e3).collect()).unwrap_or(0.0),
            generation_tokens_per_second: median(of_kind.iter().filter_map(|a| a.generation_rate()).collect()),
        });
    }
    let gaps: Vec<f64> = answers.iter().flat_map(|(_, a)| a.gaps_ms.iter().copied()).collect();
    Ok(Real {
        prompts: source.to_string(),
        requests: answers.len(),
        ttft_ms: spread(all(|a| Some(a.ttft * 1e3))),
        warm_ttft_ms: spread(warm),
        e2e_ms: spread(all(|a| Some(a.total * 1e3))),
        prompt_tokens_per_second: spread(all(Answer::prompt_rate)),
        generation_tokens_per_second: spread(all(Answer::generation_rate)),
        inter_token_ms: Latencies::of(&gaps),
        prompt_tokens: spread(all(|a| a.prompt_tokens.map(f64::from))),
        completion_tokens: spread(all(|a| Some(f64::from(a.completion_tokens)))),
        energy: meter.energy(&windows),
        kinds,
    })
}
