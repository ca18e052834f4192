//! Every endpoint of both dialects, in process (`oneshot` on the router), on the real
//! SmolLM2 test model: shapes, streaming, errors, concurrency, residency.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures_util::StreamExt;
use hearth_core::{EnergyMeter, EnergySource};
use hearth_server::{router, AppState, KeepAlive, ResidencyConfig};
use hearth_store::manifest::{CONFIG_MEDIA_TYPE, MODEL, PARAMS};
use hearth_store::{ImportMode, Manifest, ModelName, Store};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// A meter that reads 0.5 J more at every read: energy fields appear and are "measured".
struct HalfJoulePerRead(f64);

impl EnergyMeter for HalfJoulePerRead {
    fn source(&self) -> EnergySource {
        EnergySource::Measured
    }
    fn joules(&mut self) -> Result<f64, String> {
        self.0 += 0.5;
        Ok(self.0)
    }
}

/// A store holding the SmolLM2 test model as `smollm2:135m` (1024 tokens of context, one
/// thread), served with `parallel` slots.
fn server(parallel: u32, keep_alive: KeepAlive) -> (AppState, tempfile::TempDir) {
    server_with_queue(parallel, keep_alive, 8)
}

fn server_with_queue(parallel: u32, keep_alive: KeepAlive, max_queue: usize) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (model, _) = store.import_file(MODEL, &hearth_engine::test_models::smollm2(), ImportMode::LinkOrCopy).unwrap();
    let config = store
        .write_blob(
            CONFIG_MEDIA_TYPE,
            br#"{"model_format":"gguf","model_family":"llama","model_type":"135M","file_type":"Q4_1"}"#,
        )
        .unwrap();
    let params = store.write_blob(PARAMS, br#"{"num_ctx":1024}"#).unwrap();
    store
        .write_manifest(&ModelName::parse("smollm2:135m").unwrap(), &Manifest::new(config, vec![model, params]))
        .unwrap();
    let config = ResidencyConfig {
        parallel,
        max_loaded: 2,
        max_queue,
        keep_alive,
        threads: Some(1),
        meter: Arc::new(|| Some(Box::new(HalfJoulePerRead(0.0)) as Box<dyn EnergyMeter>)),
    };
    (AppState::new(store, config), dir)
}

fn five_minutes() -> KeepAlive {
    KeepAlive::For(Duration::from_secs(300))
}

async fn call(state: &AppState, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Vec<u8>) {
    let request = Request::builder().method(method).uri(path).header("content-type", "application/json");
    let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, bytes.to_vec())
}

async fn post(state: &AppState, path: &str, body: Value) -> (StatusCode, Value) {
    let (status, bytes) = call(state, Method::POST, path, Some(body)).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

async fn get(state: &AppState, path: &str) -> (StatusCode, Value) {
    let (status, bytes) = call(state, Method::GET, path, None).await;
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes))))
}

