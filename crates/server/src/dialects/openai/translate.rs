//! OpenAI's request fields in hearth's terms: sampling parameters over the model's stored
//! ones, log-probabilities, and chat messages with their tool calls.

use super::wire::{ChatBody, Common, Content, MessageBody, Stop};
use crate::dialects::request;
use crate::format;
use crate::service::{self, ServiceError};
use hearth_core::parameters::StoredParameters;
use hearth_core::{check_top_logprobs, ChatMessage, Role, SamplingParams, ToolCall};
use hearth_store::ModelName;
use serde_json::{json, Map, Value};

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(message)
}

impl Common {
    pub fn model_name(&self) -> Result<ModelName, ServiceError> {
        request::model_name(&self.model)
    }

    /// What a thinking model's template is asked: see [`service::effort_thinking`].
    pub fn thinking(&self, model_thinks: bool) -> Option<bool> {
        service::effort_thinking(self.reasoning_effort.as_deref(), model_thinks)
    }

    /// What hearth cannot do is refused, not silently ignored.
    pub fn refuse_unsupported(&self) -> Result<(), ServiceError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(bad("n must be 1: hearth returns one choice per request"));
        }
        Ok(())
    }

    /// How many alternatives to report per token, if log-probabilities were asked for:
    /// chat's `logprobs: true` + `top_logprobs`, or completions' `logprobs: N`.
    pub fn logprobs(&self) -> Result<Option<u32>, ServiceError> {
        let top = match &self.logprobs {
            None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(None),
            Some(Value::Bool(true)) => self.top_logprobs.unwrap_or(0),
            Some(Value::Number(n)) => {
                n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("logprobs must be 0 or more"))?
            }
            Some(other) => return Err(bad(format!("logprobs must be a boolean or a number, got {other}"))),
        };
        check_top_logprobs(top).map_err(bad)?;
        Ok(Some(top))
    }

    /// The model's stored parameters (`stored`), then the request's OpenAI-named ones.
    pub fn sampling(&self, stored: &StoredParameters) -> Result<SamplingParams, ServiceError> {
        let mut params = service::sampling(stored, &Map::new()).map_err(bad)?;
        if let Some(t) = self.temperature {
            params.temperature = t;
        }
        if let Some(p) = self.top_p {
            params.top_p = p;
        }
        if let Some(k) = self.top_k {
            params.top_k = k;
        }
        if let Some(p) = self.min_p {
            params.min_p = p;
        }
        if let Some(penalty) = self.repeat_penalty {
            params.repeat_penalty = penalty;
        }
        if let Some(seed) = self.seed {
            // OpenAI's seeds are 64-bit; llama.cpp's are 32.
            params.seed = Some((seed as u64 & u64::from(u32::MAX)) as u32);
        }
        match &self.stop {
            Some(Stop::One(s)) => params.stop = vec![s.clone()],
            Some(Stop::Many(list)) => params.stop = list.clone(),
            None => {}
        }
        if let Some(max) = self.max_completion_tokens.or(self.max_tokens) {
            params.max_tokens = Some(service::max_tokens("max_tokens", max)?);
        }
        for (name, value) in
            [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)]
        {
            if value.is_some_and(|v| v != 0.0) {
                tracing::warn!("{name} is not supported and was ignored");
            }
        }
        params.ignore_eos = self.ignore_eos;
        params.grammar = format::openai(self.response_format.as_ref()).map_err(bad)?;
        params.validate().map_err(bad)?;
        Ok(params)
    }
}

impl ChatBody {
    /// The conversation in hearth's terms; parts other than text are refused.
    pub fn chat_messages(&self) -> Result<Vec<ChatMessage>, ServiceError> {
        if self.messages.is_empty() {
            return Err(bad("messages must not be empty"));
        }
        self.messages.iter().map(|message| self.chat_message(message)).collect()
    }

    fn chat_message(&self, message: &MessageBody) -> Result<ChatMessage, ServiceError> {
        let content = match &message.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => {
                if let Some(part) = parts.iter().find(|p| p.kind != "text") {
                    return Err(bad(format!(
                        "content of type {} is not supported: the model runs text only",
                        part.kind
                    )));
                }
                parts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n")
            }
        };
        // "developer" is OpenAI's newer name for the system message.
        let role = match message.role.as_str() {
            "developer" => Role::System,
            name => Role::parse(name),
        };
        let mut chat_message = ChatMessage::new(role, content);
        for call in &message.tool_calls {
            let arguments = match call.function.arguments.trim() {
                "" => json!({}),
                text => serde_json::from_str(text).map_err(|e| {
                    bad(format!("tool call {} has arguments that are not JSON: {e}", call.function.name))
                })?,
            };
            chat_message.tool_calls.push(ToolCall { id: call.id.clone(), name: call.function.name.clone(), arguments });
        }
        chat_message.tool_call_id = message.tool_call_id.clone();
        chat_message.tool_name = message.name.clone();
        Ok(chat_message)
    }
}
