//! Structure-aware fuzzing of every POST route of both dialects (and `DELETE /api/delete`), in
//! process (`oneshot` on the router) on the real SmolLM2 test model: each case starts from a
//! valid request, mutates its fields (random types, extreme numbers, huge strings, deep
//! nesting, unknown fields) and sometimes its bytes (truncated JSON, invalid UTF-8, odd number
//! literals). Every case must finish in time without a panic, with no 5xx (a 503 only when the
//! server says it is busy), and any error as JSON in the route's dialect; a streamed answer
//! must be well-formed to its end.
//!
//! Bounded and deterministic: a fixed seed and a fixed number of cases per test.
//! `HEARTH_FUZZ_SEED=N` picks another seed, `HEARTH_FUZZ_CASES=N` another number of cases, and
//! `HEARTH_FUZZ_REPORT=1` prints every failing case instead of stopping at the first (the test
//! then fails at the end if any did), and `HEARTH_FUZZ_VERBOSE=1` every request and answer. Nothing leaves 127.0.0.1: pulls name only a server that
//! the test starts on 127.0.0.1 (or names refused before any download), and a case whose body
//! names any other URL or registry is skipped.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use hearth_server::{router, AppState, KeepAlive, ResidencyConfig};
use hearth_store::manifest::{CONFIG_MEDIA_TYPE, MODEL, PARAMS};
use hearth_store::test_registry::{Registry, Route};
use hearth_store::{ImportMode, Layer, Manifest, ModelName, Store};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const M: &str = "smollm2:135m";
/// The SmolLM2 GGUF's digest: a blob in every test's store, for `/api/create`'s `files`.
const SMOL_DIGEST: &str = "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Each case, the answer read to its end included, must finish within this.
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// A string field grows to at most this many characters.
const HUGE: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// The server under test.

/// A store with SmolLM2 as `smollm2:135m` (256 tokens of context, answers of 12 tokens unless a
/// request asks otherwise), a local HTTP server for pulls, and a runtime to drive the router.
struct Harness {
    state: AppState,
    runtime: tokio::runtime::Runtime,
    /// `host:port` of the pull server on 127.0.0.1.
    local: String,
    _registry: Registry,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        keep_pulls_local();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (model, _) =
            store.import_file(MODEL, &hearth_engine::test_models::smollm2(), ImportMode::LinkOrCopy).unwrap();
        let config = store
            .write_blob(
                CONFIG_MEDIA_TYPE,
                br#"{"model_format":"gguf","model_family":"llama","model_type":"135M","file_type":"Q4_1"}"#,
            )
            .unwrap();
        let params = store.write_blob(PARAMS, br#"{"num_ctx":256,"num_predict":12}"#).unwrap();
        store.write_manifest(&ModelName::parse(M).unwrap(), &Manifest::new(config, vec![model, params])).unwrap();
        let config = ResidencyConfig {
            parallel: 2,
            max_loaded: 2,
            max_queue: 64,
            keep_alive: KeepAlive::For(Duration::from_secs(300)),
            engine: hearth_engine::EngineSettings { threads: Some(1), ..Default::default() },
            meter: Arc::new(|| None),
            available_memory: Arc::new(|| None),
            prompt_cache: None,
        };
        let registry = Registry::start(local_routes());
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        Self {
            local: registry.host.clone(),
            state: AppState::new(store, config),
            runtime,
            _registry: registry,
            _dir: dir,
        }
    }

    /// Sends one request and reads its whole answer, within [`CASE_LIMIT`].
    fn send(&self, method: &Method, path: &str, body: Vec<u8>) -> Result<Reply, String> {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let app = router(self.state.clone());
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.runtime.block_on(async {
                tokio::time::timeout(CASE_LIMIT, async {
                    let response = app.oneshot(request).await.unwrap();
                    let status = response.status();
                    let content_type = response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let body = axum::body::to_bytes(response.into_body(), 64 << 20).await.map(|b| b.to_vec());
                    (status, content_type, body)
                })
                .await
            })
        }));
        match outcome {
            Err(panic) => Err(format!("panicked: {}", panic_text(&panic))),
            Ok(Err(_)) => Err(format!("no complete answer within {CASE_LIMIT:?}")),
            Ok(Ok((_, _, Err(e)))) => Err(format!("the body broke off after {:?}: {e}", started.elapsed())),
            Ok(Ok((status, content_type, Ok(body)))) => Ok(Reply { status, content_type, body }),
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Belt and braces on top of the case filter: the catalog's pip and Hugging Face point nowhere.
fn keep_pulls_local() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("HEARTH_PYTHON", "/nonexistent/python3");
        std::env::set_var("HEARTH_HF_ENDPOINT", "http://127.0.0.1:9");
        std::env::remove_var("HEARTH_CATALOG_MIRRORS");
    });
}

/// The pull server's paths: a GGUF that is only a header's first bytes (so a pull downloads it
/// and then refuses it), and a registry model whose blob is not a GGUF.
fn local_routes() -> HashMap<String, Route> {
    let gguf = std::fs::read(hearth_engine::test_models::smollm2()).unwrap();
    let head = gguf[..4096].to_vec();
    let blob = b"not really a model".to_vec();
    let config = br#"{"model_format":"gguf"}"#.to_vec();
    let layer = |media_type: &str, bytes: &[u8]| Layer {
        media_type: media_type.into(),
        digest: hearth_store::Digest::of_bytes(bytes),
        size: bytes.len() as u64,
    };
    let manifest = Manifest::new(layer(CONFIG_MEDIA_TYPE, &config), vec![layer(MODEL, &blob)]);
    let blob_path = |bytes: &[u8]| format!("/v2/library/tiny/blobs/{}", hearth_store::Digest::of_bytes(bytes));
    HashMap::from([
        ("/files/head.gguf".to_string(), Route::Body(head)),
        ("/v2/library/tiny/manifests/latest".to_string(), Route::Body(serde_json::to_vec(&manifest).unwrap())),
        (blob_path(&blob), Route::Body(blob.clone())),
        (blob_path(&config), Route::Body(config.clone())),
        ("/files/broken.gguf".to_string(), Route::Status(500)),
    ])
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// Routes and their valid requests.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Ollama,
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    OllamaGenerate,
    OllamaChat,
    OllamaChatTools,
    OllamaEmbed,
    OllamaEmbeddings,
    Show,
    CreateFrom,
    CreateFiles,
    CreateModelfile,
    Copy,
    Delete,
    Pull,
    OpenAiChat,
    OpenAiChatTools,
    OpenAiCompletions,
    OpenAiEmbeddings,
    AnthropicMessages,
    AnthropicMessagesTools,
    AnthropicCountTokens,
    Responses,
    ResponsesTools,
    Tokenize,
    Detokenize,
    ApplyTemplate,
}

