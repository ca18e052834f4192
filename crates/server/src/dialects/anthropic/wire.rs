//! Anthropic's Messages API bodies, so code written for Anthropic's SDKs runs unchanged.

use crate::dialects::hearth::Energy;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/messages`; `/v1/messages/count_tokens` takes the same body, `max_tokens` aside.
/// Fields not named here are accepted and ignored (`metadata`, `service_tier`, ...).
#[derive(Deserialize)]
pub struct MessagesBody {
    #[serde(default)]
    pub model: String,
    /// Required by `/v1/messages`, as Anthropic requires it.
    pub max_tokens: Option<i64>,
    pub messages: Vec<MessageParam>,
    pub system: Option<System>,
    pub stop_sequences: Option<Vec<String>>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub tools: Option<Vec<ToolParam>>,
    pub tool_choice: Option<ToolChoice>,
    pub thinking: Option<Thinking>,
    pub output_config: Option<OutputConfig>,
    pub stream: Option<bool>,
}

/// `output_config`: its `format` (structured output) is honoured; `effort` is for thinking
/// models and ignored.
#[derive(Deserialize)]
pub struct OutputConfig {
    pub format: Option<OutputFormat>,
}

/// `{"type": "json_schema", "schema": {...}}`, the only format Anthropic defines.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputFormat {
    JsonSchema { schema: Value },
}

#[derive(Deserialize)]
pub struct MessageParam {
    pub role: String,
    pub content: Content,
}

/// A message's content: text, or blocks.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

/// The content blocks hearth reads. Fields it does not use (`cache_control`, `citations`,
/// a thinking block's `signature`) are accepted and ignored.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
        #[serde(default)]
        is_error: bool,
    },
    /// An earlier answer's thinking: templates drop it from history, and so does hearth.
    Thinking {},
    RedactedThinking {},
    Image {},
    Document {},
    /// Any other type (search results, server tool blocks, ...).
    #[serde(other)]
    Unsupported,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Block>),
}

/// `system`: text, or text blocks.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<Block>),
}

/// A tool the client defines: `{"name", "description", "input_schema"}`. Anthropic's own
/// server tools carry a versioned `type` (`web_search_20250305`, ...) and are refused.
#[derive(Deserialize)]
pub struct ToolParam {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    None,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    /// With a `budget_tokens`, which matters only once thinking is supported.
    Enabled {},
    Disabled,
    /// The model thinks if and as much as it decides: a model that cannot, does not.
    Adaptive {},
}

/// A whole answer, and the message that a stream's `message_start` opens.
#[derive(Serialize)]
pub struct Message {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: String,
    pub content: Vec<BlockOut>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

#[derive(Serialize, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockOut {
    /// A thinking model's thinking; hearth signs nothing, so `signature` is empty.
    Thinking {
        thinking: String,
        signature: String,
    },
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// Anthropic's usage: `input_tokens` are those not read from the cache, so input in all is
/// the sum of the three input counts; hearth's energy fields beside them.
#[derive(Serialize, Default)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cache_creation_input_tokens: u32,
    pub cache_read_input_tokens: u32,
    #[serde(flatten)]
    pub energy: Energy,
}

/// One server-sent event of a streamed answer; its `type` is also the SSE event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    MessageStart { message: Message },
    ContentBlockStart { index: usize, content_block: BlockOut },
    Ping,
    ContentBlockDelta { index: usize, delta: Delta },
    ContentBlockStop { index: usize },
    MessageDelta { delta: MessageDelta, usage: Usage },
    MessageStop,
    Error { error: ErrorDetail },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
            Event::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type")]
pub enum Delta {
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
}

#[derive(Serialize)]
pub struct MessageDelta {
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<String>,
}

#[derive(Serialize)]
pub struct CountTokens {
    pub input_tokens: u32,
}

/// `{"type": "error", "error": {"type", "message"}}`.
#[derive(Serialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorDetail,
}

#[derive(Serialize)]
pub struct ErrorDetail {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
}
