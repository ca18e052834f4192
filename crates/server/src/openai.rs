//! OpenAI's dialect: `/v1/chat/completions` and `/v1/completions` (SSE streaming ending in
//! `data: [DONE]`, `usage`, `finish_reason`, `stream_options.include_usage`), `/v1/models`,
//! and errors as `{"error": {...}}`, so code written for OpenAI's API runs unchanged.

use crate::body;
use crate::error::{ApiError, Dialect};
use crate::format;
use crate::generate::{self, energy_fields, unix_seconds, Finished, Piece};
use crate::residency::Lease;
use crate::tools::{self, ToolUse};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use hearth_core::{
    check_top_logprobs, ChatMessage, GenerateRequest, Prompt, Role, SamplingParams, TokenLogprob, ToolCall,
};
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
    /// Chat: `true`/`false`; completions: how many alternatives per token.
    logprobs: Option<Value>,
    top_logprobs: Option<u32>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
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
    #[serde(default)]
    tool_calls: Vec<ToolCallBody>,
    tool_call_id: Option<String>,
    name: Option<String>,
}

/// `{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}`.
#[derive(Deserialize)]
struct ToolCallBody {
    #[serde(default)]
    id: String,
    function: FunctionBody,
}

#[derive(Deserialize)]
struct FunctionBody {
    name: String,
    #[serde(default)]
    arguments: String,
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
    body::parse(DIALECT, body)
}

impl Common {
    fn model_name(&self) -> Result<ModelName, ApiError> {
        body::model_name(DIALECT, &self.model)
    }

    /// What hearth cannot do is refused, not silently ignored.
    fn refuse_unsupported(&self) -> Result<(), ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(bad("n must be 1: hearth returns one choice per request"));
        }
        Ok(())
    }

    /// How many alternatives to report per token, if log-probabilities were asked for:
    /// chat's `logprobs: true` + `top_logprobs`, or completions' `logprobs: N`.
    fn logprobs(&self) -> Result<Option<u32>, ApiError> {
        let top = match &self.logprobs {
            None | Some(Value::Null) | Some(Value::Bool(false)) => return Ok(None),
            Some(Value::Bool(true)) => self.top_logprobs.unwrap_or(0),
            Some(Value::Number(n)) => {
                n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad("logprobs must be 0 or more"))?
            }
            Some(other) => return Err(bad(format!("logprobs must be a boolean or a number, got {other}"))),
        };
        check_top_logprobs(top).map_err(bad)?;
        Ok(Some(top))
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
        params.grammar = format::openai(self.response_format.as_ref()).map_err(bad)?;
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
        let mut chat_message = ChatMessage::new(role, content);
        for call in &message.tool_calls {
            let arguments = match call.function.arguments.trim() {
                "" => json!({}),
                text => serde_json::from_str(text).map_err(|e| {
                    bad(format!("tool call {} has arguments that are not JSON: {e}", call.function.name))
                })?,
            };
            chat_message.tool_calls.push(ToolCall { id: call.id.clone(), name: call.function.name.clone(), arguments });
        }
        chat_message.tool_call_id = message.tool_call_id.clone();
        chat_message.tool_name = message.name.clone().or_else(|| {
            // Templates want the function's name on a result; OpenAI sends only the call id.
            let id = message.tool_call_id.as_deref()?;
            body.messages.iter().flat_map(|m| &m.tool_calls).find(|c| c.id == id).map(|c| c.function.name.clone())
        });
        messages.push(chat_message);
    }
    let choice = tools::Choice::parse(common.tool_choice.as_ref()).map_err(bad)?;
    let logprobs = common.logprobs()?;
    let lease = state.residency.acquire(&name, None, DIALECT).await?;
    let mut sampling = common.sampling(&lease)?;
    let mut conversation = generate::conversation(&lease.model.spec, messages);
    let template = lease.model.engine.info().chat_template.as_deref();
    let tools = common.tools.clone().unwrap_or_default();
    let tool_use = tools::prepare(
        &tools,
        &choice,
        common.parallel_tool_calls.unwrap_or(true),
        template,
        &mut conversation,
        &mut sampling,
    )
    .map_err(bad)?;
    let mut request = GenerateRequest::new(Prompt::Chat(conversation), sampling);
    request.logprobs = logprobs;
    let tool_use = tool_use.map(|(tool_use, shown)| {
        request.tools = shown;
        tool_use
    });
    answer(&state, lease, request, tool_use, common, Kind::Chat).await
}

