//! The service's errors as Ollama answers them: `{"error": "..."}` with the status that
//! fits the kind.

use super::wire::ErrorBody;
use crate::service::{ErrorKind, ServiceError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A handler's error in Ollama's shape; `?` turns any service error into one.
#[derive(Debug)]
pub struct OllamaError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for OllamaError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::ContextOverflow => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Overloaded | ErrorKind::EngineStopped => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::InsufficientMemory | ErrorKind::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Protocol(status) => status,
    }
}

/// The body alone, for an error that arrives mid-stream.
pub fn body(error: &ServiceError) -> ErrorBody {
    ErrorBody { error: error.client_message() }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        (status(self.0.kind()), Json(body(&self.0))).into_response()
    }
}
