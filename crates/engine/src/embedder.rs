//! Embedding vectors, from a second llama.cpp context on the same weights that pools each
//! input's hidden states into one vector. It is made on the first embedding request, so a
//! model that only chats never pays for it. A request is worked on one input at a time
//! ([`EmbedWork`]), so the engine can decode between inputs and drop a request whose
//! caller left.

use crate::prepare::in_vocabulary;
use crate::scheduler::backend_error;
use crate::scheduler::side::SideWork;
use hearth_core::{EmbedInput, EmbedRequest, Embeddings, GenerateError};
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::time::Instant;

/// The most tokens one input may have. The whole input goes through in one batch (pooling
/// needs every position at once), and the attention scratch grows with its square.
pub(crate) const MAX_EMBED_TOKENS: u32 = 2048;

pub(crate) struct Embedder<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    capacity: usize,
}

impl<'m> Embedder<'m> {
    /// `pooling` is the model's own (`{arch}.pooling_type`, set by embedding models); a
    /// generative model has none and gets the mean of its hidden states, as Ollama gives.
    pub fn new(model: &'m LlamaModel, context_size: u32, threads: u32, pooling: Option<u32>) -> Result<Self, String> {
        let capacity = context_size.min(MAX_EMBED_TOKENS);
        let pooling = match pooling {
            Some(kind) if kind > 0 => LlamaPoolingType::from(kind as i32),
            _ => LlamaPoolingType::Mean,
        };
        let threads = i32::try_from(threads).unwrap_or(i32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(capacity))
            .with_n_batch(capacity)
            .with_n_ubatch(capacity)
            .with_n_seq_max(1)
            .with_embeddings(true)
            .with_pooling_type(pooling)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model.new_context(crate::load::backend(), params).map_err(|e| e.to_string())?;
        Ok(Self { model, ctx, batch: LlamaBatch::new(capacity as usize, 1), capacity: capacity as usize })
    }

    /// One input's vector, and the tokens it took.
    fn embed_input(
        &mut self,
        index: usize,
        input: &EmbedInput,
        request: &EmbedRequest,
    ) -> Result<(Vec<f32>, u32), GenerateError> {
        let mut tokens = self.tokenize(input)?;
        if tokens.is_empty() {
            return Err(GenerateError::InvalidRequest(format!("input {index} is empty")));
        }
        if tokens.len() > self.capacity {
            if !request.truncate {
                return Err(GenerateError::PromptTooLong {
                    prompt_tokens: tokens.len() as u32,
                    context_size: self.capacity as u32,
                });
            }
            tokens.truncate(self.capacity);
        }
        let mut vector = self.pooled(&tokens)?;
        if request.normalize {
            normalize(&mut vector);
        }
        Ok((vector, tokens.len() as u32))
    }

    fn tokenize(&self, input: &EmbedInput) -> Result<Vec<LlamaToken>, GenerateError> {
        let vocab = self.model.vocab();
        match input {
            EmbedInput::Text(text) => Ok(vocab.tokenize(text.as_bytes(), true, false)),
            EmbedInput::Tokens(ids) => ids.iter().map(|&id| in_vocabulary(self.model, id)).collect(),
        }
    }

    fn pooled(&mut self, tokens: &[LlamaToken]) -> Result<Vec<f32>, GenerateError> {
        self.ctx.clear_kv_cache();
        self.batch.clear();
        for (position, &token) in tokens.iter().enumerate() {
            self.batch.add(token, position as i32, &[0], true).map_err(backend_error)?;
        }
        self.ctx.decode(&mut self.batch).map_err(backend_error)?;
        let vector = self.ctx.embeddings_seq_ith(0).map_err(backend_error)?.to_vec();
        self.ctx.clear_kv_cache();
        Ok(vector)
    }
}

/// An embedding request in progress on the engine thread.
pub(crate) struct EmbedWork {
    request: EmbedRequest,
    reply: flume::Sender<Result<Embeddings, GenerateError>>,
    vectors: Vec<Vec<f32>>,
    prompt_tokens: u32,
    started: Instant,
}

impl EmbedWork {
    pub fn new(request: EmbedRequest, reply: flume::Sender<Result<Embeddings, GenerateError>>) -> Self {
        let vectors = Vec::with_capacity(request.inputs.len());
        Self { request, reply, vectors, prompt_tokens: 0, started: Instant::now() }
    }
}

impl<'m> SideWork<Embedder<'m>> for EmbedWork {
    fn abandoned(&self) -> bool {
        self.reply.is_disconnected()
    }

    fn is_done(&self) -> bool {
        self.vectors.len() == self.request.inputs.len()
    }

    /// Embeds the next input.
    fn step(&mut self, embedder: &mut Embedder<'m>) -> Result<(), GenerateError> {
        let index = self.vectors.len();
        let Some(input) = self.request.inputs.get(index) else { return Ok(()) };
        let (vector, tokens) = embedder.embed_input(index, input, &self.request)?;
        self.vectors.push(vector);
        self.prompt_tokens += tokens;
        Ok(())
    }

    fn finish(self) {
        let embeddings =
            Embeddings { vectors: self.vectors, prompt_tokens: self.prompt_tokens, duration: self.started.elapsed() };
        let _ = self.reply.send(Ok(embeddings));
    }

    fn fail(self, error: GenerateError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Scales `vector` to unit length (a zero vector stays zero).
pub fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>().sqrt();
    if norm > 0.0 {
        for v in vector {
            *v = (f64::from(*v) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_gives_unit_length_and_leaves_zero_alone() {
        let mut v = [3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0, 0.0];
        normalize(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
    }
}
