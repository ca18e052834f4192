//! What every request goes through: an id (the client's `X-Request-Id`, or one made here)
//! on its log lines and its response, one log line when it ends, and CORS: browsers may
//! call from the origins allowed (`HEARTH_ORIGINS` adds to the local ones Ollama allows).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
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

/// Answers preflights, refuses other origins with 403, and marks allowed responses.
pub async fn cors(State(origins): State<Arc<Origins>>, request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    if !origin.to_str().is_ok_and(|o| origins.allows(o)) {
        let body = serde_json::json!({"error": "this origin may not call hearth; add it to HEARTH_ORIGINS"});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
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
/// the request names it), logs how it ended, and returns the id in `X-Request-Id`.
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
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let millis = started.elapsed().as_secs_f64() * 1e3;
    span.in_scope(|| {
        // Streams go on after this: the time is to the response's head.
        if status >= 500 {
            tracing::warn!(status, millis, "answered");
        } else {
            tracing::info!(status, millis, "answered");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
