//! The serving load: real prompts (each made unique, so cold) sent by a fixed number of
//! concurrent clients, or arriving as a Poisson process at a given rate; bounded by a request
//! count and a time limit. Figures per level: aggregate throughput and the latencies each
//! client saw.

use super::meter::{Energy, Meter};
use super::stats::Latencies;
use super::target::{Answer, Ask, Input, Target};
use super::workload::{cold, poisson_gap, RealPrompt};
use indicatif::ProgressBar;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How requests arrive.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    /// This many clients, each sending its next request when the last one is answered.
    Concurrency(u32),
    /// Requests per second, at exponentially distributed intervals, whatever is in flight.
    Rate(f64),
}

impl Level {
    /// Requests sent when none are asked for: enough for every client to send four.
    pub fn default_requests(self) -> usize {
        match self {
            Level::Concurrency(clients) => (4 * clients as usize).max(8),
            Level::Rate(_) => 16,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LoadLevel {
    pub concurrency: Option<u32>,
    pub rate: Option<f64>,
    pub requests: usize,
    pub failed: usize,
    /// Wall-clock seconds from the first request sent to the last answered.
    pub seconds: f64,
    pub generated_tokens: u64,
    /// Generated tokens per second over the level: what the target served, all clients together.
    pub generation_tokens_per_second: f64,
    pub requests_per_second: f64,
    pub ttft_ms: Latencies,
    pub inter_token_ms: Latencies,
    pub e2e_ms: Latencies,
    pub energy: Option<Energy>,
    /// Why the first failed request failed.
    pub first_error: Option<String>,
}

pub struct LoadPlan<'a> {
    pub prompts: &'a [RealPrompt],
    pub generate: u32,
    pub requests: Option<usize>,
    pub duration: Duration,
}

pub fn measure(
    target: &dyn Target,
    level: Level,
    plan: &LoadPlan,
    nonce: u64,
    meter: &mut Meter,
    progress: &ProgressBar,
) -> LoadLevel {
    let count = plan.requests.unwrap_or_else(|| level.default_requests());
    let results: Mutex<Vec<anyhow::Result<Answer>>> = Mutex::new(Vec::with_capacity(count));
    let send = |index: usize| {
        let turns = cold(&plan.prompts[index % plan.prompts.len()], nonce + index as u64);
        let answer = target.ask(&Ask { input: Input::Chat(turns), max_tokens: plan.generate, ignore_eos: false });
        results.lock().expect("no client panics holding the results").push(answer);
        progress.inc(1);
    };
    let started = meter.start();
    let start = Instant::now();
    let deadline = start + plan.duration;
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| match level {
        Level::Concurrency(clients) => {
            let next = &next;
            let send = &send;
            for _ in 0..clients {
                scope.spawn(move || loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count || Instant::now() >= deadline {
                        break;
                    }
                    send(index);
                });
            }
        }
        Level::Rate(rate) => {
            let (mut seed, mut at) = (nonce, 0.0);
            for index in 0..count {
                let arrival = start + Duration::from_secs_f64(at);
                if arrival >= deadline {
                    break;
                }
                std::thread::sleep(arrival.saturating_duration_since(Instant::now()));
                let send = &send;
                scope.spawn(move || send(index));
                at += poisson_gap(rate, &mut seed);
            }
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let reading = meter.stop(started);
    let results = results.into_inner().expect("every client has finished");
    let first_error = results.iter().find_map(|r| r.as_ref().err().map(|e| format!("{e:#}")));
    let sent = results.len();
    let answers: Vec<Answer> = results.into_iter().filter_map(Result::ok).collect();
    let failed = sent - answers.len();
    let generated_tokens: u64 = answers.iter().map(|a| u64::from(a.completion_tokens)).sum();
    let millis = |figure: fn(&Answer) -> f64| answers.iter().map(|a| figure(a) * 1e3).collect::<Vec<_>>();
    let gaps: Vec<f64> = answers.iter().flat_map(|a| a.gaps_ms.iter().copied()).collect();
    let tokens = u32::try_from(generated_tokens).unwrap_or(u32::MAX);
    LoadLevel {
        concurrency: match level {
            Level::Concurrency(clients) => Some(clients),
            Level::Rate(_) => None,
        },
        rate: match level {
            Level::Rate(rate) => Some(rate),
            Level::Concurrency(_) => None,
        },
        requests: answers.len(),
        failed,
        seconds,
        generated_tokens,
        generation_tokens_per_second: generated_tokens as f64 / seconds.max(1e-9),
        requests_per_second: answers.len() as f64 / seconds.max(1e-9),
        ttft_ms: Latencies::of(&millis(|a| a.ttft)),
        inter_token_ms: Latencies::of(&gaps),
        e2e_ms: Latencies::of(&millis(|a| a.total)),
        energy: reading.and_then(|reading| meter.energy(&[(reading, tokens)])),
        first_error,
    }
}
