//! Ollama's endpoints that change the store: `/api/pull` and `/api/create` (progress as
//! NDJSON status lines, or one reply with `stream: false`) and `/api/blobs/:digest` (the
//! upload `create` refers to by digest). The store's work runs on blocking threads.

use super::generate::{ndjson, ndjson_response};
use super::wire::{CreateBody, ProgressLine, PullBody};
use super::OllamaError;
use crate::dialects::request;
use crate::models::{self, Base, ModelError, Sources};
use crate::service::ServiceError;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::StreamExt;
use hearth_store::{Digest, ModelName, Modelfile, Progress, Store, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Byte counts go out at most this often per blob, so a fast download is not a flood.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

fn bad(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(message)
}

/// Runs `work` on a blocking thread, its progress as Ollama's status lines: NDJSON ending
/// in `{"status": "success"}` or `{"error"}`, or with `stream: false` one reply whose
/// status code tells how it went.
async fn with_progress(
    streaming: bool,
    work: impl FnOnce(&mut dyn FnMut(Progress<'_>)) -> Result<(), ModelError> + Send + 'static,
) -> Result<Response, OllamaError> {
    let (lines, receiver) = flume::unbounded::<ProgressLine>();
    let task = tokio::task::spawn_blocking(move || {
        let mut last_sent: HashMap<String, Instant> = HashMap::new();
        let mut report = |progress: Progress<'_>| {
            let line = match progress {
                Progress::Step(step) => ProgressLine::Status { status: step.to_string() },
                Progress::Bytes { blob, done, total } => {
                    let finished = Some(done) == total;
                    let now = Instant::now();
                    if !finished && last_sent.get(blob).is_some_and(|at| now - *at < PROGRESS_EVERY) {
                        return;
                    }
                    last_sent.insert(blob.to_string(), now);
                    let short = blob.strip_prefix("sha256:").map_or(blob, |hex| &hex[..hex.len().min(12)]);
                    let status = format!("pulling {short}");
                    ProgressLine::Bytes { status, digest: blob.to_string(), completed: done, total }
                }
            };
            let _ = lines.send(line);
        };
        let result = work(&mut report).map_err(ServiceError::Model);
        let last = match &result {
            Ok(()) => success(),
            Err(e) => ProgressLine::Error { error: e.client_message() },
        };
        let _ = lines.send(last);
        result
    });
    if !streaming {
        return match task.await {
            Ok(Ok(())) => Ok(Json(success()).into_response()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(ServiceError::Internal(format!("the store task failed: {e}")).into()),
        };
    }
    let body = receiver.into_stream().map(|line| Ok::<_, std::convert::Infallible>(ndjson(&line)));
    Ok(ndjson_response(Body::from_stream(body)))
}

fn success() -> ProgressLine {
    ProgressLine::Status { status: "success".into() }
}

/// `POST /api/pull`: fetches a model by any name `hearth pull` takes.
pub async fn pull(State(state): State<AppState>, body: Bytes) -> Result<Response, OllamaError> {
    let body: PullBody = request::parse(&body)?;
    let arg = if body.model.is_empty() { body.name } else { body.model };
    if arg.is_empty() {
        return Err(bad("model is required").into());
    }
    models::name_to_pull(&arg).map_err(|e| bad(e.to_string()))?;
    let store: Arc<Store> = state.service.store.clone();
    let sources = Sources { insecure: body.insecure, ..Sources::from_env() };
    with_progress(body.stream.unwrap_or(true), move |report| {
        report(Progress::Step("pulling manifest"));
        models::pull(&store, &arg, &sources, report).map(drop)
    })
    .await
}

/// `POST /api/create`: a model from another, or from an uploaded GGUF, with parameters,
/// template, system message, messages and license.
pub async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, OllamaError> {
    let body: CreateBody = request::parse(&body)?;
    let name = if body.model.is_empty() { &body.name } else { &body.model };
    let name = request::model_name(name)?;
    if body.quantize.is_some() {
        return Err(bad("quantize is not supported by create; pull or create from a quantized GGUF").into());
    }
    if body.adapters.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(bad("adapters (LoRA) are not supported").into());
    }
    let streaming = body.stream.unwrap_or(true);
    let (modelfile, base) = recipe(body)?;
    let store: Arc<Store> = state.service.store.clone();
    // What is wrong with the recipe is refused now, with a status code, rather than on
    // the progress stream.
    // (It reads the base's manifest and GGUF header: a blocking thread's work.)
    let blob = match &base {
        Base::Blob(digest) => Some(digest.clone()),
        _ => None,
    };
    let check = {
        let (store, from) = (store.clone(), modelfile.from.clone());
        let (parameters, template) = (modelfile.parameters.clone(), modelfile.template.clone());
        tokio::task::spawn_blocking(move || {
            let gguf = match blob {
                Some(digest) => Some(store.blob_path(&digest)),
                None => ModelName::parse(&from).ok().and_then(|from| store.model_spec(&from).ok()).map(|s| s.path),
            };
            models::check_settings(&parameters, template.as_deref(), gguf.as_deref())
        })
    };
    check
        .await
        .map_err(|e| ServiceError::Internal(format!("checking the model failed: {e}")))?
        .map_err(ServiceError::Model)?;
    // A model that is loaded under this name must pick up the new definition.
    state.service.unload(&name);
    with_progress(streaming, move |report| models::create(&store, &name, &modelfile, base, report)).await
}

fn recipe(body: CreateBody) -> Result<(Modelfile, Base<'static>), ServiceError> {
    let mut modelfile = match &body.modelfile {
        Some(text) => Modelfile::parse(text).map_err(|e| bad(e.to_string()))?,
        None => Modelfile::default(),
    };
    let ggufs: Vec<(&String, &String)> = body.files.iter().filter(|(file, _)| file.ends_with(".gguf")).collect();
    let base = match ggufs.as_slice() {
        [] => {
            if let Some(from) = body.from {
                modelfile.from = from;
            }
            if modelfile.from.is_empty() {
                return Err(bad("create needs from (a model) or files (an uploaded GGUF)"));
            }
            Base::Stored
        }
        [(file, digest)] => {
            let digest = Digest::parse(digest).ok_or_else(|| bad(format!("files.{file}: {digest} is not a digest")))?;
            modelfile.from = (*file).clone();
            Base::Blob(digest)
        }
        _ => return Err(bad("files holds more than one GGUF; split models are not supported")),
    };
    for (name, value) in body.parameters {
        modelfile.parameters.insert(name, value);
    }
    if body.template.is_some() {
        modelfile.template = body.template;
    }
    if body.system.is_some() {
        modelfile.system = body.system;
    }
    modelfile.messages.extend(body.messages.into_iter().map(|m| (m.role, m.content)));
    match body.license {
        Some(Value::String(text)) => modelfile.license.push(text),
        Some(Value::Array(texts)) => {
            modelfile.license.extend(texts.iter().filter_map(|t| t.as_str().map(String::from)))
        }
        _ => {}
    }
    Ok((modelfile, base))
}

fn digest_of(text: &str) -> Result<Digest, ServiceError> {
    Digest::parse(text).ok_or_else(|| bad(format!("{text} is not a digest (sha256:<64 hex digits>)")))
}

/// `HEAD /api/blobs/:digest`: 200 when the store has the blob, else 404.
pub async fn has_blob(State(state): State<AppState>, Path(digest): Path<String>) -> Result<StatusCode, OllamaError> {
    let digest = digest_of(&digest)?;
    let found = state.service.with_store(move |store| Ok(store.has_blob(&digest))).await?;
    Ok(if found { StatusCode::OK } else { StatusCode::NOT_FOUND })
}

/// `POST /api/blobs/:digest`: stores the body as that blob, if its bytes match.
pub async fn upload_blob(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    body: Body,
) -> Result<StatusCode, OllamaError> {
    let digest = digest_of(&digest)?;
    let store: Arc<Store> = state.service.store.clone();
    let known = digest.clone();
    if state.service.with_store(move |store| Ok(store.has_blob(&known))).await? {
        return Ok(StatusCode::OK);
    }
    let (chunks, receiver) = flume::bounded::<Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || -> Result<u64, StoreError> {
        let mut upload = store.upload_blob(digest)?;
        for chunk in receiver.iter() {
            upload.write(&chunk)?;
        }
        upload.finish()
    });
    let mut body = body.into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| bad(format!("the upload was cut off: {e}")))?;
        if chunks.send_async(chunk).await.is_err() {
            break;
        }
    }
    drop(chunks);
    match writer.await {
        Ok(Ok(_)) => Ok(StatusCode::CREATED),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ServiceError::Internal(format!("the upload task failed: {e}")).into()),
    }
}
