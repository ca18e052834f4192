//! The Responses API's request fields in hearth's terms: input items as chat messages
//! (function calls as an assistant's calls, their outputs as tool messages), sampling over
//! the model's stored parameters, `text.format` as a grammar, and tools in the shape the
//! service takes.

use super::wire::{ContentPart, CreateBody, Format, Input, MessageContent, ToolChoice, TypedItem};
use crate::dialects::request;
use crate::format;
use crate::service::{self, ServiceError};
use crate::tools::Choice;
use hearth_core::parameters::StoredParameters;
use hearth_core::{ChatMessage, Role, SamplingParams, ToolCall};
use hearth_engine::grammar;
use hearth_store::ModelName;
use serde_json::{json, Map, Value};

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(message)
}

/// The text of a message's content or a function's output; images, files and audio are
/// refused, naming `place`.
fn text_of(content: &MessageContent, place: &str) -> Result<String, ServiceError> {
    let parts = match content {
        MessageContent::Text(text) => return Ok(text.clone()),
        MessageContent::Parts(parts) => parts,
    };
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        texts.push(match part {
            ContentPart::InputText { text } | ContentPart::OutputText { text } => text.as_str(),
            ContentPart::Refusal { refusal } => refusal.as_str(),
            ContentPart::InputImage {} | ContentPart::InputFile {} | ContentPart::InputAudio {} => {
                return Err(bad(format!(
                    "{place}: images, files and audio are not supported: the model runs text only"
                )))
            }
            ContentPart::Unsupported => {
                return Err(bad(format!("{place}: a content part of a type hearth does not read")))
            }
        });
    }
    Ok(texts.join("\n"))
}

impl CreateBody {
    pub fn model_name(&self) -> Result<ModelName, ServiceError> {
        request::model_name(&self.model)
    }

    /// This request's input as chat messages, appended to `conversation` (a continued
    /// response's, or empty).
    pub fn input_messages(&self, conversation: &mut Vec<ChatMessage>) -> Result<(), ServiceError> {
        let items = match &self.input {
            None => return Err(bad("input is required")),
            Some(Input::Text(text)) => {
                conversation.push(ChatMessage::user(text.clone()));
                return Ok(());
            }
            Some(Input::Items(items)) => items,
        };
        for (index, item) in items.iter().enumerate() {
            let place = format!("input[{index}]");
            match &item.0 {
                TypedItem::Message { role, content } => {
                    let role = match role.as_str() {
                        "user" => Role::User,
                        "assistant" => Role::Assistant,
                        "system" | "developer" => Role::System,
                        other => return Err(bad(format!("{place}: role {other:?} is not one of user, assistant, system, developer"))),
                    };
                    conversation.push(ChatMessage::new(role, text_of(content, &place)?));
                }
                TypedItem::FunctionCall { call_id, name, arguments } => {
                    let arguments = match arguments.trim() {
                        "" => json!({}),
                        text => serde_json::from_str(text)
                            .map_err(|e| bad(format!("{place}: arguments of {name} are not JSON: {e}")))?,
                    };
                    let call = ToolCall { id: call_id.clone(), name: name.clone(), arguments };
                    // Calls right after an assistant's words (or other calls) are that turn's.
                    match conversation.last_mut().filter(|m| m.role == Role::Assistant) {
                        Some(turn) => turn.tool_calls.push(call),
                        None => {
                            let mut turn = ChatMessage::assistant("");
                            turn.tool_calls.push(call);
                            conversation.push(turn);
                        }
                    }
                }
                TypedItem::FunctionCallOutput { call_id, output } => {
                    let mut result = ChatMessage::new(Role::Other("tool".into()), text_of(output, &place)?);
                    result.tool_call_id = Some(call_id.clone());
                    conversation.push(result);
                }
                TypedItem::Reasoning {} => {}
                TypedItem::Unsupported => {
                    return Err(bad(format!(
                        "{place}: an item of a type hearth does not read (it reads message, function_call, function_call_output and reasoning)"
                    )))
                }
            }
        }
        Ok(())
    }

    /// What a thinking model's template is asked: see [`service::effort_thinking`].
    pub fn thinking(&self, model_thinks: bool) -> Option<bool> {
        service::effort_thinking(self.reasoning.as_ref().and_then(|r| r.effort.as_deref()), model_thinks)
    }

