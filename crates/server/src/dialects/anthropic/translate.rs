//! Anthropic's request fields in hearth's terms: the system prompt and content blocks as
//! chat messages (tool uses as calls, tool results as tool messages), sampling over the
//! model's stored parameters, and tools in the shape the service takes.

use super::wire::{
    Block, Content, MessageParam, MessagesBody, OutputFormat, System, Thinking, ToolChoice, ToolResultContent,
};
use crate::dialects::request;
use crate::format;
use crate::service::{self, ServiceError};
use crate::tools::Choice;
use hearth_core::parameters::StoredParameters;
use hearth_core::{ChatMessage, Role, SamplingParams, ToolCall};
use hearth_store::ModelName;
use serde_json::{json, Map, Value};

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(message)
}

/// The text of text blocks, joined; any other block is refused, naming `place`.
fn text_of(blocks: &[Block], place: &str) -> Result<String, ServiceError> {
    let mut texts = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block {
            Block::Text { text } => texts.push(text.as_str()),
            other => return Err(unsupported(other, place)),
        }
    }
    Ok(texts.join("\n"))
}

fn unsupported(block: &Block, place: &str) -> ServiceError {
    bad(match block {
        Block::Image {} => format!("{place}: image blocks are not supported: the model runs text only"),
        Block::Document {} => format!("{place}: document blocks are not supported: the model runs text only"),
        Block::ToolUse { .. } => format!("{place}: tool_use blocks belong in assistant messages"),
        Block::ToolResult { .. } => format!("{place}: tool_result blocks belong in user messages"),
        Block::Text { .. } | Block::Thinking {} | Block::RedactedThinking {} => {
            format!("{place}: only text blocks are allowed here")
        }
        Block::Unsupported => format!(
            "{place}: a content block of a type hearth does not read (it reads text, tool_use, tool_result and thinking blocks)"
        ),
    })
}

impl MessagesBody {
    pub fn model_name(&self) -> Result<ModelName, ServiceError> {
        request::model_name(&self.model)
    }

    /// What a thinking model's template is asked (`enable_thinking`), and whether its
    /// thinking is sent back: with `enabled` (refused for a model that cannot think, not
    /// silently ignored) and `adaptive`; not by default, as Anthropic's API has it.
    pub fn thinking(&self, model_thinks: bool) -> Result<(Option<bool>, bool), ServiceError> {
        match self.thinking {
            Some(Thinking::Enabled {}) if !model_thinks => {
                Err(bad(format!("thinking: \"{}\" does not support thinking", self.model)))
            }
            Some(Thinking::Enabled {}) => Ok((Some(true), true)),
            Some(Thinking::Adaptive {}) => Ok((None, true)),
            Some(Thinking::Disabled) | None => Ok((Some(false), false)),
        }
    }

    /// The system prompt and the conversation in hearth's terms.
    pub fn chat_messages(&self) -> Result<Vec<ChatMessage>, ServiceError> {
        if self.messages.is_empty() {
            return Err(bad("messages: at least one message is required"));
        }
        let mut conversation = Vec::with_capacity(self.messages.len() + 1);
        let system = match &self.system {
            None => String::new(),
            Some(System::Text(text)) => text.clone(),
            Some(System::Blocks(blocks)) => text_of(blocks, "system")?,
        };
        if !system.is_empty() {
            conversation.push(ChatMessage::system(system));
        }
        for (index, message) in self.messages.iter().enumerate() {
            self.add_message(index, message, &mut conversation)?;
        }
        Ok(conversation)
    }

