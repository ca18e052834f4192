//! `/api/generate` and `/api/chat`: NDJSON streaming by default, durations in
//! nanoseconds, `done_reason`; with nothing to answer, a load (or unload) of the model.

use super::wire::{ChatBody, Chunk, Counts, FunctionOut, GenerateBody, MessageBody, MessageOut, Think, ToolCallOut};
use super::{error, OllamaError};
use crate::auth::keyring::Scope;
use crate::dialects::hearth::{self, Energy};
use crate::dialects::request;
use crate::format;
use crate::residency::{KeepAlive, Wanted};
use crate::service::{self, Chat, Finished, Lease, Piece, ServiceError};
use crate::tools::{self, ToolUse};
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use hearth_core::clock::rfc3339;
use hearth_core::{check_top_logprobs, ChatMessage, GenerateRequest, Prompt, TokenLogprob, ToolCall};
use hearth_store::ModelName;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// Refuses what hearth cannot do, instead of silently answering something else.
fn refuse_unsupported(images: Option<&Vec<Value>>, template: Option<&str>) -> Result<(), ServiceError> {
    if images.is_some_and(|i| !i.is_empty()) {
        return Err(ServiceError::invalid("images are not supported: the model runs text only"));
    }
    if template.is_some_and(|t| !t.is_empty()) {
        return Err(ServiceError::invalid(
            "template (a Go template) is not supported; hearth uses the model's Jinja chat template, or raw: true",
        ));
    }
    Ok(())
}

/// `logprobs` and `top_logprobs`, as the engine takes them.
fn logprobs(wanted: bool, top: Option<u32>) -> Result<Option<u32>, ServiceError> {
    let top = top.unwrap_or(0);
    check_top_logprobs(top).map_err(ServiceError::Invalid)?;
    Ok((wanted || top > 0).then_some(top))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Generate,
    Chat,
}

/// How the answer goes back.
struct Reply {
    name: ModelName,
    kind: Kind,
    streaming: bool,
    /// Whether lines carry the tokens' log-probabilities.
    logprobs: bool,
    /// Whether a thinking model's thinking is reported (not with `think: false`).
    thinking: bool,
    started: Instant,
}

/// What a text of the answer says: its words, and the thinking before them.
#[derive(Default)]
struct Said {
    text: String,
    thinking: String,
}

impl Said {
    fn text(text: String) -> Self {
        Self { text, thinking: String::new() }
    }
}

/// Ollama's `think` as the template is asked it; `true` or an effort on a model that cannot
/// think is refused, as Ollama refuses it.
fn thinking(think: Option<&Think>, lease: &Lease, name: &ModelName) -> Result<Option<bool>, ServiceError> {
    let wanted = match think {
        None => return Ok(None),
        Some(Think::On(on)) => *on,
        Some(Think::Level(level)) if ["low", "medium", "high"].contains(&level.as_str()) => true,
        Some(Think::Level(other)) => {
            return Err(ServiceError::invalid(format!("think must be true, false, low, medium or high, got {other:?}")))
        }
    };
    if wanted && !lease.thinks() {
        return Err(ServiceError::invalid(format!("\"{name}\" does not support thinking")));
    }
    Ok(Some(wanted))
}

