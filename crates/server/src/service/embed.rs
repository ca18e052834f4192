//! Embeddings, whatever the dialect: the vectors from the model's engine, shortened to the
//! dimensions asked for.

use super::{Lease, Service, ServiceError};
use hearth_core::{EmbedRequest, Embeddings};

impl Service {
    /// The vectors of `request`'s inputs from the leased model; no inputs, no vectors.
    pub async fn embed(&self, lease: Lease, request: EmbedRequest) -> Result<Embeddings, ServiceError> {
        if request.inputs.is_empty() {
            return Ok(Embeddings { vectors: Vec::new(), prompt_tokens: 0, duration: Default::default() });
        }
        let reply = lease.model.engine.embed(request);
        match reply.recv_async().await {
            Ok(Ok(embeddings)) => {
                if let Some(record) = crate::audit::current() {
                    record.used(u64::from(embeddings.prompt_tokens), 0);
                }
                Ok(embeddings)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(ServiceError::Internal("the engine stopped while embedding".into())),
        }
    }
}

/// Keeps the first `dimensions` of each vector and makes it unit length again (Ollama's and
/// OpenAI's `dimensions`).
pub fn shorten(vectors: &mut [Vec<f32>], dimensions: Option<usize>) -> Result<(), ServiceError> {
    let Some(dimensions) = dimensions else { return Ok(()) };
    let width = vectors.first().map_or(0, Vec::len);
    if dimensions == 0 || dimensions > width {
        return Err(ServiceError::invalid(format!("dimensions must be between 1 and {width}")));
    }
    for vector in vectors {
        vector.truncate(dimensions);
        hearth_engine::normalize(vector);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_a_prefix_at_unit_length() {
        let mut vectors = vec![vec![3.0, 4.0, 12.0]];
        shorten(&mut vectors, Some(2)).unwrap();
        assert_eq!(vectors[0], [0.6, 0.8]);
        assert!(shorten(&mut vectors, Some(3)).is_err());
    }
}