pub async fn completions(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body: CompletionBody = parse(&body)?;
    let common = &body.common;
    let name = common.model_name()?;
    common.refuse_unsupported()?;
    if common.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(bad("tools are for /v1/chat/completions"));
    }
    let logprobs = common.logprobs()?;
    let prompt = match body.prompt {
        PromptBody::Text(text) => Prompt::Raw(text),
        PromptBody::Tokens(ids) => Prompt::Tokens(ids),
        PromptBody::Texts(mut texts) if texts.len() == 1 => Prompt::Raw(texts.remove(0)),
        PromptBody::Texts(_) => return Err(bad("prompt must be one string: hearth answers one prompt per request")),
    };
    let lease = state.residency.acquire(&name, None, DIALECT).await?;
    let sampling = common.sampling(&lease)?;
    let mut request = GenerateRequest::new(prompt, sampling);
    request.logprobs = logprobs;
    answer(&state, lease, request, None, common, Kind::Completion).await
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
    tool_use: Option<ToolUse>,
    common: &Common,
    kind: Kind,
) -> Result<Response, ApiError> {
    let with_logprobs = request.logprobs.is_some();
    let pieces = generate::start_answer(lease, request, DIALECT, state).await?;
    let (prefix, object) = match kind {
        Kind::Chat => ("chatcmpl", "chat.completion"),
        Kind::Completion => ("cmpl", "text_completion"),
    };
    let id = format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let (created, model) = (unix_seconds(), common.model.clone());
    let logprobs_of = move |logprobs: &[TokenLogprob]| -> Value {
        match (with_logprobs, kind) {
            (false, _) => Value::Null,
            (true, Kind::Chat) => json!({"content": generate::logprobs_json(logprobs)}),
            (true, Kind::Completion) => completion_logprobs(logprobs),
        }
    };
    let streaming = common.stream.unwrap_or(false);
    if !streaming {
        let answer = generate::collect(pieces).await?;
        let (text, calls) = split_calls(tool_use.as_ref(), answer.text);
        let reason = finish_reason(&answer.finished, &calls);
        let choice = match kind {
            Kind::Chat => {
                let mut message = json!({"role": "assistant", "content": text});
                if !calls.is_empty() {
                    message["content"] = if text.is_empty() { Value::Null } else { json!(text) };
                    message["tool_calls"] = tool_calls_json(&calls, false);
                }
                json!({"index": 0, "message": message, "logprobs": logprobs_of(&answer.logprobs), "finish_reason": reason})
            }
            Kind::Completion => {
                json!({"index": 0, "text": text, "logprobs": logprobs_of(&answer.logprobs), "finish_reason": reason})
            }
        };
        return Ok(Json(json!({
            "id": id,
            "object": object,
            "created": created,
            "model": model,
            "system_fingerprint": fingerprint(),
            "choices": [choice],
            "usage": usage(&answer.finished),
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
    let delta = move |content: Value, logprobs: Value, finish: Value| match kind {
        Kind::Chat => json!([{"index": 0, "delta": content, "logprobs": logprobs, "finish_reason": finish}]),
        Kind::Completion => {
            let text = content.get("content").cloned().unwrap_or(json!(""));
            json!([{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}])
        }
    };
    let ending_chunk = chunk.clone();
    let ending = move |finished: &Finished, calls: &[ToolCall]| {
        let chunk = &ending_chunk;
        let reason = json!(finish_reason(finished, calls));
        let mut out = vec![chunk(delta(json!({}), Value::Null, reason), None)];
        if include_usage {
            out.push(chunk(json!([]), Some(usage(finished))));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    };
    let opening = (kind == Kind::Chat)
        .then(|| chunk(delta(json!({"role": "assistant", "content": ""}), Value::Null, Value::Null), None));
    if let Some(tool_use) = tool_use {
        // Calls are known only once the answer is whole: it is read first, then sent.
        let answer = generate::collect(pieces).await?;
        let (text, calls) = tool_use.parse(&answer.text);
        let content = if calls.is_empty() {
            json!({"content": text})
        } else {
            json!({"content": null, "tool_calls": tool_calls_json(&calls, true)})
        };
        let mut out: Vec<Bytes> = opening.into_iter().collect();
        out.push(chunk(delta(content, logprobs_of(&answer.logprobs), Value::Null), None));
        out.extend(ending(&answer.finished, &calls));
        let body = stream::iter(out.into_iter().map(Ok::<_, std::convert::Infallible>));
        return Ok(event_stream(Body::from_stream(body)));
    }
    let events = pieces.flat_map(move |piece| {
        let out: Vec<Bytes> = match piece {
            Piece::Text(text, logprobs) => {
                vec![chunk(delta(json!({"content": text}), logprobs_of(&logprobs), Value::Null), None)]
            }
            Piece::Done(finished) => ending(&finished, &[]),
            Piece::Failed(e) => vec![sse(&e.body()), Bytes::from_static(b"data: [DONE]\n\n")],
        };
        stream::iter(out.into_iter().map(Ok::<_, std::convert::Infallible>))
    });
    let body = stream::iter(opening.into_iter().map(Ok)).chain(events);
    Ok(event_stream(Body::from_stream(body)))
}

fn event_stream(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn split_calls(tool_use: Option<&ToolUse>, text: String) -> (String, Vec<ToolCall>) {
    match tool_use {
        Some(tool_use) => tool_use.parse(&text),
        None => (text, Vec::new()),
    }
}

/// `tool_calls` when the model called tools, else why it stopped.
fn finish_reason(finished: &Finished, calls: &[ToolCall]) -> &'static str {
    if calls.is_empty() {
        generate::finish_reason(finished.finish_reason)
    } else {
        "tool_calls"
    }
}

/// OpenAI's tool calls, arguments as JSON text; stream deltas carry each call's index.
fn tool_calls_json(calls: &[ToolCall], indexed: bool) -> Value {
    calls
        .iter()
        .enumerate()
        .map(|(index, call)| {
            let mut value = json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments.to_string()},
            });
            if indexed {
                value["index"] = json!(index);
            }
            value
        })
        .collect()
}

/// The legacy completions shape: parallel lists of tokens, their log-probabilities, the
/// alternatives as `{token: logprob}` maps, and each token's offset in the text.
fn completion_logprobs(logprobs: &[TokenLogprob]) -> Value {
    let mut offset = 0;
    let mut offsets = Vec::with_capacity(logprobs.len());
    for l in logprobs {
        offsets.push(offset);
        offset += l.text().chars().count();
    }
    json!({
        "tokens": logprobs.iter().map(TokenLogprob::text).collect::<Vec<_>>(),
        "token_logprobs": logprobs.iter().map(|l| l.logprob).collect::<Vec<_>>(),
        "top_logprobs": logprobs
            .iter()
            .map(|l| l.top.iter().map(|t| (t.text(), json!(t.logprob))).collect::<Map<String, Value>>())
            .collect::<Vec<_>>(),
        "text_offset": offsets,
    })
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
    object.extend(energy_fields(finished));
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
