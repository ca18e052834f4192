//! What a benchmark measures, behind one interface: a model loaded in this process, or a
//! server reached over HTTP (see `endpoint`). Each request is timed as its tokens arrive.

use anyhow::{bail, Result};
use hearth_core::{ChatMessage, Collector, Fed, GenerateRequest, Prompt, Role, SamplingParams};
use hearth_engine::Engine;
use std::time::Instant;

/// A prompt as a workload states it.
#[derive(Debug, Clone)]
pub enum Input {
    /// Token ids (synthetic fixed-size prompts; only a model in this process takes them).
    Tokens(Vec<u32>),
    /// Text continued as it is, with no chat template.
    Text(String),
    /// A conversation, formatted by the target's chat template.
    Chat(Vec<(Role, String)>),
}

/// One request: greedy decoding of at most `max_tokens`, past end-of-generation if
/// `ignore_eos` (for fixed-size runs; servers that do not know the option may stop early,
/// and the counts they report say so).
#[derive(Debug, Clone)]
pub struct Ask {
    pub input: Input,
    pub max_tokens: u32,
    pub ignore_eos: bool,
}

/// What a request cost, as seen from here and, where the target says, from the target.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Prompt tokens as the target counted them; `None` when it did not say.
    pub prompt_tokens: Option<u32>,
    /// Prompt tokens the target reused from its cache.
    pub cached_tokens: u32,
    /// Generated tokens (the target's count, else the streamed pieces).
    pub completion_tokens: u32,
    /// Seconds from sending the request to the first generated token.
    pub ttft: f64,
    /// Seconds from sending the request to the end of the answer.
    pub total: f64,
    /// Milliseconds between consecutive streamed tokens.
    pub gaps_ms: Vec<f64>,
    /// The target's own time for prompt processing and for generation, when it reports them.
    pub reported_prompt_seconds: Option<f64>,
    pub reported_generation_seconds: Option<f64>,
}

impl Answer {
    /// Prompt tokens the target processed (those not taken from its cache).
    pub fn processed_tokens(&self) -> Option<u32> {
        Some(self.prompt_tokens?.saturating_sub(self.cached_tokens))
    }

    /// Seconds of prompt processing: the target's own figure, else the time to first token.
    pub fn prompt_seconds(&self) -> f64 {
        self.reported_prompt_seconds.unwrap_or(self.ttft)
    }

    /// Prompt tokens processed per second.
    pub fn prompt_rate(&self) -> Option<f64> {
        let (processed, seconds) = (self.processed_tokens()?, self.prompt_seconds());
        (processed > 0 && seconds > 0.0).then(|| f64::from(processed) / seconds)
    }

    /// Tokens decoded after the first (the first is prompt processing's).
    pub fn decoded_tokens(&self) -> u32 {
        self.completion_tokens.saturating_sub(1)
    }

    /// Seconds of decoding after the first token.
    pub fn generation_seconds(&self) -> f64 {
        self.reported_generation_seconds.unwrap_or(self.total - self.ttft)
    }

    /// Tokens generated per second after the first.
    pub fn generation_rate(&self) -> Option<f64> {
        let seconds = self.generation_seconds();
        (self.decoded_tokens() > 0 && seconds > 0.0).then(|| f64::from(self.decoded_tokens()) / seconds)
    }
}

/// Something that answers requests: a model here, or an endpoint.
pub trait Target: Send + Sync {
    fn ask(&self, ask: &Ask) -> Result<Answer>;
}

/// Times the arrival of streamed tokens.
#[derive(Debug)]
pub struct Stopwatch {
    sent: Instant,
    first: Option<f64>,
    last: Option<Instant>,
    pub gaps_ms: Vec<f64>,
    pub pieces: u32,
}

impl Stopwatch {
    pub fn start() -> Self {
        Self { sent: Instant::now(), first: None, last: None, gaps_ms: Vec::new(), pieces: 0 }
    }

    /// A piece of the answer arrived now.
    pub fn token(&mut self) {
        let now = Instant::now();
        match self.last {
            Some(then) => self.gaps_ms.push((now - then).as_secs_f64() * 1e3),
            None => self.first = Some((now - self.sent).as_secs_f64()),
        }
        self.last = Some(now);
        self.pieces += 1;
    }

    /// (time to first token, total) in seconds; an answer without tokens has its first at the end.
    pub fn finish(&self) -> (f64, f64) {
        let total = self.sent.elapsed().as_secs_f64();
        (self.first.unwrap_or(total), total)
    }
}

/// A model loaded in this process.
pub struct Local {
    pub engine: Engine,
}

impl Target for Local {
    fn ask(&self, ask: &Ask) -> Result<Answer> {
        let prompt = match &ask.input {
            Input::Tokens(tokens) => Prompt::Tokens(tokens.clone()),
            Input::Text(text) => Prompt::Raw(text.clone()),
            Input::Chat(turns) => Prompt::Chat(
                turns
                    .iter()
                    .map(|(role, content)| ChatMessage {
                        role: role.clone(),
                        content: content.clone(),
                        tool_calls: Vec::new(),
                        tool_call_id: None,
                        tool_name: None,
                    })
                    .collect(),
            ),
        };
        let sampling =
            SamplingParams { max_tokens: Some(ask.max_tokens), ignore_eos: ask.ignore_eos, ..SamplingParams::greedy() };
        let events = self.engine.generate(GenerateRequest::new(prompt, sampling));
        let mut watch = Stopwatch::start();
        let mut collector = Collector::new();
        for event in events.iter() {
            match collector.feed(event)? {
                Fed::Text(_) => watch.token(),
                Fed::Logprob => {}
                Fed::Done(hearth_core::Answer { usage, timings, .. }) => {
                    let (ttft, total) = watch.finish();
                    return Ok(Answer {
                        prompt_tokens: Some(usage.prompt_tokens),
                        cached_tokens: usage.cached_prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                        ttft,
                        total,
                        gaps_ms: watch.gaps_ms,
                        reported_prompt_seconds: Some(timings.prompt_eval.as_secs_f64()),
                        reported_generation_seconds: Some(timings.eval.as_secs_f64()),
                    });
                }
            }
        }
        bail!("the engine stopped")
    }
}
