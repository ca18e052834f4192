//! What flows back from the engine on a request's own channel while it runs.

use crate::EnergyReport;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One event of a running request. A stream is zero or more `Token`s, then exactly one of
/// `Done` or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Newly generated text: always whole UTF-8 characters, never part of a stop string.
    Token(String),
    /// The log-probability of the token generated next, when the request asked for them.
    /// It comes before that token's text (which may arrive later, held back with its
    /// neighbours to complete a character or rule out a stop string).
    Logprob(TokenLogprob),
    Done {
        finish_reason: FinishReason,
        usage: Usage,
        timings: Timings,
        /// What the request cost, when the engine has a meter.
        energy: Option<EnergyReport>,
    },
    Error(GenerateError),
}

/// A generated token and how likely the model found it, from its raw logits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's bytes, which may be part of a UTF-8 character.
    pub bytes: Vec<u8>,
    /// Natural log of the token's probability.
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first.
    pub top: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

impl TokenLogprob {
    /// The token as text; bytes of a partial character become U+FFFD, as OpenAI shows them.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl TopLogprob {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer.
    Stop,
    /// A stop string was met: its place in the request's list of stop strings.
    StopSequence(usize),
    /// `max_tokens` was reached, or the context is full.
    Length,
    /// The caller went away or asked to stop.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV cache was reused from an earlier request, not recomputed.
    pub cached_prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Tokens speculative decoding proposed for the model to verify, and how many of those
    /// it accepted (each accepted one is a completion token that cost no decode of its own).
    #[serde(default)]
    pub draft_tokens: u32,
    #[serde(default)]
    pub accepted_draft_tokens: u32,
}

impl Usage {
    /// The share of drafted tokens the model accepted, when anything was drafted.
    pub fn draft_acceptance(&self) -> Option<f64> {
        (self.draft_tokens > 0).then(|| f64::from(self.accepted_draft_tokens) / f64::from(self.draft_tokens))
    }
}

/// Wall-clock phases of one request, measured on the engine thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// From the engine picking the request up to the end of prompt processing.
    pub prompt_eval: Duration,
    /// From the end of prompt processing to the last generated token.
    pub eval: Duration,
    /// From the engine picking the request up to the first generated token.
    pub time_to_first_token: Duration,
}

impl Timings {
    /// Prompt tokens processed per second (cached tokens excluded: they cost nothing).
    pub fn prompt_tokens_per_second(&self, usage: &Usage) -> Option<f64> {
        rate(usage.prompt_tokens - usage.cached_prompt_tokens, self.prompt_eval)
    }

    /// Generated tokens per second. The first token comes out of prompt processing, so the
    /// rate counts the tokens decoded after it over the decode time, as llama.cpp does.
    pub fn generation_tokens_per_second(&self, usage: &Usage) -> Option<f64> {
        rate(usage.completion_tokens.saturating_sub(1), self.eval)
    }
}

fn rate(tokens: u32, over: Duration) -> Option<f64> {
    let secs = over.as_secs_f64();
    (tokens > 0 && secs > 0.0).then(|| f64::from(tokens) / secs)
}

/// Why a request failed. Each variant maps to one status code at the HTTP edges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    #[error("the prompt is {prompt_tokens} tokens but the context holds {context_size}; shorten it or raise the context size")]
    PromptTooLong { prompt_tokens: u32, context_size: u32 },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the engine stopped: {0}")]
    EngineStopped(String),
    #[error("llama.cpp failed: {0}")]
    Backend(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_llama_cpp_conventions() {
        let usage = Usage { prompt_tokens: 110, cached_prompt_tokens: 10, completion_tokens: 51, ..Default::default() };
        let timings = Timings {
            prompt_eval: Duration::from_millis(500),
            eval: Duration::from_secs(1),
            time_to_first_token: Duration::from_millis(510),
        };
        assert_eq!(timings.prompt_tokens_per_second(&usage), Some(200.0));
        assert_eq!(timings.generation_tokens_per_second(&usage), Some(50.0));
    }

    #[test]
    fn rates_are_absent_when_nothing_was_measured() {
        let usage = Usage { prompt_tokens: 5, cached_prompt_tokens: 5, completion_tokens: 1, ..Default::default() };
        let timings = Timings::default();
        assert_eq!(timings.prompt_tokens_per_second(&usage), None);
        assert_eq!(timings.generation_tokens_per_second(&usage), None);
    }
}
