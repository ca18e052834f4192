//! What every request goes through: an id (the client's `X-Request-Id`, or one made here)
//! on its log lines and its response, one log line when it ends; CORS: browsers may call
//! from the origins allowed (`HEARTH_ORIGINS` adds to the local ones Ollama allows); its
//! body read under the limits (size, time, UTF-8); and every error answered as JSON in the
//! dialect of its path, whoever raised it (a handler, an extractor, the router, a panic).

use crate::audit;
use crate::dialects::Dialect;
use crate::listener::ServeLimits;
use crate::service::ServiceError;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::time::Sleep;
use tracing::Instrument;

const REQUEST_ID: &str = "x-request-id";

/// Origins a browser page may call from, as patterns where `*` matches any run of
/// characters: `http://localhost:*`, `https://*.example.com`, or `*` for all.
#[derive(Debug, Clone)]
pub struct Origins {
    patterns: Vec<String>,
}

impl Origins {
    /// Ollama's defaults: this machine under any port and scheme, and desktop app schemes.
    pub fn local() -> Self {
        let mut patterns = Vec::new();
        for host in ["localhost", "127.0.0.1", "0.0.0.0", "[::1]"] {
            for scheme in ["http", "https"] {
                patterns.push(format!("{scheme}://{host}"));
                patterns.push(format!("{scheme}://{host}:*"));
            }
        }
        for scheme in ["app", "file", "tauri", "vscode-webview"] {
            patterns.push(format!("{scheme}://*"));
        }
        Self { patterns }
    }

    /// The local origins plus a comma-separated list (`HEARTH_ORIGINS`).
    pub fn with(mut self, list: &str) -> Self {
        self.patterns.extend(list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string));
        self
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.patterns.iter().any(|pattern| glob(pattern.as_bytes(), origin.as_bytes()))
    }
}

/// `*` matches any run of characters, everything else itself (ASCII case-insensitively).
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob(rest, &text[skip..])),
        Some((c, rest)) => text.first().is_some_and(|t| t.eq_ignore_ascii_case(c)) && glob(rest, &text[1..]),
    }
}

/// Whether `origin` is the server's own: the name the browser asked for, which is `Host`,
/// or `X-Forwarded-Host` behind a proxy that names itself to hearth (deploy/nginx sends
/// `Host: localhost`). A page on another origin cannot make a browser send either header:
/// `Host` is the server's, and setting `X-Forwarded-Host` needs a preflight, which another
/// origin fails. This is how the web page at `/ui/` may call a server beyond loopback.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some((_, authority)) = origin.split_once("://") else { return false };
    [header::HOST.as_str(), "x-forwarded-host"].into_iter().any(|name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|host| host.trim().eq_ignore_ascii_case(authority))
    })
}

/// Answers preflights, refuses other origins with 403, and marks allowed responses.
pub async fn cors(State(origins): State<Arc<Origins>>, request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    let allowed = origin.to_str().is_ok_and(|o| origins.allows(o) || same_origin(o, request.headers()));
    if !allowed {
        let message = "this origin may not call hearth; add it to HEARTH_ORIGINS";
        return Dialect::for_path(request.uri().path())
            .error_response(ServiceError::protocol(StatusCode::FORBIDDEN, message));
    }
    let mut response = if request.method() == Method::OPTIONS {
        let mut preflight = Response::new(Body::empty());
        *preflight.status_mut() = StatusCode::NO_CONTENT;
        let headers = preflight.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
        );
        let asked = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            asked.unwrap_or(HeaderValue::from_static("authorization, content-type, x-request-id")),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        preflight
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(REQUEST_ID));
    response
}

/// Gives the request an id, runs it inside a span carrying that id (so every log line of
/// the request names it) and with its audit record, returns the id in `X-Request-Id`, and
/// logs the request's line when its answer has gone out whole ([`audit::Line`]).
pub async fn request_id(request: Request, next: Next) -> Response {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| format!("{:08x}", NEXT.fetch_add(1, Ordering::Relaxed)), str::to_string);
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let span = tracing::info_span!("request", id = %id, %method, %path);
    let started = Instant::now();
    let record = Arc::new(audit::Record::default());
    let mut response = audit::scope(record.clone(), next.run(request)).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let line = audit::Line {
        span,
        record,
        status: response.status().as_u16(),
        started,
        head_millis: started.elapsed().as_secs_f64() * 1e3,
    };
    response.map(|body| Body::new(audit::Logged::new(body, line)))
}

