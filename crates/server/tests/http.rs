//! `hearth_server::serve` on a real port of 127.0.0.1, spoken to over raw TCP: connection
//! timeouts (slowloris headers, short bodies, idle keep-alive), the connection cap, error
//! bodies from every layer in each dialect's JSON, and shutdown within the grace period.

mod common;

use hearth_server::{AppState, ServeLimits};
use hearth_store::Digest;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Long enough that a test waiting on it has failed, not merely run slowly.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running server: its address, the switch that shuts it down, and `serve`'s task.
struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Serves a store holding the SmolLM2 test model as `smol` (1024 tokens of context, one
    /// thread, two slots) under `limits`, with `grace` at shutdown.
    async fn start(limits: ServeLimits, grace: Duration) -> Self {
        let (store, dir) = common::store_with_smollm2(
            "smol",
            br#"{"model_format":"gguf","model_family":"llama"}"#,
            br#"{"num_ctx":1024}"#,
        );
        let config = common::residency(2, 1, 8);
        let state = AppState::new(store, config).with_limits(limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(hearth_server::serve(listener, state, shutdown, grace));
        Self { address, stop: Some(stop), task, _dir: dir }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.address).await.unwrap()
    }

    /// Signals shutdown and returns how long `serve` took to return after it.
    async fn shut_down(mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, &mut self.task).await.expect("serve returned").unwrap().unwrap();
        started.elapsed()
    }
}

fn limits() -> ServeLimits {
    ServeLimits::default()
}

/// One HTTP/1.1 answer: status, headers (names lowercased) and body (chunks joined).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one answer off `stream`, leaving the connection as the server left it.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    read_answer_to(stream, "GET").await
}

