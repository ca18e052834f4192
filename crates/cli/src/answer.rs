//! Streams one answer from the engine to a writer as it is generated, and stops it early
//! when the user presses Ctrl-C.

use anyhow::{bail, Result};
use hearth_core::{
    Collector, EnergyPrices, EnergyReport, Fed, FinishReason, GenerateRequest, StreamEvent, Timings, Usage,
};
use hearth_engine::Engine;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often a quiet stream checks for Ctrl-C.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

pub struct Answer {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
    pub energy: Option<EnergyReport>,
}

/// Set by the Ctrl-C handler; taken by whoever is streaming.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// True while an answer streams, so Ctrl-C stops the answer instead of the program.
pub static STREAMING: AtomicBool = AtomicBool::new(false);

/// Marks an answer as streaming for as long as it lives.
struct StreamingGuard;

impl StreamingGuard {
    fn new() -> Self {
        INTERRUPTED.store(false, Ordering::SeqCst);
        STREAMING.store(true, Ordering::SeqCst);
        Self
    }
}

impl Drop for StreamingGuard {
    fn drop(&mut self) {
        STREAMING.store(false, Ordering::SeqCst);
    }
}

pub fn stream(engine: &Engine, request: GenerateRequest, out: &mut impl Write) -> Result<Answer> {
    let _streaming = StreamingGuard::new();
    let events = engine.generate(request);
    let mut collector = Collector::new();
    loop {
        if INTERRUPTED.swap(false, Ordering::SeqCst) {
            // Dropping the receiver tells the engine to stop; wait for its final report.
            return Ok(drain_cancelled(events, collector));
        }
        let event = match events.recv_timeout(INTERRUPT_POLL) {
            Ok(event) => event,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => bail!("the engine stopped unexpectedly"),
        };
        match collector.feed(event)? {
            Fed::Text(piece) => {
                out.write_all(piece.as_bytes())?;
                out.flush()?;
            }
            Fed::Logprob => {}
            Fed::Done(answer) => return Ok(answer.into()),
        }
    }
}

fn drain_cancelled(events: flume::Receiver<StreamEvent>, collector: Collector) -> Answer {
    drop(events);
    Answer {
        text: collector.text().to_string(),
        finish_reason: FinishReason::Cancelled,
        usage: Usage::default(),
        timings: Timings::default(),
        energy: None,
    }
}

impl From<hearth_core::Answer> for Answer {
    fn from(answer: hearth_core::Answer) -> Self {
        let hearth_core::Answer { text, finish_reason, usage, timings, energy, logprobs: _ } = answer;
        Self { text, finish_reason, usage, timings, energy }
    }
}

/// The one-line summary `--verbose` prints after each answer; carbon and cost appear when
/// their prices are configured.
pub fn stats_line(answer: &Answer, load: Duration, prices: &EnergyPrices) -> String {
    let Answer { usage, timings, energy, .. } = answer;
    let rate = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{r:.1}"));
    let cached = if usage.cached_prompt_tokens > 0 {
        format!(" ({} cached)", usage.cached_prompt_tokens)
    } else {
        String::new()
    };
    let drafts = usage.draft_acceptance().map_or_else(String::new, |share| {
        format!(" ({}/{} drafted accepted, {:.0}%)", usage.accepted_draft_tokens, usage.draft_tokens, share * 100.0)
    });
    let energy = energy.map_or_else(String::new, |e| {
        let per_token = e
            .joules_per_generated_token(usage.completion_tokens)
            .map_or_else(|| "-".to_string(), |j| format!("{j:.3}"));
        let net = e.net_joules().map_or_else(String::new, |net| format!(" ({net:.2} J above idle)"));
        let watts = e.average_watts().map_or_else(String::new, |w| format!(", {w:.1} W"));
        let co2e = prices.co2e_grams(e.total_joules()).map_or_else(String::new, |g| format!(", {g:.3} gCO2e"));
        let cost = prices
            .cost(e.total_joules())
            .map_or_else(String::new, |c| format!(", {c:.6} {}", prices.currency).trim_end().to_string());
        format!(" | {:.2} J{net}, {per_token} J/tok{watts}{co2e}{cost} ({})", e.total_joules(), e.source.as_str())
    });
    format!(
        "load {:.2}s | prompt {} tok{cached} {} tok/s | answer {} tok{drafts} {} tok/s | TTFT {:.0} ms{energy} | {}",
        load.as_secs_f64(),
        usage.prompt_tokens,
        rate(timings.prompt_tokens_per_second(usage)),
        usage.completion_tokens,
        rate(timings.generation_tokens_per_second(usage)),
        timings.time_to_first_token.as_secs_f64() * 1000.0,
        answer.finish_reason.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::EnergySource;

    #[test]
    fn stats_line_shows_energy_above_idle_once_idle_is_known() {
        let answer = Answer {
            text: String::new(),
            finish_reason: FinishReason::Length,
            usage: Usage { prompt_tokens: 10, cached_prompt_tokens: 0, completion_tokens: 20, ..Default::default() },
            timings: Timings::default(),
            energy: Some(EnergyReport {
                prefill_joules: 2.0,
                decode_joules: 8.0,
                seconds: 1.0,
                idle_watts: Some(4.0),
                source: EnergySource::Measured,
            }),
        };
        let line = stats_line(&answer, Duration::ZERO, &EnergyPrices::default());
        assert!(line.contains("| 10.00 J (6.00 J above idle), 0.500 J/tok, 10.0 W (measured) |"), "{line}");
        let prices =
            EnergyPrices { grams_co2e_per_kwh: Some(360.0), price_per_kwh: Some(0.36), currency: "EUR".into() };
        let line = stats_line(&answer, Duration::ZERO, &prices);
        assert!(line.contains("10.0 W, 0.001 gCO2e, 0.000001 EUR (measured)"), "{line}");
    }

    #[test]
    fn stats_line_reports_rates_and_cache_hits() {
        let answer = Answer {
            text: String::new(),
            finish_reason: FinishReason::Stop,
            usage: Usage { prompt_tokens: 60, cached_prompt_tokens: 10, completion_tokens: 11, ..Default::default() },
            timings: Timings {
                prompt_eval: Duration::from_millis(250),
                eval: Duration::from_millis(100),
                time_to_first_token: Duration::from_millis(260),
            },
            energy: Some(EnergyReport {
                prefill_joules: 1.5,
                decode_joules: 4.0,
                seconds: 0.5,
                idle_watts: None,
                source: EnergySource::Estimated,
            }),
        };
        assert_eq!(
            stats_line(&answer, Duration::from_millis(1500), &EnergyPrices::default()),
            "load 1.50s | prompt 60 tok (10 cached) 200.0 tok/s | answer 11 tok 100.0 tok/s | TTFT 260 ms | 5.50 J, 0.500 J/tok, 11.0 W (estimated) | stop"
        );
    }

    #[test]
    fn stats_line_reports_the_share_of_drafts_accepted() {
        let answer = Answer {
            text: String::new(),
            finish_reason: FinishReason::Length,
            usage: Usage {
                prompt_tokens: 5,
                completion_tokens: 40,
                draft_tokens: 32,
                accepted_draft_tokens: 24,
                ..Default::default()
            },
            timings: Timings::default(),
            energy: None,
        };
        let line = stats_line(&answer, Duration::ZERO, &EnergyPrices::default());
        assert!(line.contains("| answer 40 tok (24/32 drafted accepted, 75%) - tok/s |"), "{line}");
    }
}