/// Reads the request's body before any handler, so that no handler waits on a client:
/// at most `max_body_bytes` (413 past it, at once when `Content-Length` says so), each part
/// within `body_timeout` of the last (408 otherwise), and valid UTF-8, which JSON must be
/// and serde only checks in the fields it keeps (400). Blob uploads stream to the store
/// instead, under the same timeout between parts and no size limit.
pub async fn bodies(State(limits): State<Arc<ServeLimits>>, request: Request, next: Next) -> Response {
    let dialect = Dialect::for_path(request.uri().path());
    if request.uri().path().starts_with("/api/blobs/") {
        let stalled = Arc::new(AtomicBool::new(false));
        let request = request.map(|body| Body::new(StallTimeout::new(body, limits.body_timeout, stalled.clone())));
        let response = next.run(request).await;
        // The handler saw a failed read; the client should see why.
        return if stalled.load(Ordering::Relaxed) { body_timed_out(dialect, &limits) } else { response };
    }
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let announced = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (parts, mut body) = request.into_parts();
    if announced.is_some_and(|length| length > limits.max_body_bytes as u64) {
        return too_large(dialect, &limits, body, 0, announced).await;
    }
    let mut bytes = Vec::with_capacity(announced.unwrap_or(0) as usize);
    loop {
        match tokio::time::timeout(limits.body_timeout, body.frame()).await {
            Err(_) => return body_timed_out(dialect, &limits),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let message = format!("the request body could not be read: {e}");
                return closing(dialect, ServiceError::invalid(message));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if bytes.len() + data.len() > limits.max_body_bytes {
                        let read = (bytes.len() + data.len()) as u64;
                        return too_large(dialect, &limits, body, read, announced).await;
                    }
                    bytes.extend_from_slice(&data);
                }
            }
        }
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        let message = format!("the request body is not valid UTF-8 (at byte {}); JSON must be", e.valid_up_to());
        return dialect.error_response(ServiceError::invalid(message));
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// How much of a body over the limit is read and thrown away before the 413: a client or a
/// proxy still sending it would otherwise have the connection reset under it and never
/// read the answer (nginx reports that as a 502). Past this, or when the rest stops
/// arriving, the answer goes at once and the connection closes.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// The 413 for a body over the limit, of which `read` bytes have come.
async fn too_large(dialect: Dialect, limits: &ServeLimits, body: Body, read: u64, announced: Option<u64>) -> Response {
    let message = format!("the request body is over {} bytes (HEARTH_MAX_BODY_BYTES)", limits.max_body_bytes);
    let error = ServiceError::protocol(StatusCode::PAYLOAD_TOO_LARGE, message);
    if announced.unwrap_or(0) <= DRAIN_LIMIT && drained(body, read, limits.body_timeout).await {
        return dialect.error_response(error);
    }
    closing(dialect, error)
}

