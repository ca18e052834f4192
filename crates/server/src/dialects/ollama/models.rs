//! Ollama's model endpoints: `tags`, `show`, `ps`, `delete`, `copy`, `version`.

use super::wire::{CopyBody, Details, NameBody, Running, RunningEntry, Show, TagEntry, Tags, Version};
use super::OllamaError;
use crate::dialects::request;
use crate::service::ModelDescription;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hearth_core::clock::rfc3339;
use hearth_store::ModelConfig;
use serde_json::{json, Map};
use std::time::{Duration, SystemTime};

fn details(config: &ModelConfig) -> Details {
    Details {
        parent_model: "",
        format: if config.model_format.is_empty() { "gguf".into() } else { config.model_format.clone() },
        family: config.model_family.clone(),
        families: vec![config.model_family.clone()],
        parameter_size: config.model_type.clone(),
        quantization_level: config.file_type.clone(),
    }
}

/// `GET /api/tags`: the models in the store.
pub async fn tags(State(state): State<AppState>) -> Result<Json<Tags>, OllamaError> {
    let models = state.service.list().await?;
    let models = models
        .into_iter()
        .map(|m| TagEntry {
            name: m.name.to_string(),
            model: m.name.to_string(),
            modified_at: rfc3339(m.modified),
            size: m.size,
            digest: m.digest,
            details: details(&m.config),
        })
        .collect();
    Ok(Json(Tags { models }))
}

/// `POST /api/show`: what a model is and what is stored with it.
pub async fn show(State(state): State<AppState>, body: Bytes) -> Result<Json<Show>, OllamaError> {
    let name = request::model_name(request::parse::<NameBody>(&body)?.given())?;
    let model = state.service.describe(&name).await?;
    let parameters: Vec<String> = model
        .spec
        .parameters
        .values()
        .iter()
        .flat_map(|(k, v)| hearth_core::parameters::texts(v).into_iter().map(move |t| format!("{k:<16}{t}")))
        .collect();
    let info = &model.info;
    let mut model_info = Map::new();
    model_info.insert("general.architecture".into(), json!(info.architecture));
    model_info.insert("general.parameter_count".into(), json!(info.parameter_count));
    if let Some(n) = info.context_length {
        model_info.insert(format!("{}.context_length", info.architecture), json!(n));
    }
    if let Some(n) = info.vocab_size {
        model_info.insert(format!("{}.vocab_size", info.architecture), json!(n));
    }
    // Every model can call tools (through the generic format when its template has none)
    // and embed, as Ollama reports for models that can.
    let mut capabilities = vec!["completion", "tools", "embedding"];
    if model.template().is_some() {
        capabilities.push("chat");
    }
    if hearth_core::think::template_thinks(model.template()) {
        capabilities.push("thinking");
    }
    // Advisory: a model whose memory cannot be estimated is still described.
    let fit = state.service.residency.fit(&name, &model.spec).await.ok().flatten();
    Ok(Json(Show {
        modelfile: model.spec.modelfile(&name),
        parameters: parameters.join("\n"),
        template: model.template().unwrap_or_default().to_string(),
        system: model.spec.system.clone(),
        license: model.license.clone(),
        details: details(&model.config),
        model_info,
        capabilities,
        modified_at: rfc3339(model.modified),
        context_length: default_context(&model),
        fit,
    }))
}

/// The context a request for `model` gets unless it asks for another.
fn default_context(model: &ModelDescription) -> Option<u32> {
    let stored = model.spec.parameters.settings().ok()?.num_ctx;
    hearth_engine::limits::model_context_size(&model.info, stored).ok()
}

/// `GET /api/ps`: the loaded models, their size and when they unload.
pub async fn ps(State(state): State<AppState>) -> Json<Running> {
    let models = state.service.running().await;
    let models = models
        .into_iter()
        .map(|m| RunningEntry {
            name: m.name.to_string(),
            model: m.name.to_string(),
            size: m.size,
            digest: m.digest,
            details: details(&m.config),
            // A model that never unloads shows a far-future expiry, as Ollama does.
            expires_at: rfc3339(m.expires.unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799))),
            size_vram: 0,
            context_length: m.context_length,
        })
        .collect();
    Json(Running { models })
}

/// `DELETE /api/delete`: removes a model (and blobs nothing else uses).
pub async fn delete(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, OllamaError> {
    let name = request::model_name(request::parse::<NameBody>(&body)?.given())?;
    state.service.delete(&name).await?;
    Ok(StatusCode::OK)
}

/// `POST /api/copy`: a second name for a model.
pub async fn copy(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, OllamaError> {
    let body: CopyBody = request::parse(&body)?;
    let (source, destination) = (request::model_name(&body.source)?, request::model_name(&body.destination)?);
    state.service.copy(&source, destination).await?;
    Ok(StatusCode::OK)
}

pub async fn version() -> Json<Version> {
    Json(Version { version: env!("CARGO_PKG_VERSION") })
}
