//! What a caller asks the engine for: a prompt (chat messages or raw text) and how to sample.

use serde::{Deserialize, Serialize};

/// Who said a chat message. Extra roles some templates know (`tool`, `ipython`, ...) are
/// carried through as-is, so templates see exactly what the caller sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    #[serde(untagged)]
    Other(String),
}

impl Role {
    /// The role a message names: `"system"`, `"user"`, `"assistant"`, or any other.
    pub fn parse(name: &str) -> Self {
        match name {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => Role::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Other(name) => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Calls an assistant message made (earlier turns of a tool-using conversation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` message: which call it answers (OpenAI's `tool_call_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// On a `tool` message: the function whose result it carries (Ollama's `tool_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
}

/// One function call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// OpenAI's call id, which the `tool` message answering it repeats.
    pub id: String,
    pub name: String,
    /// The arguments as a JSON value (an object for every schema seen in practice).
    pub arguments: serde_json::Value,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None, tool_name: None }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// The text to continue. `Chat` is rendered through the model's own chat template;
/// `Raw` is tokenized exactly as given (Ollama's `raw: true`, OpenAI's completions);
/// `Tokens` is already tokenized (OpenAI's completions accept token ids; benchmarks use it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prompt {
    Chat(Vec<ChatMessage>),
    Raw(String),
    Tokens(Vec<u32>),
}

/// Sampling settings. Defaults are Ollama's, so a request that says nothing behaves the
/// way Ollama users expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 means greedy: always the most likely token.
    pub temperature: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    /// 1.0 disables top-p.
    pub top_p: f32,
    /// 0.0 disables min-p.
    pub min_p: f32,
    /// 1.0 disables the repeat penalty.
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: u32,
    /// Same seed + same prompt + same settings = same text. `None` picks a random seed.
    pub seed: Option<u32>,
    /// Generation ends before any of these strings; the string itself is not returned.
    pub stop: Vec<String>,
    /// Upper bound on generated tokens; `None` runs until end of sequence or a full context.
    pub max_tokens: Option<u32>,
    /// Keep generating past the model's end-of-sequence token (benchmarks want a fixed count).
    pub ignore_eos: bool,
    /// A GBNF grammar (llama.cpp's dialect) every answer must match: structured output and
    /// tool calls. Checked when the request is admitted.
    pub grammar: Option<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: None,
            stop: Vec::new(),
            max_tokens: None,
            ignore_eos: false,
            grammar: None,
        }
    }
}

impl SamplingParams {
    /// Deterministic decoding: always the most likely token, no penalties.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, repeat_penalty: 1.0, ..Self::default() }
    }

    /// Checks ranges once, at the edge, so the engine never sees a nonsensical value.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be a finite number, got {v}"))
            }
        };
        finite("temperature", self.temperature)?;
        finite("top_p", self.top_p)?;
        finite("min_p", self.min_p)?;
        finite("repeat_penalty", self.repeat_penalty)?;
        if self.temperature < 0.0 {
            return Err(format!("temperature must be >= 0, got {}", self.temperature));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(format!("top_p must be between 0 and 1, got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p must be between 0 and 1, got {}", self.min_p));
        }
        if self.repeat_penalty <= 0.0 {
            return Err(format!("repeat_penalty must be > 0, got {}", self.repeat_penalty));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("stop strings must not be empty".to_string());
        }
        Ok(())
    }
}

/// The most alternatives a request may ask to see per token (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// Checks how many alternatives per token a request asks to see.
pub fn check_top_logprobs(top: u32) -> Result<(), String> {
    if top > MAX_TOP_LOGPROBS {
        return Err(format!("top_logprobs must be at most {MAX_TOP_LOGPROBS}, got {top}"));
    }
    Ok(())
}

/// One request to the engine: everything needed to produce one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    #[serde(default)]
    pub sampling: SamplingParams,
    /// Function definitions (OpenAI's `tools` entries) the chat template shows the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// Report each generated token's log-probability and this many most likely
    /// alternatives (at most [`MAX_TOP_LOGPROBS`]); `None` reports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Whether a thinking model should think, given to its chat template as
    /// `enable_thinking`; `None` leaves it to the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
}

impl GenerateRequest {
    pub fn new(prompt: Prompt, sampling: SamplingParams) -> Self {
        Self { prompt, sampling, tools: Vec::new(), logprobs: None, thinking: None }
    }
}

/// What to embed: text, or token ids already tokenized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbedInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// A request for one embedding vector per input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub inputs: Vec<EmbedInput>,
    /// Cut inputs longer than the context to fit it; otherwise such an input is an error.
    pub truncate: bool,
    /// Scale each vector to unit length (Ollama's `/api/embed` and OpenAI do).
    pub normalize: bool,
}

/// The vectors of an [`EmbedRequest`], in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens evaluated over all inputs.
    pub prompt_tokens: u32,
    pub duration: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips_known_and_unknown_names() {
        for (role, text) in [
            (Role::System, "\"system\""),
            (Role::User, "\"user\""),
            (Role::Assistant, "\"assistant\""),
            (Role::Other("tool".into()), "\"tool\""),
        ] {
            assert_eq!(serde_json::to_string(&role).unwrap(), text);
            assert_eq!(serde_json::from_str::<Role>(text).unwrap(), role);
        }
    }

    #[test]
    fn default_sampling_is_valid_and_matches_ollama() {
        let p = SamplingParams::default();
        assert!(p.validate().is_ok());
        assert_eq!((p.temperature, p.top_k, p.top_p, p.repeat_penalty), (0.8, 40, 0.9, 1.1));
    }

    #[test]
    fn validate_rejects_out_of_range_values() {
        let cases = [
            SamplingParams { temperature: -1.0, ..Default::default() },
            SamplingParams { temperature: f32::NAN, ..Default::default() },
            SamplingParams { top_p: 1.5, ..Default::default() },
            SamplingParams { min_p: -0.1, ..Default::default() },
            SamplingParams { repeat_penalty: 0.0, ..Default::default() },
            SamplingParams { stop: vec![String::new()], ..Default::default() },
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?} should be rejected");
        }
    }
}