const GENERATION: &[Target] = &[Target::OllamaGenerate, Target::OllamaChat, Target::OllamaChatTools];
const OPENAI_GENERATION: &[Target] = &[
    Target::OpenAiChat,
    Target::OpenAiChatTools,
    Target::OpenAiCompletions,
    Target::Responses,
    Target::ResponsesTools,
];
const ANTHROPIC: &[Target] = &[Target::AnthropicMessages, Target::AnthropicMessagesTools, Target::AnthropicCountTokens];
const UTILITY: &[Target] = &[Target::Tokenize, Target::Detokenize, Target::ApplyTemplate];
const EMBEDDINGS: &[Target] = &[Target::OllamaEmbed, Target::OllamaEmbeddings, Target::OpenAiEmbeddings];
const STORE: &[Target] = &[
    Target::Show,
    Target::CreateFrom,
    Target::CreateFiles,
    Target::CreateModelfile,
    Target::Copy,
    Target::Delete,
    Target::Pull,
];

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

impl Target {
    fn method(self) -> Method {
        if self == Target::Delete {
            Method::DELETE
        } else {
            Method::POST
        }
    }

    fn path(self) -> &'static str {
        match self {
            Target::OllamaGenerate => "/api/generate",
            Target::OllamaChat | Target::OllamaChatTools => "/api/chat",
            Target::OllamaEmbed => "/api/embed",
            Target::OllamaEmbeddings => "/api/embeddings",
            Target::Show => "/api/show",
            Target::CreateFrom | Target::CreateFiles | Target::CreateModelfile => "/api/create",
            Target::Copy => "/api/copy",
            Target::Delete => "/api/delete",
            Target::Pull => "/api/pull",
            Target::OpenAiChat | Target::OpenAiChatTools => "/v1/chat/completions",
            Target::OpenAiCompletions => "/v1/completions",
            Target::OpenAiEmbeddings => "/v1/embeddings",
            Target::AnthropicMessages | Target::AnthropicMessagesTools => "/v1/messages",
            Target::AnthropicCountTokens => "/v1/messages/count_tokens",
            Target::Responses | Target::ResponsesTools => "/v1/responses",
            Target::Tokenize => "/tokenize",
            Target::Detokenize => "/detokenize",
            Target::ApplyTemplate => "/apply-template",
        }
    }

    fn dialect(self) -> Dialect {
        if self.path().starts_with("/v1/messages") {
            Dialect::Anthropic
        } else if self.path().starts_with("/v1/") || UTILITY.contains(&self) {
            Dialect::OpenAi
        } else {
            Dialect::Ollama
        }
    }

    /// A valid request, with small generation limits, streamed or not; `variant` picks among
    /// the pull targets.
    fn base(self, stream: bool, variant: usize, local: &str) -> Value {
        let options = json!({"num_predict": 8, "temperature": 0.5, "top_k": 20, "top_p": 0.9, "seed": 3,
                             "repeat_penalty": 1.1, "stop": ["\n\n"], "num_ctx": 256});
        match self {
            Target::OllamaGenerate => json!({
                "model": M, "prompt": "Say hi", "system": "Be brief.", "stream": stream, "raw": false,
                "options": options, "keep_alive": "5m", "format": null, "logprobs": false, "top_logprobs": 0,
                "images": null, "template": null}),
            Target::OllamaChat => json!({
                "model": M, "stream": stream, "options": options, "keep_alive": "5m", "format": null,
                "logprobs": false, "top_logprobs": 0,
                "messages": [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Say hi", "images": null},
                             {"role": "assistant", "content": "Hello."},
                             {"role": "user", "content": "Again"}]}),
            Target::OllamaChatTools => json!({
                "model": M, "stream": stream, "options": options, "tools": [weather_tool()],
                "messages": [{"role": "user", "content": "Weather in Paris?"},
                             {"role": "assistant", "content": "",
                              "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                             {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
                             {"role": "user", "content": "And Rome?"}]}),
            Target::OllamaEmbed => json!({"model": M, "input": ["hello", "world"], "truncate": true,
                                         "dimensions": 8, "keep_alive": "5m"}),
            Target::OllamaEmbeddings => json!({"model": M, "prompt": "hello", "keep_alive": "5m"}),
            Target::Show => json!({"model": M, "verbose": false}),
            Target::CreateFrom => json!({
                "model": "fuzz-made", "from": M, "system": "Be terse.", "stream": stream,
                "parameters": {"temperature": 0.2, "stop": ["User:"], "num_ctx": 256},
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                "license": "MIT"}),
            Target::CreateFiles => json!({"model": "fuzz-file", "files": {"smol.gguf": SMOL_DIGEST},
                                         "stream": stream, "template": null}),
            Target::CreateModelfile => json!({
                "model": "fuzz-modelfile", "stream": stream,
                "modelfile": format!("FROM {M}\nPARAMETER temperature 0.3\nSYSTEM \"\"\"Be kind.\"\"\"\n")}),
            Target::Copy => json!({"source": M, "destination": "fuzz-copy:v1"}),
            Target::Delete => json!({"model": "fuzz-copy:v1"}),
            Target::Pull => {
                let model = match variant % 5 {
                    0 => format!("http://{local}/files/head.gguf"),
                    1 => format!("{local}/library/tiny:latest"),
                    2 => "127.0.0.1:9/library/nothing".to_string(),
                    3 => format!("http://{local}/files/missing.gguf"),
                    _ => format!("http://{local}/files/broken.gguf"),
                };
                json!({"model": model, "insecure": true, "stream": stream})
            }
            Target::OpenAiChat => json!({
                "model": M, "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "seed": 1, "stop": ["\n\n"],
                "stream": stream, "stream_options": {"include_usage": true}, "n": 1, "logprobs": false,
                "top_logprobs": 0, "response_format": {"type": "text"}, "frequency_penalty": 0,
                "presence_penalty": 0, "user": "fuzz",
                "messages": [{"role": "developer", "content": "Be brief."},
                             {"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
                             {"role": "assistant", "content": "Hello."},
                             {"role": "user", "content": "Again"}]}),
            Target::OpenAiChatTools => json!({
                "model": M, "max_tokens": 8, "stream": stream, "tools": [weather_tool()], "tool_choice": "auto",
                "parallel_tool_calls": true,
                "messages": [{"role": "user", "content": "Weather in Paris?"},
                             {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                              "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                             {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                             {"role": "user", "content": "And Rome?"}]}),
            Target::OpenAiCompletions => json!({
                "model": M, "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0.5, "stream": stream,
                "logprobs": 2, "echo": false, "seed": 1, "stop": "\n", "ignore_eos": false}),
            Target::OpenAiEmbeddings => json!({"model": M, "input": ["hello", "world"], "encoding_format": "float",
                                              "dimensions": 8}),
            Target::AnthropicMessages | Target::AnthropicCountTokens => json!({
                "model": M, "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "top_k": 20, "stream": stream,
                "stop_sequences": ["\n\n"], "metadata": {"user_id": "fuzz"},
                "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
                             {"role": "assistant", "content": "Hello."},
                             {"role": "user", "content": "Again"}]}),
            Target::Tokenize => json!({"model": M, "content": "Hello <|im_start|> ☕", "add_special": true,
                                      "parse_special": true, "with_pieces": stream}),
            Target::Detokenize => json!({"model": M, "tokens": [1, 2, 3, 9690, 28]}),
            Target::ApplyTemplate => json!({"model": M, "messages": [{"role": "system", "content": "Be brief."},
                                                                      {"role": "user", "content": "Hi"}]}),
            Target::Responses => json!({
                "model": M, "max_output_tokens": 8, "temperature": 0.5, "top_p": 0.9, "stream": stream,
                "instructions": "Be brief.", "store": variant.is_multiple_of(2), "metadata": {"k": "v"},
                "text": {"format": {"type": "text"}}, "reasoning": {"effort": "low"},
                "input": [{"role": "developer", "content": "Be kind."},
                          {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hi"}]},
                          {"role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]},
                          {"role": "user", "content": "Again"}]}),
            Target::ResponsesTools => json!({
                "model": M, "max_output_tokens": 8, "stream": stream, "tool_choice": "auto",
                "parallel_tool_calls": true,
                "tools": [{"type": "function", "name": "get_weather", "description": "The weather in a city",
                           "parameters": weather_tool()["function"]["parameters"], "strict": false}],
                "input": [{"role": "user", "content": "Weather in Paris?"},
                          {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                           "arguments": "{\"city\": \"Paris\"}"},
                          {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                          {"role": "user", "content": "And Rome?"}]}),
            Target::AnthropicMessagesTools => json!({
                "model": M, "max_tokens": 8, "stream": stream,
                "tools": [{"name": "get_weather", "description": "The weather in a city",
                           "input_schema": weather_tool()["function"]["parameters"]}],
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": false},
                "messages": [{"role": "user", "content": "Weather in Paris?"},
                             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                              "name": "get_weather", "input": {"city": "Paris"}}]},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                              "content": "sunny", "is_error": false}, {"type": "text", "text": "And Rome?"}]}]}),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

/// Field names of every route, so random objects and new fields hit real ones too.
#[rustfmt::skip]
const FIELDS: &[&str] = &[
    "model", "name", "prompt", "system", "template", "raw", "stream", "format", "options", "keep_alive", "images",
    "logprobs", "top_logprobs", "messages", "role", "content", "tool_calls", "tool_name", "function", "arguments",
    "tools", "input", "truncate", "dimensions", "from", "files", "parameters", "license", "quantize", "adapters",
    "modelfile", "source", "destination", "insecure", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "top_k", "min_p", "seed", "stop", "n", "num_predict", "num_ctx", "num_batch", "num_thread", "repeat_penalty",
    "repeat_last_n", "response_format", "json_schema", "schema", "type", "properties", "items", "required",
    "stream_options", "include_usage", "tool_choice", "parallel_tool_calls", "ignore_eos", "encoding_format", "text",
    "image_url", "tool_call_id", "id", "enum", "pattern", "minimum", "maximum", "$ref", "anyOf", "additionalProperties",
    "stop_sequences", "metadata", "input_schema", "tool_use", "tool_result", "tool_use_id", "is_error", "thinking",
    "budget_tokens", "disable_parallel_tool_use", "cache_control", "instructions", "max_output_tokens", "store",
    "previous_response_id", "call_id", "output", "input_text", "output_text", "function_call", "function_call_output",
    "reasoning", "effort", "tokens", "add_special", "parse_special", "with_pieces",
];

#[rustfmt::skip]
fn interesting_strings() -> Vec<String> {
    let mut strings: Vec<String> = [
        "", " ", "\0", "\u{1}", "\n", "\r\n", "\u{FFFD}", "\u{FEFF}", "🦀", "é", "\u{202E}", "<|im_end|>",
        "<|im_start|>assistant\n", "{{ messages }}", "{% for m in messages %}{{ m.content }}{% endfor %}",
        "{{ raise_exception('x') }}", "{%", "NaN", "nan", "inf", "-inf", "Infinity", "-0", "0", "-1", "1e400",
        "99999999999999999999", "5m", "-5m", "0s", "1h30m", "300ms", "10x", "json", "text", "json_object",
        "json_schema", "auto", "none", "required", "function", "user", "assistant", "system", "tool", "developer",
        "any", "enabled", "disabled", "image", "document", "tool_use", "tool_result", "thinking", "custom",
        "robot", "float", "base64", "q4_0", "../../etc/passwd", "/", "a/b/c/d", "x:y:z", "name:", ":tag", "UPPER",
        "bad name!", "me/smol:v2", "fuzz-made", "fuzz-copy:v1", "fuzz-file", "nope", "smol.gguf", "x.bin",
        "sha256:nothex", SMOL_DIGEST, "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "%s%n%x", "'; DROP TABLE", "\\", "\"", "\\u0000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    strings.push("a".repeat(300));
    strings.push("🦀".repeat(1000));
    strings
}

#[rustfmt::skip]
fn interesting_numbers() -> Vec<Value> {
    let mut numbers: Vec<Value> = [0i64, 1, -1, 2, 7, 20, 21, 255, 256, 1024, 65535, 65536, 2147483647, 2147483648,
        -2147483648, -2147483649, 4294967295, 4294967296, 9007199254740993, i64::MIN, i64::MAX]
    .iter()
    .map(|n| json!(n))
    .collect();
    numbers.push(json!(u64::MAX));
    for x in [0.5, -0.0, 1e-300, 5e-324, 1e300, -1e300, f64::MAX, f64::MIN, 3.4e38, 3.5e38, 1e39, 1e12, 1.5, -0.5] {
        numbers.push(json!(x));
    }
    numbers
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(interesting_strings()),
        3 => "\\PC{0,24}",
        2 => (any::<char>(), 0..HUGE).prop_map(|(c, n)| c.to_string().repeat(n.min(HUGE / c.len_utf8()))),
        1 => prop::collection::vec(any::<char>(), 0..64).prop_map(|cs| cs.into_iter().collect()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(FIELDS).prop_map(str::to_string), 1 => string_value()]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => prop::sample::select(interesting_numbers()),
        1 => any::<i64>().prop_map(|n| json!(n)),
        1 => any::<f64>().prop_map(|x| json!(x)),
        3 => string_value().prop_map(Value::String),
        // Token ids, some past the vocabulary.
        1 => prop::collection::vec(prop_oneof![0u64..49152, Just(49152u64), Just(u64::from(u32::MAX)), any::<u64>()], 0..8)
            .prop_map(|ids| json!(ids)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m: BTreeMap<String, Value>| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Op {
    /// A value of the same JSON type: another number, string, bool; an array or object grown.
    Retype(Value, String, Value),
    Replace(Value),
    Remove,
    /// A new field on the object at (or holding) the target.
    Add(String, Value),
    /// The target wrapped in this many arrays or objects.
    Nest(usize, bool),
    /// An array's items repeated.
    Repeat(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::sample::select(interesting_numbers()), string_value(), json_value())
            .prop_map(|(n, s, v)| Op::Retype(n, s, v)),
        4 => json_value().prop_map(Op::Replace),
        2 => Just(Op::Remove),
        3 => (key(), json_value()).prop_map(|(k, v)| Op::Add(k, v)),
        1 => (1usize..300, any::<bool>()).prop_map(|(d, o)| Op::Nest(d, o)),
        1 => (2usize..64).prop_map(Op::Repeat),
    ]
}

#[derive(Debug, Clone)]
enum Raw {
    /// The body cut short.
    Truncate(Index),
    /// Bytes inserted: invalid UTF-8, a NUL, stray JSON punctuation or literals.
    Insert(Index, Vec<u8>),
    /// A number literal replaced by one JSON cannot hold or spells oddly.
    Number(Index, &'static str),
    /// A byte inside the body replaced by one that is not UTF-8.
    Corrupt(Index, u8),
}

#[rustfmt::skip]
fn raw() -> impl Strategy<Value = Raw> {
    let inserts: Vec<Vec<u8>> = [
        &b"\xff"[..], b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\0", b"NaN", b"Infinity", b"-0",
        b"1e400", b",", b"}", b"]", b"\"", b"\\u", b"\\ud800", b"\\uDFFF", b"{\"model\":", b" ", b"\t\r\n",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    let literals =
        ["NaN", "-NaN", "Infinity", "1e400", "-1e400", "1e-400", "01", "1.", "-", "0x10", "123456789012345678901234567890",
         "-123456789012345678901234567890", "1E+2", "-0.0e0"];
    prop_oneof![
        2 => any::<Index>().prop_map(Raw::Truncate),
        2 => (any::<Index>(), prop::sample::select(inserts)).prop_map(|(i, b)| Raw::Insert(i, b)),
        2 => (any::<Index>(), prop::sample::select(literals.to_vec())).prop_map(|(i, l)| Raw::Number(i, l)),
        1 => (any::<Index>(), 0x80u8..=0xff).prop_map(|(i, b)| Raw::Corrupt(i, b)),
    ]
}

/// One case: a route's valid request, streamed or not, with field mutations and maybe a byte one.
#[derive(Debug, Clone)]
struct Case {
    target: Target,
    stream: bool,
    variant: usize,
    mutations: Vec<(Index, Op)>,
    raw: Option<Raw>,
}

fn case(targets: &'static [Target]) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(targets),
        any::<bool>(),
        0usize..5,
        prop::collection::vec((any::<Index>(), op()), 0..4),
        prop::option::weighted(0.25, raw()),
    )
        .prop_map(|(target, stream, variant, mutations, raw)| Case { target, stream, variant, mutations, raw })
}

/// Every place in `value`: the root, then each object field and array item, depth first.
fn places(value: &Value, here: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
    out.push(here.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                here.push(PathStep::Key(k.clone()));
                places(v, here, out);
                here.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                here.push(PathStep::Item(i));
                places(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Item(usize),
}

fn at<'a>(value: &'a mut Value, path: &[PathStep]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match step {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Item(i) => &mut v[*i],
    })
}

fn mutate(mut value: Value, mutations: &[(Index, Op)]) -> Value {
    for (index, op) in mutations {
        let mut all = Vec::new();
        places(&value, &mut Vec::new(), &mut all);
        // Only a new field goes on the root itself; anything else there throws the request away.
        if !matches!(op, Op::Add(..)) && all.len() > 1 {
            all.remove(0);
        }
        let path = all[index.index(all.len())].clone();
        match op {
            Op::Retype(number, string, item) => {
                let target = at(&mut value, &path);
                match target {
                    Value::Number(_) => *target = number.clone(),
                    Value::String(_) => *target = Value::String(string.clone()),
                    Value::Bool(b) => *b = !*b,
                    Value::Array(items) => items.push(item.clone()),
                    Value::Object(o) => {
                        o.insert(string.clone(), item.clone());
                    }
                    Value::Null => *target = item.clone(),
                }
            }
            Op::Replace(v) => *at(&mut value, &path) = v.clone(),
            Op::Remove => match path.split_last() {
                Some((PathStep::Key(k), parent)) => {
                    if let Some(object) = at(&mut value, parent).as_object_mut() {
                        object.remove(k);
                    }
                }
                Some((PathStep::Item(i), parent)) => {
                    if let Some(items) = at(&mut value, parent).as_array_mut() {
                        items.remove(*i);
                    }
                }
                None => {}
            },
            Op::Add(k, v) => {
                let target = at(&mut value, &path);
                let object = if target.is_object() {
                    target
                } else {
                    let parent = &path[..path.len().saturating_sub(1)];
                    at(&mut value, parent)
                };
                if let Some(o) = object.as_object_mut() {
                    o.insert(k.clone(), v.clone());
                }
            }
            Op::Nest(depth, objects) => {
                let target = at(&mut value, &path);
                let mut nested = target.take();
                for _ in 0..*depth {
                    nested = if *objects {
                        Value::Object(Map::from_iter([("x".to_string(), nested)]))
                    } else {
                        Value::Array(vec![nested])
                    };
                }
                *target = nested;
            }
            Op::Repeat(n) => {
                if let Some(items) = at(&mut value, &path).as_array_mut() {
                    let once = items.clone();
                    for _ in 1..*n {
                        items.extend(once.iter().cloned());
                    }
                }
            }
        }
    }
    value
}

fn corrupt(mut bytes: Vec<u8>, raw: &Raw) -> Vec<u8> {
    match raw {
        Raw::Truncate(i) => bytes.truncate(i.index(bytes.len().max(1))),
        Raw::Insert(i, b) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Raw::Number(i, literal) => {
            // The number literals' spans, outside strings.
            let mut spans = Vec::new();
            let (mut in_string, mut escaped, mut start) = (false, false, None);
            for (at, &b) in bytes.iter().enumerate() {
                if in_string {
                    (escaped, in_string) = (!escaped && b == b'\\', escaped || b != b'"');
                    continue;
                }
                let numeric = b.is_ascii_digit() || b"-+.eE".contains(&b);
                match (numeric, start) {
                    (true, None) => start = Some(at),
                    (false, Some(s)) => {
                        if bytes[s..at].iter().any(u8::is_ascii_digit) {
                            spans.push(s..at);
                        }
                        start = None;
                    }
                    _ => {}
                }
                in_string = b == b'"';
            }
            if let Some(span) = (!spans.is_empty()).then(|| spans[i.index(spans.len())].clone()) {
                bytes.splice(span, literal.bytes());
            }
        }
        Raw::Corrupt(i, b) => {
            if !bytes.is_empty() {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// Keeping the cases on this machine and the test model intact.

/// A URL the test may send the server to: plain or TLS to 127.0.0.1, a port, then a path.
fn local_url(text: &str) -> bool {
    let rest = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"));
    let Some(rest) = rest.and_then(|r| r.strip_prefix("127.0.0.1:")) else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest[digits..].starts_with('/') && !rest.contains('@') && !rest.contains('\\')
}

/// Whether every `scheme://` in `text` starts a URL on 127.0.0.1.
fn urls_are_local(text: &str) -> bool {
    text.match_indices("://").all(|(at, _)| {
        let scheme = text[..at].rfind(|c: char| !c.is_ascii_alphanumeric()).map_or(0, |i| i + 1);
        local_url(&text[scheme..])
    })
}

/// Every string in `value`, keys included.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => {}
    }
}

/// Whether what `arg` names for `/api/pull` is refused before any download, or is on 127.0.0.1.
fn pull_stays_local(arg: &str) -> bool {
    if hearth_server::models::name_to_pull(arg).is_err() {
        return true;
    }
    if hearth_store::is_gguf_url(arg) {
        return local_url(arg);
    }
    // Other forms that name_to_pull takes (a Hugging Face file) leave this machine.
    let Ok(name) = ModelName::parse(arg) else { return false };
    let port = name.host.strip_prefix("127.0.0.1:").unwrap_or("x");
    (name.host == "127.0.0.1" || (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())))
        && hearth_store::catalog_lookup(&name).is_none()
}

fn is_the_test_model(text: &str) -> bool {
    ModelName::parse(text).is_ok_and(|n| n.same_as(&ModelName::parse(M).unwrap()))
}

/// Why a case must not be sent, if it must not: it names a URL off this machine, a pull that
/// would leave it, or it would replace or delete the test model.
fn unsafe_case(target: Target, body: &[u8]) -> Option<String> {
    // What the server cannot parse as JSON it refuses before looking at any field.
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut all = Vec::new();
    strings(&value, &mut all);
    if let Some(s) = all.iter().find(|s| !urls_are_local(s)) {
        return Some(format!("names a URL off this machine: {s:.80}"));
    }
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    match target {
        Target::Pull => {
            for arg in [field("model"), field("name")] {
                if !pull_stays_local(&arg) {
                    return Some(format!("a pull of {arg:.80} could leave this machine"));
                }
            }
        }
        Target::CreateFrom | Target::CreateFiles | Target::CreateModelfile | Target::Delete
            if is_the_test_model(&field("model")) || is_the_test_model(&field("name")) =>
        {
            return Some("would replace or delete the test model".into());
        }
        Target::Copy if is_the_test_model(&field("destination")) => {
            return Some("would replace the test model".into());
        }
        _ => {}
    }
    None
}

// ---------------------------------------------------------------------------------------------
// What every answer must be.

fn error_in_dialect(dialect: Dialect, value: &Value) -> bool {
    let error = &value["error"];
    match dialect {
        Dialect::Ollama => error.as_str().is_some_and(|m| !m.is_empty()),
        Dialect::OpenAi => error["message"].is_string() && error["type"].is_string(),
        Dialect::Anthropic => value["type"] == "error" && error["type"].is_string() && error["message"].is_string(),
    }
}

fn check(target: Target, reply: &Reply) -> Result<(), String> {
    let dialect = target.dialect();
    let text = String::from_utf8_lossy(&reply.body);
    let status = reply.status;
    // 529 is Anthropic's status for an overloaded server.
    let busy = [503, 529].contains(&status.as_u16()) && text.contains("busy");
    // A download that fails upstream is a gateway's error, not an internal one.
    let downloads = matches!(target, Target::Pull | Target::CreateFrom | Target::CreateModelfile);
    let upstream = downloads && [StatusCode::BAD_GATEWAY, StatusCode::GATEWAY_TIMEOUT].contains(&status);
    if status.is_server_error() && !busy && !upstream {
        return Err(format!("HTTP {status}: {text:.400}"));
    }
    if status.as_u16() >= 400 {
        let value: Value = serde_json::from_slice(&reply.body)
            .map_err(|_| format!("HTTP {status} with a body that is not JSON: {text:.400}"))?;
        if !error_in_dialect(dialect, &value) {
            return Err(format!("HTTP {status} with an error not in {dialect:?}'s shape: {text:.400}"));
        }
        return Ok(());
    }
    if reply.content_type.starts_with("application/x-ndjson") {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let Some(last) = lines.last() else { return Err("an empty NDJSON stream".into()) };
        for line in &lines {
            let value: Value =
                serde_json::from_str(line).map_err(|_| format!("an NDJSON line is not JSON: {line:.300}"))?;
            let store_route =
                matches!(target, Target::Pull | Target::CreateFrom | Target::CreateFiles | Target::CreateModelfile);
            if value.get("error").is_some() && !store_route {
                return Err(format!("an error after HTTP 200, mid-stream: {line:.300}"));
            }
            if value.get("error").is_some() && !error_in_dialect(Dialect::Ollama, &value) {
                return Err(format!("a stream's error line not in Ollama's shape: {line:.300}"));
            }
        }
        let last: Value = serde_json::from_str(last).unwrap();
        let finished = last["done"] == true || last["status"] == "success" || last.get("error").is_some();
        if !finished {
            return Err(format!("the stream ends without a last line: {last}"));
        }
    } else if reply.content_type.starts_with("text/event-stream") && dialect == Dialect::Anthropic {
        check_anthropic_events(&text)?;
    } else if reply.content_type.starts_with("text/event-stream") && target.path() == "/v1/responses" {
        check_response_events(&text)?;
    } else if reply.content_type.starts_with("text/event-stream") {
        if !text.ends_with("data: [DONE]\n\n") {
            return Err(format!(
                "an SSE stream that does not end with data: [DONE]: …{}",
                &text[text.len().saturating_sub(300)..]
            ));
        }
        for event in text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).filter(|e| *e != "[DONE]") {
            let value: Value =
                serde_json::from_str(event).map_err(|_| format!("an SSE event is not JSON: {event:.300}"))?;
            if value.get("error").is_some() {
                return Err(format!("an error after HTTP 200, mid-stream: {event:.300}"));
            }
        }
    } else if status == StatusCode::OK && reply.content_type.starts_with("application/json") {
        serde_json::from_slice::<Value>(&reply.body)
            .map_err(|_| format!("HTTP 200 JSON that does not parse: {text:.300}"))?;
    }
    Ok(())
}

/// Anthropic's event stream: named events whose data is JSON of the same type, opening with
/// `message_start` and closing with `message_stop`, and no error after the 200.
fn check_anthropic_events(text: &str) -> Result<(), String> {
    let mut names = Vec::new();
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let (name, data) = event
            .strip_prefix("event: ")
            .and_then(|rest| rest.split_once("\ndata: "))
            .ok_or_else(|| format!("an SSE event without its name and data: {event:.300}"))?;
        let value: Value = serde_json::from_str(data).map_err(|_| format!("an SSE event is not JSON: {data:.300}"))?;
        if value["type"] != name {
            return Err(format!("event {name} carries data of type {}", value["type"]));
        }
        if name == "error" {
            return Err(format!("an error after HTTP 200, mid-stream: {data:.300}"));
        }
        names.push(name);
    }
    if names.first() != Some(&"message_start") || names.last() != Some(&"message_stop") {
        return Err(format!("a stream that does not open with message_start and close with message_stop: {names:?}"));
    }
    Ok(())
}

/// The Responses API's event stream: named, numbered events in order, from
/// `response.created` to `response.completed` or `response.incomplete`, no error after the 200.
fn check_response_events(text: &str) -> Result<(), String> {
    let mut names = Vec::new();
    for (index, event) in text.split("\n\n").filter(|e| !e.trim().is_empty()).enumerate() {
        let (name, data) = event
            .strip_prefix("event: ")
            .and_then(|rest| rest.split_once("\ndata: "))
            .ok_or_else(|| format!("an SSE event without its name and data: {event:.300}"))?;
        let value: Value = serde_json::from_str(data).map_err(|_| format!("an SSE event is not JSON: {data:.300}"))?;
        if value["type"] != name || value["sequence_number"] != index {
            return Err(format!("event {index} ({name}) carries {data:.300}"));
        }
        if name == "error" {
            return Err(format!("an error after HTTP 200, mid-stream: {data:.300}"));
        }
        names.push(name);
    }
    let ends = ["response.completed", "response.incomplete"];
    if names.first() != Some(&"response.created") || !names.last().is_some_and(|last| ends.contains(last)) {
        return Err(format!("a stream that does not run from response.created to its end: {names:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The runner.

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn describe(target: Target, body: &[u8]) -> String {
    format!("{} {} {:.600}", target.method(), target.path(), String::from_utf8_lossy(body))
}

/// Runs `cases` cases (or `HEARTH_FUZZ_CASES`) drawn from `targets` against a fresh server.
fn fuzz(targets: &'static [Target], cases: u32) {
    let harness = Harness::new();
    let report = std::env::var_os("HEARTH_FUZZ_REPORT").is_some();
    let verbose = std::env::var_os("HEARTH_FUZZ_VERBOSE").is_some();
    let config = Config {
        cases: env_number("HEARTH_FUZZ_CASES").map_or(cases, |n| n as u32),
        failure_persistence: None,
        max_shrink_iters: 64,
        max_shrink_time: 30_000,
        max_global_rejects: 10_000,
        rng_seed: RngSeed::Fixed(env_number("HEARTH_FUZZ_SEED").unwrap_or(1)),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let (failures, skipped, sent) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    let result = runner.run(&case(targets), |case| {
        let value = mutate(case.target.base(case.stream, case.variant, &harness.local), &case.mutations);
        let mut body = serde_json::to_vec(&value).unwrap();
        if let Some(raw) = &case.raw {
            body = corrupt(body, raw);
        }
        if let Some(why) = unsafe_case(case.target, &body) {
            skipped.fetch_add(1, Ordering::Relaxed);
            return Err(TestCaseError::reject(why));
        }
        sent.fetch_add(1, Ordering::Relaxed);
        let outcome = harness.send(&case.target.method(), case.target.path(), body.clone()).and_then(|reply| {
            if verbose {
                let text = String::from_utf8_lossy(&reply.body);
                eprintln!("{:.200}\n  -> {} {:.200}", describe(case.target, &body), reply.status, text);
            }
            check(case.target, &reply)
        });
        match outcome {
            Ok(()) => Ok(()),
            Err(why) if report => {
                failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("FUZZ FAILURE: {}\n  -> {why}", describe(case.target, &body));
                Ok(())
            }
            Err(why) => Err(TestCaseError::fail(format!("{}\n  -> {why}", describe(case.target, &body)))),
        }
    });
    eprintln!(
        "fuzzed {:?}: {} requests sent, {} cases skipped (off this machine or the test model), {:.1} s",
        targets,
        sent.load(Ordering::Relaxed),
        skipped.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failing cases above (HEARTH_FUZZ_REPORT)");
    // The server still answers a plain request after all that.
    let reply = harness
        .send(
            &Method::POST,
            "/api/generate",
            json!({"model": M, "prompt": "Hi", "stream": false}).to_string().into_bytes(),
        )
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{}", String::from_utf8_lossy(&reply.body));
}

#[test]
fn ollama_generate_and_chat_bodies() {
    fuzz(GENERATION, 150);
}

#[test]
fn openai_completion_bodies() {
    fuzz(OPENAI_GENERATION, 200);
}

#[test]
fn anthropic_messages_bodies() {
    fuzz(ANTHROPIC, 150);
}

#[test]
fn llama_server_utility_bodies() {
    fuzz(UTILITY, 100);
}

#[test]
fn embedding_bodies_in_both_dialects() {
    fuzz(EMBEDDINGS, 200);
}

#[test]
fn store_route_bodies() {
    fuzz(STORE, 400);
}

/// Byte-level damage on every route: the cases above mutate fields; these all break the JSON.
#[test]
fn damaged_bytes_on_every_route() {
    let harness = Harness::new();
    let mut runner = TestRunner::new(Config {
        cases: env_number("HEARTH_FUZZ_CASES").map_or(400, |n| n as u32),
        failure_persistence: None,
        max_shrink_iters: 64,
        rng_seed: RngSeed::Fixed(env_number("HEARTH_FUZZ_SEED").unwrap_or(2)),
        ..Config::default()
    });
    let strategy = (
        prop::sample::select([GENERATION, OPENAI_GENERATION, ANTHROPIC, UTILITY, EMBEDDINGS, STORE].concat()),
        any::<bool>(),
        raw(),
        prop::option::of(raw()),
    );
    let result = runner.run(&strategy, |(target, stream, first, second)| {
        let mut body = serde_json::to_vec(&target.base(stream, 0, &harness.local)).unwrap();
        body = corrupt(body, &first);
        if let Some(second) = &second {
            body = corrupt(body, second);
        }
        if let Some(why) = unsafe_case(target, &body) {
            return Err(TestCaseError::reject(why));
        }
        let outcome = harness.send(&target.method(), target.path(), body.clone()).and_then(|r| check(target, &r));
        outcome.map_err(|why| TestCaseError::fail(format!("{}\n  -> {why}", describe(target, &body))))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The checks themselves: a busy 503 passes, any other 5xx or a bare error fails.
#[test]
fn the_checks_tell_good_answers_from_bad() {
    let reply = |status: u16, content_type: &str, body: &str| Reply {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: content_type.into(),
        body: body.as_bytes().to_vec(),
    };
    let json = "application/json";
    assert!(check(Target::OllamaChat, &reply(400, json, r#"{"error":"bad"}"#)).is_ok());
    assert!(check(Target::OllamaChat, &reply(503, json, r#"{"error":"the server is busy"}"#)).is_ok());
    assert!(check(Target::OllamaChat, &reply(500, json, r#"{"error":"oops"}"#)).is_err());
    assert!(check(Target::Pull, &reply(500, json, r#"{"error":"could not reach"}"#)).is_err());
    assert!(check(Target::Pull, &reply(502, json, r#"{"error":"could not reach"}"#)).is_ok());
    assert!(check(Target::Show, &reply(502, json, r#"{"error":"?"}"#)).is_err());
    assert!(check(Target::OllamaChat, &reply(400, "text/plain", "bad")).is_err());
    assert!(check(Target::OpenAiChat, &reply(400, json, r#"{"error":"bad"}"#)).is_err());
    assert!(check(Target::OpenAiChat, &reply(400, json, r#"{"error":{"message":"m","type":"t"}}"#)).is_ok());
    let ndjson = "application/x-ndjson";
    assert!(check(Target::OllamaChat, &reply(200, ndjson, "{\"done\":false}\n{\"done\":true}\n")).is_ok());
    assert!(check(Target::OllamaChat, &reply(200, ndjson, "{\"done\":false}\n{\"error\":\"x\"}\n")).is_err());
    assert!(check(Target::Pull, &reply(200, ndjson, "{\"status\":\"x\"}\n{\"error\":\"gone\"}\n")).is_ok());
    let sse = "text/event-stream";
    assert!(check(Target::OpenAiChat, &reply(200, sse, "data: {}\n\ndata: [DONE]\n\n")).is_ok());
    assert!(check(Target::OpenAiChat, &reply(200, sse, "data: {}\n\n")).is_err());
    // The filter: only 127.0.0.1, and never the test model.
    assert!(unsafe_case(Target::Pull, br#"{"model":"library/tiny"}"#).is_some());
    assert!(unsafe_case(Target::Pull, br#"{"model":"smollm2:135m"}"#).is_some());
    assert!(unsafe_case(Target::Pull, br#"{"model":"hf.co/a/b:Q4_0"}"#).is_some());
    assert!(unsafe_case(Target::Pull, br#"{"model":"http://127.0.0.1:1@example.com/x.gguf"}"#).is_some());
    assert!(unsafe_case(Target::Pull, br#"{"model":"127.0.0.1:9/library/tiny"}"#).is_none());
    assert!(unsafe_case(Target::Pull, br#"{"model":"bad name!"}"#).is_none());
    assert!(unsafe_case(Target::CreateFrom, br#"{"model":"x","from":"http:\/\/example.com/x.gguf"}"#).is_some());
    assert!(unsafe_case(Target::Delete, br#"{"model":"library/smollm2:135m"}"#).is_some());
    assert!(unsafe_case(Target::Delete, b"{\"model\":").is_none());
}

/// Cases the fuzzer found that take the whole process down (a stack overflow cannot be caught
/// as a panic): each runs in a child process of this test binary, so the rest of the suite still
/// runs and reports, and the failure names the case.
#[test]
fn schemas_with_long_non_ascii_names_do_not_bring_the_server_down() {
    let mut failures = Vec::new();
    for case in CRASH_CASES {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_case_in_a_child_process", "--ignored", "--nocapture", "--test-threads", "1"])
            .env("HEARTH_FUZZ_CRASH_CASE", case)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&child.stderr);
        let said: Vec<&str> = log.lines().filter(|l| l.contains("overflow") || l.contains("->")).collect();
        if !child.status.success() {
            failures.push(format!("{case}: {} {said:?}", child.status));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A JSON schema whose property name is 5,000 'é' (10 KB): as Ollama's `format`, as a tool's
/// parameters in OpenAI's dialect and in Ollama's, and as OpenAI's `response_format`.
const CRASH_CASES: &[&str] = &["ollama-format", "openai-tools", "ollama-tools", "openai-response-format"];

fn crash_case_body(case: &str) -> (Target, Value) {
    let schema = json!({"type": "object", "properties": {"é".repeat(5000): {"type": "string"}}});
    let tool = json!([{"type": "function", "function": {"name": "f", "parameters": schema}}]);
    let messages = json!([{"role": "user", "content": "hi"}]);
    match case {
        "ollama-format" => (
            Target::OllamaChat,
            json!({"model": M, "stream": false, "messages": messages, "options": {"num_predict": 4}, "format": schema}),
        ),
        "openai-tools" => {
            (Target::OpenAiChat, json!({"model": M, "max_tokens": 4, "messages": messages, "tools": tool}))
        }
        "ollama-tools" => (
            Target::OllamaChat,
            json!({"model": M, "stream": false, "messages": messages, "options": {"num_predict": 4}, "tools": tool}),
        ),
        _ => (
            Target::OpenAiChat,
            json!({"model": M, "max_tokens": 4, "messages": messages,
                   "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
        ),
    }
}

#[test]
#[ignore = "run in a child process by schemas_with_long_non_ascii_names_do_not_bring_the_server_down"]
fn crash_case_in_a_child_process() {
    let Ok(case) = std::env::var("HEARTH_FUZZ_CRASH_CASE") else { return };
    let harness = Harness::new();
    let (target, body) = crash_case_body(&case);
    let body = body.to_string().into_bytes();
    let outcome = harness.send(&target.method(), target.path(), body.clone()).and_then(|r| check(target, &r));
    if let Err(why) = outcome {
        eprintln!("{:.200}\n  -> {why}", describe(target, &body));
        panic!("{case} failed");
    }
}
