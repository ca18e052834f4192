//! A chat request as every dialect asks it: the model's own system message and stored
//! messages before the request's, its tools turned into instructions and a grammar, and
//! the engine request that comes of it.

use super::{conversation, Lease, ServiceError};
use crate::tools::{self, Choice, ToolUse};
use hearth_core::{ChatMessage, GenerateRequest, Prompt, SamplingParams, ToolCall};
use serde_json::Value;

/// What a dialect's chat body says, in hearth's terms.
pub struct Chat<'a> {
    pub messages: Vec<ChatMessage>,
    pub sampling: SamplingParams,
    /// OpenAI's and Ollama's tool shape; empty for none.
    pub tools: &'a [Value],
    pub choice: &'a Choice,
    pub parallel_calls: bool,
    /// Top log-probabilities per token, when asked for.
    pub logprobs: Option<u32>,
}

/// The engine request for `chat` on the leased model, and how to read tool calls back out
/// of its answer when it has tools.
pub fn chat_request(lease: &Lease, chat: Chat<'_>) -> Result<(GenerateRequest, Option<ToolUse>), ServiceError> {
    let Chat { messages, mut sampling, tools, choice, parallel_calls, logprobs } = chat;
    let mut conversation = conversation(&lease.spec, messages);
    let template = lease.template();
    let tool_use = tools::prepare(tools, choice, parallel_calls, template, &mut conversation, &mut sampling)
        .map_err(ServiceError::Invalid)?;
    let mut request = GenerateRequest::new(Prompt::Chat(conversation), sampling);
    request.logprobs = logprobs;
    let tool_use = tool_use.map(|(tool_use, shown)| {
        request.tools = shown;
        tool_use
    });
    Ok((request, tool_use))
}

/// An answer's text and the tool calls in it: all text when the request had no tools.
pub fn read_calls(tool_use: Option<&ToolUse>, text: String) -> (String, Vec<ToolCall>) {
    match tool_use {
        Some(tool_use) => tool_use.parse(&text),
        None => (text, Vec::new()),
    }
}
