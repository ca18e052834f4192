//! Ollama's embeddings: `/api/embed` (unit-length vectors) and the older `/api/embeddings`
//! (one prompt, the vector as the model gives it).

use super::wire::{EmbedBody, Embedded, Embedding, EmbeddingsBody};
use super::OllamaError;
use crate::dialects::request;
use crate::service::embed::shorten;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use hearth_core::{EmbedInput, EmbedRequest};
use std::time::Instant;

/// `POST /api/embed`: `{"model", "input": text or texts}` → `{"embeddings": [[...]]}`.
pub async fn embed(State(state): State<AppState>, body: Bytes) -> Result<Json<Embedded>, OllamaError> {
    let started = Instant::now();
    let body: EmbedBody = request::parse(&body)?;
    let name = request::model_name(&body.model)?;
    let wanted = request::wanted(body.keep_alive.as_ref(), body.options.as_ref())?;
    let inputs = body.input.map(request::Inputs::into_inputs).unwrap_or_default();
    let request = EmbedRequest { inputs, truncate: body.truncate.unwrap_or(true), normalize: true };
    let lease = state.service.lease(&name, wanted).await?;
    let load_duration = lease.load_duration;
    let mut embeddings = state.service.embed(lease, request).await?;
    shorten(&mut embeddings.vectors, body.dimensions)?;
    Ok(Json(Embedded {
        model: name.to_string(),
        embeddings: embeddings.vectors,
        total_duration: started.elapsed().as_nanos() as u64,
        load_duration: load_duration.as_nanos() as u64,
        prompt_eval_count: embeddings.prompt_tokens,
    }))
}

/// `POST /api/embeddings` (Ollama's older endpoint): one prompt, a vector as the model gives
/// it (not normalized).
pub async fn embeddings(State(state): State<AppState>, body: Bytes) -> Result<Json<Embedding>, OllamaError> {
    let body: EmbeddingsBody = request::parse(&body)?;
    let name = request::model_name(&body.model)?;
    let wanted = request::wanted(body.keep_alive.as_ref(), body.options.as_ref())?;
    let inputs = if body.prompt.is_empty() { Vec::new() } else { vec![EmbedInput::Text(body.prompt)] };
    let lease = state.service.lease(&name, wanted).await?;
    let embeddings = state.service.embed(lease, EmbedRequest { inputs, truncate: true, normalize: false }).await?;
    Ok(Json(Embedding { embedding: embeddings.vectors.into_iter().next().unwrap_or_default() }))
}