pub async fn generate(State(state): State<AppState>, body: Bytes) -> Result<Response, OllamaError> {
    let started = Instant::now();
    let body: GenerateBody = request::parse(&body)?;
    let name = request::model_name(&body.model)?;
    let wanted = request::wanted(body.keep_alive.as_ref(), body.options.as_ref())?;
    refuse_unsupported(body.images.as_ref(), body.template.as_deref())?;
    let grammar = format::ollama(body.format.as_ref()).map_err(ServiceError::Invalid)?;
    let logprobs = logprobs(body.logprobs, body.top_logprobs)?;
    let streaming = body.stream.unwrap_or(true);
    let thinks = !matches!(body.think, Some(Think::On(false)));
    let reply =
        Reply { name, kind: Kind::Generate, streaming, logprobs: logprobs.is_some(), thinking: thinks, started };
    if body.prompt.is_empty() {
        return load_or_unload(&state, reply, wanted).await;
    }
    let lease = state.service.lease(&reply.name, wanted).await?;
    let mut sampling =
        service::sampling(&lease.spec.parameters, &body.options.unwrap_or_default()).map_err(ServiceError::Invalid)?;
    sampling.grammar = grammar;
    let prompt = if body.raw {
        Prompt::Raw(body.prompt)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = body.system.or_else(|| lease.spec.system.clone()) {
            messages.push(ChatMessage::system(system));
        }
        messages.push(ChatMessage::user(body.prompt));
        Prompt::Chat(messages)
    };
    let mut request = GenerateRequest::new(prompt, sampling);
    request.logprobs = logprobs;
    request.thinking = thinking(body.think.as_ref(), &lease, &reply.name)?;
    answer(&state, lease, request, None, reply).await
}

pub async fn chat(State(state): State<AppState>, body: Bytes) -> Result<Response, OllamaError> {
    let started = Instant::now();
    let body: ChatBody = request::parse(&body)?;
    let name = request::model_name(&body.model)?;
    let wanted = request::wanted(body.keep_alive.as_ref(), body.options.as_ref())?;
    let grammar = format::ollama(body.format.as_ref()).map_err(ServiceError::Invalid)?;
    let logprobs = logprobs(body.logprobs, body.top_logprobs)?;
    let streaming = body.stream.unwrap_or(true);
    let thinks = !matches!(body.think, Some(Think::On(false)));
    let reply = Reply { name, kind: Kind::Chat, streaming, logprobs: logprobs.is_some(), thinking: thinks, started };
    let Some(messages) = body.messages.filter(|m| !m.is_empty()) else {
        return load_or_unload(&state, reply, wanted).await;
    };
    for message in &messages {
        refuse_unsupported(message.images.as_ref(), None)?;
    }
    let lease = state.service.lease(&reply.name, wanted).await?;
    let mut sampling =
        service::sampling(&lease.spec.parameters, &body.options.unwrap_or_default()).map_err(ServiceError::Invalid)?;
    sampling.grammar = grammar;
    let messages = messages.into_iter().map(MessageBody::into_message).collect();
    let tools = body.tools.unwrap_or_default();
    let chat = Chat { messages, sampling, tools: &tools, choice: &tools::Choice::Auto, parallel_calls: true, logprobs };
    let (mut request, tool_use) = service::chat_request(&lease, chat)?;
    request.thinking = thinking(body.think.as_ref(), &lease, &reply.name)?;
    answer(&state, lease, request, tool_use, reply).await
}

/// `generate` and `chat` with nothing to answer: load the model (or unload it, with
/// `keep_alive: 0`), as Ollama does.
async fn load_or_unload(state: &AppState, reply: Reply, wanted: Wanted) -> Result<Response, OllamaError> {
    let reason = if wanted.keep_alive == Some(KeepAlive::For(Duration::ZERO)) {
        let record = crate::audit::current();
        crate::auth::permit(record.as_ref().and_then(|r| r.caller()), Scope::Admin)?;
        state.service.unload(&reply.name);
        "unload"
    } else {
        drop(state.service.lease(&reply.name, wanted).await?);
        "load"
    };
    let mut done = reply.chunk(Said::default(), &[], &[]);
    done.done = true;
    done.done_reason = Some(reason);
    Ok(Json(done).into_response())
}

