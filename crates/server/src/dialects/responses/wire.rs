//! OpenAI's Responses API bodies (`/v1/responses`), so code written for it runs unchanged.

use crate::dialects::hearth::Energy;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/responses`. Fields not named here are accepted and ignored (`user`,
/// `truncation`, `include`, ...).
#[derive(Deserialize)]
pub struct CreateBody {
    #[serde(default)]
    pub model: String,
    pub input: Option<Input>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    #[serde(default)]
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub text: Option<TextConfig>,
    pub stream: Option<bool>,
    pub previous_response_id: Option<String>,
    pub store: Option<bool>,
    pub metadata: Option<Map<String, Value>>,
    pub reasoning: Option<Reasoning>,
}

/// `reasoning`: an `effort` of `none` asks a thinking model not to think.
#[derive(Deserialize)]
pub struct Reasoning {
    pub effort: Option<String>,
}

/// `input`: a user message as text, or items.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

/// One input item. A message may leave out its `type` (OpenAI's "easy" input message).
pub struct InputItem(pub TypedItem);

impl<'de> Deserialize<'de> for InputItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        if let Some(object) = value.as_object_mut() {
            object.entry("type").or_insert_with(|| Value::String("message".into()));
        }
        TypedItem::deserialize(value).map(InputItem).map_err(D::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TypedItem {
    Message {
        role: String,
        content: MessageContent,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: MessageContent,
    },
    /// An earlier answer's reasoning: dropped, as templates drop it.
    Reasoning {},
    /// Any other item (`item_reference`, hosted tools' calls, ...).
    #[serde(other)]
    Unsupported,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    InputImage {},
    InputFile {},
    InputAudio {},
    #[serde(other)]
    Unsupported,
}

/// A tool: `{"type": "function", "name", "description", "parameters", "strict"}`; OpenAI's
/// hosted tools (`web_search`, `file_search`, ...) are refused. Echoed in the response.
#[derive(Deserialize, Serialize, Clone)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `"auto"`, `"none"`, `"required"`, or `{"type": "function", "name"}`.
#[derive(Deserialize, Serialize, Clone)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        name: String,
    },
}

#[derive(Deserialize, Serialize, Clone, Default)]
pub struct TextConfig {
    #[serde(default)]
    pub format: Format,
}

#[derive(Deserialize, Serialize, Clone, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Format {
    #[default]
    Text,
    JsonObject,
    JsonSchema {
        #[serde(default)]
        name: String,
        schema: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// A response object: what `POST` answers (or streams), `GET` returns, and a later request's
/// `previous_response_id` continues.
#[derive(Serialize, Clone)]
pub struct Response {
    pub id: String,
    pub object: &'static str,
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: &'static str,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub tool_choice: ToolChoice,
    pub tools: Vec<Tool>,
    pub text: TextConfig,
    pub store: bool,
    pub metadata: Map<String, Value>,
    pub usage: Option<Usage>,
}

#[derive(Serialize, Clone)]
pub struct ResponseError {
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, Clone)]
pub struct IncompleteDetails {
    pub reason: &'static str,
}

#[derive(Serialize, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// A thinking model's thinking: its text in `content`, no summary.
    Reasoning {
        id: String,
        summary: Vec<Value>,
        content: Vec<ReasoningText>,
        status: &'static str,
    },
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: &'static str,
    },
}

/// `{"type": "output_text", "text", "annotations": []}`.
#[derive(Serialize, Clone)]
pub struct OutputText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
    pub annotations: Vec<Value>,
}

impl OutputText {
    pub fn new(text: String) -> Self {
        Self { kind: "output_text", text, annotations: Vec::new() }
    }
}

/// `{"type": "reasoning_text", "text"}`.
#[derive(Serialize, Clone)]
pub struct ReasoningText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
}

/// The Responses API's usage, with hearth's energy fields beside the counts.
#[derive(Serialize, Clone)]
pub struct Usage {
    pub input_tokens: u32,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u32,
    #[serde(flatten)]
    pub energy: Energy,
}

#[derive(Serialize, Clone)]
pub struct InputTokensDetails {
    pub cached_tokens: u32,
    pub cache_write_tokens: u32,
}

#[derive(Serialize, Clone)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u32,
}

/// One event of a streamed response, numbered in order; its `type` is also the SSE event name.
#[derive(Serialize)]
pub struct Sequenced {
    #[serde(flatten)]
    pub event: Event,
    pub sequence_number: u64,
}

#[derive(Serialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "response.created")]
    Created { response: Response },
    #[serde(rename = "response.in_progress")]
    InProgress { response: Response },
    #[serde(rename = "response.output_item.added")]
    ItemAdded { output_index: usize, item: OutputItem },
    #[serde(rename = "response.content_part.added")]
    PartAdded { item_id: String, output_index: usize, content_index: usize, part: OutputText },
    #[serde(rename = "response.output_text.delta")]
    TextDelta { item_id: String, output_index: usize, content_index: usize, delta: String, logprobs: Vec<Value> },
    #[serde(rename = "response.output_text.done")]
    TextDone { item_id: String, output_index: usize, content_index: usize, text: String, logprobs: Vec<Value> },
    #[serde(rename = "response.content_part.done")]
    PartDone { item_id: String, output_index: usize, content_index: usize, part: OutputText },
    #[serde(rename = "response.reasoning_text.delta")]
    ReasoningDelta { item_id: String, output_index: usize, content_index: usize, delta: String },
    #[serde(rename = "response.reasoning_text.done")]
    ReasoningDone { item_id: String, output_index: usize, content_index: usize, text: String },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta { item_id: String, output_index: usize, delta: String },
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone { item_id: String, output_index: usize, arguments: String },
    #[serde(rename = "response.output_item.done")]
    ItemDone { output_index: usize, item: OutputItem },
    #[serde(rename = "response.completed")]
    Completed { response: Response },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: Response },
    #[serde(rename = "error")]
    Error { code: Option<&'static str>, message: String, param: Option<String> },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Created { .. } => "response.created",
            Event::InProgress { .. } => "response.in_progress",
            Event::ItemAdded { .. } => "response.output_item.added",
            Event::PartAdded { .. } => "response.content_part.added",
            Event::TextDelta { .. } => "response.output_text.delta",
            Event::TextDone { .. } => "response.output_text.done",
            Event::PartDone { .. } => "response.content_part.done",
            Event::ReasoningDelta { .. } => "response.reasoning_text.delta",
            Event::ReasoningDone { .. } => "response.reasoning_text.done",
            Event::ArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Event::ArgumentsDone { .. } => "response.function_call_arguments.done",
            Event::ItemDone { .. } => "response.output_item.done",
            Event::Completed { .. } => "response.completed",
            Event::Incomplete { .. } => "response.incomplete",
            Event::Error { .. } => "error",
        }
    }
}

/// `DELETE /v1/responses/{id}`'s answer.
#[derive(Serialize)]
pub struct Deleted {
    pub id: String,
    pub object: &'static str,
    pub deleted: bool,
}