/// Reads the rest of `body` and drops it, giving up past [`DRAIN_LIMIT`] in all or a pause
/// of `timeout`; whether it was read to its end.
async fn drained(mut body: Body, mut read: u64, timeout: Duration) -> bool {
    loop {
        match tokio::time::timeout(timeout, body.frame()).await {
            Ok(None) => return true,
            Ok(Some(Ok(frame))) => {
                read += frame.data_ref().map_or(0, |data| data.len() as u64);
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
            Err(_) | Ok(Some(Err(_))) => return false,
        }
    }
}

fn body_timed_out(dialect: Dialect, limits: &ServeLimits) -> Response {
    let message =
        format!("the request body stopped arriving: nothing came for {:?} (HEARTH_BODY_TIMEOUT)", limits.body_timeout);
    closing(dialect, ServiceError::protocol(StatusCode::REQUEST_TIMEOUT, message))
}

/// An error answered before the body was read whole: the rest of it would be taken for the
/// next request, so the connection closes after the answer.
fn closing(dialect: Dialect, error: ServiceError) -> Response {
    let mut response = dialect.error_response(error);
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A body that fails, and says so in `stalled`, when no part of it comes for `timeout`.
struct StallTimeout {
    body: Body,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
    armed: bool,
    stalled: Arc<AtomicBool>,
}

impl StallTimeout {
    fn new(body: Body, timeout: Duration, stalled: Arc<AtomicBool>) -> Self {
        let timer = Box::pin(tokio::time::sleep(timeout));
        Self { body, timeout, timer, armed: false, stalled }
    }
}

impl HttpBody for StallTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if !this.armed {
                    this.armed = true;
                    this.timer.as_mut().reset(tokio::time::Instant::now() + this.timeout);
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.stalled.store(true, Ordering::Relaxed);
                let message = format!("nothing came for {:?} (HEARTH_BODY_TIMEOUT)", this.timeout);
                Poll::Ready(Some(Err(axum::Error::new(message))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Unknown routes: 404 in the dialect of the path.
pub async fn no_route(method: Method, uri: Uri) -> Response {
    let message = format!("no such endpoint: {method} {}", uri.path());
    Dialect::for_path(uri.path()).error_response(ServiceError::protocol(StatusCode::NOT_FOUND, message))
}

/// Error bodies small enough to read back into a message; axum's are a line.
const ERROR_TEXT_LIMIT: usize = 16 * 1024;

/// Every error as JSON in the dialect of its path: axum's extractor rejections (text),
/// 405's empty body, anything else not JSON, keeping the status and headers (`Allow`); and
/// a handler's panic as a 500 rather than a connection dropped without an answer.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let dialect = Dialect::for_path(request.uri().path());
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%method, %path, "the request panicked: {what}");
            return dialect.error_response(ServiceError::Internal(format!("the request panicked: {what}")));
        }
    };
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, ERROR_TEXT_LIMIT).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if !text.is_empty() {
        text
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum sets `Allow` outside this layer on some routes; name the methods when known.
        match parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).filter(|a| !a.is_empty()) {
            Some(allowed) => format!("{method} is not allowed on {path} (allowed: {allowed})"),
            None => format!("{method} is not allowed on {path}"),
        }
    } else if status == StatusCode::NOT_FOUND {
        format!("no such endpoint: {method} {path}")
    } else {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    };
    let mut converted = dialect.error_response(ServiceError::protocol(status, message));
    let headers = converted.headers_mut();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            headers.append(name, value.clone());
        }
    }
    converted
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use tower::ServiceExt;

    /// Text errors (as axum's extractors give) and panics become JSON in the path's
    /// dialect, keeping the status; JSON errors and successes pass as they are.
    #[tokio::test]
    async fn text_errors_and_panics_become_json_in_the_paths_dialect() {
        async fn rejected() -> Response {
            (StatusCode::UNPROCESSABLE_ENTITY, "Failed to deserialize the path").into_response()
        }
        async fn panics() -> Response {
            panic!("a bug")
        }
        let app = axum::Router::new()
            .route("/api/text", axum::routing::get(rejected))
            .route("/v1/text", axum::routing::get(rejected))
            .route("/api/panic", axum::routing::get(panics))
            .route("/api/fine", axum::routing::get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(json_errors));
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let response = app.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
                (status, serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default())
            }
        };
        let (status, body) = call("/api/text").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body, serde_json::json!({"error": "Failed to deserialize the path"}));
        let (status, body) = call("/v1/text").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["message"], "Failed to deserialize the path", "{body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
        let (status, body) = call("/api/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("the server's log has the details") && !message.contains("panicked"), "{body}");
        assert_eq!(call("/api/fine").await.0, StatusCode::OK);
    }

    #[test]
    fn local_origins_and_listed_patterns_are_allowed() {
        let origins = Origins::local().with("https://*.example.com, http://my.host:8080");
        for allowed in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "app://obsidian.md",
            "https://chat.example.com",
            "http://my.host:8080",
            "HTTP://LOCALHOST:1",
        ] {
            assert!(origins.allows(allowed), "{allowed}");
        }
        for refused in ["https://evil.com", "http://localhost.evil.com", "https://example.com", "http://my.host:9090"] {
            assert!(!origins.allows(refused), "{refused}");
        }
        assert!(Origins::local().with("*").allows("https://anything.org"));
    }

    #[test]
    fn a_page_calling_the_server_it_came_from_is_its_own_origin() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        let direct = headers(&[("host", "box.lan:11434")]);
        assert!(same_origin("http://box.lan:11434", &direct));
        assert!(same_origin("HTTP://BOX.LAN:11434", &direct));
        assert!(!same_origin("http://box.lan:8080", &direct), "another port is another origin");
        assert!(!same_origin("http://evil.com", &direct));
        let proxied = headers(&[("host", "localhost"), ("x-forwarded-host", "hearth.example.com")]);
        assert!(same_origin("https://hearth.example.com", &proxied));
        assert!(!same_origin("https://evil.example.com", &proxied));
        assert!(!same_origin("null", &direct), "an opaque origin is no one's");
    }
}
