//! An answer in OpenAI's shapes: one `chat.completion` / `text_completion` object, or SSE
//! chunks ending in `data: [DONE]` (with a usage chunk when `stream_options.include_usage`).
//! An answer that may hold tool calls is read whole first, then sent.

use super::error;
use super::wire::{
    Choice, Common, Completion, CompletionTokensDetails, Delta, FunctionOut, Logprobs, Message, PromptTokensDetails,
    ToolCallOut, Usage,
};
use super::OpenAiError;
use crate::dialects::hearth::{self, Energy};
use crate::dialects::sse;
use crate::service::{self, Echo, Finished, Lease, Piece};
use crate::tools::ToolUse;
use crate::AppState;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use hearth_core::clock::unix_seconds;
use hearth_core::{GenerateRequest, TokenLogprob, ToolCall};
use hearth_engine::Scored;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// What every object of one answer shares, and how it goes back.
pub struct Reply {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    streaming: bool,
    include_usage: bool,
    logprobs: bool,
    /// Whether a thinking model's thinking is sent (not with `reasoning_effort: "none"`).
    thinking: bool,
    /// A completion's prompt, sent back before it (`echo`).
    echo: Option<Echo>,
}

impl Reply {
    pub fn new(kind: Kind, common: &Common) -> Self {
        let prefix = match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Self {
            kind,
            id: format!("{prefix}-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            created: unix_seconds(SystemTime::now()),
            model: common.model.clone(),
            streaming: common.stream.unwrap_or(false),
            include_usage: common.stream_options.as_ref().is_some_and(|o| o.include_usage),
            logprobs: common.logprobs.as_ref().is_some_and(|l| !l.is_null() && l != &json!(false)),
            thinking: common.thinking(true) != Some(false),
            echo: None,
        }
    }

    pub fn with_echo(mut self, echo: Option<Echo>) -> Self {
        self.echo = echo;
        self
    }

    fn object(&self, choices: Vec<Choice>, usage: Option<Usage>) -> Completion {
        let object = match (self.kind, self.streaming) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        };
        Completion {
            id: self.id.clone(),
            object,
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: format!("hearth-{}", env!("CARGO_PKG_VERSION")),
            choices,
            usage,
        }
    }

    fn logprobs_of(&self, logprobs: &[TokenLogprob]) -> Option<Logprobs> {
        if !self.logprobs {
            return None;
        }
        Some(match self.kind {
            Kind::Chat => Logprobs::Chat { content: hearth::logprobs(logprobs) },
            Kind::Completion => completion_logprobs(self.echo_in_choice().and_then(|e| e.scored.as_ref()), logprobs),
        })
    }

    /// The echoed prompt, when it goes in the same choice as the completion: a whole
    /// answer's (a stream sends it in a chunk of its own first).
    fn echo_in_choice(&self) -> Option<&Echo> {
        self.echo.as_ref().filter(|_| !self.streaming)
    }

    /// A choice: a whole message, or a delta of one, or a completion's text.
    fn choice(&self, delta: Delta, logprobs: &[TokenLogprob], finish_reason: Option<&'static str>) -> Choice {
        let logprobs = self.logprobs_of(logprobs);
        let mut choice = Choice { index: 0, message: None, delta: None, text: None, logprobs, finish_reason };
        match (self.kind, self.streaming) {
            (Kind::Completion, _) => {
                let text = delta.content.flatten().unwrap_or_default();
                choice.text = Some(match self.echo_in_choice() {
                    Some(echo) => format!("{}{text}", echo.text),
                    None => text,
                });
            }
            (Kind::Chat, true) => choice.delta = Some(delta),
            (Kind::Chat, false) => {
                let content = delta.content.flatten();
                let content = if delta.tool_calls.is_empty() { Some(content.unwrap_or_default()) } else { content };
                let reasoning_content = delta.reasoning_content;
                choice.message =
                    Some(Message { role: "assistant", content, reasoning_content, tool_calls: delta.tool_calls });
            }
        }
        choice
    }

