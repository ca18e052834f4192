//! `POST /v1/responses`, `GET /v1/responses/{id}` and `DELETE /v1/responses/{id}`: a request
//! (continuing a kept response when it names one) becomes a lease and an engine request;
//! [`super::answer`] sends back what the engine says.

use super::answer::{answer, Reply};
use super::wire::{CreateBody, Deleted};
use crate::dialects::openai::OpenAiError;
use crate::dialects::request;
use crate::residency::Wanted;
use crate::service::{self, Chat, ServiceError};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hearth_core::ChatMessage;

fn no_such(id: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "no response with id '{id}' is kept here (it was not stored, was deleted, or was forgotten)"
    ))
}

pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, OpenAiError> {
    let body: CreateBody = request::parse(&body)?;
    let name = body.model_name()?;
    let mut history = match &body.previous_response_id {
        Some(id) => state.responses.get(id).ok_or_else(|| no_such(id))?.conversation.clone(),
        None => Vec::new(),
    };
    body.input_messages(&mut history)?;
    let (tools, choice) = body.tools()?;
    let lease = state.service.lease(&name, Wanted::default()).await?;
    let sampling = body.sampling(&lease.spec.parameters)?;
    // Instructions are this request's alone: a continuation does not inherit them.
    let messages = body.instructions.iter().map(|i| ChatMessage::system(i.clone())).chain(history.iter().cloned());
    let parallel_calls = body.parallel_tool_calls.unwrap_or(true);
    let chat =
        Chat { messages: messages.collect(), sampling, tools: &tools, choice: &choice, parallel_calls, logprobs: None };
    let (mut request, tool_use) = service::chat_request(&lease, chat)?;
    request.thinking = body.thinking(lease.thinks());
    let reply = Reply::new(&body, history, state.responses.clone());
    answer(&state, lease, request, tool_use, reply).await
}

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, OpenAiError> {
    let kept = state.responses.get(&id).ok_or_else(|| no_such(&id))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], kept.json.clone()).into_response())
}

pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Deleted>, OpenAiError> {
    if !state.responses.remove(&id) {
        return Err(no_such(&id).into());
    }
    Ok(Json(Deleted { id, object: "response", deleted: true }))
}
