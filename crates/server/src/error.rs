//! Errors as each dialect shapes them: Ollama's `{"error": "..."}` and OpenAI's
//! `{"error": {"message", "type", "param", "code"}}`, with the status that fits.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_core::GenerateError;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Ollama,
    OpenAi,
}

impl Dialect {
    /// The dialect a path speaks: OpenAI's under `/v1`, Ollama's everywhere else, so errors
    /// raised before any handler runs (routing, limits, timeouts) still take the right shape.
    pub fn for_path(path: &str) -> Self {
        if path == "/v1" || path.starts_with("/v1/") {
            Dialect::OpenAi
        } else {
            Dialect::Ollama
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub dialect: Dialect,
}

impl ApiError {
    pub fn new(dialect: Dialect, status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), dialect }
    }

    pub fn bad_request(dialect: Dialect, message: impl Into<String>) -> Self {
        Self::new(dialect, StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(dialect: Dialect, message: impl Into<String>) -> Self {
        Self::new(dialect, StatusCode::NOT_FOUND, message)
    }

    pub fn internal(dialect: Dialect, message: impl Into<String>) -> Self {
        Self::new(dialect, StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// An engine's refusal: the request's fault (400) or the server's (500).
    pub fn from_generate(dialect: Dialect, error: &GenerateError) -> Self {
        let status = match error {
            GenerateError::PromptTooLong { .. } | GenerateError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            GenerateError::EngineStopped(_) => StatusCode::SERVICE_UNAVAILABLE,
            GenerateError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(dialect, status, error.to_string())
    }

    /// The body alone, for an error that arrives mid-stream.
    pub fn body(&self) -> serde_json::Value {
        match self.dialect {
            Dialect::Ollama => json!({ "error": self.message }),
            Dialect::OpenAi => {
                let (kind, code) = match self.status {
                    StatusCode::NOT_FOUND => ("invalid_request_error", json!("model_not_found")),
                    s if s.is_client_error() => ("invalid_request_error", json!(null)),
                    StatusCode::SERVICE_UNAVAILABLE => ("server_error", json!("overloaded")),
                    _ => ("server_error", json!(null)),
                };
                json!({ "error": { "message": self.message, "type": kind, "param": null, "code": code } })
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
