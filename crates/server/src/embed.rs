//! Embeddings in both dialects: Ollama's `/api/embed` (and its older `/api/embeddings`) and
//! OpenAI's `/v1/embeddings`. Vectors come from the model's engine, which pools each
//! input's hidden states; Ollama's `/api/embed` and OpenAI's get unit-length vectors.

use crate::body::{keep_alive, model_name, parse};
use crate::error::{ApiError, Dialect};
use crate::residency::KeepAlive;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use hearth_core::{EmbedInput, EmbedRequest, Embeddings};
use hearth_store::ModelName;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

#[derive(Deserialize)]
#[serde(untagged)]
enum Inputs {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

impl Inputs {
    fn into_inputs(self) -> Vec<EmbedInput> {
        match self {
            Inputs::One(text) => vec![EmbedInput::Text(text)],
            Inputs::Many(texts) => texts.into_iter().map(EmbedInput::Text).collect(),
            Inputs::Tokens(ids) => vec![EmbedInput::Tokens(ids)],
            Inputs::ManyTokens(lists) => lists.into_iter().map(EmbedInput::Tokens).collect(),
        }
    }
}

#[derive(Deserialize)]
pub struct OllamaEmbedBody {
    #[serde(default)]
    model: String,
    input: Option<Inputs>,
    truncate: Option<bool>,
    dimensions: Option<usize>,
    keep_alive: Option<Value>,
}

#[derive(Deserialize)]
pub struct OllamaEmbeddingsBody {
    #[serde(default)]
    model: String,
    #[serde(default)]
    prompt: String,
    keep_alive: Option<Value>,
}

#[derive(Deserialize)]
pub struct OpenAiEmbeddingsBody {
    #[serde(default)]
    model: String,
    input: Inputs,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

/// Runs `request` on the model, loading it first if need be. Returns the load time too.
async fn embed(
    state: &AppState,
    dialect: Dialect,
    name: &ModelName,
    keep_alive: Option<KeepAlive>,
    request: EmbedRequest,
) -> Result<(Embeddings, std::time::Duration), ApiError> {
    let lease = state.residency.acquire(name, keep_alive, dialect).await?;
    let load_duration = lease.load_duration;
    if request.inputs.is_empty() {
        return Ok((Embeddings { vectors: Vec::new(), prompt_tokens: 0, duration: Default::default() }, load_duration));
    }
    let reply = lease.model.engine.embed(request);
    match reply.recv_async().await {
        Ok(Ok(embeddings)) => Ok((embeddings, load_duration)),
        Ok(Err(e)) => Err(ApiError::from_generate(dialect, &e)),
        Err(_) => Err(ApiError::internal(dialect, "the engine stopped while embedding")),
    }
}

/// Keeps the first `dimensions` of each vector and makes it unit length again (Ollama's and
/// OpenAI's `dimensions`).
fn shorten(dialect: Dialect, vectors: &mut [Vec<f32>], dimensions: Option<usize>) -> Result<(), ApiError> {
    let Some(dimensions) = dimensions else { return Ok(()) };
    let width = vectors.first().map_or(0, Vec::len);
    if dimensions == 0 || dimensions > width {
        return Err(ApiError::bad_request(dialect, format!("dimensions must be between 1 and {width}")));
    }
    for vector in vectors {
        vector.truncate(dimensions);
        hearth_engine::normalize(vector);
    }
    Ok(())
}

/// `POST /api/embed`: `{"model", "input": text or texts}` → `{"embeddings": [[...]]}`.
pub async fn ollama_embed(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    const DIALECT: Dialect = Dialect::Ollama;
    let started = Instant::now();
    let body: OllamaEmbedBody = parse(DIALECT, &body)?;
    let name = model_name(DIALECT, &body.model)?;
    let keep_alive = keep_alive(DIALECT, body.keep_alive.as_ref())?;
    let inputs = body.input.map(Inputs::into_inputs).unwrap_or_default();
    let request = EmbedRequest { inputs, truncate: body.truncate.unwrap_or(true), normalize: true };
    let (mut embeddings, load_duration) = embed(&state, DIALECT, &name, keep_alive, request).await?;
    shorten(DIALECT, &mut embeddings.vectors, body.dimensions)?;
    Ok(Json(json!({
        "model": name.to_string(),
        "embeddings": embeddings.vectors,
        "total_duration": started.elapsed().as_nanos() as u64,
        "load_duration": load_duration.as_nanos() as u64,
        "prompt_eval_count": embeddings.prompt_tokens,
    })))
}

/// `POST /api/embeddings` (Ollama's older endpoint): one prompt, a vector as the model gives
/// it (not normalized).
pub async fn ollama_embeddings(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    const DIALECT: Dialect = Dialect::Ollama;
    let body: OllamaEmbeddingsBody = parse(DIALECT, &body)?;
    let name = model_name(DIALECT, &body.model)?;
    let keep_alive = keep_alive(DIALECT, body.keep_alive.as_ref())?;
    let inputs = if body.prompt.is_empty() { Vec::new() } else { vec![EmbedInput::Text(body.prompt)] };
    let request = EmbedRequest { inputs, truncate: true, normalize: false };
    let (embeddings, _) = embed(&state, DIALECT, &name, keep_alive, request).await?;
    let vector = embeddings.vectors.into_iter().next().unwrap_or_default();
    Ok(Json(json!({ "embedding": vector })))
}

/// `POST /v1/embeddings`: `{"model", "input"}` → `{"object": "list", "data": [...]}`,
/// vectors as floats or base64 of little-endian f32s.
pub async fn openai_embeddings(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    const DIALECT: Dialect = Dialect::OpenAi;
    let body: OpenAiEmbeddingsBody = parse(DIALECT, &body)?;
    let name = model_name(DIALECT, &body.model)?;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(DIALECT, format!("encoding_format {other:?} is not float or base64")))
        }
    };
    let inputs = body.input.into_inputs();
    if inputs.is_empty() {
        return Err(ApiError::bad_request(DIALECT, "input must not be empty"));
    }
    // OpenAI refuses an input that does not fit rather than cutting it.
    let request = EmbedRequest { inputs, truncate: false, normalize: true };
    let (mut embeddings, _) = embed(&state, DIALECT, &name, None, request).await?;
    shorten(DIALECT, &mut embeddings.vectors, body.dimensions)?;
    let data: Vec<Value> = embeddings
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 { json!(base64_f32(vector)) } else { json!(vector) };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": embeddings.prompt_tokens, "total_tokens": embeddings.prompt_tokens},
    })))
}

/// Standard base64 (with padding) of the vector's little-endian bytes, as OpenAI sends it.
fn base64_f32(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_encoding() {
        // 1.0f32 is 00 00 80 3f; 2.5 is 00 00 20 40.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
        assert_eq!(base64_f32(&[1.0, 2.5]), "AACAPwAAIEA=");
        assert_eq!(base64_f32(&[]), "");
    }

    #[test]
    fn shorten_keeps_a_prefix_at_unit_length() {
        let mut vectors = vec![vec![3.0, 4.0, 12.0]];
        shorten(Dialect::Ollama, &mut vectors, Some(2)).unwrap();
        assert_eq!(vectors[0], [0.6, 0.8]);
        assert!(shorten(Dialect::Ollama, &mut vectors, Some(3)).is_err());
    }
}
