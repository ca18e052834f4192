//! `/v1/embeddings`: unit-length vectors as floats or base64 of little-endian f32s.

use super::wire::{EmbeddingOut, EmbeddingUsage, Embeddings, EmbeddingsBody, Vector};
use super::OpenAiError;
use crate::dialects::request;
use crate::residency::Wanted;
use crate::service::embed::shorten;
use crate::service::ServiceError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use hearth_core::EmbedRequest;

/// `POST /v1/embeddings`: `{"model", "input"}` → `{"object": "list", "data": [...]}`.
pub async fn embeddings(State(state): State<AppState>, body: Bytes) -> Result<Json<Embeddings>, OpenAiError> {
    let body: EmbeddingsBody = request::parse(&body)?;
    let name = request::model_name(&body.model)?;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ServiceError::invalid(format!("encoding_format {other:?} is not float or base64")).into())
        }
    };
    let inputs = body.input.into_inputs();
    if inputs.is_empty() {
        return Err(ServiceError::invalid("input must not be empty").into());
    }
    let lease = state.service.lease(&name, Wanted::default()).await?;
    // OpenAI refuses an input that does not fit rather than cutting it.
    let mut embeddings = state.service.embed(lease, EmbedRequest { inputs, truncate: false, normalize: true }).await?;
    shorten(&mut embeddings.vectors, body.dimensions)?;
    let data = embeddings
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| EmbeddingOut {
            object: "embedding",
            index,
            embedding: if base64 { Vector::Base64(base64_f32(&vector)) } else { Vector::Floats(vector) },
        })
        .collect();
    let tokens = embeddings.prompt_tokens;
    Ok(Json(Embeddings {
        object: "list",
        data,
        model: body.model,
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    }))
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
}
