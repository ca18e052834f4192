//! Ollama's dialect: `/api/generate` and `/api/chat` (NDJSON streaming by default, durations
//! in nanoseconds, `done_reason`), and the model endpoints (`tags`, `show`, `ps`, `delete`,
//! `copy`, `version`), with Ollama's field names, so Ollama's clients work unchanged.

use crate::body;
use crate::error::{ApiError, Dialect};
use crate::format;
use crate::generate::{self, energy_fields, Finished, Piece};
use crate::residency::{KeepAlive, Lease};
use crate::tools::{self, ToolUse};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use hearth_core::clock::rfc3339;
use hearth_core::{check_top_logprobs, ChatMessage, GenerateRequest, Prompt, Role, TokenLogprob, ToolCall};
use hearth_store::{manifest, ModelName};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant, SystemTime};

const DIALECT: Dialect = Dialect::Ollama;

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    body::parse(DIALECT, body)
}

fn model_name(text: &str) -> Result<ModelName, ApiError> {
    body::model_name(DIALECT, text)
}

fn keep_alive(value: Option<&Value>) -> Result<Option<KeepAlive>, ApiError> {
    body::keep_alive(DIALECT, value)
}

/// Refuses what hearth cannot do, instead of silently answering something else.
fn refuse_unsupported(images: Option<&Vec<Value>>, template: Option<&str>) -> Result<(), ApiError> {
    if images.is_some_and(|i| !i.is_empty()) {
        return Err(ApiError::bad_request(DIALECT, "images are not supported: the model runs text only"));
    }
    if template.is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::bad_request(
            DIALECT,
            "template (a Go template) is not supported; hearth uses the model's Jinja chat template, or raw: true",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct GenerateBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    system: Option<String>,
    template: Option<String>,
    #[serde(default)]
    raw: bool,
    stream: Option<bool>,
    format: Option<Value>,
    options: Option<Map<String, Value>>,
    keep_alive: Option<Value>,
    images: Option<Vec<Value>>,
    #[serde(default)]
    logprobs: bool,
    top_logprobs: Option<u32>,
}

#[derive(Deserialize)]
pub struct ChatBody {
    #[serde(default)]
    model: String,
    messages: Option<Vec<MessageBody>>,
    stream: Option<bool>,
    format: Option<Value>,
    options: Option<Map<String, Value>>,
    keep_alive: Option<Value>,
    tools: Option<Vec<Value>>,
    #[serde(default)]
    logprobs: bool,
    top_logprobs: Option<u32>,
}

#[derive(Deserialize)]
struct MessageBody {
    role: String,
    #[serde(default)]
    content: String,
    images: Option<Vec<Value>>,
    #[serde(default)]
    tool_calls: Vec<ToolCallBody>,
    tool_name: Option<String>,
}

/// Ollama's `{"function": {"name", "arguments": {...}}}`.
#[derive(Deserialize)]
struct ToolCallBody {
    id: Option<String>,
    function: FunctionBody,
}

#[derive(Deserialize)]
struct FunctionBody {
    name: String,
    #[serde(default)]
    arguments: Value,
}

impl MessageBody {
    fn into_message(self) -> ChatMessage {
        let mut message = ChatMessage::new(Role::parse(&self.role), self.content);
        message.tool_calls = self
            .tool_calls
            .into_iter()
            .map(|c| ToolCall {
                id: c.id.unwrap_or_else(tools::call_id),
                name: c.function.name,
                arguments: c.function.arguments,
            })
            .collect();
        message.tool_name = self.tool_name;
        message
    }
}

/// `logprobs` and `top_logprobs`, as the engine takes them.
fn logprobs(wanted: bool, top: Option<u32>) -> Result<Option<u32>, ApiError> {
    let top = top.unwrap_or(0);
    check_top_logprobs(top).map_err(|e| ApiError::bad_request(DIALECT, e))?;
    Ok((wanted || top > 0).then_some(top))
}

pub async fn generate(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body: GenerateBody = parse(&body)?;
    let name = model_name(&body.model)?;
    let keep_alive = keep_alive(body.keep_alive.as_ref())?;
    refuse_unsupported(body.images.as_ref(), body.template.as_deref())?;
    let grammar = format::ollama(body.format.as_ref()).map_err(|e| ApiError::bad_request(DIALECT, e))?;
    let logprobs = logprobs(body.logprobs, body.top_logprobs)?;
    if body.prompt.is_empty() {
        return load_or_unload(&state, &name, keep_alive, "response").await;
    }
    let options = body.options.unwrap_or_default();
    let lease = state.residency.acquire(&name, keep_alive, DIALECT).await?;
    let mut sampling =
        generate::sampling(&lease.model.spec.parameters, &options).map_err(|e| ApiError::bad_request(DIALECT, e))?;
    sampling.grammar = grammar;
    let prompt = if body.raw {
        Prompt::Raw(body.prompt)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = body.system.or_else(|| lease.model.spec.system.clone()) {
            messages.push(ChatMessage::system(system));
        }
        messages.push(ChatMessage::user(body.prompt));
        Prompt::Chat(messages)
    };
    let mut request = GenerateRequest::new(prompt, sampling);
    request.logprobs = logprobs;
    answer(&state, lease, request, None, name, started, body.stream.unwrap_or(true), Kind::Generate).await
}

pub async fn chat(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body: ChatBody = parse(&body)?;
    let name = model_name(&body.model)?;
    let keep_alive = keep_alive(body.keep_alive.as_ref())?;
    let grammar = format::ollama(body.format.as_ref()).map_err(|e| ApiError::bad_request(DIALECT, e))?;
    let logprobs = logprobs(body.logprobs, body.top_logprobs)?;
    let Some(messages) = body.messages.filter(|m| !m.is_empty()) else {
        return load_or_unload(&state, &name, keep_alive, "message").await;
    };
    for message in &messages {
        refuse_unsupported(message.images.as_ref(), None)?;
    }
    let options = body.options.unwrap_or_default();
    let lease = state.residency.acquire(&name, keep_alive, DIALECT).await?;
    let mut sampling =
        generate::sampling(&lease.model.spec.parameters, &options).map_err(|e| ApiError::bad_request(DIALECT, e))?;
    sampling.grammar = grammar;
    let messages = messages.into_iter().map(MessageBody::into_message).collect();
    let mut conversation = generate::conversation(&lease.model.spec, messages);
    let template = lease.model.engine.info().chat_template.as_deref();
    let tools = body.tools.unwrap_or_default();
    let tool_use = tools::prepare(&tools, &tools::Choice::Auto, true, template, &mut conversation, &mut sampling)
        .map_err(|e| ApiError::bad_request(DIALECT, e))?;
    let mut request = GenerateRequest::new(Prompt::Chat(conversation), sampling);
    request.logprobs = logprobs;
    let tool_use = tool_use.map(|(tool_use, shown)| {
        request.tools = shown;
        tool_use
    });
    answer(&state, lease, request, tool_use, name, started, body.stream.unwrap_or(true), Kind::Chat).await
}

/// `generate` and `chat` with nothing to answer: load the model (or unload it, with
/// `keep_alive: 0`), as Ollama does.
async fn load_or_unload(
    state: &AppState,
    name: &ModelName,
    keep_alive: Option<KeepAlive>,
    field: &str,
) -> Result<Response, ApiError> {
    let empty = if field == "message" { json!({"role": "assistant", "content": ""}) } else { json!("") };
    let reason = if keep_alive == Some(KeepAlive::For(Duration::ZERO)) {
        state.residency.unload(name).await;
        "unload"
    } else {
        drop(state.residency.acquire(name, keep_alive, DIALECT).await?);
        "load"
    };
    let mut reply = Map::new();
    reply.insert("model".into(), json!(name.to_string()));
    reply.insert("created_at".into(), json!(rfc3339(SystemTime::now())));
    reply.insert(field.into(), empty);
    reply.insert("done".into(), json!(true));
    reply.insert("done_reason".into(), json!(reason));
    Ok(Json(Value::Object(reply)).into_response())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Generate,
    Chat,
}

/// Streams the answer as NDJSON, or collects it into one object with `stream: false`. An
/// error before the first token gets its status code; one after it, a last `{"error"}` line.
/// An answer that may hold tool calls is read whole first, then sent as one message.
#[allow(clippy::too_many_arguments)]
async fn answer(
    state: &AppState,
    lease: Lease,
    request: GenerateRequest,
    tool_use: Option<ToolUse>,
    name: ModelName,
    started: Instant,
    streaming: bool,
    kind: Kind,
) -> Result<Response, ApiError> {
    let load_duration = lease.load_duration;
    let with_logprobs = request.logprobs.is_some();
    let pieces = generate::start_answer(lease, request, DIALECT, state).await?;
    let model = name.to_string();
    let chunk = move |text: String, logprobs: &[TokenLogprob], calls: &[ToolCall]| -> Value {
        let mut line = Map::new();
        line.insert("model".into(), json!(model));
        line.insert("created_at".into(), json!(rfc3339(SystemTime::now())));
        match kind {
            Kind::Generate => line.insert("response".into(), json!(text)),
            Kind::Chat => {
                let mut message = json!({"role": "assistant", "content": text});
                if !calls.is_empty() {
                    message["tool_calls"] = calls
                        .iter()
                        .enumerate()
                        .map(|(index, c)| {
                            json!({"id": c.id, "function": {"index": index, "name": c.name, "arguments": c.arguments}})
                        })
                        .collect();
                }
                line.insert("message".into(), message)
            }
        };
        if with_logprobs {
            line.insert("logprobs".into(), generate::logprobs_json(logprobs));
        }
        line.insert("done".into(), json!(false));
        Value::Object(line)
    };
    if !streaming || tool_use.is_some() {
        let answer = generate::collect(pieces).await?;
        let (text, calls) = match &tool_use {
            Some(tool_use) => tool_use.parse(&answer.text),
            None => (answer.text, Vec::new()),
        };
        let mut reply = chunk(text, &answer.logprobs, &calls);
        if !streaming {
            finish(&mut reply, &answer.finished, started, load_duration);
            return Ok(Json(reply).into_response());
        }
        let mut last = chunk(String::new(), &[], &[]);
        finish(&mut last, &answer.finished, started, load_duration);
        let lines = [reply, last].map(|value| Ok::<_, std::convert::Infallible>(ndjson(&value)));
        return Ok(
            ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream::iter(lines))).into_response()
        );
    }
    let lines = pieces.map(move |piece| {
        let value = match piece {
            Piece::Text(text, logprobs) => chunk(text, &logprobs, &[]),
            Piece::Done(finished) => {
                let mut last = chunk(String::new(), &[], &[]);
                finish(&mut last, &finished, started, load_duration);
                last
            }
            Piece::Failed(e) => e.body(),
        };
        Ok::<_, std::convert::Infallible>(ndjson(&value))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}

fn ndjson(value: &Value) -> Bytes {
    let mut line = serde_json::to_vec(value).expect("json");
    line.push(b'\n');
    Bytes::from(line)
}

/// The last object's fields: why it ended, counts, durations in nanoseconds, energy.
fn finish(reply: &mut Value, finished: &Finished, started: Instant, load_duration: Duration) {
    let object = reply.as_object_mut().expect("an object");
    let nanos = |d: Duration| json!(d.as_nanos() as u64);
    object.insert("done".into(), json!(true));
    object.insert("done_reason".into(), json!(generate::finish_reason(finished.finish_reason)));
    object.insert("total_duration".into(), nanos(started.elapsed()));
    object.insert("load_duration".into(), nanos(load_duration));
    object.insert("prompt_eval_count".into(), json!(finished.usage.prompt_tokens));
    object.insert("prompt_eval_duration".into(), nanos(finished.timings.prompt_eval));
    object.insert("prompt_cached_count".into(), json!(finished.usage.cached_prompt_tokens));
    object.insert("eval_count".into(), json!(finished.usage.completion_tokens));
    object.insert("eval_duration".into(), nanos(finished.timings.eval));
    object.extend(energy_fields(finished));
}

/// `GET /api/tags`: the models in the store.
pub async fn tags(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.residency.store().clone();
    let (entries, problems) = store.list().map_err(|e| ApiError::internal(DIALECT, e.to_string()))?;
    for problem in problems {
        tracing::warn!("{problem}");
    }
    let models: Vec<Value> = entries
        .iter()
        .map(|entry| {
            let config = store.config_of(&entry.manifest);
            json!({
                "name": entry.name.to_string(),
                "model": entry.name.to_string(),
                "modified_at": rfc3339(entry.modified),
                "size": entry.manifest.size(),
                "digest": entry.id.to_string().trim_start_matches("sha256:"),
                "details": details(&config),
            })
        })
        .collect();
    Ok(Json(json!({ "models": models })))
}

fn details(config: &hearth_store::ModelConfig) -> Value {
    json!({
        "parent_model": "",
        "format": if config.model_format.is_empty() { "gguf" } else { &config.model_format },
        "family": config.model_family,
        "families": [config.model_family],
        "parameter_size": config.model_type,
        "quantization_level": config.file_type,
    })
}

#[derive(Deserialize)]
pub struct NameBody {
    #[serde(default)]
    model: String,
    /// The older field name.
    #[serde(default)]
    name: String,
}

impl NameBody {
    fn name(&self) -> Result<ModelName, ApiError> {
        model_name(if self.model.is_empty() { &self.name } else { &self.model })
    }
}

/// `POST /api/show`: what a model is and what is stored with it.
pub async fn show(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let name = parse::<NameBody>(&body)?.name()?;
    let store = state.residency.store().clone();
    let manifest = store.manifest(&name).map_err(|e| match e {
        hearth_store::StoreError::NotFound(_) => ApiError::not_found(DIALECT, format!("model '{name}' not found")),
        other => ApiError::internal(DIALECT, other.to_string()),
    })?;
    let spec = store.spec_of(&name, &manifest).map_err(|e| ApiError::internal(DIALECT, e.to_string()))?;
    let header = hearth_engine::GgufHeader::read(&spec.path).map_err(|e| ApiError::internal(DIALECT, e.to_string()))?;
    let info = header.model_info();
    let config = store.config_of(&manifest);
    let parameters: Vec<String> = spec
        .parameters
        .iter()
        .flat_map(|(k, v)| hearth_core::parameters::texts(v).into_iter().map(move |t| format!("{k:<16}{t}")))
        .collect();
    let mut model_info = Map::new();
    model_info.insert("general.architecture".into(), json!(info.architecture));
    model_info.insert("general.parameter_count".into(), json!(info.parameter_count));
    if let Some(n) = info.context_length {
        model_info.insert(format!("{}.context_length", info.architecture), json!(n));
    }
    if let Some(n) = info.vocab_size {
        model_info.insert(format!("{}.vocab_size", info.architecture), json!(n));
    }
    let template = spec.template.clone().or(info.chat_template.clone()).unwrap_or_default();
    let license = store.text_layer(&manifest, manifest::LICENSE).ok().flatten();
    // Every model can call tools (through the generic format when its template has none)
    // and embed, as Ollama reports for models that can.
    let mut capabilities = vec!["completion", "tools", "embedding"];
    if info.chat_template.is_some() || spec.template.is_some() {
        capabilities.push("chat");
    }
    Ok(Json(json!({
        "modelfile": spec.modelfile(&name),
        "parameters": parameters.join("\n"),
        "template": template,
        "system": spec.system,
        "license": license,
        "details": details(&config),
        "model_info": model_info,
        "capabilities": capabilities,
        "modified_at": rfc3339(SystemTime::now()),
    })))
}

/// `GET /api/ps`: the loaded models, their size and when they unload.
pub async fn ps(State(state): State<AppState>) -> Json<Value> {
    let store = state.residency.store().clone();
    let now = std::time::Instant::now();
    let models: Vec<Value> = state
        .residency
        .loaded()
        .await
        .iter()
        .map(|model| {
            let config = store.manifest(&model.name).map(|m| store.config_of(&m)).unwrap_or_default();
            // A model that never unloads shows a far-future expiry, as Ollama does.
            let expires = match model.expires_at() {
                Some(at) => SystemTime::now() + at.saturating_duration_since(now),
                None => SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799),
            };
            json!({
                "name": model.name.to_string(),
                "model": model.name.to_string(),
                "size": model.spec.size,
                "digest": model.spec.digest.as_ref().map(|d| d.to_string().trim_start_matches("sha256:").to_string()),
                "details": details(&config),
                "expires_at": rfc3339(expires),
                "size_vram": 0,
                "context_length": model.engine.settings().context_size,
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

/// `DELETE /api/delete`: removes a model (and blobs nothing else uses).
pub async fn delete(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let name = parse::<NameBody>(&body)?.name()?;
    state.residency.unload(&name).await;
    match state.residency.store().remove(&name) {
        Ok(()) => Ok(StatusCode::OK),
        Err(hearth_store::StoreError::NotFound(_)) => {
            Err(ApiError::not_found(DIALECT, format!("model '{name}' not found")))
        }
        Err(e) => Err(ApiError::internal(DIALECT, e.to_string())),
    }
}

#[derive(Deserialize)]
pub struct CopyBody {
    source: String,
    destination: String,
}

/// `POST /api/copy`: a second name for a model.
pub async fn copy(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let body: CopyBody = parse(&body)?;
    let (source, destination) = (model_name(&body.source)?, model_name(&body.destination)?);
    match state.residency.store().copy(&source, &destination) {
        Ok(()) => Ok(StatusCode::OK),
        Err(hearth_store::StoreError::NotFound(_)) => {
            Err(ApiError::not_found(DIALECT, format!("model '{source}' not found")))
        }
        Err(e) => Err(ApiError::internal(DIALECT, e.to_string())),
    }
}

pub async fn version() -> Json<Value> {
    Json(json!({ "version": env!("CARGO_PKG_VERSION") }))
}
