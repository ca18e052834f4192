//! OpenAI's dialect: `/v1/chat/completions` and `/v1/completions` (SSE streaming ending in
//! `data: [DONE]`, `usage`, `finish_reason`, `stream_options.include_usage`), `/v1/models`,
//! and errors as `{"error": {...}}`, so code written for OpenAI's API runs unchanged.

use crate::error::{ApiError, Dialect};
use crate::generate::{self, energy_fields, unix_seconds, Finished, Piece};
use crate::residency::Lease;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use hearth_core::{ChatMessage, GenerateRequest, Prompt, Role, SamplingParams};
use hearth_store::ModelName;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};

const DIALECT: Dialect = Dialect::OpenAi;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(DIALECT, message)
}

/// The fields both completion endpoints share.
#[derive(Deserialize)]
struct Common {
    #[serde(default)]
    model: String,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<i64>,
    stop: Option<Stop>,
    n: Option<u32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    response_format: Option<Value>,
    logprobs: Option<Value>,
    tools: Option<Vec<Value>>,
    /// Not OpenAI's: llama.cpp's server and vLLM take it, and benchmarks need fixed lengths.
    #[serde(default)]
    ignore_eos: bool,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ChatBody {
    #[serde(flatten)]
    common: Common,
    messages: Vec<MessageBody>,
}

#[derive(Deserialize)]
struct MessageBody {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// A message's content: text, or parts of which only text ones are understood.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct CompletionBody {
    #[serde(flatten)]
    common: Common,
    prompt: PromptBody,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptBody {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))
}

impl Common {
    fn model_name(&self) -> Result<ModelName, ApiError> {
        if self.model.is_empty() {
            return Err(bad("model is required"));
        }
        ModelName::parse(&self.model).map_err(|e| bad(e.to_string()))
    }

    /// What hearth cannot do yet is refused, not silently ignored.
    fn refuse_unsupported(&self) -> Result<(), ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(bad("n must be 1: hearth returns one choice per request"));
        }
        if self.logprobs.as_ref().is_some_and(|v| v.as_bool() == Some(true) || v.is_number()) {
            return Err(bad("logprobs are not supported yet"));
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(bad("tools are not supported yet"));
        }
        match self.response_format.as_ref().and_then(|f| f.get("type")).and_then(Value::as_str) {
            None | Some("text") => Ok(()),
            Some(other) => Err(bad(format!("response_format {other} is not supported yet"))),
        }
    }

    /// The model's stored parameters, then the request's OpenAI-named ones.
    fn sampling(&self, lease: &Lease) -> Result<SamplingParams, ApiError> {
        let mut params = generate::sampling(&lease.model.spec.parameters, &Map::new()).map_err(bad)?;
        if let Some(t) = self.temperature {
            params.temperature = t;
        }
        if let Some(p) = self.top_p {
            params.top_p = p;
        }
        if let Some(seed) = self.seed {
            // OpenAI's seeds are 64-bit; llama.cpp's are 32.
            params.seed = Some((seed as u64 & u64::from(u32::MAX)) as u32);
        }
        match &self.stop {
            Some(Stop::One(s)) => params.stop = vec![s.clone()],
            Some(Stop::Many(list)) => params.stop = list.clone(),
            None => {}
        }
        if let Some(max) = self.max_completion_tokens.or(self.max_tokens) {
            if max < 1 {
                return Err(bad(format!("max_tokens must be at least 1, got {max}")));
            }
            params.max_tokens = Some(u32::try_from(max).map_err(|_| bad(format!("max_tokens {max} is too large")))?);
        }
        for (name, value) in
            [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)]
        {
            if value.is_some_and(|v| v != 0.0) {
                tracing::warn!("{name} is not supported and was ignored");
            }
        }
        params.ignore_eos = self.ignore_eos;
        params.validate().map_err(bad)?;
        Ok(params)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: ChatBody = parse(&body)?;
    let common = &body.common;
    let name = common.model_name()?;
    common.refuse_unsupported()?;
    if body.messages.is_empty() {
        return Err(bad("messages must not be empty"));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for message in &body.messages {
        let content = match &message.content {
            None => String::new(),
            Some(Content::Text(text)) => text.clone(),
            Some(Content::Parts(parts)) => {
                if let Some(part) = parts.iter().find(|p| p.kind != "text") {
                    return Err(bad(format!(
                        "content of type {} is not supported: the model runs text only",
                        part.kind
                    )));
                }
                parts.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n")
            }
        };
        // "developer" is OpenAI's newer name for the system message.
        let role = match message.role.as_str() {
            "developer" => Role::System,
            name => Role::parse(name),
        };
        messages.push(ChatMessage::new(role, content));
    }
    let lease = state.residency.acquire(&name, None, DIALECT).await?;
    let sampling = common.sampling(&lease)?;
    let conversation = generate::conversation(&lease.model.spec, messages);
    let request = GenerateRequest { prompt: Prompt::Chat(conversation), sampling };
    answer(&state, lease, request, common, Kind::Chat).await
}