/// An answer to `method`: one to HEAD has no body, whatever its headers say.
async fn read_answer_to(stream: &mut TcpStream, method: &str) -> Answer {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before an answer: {}", String::from_utf8_lossy(&buffer));
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = buffer[head_end..].to_vec();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let body = if method == "HEAD" {
        Vec::new()
    } else if let Some(length) = find("content-length") {
        let length: usize = length.parse().unwrap();
        while rest.len() < length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the body was cut short");
            rest.extend_from_slice(&chunk[..n]);
        }
        rest
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        // A stream: read until the last chunk, then take the chunks apart.
        while !rest.ends_with(b"0\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        dechunk(&rest)
    } else {
        Vec::new()
    };
    Answer { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16).unwrap();
        let start = line_end + 2;
        if size == 0 || data.len() < start + size {
            break;
        }
        body.extend_from_slice(&data[start..start + size]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    body
}

/// Whether the server closed `stream` (end of file or reset), reading and dropping anything
/// before that; panics if it is still open after `PATIENCE`.
async fn closed(stream: &mut TcpStream) {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closed the connection");
}

/// A whole request in one write.
fn request(method: &str, path: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    if !body.is_empty() {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn ask(server: &Server, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
    let mut stream = server.connect().await;
    stream.write_all(&request(method, path, headers, body)).await.unwrap();
    tokio::time::timeout(PATIENCE, read_answer_to(&mut stream, method)).await.expect("an answer")
}

/// The error shape of each dialect, with its status.
fn assert_ollama_error(answer: &Answer, status: u16) -> String {
    assert_eq!(answer.status, status, "{answer:?}");
    let body = answer.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["error"].as_str().unwrap_or_else(|| panic!("{body}")).to_string()
}

fn assert_openai_error(answer: &Answer, status: u16) -> String {
    assert_eq!(answer.status, status, "{answer:?}");
    let body = answer.json();
    let error = &body["error"];
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "{field} in {body}");
    }
    assert!(error["type"].is_string(), "{body}");
    error["message"].as_str().unwrap().to_string()
}

/// A slowloris client trickling its headers a line at a time is cut off at the header
/// timeout, counted from the connection's start; the server keeps serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_headers_are_closed_after_the_header_timeout() {
    let timeout = Duration::from_millis(400);
    let server = Server::start(ServeLimits { header_timeout: timeout, ..limits() }, Duration::from_secs(5)).await;
    let started = Instant::now();
    let stream = server.connect().await;
    let (mut reading, mut writing) = stream.into_split();
    let trickle = tokio::spawn(async move {
        if writing.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.is_err() {
            return;
        }
        // Each line well within the timeout; all of them together far past it.
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if writing.write_all(format!("X-Slow-{i}: yes\r\n").as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        let mut chunk = [0u8; 1024];
        while let Ok(n @ 1..) = reading.read(&mut chunk).await {
            answer.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the slow connection was closed");
    let took = started.elapsed();
    assert!(took >= timeout, "closed only after the header timeout: {took:?}");
    assert!(took < Duration::from_secs(4), "closed at the header timeout, not at the end of the trickle: {took:?}");
    assert!(!String::from_utf8_lossy(&answer).contains("hearth is running"), "the request was not served");
    trickle.abort();

    // A client that connects and sends nothing at all goes the same way.
    let mut silent = server.connect().await;
    closed(&mut silent).await;

    let answer = ask(&server, "GET", "/", &[], b"").await;
    assert_eq!((answer.status, answer.text().as_str()), (200, "hearth is running"));
    server.shut_down().await;
}

/// A body that stops short of its `Content-Length` is answered 408 in the dialect's shape
/// after the body timeout, and the connection closes; blob uploads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_length_gets_408_after_the_body_timeout() {
    let timeout = Duration::from_millis(300);
    let server = Server::start(ServeLimits { body_timeout: timeout, ..limits() }, Duration::from_secs(5)).await;
    let blob = format!("/api/blobs/{}", Digest::of_bytes(b"never sent whole"));
    for path in ["/api/generate", "/v1/chat/completions", blob.as_str()] {
        let mut stream = server.connect().await;
        let started = Instant::now();
        let head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(br#"{"model": "#).await.unwrap();
        let answer = tokio::time::timeout(PATIENCE, read_answer(&mut stream)).await.expect("an answer");
        assert!(started.elapsed() >= timeout, "{path}: answered only after the timeout: {:?}", started.elapsed());
        let message = if path.starts_with("/v1/") {
            assert_openai_error(&answer, 408)
        } else {
            assert_ollama_error(&answer, 408)
        };
        assert!(message.contains("HEARTH_BODY_TIMEOUT"), "{path}: {message}");
        assert_eq!(answer.header("connection"), Some("close"), "{path}");
        closed(&mut stream).await;
    }
    server.shut_down().await;
}

/// A kept-alive connection left idle is closed at the idle timeout (not the much longer
/// header timeout), while one used more often than that stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(400);
    let limits = ServeLimits { idle_timeout: idle, header_timeout: Duration::from_secs(60), ..limits() };
    let server = Server::start(limits, Duration::from_secs(5)).await;

    let mut busy = server.connect().await;
    for _ in 0..6 {
        busy.write_all(&request("GET", "/api/version", &[], b"")).await.unwrap();
        let answer = tokio::time::timeout(PATIENCE, read_answer(&mut busy)).await.expect("an answer");
        assert_eq!(answer.status, 200, "{answer:?}");
        // Half the idle timeout between requests: six of them outlast it together.
        tokio::time::sleep(idle / 2).await;
    }

    let mut stream = server.connect().await;
    // Before the request: the server's idle timer starts after its answer, so however late
    // this test wakes, the connection cannot close sooner than `idle` after this instant.
    let answered = Instant::now();
    stream.write_all(&request("GET", "/api/version", &[], b"")).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, read_answer(&mut stream)).await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_ne!(answer.header("connection"), Some("close"), "kept alive");
    closed(&mut stream).await;
    let took = answered.elapsed();
    assert!(took >= idle - Duration::from_millis(20), "closed only after the idle timeout: {took:?}");
    assert!(took < Duration::from_secs(10), "closed at the idle timeout: {took:?}");
    server.shut_down().await;
}

/// Past `max_connections`, a new connection is not served until one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_until_one_closes() {
    let server = Server::start(ServeLimits { max_connections: 1, ..limits() }, Duration::from_secs(5)).await;
    let mut first = server.connect().await;
    first.write_all(&request("GET", "/", &[], b"")).await.unwrap();
    assert_eq!(read_answer(&mut first).await.status, 200);

    let mut second = server.connect().await;
    second.write_all(&request("GET", "/api/version", &[], b"")).await.unwrap();
    // The absence of an answer can only be seen by waiting for one.
    let early = tokio::time::timeout(Duration::from_millis(500), read_answer(&mut second)).await;
    assert!(early.is_err(), "the second connection was served while the first held the only place: {early:?}");

    drop(first);
    let answer = tokio::time::timeout(PATIENCE, read_answer(&mut second)).await.expect("served once the first closed");
    assert_eq!(answer.status, 200, "{answer:?}");
    server.shut_down().await;
}

/// Errors from every layer are JSON in the dialect of their path, with their status:
/// unknown routes, wrong methods, bodies over the limit (announced or not), CORS refusals,
/// bad JSON and invalid UTF-8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_in_the_dialect_of_its_path() {
    let server = Server::start(ServeLimits { max_body_bytes: 1024, ..limits() }, Duration::from_secs(5)).await;

    let message = assert_ollama_error(&ask(&server, "GET", "/nope", &[], b"").await, 404);
    assert!(message.contains("/nope"), "{message}");
    let answer = ask(&server, "POST", "/v1/nope", &[], b"{}").await;
    let message = assert_openai_error(&answer, 404);
    assert!(message.contains("/v1/nope"), "{message}");
    assert_eq!(answer.json()["error"]["code"], Value::Null, "not a missing model");

    let answer = ask(&server, "GET", "/api/chat", &[], b"").await;
    let message = assert_ollama_error(&answer, 405);
    assert!(message.contains("GET") && answer.header("allow").is_some_and(|a| a.contains("POST")), "{answer:?}");
    assert_openai_error(&ask(&server, "GET", "/v1/chat/completions", &[], b"").await, 405);

    let big = json!({"model": "smol", "prompt": "x".repeat(2000)}).to_string();
    for path in ["/api/generate", "/v1/completions"] {
        let answer = ask(&server, "POST", path, &[], big.as_bytes()).await;
        let message = if path.starts_with("/v1/") {
            assert_openai_error(&answer, 413)
        } else {
            assert_ollama_error(&answer, 413)
        };
        assert!(message.contains("1024") && message.contains("HEARTH_MAX_BODY_BYTES"), "{message}");
    }
    // Chunked, so only counting tells it is too big.
    let mut chunked = b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 400, "y".repeat(400)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut stream = server.connect().await;
    stream.write_all(&chunked).await.unwrap();
    assert_ollama_error(&read_answer(&mut stream).await, 413);

    let evil = ["Origin: https://evil.example"];
    assert_openai_error(&ask(&server, "GET", "/v1/models", &evil, b"").await, 403);
    assert_ollama_error(&ask(&server, "GET", "/api/tags", &evil, b"").await, 403);

    assert_ollama_error(&ask(&server, "POST", "/api/show", &[], b"{not json").await, 400);
    assert_openai_error(&ask(&server, "POST", "/v1/embeddings", &[], b"[1, 2").await, 400);
    // Invalid UTF-8 inside a field serde would skip unread.
    let mut bad = br#"{"model": "smol", "ignored": ""#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(br#"", "prompt": "hi", "stream": false}"#);
    let message = assert_ollama_error(&ask(&server, "POST", "/api/generate", &[], &bad).await, 400);
    assert!(message.contains("UTF-8"), "{message}");
    assert_openai_error(&ask(&server, "POST", "/v1/completions", &[], &bad).await, 400);

    // The server is still serving.
    assert_eq!(ask(&server, "GET", "/api/version", &[], b"").await.status, 200);
    server.shut_down().await;
}

