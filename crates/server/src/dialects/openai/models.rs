//! `/v1/models` and `/v1/models/{id}`: the models in the store.

use super::wire::{List, Model};
use super::OpenAiError;
use crate::service::{ServiceError, StoredModel};
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use hearth_core::clock::unix_seconds;
use hearth_store::ModelName;

fn model(stored: &StoredModel) -> Model {
    Model {
        id: stored.name.to_string(),
        object: "model",
        created: unix_seconds(stored.modified),
        owned_by: stored.name.namespace.clone(),
    }
}

/// `GET /v1/models`.
pub async fn models(State(state): State<AppState>) -> Result<Json<List<Model>>, OpenAiError> {
    let stored = state.service.list().await?;
    Ok(Json(List { object: "list", data: stored.iter().map(model).collect() }))
}

/// `GET /v1/models/{id}`: one model; the id may hold `/` and `:` (`hf.co/org/repo:Q4_K_M`).
pub async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Model>, OpenAiError> {
    let not_found = || ServiceError::ModelNotFound(id.clone());
    let name = ModelName::parse(&id).map_err(|_| not_found())?;
    let stored = state.service.list().await?;
    let found = stored.iter().find(|m| m.name.same_as(&name)).ok_or_else(not_found)?;
    Ok(Json(model(found)))
}
