//! What each request leaves behind when its answer has gone out whole (a stream's last byte,
//! or the client leaving): one log line with its route, status, the caller's key name
//! (never the key), the model and the tokens, and those tokens taken from the key's daily
//! allowance. The outermost layer opens a [`Record`] for every request; the auth layer, the
//! service and the handlers fill in what they learn through [`current`], which is the
//! record of the request whose future is running (a task-local: they need no extra
//! argument, and a stream captures it when it starts).

use crate::auth::Caller;
use axum::body::{Body, Bytes, HttpBody};
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

tokio::task_local! {
    static CURRENT: Arc<Record>;
}

/// What is known of one request, filled in as it runs.
#[derive(Default)]
pub struct Record {
    caller: OnceLock<Caller>,
    model: OnceLock<String>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

impl Record {
    /// The caller the key named; set once, by the auth layer.
    pub fn set_caller(&self, caller: Caller) {
        let _ = self.caller.set(caller);
    }

    pub fn caller(&self) -> Option<&Caller> {
        self.caller.get()
    }

    /// The model the request is for; the first one named counts.
    pub fn set_model(&self, name: &str) {
        if self.model.get().is_none() {
            let _ = self.model.set(name.to_string());
        }
    }

    /// Tokens the request's work used, taken from the caller's daily allowance at once.
    pub fn used(&self, prompt_tokens: u64, completion_tokens: u64) {
        self.prompt_tokens.fetch_add(prompt_tokens, Ordering::Relaxed);
        self.completion_tokens.fetch_add(completion_tokens, Ordering::Relaxed);
        if let Some(caller) = self.caller.get() {
            caller.charge(prompt_tokens + completion_tokens);
        }
    }
}

/// The record of the request whose future is running, if any (work outside a request, a
/// test calling the service directly, has none).
pub fn current() -> Option<Arc<Record>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `request` (a request's future) with `record` as its [`current`].
pub async fn scope<F: std::future::Future>(record: Arc<Record>, request: F) -> F::Output {
    CURRENT.scope(record, request).await
}

/// The request's line, written when the answer's body is dropped: sent whole, or given up
/// when the client went away. `span` carries the request's id, method and path.
pub struct Line {
    pub span: tracing::Span,
    pub record: Arc<Record>,
    pub status: u16,
    pub started: Instant,
    /// Time to the response's head.
    pub head_millis: f64,
}

impl Drop for Line {
    fn drop(&mut self) {
        let record = &self.record;
        let key = record.caller().map_or("-", |c| c.name.as_str());
        let model = record.model.get().map_or("-", String::as_str);
        let prompt_tokens = record.prompt_tokens.load(Ordering::Relaxed);
        let completion_tokens = record.completion_tokens.load(Ordering::Relaxed);
        let (status, head_millis) = (self.status, self.head_millis);
        let millis = tenths(self.started.elapsed().as_secs_f64() * 1e3);
        let head_millis = tenths(head_millis);
        self.span.in_scope(|| {
            if status >= 500 {
                tracing::warn!(status, key, model, prompt_tokens, completion_tokens, head_millis, millis, "answered");
            } else {
                tracing::info!(status, key, model, prompt_tokens, completion_tokens, head_millis, millis, "answered");
            }
        });
    }
}

/// Milliseconds to a tenth, as a log reader wants them.
fn tenths(millis: f64) -> f64 {
    (millis * 10.0).round() / 10.0
}

/// A response body that writes its request's [`Line`] when it is dropped.
pub struct Logged {
    body: Body,
    _line: Line,
}

impl Logged {
    pub fn new(body: Body, line: Line) -> Self {
        Self { body, _line: line }
    }
}

impl HttpBody for Logged {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
