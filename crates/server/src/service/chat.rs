//! A chat request as every dialect asks it: the model's own system message and stored
//! messages before the request's, its tools turned into instructions and a grammar, and
//! the engine request that comes of it.

use super::generate::Answer;
use super::{collect, conversation, Lease, Piece, ServiceError};
use crate::tools::{self, Choice, ToolUse};
use futures_util::Stream;
use hearth_core::{ChatMessage, GenerateRequest, Prompt, SamplingParams, ToolCall};
use serde_json::Value;
use std::collections::HashMap;

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
    let Chat { mut messages, mut sampling, tools, choice, parallel_calls, logprobs } = chat;
    name_tool_results(&mut messages);
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

/// Gives each tool result that has only its call's id (OpenAI's, Anthropic's and the
/// Responses API's) the name of the tool called, which templates want: one pass, the
/// calls before it looked up by id.
fn name_tool_results(messages: &mut [ChatMessage]) {
    let mut names: HashMap<String, String> = HashMap::new();
    for message in messages {
        for call in &message.tool_calls {
            names.insert(call.id.clone(), call.name.clone());
        }
        if message.tool_name.is_none() {
            message.tool_name = message.tool_call_id.as_ref().and_then(|id| names.get(id)).cloned();
        }
    }
}

/// Whether an answer is read whole before it is sent: when it is not streamed, or when it
/// may hold tool calls, which are known only once it is whole.
pub fn read_whole(streaming: bool, tool_use: Option<&ToolUse>) -> bool {
    !streaming || tool_use.is_some()
}

/// A whole answer, its text without the tool calls read out of it (all of it when the
/// request had no tools), and the calls.
pub async fn collect_calls(
    pieces: impl Stream<Item = Piece>,
    tool_use: Option<&ToolUse>,
) -> Result<(Answer, Vec<ToolCall>), ServiceError> {
    let mut answer = collect(pieces).await?;
    let text = std::mem::take(&mut answer.text);
    let (text, calls) = match tool_use {
        Some(tool_use) => tool_use.parse(&text),
        None => (text, Vec::new()),
    };
    answer.text = text;
    Ok((answer, calls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::Role;

    #[test]
    fn tool_results_are_named_after_the_call_they_answer() {
        let mut call = ChatMessage::assistant("");
        call.tool_calls = vec![ToolCall { id: "c1".into(), name: "get_weather".into(), arguments: Value::Null }];
        let result = |id: &str| {
            let mut result = ChatMessage::new(Role::Other("tool".into()), "18 C");
            result.tool_call_id = Some(id.into());
            result
        };
        let mut named = result("c1");
        named.tool_name = Some("given".into());
        let mut messages = vec![result("c1"), call, result("c1"), result("nowhere"), named];
        name_tool_results(&mut messages);
        let names: Vec<Option<&str>> = messages.iter().map(|m| m.tool_name.as_deref()).collect();
        assert_eq!(names, [None, None, Some("get_weather"), None, Some("given")]);
    }
}