/// NDJSON lines of a streamed Ollama answer.
async fn ndjson(state: &AppState, path: &str, body: Value) -> Vec<Value> {
    let (status, bytes) = call(state, Method::POST, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    String::from_utf8(bytes).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The `data:` payloads of an SSE answer.
async fn sse(state: &AppState, path: &str, body: Value) -> Vec<String> {
    let (status, bytes) = call(state, Method::POST, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    text.split("\n\n").filter_map(|event| event.strip_prefix("data: ")).map(str::to_string).collect()
}

fn energy_fields_in(object: &Value) {
    assert!(object["energy_joules"].as_f64().unwrap() > 0.0, "{object}");
    assert!(object["energy_per_token_joules"].as_f64().unwrap() > 0.0, "{object}");
    assert_eq!(object["energy_source"], "measured", "{object}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_endpoints_answer_in_ollamas_shapes() {
    let (state, _dir) = server(2, five_minutes());
    let (status, bytes) = call(&state, Method::GET, "/", None).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, b"hearth is running".as_slice()));
    assert_eq!(call(&state, Method::HEAD, "/", None).await.0, StatusCode::OK);
    assert!(get(&state, "/api/version").await.1["version"].is_string());

    let (status, tags) = get(&state, "/api/tags").await;
    assert_eq!(status, StatusCode::OK);
    let model = &tags["models"][0];
    assert_eq!(model["name"], "smollm2:135m");
    assert_eq!(model["details"]["quantization_level"], "Q4_1");
    assert_eq!(model["details"]["family"], "llama");

    let (status, show) = post(&state, "/api/show", json!({"model": "smollm2:135m"})).await;
    assert_eq!(status, StatusCode::OK, "{show}");
    assert_eq!(show["model_info"]["general.architecture"], "llama");
    assert!(show["template"].as_str().unwrap().contains("im_start"));
    assert!(show["parameters"].as_str().unwrap().contains("num_ctx"));

    // Not streamed: one object with Ollama's counters in nanoseconds, and the energy.
    let question = json!({
        "model": "smollm2:135m", "prompt": "What is the capital of France?", "stream": false,
        "options": {"temperature": 0, "num_predict": 48}
    });
    let (status, answer) = post(&state, "/api/generate", question.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["response"].as_str().unwrap().contains("Paris"), "{answer}");
    assert_eq!(answer["done"], true);
    assert!(["stop", "length"].contains(&answer["done_reason"].as_str().unwrap()));
    assert!(answer["prompt_eval_count"].as_u64().unwrap() > 10);
    let eval_count = answer["eval_count"].as_u64().unwrap();
    assert!(eval_count > 0 && eval_count <= 48);
    assert!(answer["total_duration"].as_u64().unwrap() >= answer["eval_duration"].as_u64().unwrap());
    assert!(answer["load_duration"].as_u64().unwrap() > 0, "the first request loaded the model");
    energy_fields_in(&answer);

    // Streamed: the same text in pieces, the counters on the last line; the prompt is cached.
    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let lines = ndjson(&state, "/api/generate", streamed).await;
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true);
    assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false && l["response"].is_string()));
    let text: String = lines.iter().map(|l| l["response"].as_str().unwrap()).collect();
    assert_eq!(text, answer["response"].as_str().unwrap());
    assert!(last["prompt_cached_count"].as_u64().unwrap() > 10, "{last}");
    assert_eq!(last["load_duration"], 0, "loaded already");

    let lines = ndjson(
        &state,
        "/api/chat",
        json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": "Say hi"}],
               "options": {"seed": 4, "num_predict": 8}}),
    )
    .await;
    assert!(lines.iter().all(|l| l["message"]["role"] == "assistant"));
    energy_fields_in(lines.last().unwrap());
    let (_, chat) = post(
        &state,
        "/api/chat",
        json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": "Say hi"}], "stream": false,
               "options": {"seed": 4, "num_predict": 8}}),
    )
    .await;
    let streamed: String = lines.iter().map(|l| l["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(chat["message"]["content"].as_str().unwrap(), streamed, "same seed, same answer");

    let (_, ps) = get(&state, "/api/ps").await;
    assert_eq!(ps["models"][0]["name"], "smollm2:135m");
    assert_eq!(ps["models"][0]["context_length"], 1024);
    assert!(ps["models"][0]["expires_at"].as_str().unwrap().ends_with('Z'));

    // Copy, then delete the copy: the original stays.
    let copy = json!({"source": "smollm2:135m", "destination": "me/smol:v2"});
    assert_eq!(call(&state, Method::POST, "/api/copy", Some(copy)).await.0, StatusCode::OK);
    let gone = json!({"model": "me/smol:v2"});
    assert_eq!(call(&state, Method::DELETE, "/api/delete", Some(gone.clone())).await.0, StatusCode::OK);
    assert_eq!(call(&state, Method::DELETE, "/api/delete", Some(gone)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(&state, "/api/tags").await.1["models"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_endpoints_answer_in_openais_shapes() {
    let (state, _dir) = server(2, five_minutes());
    let (status, models) = get(&state, "/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "smollm2:135m");
    assert_eq!(get(&state, "/v1/models/smollm2:135m").await.1["object"], "model");
    let (status, missing) = get(&state, "/v1/models/hf.co/org/none:Q4_K_M").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(missing["error"]["message"].as_str().unwrap().contains("does not exist"));

    let ask = json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": "Say hi"}],
                     "max_tokens": 8, "seed": 11});
    let (status, reply) = post(&state, "/v1/chat/completions", ask.clone()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["role"], "assistant");
    assert!(["stop", "length"].contains(&reply["choices"][0]["finish_reason"].as_str().unwrap()));
    let usage = &reply["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
    energy_fields_in(usage);

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = sse(&state, "/v1/chat/completions", streamed).await;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(text, reply["choices"][0]["message"]["content"].as_str().unwrap(), "same seed, same answer");
    let finish = &chunks[chunks.len() - 2];
    assert!(finish["choices"][0]["finish_reason"].is_string());
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    energy_fields_in(&usage_chunk["usage"]);

    let (status, completion) = post(
        &state,
        "/v1/completions",
        json!({"model": "smollm2:135m", "prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{completion}");
    assert_eq!(completion["object"], "text_completion");
    assert!(completion["choices"][0]["text"].as_str().unwrap().contains("Paris"), "{completion}");
    assert_eq!(completion["usage"]["completion_tokens"], 6);

    // /metrics counts what was answered, and the energy the answers reported.
    let (status, bytes) = call(&state, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(bytes).unwrap();
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("hearth_requests_total "), 3.0);
    assert_eq!(value("hearth_requests_in_flight "), 0.0);
    assert!(value("hearth_generated_tokens_total ") >= 6.0 + 2.0);
    assert_eq!(value("hearth_loaded_models "), 1.0);
    assert!(value("hearth_energy_joules_total{domain=\"total\",source=\"measured\"}") > 0.0);
    assert_eq!(value("hearth_time_to_first_token_seconds_count "), 3.0);
    assert!(value("hearth_inter_token_latency_seconds_count ") > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_the_server_keeps_serving() {
    let (state, _dir) = server(2, five_minutes());
    let long_prompt = "word ".repeat(1500);
    let ollama_cases = [
        ("/api/generate", json!("{not json"), StatusCode::BAD_REQUEST, "invalid request body"),
        ("/api/generate", json!({"model": "nope", "prompt": "x"}), StatusCode::NOT_FOUND, "not found"),
        ("/api/generate", json!({"model": "", "prompt": "x"}), StatusCode::BAD_REQUEST, "model is required"),
        ("/api/generate", json!({"model": "a b", "prompt": "x"}), StatusCode::BAD_REQUEST, "invalid model name"),
        (
            "/api/generate",
            json!({"model": "smollm2:135m", "prompt": "x", "stream": "yes"}),
            StatusCode::BAD_REQUEST,
            "invalid type",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2:135m", "prompt": "x", "options": {"temperature": "hot"}}),
            StatusCode::BAD_REQUEST,
            "temperature",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2:135m", "prompt": "x", "options": {"num_predict": 99999999999i64}}),
            StatusCode::BAD_REQUEST,
            "num_predict",
        ),
        ("/api/generate", json!({"model": "smollm2:135m", "prompt": long_prompt}), StatusCode::BAD_REQUEST, "context"),
        (
            "/api/generate",
            json!({"model": "smollm2:135m", "prompt": "x", "format": "json"}),
            StatusCode::BAD_REQUEST,
            "format",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2:135m", "prompt": "x", "keep_alive": "soon"}),
            StatusCode::BAD_REQUEST,
            "keep_alive",
        ),
        ("/api/chat", json!({"model": "smollm2:135m", "messages": "hi"}), StatusCode::BAD_REQUEST, "invalid type"),
        ("/api/show", json!({"model": "nope"}), StatusCode::NOT_FOUND, "not found"),
    ];
    for (path, body, status, message) in ollama_cases {
        let (got, reply) = match body.as_str() {
            Some(raw) => {
                let request = Request::post(path).body(Body::from(raw.to_string())).unwrap();
                let response = router(state.clone()).oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
                (status, serde_json::from_slice::<Value>(&bytes).unwrap())
            }
            None => post(&state, path, body.clone()).await,
        };
        assert_eq!(got, status, "{path} {body}: {reply}");
        let error = reply["error"].as_str().unwrap_or_else(|| panic!("Ollama's shape: {reply}"));
        assert!(error.contains(message), "{path} {body}: {error}");
    }

    let ask = |extra: Value| {
        let mut body = json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let openai_cases = [
        (json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}), StatusCode::NOT_FOUND, "not found"),
        (json!({"model": "smollm2:135m", "messages": []}), StatusCode::BAD_REQUEST, "messages must not be empty"),
        (ask(json!({"n": 2})), StatusCode::BAD_REQUEST, "n must be 1"),
        (ask(json!({"max_tokens": -5})), StatusCode::BAD_REQUEST, "max_tokens"),
        (ask(json!({"temperature": "warm"})), StatusCode::BAD_REQUEST, "invalid request body"),
        (ask(json!({"response_format": {"type": "json_schema"}})), StatusCode::BAD_REQUEST, "not supported yet"),
        (ask(json!({"top_p": 7})), StatusCode::BAD_REQUEST, "top_p"),
    ];
    for (body, status, message) in openai_cases {
        let (got, reply) = post(&state, "/v1/chat/completions", body.clone()).await;
        assert_eq!(got, status, "{body}: {reply}");
        let error = &reply["error"];
        assert!(error["message"].as_str().unwrap().contains(message), "{body}: {reply}");
        assert!(error["type"].is_string() && error.get("code").is_some(), "OpenAI's shape: {reply}");
    }

    // After all that, a good request is answered.
    let (status, reply) = post(&state, "/v1/chat/completions", ask(json!({"max_tokens": 4}))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
}

/// Eight streaming clients at once on four slots: each gets the answer it gets alone.
#[tokio::test(flavor = "multi_thread")]
async fn eight_concurrent_streams_get_the_answers_they_get_alone() {
    let (state, _dir) = server(4, five_minutes());
    let questions = ["Name a color.", "What is 2+2?", "Say hi.", "Name a fruit."];
    let body = |i: usize| {
        json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": questions[i % 4]}],
               "options": {"seed": i + 1, "num_predict": 16}})
    };
    let text = |lines: Vec<Value>| -> String {
        lines.iter().map(|l| l["message"]["content"].as_str().unwrap_or_default()).collect()
    };
    let mut alone = Vec::new();
    for i in 0..8 {
        alone.push(text(ndjson(&state, "/api/chat", body(i)).await));
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let state = state.clone();
            let body = body(i);
            tokio::spawn(async move { ndjson(&state, "/api/chat", body).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(text(task.await.unwrap()), alone[i], "client {i}");
    }
}

/// A client that goes away mid-stream releases its request: with keep_alive 0 the model
/// unloads as soon as nothing holds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_stream_frees_its_request() {
    let (state, _dir) = server(1, KeepAlive::For(Duration::ZERO));
    let request = Request::post("/v1/completions")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"model": "smollm2:135m", "prompt": "Once upon a time", "max_tokens": 900, "stream": true})
                .to_string(),
        ))
        .unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    state.residency.sweep().await;
    assert!(state.residency.loaded().await.is_empty(), "the stream's hold on the model ended with it");
    // The slot is free for the next request.
    let (status, reply) = post(
        &state,
        "/v1/completions",
        json!({"model": "smollm2:135m", "prompt": "The capital of France is", "max_tokens": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
}

/// Past the slots and the queue, a request gets 503 with a message, and the others go on.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_503() {
    let (state, _dir) = server_with_queue(1, five_minutes(), 1);
    let long = || {
        Request::post("/v1/completions")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"model": "smollm2:135m", "prompt": "Once upon a time", "max_tokens": 64, "stream": true,
                       "ignore_eos": true})
                .to_string(),
            ))
            .unwrap()
    };
    // One running, one waiting (max_queue 1): both accepted and held open.
    let running = router(state.clone()).oneshot(long()).await.unwrap();
    let waiting = tokio::spawn({
        let state = state.clone();
        async move { router(state).oneshot(long()).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, reply) = post(&state, "/api/generate", json!({"model": "smollm2:135m", "prompt": "hi"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("busy"), "{reply}");
    let (status, reply) = post(
        &state,
        "/v1/chat/completions",
        json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert_eq!(reply["error"]["code"], "overloaded");
    // The accepted ones finish.
    for response in [running, waiting.await.unwrap()] {
        let text =
            String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    }
}
