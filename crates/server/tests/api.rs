//! Every endpoint of both dialects, in process (`oneshot` on the router), on the real
//! SmolLM2 test model: shapes, streaming, errors, concurrency, residency.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures_util::StreamExt;
use hearth_core::{EnergyMeter, EnergySource};
use hearth_server::{router, AppState, KeepAlive, MemoryProbe, ResidencyConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    server_with(parallel, keep_alive, max_queue, Arc::new(|| None))
}

fn server_with(
    parallel: u32,
    keep_alive: KeepAlive,
    max_queue: usize,
    available_memory: MemoryProbe,
) -> (AppState, tempfile::TempDir) {
    let (store, dir) = common::store_with_smollm2(
        "smollm2:135m",
        br#"{"model_format":"gguf","model_family":"llama","model_type":"135M","file_type":"Q4_1"}"#,
        br#"{"num_ctx":1024}"#,
    );
    let config = ResidencyConfig {
        parallel,
        max_loaded: 2,
        max_queue,
        keep_alive,
        engine: hearth_engine::EngineSettings { threads: Some(1), ..Default::default() },
        meter: Arc::new(|| Some(Box::new(HalfJoulePerRead(0.0)) as Box<dyn EnergyMeter>)),
        available_memory,
        prompt_cache: None,
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
    let per_total = object["energy_per_total_token_joules"].as_f64().unwrap();
    assert!(per_total > 0.0 && per_total < object["energy_per_token_joules"].as_f64().unwrap(), "{object}");
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
    assert!(value("hearth_request_energy_joules_total{source=\"measured\"}") > 0.0);
    assert!(value("hearth_energy_joules_total{domain=\"total\",source=\"measured\"}") > 0.0);
    assert_eq!(value("hearth_time_to_first_token_seconds_count "), 3.0);
    assert!(value("hearth_inter_token_latency_seconds_count ") > 0.0);
}

/// The named events of a stream of `path` (Anthropic's messages, OpenAI's responses), with
/// their data, whose `type` is the event's name.
async fn named_events(state: &AppState, path: &str, body: Value) -> Vec<(String, Value)> {
    let (status, bytes) = call(state, Method::POST, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
    let text = String::from_utf8(bytes).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let (name, data) = event.strip_prefix("event: ").and_then(|e| e.split_once("\ndata: ")).unwrap();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{event}");
            (name.to_string(), data)
        })
        .collect()
}

/// The named events of an Anthropic stream, with their data.
async fn anthropic_events(state: &AppState, body: Value) -> Vec<(String, Value)> {
    named_events(state, "/v1/messages", body).await
}