pub async fn completions(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: CompletionBody = parse(&body)?;
    let common = &body.common;
    let name = common.model_name()?;
    common.refuse_unsupported()?;
    let prompt = match body.prompt {
        PromptBody::Text(text) => Prompt::Raw(text),
        PromptBody::Tokens(ids) => Prompt::Tokens(ids),
        PromptBody::Texts(mut texts) if texts.len() == 1 => Prompt::Raw(texts.remove(0)),
        PromptBody::Texts(_) => return Err(bad("prompt must be one string: hearth answers one prompt per request")),
    };
    let lease = state.residency.acquire(&name, None, DIALECT).await?;
    let sampling = common.sampling(&lease)?;
    answer(&state, lease, GenerateRequest { prompt, sampling }, common, Kind::Completion).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

async fn answer(
    state: &AppState,
    lease: Lease,
    request: GenerateRequest,
    common: &Common,
    kind: Kind,
) -> Result<Response, ApiError> {
    let pieces = generate::start_answer(lease, request, DIALECT, state.metrics.clone()).await?;
    let (prefix, object) = match kind {
        Kind::Chat => ("chatcmpl", "chat.completion"),
        Kind::Completion => ("cmpl", "text_completion"),
    };
    let id = format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let (created, model) = (unix_seconds(), common.model.clone());
    if !common.stream.unwrap_or(false) {
        let (text, finished) = generate::collect(pieces).await?;
        let choice = match kind {
            Kind::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": generate::finish_reason(finished.finish_reason),
            }),
            Kind::Completion => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": generate::finish_reason(finished.finish_reason),
            }),
        };
        return Ok(Json(json!({
            "id": id,
            "object": object,
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint(),
            "choices": [choice],
            "usage": usage(&finished),
        }))
        .into_response());
    }

    let include_usage = common.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let chunk_object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Completion => "text_completion",
    };
    let chunk = move |choices: Value, usage: Option<Value>| {
        let mut chunk = json!({
            "id": id,
            "object": chunk_object,
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint(),
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        sse(&chunk)
    };
    let delta = move |content: Value, finish: Value| match kind {
        Kind::Chat => json!([{"index": 0, "delta": content, "logprobs": null, "finish_reason": finish}]),
        Kind::Completion => {
            let text = content.get("content").cloned().unwrap_or(json!(""));
            json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}])
        }
    };
    let opening =
        (kind == Kind::Chat).then(|| chunk(delta(json!({"role": "assistant", "content": ""}), json!(null)), None));
    let events = pieces.flat_map(move |piece| {
        let out: Vec<Bytes> = match piece {
            Piece::Text(text) => vec![chunk(delta(json!({"content": text}), json!(null)), None)],
            Piece::Done(finished) => {
                let reason = json!(generate::finish_reason(finished.finish_reason));
                let mut out = vec![chunk(delta(json!({}), reason), None)];
                if include_usage {
                    out.push(chunk(json!([]), Some(usage(&finished))));
                }
                out.push(Bytes::from_static(b"data: [DONE]\n\n"));
                out
            }
            Piece::Failed(e) => vec![sse(&e.body()), Bytes::from_static(b"data: [DONE]\n\n")],
        };
        stream::iter(out.into_iter().map(Ok::<_, std::convert::Infallible>))
    });
    let body = stream::iter(opening.into_iter().map(Ok)).chain(events);
    Ok(([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(body))
        .into_response())
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn fingerprint() -> String {
    format!("hearth-{}", env!("CARGO_PKG_VERSION"))
}

/// OpenAI's usage object, with hearth's energy fields beside the counts.
fn usage(finished: &Finished) -> Value {
    let usage = &finished.usage;
    let mut object = Map::new();
    object.insert("prompt_tokens".into(), json!(usage.prompt_tokens));
    object.insert("completion_tokens".into(), json!(usage.completion_tokens));
    object.insert("total_tokens".into(), json!(usage.prompt_tokens + usage.completion_tokens));
    object.insert("prompt_tokens_details".into(), json!({"cached_tokens": usage.cached_prompt_tokens}));
    object.extend(energy_fields(finished.energy.as_ref(), usage));
    Value::Object(object)
}

/// `GET /v1/models`: the models in the store.
pub async fn models(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let (entries, _) = state.residency.store().list().map_err(|e| ApiError::internal(DIALECT, e.to_string()))?;
    let data: Vec<Value> = entries.iter().map(|e| model_object(&e.name, e.modified)).collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `GET /v1/models/{id}`: one model; the id may hold `/` and `:` (`hf.co/org/repo:Q4_K_M`).
pub async fn model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let name = ModelName::parse(&id).map_err(|e| ApiError::not_found(DIALECT, e.to_string()))?;
    let (entries, _) = state.residency.store().list().map_err(|e| ApiError::internal(DIALECT, e.to_string()))?;
    entries
        .iter()
        .find(|e| e.name.same_as(&name))
        .map(|e| Json(model_object(&e.name, e.modified)))
        .ok_or_else(|| ApiError::not_found(DIALECT, format!("The model '{id}' does not exist")))
}

fn model_object(name: &ModelName, modified: std::time::SystemTime) -> Value {
    let created = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    json!({"id": name.to_string(), "object": "model", "created": created, "owned_by": name.namespace})
}