    /// The chunks that end a stream: the finish reason, the usage if asked for, `[DONE]`.
    fn ending(&self, finished: &Finished, calls: &[ToolCall]) -> Vec<Bytes> {
        let last = self.choice(Delta::default(), &[], Some(finish_reason(finished, calls)));
        let mut out = vec![sse::data(&self.object(vec![last], None))];
        out.extend(self.tail(usage(finished)));
        out
    }

    /// What follows a stream's last choice: the usage chunk if asked for, then `[DONE]`.
    fn tail(&self, usage: Usage) -> Vec<Bytes> {
        let mut out = Vec::with_capacity(2);
        if self.include_usage {
            out.push(sse::data(&self.object(Vec::new(), Some(usage))));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }

    /// Chat streams open with the assistant's role; a completion's with its echoed prompt.
    fn opening(&self) -> Option<Bytes> {
        if let Some(choice) = self.echoed(None) {
            return Some(sse::data(&self.object(vec![choice], None)));
        }
        let delta = Delta { role: Some("assistant"), content: Some(Some(String::new())), ..Delta::default() };
        (self.kind == Kind::Chat).then(|| sse::data(&self.object(vec![self.choice(delta, &[], None)], None)))
    }

    /// The echoed prompt as a streamed completion's first choice, with its scores when asked for.
    fn echoed(&self, finish_reason: Option<&'static str>) -> Option<Choice> {
        let echo = self.echo.as_ref().filter(|_| self.streaming)?;
        let logprobs = self.logprobs.then(|| completion_logprobs(echo.scored.as_ref(), &[]));
        Some(Choice { index: 0, message: None, delta: None, text: Some(echo.text.clone()), logprobs, finish_reason })
    }

    /// A completion that only echoes its prompt (`max_tokens: 0`, scoring a text): nothing
    /// is generated.
    pub fn echo_only(&self) -> Response {
        let echo = self.echo.as_ref().expect("echo_only is for an echo");
        let usage = Usage {
            prompt_tokens: echo.tokens,
            completion_tokens: 0,
            total_tokens: echo.tokens,
            prompt_tokens_details: PromptTokensDetails { cached_tokens: 0 },
            completion_tokens_details: None,
            energy: Energy::default(),
        };
        let Some(choice) = self.echoed(Some("length")) else {
            let choice = self.choice(Delta::default(), &[], Some("length"));
            return Json(self.object(vec![choice], Some(usage))).into_response();
        };
        let mut out = vec![sse::data(&self.object(vec![choice], None))];
        out.extend(self.tail(usage));
        sse::response(stream::iter(out))
    }
}

/// What the model said, split into text and tool calls.
fn said(text: String, calls: &[ToolCall], indexed: bool) -> Delta {
    if calls.is_empty() {
        return Delta { content: Some(Some(text)), ..Delta::default() };
    }
    let content = if text.is_empty() { None } else { Some(text) };
    Delta { content: Some(content), tool_calls: tool_calls(calls, indexed), ..Delta::default() }
}

/// A thinking model's thinking, in a delta of its own.
fn thought(thinking: String) -> Delta {
    Delta { reasoning_content: Some(thinking), ..Delta::default() }
}

pub async fn answer(
    state: &AppState,
    lease: Lease,
    request: GenerateRequest,
    tool_use: Option<ToolUse>,
    reply: Reply,
) -> Result<Response, OpenAiError> {
    let pieces = state.service.generate(lease, request).await?.pieces;
    if service::read_whole(reply.streaming, tool_use.as_ref()) {
        let (answer, calls) = service::collect_calls(pieces, tool_use.as_ref()).await?;
        let text = answer.text;
        let reason = finish_reason(&answer.finished, &calls);
        let thinking = (reply.thinking && !answer.thinking.is_empty()).then_some(answer.thinking);
        if !reply.streaming {
            let mut delta = said(text, &calls, false);
            delta.reasoning_content = thinking;
            let choice = reply.choice(delta, &answer.logprobs, Some(reason));
            return Ok(Json(reply.object(vec![choice], Some(usage(&answer.finished)))).into_response());
        }
        let mut out: Vec<Bytes> = reply.opening().into_iter().collect();
        if let Some(thinking) = thinking {
            out.push(sse::data(&reply.object(vec![reply.choice(thought(thinking), &[], None)], None)));
        }
        let choice = reply.choice(said(text, &calls, true), &answer.logprobs, None);
        out.push(sse::data(&reply.object(vec![choice], None)));
        out.extend(reply.ending(&answer.finished, &calls));
        return Ok(sse::response(stream::iter(out)));
    }
    let opening = reply.opening();
    let events = pieces.flat_map(move |piece| {
        let out: Vec<Bytes> = match piece {
            Piece::Text(text, logprobs) => {
                vec![sse::data(&reply.object(vec![reply.choice(said(text, &[], true), &logprobs, None)], None))]
            }
            Piece::Thinking(thinking) if reply.thinking => {
                vec![sse::data(&reply.object(vec![reply.choice(thought(thinking), &[], None)], None))]
            }
            Piece::Thinking(_) => Vec::new(),
            Piece::Done(finished) => reply.ending(&finished, &[]),
            Piece::Failed(e) => vec![sse::data(&error::body(&e)), Bytes::from_static(b"data: [DONE]\n\n")],
        };
        stream::iter(out)
    });
    Ok(sse::response(stream::iter(opening).chain(events)))
}

/// `tool_calls` when the model called tools, else why it stopped.
fn finish_reason(finished: &Finished, calls: &[ToolCall]) -> &'static str {
    if calls.is_empty() {
        hearth::finish_reason(finished.finish_reason)
    } else {
        "tool_calls"
    }
}

