//! `/v1/messages` and `/v1/messages/count_tokens`: a request becomes a lease and an engine
//! request; [`super::answer`] sends back what the engine says.

use super::answer::{answer, Reply};
use super::wire::{CountTokens, MessagesBody};
use super::AnthropicError;
use crate::dialects::request;
use crate::residency::Wanted;
use crate::service::{self, Chat, Lease, ServiceError};
use crate::tools::ToolUse;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use hearth_core::GenerateRequest;

/// The engine request a body asks for, on a lease of its model, and whether thinking is
/// sent back. `answering` is false when only the prompt's tokens are to be counted (no
/// `max_tokens` then).
async fn chat_request(
    state: &AppState,
    body: &MessagesBody,
    answering: bool,
) -> Result<(Lease, GenerateRequest, Option<ToolUse>, bool), ServiceError> {
    let name = body.model_name()?;
    let messages = body.chat_messages()?;
    let (tools, choice, parallel_calls) = body.tools()?;
    let lease = state.service.lease(&name, Wanted::default()).await?;
    let sampling = body.sampling(&lease.spec.parameters, answering)?;
    let chat = Chat { messages, sampling, tools: &tools, choice: &choice, parallel_calls, logprobs: None };
    let (mut request, tool_use) = service::chat_request(&lease, chat)?;
    let (thinking, shown) = body.thinking(lease.thinks())?;
    request.thinking = thinking;
    Ok((lease, request, tool_use, shown))
}

pub async fn messages(State(state): State<AppState>, body: Bytes) -> Result<Response, AnthropicError> {
    let body: MessagesBody = request::parse(&body)?;
    let (lease, request, tool_use, thinking) = chat_request(&state, &body, true).await?;
    // Only the request's own stop sequences are named back (not the model's stored ones).
    let stop_sequences = body.stop_sequences.as_deref().unwrap_or_default();
    let reply = Reply::new(&body.model, body.stream.unwrap_or(false), stop_sequences, thinking);
    answer(&state, lease, request, tool_use, reply).await
}

pub async fn count_tokens(State(state): State<AppState>, body: Bytes) -> Result<Json<CountTokens>, AnthropicError> {
    let body: MessagesBody = request::parse(&body)?;
    let (lease, request, ..) = chat_request(&state, &body, false).await?;
    let input_tokens = state.service.count_tokens(lease, request).await?;
    Ok(Json(CountTokens { input_tokens }))
}
