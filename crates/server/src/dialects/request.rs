//! Reading a request body's common parts, whatever the dialect: the JSON itself, the
//! model's name, Ollama's `keep_alive` and `num_ctx`, and embedding inputs.

use crate::residency::{DraftModel, KeepAlive, Wanted};
use crate::service::ServiceError;
use hearth_core::parameters::StoredParameters;
use hearth_core::EmbedInput;
use hearth_store::ModelName;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ServiceError> {
    // JSON is UTF-8 (RFC 8259), and serde_json does not check inside values it skips.
    let text = std::str::from_utf8(body)
        .map_err(|e| ServiceError::invalid(format!("invalid request body: not UTF-8 ({e})")))?;
    serde_json::from_str(text).map_err(|e| ServiceError::invalid(format!("invalid request body: {e}")))
}

pub fn model_name(text: &str) -> Result<ModelName, ServiceError> {
    if text.is_empty() {
        return Err(ServiceError::invalid("model is required"));
    }
    ModelName::parse(text).map_err(|e| ServiceError::invalid(e.to_string()))
}

pub fn keep_alive(value: Option<&Value>) -> Result<Option<KeepAlive>, ServiceError> {
    let value = value.filter(|v| !v.is_null());
    value.map(KeepAlive::parse).transpose().map_err(ServiceError::Invalid)
}

/// What an Ollama request asks of its model's engine: its `keep_alive`, the context in its
/// `options.num_ctx` (read by the rule stored parameters are), and the draft model its
/// `options.draft` names (hearth's), which an engine with another context or draft does not
/// serve.
pub fn wanted(keep_alive: Option<&Value>, options: Option<&Map<String, Value>>) -> Result<Wanted, ServiceError> {
    let context_size = match options {
        Some(options) => StoredParameters::read(options.clone()).settings().map_err(ServiceError::Invalid)?.num_ctx,
        None => None,
    };
    let draft = match options.and_then(|options| options.get("draft")) {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(DraftModel::Named(
            ModelName::parse(name).map_err(|e| ServiceError::invalid(format!("options.draft: {e}")))?,
        )),
        Some(other) => return Err(ServiceError::invalid(format!("options.draft must be a model's name, got {other}"))),
    };
    Ok(Wanted { keep_alive: self::keep_alive(keep_alive)?, context_size, draft })
}

/// What to embed, in the forms Ollama and OpenAI both take: a text, texts, token ids, or
/// lists of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Inputs {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

impl Inputs {
    pub fn into_inputs(self) -> Vec<EmbedInput> {
        match self {
            Inputs::One(text) => vec![EmbedInput::Text(text)],
            Inputs::Many(texts) => texts.into_iter().map(EmbedInput::Text).collect(),
            Inputs::Tokens(ids) => vec![EmbedInput::Tokens(ids)],
            Inputs::ManyTokens(lists) => lists.into_iter().map(EmbedInput::Tokens).collect(),
        }
    }
}
