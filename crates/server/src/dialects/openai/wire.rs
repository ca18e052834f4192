//! OpenAI's request and response bodies, so code written for OpenAI's API runs unchanged.

use crate::dialects::hearth::{Energy, LogprobBody};
use crate::dialects::request::Inputs;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fields both completion endpoints share.
#[derive(Deserialize)]
pub struct Common {
    #[serde(default)]
    pub model: String,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    pub n: Option<u32>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub response_format: Option<Value>,
    /// Chat: `true`/`false`; completions: how many alternatives per token.
    pub logprobs: Option<Value>,
    pub top_logprobs: Option<u32>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    /// `none` asks a thinking model not to think; any other effort lets it.
    pub reasoning_effort: Option<String>,
    /// Not OpenAI's: llama.cpp's server and vLLM take it, and benchmarks need fixed lengths.
    #[serde(default)]
    pub ignore_eos: bool,
    /// Not OpenAI's: llama.cpp's server takes these samplers on its OpenAI endpoints, and
    /// clients written for it send them (a greedy answer there is `repeat_penalty: 1`).
    pub top_k: Option<u32>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
}

#[derive(Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
pub struct ChatBody {
    #[serde(flatten)]
    pub common: Common,
    pub messages: Vec<MessageBody>,
}

#[derive(Deserialize)]
pub struct MessageBody {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCallBody>,
    pub tool_call_id: Option<String>,
    pub name: Option<String>,
}

/// `{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}`.
#[derive(Deserialize)]
pub struct ToolCallBody {
    #[serde(default)]
    pub id: String,
    pub function: FunctionBody,
}

#[derive(Deserialize)]
pub struct FunctionBody {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// A message's content: text, or parts of which only text ones are understood.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Deserialize)]
pub struct CompletionBody {
    #[serde(flatten)]
    pub common: Common,
    pub prompt: PromptBody,
    /// The prompt comes back before the completion (scored, with `logprobs`).
    #[serde(default)]
    pub echo: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum PromptBody {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

/// A whole answer (`chat.completion`, `text_completion`) or one streamed chunk of it.
#[derive(Serialize)]
pub struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub system_fingerprint: String,
    pub choices: Vec<Choice>,
    /// Always in a whole answer; in a stream, only the last chunk's, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
pub struct Choice {
    pub index: u32,
    /// A whole chat answer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// A streamed chat answer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    /// A completion's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub logprobs: Option<Logprobs>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: Option<String>,
    /// A thinking model's thinking, as llama.cpp's server returns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut>,
}

#[derive(Serialize, Default)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Absent, `null` (beside tool calls), or text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut>,
}

/// A tool call, arguments as JSON text; stream deltas carry each call's index.
#[derive(Serialize)]
pub struct ToolCallOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut,
}

#[derive(Serialize)]
pub struct FunctionOut {
    pub name: String,
    pub arguments: String,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Logprobs {
    /// Chat's `{"content": [...]}`.
    Chat { content: Vec<LogprobBody> },
    /// The legacy completions shape: parallel lists of tokens, their log-probabilities,
    /// the alternatives as `{token: logprob}` maps, and each token's offset in the text.
    /// An echoed prompt's first token has no log-probability (`null`).
    Completion {
        tokens: Vec<String>,
        token_logprobs: Vec<Option<f32>>,
        top_logprobs: Vec<Option<Map<String, Value>>>,
        text_offset: Vec<usize>,
    },
}

/// OpenAI's usage object, with hearth's energy fields beside the counts.
#[derive(Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
    /// Present when speculative decoding drafted: OpenAI's predicted-output counts, here the
    /// drafted tokens the model accepted and those it rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    #[serde(flatten)]
    pub energy: Energy,
}

#[derive(Serialize)]
pub struct CompletionTokensDetails {
    pub accepted_prediction_tokens: u32,
    pub rejected_prediction_tokens: u32,
}

#[derive(Serialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
}

#[derive(Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

#[derive(Serialize)]
pub struct List<T> {
    pub object: &'static str,
    pub data: Vec<T>,
}

#[derive(Serialize)]
pub struct Model {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: String,
}

#[derive(Deserialize)]
pub struct EmbeddingsBody {
    #[serde(default)]
    pub model: String,
    pub input: Inputs,
    pub encoding_format: Option<String>,
    pub dimensions: Option<usize>,
}

#[derive(Serialize)]
pub struct Embeddings {
    pub object: &'static str,
    pub data: Vec<EmbeddingOut>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

#[derive(Serialize)]
pub struct EmbeddingOut {
    pub object: &'static str,
    pub index: usize,
    pub embedding: Vector,
}

/// Floats, or base64 of their little-endian bytes.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}
