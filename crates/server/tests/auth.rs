//! The auth layer on the real router with the SmolLM2 test model: API keys (missing, wrong,
//! expired, revoked, out of scope), each refusal in its dialect's shape, the `Host` check,
//! the allowances per key (requests per minute, tokens per day) and the ceiling on
//! generated tokens.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hearth_server::auth::host::AllowedHosts;
use hearth_server::auth::keyring::{Keyring, Scope};
use hearth_server::auth::limits::KeyLimits;
use hearth_server::{router, AppState, Auth};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tower::ServiceExt;

struct Server {
    state: AppState,
    auth: Arc<Auth>,
    keys_file: std::path::PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A server with SmolLM2 as `smol` whose keys file is empty until a test makes keys; `auth`
/// finishes its auth settings.
fn server(auth: impl FnOnce(Auth) -> Auth) -> Server {
    server_with(auth, None)
}

/// [`server`], generating at most `max_predict` tokens an answer.
fn server_with(auth: impl FnOnce(Auth) -> Auth, max_predict: Option<u32>) -> Server {
    let (store, store_dir) =
        common::store_with_smollm2("smol", br#"{"model_format":"gguf","model_family":"llama"}"#, br#"{"num_ctx":512}"#);
    let config = common::residency(2, 1, 8);
    let keys_dir = tempfile::tempdir().unwrap();
    let keys_file = keys_dir.path().join("keys.json");
    let auth = Arc::new(auth(Auth::default().with_keys_file(keys_file.clone()).unwrap()));
    let state = AppState::new(store, config).with_auth(auth.clone()).with_max_predict(max_predict);
    Server { state, auth, keys_file, _dirs: (store_dir, keys_dir) }
}

impl Server {
    /// Makes a key and has the server read the keys file again, as SIGHUP does.
    fn key(&self, name: &str, scope: Scope, expires_at: Option<SystemTime>) -> String {
        let key = Keyring::create_in(&self.keys_file, name, scope, expires_at).unwrap();
        self.auth.reload().unwrap();
        key
    }

    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(path).header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = headers.get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        Answer { status, retry_after, headers, body }
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    headers: axum::http::HeaderMap,
    body: Value,
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// One route of each dialect, and how its errors look: the message of each.
const DIALECTS: [(&str, &str); 3] = [("GET", "/api/tags"), ("GET", "/v1/models"), ("POST", "/v1/messages")];

fn error_in_its_dialect(path: &str, answer: &Answer, anthropic_type: &str, openai_code: &str) -> String {
    let body = &answer.body;
    match path {
        "/api/tags" => body["error"].as_str().unwrap_or_else(|| panic!("Ollama's shape: {body}")).to_string(),
        "/v1/models" => {
            assert_eq!(body["error"]["code"], openai_code, "{body}");
            assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
            body["error"]["message"].as_str().unwrap().to_string()
        }
        _ => {
            assert_eq!(body["type"], "error", "{body}");
            assert_eq!(body["error"]["type"], anthropic_type, "{body}");
            body["error"]["message"].as_str().unwrap().to_string()
        }
    }
}

fn anthropic_body() -> Value {
    json!({"model": "smol", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_required_once_there_are_any_and_refusals_take_each_dialect_s_shape() {
    let server = server(|auth| auth);
    // No keys on loopback: open, whatever key a client sends (SDKs always send one).
    assert_eq!(server.call("GET", "/api/tags", &[("authorization", "Bearer sk-dummy")], None).await.status, 200);

    let chat = server.key("app", Scope::Chat, None);
    let admin = server.key("ops", Scope::Admin, None);
    let expired = server.key("old", Scope::Admin, Some(SystemTime::now() - Duration::from_secs(1)));
    let mut wrong = chat.clone();
    wrong.pop();
    wrong.push(if chat.ends_with('a') { 'b' } else { 'a' });

    for (method, path) in DIALECTS {
        let body = (method == "POST").then(anthropic_body);
        let missing = server.call(method, path, &[], body.clone()).await;
        assert_eq!(missing.status, 401, "{path}: {missing:?}");
        let message = error_in_its_dialect(path, &missing, "authentication_error", "invalid_api_key");
        assert!(message.contains("needs an API key"), "{message}");
        for key in [&wrong, &expired] {
            let refused = server.call(method, path, &[("authorization", &bearer(key))], body.clone()).await;
            assert_eq!(refused.status, 401, "{path}: {refused:?}");
            let message = error_in_its_dialect(path, &refused, "authentication_error", "invalid_api_key");
            assert!(!message.contains(key.as_str()), "a refusal never repeats the key: {message}");
        }
        for header in ["authorization", "x-api-key", "api-key"] {
            let value = if header == "authorization" { bearer(&chat) } else { chat.clone() };
            let answer = server.call(method, path, &[(header, &value)], body.clone()).await;
            assert_eq!(answer.status, 200, "{path} with {header}: {answer:?}");
        }
    }
    // Health checks need no key.
    assert_eq!(server.call("GET", "/api/version", &[], None).await.status, 200);
    assert_eq!(server.call("GET", "/", &[], None).await.status, 200);

    // A chat key may not change the store or unload a model; an admin key may.
    let delete = json!({"model": "nothing-here"});
    let out_of_scope =
        server.call("DELETE", "/api/delete", &[("authorization", &bearer(&chat))], Some(delete.clone())).await;
    assert_eq!(out_of_scope.status, 403, "{out_of_scope:?}");
    assert!(out_of_scope.body["error"].as_str().unwrap().contains("admin"), "{out_of_scope:?}");
    let allowed = server.call("DELETE", "/api/delete", &[("authorization", &bearer(&admin))], Some(delete)).await;
    assert_eq!(allowed.status, 404, "past the key, the model is simply not there: {allowed:?}");
    let unload = json!({"model": "smol", "keep_alive": 0});
    let refused = server.call("POST", "/api/generate", &[("x-api-key", &chat)], Some(unload.clone())).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let unloaded = server.call("POST", "/api/generate", &[("x-api-key", &admin)], Some(unload)).await;
    assert_eq!((unloaded.status, &unloaded.body["done_reason"]), (StatusCode::OK, &json!("unload")), "{unloaded:?}");

    // Revoked, then reloaded: refused from then on.
    Keyring::revoke_in(&server.keys_file, "app").unwrap();
    assert_eq!(server.call("GET", "/api/tags", &[("x-api-key", &chat)], None).await.status, 200, "until reloaded");
    server.auth.reload().unwrap();
    assert_eq!(server.call("GET", "/api/tags", &[("x-api-key", &chat)], None).await.status, 401);
    assert_eq!(server.call("GET", "/api/tags", &[("x-api-key", &admin)], None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_page_loads_without_a_key_and_what_it_reads_needs_one() {
    let server = server(|auth| auth);
    let key = server.key("browser", Scope::Chat, None);
    let header = |answer: &Answer, name: &str| answer.headers.get(name).map(|v| v.to_str().unwrap().to_string());

    let page = server.call("GET", "/ui/", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.as_str().unwrap().starts_with("<!doctype html>"), "{:?}", page.body);
    let policy = header(&page, "content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"), "{policy}");
    let script = server.call("GET", "/ui/app.js", &[], None).await;
    assert_eq!(
        (script.status, header(&script, "content-type").unwrap().as_str()),
        (StatusCode::OK, "text/javascript; charset=utf-8")
    );
    let missing = server.call("GET", "/ui/keys.json", &[], None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body["error"].as_str().unwrap().contains("no such file in the page"), "{:?}", missing.body);
    assert_eq!(server.call("POST", "/ui/app.js", &[], None).await.status, 401, "only reading the page is open");

    let slashless = server.call("GET", "/ui", &[], None).await;
    assert_eq!(
        (slashless.status, header(&slashless, "location")),
        (StatusCode::PERMANENT_REDIRECT, Some("ui/".into()))
    );
    let browser = server.call("GET", "/", &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")], None).await;
    assert_eq!((browser.status, header(&browser, "location")), (StatusCode::SEE_OTHER, Some("ui/".into())));
    let client = server.call("GET", "/", &[], None).await;
    assert_eq!((client.status, client.body.as_str()), (StatusCode::OK, Some("hearth is running")));

    assert_eq!(server.call("GET", "/api/live", &[], None).await.status, 401);
    let live = server.call("GET", "/api/live", &[("authorization", &bearer(&key))], None).await;
    assert_eq!(live.status, 200);
    assert_eq!((live.body["in_flight"].as_u64(), live.body["watts"].as_f64()), (Some(0), None), "{:?}", live.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_server_refuses_other_hosts_and_keyless_proxied_requests() {
    let loopback = server(|auth| auth);
    let rebound = loopback.call("GET", "/api/tags", &[("host", "attacker.example.com:11434")], None).await;
    assert_eq!(rebound.status, 403, "{rebound:?}");
    assert!(rebound.body["error"].as_str().unwrap().contains("HEARTH_ALLOWED_HOSTS"), "{rebound:?}");
    let openai = loopback.call("GET", "/v1/models", &[("host", "attacker.example.com")], None).await;
    assert_eq!(
        (openai.status, openai.body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("permission_denied"))
    );
    for host in ["localhost:11434", "127.0.0.1:11434", "[::1]:11434"] {
        assert_eq!(loopback.call("GET", "/api/tags", &[("host", host)], None).await.status, 200, "{host}");
    }
    // A proxy on this machine may be serving the world: without keys, its requests are refused.
    let proxied = loopback.call("GET", "/api/tags", &[("x-forwarded-for", "203.0.113.9")], None).await;
    assert_eq!(proxied.status, 401, "{proxied:?}");
    assert!(proxied.body["error"].as_str().unwrap().contains("hearth keys create"), "{proxied:?}");
    assert_eq!(loopback.call("GET", "/api/version", &[("forwarded", "for=203.0.113.9")], None).await.status, 200);
    let allowed = server(|auth| auth.with_hosts(Some(AllowedHosts::local_and("hearth.lan"))));
    assert_eq!(allowed.call("GET", "/api/tags", &[("host", "hearth.lan")], None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_past_its_requests_per_minute_gets_429_with_retry_after() {
    let limits: KeyLimits =
        serde_json::from_value(json!({"requests_per_minute": 2, "keys": {"batch": {"requests_per_minute": 100}}}))
            .unwrap();
    let server = server(|auth| auth.with_limits(limits));
    let app = server.key("app", Scope::Chat, None);
    let batch = server.key("batch", Scope::Chat, None);
    for _ in 0..2 {
        assert_eq!(server.call("GET", "/api/tags", &[("x-api-key", &app)], None).await.status, 200);
    }
    for (method, path) in DIALECTS {
        let body = (method == "POST").then(anthropic_body);
        let limited = server.call(method, path, &[("x-api-key", &app)], body).await;
        assert_eq!(limited.status, 429, "{path}: {limited:?}");
        let seconds: u64 = limited.retry_after.as_deref().expect("Retry-After").parse().unwrap();
        assert!((1..=30).contains(&seconds), "a request comes back every 30 s: {seconds}");
        let message = error_in_its_dialect(path, &limited, "rate_limit_error", "rate_limit_exceeded");
        assert!(message.contains("requests per minute"), "{message}");
    }
    // Another key has its own allowance.
    for _ in 0..5 {
        assert_eq!(server.call("GET", "/api/tags", &[("x-api-key", &batch)], None).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tokens_a_key_used_count_against_its_day_and_the_ceiling_bounds_every_answer() {
    let limits: KeyLimits = serde_json::from_value(json!({"tokens_per_day": 30})).unwrap();
    let server = server_with(|auth| auth.with_limits(limits), Some(4));
    let key = server.key("app", Scope::Chat, None);
    let ask = json!({"model": "smol", "prompt": "Count to fifty:", "stream": false, "options": {"num_predict": 100}});
    let answer = server.call("POST", "/api/generate", &[("x-api-key", &key)], Some(ask.clone())).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["eval_count"], 4, "the ceiling beats the request's 100: {answer:?}");
    let used = answer.body["prompt_eval_count"].as_u64().unwrap() + 4;
    assert!(used > 30, "the prompt and answer use the day's 30 tokens: {used}");
    let limited = server.call("POST", "/api/generate", &[("x-api-key", &key)], Some(ask)).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.body["error"].as_str().unwrap().contains("tokens per day"), "{limited:?}");
    let seconds: u64 = limited.retry_after.unwrap().parse().unwrap();
    // 30 tokens a day refill one every 48 minutes.
    assert!(seconds >= 60, "{seconds}");
}