fn tool_calls(calls: &[ToolCall], indexed: bool) -> Vec<ToolCallOut> {
    calls
        .iter()
        .enumerate()
        .map(|(index, call)| ToolCallOut {
            index: indexed.then_some(index),
            id: call.id.clone(),
            kind: "function",
            function: FunctionOut { name: call.name.clone(), arguments: call.arguments.to_string() },
        })
        .collect()
}

/// The legacy completions' log-probabilities of an echoed prompt's tokens (the first has
/// none), then of the generated ones, with each token's offset in the text.
fn completion_logprobs(echoed: Option<&Scored>, logprobs: &[TokenLogprob]) -> Logprobs {
    let (mut tokens, mut token_logprobs, mut top_logprobs, mut text_offset) = (vec![], vec![], vec![], vec![]);
    let mut offset = 0;
    let mut push = |text: String, logprob: Option<f32>, top: Option<Map<String, Value>>| {
        text_offset.push(offset);
        offset += text.chars().count();
        tokens.push(text);
        token_logprobs.push(logprob);
        top_logprobs.push(top);
    };
    if let Some(scored) = echoed {
        push(String::from_utf8_lossy(&scored.first).into_owned(), None, None);
    }
    let scored = echoed.map_or(&[][..], |s| &s.rest[..]);
    for l in scored.iter().chain(logprobs) {
        let top = l.top.iter().map(|t| (t.text(), json!(t.logprob))).collect::<Map<_, _>>();
        push(l.text(), Some(l.logprob), Some(top));
    }
    Logprobs::Completion { tokens, token_logprobs, top_logprobs, text_offset }
}

fn usage(finished: &Finished) -> Usage {
    let usage = &finished.usage;
    Usage {
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
        prompt_tokens_details: PromptTokensDetails { cached_tokens: usage.cached_prompt_tokens },
        completion_tokens_details: (usage.draft_tokens > 0).then(|| CompletionTokensDetails {
            accepted_prediction_tokens: usage.accepted_draft_tokens,
            rejected_prediction_tokens: usage.draft_tokens - usage.accepted_draft_tokens,
        }),
        energy: Energy::of(finished),
    }
}
