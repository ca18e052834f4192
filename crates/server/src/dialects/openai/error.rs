//! The service's errors as OpenAI answers them: `{"error": {"message", "type", "param",
//! "code"}}`, with the status and code that fit the kind.

use super::wire::{ErrorBody, ErrorDetail};
use crate::service::{ErrorKind, ServiceError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A handler's error in OpenAI's shape; `?` turns any service error into one.
#[derive(Debug)]
pub struct OpenAiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for OpenAiError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// The status, and OpenAI's `code` where it has one for the kind.
fn status_and_code(kind: ErrorKind) -> (StatusCode, Option<&'static str>) {
    match kind {
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, None),
        ErrorKind::ContextOverflow => (StatusCode::BAD_REQUEST, Some("context_length_exceeded")),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, None),
        ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, None),
        ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")),
        ErrorKind::EngineStopped => (StatusCode::SERVICE_UNAVAILABLE, Some("engine_stopped")),
        ErrorKind::InsufficientMemory => (StatusCode::INSUFFICIENT_STORAGE, Some("insufficient_memory")),
        ErrorKind::InsufficientStorage => (StatusCode::INSUFFICIENT_STORAGE, Some("insufficient_storage")),
        ErrorKind::Upstream => (StatusCode::BAD_GATEWAY, Some("upstream_error")),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, None),
        ErrorKind::Protocol(status) => (status, protocol_code(status)),
    }
}

/// OpenAI's codes for the refusals of the auth layer.
fn protocol_code(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::UNAUTHORIZED => Some("invalid_api_key"),
        StatusCode::FORBIDDEN => Some("permission_denied"),
        StatusCode::TOO_MANY_REQUESTS => Some("rate_limit_exceeded"),
        _ => None,
    }
}

pub fn status(kind: ErrorKind) -> StatusCode {
    status_and_code(kind).0
}

/// The body alone, for an error that arrives mid-stream.
pub fn body(error: &ServiceError) -> ErrorBody {
    let (status, code) = status_and_code(error.kind());
    let (message, code) = match error {
        // OpenAI's words and code for a model it does not have.
        ServiceError::ModelNotFound(name) => (
            format!("The model '{name}' does not exist: it was not found in the store; pull it first"),
            Some("model_not_found"),
        ),
        other => (other.client_message(), code),
    };
    let kind = if status.is_client_error() { "invalid_request_error" } else { "server_error" };
    ErrorBody { error: ErrorDetail { message, kind, param: None, code } }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (status(self.0.kind()), Json(body(&self.0))).into_response()
    }
}
