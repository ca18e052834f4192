//! The wire formats hearth speaks, one folder each: typed request and response bodies, the
//! handlers that translate them into calls of the service layer, and one mapping from the
//! service's error kinds to the dialect's statuses and error bodies.

pub mod anthropic;
pub mod hearth;
pub mod llama_server;
pub mod ollama;
pub mod openai;
pub mod request;
pub mod responses;
pub mod sse;

use crate::service::ServiceError;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Ollama,
    OpenAi,
    Anthropic,
}

impl Dialect {
    /// The dialect a path speaks: Anthropic's under `/v1/messages`, OpenAI's elsewhere under
    /// `/v1` and at llama.cpp's server's utility endpoints (whose errors are OpenAI's
    /// shape), Ollama's everywhere else, so errors raised before any handler runs (routing,
    /// limits, timeouts) still take the right shape.
    pub fn for_path(path: &str) -> Self {
        const LLAMA_SERVER: [&str; 3] = ["/tokenize", "/detokenize", "/apply-template"];
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Dialect::Anthropic
        } else if path == "/v1" || path.starts_with("/v1/") || LLAMA_SERVER.contains(&path) {
            Dialect::OpenAi
        } else {
            Dialect::Ollama
        }
    }

    /// `error` as this dialect answers it.
    pub fn error_response(self, error: ServiceError) -> Response {
        match self {
            Dialect::Ollama => ollama::OllamaError(error).into_response(),
            Dialect::OpenAi => openai::OpenAiError(error).into_response(),
            Dialect::Anthropic => anthropic::AnthropicError(error).into_response(),
        }
    }
}
