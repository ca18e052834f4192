//! What every dialect's answers carry besides its own fields: hearth's energy figures and
//! cached-prompt count, token log-probabilities in the shape OpenAI's chat and Ollama
//! share, and the small words both use (finish reasons, timestamps).

use crate::service::Finished;
use hearth_core::{FinishReason, TokenLogprob};
use serde::Serialize;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// hearth's additions beside a dialect's token counts: total joules, joules per generated
/// token, average watts, net of the idle baseline when known, whether the figures are
/// measured or estimated, and the carbon and cost when prices are configured. All absent
/// when no figure was taken.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Energy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_joules: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_prefill_joules: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_decode_joules: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_per_token_joules: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_per_total_token_joules: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_watts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_net_joules: Option<f64>,
    /// `measured` or `estimated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_co2e_grams: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_currency: Option<String>,
}

impl Energy {
    pub fn of(finished: &Finished) -> Self {
        let (usage, prices) = (&finished.usage, &finished.prices);
        let Some(energy) = finished.energy.as_ref() else { return Self::default() };
        let round = |x: f64| (x * 1e6).round() / 1e6;
        let total = energy.total_joules();
        let cost = prices.cost(total);
        Self {
            energy_joules: Some(round(total)),
            energy_prefill_joules: Some(round(energy.prefill_joules)),
            energy_decode_joules: Some(round(energy.decode_joules)),
            energy_per_token_joules: energy.joules_per_generated_token(usage.completion_tokens).map(round),
            energy_per_total_token_joules: energy
                .joules_per_token(usage.prompt_tokens, usage.completion_tokens)
                .map(round),
            energy_watts: energy.average_watts().map(round),
            energy_net_joules: energy.net_joules().map(round),
            energy_source: Some(energy.source.as_str()),
            energy_co2e_grams: prices.co2e_grams(total).map(round),
            energy_cost: cost,
            energy_currency: cost.map(|_| prices.currency.clone()),
        }
    }
}

/// One token's log-probability, with its most likely alternatives:
/// `{"token", "logprob", "bytes", "top_logprobs": [...]}` (OpenAI's chat and Ollama).
#[derive(Debug, Serialize)]
pub struct LogprobBody {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprobBody>,
}

#[derive(Debug, Serialize)]
pub struct TopLogprobBody {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

pub fn logprobs(logprobs: &[TokenLogprob]) -> Vec<LogprobBody> {
    logprobs
        .iter()
        .map(|l| LogprobBody {
            token: l.text(),
            logprob: l.logprob,
            bytes: l.bytes.clone(),
            top_logprobs: l
                .top
                .iter()
                .map(|t| TopLogprobBody { token: t.text(), logprob: t.logprob, bytes: t.bytes.clone() })
                .collect(),
        })
        .collect()
}

/// An Ollama `done_reason` / OpenAI `finish_reason`.
pub fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::Cancelled => "stop",
        FinishReason::Length => "length",
    }
}

/// `prefix`, an underscore and 24 random letters and digits, as OpenAI's ids look
/// (`call_...`, `resp_...`, `msg_...`).
pub fn random_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let state = RandomState::new();
    let id: String =
        (0..24u64).map(|i| ALPHABET[(state.hash_one(i) % ALPHABET.len() as u64) as usize] as char).collect();
    format!("{prefix}_{id}")
}