impl Reply {
    /// A line with what was said: `response` (and `thinking`) or `message`, as the
    /// endpoint has it.
    fn chunk(&self, said: Said, logprobs: &[TokenLogprob], calls: &[ToolCall]) -> Chunk {
        let Said { text, thinking } = said;
        let thinking = (self.thinking && !thinking.is_empty()).then_some(thinking);
        let (response, message, thinking) = match self.kind {
            Kind::Generate => (Some(text), None, thinking),
            Kind::Chat => {
                let tool_calls = calls
                    .iter()
                    .enumerate()
                    .map(|(index, c)| ToolCallOut {
                        id: c.id.clone(),
                        function: FunctionOut { index, name: c.name.clone(), arguments: c.arguments.clone() },
                    })
                    .collect();
                (None, Some(MessageOut { role: "assistant", content: text, thinking, tool_calls }), None)
            }
        };
        Chunk {
            model: self.name.to_string(),
            created_at: rfc3339(SystemTime::now()),
            response,
            thinking,
            message,
            logprobs: self.logprobs.then(|| hearth::logprobs(logprobs)),
            done: false,
            done_reason: None,
            counts: None,
        }
    }

    /// The last line: why it ended, counts, durations in nanoseconds, energy.
    fn last(&self, mut chunk: Chunk, finished: &Finished, load_duration: Duration) -> Chunk {
        let nanos = |d: Duration| d.as_nanos() as u64;
        chunk.done = true;
        chunk.done_reason = Some(hearth::finish_reason(finished.finish_reason));
        chunk.counts = Some(Counts {
            total_duration: nanos(self.started.elapsed()),
            load_duration: nanos(load_duration),
            prompt_eval_count: finished.usage.prompt_tokens,
            prompt_eval_duration: nanos(finished.timings.prompt_eval),
            prompt_cached_count: finished.usage.cached_prompt_tokens,
            eval_count: finished.usage.completion_tokens,
            draft_count: finished.usage.draft_tokens,
            draft_accepted_count: finished.usage.accepted_draft_tokens,
            eval_duration: nanos(finished.timings.eval),
            energy: Energy::of(finished),
        });
        chunk
    }
}

/// Streams the answer as NDJSON, or collects it into one object with `stream: false`. An
/// error before the first token gets its status code; one after it, a last `{"error"}` line.
/// An answer that may hold tool calls is read whole first, then sent as one message.
async fn answer(
    state: &AppState,
    lease: Lease,
    request: GenerateRequest,
    tool_use: Option<ToolUse>,
    reply: Reply,
) -> Result<Response, OllamaError> {
    let load_duration = lease.load_duration;
    let pieces = state.service.generate(lease, request).await?.pieces;
    if service::read_whole(reply.streaming, tool_use.as_ref()) {
        let (answer, calls) = service::collect_calls(pieces, tool_use.as_ref()).await?;
        let whole = reply.chunk(Said { text: answer.text, thinking: answer.thinking }, &answer.logprobs, &calls);
        if !reply.streaming {
            return Ok(Json(reply.last(whole, &answer.finished, load_duration)).into_response());
        }
        let last = reply.last(reply.chunk(Said::default(), &[], &[]), &answer.finished, load_duration);
        let lines = [ndjson(&whole), ndjson(&last)].map(Ok::<_, std::convert::Infallible>);
        return Ok(ndjson_response(Body::from_stream(stream::iter(lines))));
    }
    let lines = pieces.filter_map(move |piece| {
        let line = match piece {
            Piece::Text(text, logprobs) => Some(ndjson(&reply.chunk(Said::text(text), &logprobs, &[]))),
            Piece::Thinking(thinking) if reply.thinking => {
                Some(ndjson(&reply.chunk(Said { text: String::new(), thinking }, &[], &[])))
            }
            Piece::Thinking(_) => None,
            Piece::Done(finished) => {
                let empty = reply.chunk(Said::default(), &[], &[]);
                Some(ndjson(&reply.last(empty, &finished, load_duration)))
            }
            Piece::Failed(e) => Some(ndjson(&error::body(&e))),
        };
        std::future::ready(line.map(Ok::<_, std::convert::Infallible>))
    });
    Ok(ndjson_response(Body::from_stream(lines)))
}

pub(super) fn ndjson_response(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

pub(super) fn ndjson(value: &impl serde::Serialize) -> Bytes {
    let mut line = serde_json::to_vec(value).expect("json");
    line.push(b'\n');
    Bytes::from(line)
}
