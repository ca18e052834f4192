//! Server-sent events as the streaming dialects send them: bare `data:` lines (OpenAI's
//! chat and completions) or named events (Anthropic's, the Responses API's), and the
//! response that carries a stream of them.

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream::{Stream, StreamExt};
use serde::Serialize;

/// `data: {json}`.
pub fn data(value: &impl Serialize) -> Bytes {
    Bytes::from(format!("data: {}\n\n", serde_json::to_string(value).expect("a wire type serializes")))
}

/// `event: {name}` then `data: {json}`.
pub fn named(name: &str, value: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(value).expect("a wire type serializes");
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// A `text/event-stream` response of `events`, uncached.
pub fn response(events: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let body = Body::from_stream(events.map(Ok::<_, std::convert::Infallible>));
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}