/// Regression: a body over the limit got its 413 before it was read and the connection
/// closed under the client still sending it, which a proxy (nginx) saw as a reset and
/// turned into a 502. Now the rest is read and dropped first (up to 16 MiB), and the
/// connection serves on; a body announced past that is refused at once, and closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_read_before_its_413_and_the_connection_serves_on() {
    let server = Server::start(ServeLimits { max_body_bytes: 1024, ..limits() }, Duration::from_secs(5)).await;
    let mut stream = server.connect().await;
    let big = json!({"model": "smol", "prompt": "x".repeat(256 * 1024)}).to_string();
    stream.write_all(&request("POST", "/v1/completions", &[], big.as_bytes())).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_openai_error(&answer, 413);
    assert_ne!(answer.header("connection"), Some("close"), "{answer:?}");
    stream.write_all(&request("GET", "/api/version", &[], b"")).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200, "the same connection serves the next request");

    let mut stream = server.connect().await;
    let huge = b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 104857600\r\n\r\n{";
    stream.write_all(huge).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_ollama_error(&answer, 413);
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    server.shut_down().await;
}

/// Blob uploads stream to the store and are not held to the body limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_uploads_are_not_held_to_the_body_limit() {
    let server = Server::start(ServeLimits { max_body_bytes: 1024, ..limits() }, Duration::from_secs(5)).await;
    let blob: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let path = format!("/api/blobs/{}", Digest::of_bytes(&blob));
    assert_eq!(ask(&server, "POST", &path, &[], &blob).await.status, 201);
    assert_eq!(ask(&server, "HEAD", &path, &[], b"").await.status, 200);
    server.shut_down().await;
}

