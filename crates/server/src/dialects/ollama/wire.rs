//! Ollama's request and response bodies, with Ollama's field names, so Ollama's clients
//! work unchanged.

use crate::dialects::hearth::{Energy, LogprobBody};
use crate::dialects::request::Inputs;
use crate::tools;
use hearth_core::{ChatMessage, Role, ToolCall};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

#[derive(Deserialize)]
pub struct GenerateBody {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub system: Option<String>,
    pub template: Option<String>,
    #[serde(default)]
    pub raw: bool,
    pub stream: Option<bool>,
    pub format: Option<Value>,
    pub options: Option<Map<String, Value>>,
    pub keep_alive: Option<Value>,
    pub images: Option<Vec<Value>>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<u32>,
    pub think: Option<Think>,
}

/// Ollama's `think`: `true`/`false`, or an effort (`"low"`, `"medium"`, `"high"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Think {
    On(bool),
    Level(String),
}

#[derive(Deserialize)]
pub struct ChatBody {
    #[serde(default)]
    pub model: String,
    pub messages: Option<Vec<MessageBody>>,
    pub stream: Option<bool>,
    pub format: Option<Value>,
    pub options: Option<Map<String, Value>>,
    pub keep_alive: Option<Value>,
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<u32>,
    pub think: Option<Think>,
}

#[derive(Deserialize)]
pub struct MessageBody {
    pub role: String,
    #[serde(default)]
    pub content: String,
    pub images: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCallBody>,
    pub tool_name: Option<String>,
}

/// Ollama's `{"function": {"name", "arguments": {...}}}`.
#[derive(Deserialize)]
pub struct ToolCallBody {
    pub id: Option<String>,
    pub function: FunctionBody,
}

#[derive(Deserialize)]
pub struct FunctionBody {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

impl MessageBody {
    pub fn into_message(self) -> ChatMessage {
        let mut message = ChatMessage::new(Role::parse(&self.role), self.content);
        message.tool_calls = self
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id.unwrap_or_else(tools::call_id),
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect();
        message.tool_name = self.tool_name;
        message
    }
}

/// One line of an answer (or the whole answer with `stream: false`): `response` for
/// `/api/generate`, `message` for `/api/chat`; the last has `done: true` and the counts.
#[derive(Serialize)]
pub struct Chunk {
    pub model: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// `/api/generate`'s thinking, beside `response`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<LogprobBody>>,
    pub done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<&'static str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
}

#[derive(Serialize)]
pub struct MessageOut {
    pub role: &'static str,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut>,
}

#[derive(Serialize)]
pub struct ToolCallOut {
    pub id: String,
    pub function: FunctionOut,
}

#[derive(Serialize)]
pub struct FunctionOut {
    pub index: usize,
    pub name: String,
    pub arguments: Value,
}

/// The last line's counts and durations (nanoseconds), with hearth's additions.
#[derive(Serialize)]
pub struct Counts {
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u32,
    pub prompt_eval_duration: u64,
    /// hearth's: prompt tokens whose KV cache was reused.
    pub prompt_cached_count: u32,
    pub eval_count: u32,
    /// hearth's: tokens speculative decoding drafted, and those of them the model accepted.
    #[serde(skip_serializing_if = "is_zero")]
    pub draft_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub draft_accepted_count: u32,
    pub eval_duration: u64,
    #[serde(flatten)]
    pub energy: Energy,
}

#[derive(Serialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `model` or, from older clients, `name`.
#[derive(Deserialize)]
pub struct NameBody {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub name: String,
}

impl NameBody {
    pub fn given(&self) -> &str {
        if self.model.is_empty() {
            &self.name
        } else {
            &self.model
        }
    }
}

#[derive(Deserialize)]
pub struct CopyBody {
    pub source: String,
    pub destination: String,
}

#[derive(Serialize)]
pub struct Tags {
    pub models: Vec<TagEntry>,
}

#[derive(Serialize)]
pub struct TagEntry {
    pub name: String,
    pub model: String,
    pub modified_at: String,
    pub size: u64,
    pub digest: String,
    pub details: Details,
}

#[derive(Serialize)]
pub struct Details {
    pub parent_model: &'static str,
    pub format: String,
    pub family: String,
    pub families: Vec<String>,
    pub parameter_size: String,
    pub quantization_level: String,
}

#[derive(Serialize)]
pub struct Show {
    pub modelfile: String,
    pub parameters: String,
    pub template: String,
    pub system: Option<String>,
    pub license: Option<String>,
    pub details: Details,
    pub model_info: Map<String, Value>,
    pub capabilities: Vec<&'static str>,
    pub modified_at: String,
    /// hearth's: the context a request gets unless it asks for another (`options.num_ctx`):
    /// the stored `num_ctx`, else 4096, at most the trained length; `None` if the stored one
    /// is out of bounds.
    pub context_length: Option<u32>,
    /// hearth's: whether the model would load now (`fits`, `fits_after_unloading`,
    /// `does_not_fit`), with the bytes it needs, those available and those the other
    /// loaded models hold; absent when either side is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<crate::residency::Fit>,
}

#[derive(Serialize)]
pub struct Running {
    pub models: Vec<RunningEntry>,
}

#[derive(Serialize)]
pub struct RunningEntry {
    pub name: String,
    pub model: String,
    pub size: u64,
    pub digest: Option<String>,
    pub details: Details,
    pub expires_at: String,
    pub size_vram: u64,
    pub context_length: u32,
}

#[derive(Serialize)]
pub struct Version {
    pub version: &'static str,
}

#[derive(Deserialize)]
pub struct EmbedBody {
    #[serde(default)]
    pub model: String,
    pub input: Option<Inputs>,
    pub truncate: Option<bool>,
    pub dimensions: Option<usize>,
    pub keep_alive: Option<Value>,
    pub options: Option<Map<String, Value>>,
}

#[derive(Serialize)]
pub struct Embedded {
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u32,
}

/// The older `/api/embeddings`.
#[derive(Deserialize)]
pub struct EmbeddingsBody {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    pub keep_alive: Option<Value>,
    pub options: Option<Map<String, Value>>,
}

#[derive(Serialize)]
pub struct Embedding {
    pub embedding: Vec<f32>,
}

#[derive(Deserialize)]
pub struct PullBody {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub insecure: bool,
    pub stream: Option<bool>,
}

#[derive(Deserialize)]
pub struct CreateBody {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub name: String,
    pub from: Option<String>,
    /// File name → digest of blobs uploaded with `/api/blobs`; one GGUF is understood.
    #[serde(default)]
    pub files: HashMap<String, String>,
    pub template: Option<String>,
    pub system: Option<String>,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub messages: Vec<CreateMessage>,
    pub license: Option<Value>,
    pub quantize: Option<String>,
    pub adapters: Option<Map<String, Value>>,
    /// Older clients send the Modelfile's text.
    pub modelfile: Option<String>,
    pub stream: Option<bool>,
}

#[derive(Deserialize)]
pub struct CreateMessage {
    pub role: String,
    pub content: String,
}

/// A line of a pull's or create's progress.
#[derive(Serialize)]
#[serde(untagged)]
pub enum ProgressLine {
    Status {
        status: String,
    },
    Bytes {
        status: String,
        digest: String,
        completed: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
    },
    Error {
        error: String,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