    /// The model's stored parameters (`stored`), then the request's; `text.format` as a grammar.
    pub fn sampling(&self, stored: &StoredParameters) -> Result<SamplingParams, ServiceError> {
        let mut params = service::sampling(stored, &Map::new()).map_err(bad)?;
        if let Some(max) = self.max_output_tokens {
            params.max_tokens = Some(service::max_tokens("max_output_tokens", max)?);
        }
        if let Some(t) = self.temperature {
            params.temperature = t;
        }
        if let Some(p) = self.top_p {
            params.top_p = p;
        }
        params.grammar = match self.text.as_ref().map(|t| &t.format) {
            None | Some(Format::Text) => None,
            Some(Format::JsonObject) => Some(grammar::json_object()),
            Some(Format::JsonSchema { schema, .. }) => Some(format::schema_grammar(schema).map_err(bad)?),
        };
        params.validate().map_err(bad)?;
        Ok(params)
    }

    /// The tools in the shape the service takes (OpenAI's chat and Ollama's), and the
    /// choice among them.
    pub fn tools(&self) -> Result<(Vec<Value>, Choice), ServiceError> {
        let mut tools = Vec::with_capacity(self.tools.len());
        for (index, tool) in self.tools.iter().enumerate() {
            if tool.kind != "function" {
                return Err(bad(format!(
                    "tools[{index}]: {} is one of OpenAI's hosted tools, which hearth does not run",
                    tool.kind
                )));
            }
            let parameters = tool.parameters.clone().unwrap_or_else(|| json!({"type": "object"}));
            tools.push(json!({"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": parameters,
            }}));
        }
        let choice = match &self.tool_choice {
            None => Choice::Auto,
            Some(ToolChoice::Mode(mode)) => match mode.as_str() {
                "auto" => Choice::Auto,
                "none" => Choice::None,
                "required" => Choice::Required,
                other => return Err(bad(format!("tool_choice {other:?} is not one of auto, none, required"))),
            },
            Some(ToolChoice::Named { kind, name }) if kind == "function" && !name.is_empty() => {
                Choice::Function(name.clone())
            }
            Some(ToolChoice::Named { kind, .. }) => {
                return Err(bad(format!("tool_choice of type {kind:?} is not supported; name a function")))
            }
        };
        Ok((tools, choice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> CreateBody {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn items_become_chat_messages_with_calls_and_results() {
        let body = body(json!({"model": "m", "input": [
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18 C"},
        ]}));
        let mut conversation = vec![ChatMessage::user("Earlier.")];
        body.input_messages(&mut conversation).unwrap();
        let roles: Vec<&str> = conversation.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "system", "user", "assistant", "tool"]);
        assert_eq!(conversation[3].tool_calls[0].arguments, json!({"city": "Paris"}));
        assert_eq!(conversation[4].tool_call_id.as_deref(), Some("call_1"));
    }

    #[test]
    fn unsupported_input_hosted_tools_and_choices_are_refused() {
        let image = body(json!({"model": "m", "input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "https://example.com/cat.png"}]}]}));
        let error = image.input_messages(&mut Vec::new()).unwrap_err().to_string();
        assert!(error.contains("input[0]") && error.contains("images"), "{error}");
        assert!(body(json!({"model": "m"})).input_messages(&mut Vec::new()).is_err());
        let hosted = body(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
        assert!(hosted.tools().unwrap_err().to_string().contains("web_search"));
        let named = body(json!({"model": "m", "input": "x", "tool_choice": {"type": "function", "name": "f"},
                                "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]}));
        let (tools, choice) = named.tools().unwrap();
        assert_eq!((tools[0]["function"]["name"].as_str(), choice), (Some("f"), Choice::Function("f".into())));
    }

    #[test]
    fn text_format_and_limits_shape_sampling() {
        let stored = StoredParameters::read(Map::new());
        let schema = body(json!({"model": "m", "input": "x", "max_output_tokens": 9, "temperature": 0.3,
            "text": {"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}, "strict": true}}}));
        let params = schema.sampling(&stored).unwrap();
        assert_eq!((params.max_tokens, params.temperature), (Some(9), 0.3));
        assert!(params.grammar.is_some());
        assert!(body(json!({"model": "m", "input": "x", "max_output_tokens": 0})).sampling(&stored).is_err());
        assert!(body(json!({"model": "m", "input": "x"})).sampling(&stored).unwrap().grammar.is_none());
    }
}