/// The events of a Responses stream, in order.
async fn responses_events(state: &AppState, body: Value) -> Vec<Value> {
    named_events(state, "/v1/responses", body).await.into_iter().map(|(_, data)| data).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_messages_answer_in_anthropics_shapes() {
    let (state, _dir) = server(2, five_minutes());
    let ask = json!({"model": "smollm2:135m", "max_tokens": 8, "temperature": 0, "system": "Be brief.",
                     "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]});
    let (status, message) = post(&state, "/v1/messages", ask.clone()).await;
    assert_eq!(status, StatusCode::OK, "{message}");
    assert_eq!((&message["type"], &message["role"]), (&json!("message"), &json!("assistant")));
    assert!(["end_turn", "max_tokens"].contains(&message["stop_reason"].as_str().unwrap()), "{message}");
    assert_eq!(message["content"][0]["type"], "text");
    let usage = &message["usage"];
    let input = usage["input_tokens"].as_u64().unwrap() + usage["cache_read_input_tokens"].as_u64().unwrap();
    energy_fields_in(usage);

    // The stream: its events in Anthropic's order, the same text, the usage at both ends.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let events = anthropic_events(&state, streamed).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
    assert!(names[3..names.len() - 3].iter().all(|n| *n == "content_block_delta"), "{names:?}");
    assert_eq!(events[0].1["message"]["usage"]["input_tokens"].as_u64(), Some(input));
    let text: String = events.iter().filter_map(|(_, e)| e["delta"]["text"].as_str()).collect();
    assert_eq!(text, message["content"][0]["text"].as_str().unwrap(), "temperature 0, same answer");
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], message["stop_reason"]);
    assert_eq!(delta["usage"]["output_tokens"], usage["output_tokens"]);

    // A stop sequence is named; count_tokens counts the prompt that was answered.
    let first_word = text.split_whitespace().next().unwrap().to_string();
    let mut stopped = ask.clone();
    stopped["stop_sequences"] = json!(["never-said", first_word]);
    let (_, message) = post(&state, "/v1/messages", stopped).await;
    assert_eq!((&message["stop_reason"], &message["stop_sequence"]), (&json!("stop_sequence"), &json!(first_word)));
    let (status, counted) = post(&state, "/v1/messages/count_tokens", ask.clone()).await;
    assert_eq!((status, counted["input_tokens"].as_u64()), (StatusCode::OK, Some(input)));

    // Errors in Anthropic's shape, from the handler and from the router alike.
    let mut no_max = ask.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    for (path, body, code, kind) in [
        ("/v1/messages", no_max, StatusCode::BAD_REQUEST, "invalid_request_error"),
        (
            "/v1/messages",
            json!({"model": "none", "max_tokens": 1, "messages": []}),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        ),
        (
            "/v1/messages",
            json!({"model": "none", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
            StatusCode::NOT_FOUND,
            "not_found_error",
        ),
        ("/v1/messages/batches", json!({}), StatusCode::NOT_FOUND, "not_found_error"),
    ] {
        let (status, error) = post(&state, path, body).await;
        assert_eq!(status, code, "{error}");
        assert_eq!((&error["type"], &error["error"]["type"]), (&json!("error"), &json!(kind)), "{error}");
        assert!(error["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_answer_stream_keep_and_continue_in_openais_shapes() {
    let (state, _dir) = server(2, five_minutes());
    let ask = json!({"model": "smollm2:135m", "input": "Say hi", "instructions": "Be brief.",
                     "max_output_tokens": 8, "temperature": 0, "metadata": {"run": "test"}});
    let (status, response) = post(&state, "/v1/responses", ask.clone()).await;
    assert_eq!(status, StatusCode::OK, "{response}");
    assert_eq!((&response["object"], &response["metadata"]["run"]), (&json!("response"), &json!("test")));
    assert!(["completed", "incomplete"].contains(&response["status"].as_str().unwrap()), "{response}");
    let output = &response["output"][0];
    assert_eq!((&output["type"], &output["role"]), (&json!("message"), &json!("assistant")));
    let text = output["content"][0]["text"].as_str().unwrap().to_string();
    let usage = &response["usage"];
    assert_eq!(
        usage["total_tokens"],
        usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
    );
    energy_fields_in(usage);

    // The stream: numbered events in the semantic order, the same text, the whole response last.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let events = responses_events(&state, streamed).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..4],
        ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    );
    let ending = format!("response.{}", response["status"].as_str().unwrap());
    assert_eq!(
        kinds[kinds.len() - 4..],
        ["response.output_text.done", "response.content_part.done", "response.output_item.done", ending.as_str()]
    );
    assert!(events.iter().enumerate().all(|(n, e)| e["sequence_number"] == n), "numbered in order");
    let deltas: String = events.iter().filter_map(|e| e["delta"].as_str()).collect();
    assert_eq!(deltas, text, "temperature 0, same answer");
    let last = &events.last().unwrap()["response"];
    assert_eq!(
        (&last["output"][0]["content"][0]["text"], &last["usage"]["output_tokens"]),
        (&json!(text), &usage["output_tokens"])
    );

    // Kept: retrieved, continued (the first exchange is in the prompt), deleted.
    let id = response["id"].as_str().unwrap();
    assert_eq!(get(&state, &format!("/v1/responses/{id}")).await.1["id"], json!(id));
    let follow_up =
        json!({"model": "smollm2:135m", "input": "Again", "previous_response_id": id, "max_output_tokens": 4});
    let (status, continued) = post(&state, "/v1/responses", follow_up.clone()).await;
    assert_eq!(status, StatusCode::OK, "{continued}");
    assert!(continued["usage"]["input_tokens"].as_u64() > usage["input_tokens"].as_u64(), "{continued}");
    let (status, deleted) = call(&state, Method::DELETE, &format!("/v1/responses/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&deleted));
    for (status, error) in
        [get(&state, &format!("/v1/responses/{id}")).await, post(&state, "/v1/responses", follow_up).await]
    {
        assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(id), "{error}");
        assert_eq!(error["error"]["code"], Value::Null, "not a missing model: {error}");
    }
    let (status, error) = post(
        &state,
        "/v1/responses",
        json!({"model": "smollm2:135m", "input": [{"type": "item_reference", "id": "x"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn llama_servers_utility_endpoints_tokenize_detokenize_and_apply_the_template() {
    let (state, _dir) = server(1, five_minutes());
    // No model named and none loaded: which one is meant cannot be told.
    let (status, error) = post(&state, "/tokenize", json!({"content": "Hello"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("model is required"), "{error}");

    let text = "Hello, world! ☕ <|im_start|>";
    let (status, plain) = post(&state, "/tokenize", json!({"model": "smollm2:135m", "content": text})).await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    let ids: Vec<u64> = plain["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
    assert!(ids.len() > 5);
    // One model loaded now: it is the one meant.
    let (_, pieces) = post(&state, "/tokenize", json!({"content": text, "with_pieces": true})).await;
    let pieces = pieces["tokens"].as_array().unwrap();
    assert_eq!(pieces.iter().map(|p| p["id"].as_u64().unwrap()).collect::<Vec<_>>(), ids);
    let mut bytes = Vec::new();
    for piece in pieces {
        match &piece["piece"] {
            Value::String(text) => bytes.extend(text.as_bytes()),
            Value::Array(raw) => bytes.extend(raw.iter().map(|b| b.as_u64().unwrap() as u8)),
            other => panic!("a piece is text or bytes: {other}"),
        }
    }
    assert_eq!(String::from_utf8(bytes).unwrap(), text);
    let (_, special) = post(&state, "/tokenize", json!({"content": "<|im_start|>", "parse_special": true})).await;
    assert_eq!(special["tokens"].as_array().unwrap().len(), 1, "a special token's text is its token");
    let (status, back) = post(&state, "/detokenize", json!({"tokens": ids})).await;
    assert_eq!((status, back["content"].as_str()), (StatusCode::OK, Some(text)));
    let (status, error) = post(&state, "/detokenize", json!({"tokens": [1, 4_000_000_000u64]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("outside the vocabulary"), "{error}");

    let messages = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]);
    let (status, applied) = post(&state, "/apply-template", json!({"messages": messages})).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    let prompt = applied["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("<|im_start|>user\nHi<|im_end|>") && prompt.ends_with("<|im_start|>assistant\n"),
        "{prompt}"
    );
}

/// Regression: Ollama's per-request `options.num_ctx` was ignored, so a client that asks
/// for the context `/api/show` reports (llama-index does) got a 400 for a prompt that fits.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_s_num_ctx_is_the_context_it_is_served_with() {
    let (state, _dir) = server(1, five_minutes());
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/around-the-world-in-80-days.txt"
    ))
    .unwrap();
    let long: String = text.chars().skip(20_000).take(6_000).collect();
    let ask = |options: Value| {
        json!({"model": "smollm2:135m", "stream": false, "options": options,
               "messages": [{"role": "user", "content": format!("Summarize: {long}")}]})
    };
    // The model is stored with num_ctx 1024, which /api/show states: the prompt does not fit.
    let (_, shown) = post(&state, "/api/show", json!({"model": "smollm2:135m"})).await;
    assert_eq!(shown["context_length"], 1024, "{shown}");
    let (status, error) = post(&state, "/api/chat", ask(json!({"num_predict": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, reply) = post(&state, "/api/chat", ask(json!({"num_predict": 1, "num_ctx": 4096}))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply["prompt_eval_count"].as_u64().unwrap() > 1024, "{reply}");
    let (_, running) = get(&state, "/api/ps").await;
    let contexts: Vec<u64> =
        running["models"].as_array().unwrap().iter().map(|m| m["context_length"].as_u64().unwrap()).collect();
    assert!(contexts.contains(&4096), "{running}");
    // Out of the model's bounds: a 400 that names the setting.
    let (status, error) = post(&state, "/api/chat", ask(json!({"num_ctx": 1_000_000}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"].as_str().unwrap().contains("num_ctx"), "{error}");
    let (status, error) = post(&state, "/api/chat", ask(json!({"num_ctx": "large"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

/// A model whose template opens `<think>` in the prompt (as DeepSeek-R1's does) and closes
/// it when asked not to think (as Qwen3's does), and a few examples that teach SmolLM2 to
/// close it: its thinking and answer come apart in every dialect, streamed or not.
#[tokio::test(flavor = "multi_thread")]
async fn a_thinking_model_s_thinking_comes_apart_from_its_answer_in_every_dialect() {
    let (state, _dir) = server(2, five_minutes());
    let template = "{%- for message in messages %}{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{%- else %}{{ '<think>\n' }}{%- endif %}{%- endif %}";
    let (status, created) = post(
        &state,
        "/api/create",
        json!({"model": "thinker", "from": "smollm2:135m", "template": template, "stream": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let (_, shown) = post(&state, "/api/show", json!({"model": "thinker"})).await;
    assert!(shown["capabilities"].as_array().unwrap().contains(&json!("thinking")), "{shown}");
    let messages = json!([
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nTwo plus two makes four.\n</think>\n\n4"},
        {"role": "user", "content": "What is 3+3?"},
        {"role": "assistant", "content": "<think>\nThree plus three makes six.\n</think>\n\n6"},
        {"role": "user", "content": "What is 5+5?"},
    ]);
    let ollama = |extra: Value| {
        let mut body =
            json!({"model": "thinker", "messages": messages, "options": {"temperature": 0, "num_predict": 40}});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, reply) = post(&state, "/api/chat", ollama(json!({"stream": false}))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let thinking = reply["message"]["thinking"].as_str().unwrap().to_string();
    let answer = reply["message"]["content"].as_str().unwrap().to_string();
    assert!(!thinking.trim().is_empty() && !answer.trim().is_empty(), "{reply}");
    for text in [&thinking, &answer] {
        assert!(!text.contains("<think>") && !text.contains("</think>"), "{reply}");
    }
    let lines = ndjson(&state, "/api/chat", ollama(json!({}))).await;
    let joined = |key: &str| lines.iter().filter_map(|l| l["message"][key].as_str()).collect::<String>();
    assert_eq!((joined("thinking"), joined("content")), (thinking.clone(), answer.clone()), "streamed alike");
    // think: false reaches the template (which closes the tag): no thinking at all.
    let (_, plain) = post(&state, "/api/chat", ollama(json!({"stream": false, "think": false}))).await;
    assert!(plain["message"].get("thinking").is_none() && plain["message"]["content"].is_string(), "{plain}");
    for (think, why) in [(json!(true), "does not support thinking"), (json!("extreme"), "think must be")] {
        let body = json!({"model": "smollm2:135m", "stream": false, "think": think, "messages": [{"role": "user", "content": "Hi"}]});
        let (status, error) = post(&state, "/api/chat", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(error["error"].as_str().unwrap().contains(why), "{error}");
    }

    // OpenAI's chat: reasoning_content, as llama.cpp's server gives it.
    let openai = json!({"model": "thinker", "messages": messages, "temperature": 0, "max_tokens": 40});
    let (_, reply) = post(&state, "/v1/chat/completions", openai.clone()).await;
    let message = &reply["choices"][0]["message"];
    assert_eq!(
        (message["reasoning_content"].as_str(), message["content"].as_str()),
        (Some(thinking.as_str()), Some(answer.as_str()))
    );
    let mut streamed = openai.clone();
    streamed["stream"] = json!(true);
    let chunks: Vec<Value> = sse(&state, "/v1/chat/completions", streamed)
        .await
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let joined = |key: &str| chunks.iter().filter_map(|c| c["choices"][0]["delta"][key].as_str()).collect::<String>();
    assert_eq!((joined("reasoning_content"), joined("content")), (thinking.clone(), answer.clone()));

    // Anthropic's: a thinking block before the text, streamed as thinking_delta.
    let anthropic = json!({"model": "thinker", "messages": messages, "temperature": 0, "max_tokens": 40,
                           "thinking": {"type": "enabled", "budget_tokens": 1024}});
    let (_, reply) = post(&state, "/v1/messages", anthropic.clone()).await;
    assert_eq!(reply["content"][0], json!({"type": "thinking", "thinking": thinking, "signature": ""}), "{reply}");
    assert_eq!(reply["content"][1]["text"], json!(answer));
    let mut streamed = anthropic.clone();
    streamed["stream"] = json!(true);
    let events = anthropic_events(&state, streamed).await;
    let joined = |key: &str| events.iter().filter_map(|(_, e)| e["delta"][key].as_str()).collect::<String>();
    assert_eq!((joined("thinking"), joined("text")), (thinking.clone(), answer.clone()));
    let mut refused = anthropic.clone();
    refused["model"] = json!("smollm2:135m");
    assert_eq!(post(&state, "/v1/messages", refused).await.0, StatusCode::BAD_REQUEST);

    // The Responses API's: a reasoning item before the message.
    let responses = json!({"model": "thinker", "input": messages, "temperature": 0, "max_output_tokens": 40});
    let (_, reply) = post(&state, "/v1/responses", responses.clone()).await;
    assert_eq!(reply["output"][0]["type"], "reasoning", "{reply}");
    assert_eq!(reply["output"][0]["content"][0]["text"], json!(thinking));
    assert_eq!(reply["output"][1]["content"][0]["text"], json!(answer));
    assert!(reply["usage"]["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap() > 0, "{reply}");
    let mut streamed = responses.clone();
    streamed["stream"] = json!(true);
    let events = responses_events(&state, streamed).await;
    let joined = |kind: &str| {
        events.iter().filter(|e| e["type"] == kind).filter_map(|e| e["delta"].as_str()).collect::<String>()
    };
    assert_eq!((joined("response.reasoning_text.delta"), joined("response.output_text.delta")), (thinking, answer));
    assert!(events.iter().enumerate().all(|(n, e)| e["sequence_number"] == n));
}

/// Regression: `/v1/completions` ignored `echo: true`, and `max_tokens: 0` with `echo` (scoring
/// a text, as evaluation harnesses do) was refused.
#[tokio::test(flavor = "multi_thread")]
async fn completions_echo_the_prompt_and_score_it() {
    let (state, _dir) = server(1, five_minutes());
    let ask = |extra: Value| {
        let mut body = json!({"model": "smollm2:135m", "prompt": "The capital of France is", "temperature": 0});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, plain) = post(&state, "/v1/completions", ask(json!({"max_tokens": 4}))).await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    let generated = plain["choices"][0]["text"].as_str().unwrap().to_string();
    let (_, echoed) = post(&state, "/v1/completions", ask(json!({"max_tokens": 4, "echo": true}))).await;
    assert_eq!(echoed["choices"][0]["text"], json!(format!("The capital of France is{generated}")), "{echoed}");

    // Scoring alone: every prompt token, the first without a score, nothing generated.
    let (status, scored) =
        post(&state, "/v1/completions", ask(json!({"max_tokens": 0, "echo": true, "logprobs": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{scored}");
    let choice = &scored["choices"][0];
    assert_eq!(
        (choice["text"].as_str(), choice["finish_reason"].as_str()),
        (Some("The capital of France is"), Some("length"))
    );
    let logprobs = &choice["logprobs"];
    let tokens = logprobs["tokens"].as_array().unwrap();
    assert_eq!(tokens.len() as u64, scored["usage"]["prompt_tokens"].as_u64().unwrap());
    assert_eq!(tokens.iter().map(|t| t.as_str().unwrap()).collect::<String>(), "The capital of France is");
    assert_eq!(
        (logprobs["token_logprobs"][0].clone(), logprobs["top_logprobs"][0].clone()),
        (Value::Null, Value::Null)
    );
    let scores: Vec<f64> =
        logprobs["token_logprobs"].as_array().unwrap()[1..].iter().map(|l| l.as_f64().unwrap()).collect();
    assert!(scores.iter().all(|&l| l < 0.0), "{logprobs}");
    assert!(logprobs["top_logprobs"][1].as_object().unwrap().len() == 2, "{logprobs}");
    assert_eq!(scored["usage"]["completion_tokens"], 0);

    // With a completion: the prompt's scores, then the answer's, in one list; the scored
    // first answer token agrees with the log-probability it was generated with.
    let (_, both) = post(&state, "/v1/completions", ask(json!({"max_tokens": 3, "echo": true, "logprobs": 1}))).await;
    let both = &both["choices"][0]["logprobs"];
    assert_eq!(both["tokens"].as_array().unwrap().len(), tokens.len() + 3, "{both}");
    let prompt_plus_first = format!("The capital of France is{}", both["tokens"][tokens.len()].as_str().unwrap());
    let (_, rescored) = post(
        &state,
        "/v1/completions",
        json!({"model": "smollm2:135m", "prompt": prompt_plus_first, "max_tokens": 0, "echo": true, "logprobs": 0}),
    )
    .await;
    let rescored = rescored["choices"][0]["logprobs"]["token_logprobs"].as_array().unwrap().clone();
    assert_eq!(rescored.len(), tokens.len() + 1, "the answer's first token is a token of its own");
    let (generated, scored) =
        (both["token_logprobs"][tokens.len()].as_f64().unwrap(), rescored[tokens.len()].as_f64().unwrap());
    assert!((generated - scored).abs() < 0.05, "generated with {generated}, scored {scored}");
    // Streamed, the echo comes first.
    let mut streamed = ask(json!({"max_tokens": 2, "echo": true, "stream": true}));
    streamed["max_tokens"] = json!(2);
    let events = sse(&state, "/v1/completions", streamed).await;
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["text"], "The capital of France is");
    // max_tokens 0 without echo generates nothing and asks nothing: refused.
    let (status, error) = post(&state, "/v1/completions", ask(json!({"max_tokens": 0}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
}

/// Regression: `/api/show` gave the time of the request as `modified_at`.
#[tokio::test(flavor = "multi_thread")]
async fn show_reports_when_the_model_was_written_not_the_request_time() {
    let (state, dir) = server(1, five_minutes());
    let manifest = dir.path().join("manifests/registry.ollama.ai/library/smollm2/135m");
    let written = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000); // 2020-09-13
    std::fs::File::options().write(true).open(&manifest).unwrap().set_modified(written).unwrap();
    let (status, shown) = post(&state, "/api/show", json!({"model": "smollm2:135m"})).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(shown["modified_at"].as_str().unwrap().starts_with("2020-09-13T"), "{shown}");
    let (_, tags) = get(&state, "/api/tags").await;
    assert_eq!(tags["models"][0]["modified_at"], shown["modified_at"]);
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
            json!({"model": "smollm2:135m", "prompt": "x", "format": "yaml"}),
            StatusCode::BAD_REQUEST,
            "format must be",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2:135m", "prompt": "x", "format": {"properties": {"a": {"$ref": "#/nowhere"}}}}),
            StatusCode::BAD_REQUEST,
            "JSON schema",
        ),
        (
            "/api/generate",
            json!({"model": "smollm2:135m", "prompt": "x", "logprobs": true, "top_logprobs": 50}),
            StatusCode::BAD_REQUEST,
            "top_logprobs",
        ),
        (
            "/api/chat",
            json!({"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"type": "function", "function": {"description": "no name"}}]}),
            StatusCode::BAD_REQUEST,
            "no function name",
        ),
        ("/api/embed", json!({"model": "nope", "input": "x"}), StatusCode::NOT_FOUND, "not found"),
        (
            "/api/embed",
            json!({"model": "smollm2:135m", "input": "x", "dimensions": 100000}),
            StatusCode::BAD_REQUEST,
            "dimensions",
        ),
        ("/api/embed", json!({"model": "smollm2:135m", "input": 5}), StatusCode::BAD_REQUEST, "invalid request body"),
        ("/api/create", json!({"model": "new"}), StatusCode::BAD_REQUEST, "needs from"),
        ("/api/create", json!({"model": "new", "from": "nope", "stream": false}), StatusCode::BAD_REQUEST, "FROM nope"),
        (
            "/api/create",
            json!({"model": "new", "files": {"m.gguf": "sha256:00"}}),
            StatusCode::BAD_REQUEST,
            "not a digest",
        ),
        (
            "/api/create",
            json!({"model": "new", "from": "smollm2:135m", "quantize": "q4_K_M"}),
            StatusCode::BAD_REQUEST,
            "quantize",
        ),
        ("/api/pull", json!({"model": ""}), StatusCode::BAD_REQUEST, "model is required"),
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
        (ask(json!({"response_format": {"type": "json_schema"}})), StatusCode::BAD_REQUEST, "json_schema.schema"),
        (ask(json!({"response_format": {"type": "xml"}})), StatusCode::BAD_REQUEST, "response_format type"),
        (ask(json!({"logprobs": true, "top_logprobs": 21})), StatusCode::BAD_REQUEST, "top_logprobs"),
        (ask(json!({"tool_choice": "sometimes"})), StatusCode::BAD_REQUEST, "tool_choice"),
        (
            ask(json!({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice":
                {"type": "function", "function": {"name": "g"}}})),
            StatusCode::BAD_REQUEST,
            "not among the tools",
        ),
        (ask(json!({"top_p": 7})), StatusCode::BAD_REQUEST, "top_p"),
    ];
    let embeddings = |body: Value| ("/v1/embeddings", body);
    let openai_cases = openai_cases
        .into_iter()
        .map(|(body, status, message)| ("/v1/chat/completions", body, status, message))
        .chain([
            {
                let (path, body) = embeddings(json!({"model": "smollm2:135m", "input": []}));
                (path, body, StatusCode::BAD_REQUEST, "input must not be empty")
            },
            {
                let (path, body) = embeddings(json!({"model": "smollm2:135m", "input": "x", "encoding_format": "hex"}));
                (path, body, StatusCode::BAD_REQUEST, "encoding_format")
            },
            {
                let (path, body) = embeddings(json!({"model": "smollm2:135m", "input": "word ".repeat(1500)}));
                (path, body, StatusCode::BAD_REQUEST, "context")
            },
        ]);
    for (path, body, status, message) in openai_cases {
        let (got, reply) = post(&state, path, body.clone()).await;
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

/// The requests holding the one loaded model now (running or waiting for a slot).
fn requests_on_the_model(state: &AppState) -> usize {
    state.service.residency.loaded().first().map_or(0, |model| model.requests())
}

/// Waits until `condition` holds, checking every few milliseconds; fails after a minute,
/// by when it has not merely been slow.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A streamed `/v1/completions` request for `max_tokens` tokens, end of text or not.
fn streamed_completion(prompt: &str, max_tokens: u32) -> Request<Body> {
    Request::post("/v1/completions")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"model": "smollm2:135m", "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": true,
                   "stream": true})
            .to_string(),
        ))
        .unwrap()
}

/// A client that goes away mid-stream cancels its request: its hold on the model ends with
/// the stream, and the engine stops generating for it. On one slot a request that was not
/// cancelled holds the slot to its last token, so the next request's first token (which
/// its response waits for) must come well before the abandoned answer would have ended at
/// the pace of its own first tokens, a pace that only slows as its context grows.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_stream_frees_its_request() {
    const LONG: u32 = 900;
    const READ: u32 = 16;
    let (state, _dir) = server(1, five_minutes());
    let response = router(state.clone()).oneshot(streamed_completion("Once upon a time", LONG)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    // Events arrive a frame each, but count them in case frames ever join or split them.
    let (mut events, mut first) = (0, None);
    while events < READ {
        let chunk = body.next().await.expect("the answer goes on").unwrap();
        assert!(!chunk.windows(6).any(|w| w == b"[DONE]"), "the answer ended after {events} events");
        let in_chunk = chunk.windows(6).filter(|w| w == b"data: ").count() as u32;
        first.get_or_insert((Instant::now(), in_chunk));
        events += in_chunk;
    }
    let (first_at, in_first) = first.unwrap();
    let pace = first_at.elapsed() / (events - in_first).max(1);
    assert_eq!(requests_on_the_model(&state), 1, "the stream holds its model");
    drop(body);
    assert_eq!(requests_on_the_model(&state), 0, "the stream's hold on the model ended with it");

    let started = Instant::now();
    let response = router(state.clone()).oneshot(streamed_completion("The capital of France is", 4)).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    let rest_of_the_abandoned = pace * (LONG - events);
    assert!(
        waited < rest_of_the_abandoned / 4,
        "the next request waited {waited:?} for its first token; the abandoned one had \
         {rest_of_the_abandoned:?} to go ({pace:?} a token)"
    );
    let text =
        String::from_utf8(axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
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
    wait_until("the second request to hold its place in the queue", || requests_on_the_model(&state) == 2).await;
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

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }})
}

/// A JSON schema in either dialect constrains the answer: it always parses and validates.
#[tokio::test(flavor = "multi_thread")]
async fn structured_output_always_parses_and_follows_the_schema() {
    let (state, _dir) = server(2, five_minutes());
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "pet": {"enum": ["cat", "dog"]}},
        "required": ["name", "age", "pet"],
    });
    let valid = |text: &str| {
        let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(value["name"].is_string() && value["age"].is_i64(), "{value}");
        assert!(["cat", "dog"].contains(&value["pet"].as_str().unwrap()), "{value}");
    };
    for seed in [1, 2] {
        let (status, reply) = post(&state, "/api/chat", json!({
            "model": "smollm2:135m", "stream": false, "format": schema, "options": {"seed": seed, "num_predict": 100},
            "messages": [{"role": "user", "content": "Describe a person and their pet."}],
        }))
        .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        valid(reply["message"]["content"].as_str().unwrap());
    }
    let (status, reply) = post(&state, "/v1/chat/completions", json!({
        "model": "smollm2:135m", "seed": 3, "max_tokens": 100,
        "messages": [{"role": "user", "content": "Describe a person and their pet."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}},
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    valid(reply["choices"][0]["message"]["content"].as_str().unwrap());
    let (_, reply) = post(
        &state,
        "/api/generate",
        json!({
            "model": "smollm2:135m", "prompt": "List three colours.", "format": "json", "stream": false,
            "options": {"seed": 4, "num_predict": 100},
        }),
    )
    .await;
    let text = reply["response"].as_str().unwrap();
    assert!(serde_json::from_str::<Value>(text).unwrap().is_object(), "{text}");
}

/// SmolLM2's template has no tools, so calls come through the generic JSON format: with
/// tool_choice required the answer is always a call to a given function, with valid
/// arguments, in OpenAI's shape (streamed too) and Ollama's.
#[tokio::test(flavor = "multi_thread")]
async fn tool_calls_come_back_in_each_dialects_shape() {
    let (state, _dir) = server(2, five_minutes());
    let question = json!([{"role": "user", "content": "What is the weather like in Paris today?"}]);
    let body = json!({
        "model": "smollm2:135m", "messages": question, "tools": [weather_tool()], "tool_choice": "required",
        "seed": 1, "max_tokens": 80, "parallel_tool_calls": false,
    });
    let (status, reply) = post(&state, "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let choice = &reply["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{reply}");
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "parallel_tool_calls false: {reply}");
    let call = &calls[0];
    assert_eq!((call["type"].as_str(), call["function"]["name"].as_str()), (Some("function"), Some("get_weather")));
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments["city"].is_string(), "{arguments}");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = sse(&state, "/v1/chat/completions", streamed).await;
    let chunks: Vec<Value> =
        events.iter().filter(|e| *e != "[DONE]").map(|e| serde_json::from_str(e).unwrap()).collect();
    let delta_call = chunks.iter().find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned()).unwrap();
    assert_eq!((delta_call["index"].as_u64(), delta_call["function"]["name"].as_str()), (Some(0), Some("get_weather")));
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

    // The result goes back as a tool message, and the model answers.
    let mut follow_up = json!({
        "model": "smollm2:135m", "seed": 1, "max_tokens": 40, "tools": [weather_tool()],
        "messages": [
            question[0],
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "{\"temperature\": 18, \"sky\": \"clear\"}"},
        ],
    });
    let (status, reply) = post(&state, "/v1/chat/completions", follow_up.clone()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let message = &reply["choices"][0]["message"];
    assert!(message["content"].is_string() || message["tool_calls"].is_array(), "{reply}");

    // Ollama: arguments as an object; the model may answer or call, either comes out parsed.
    follow_up["messages"][1]["tool_calls"][0]["function"]["arguments"] = arguments.clone();
    let (status, reply) = post(
        &state,
        "/api/chat",
        json!({
            "model": "smollm2:135m", "stream": false, "messages": question, "tools": [weather_tool()],
            "options": {"seed": 2, "num_predict": 80},
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let message = &reply["message"];
    match message["tool_calls"].as_array() {
        Some(calls) => {
            assert_eq!(calls[0]["function"]["name"], "get_weather", "{reply}");
            assert!(calls[0]["function"]["arguments"].is_object(), "{reply}");
        }
        None => assert!(!message["content"].as_str().unwrap().starts_with('{'), "parsed, not raw JSON: {reply}"),
    }
    let lines = ndjson(&state, "/api/chat", json!({
        "model": "smollm2:135m", "messages": question, "tools": [weather_tool()], "options": {"seed": 2, "num_predict": 80},
    }))
    .await;
    assert_eq!(lines.len(), 2, "the message, then the counters: {lines:?}");
    let without_ids = |message: &Value| {
        let mut message = message.clone();
        for call in message["tool_calls"].as_array_mut().into_iter().flatten() {
            call.as_object_mut().unwrap().remove("id");
        }
        message
    };
    assert_eq!(without_ids(&lines[0]["message"]), without_ids(&reply["message"]), "streamed or not, one message");
    assert_eq!(lines[1]["done"], true);
}

/// Regression: a tool whose parameters use `$defs`/`$ref` (what pydantic writes for any
/// nested model) was refused with "JsonSchemaToGrammarError: ffi error -3" in both dialects.
#[tokio::test(flavor = "multi_thread")]
async fn a_tool_whose_parameters_use_defs_and_refs_is_called() {
    let (state, _dir) = server(1, five_minutes());
    let parameters = json!({
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "type": "object",
        "properties": {"name": {"type": "string"}, "home": {"$ref": "#/$defs/Address"}},
        "required": ["name", "home"],
    });
    let tool = json!({"type": "function", "function": {"name": "save_person", "parameters": parameters}});
    let question = json!([{"role": "user", "content": "Save Ann, who lives in Oslo."}]);
    let body = json!({"model": "smollm2:135m", "messages": question, "tools": [tool], "tool_choice": "required",
                      "max_tokens": 200, "seed": 1});
    let (status, reply) = post(&state, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let call = &reply["choices"][0]["message"]["tool_calls"][0]["function"];
    let arguments: Value =
        serde_json::from_str(call["arguments"].as_str().unwrap_or_else(|| panic!("{reply}"))).unwrap();
    assert!(arguments["home"]["city"].is_string(), "{reply}");

    let body = json!({"model": "smollm2:135m", "messages": question, "tools": [tool], "stream": false,
                      "options": {"num_predict": 200, "seed": 1}});
    let (status, reply) = post(&state, "/api/chat", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let anthropic_tool = json!({"name": "save_person", "input_schema": parameters});
    let body = json!({"model": "smollm2:135m", "messages": question, "tools": [anthropic_tool],
                      "tool_choice": {"type": "any"}, "max_tokens": 200, "temperature": 0});
    let (status, reply) = post(&state, "/v1/messages", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let used = reply["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap();
    assert!(used["input"]["home"]["city"].is_string(), "{reply}");
}

/// Regression: an answer cut off by the token limit while tools were offered showed
/// hearth's wrapper (`{"response": ...` or `{"tool_calls": ...`) as its content.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_cut_off_while_tools_are_offered_shows_no_wrapper() {
    let (state, _dir) = server(1, five_minutes());
    let question = json!([{"role": "user", "content": "Tell me a long story about the sea."}]);
    for max_tokens in [1, 3, 6] {
        let body = json!({"model": "smollm2:135m", "messages": question, "tools": [weather_tool()],
                          "max_tokens": max_tokens, "seed": 4});
        let (status, reply) = post(&state, "/v1/chat/completions", body).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        assert_eq!(reply["choices"][0]["finish_reason"], "length", "{reply}");
        let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!content.contains('{') && !content.contains("response"), "{max_tokens}: {reply}");

        let body = json!({"model": "smollm2:135m", "messages": question, "tools": [weather_tool()], "stream": false,
                          "options": {"num_predict": max_tokens, "seed": 4}});
        let (_, reply) = post(&state, "/api/chat", body).await;
        let content = reply["message"]["content"].as_str().unwrap();
        assert!(!content.contains('{') && !content.contains("response"), "{max_tokens}: {reply}");

        let anthropic_tool = json!({"name": "get_weather", "input_schema": weather_tool()["function"]["parameters"]});
        let body = json!({"model": "smollm2:135m", "messages": question, "tools": [anthropic_tool],
                          "max_tokens": max_tokens});
        let (_, reply) = post(&state, "/v1/messages", body).await;
        assert_eq!(reply["stop_reason"], "max_tokens", "{reply}");
        let text = reply["content"][0]["text"].as_str().unwrap_or_default();
        assert!(!text.contains('{') && !text.contains("response"), "{max_tokens}: {reply}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logprobs_come_with_each_token_in_both_dialects() {
    let (state, _dir) = server(2, five_minutes());
    let (status, reply) = post(
        &state,
        "/v1/chat/completions",
        json!({
            "model": "smollm2:135m", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0,
            "max_tokens": 6, "logprobs": true, "top_logprobs": 2,
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let choice = &reply["choices"][0];
    let content = choice["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len() as u64, reply["usage"]["completion_tokens"].as_u64().unwrap());
    let joined: String = content.iter().map(|t| t["token"].as_str().unwrap()).collect();
    assert_eq!(joined, choice["message"]["content"].as_str().unwrap());
    for token in content {
        assert!(token["logprob"].as_f64().unwrap() <= 0.0 && token["bytes"].is_array());
        assert_eq!(token["top_logprobs"].as_array().unwrap().len(), 2);
    }

    let (_, reply) = post(
        &state,
        "/v1/completions",
        json!({
            "model": "smollm2:135m", "prompt": "The sky is", "temperature": 0, "max_tokens": 4, "logprobs": 3,
        }),
    )
    .await;
    let logprobs = &reply["choices"][0]["logprobs"];
    assert_eq!(logprobs["tokens"].as_array().unwrap().len(), 4, "{reply}");
    assert_eq!(logprobs["top_logprobs"][0].as_object().unwrap().len(), 3, "{reply}");
    assert_eq!(logprobs["text_offset"][0], 0);

    let events = sse(
        &state,
        "/v1/chat/completions",
        json!({
            "model": "smollm2:135m", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0,
            "max_tokens": 6, "logprobs": true, "stream": true,
        }),
    )
    .await;
    let streamed: usize = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array().map(Vec::len))
        .sum();
    assert_eq!(streamed, content.len(), "the same tokens, spread over the chunks");

    let (_, reply) = post(
        &state,
        "/api/generate",
        json!({
            "model": "smollm2:135m", "prompt": "Hi", "stream": false, "logprobs": true, "top_logprobs": 1,
            "options": {"temperature": 0, "num_predict": 5},
        }),
    )
    .await;
    assert_eq!(reply["logprobs"].as_array().unwrap().len(), 5, "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn embeddings_in_all_three_shapes() {
    let (state, _dir) = server(2, five_minutes());
    let (status, reply) =
        post(&state, "/api/embed", json!({"model": "smollm2:135m", "input": ["The cat sat.", "Markets fell."]})).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let vectors = reply["embeddings"].as_array().unwrap();
    assert_eq!((vectors.len(), vectors[0].as_array().unwrap().len()), (2, 576));
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<f64>>();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm(&floats(&vectors[0])) - 1.0).abs() < 1e-4);
    assert!(reply["prompt_eval_count"].as_u64().unwrap() >= 4 && reply["total_duration"].as_u64().unwrap() > 0);

    let (_, one) =
        post(&state, "/api/embed", json!({"model": "smollm2:135m", "input": "The cat sat.", "dimensions": 8})).await;
    let short = floats(&one["embeddings"][0]);
    assert_eq!(short.len(), 8);
    assert!((norm(&short) - 1.0).abs() < 1e-4);

    let (_, legacy) = post(&state, "/api/embeddings", json!({"model": "smollm2:135m", "prompt": "The cat sat."})).await;
    let raw = floats(&legacy["embedding"]);
    let unit: Vec<f64> = raw.iter().map(|x| x / norm(&raw)).collect();
    let first = floats(&vectors[0]);
    assert!(unit.iter().zip(&first).all(|(a, b)| (a - b).abs() < 1e-4), "the legacy vector is the same, unscaled");
    assert!((norm(&raw) - 1.0).abs() > 1e-3);

    let (status, reply) = post(
        &state,
        "/v1/embeddings",
        json!({
            "model": "smollm2:135m", "input": ["The cat sat.", "Markets fell."],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["object"], "list");
    assert_eq!(reply["data"][1]["index"], 1);
    assert_eq!(reply["data"][0]["object"], "embedding");
    assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() >= 4);
    let openai = floats(&reply["data"][0]["embedding"]);
    assert!(openai.iter().zip(&first).all(|(a, b)| (a - b).abs() < 1e-6));
    let (_, encoded) = post(
        &state,
        "/v1/embeddings",
        json!({
            "model": "smollm2:135m", "input": "The cat sat.", "encoding_format": "base64",
        }),
    )
    .await;
    assert_eq!(encoded["data"][0]["embedding"].as_str().unwrap().len(), (576 * 4_usize).div_ceil(3) * 4);
}

/// A GGUF served on 127.0.0.1: `/api/pull` streams its progress, the upload path
/// (`/api/blobs`) and `/api/create` make models from blobs and from other models.
#[tokio::test(flavor = "multi_thread")]
async fn pull_upload_and_create_change_the_store() {
    use hearth_store::test_registry::{Registry, Route};
    let gguf = std::fs::read(hearth_engine::test_models::smollm2()).unwrap();
    let digest = "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    let web = Registry::start([("/m/smol.gguf".to_string(), Route::Body(gguf.clone()))].into());
    let (state, _dir) = server(1, five_minutes());

    let url = format!("http://{}/m/smol.gguf", web.host);
    let lines = ndjson(&state, "/api/pull", json!({"model": url})).await;
    assert_eq!(lines.first().unwrap()["status"], "pulling manifest");
    assert_eq!(lines.last().unwrap()["status"], "success", "{lines:?}");
    let progress = lines.iter().rfind(|l| l["completed"].is_u64()).unwrap();
    assert_eq!(progress["completed"].as_u64(), Some(gguf.len() as u64), "{lines:?}");
    let (_, tags) = get(&state, "/api/tags").await;
    let pulled = format!("{}/m/smol:latest", web.host);
    assert!(tags["models"].as_array().unwrap().iter().any(|m| m["name"] == pulled.as_str()), "{tags}");
    let (status, reply) =
        post(&state, "/api/pull", json!({"model": format!("http://{}/m/gone.gguf", web.host), "stream": false})).await;
    assert!(status.is_server_error() || status.is_client_error(), "{reply}");
    assert!(reply["error"].is_string(), "{reply}");

    // The blob is there already (the pull stored it); a wrong body for a digest is refused.
    let head = |path: String| {
        let state = state.clone();
        async move {
            let request = Request::head(path).body(Body::empty()).unwrap();
            router(state).oneshot(request).await.unwrap().status()
        }
    };
    assert_eq!(head(format!("/api/blobs/{digest}")).await, StatusCode::OK);
    let other = format!("sha256:{}", "0".repeat(64));
    assert_eq!(head(format!("/api/blobs/{other}")).await, StatusCode::NOT_FOUND);
    let request = Request::post(format!("/api/blobs/{other}")).body(Body::from(gguf[..1000].to_vec())).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(head(format!("/api/blobs/{other}")).await, StatusCode::NOT_FOUND, "nothing was stored");

    let lines = ndjson(
        &state,
        "/api/create",
        json!({
            "model": "pirate", "files": {"smol.gguf": digest}, "system": "You are a pirate.",
            "parameters": {"temperature": 0.2, "stop": ["Arr"]}, "license": "MIT",
        }),
    )
    .await;
    assert_eq!(lines.last().unwrap()["status"], "success", "{lines:?}");
    let (_, show) = post(&state, "/api/show", json!({"model": "pirate"})).await;
    assert_eq!(show["system"], "You are a pirate.");
    assert!(show["parameters"].as_str().unwrap().contains("temperature"), "{show}");
    let (status, reply) = post(
        &state,
        "/api/create",
        json!({
            "model": "pirate2", "from": "pirate", "system": "You are a quiet pirate.", "stream": false,
        }),
    )
    .await;
    assert_eq!((status, &reply), (StatusCode::OK, &json!({"status": "success"})));
    let (_, show) = post(&state, "/api/show", json!({"model": "pirate2"})).await;
    assert_eq!(show["system"], "You are a quiet pirate.");
    assert!(show["parameters"].as_str().unwrap().contains("temperature"), "parameters carried over: {show}");
    let (status, reply) = post(
        &state,
        "/api/generate",
        json!({"model": "pirate2", "prompt": "Hi", "stream": false, "options": {"num_predict": 3}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_get_cors_from_allowed_origins_and_every_reply_has_a_request_id() {
    let (state, _dir) = server(1, five_minutes());
    let state = state.with_origins(hearth_server::Origins::local().with("https://*.example.com"));
    let send = |request: Request<Body>| {
        let state = state.clone();
        async move { router(state).oneshot(request).await.unwrap() }
    };
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/chat/completions")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, authorization")
        .body(Body::empty())
        .unwrap();
    let response = send(preflight).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(headers["access-control-allow-headers"], "content-type, authorization");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));

    let local = Request::get("/api/version").header("origin", "http://localhost:5173").body(Body::empty()).unwrap();
    let response = send(local).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "http://localhost:5173");
    assert!(response.headers()["x-request-id"].to_str().unwrap().len() >= 8);

    let foreign = Request::get("/api/version").header("origin", "https://evil.test").body(Body::empty()).unwrap();
    let response = send(foreign).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("access-control-allow-origin").is_none());

    let tagged = Request::get("/api/tags").header("x-request-id", "trace-42").body(Body::empty()).unwrap();
    assert_eq!(send(tagged).await.headers()["x-request-id"], "trace-42");
}

/// With too little memory for a second engine, the idle one unloads first; one that cannot
/// fit even alone is refused with the figures. A copy of a model is not a second engine.
#[tokio::test(flavor = "multi_thread")]
async fn idle_models_unload_when_memory_is_short() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let available = Arc::new(AtomicU64::new(u64::MAX));
    let probe = available.clone();
    let (state, _dir) = server_with(1, five_minutes(), 8, Arc::new(move || Some(probe.load(Ordering::SeqCst))));
    let ask = |model: &str, num_ctx: u32| json!({"model": model, "prompt": "Hi", "stream": false, "options": {"num_predict": 2, "num_ctx": num_ctx}});
    assert_eq!(
        post(&state, "/api/copy", json!({"source": "smollm2:135m", "destination": "twin"})).await.0,
        StatusCode::OK
    );
    assert_eq!(post(&state, "/api/generate", ask("smollm2:135m", 1024)).await.0, StatusCode::OK);
    assert_eq!(post(&state, "/api/generate", ask("twin", 1024)).await.0, StatusCode::OK);
    assert_eq!(get(&state, "/api/ps").await.1["models"].as_array().unwrap().len(), 1, "the copy shares the engine");
    // Enough for one engine at 2048 tokens (weights + its KV cache + buffers), not for two.
    let one_model = hearth_engine::memory_needed(
        &hearth_engine::test_models::smollm2(),
        &hearth_engine::EngineSettings { context_size: Some(2048), parallel: Some(1), ..Default::default() },
    )
    .unwrap();
    available.store(one_model - 1, Ordering::SeqCst);
    let (status, reply) = post(&state, "/api/generate", ask("twin", 2048)).await;
    // Not hearth's failure, and not a wait that would end: the machine lacks the memory.
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("GiB are available"), "{reply}");
    let (_, ps) = get(&state, "/api/ps").await;
    assert!(ps["models"].as_array().unwrap().is_empty(), "the idle model made room: {ps}");
    available.store(one_model, Ordering::SeqCst);
    assert_eq!(post(&state, "/api/generate", ask("twin", 2048)).await.0, StatusCode::OK);
}

/// With a grid intensity and a price configured, every answer says what its energy emitted
/// and cost, in both dialects.
#[tokio::test(flavor = "multi_thread")]
async fn answers_report_carbon_and_cost_when_prices_are_configured() {
    let (state, _dir) = server(1, five_minutes());
    let prices = hearth_core::EnergyPrices {
        grams_co2e_per_kwh: Some(400.0),
        price_per_kwh: Some(0.25),
        currency: "EUR".into(),
    };
    let state = state.with_prices(prices);
    let (_, reply) = post(
        &state,
        "/api/generate",
        json!({
            "model": "smollm2:135m", "prompt": "Hi", "stream": false, "options": {"num_predict": 3},
        }),
    )
    .await;
    let joules = reply["energy_joules"].as_f64().unwrap();
    let grams = reply["energy_co2e_grams"].as_f64().unwrap();
    assert!((grams - 400.0 * joules / 3.6e6).abs() < 1e-6, "{reply}");
    assert!((reply["energy_cost"].as_f64().unwrap() - 0.25 * joules / 3.6e6).abs() < 1e-12, "{reply}");
    assert_eq!(reply["energy_currency"], "EUR");
    let (_, reply) =
        post(&state, "/v1/completions", json!({"model": "smollm2:135m", "prompt": "Hi", "max_tokens": 3})).await;
    assert!(reply["usage"]["energy_co2e_grams"].as_f64().unwrap() > 0.0, "{reply}");
    assert_eq!(reply["usage"]["energy_currency"], "EUR");
}

/// The hardening issue's requests, each answered with a 4xx and a message, after which
/// the server still answers: settings that once crashed or swelled the process, a
/// template that never ends, too many embedding inputs, Ollama's random seed, invalid
/// UTF-8, and a pull from an upstream that is not there.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_4xx_and_cannot_take_the_server_down() {
    let (state, _dir) = server(2, five_minutes());
    let create = |name: &str, extra: Value| {
        let mut body = json!({"model": name, "from": "smollm2:135m", "stream": false});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    for (parameters, why) in [
        (json!({"num_thread": 1_000_000}), "between 1 and 512"),
        (json!({"num_batch": 1_000_000_000u64}), "num_batch"),
        (json!({"num_ctx": 0}), "num_ctx"),
        (json!({"num_batch": 0}), "num_batch"),
        (json!({"num_thread": 0}), "num_thread"),
        (json!({"num_ctx": 1_000_000_000u64}), "trained context"),
        (json!({"num_ctx": -5}), "whole number"),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"temprature": 1}), "unknown parameter"),
    ] {
        for streaming in [false, true] {
            let mut body = create("crash", json!({"parameters": parameters}));
            body["stream"] = json!(streaming);
            let (status, reply) = post(&state, "/api/create", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{parameters}: {reply}");
            assert!(reply["error"].as_str().unwrap().contains(why), "{parameters}: {reply}");
        }
    }
    let (status, reply) = post(&state, "/api/create", create("crash", json!({"template": "{% for %}"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("template"), "{reply}");
    let (_, tags) = get(&state, "/api/tags").await;
    assert_eq!(tags["models"].as_array().unwrap().len(), 1, "nothing was stored: {tags}");

    // A template that parses but never ends fails its requests, not the server.
    let looping = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
    let (status, reply) = post(&state, "/api/create", create("loop", json!({"template": looping}))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let chat = |model: &str, extra: Value| {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": false,
                              "options": {"num_predict": 4}});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, reply) = post(&state, "/api/chat", chat("loop", json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("instructions"), "{reply}");

    let inputs: Vec<String> = (0..2049).map(|i| format!("input {i}")).collect();
    let (status, reply) = post(&state, "/api/embed", json!({"model": "smollm2:135m", "input": inputs})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("at most 2048 inputs"), "{reply}");

    let (status, reply) =
        post(&state, "/api/chat", chat("smollm2:135m", json!({"options": {"seed": -1, "num_predict": 2}}))).await;
    assert_eq!(status, StatusCode::OK, "Ollama's random seed: {reply}");

    let mut invalid = br#"{"model": "smollm2:135m", "prompt": "x", "note": ""#.to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe]);
    invalid.extend_from_slice(br#""}"#);
    let response =
        router(state.clone()).oneshot(Request::post("/api/generate").body(Body::from(invalid)).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Nothing listens on port 9 of this machine: the upstream is named, and it is a 502.
    let (status, reply) =
        post(&state, "/api/pull", json!({"model": "http://127.0.0.1:9/m/x.gguf", "stream": false})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("127.0.0.1:9"), "{reply}");

    let (status, reply) = post(&state, "/api/chat", chat("smollm2:135m", json!({}))).await;
    assert_eq!(status, StatusCode::OK, "still serving: {reply}");
}

/// Until API keys exist, a caller from another machine may not make the server fetch or
/// change the store; chats are served.
#[tokio::test(flavor = "multi_thread")]
async fn store_changing_routes_are_refused_to_other_machines() {
    let (state, _dir) = server(1, five_minutes());
    let from = |peer: &str, path: &str, body: Value| {
        let mut request = Request::post(path).header("content-type", "application/json");
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        request = request.extension(axum::extract::ConnectInfo(peer));
        request.body(Body::from(body.to_string())).unwrap()
    };
    let copy = json!({"source": "smollm2:135m", "destination": "copied"});
    let response = router(state.clone()).oneshot(from("192.168.1.20:5000", "/api/copy", copy.clone())).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert!(reply["error"].as_str().unwrap().contains("HEARTH_ALLOW_REMOTE_ADMIN"), "{reply}");
    let chat = json!({"model": "smollm2:135m", "prompt": "hi", "stream": false, "options": {"num_predict": 2}});
    let response = router(state.clone()).oneshot(from("192.168.1.20:5000", "/api/generate", chat)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = router(state.clone()).oneshot(from("127.0.0.1:5000", "/api/copy", copy)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "this machine may");
}

/// llama.cpp's samplers on OpenAI's endpoints (`top_k`, `min_p`, `repeat_penalty`), as its
/// server takes them: a completion with `repeat_penalty: 1` at temperature 0 is the plain
/// greedy answer Ollama's API gives with the same options, and values out of range are 400s.
#[tokio::test(flavor = "multi_thread")]
async fn llama_cpp_s_samplers_are_taken_on_openai_s_endpoints() {
    let (state, _dir) = server(2, five_minutes());
    let prompt = "List the days of the week: Monday, Tuesday, Monday, Tuesday, Monday,";
    let (status, openai) = post(
        &state,
        "/v1/completions",
        json!({"model": "smollm2:135m", "prompt": prompt, "max_tokens": 24, "temperature": 0, "repeat_penalty": 1,
               "top_k": 1, "min_p": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{openai}");
    let (status, ollama) = post(
        &state,
        "/api/generate",
        json!({"model": "smollm2:135m", "prompt": prompt, "raw": true, "stream": false,
               "options": {"num_predict": 24, "temperature": 0, "repeat_penalty": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ollama}");
    assert_eq!(openai["choices"][0]["text"], ollama["response"]);
    for bad in [json!({"min_p": 2}), json!({"repeat_penalty": -1}), json!({"top_k": -1})] {
        let mut body = json!({"model": "smollm2:135m", "prompt": prompt, "max_tokens": 2});
        body.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        let (status, reply) = post(&state, "/v1/completions", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {reply}");
        assert!(reply["error"]["message"].is_string(), "{reply}");
    }
}

/// hearth's per-request `draft` option names a draft model in the store: the answer is the
/// one without it, its drafts are counted, and the model runs in an engine of its own
/// (another draft is another engine). A draft not in the store is a 404, one that is not a
/// name a 400.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_names_its_draft_model() {
    let (state, _dir) = server(1, five_minutes());
    let ask = |options: Value| {
        json!({"model": "smollm2:135m", "prompt": "Count from one to twenty:", "raw": true, "stream": false,
               "options": options})
    };
    let greedy = json!({"temperature": 0, "repeat_penalty": 1, "num_predict": 24});
    let (status, plain) = post(&state, "/api/generate", ask(greedy.clone())).await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    let mut drafting = greedy.clone();
    drafting["draft"] = json!("smollm2:135m");
    let (status, drafted) = post(&state, "/api/generate", ask(drafting)).await;
    assert_eq!(status, StatusCode::OK, "{drafted}");
    assert_eq!(drafted["response"], plain["response"]);
    assert!(drafted["draft_count"].as_u64().unwrap() > 0, "{drafted}");
    assert!(drafted["draft_accepted_count"].as_u64().unwrap() > 0, "{drafted}");
    assert_eq!(plain["draft_count"].as_u64().unwrap_or(0), 0, "{plain}");
    assert_eq!(state.service.residency.loaded().len(), 2, "the drafting engine is another engine");

    let mut missing = greedy.clone();
    missing["draft"] = json!("no-such-model");
    let (status, reply) = post(&state, "/api/generate", ask(missing)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    let mut wrong = greedy;
    wrong["draft"] = json!(7);
    let (status, reply) = post(&state, "/api/generate", ask(wrong)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("options.draft"), "{reply}");
}
