//! The service's errors as Anthropic answers them: `{"type": "error", "error": {"type",
//! "message"}}`, with Anthropic's status and error type for the kind.

use super::wire::{ErrorBody, ErrorDetail};
use crate::service::{ErrorKind, ServiceError};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A handler's error in Anthropic's shape; `?` turns any service error into one.
#[derive(Debug)]
pub struct AnthropicError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for AnthropicError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// Anthropic's "temporarily overloaded" status, which its clients retry.
fn overloaded() -> StatusCode {
    StatusCode::from_u16(529).expect("529 is a valid status")
}

fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::ContextOverflow => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Overloaded => overloaded(),
        ErrorKind::EngineStopped => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::InsufficientMemory | ErrorKind::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::Protocol(status) => status,
    }
}

/// Anthropic's error type for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        408 | 504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The body alone, for an error that arrives mid-stream.
pub fn detail(error: &ServiceError) -> ErrorDetail {
    ErrorDetail { kind: error_type(status(error.kind())), message: error.client_message() }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let body = ErrorBody { kind: "error", error: detail(&self.0) };
        (status(self.0.kind()), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_take_anthropic_s_statuses_and_types() {
        let cases = [
            (ServiceError::invalid("bad"), 400, "invalid_request_error"),
            (ServiceError::ModelNotFound("x".into()), 404, "not_found_error"),
            (ServiceError::protocol(StatusCode::UNAUTHORIZED, "key"), 401, "authentication_error"),
            (ServiceError::protocol(StatusCode::PAYLOAD_TOO_LARGE, "big"), 413, "request_too_large"),
            (ServiceError::protocol(StatusCode::METHOD_NOT_ALLOWED, "GET"), 405, "invalid_request_error"),
            (ServiceError::Internal("secret path".into()), 500, "api_error"),
        ];
        for (error, code, kind) in cases {
            assert_eq!(status(error.kind()).as_u16(), code, "{error}");
            assert_eq!(detail(&error).kind, kind, "{error}");
        }
        assert!(!detail(&ServiceError::Internal("secret path".into())).message.contains("secret"));
    }
}