/// A streamed answer that lasts far longer than every timeout (a model load, then token
/// after token) arrives whole: the timeouts are for clients, not for the model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stream_is_not_cut_by_the_timeouts() {
    let short = Duration::from_millis(50);
    let limits = ServeLimits {
        header_timeout: short,
        body_timeout: short,
        idle_timeout: short,
        send_timeout: short,
        ..limits()
    };
    let server = Server::start(limits, Duration::from_secs(5)).await;
    let body = json!({"model": "smol", "prompt": "Once upon a time", "max_tokens": 96, "ignore_eos": true,
                      "temperature": 0, "stream": true});
    let started = Instant::now();
    let answer =
        ask(&server, "POST", "/v1/completions", &["Content-Type: application/json"], body.to_string().as_bytes()).await;
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    let text = answer.text();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(took > short * 4, "the stream outlasted the timeouts several times over: {took:?}");
    server.shut_down().await;
}

/// At shutdown an answer in flight finishes within the grace period and new connections
/// are refused; one still running when the grace period ends is cut off, and `serve`
/// returns promptly instead of waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_answers_within_the_grace_period_and_no_longer() {
    let stream_of = |tokens: u32| {
        let body = json!({"model": "smol", "prompt": "Once upon a time", "max_tokens": tokens, "ignore_eos": true,
                          "temperature": 0, "stream": true});
        request("POST", "/v1/completions", &["Content-Type: application/json"], body.to_string().as_bytes())
    };
    // First byte of the answer's body: the request is in flight.
    async fn until_streaming(stream: &mut TcpStream) -> Vec<u8> {
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("data: ") {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.unwrap().unwrap();
            assert!(n > 0, "closed before streaming");
            seen.extend_from_slice(&chunk[..n]);
        }
        seen
    }
    async fn rest(stream: &mut TcpStream, mut seen: Vec<u8>) -> String {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = tokio::time::timeout(PATIENCE, stream.read(&mut chunk)).await.unwrap() {
            seen.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    let server = Server::start(limits(), Duration::from_secs(30)).await;
    let address = server.address;
    let mut stream = server.connect().await;
    stream.write_all(&stream_of(24)).await.unwrap();
    let seen = until_streaming(&mut stream).await;
    let stopping = tokio::spawn(server.shut_down());
    let text = rest(&mut stream, seen).await;
    assert!(text.contains("data: [DONE]"), "the answer in flight finished: {text}");
    let took = tokio::time::timeout(PATIENCE, stopping).await.unwrap().unwrap();
    assert!(took < Duration::from_secs(20), "serve returned once the answer was done: {took:?}");
    assert!(TcpStream::connect(address).await.is_err(), "no new connections after shutdown");

    let grace = Duration::from_millis(500);
    let server = Server::start(limits(), grace).await;
    let mut stream = server.connect().await;
    // 1000 tokens on one thread: far longer than the grace period.
    stream.write_all(&stream_of(1000)).await.unwrap();
    let seen = until_streaming(&mut stream).await;
    let took = server.shut_down().await;
    assert!(took >= grace - Duration::from_millis(20), "the answer got the grace period: {took:?}");
    assert!(took < grace + Duration::from_secs(3), "serve returned soon after the grace period: {took:?}");
    let text = rest(&mut stream, seen).await;
    assert!(!text.contains("data: [DONE]"), "the long answer was cut off: {text}");
}