    /// A user message's tool results become tool messages ahead of its text; an assistant
    /// message's tool uses become its calls.
    fn add_message(
        &self,
        index: usize,
        message: &MessageParam,
        conversation: &mut Vec<ChatMessage>,
    ) -> Result<(), ServiceError> {
        let place = format!("messages[{index}]");
        let role = match message.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(bad(format!("{place}: role must be \"user\" or \"assistant\", got {other:?}"))),
        };
        let blocks = match &message.content {
            Content::Text(text) => {
                conversation.push(ChatMessage::new(role, text.clone()));
                return Ok(());
            }
            Content::Blocks(blocks) => blocks,
        };
        let mut texts = Vec::new();
        let mut calls = Vec::new();
        for block in blocks {
            match block {
                Block::Text { text } => texts.push(text.as_str()),
                Block::ToolUse { id, name, input } if role == Role::Assistant => {
                    let arguments = if input.is_null() { json!({}) } else { input.clone() };
                    calls.push(ToolCall { id: id.clone(), name: name.clone(), arguments });
                }
                Block::ToolResult { tool_use_id, content, is_error } if role == Role::User => {
                    conversation.push(self.tool_result(&place, tool_use_id, content.as_ref(), *is_error)?);
                }
                Block::Thinking {} | Block::RedactedThinking {} => {}
                other => return Err(unsupported(other, &place)),
            }
        }
        if !texts.is_empty() || !calls.is_empty() {
            let mut chat_message = ChatMessage::new(role, texts.join("\n"));
            chat_message.tool_calls = calls;
            conversation.push(chat_message);
        }
        Ok(())
    }

    fn tool_result(
        &self,
        place: &str,
        tool_use_id: &str,
        content: Option<&ToolResultContent>,
        is_error: bool,
    ) -> Result<ChatMessage, ServiceError> {
        let text = match content {
            None => String::new(),
            Some(ToolResultContent::Text(text)) => text.clone(),
            Some(ToolResultContent::Blocks(blocks)) => text_of(blocks, place)?,
        };
        let text = if is_error { format!("Error: {text}") } else { text };
        let mut result = ChatMessage::new(Role::Other("tool".into()), text);
        result.tool_call_id = Some(tool_use_id.to_string());
        Ok(result)
    }

    /// The model's stored parameters (`stored`), then the request's. `max_tokens` is
    /// required when the request is to be answered (not when its tokens are counted).
    pub fn sampling(&self, stored: &StoredParameters, answering: bool) -> Result<SamplingParams, ServiceError> {
        let mut params = service::sampling(stored, &Map::new()).map_err(bad)?;
        match self.max_tokens {
            Some(max) => params.max_tokens = Some(service::max_tokens("max_tokens", max)?),
            None if answering => return Err(bad("max_tokens: Field required")),
            None => {}
        }
        if let Some(t) = self.temperature {
            params.temperature = t;
        }
        if let Some(p) = self.top_p {
            params.top_p = p;
        }
        if let Some(k) = self.top_k {
            params.top_k = u32::try_from(k).map_err(|_| bad(format!("top_k: must be 0 or more, got {k}")))?;
        }
        if let Some(stops) = &self.stop_sequences {
            params.stop = stops.clone();
        }
        if let Some(OutputFormat::JsonSchema { schema }) = self.output_config.as_ref().and_then(|c| c.format.as_ref()) {
            params.grammar = Some(format::schema_grammar(schema).map_err(bad)?);
        }
        params.validate().map_err(bad)?;
        Ok(params)
    }

    /// The tools in the shape the service takes (OpenAI's and Ollama's), the choice among
    /// them, and whether several calls may come at once.
    pub fn tools(&self) -> Result<(Vec<Value>, Choice, bool), ServiceError> {
        let mut tools = Vec::new();
        for (index, tool) in self.tools.iter().flatten().enumerate() {
            if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "custom") {
                return Err(bad(format!(
                    "tools[{index}]: {kind} is one of Anthropic's own server tools, which hearth does not run"
                )));
            }
            if tool.name.is_empty() {
                return Err(bad(format!("tools[{index}].name: Field required")));
            }
            let parameters = tool.input_schema.clone().unwrap_or_else(|| json!({"type": "object"}));
            tools.push(json!({"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": parameters,
            }}));
        }
        let (choice, single) = match &self.tool_choice {
            None => (Choice::Auto, false),
            Some(ToolChoice::Auto { disable_parallel_tool_use }) => (Choice::Auto, *disable_parallel_tool_use),
            Some(ToolChoice::Any { disable_parallel_tool_use }) => (Choice::Required, *disable_parallel_tool_use),
            Some(ToolChoice::Tool { name, disable_parallel_tool_use }) => {
                (Choice::Function(name.clone()), *disable_parallel_tool_use)
            }
            Some(ToolChoice::None) => (Choice::None, false),
        };
        Ok((tools, choice, !single))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> MessagesBody {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn system_blocks_tool_uses_and_results_become_chat_messages() {
        let body = body(json!({
            "model": "m", "max_tokens": 5,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "x"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 C"}]},
                    {"type": "text", "text": "And tomorrow?"},
                ]},
            ],
        }));
        let messages = body.chat_messages().unwrap();
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
        assert_eq!(messages[0].content, "Be brief.\nBe kind.");
        assert_eq!(messages[2].content, "Let me look.");
        assert_eq!(messages[2].tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(messages[3].content, "18 C");
        assert_eq!(messages[3].tool_call_id.as_deref(), Some("toolu_1"));
    }

    #[test]
    fn images_other_roles_and_server_tools_are_refused_with_the_place() {
        let image = body(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
        ]}]}));
        let error = image.chat_messages().unwrap_err().to_string();
        assert!(error.contains("messages[0]") && error.contains("image"), "{error}");
        let role = body(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}));
        assert!(role.chat_messages().unwrap_err().to_string().contains("role must be"));
        let server_tool = body(json!({"model": "m", "max_tokens": 5, "messages": [],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}));
        assert!(server_tool.tools().unwrap_err().to_string().contains("web_search_20250305"));
        let unknown = body(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "search_result", "source": "x", "title": "t", "content": []},
        ]}]}));
        assert!(unknown.chat_messages().unwrap_err().to_string().contains("does not read"));
    }

    #[test]
    fn max_tokens_is_required_to_answer_and_sampling_fields_apply() {
        let stored = StoredParameters::read(Map::new());
        let mut body = body(json!({"model": "m", "messages": [], "temperature": 0.25, "top_k": 7,
            "stop_sequences": ["END"]}));
        assert_eq!(body.sampling(&stored, true).unwrap_err().to_string(), "max_tokens: Field required");
        assert!(body.sampling(&stored, false).is_ok(), "counting tokens needs no max_tokens");
        body.max_tokens = Some(0);
        assert!(body.sampling(&stored, true).is_err());
        body.max_tokens = Some(12);
        let params = body.sampling(&stored, true).unwrap();
        assert_eq!((params.max_tokens, params.temperature, params.top_k), (Some(12), 0.25, 7));
        assert_eq!(params.stop, ["END"]);
    }

    #[test]
    fn tool_choices_map_to_the_service_s() {
        let tools = |choice: Value| {
            let body = body(json!({"model": "m", "messages": [], "tool_choice": choice,
                "tools": [{"name": "f", "input_schema": {"type": "object"}}]}));
            let (tools, choice, parallel) = body.tools().unwrap();
            assert_eq!(tools[0]["function"]["name"], "f");
            (choice, parallel)
        };
        assert_eq!(tools(json!({"type": "auto"})), (Choice::Auto, true));
        assert_eq!(tools(json!({"type": "any", "disable_parallel_tool_use": true})), (Choice::Required, false));
        assert_eq!(tools(json!({"type": "tool", "name": "f"})), (Choice::Function("f".into()), true));
        assert_eq!(tools(json!({"type": "none"})), (Choice::None, true));
    }
}
