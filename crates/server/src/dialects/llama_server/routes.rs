//! `POST /tokenize`, `/detokenize` and `/apply-template`, as llama.cpp's server answers them,
//! on a lease of the model asked for (or the one loaded). Errors take OpenAI's shape, as
//! llama.cpp's server's do.

use super::wire::{
    Applied, ApplyTemplateBody, DetokenizeBody, Detokenized, PieceText, TokenPiece, TokenizeBody, Tokenized, Tokens,
};
use crate::dialects::openai::OpenAiError;
use crate::dialects::request;
use crate::residency::Wanted;
use crate::service::{Lease, ServiceError};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use hearth_engine::Cancellation;

/// A lease on the model a body names; with none named, on the one model loaded (as
/// llama.cpp's server, which has one, answers).
async fn lease(state: &AppState, model: Option<&str>) -> Result<Lease, ServiceError> {
    let name = match model {
        Some(model) => request::model_name(model)?,
        None => match state.service.residency.loaded().as_slice() {
            [only] => only.name.clone(),
            loaded => {
                return Err(ServiceError::invalid(format!("model is required: {} models are loaded", loaded.len())))
            }
        },
    };
    state.service.lease(&name, Wanted::default()).await
}

pub async fn tokenize(State(state): State<AppState>, body: Bytes) -> Result<Json<Tokenized>, OpenAiError> {
    let body: TokenizeBody = request::parse(&body)?;
    let lease = lease(&state, body.model.as_deref()).await?;
    let tokens = state
        .service
        .on_engine(lease, move |engine| {
            let ids = engine.tokenize(&body.content, body.add_special, body.parse_special);
            if !body.with_pieces {
                return Ok(Tokens::Ids(ids));
            }
            let pieces = engine.token_bytes(&ids)?.into_iter().map(|bytes| match String::from_utf8(bytes) {
                Ok(text) => PieceText::Text(text),
                Err(e) => PieceText::Bytes(e.into_bytes()),
            });
            Ok(Tokens::WithPieces(ids.iter().zip(pieces).map(|(&id, piece)| TokenPiece { id, piece }).collect()))
        })
        .await?;
    Ok(Json(Tokenized { tokens }))
}

pub async fn detokenize(State(state): State<AppState>, body: Bytes) -> Result<Json<Detokenized>, OpenAiError> {
    let body: DetokenizeBody = request::parse(&body)?;
    let lease = lease(&state, body.model.as_deref()).await?;
    let content = state.service.on_engine(lease, move |engine| engine.detokenize(&body.tokens)).await?;
    Ok(Json(Detokenized { content }))
}

pub async fn apply_template(State(state): State<AppState>, body: Bytes) -> Result<Json<Applied>, OpenAiError> {
    let body: ApplyTemplateBody = request::parse(&body)?;
    if body.messages.is_empty() {
        return Err(ServiceError::invalid("messages must not be empty").into());
    }
    let lease = lease(&state, body.model.as_deref()).await?;
    let prompt = state
        .service
        .on_engine(lease, move |engine| engine.apply_template(&body.messages, &Cancellation::never()))
        .await?;
    Ok(Json(Applied { prompt }))
}
