//! Reading a request body's common parts, with errors in the dialect's shape: the JSON
//! itself, the model's name, and Ollama's `keep_alive`.

use crate::error::{ApiError, Dialect};
use crate::residency::KeepAlive;
use axum::body::Bytes;
use hearth_store::ModelName;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn parse<T: DeserializeOwned>(dialect: Dialect, body: &Bytes) -> Result<T, ApiError> {
    // JSON is UTF-8 (RFC 8259), and serde_json does not check inside values it skips.
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(dialect, format!("invalid request body: not UTF-8 ({e})")))?;
    serde_json::from_str(text).map_err(|e| ApiError::bad_request(dialect, format!("invalid request body: {e}")))
}

pub fn model_name(dialect: Dialect, text: &str) -> Result<ModelName, ApiError> {
    if text.is_empty() {
        return Err(ApiError::bad_request(dialect, "model is required"));
    }
    ModelName::parse(text).map_err(|e| ApiError::bad_request(dialect, e.to_string()))
}

pub fn keep_alive(dialect: Dialect, value: Option<&Value>) -> Result<Option<KeepAlive>, ApiError> {
    let value = value.filter(|v| !v.is_null());
    value.map(KeepAlive::parse).transpose().map_err(|e| ApiError::bad_request(dialect, e))
}
