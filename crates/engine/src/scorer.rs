//! The log-probability of each token of a prompt after the tokens before it: a prompt
//! "echoed" with its scores, as OpenAI's legacy completions and llama.cpp's server give them
//! (and as evaluation harnesses ask). A second llama.cpp context on the same weights does
//! it, made on the first request that asks, so a model never asked pays nothing. A request
//! is worked on one batch at a time ([`ScoreWork`]), so the engine decodes between batches
//! and drops a request whose caller left.

use crate::scheduler::side::SideWork;
use crate::scheduler::{backend_error, token_logprob};
use hearth_core::{GenerateError, TokenLogprob};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;

/// Prompt tokens scored per engine step: each needs a row of logits.
const SCORE_BATCH: usize = 256;

/// A prompt's tokens with their scores: the first token has none (nothing comes before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub first: Vec<u8>,
    /// Each later token's log-probability, with its `top` most likely alternatives.
    pub rest: Vec<TokenLogprob>,
}

pub(crate) struct Scorer<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
}

impl<'m> Scorer<'m> {
    pub fn new(model: &'m LlamaModel, context_size: u32, threads: u32) -> Result<Self, String> {
        let threads = i32::try_from(threads).unwrap_or(i32::MAX);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(context_size))
            .with_n_batch(SCORE_BATCH as u32)
            .with_n_ubatch(SCORE_BATCH as u32)
            .with_n_seq_max(1)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model.new_context(crate::load::backend(), params).map_err(|e| e.to_string())?;
        Ok(Self { model, ctx, batch: LlamaBatch::new(SCORE_BATCH, 1) })
    }
}

/// A scoring request in progress on the engine thread.
pub(crate) struct ScoreWork {
    tokens: Vec<LlamaToken>,
    top: usize,
    /// Tokens decoded so far.
    done: usize,
    /// The first token's bytes, once scoring began.
    first: Vec<u8>,
    rest: Vec<TokenLogprob>,
    reply: flume::Sender<Result<Scored, GenerateError>>,
}

impl ScoreWork {
    /// `tokens` are checked (in the vocabulary, within the context) by the caller.
    pub fn new(tokens: Vec<LlamaToken>, top: usize, reply: flume::Sender<Result<Scored, GenerateError>>) -> Self {
        Self {
            rest: Vec::with_capacity(tokens.len().saturating_sub(1)),
            tokens,
            top,
            done: 0,
            first: Vec::new(),
            reply,
        }
    }
}

impl<'m> SideWork<Scorer<'m>> for ScoreWork {
    fn abandoned(&self) -> bool {
        self.reply.is_disconnected()
    }

    fn is_done(&self) -> bool {
        self.done >= self.tokens.len()
    }

    /// Decodes the next batch of the prompt and scores the token after each of its tokens.
    fn step(&mut self, scorer: &mut Scorer<'m>) -> Result<(), GenerateError> {
        if self.done == 0 {
            scorer.ctx.clear_kv_cache();
            self.first =
                self.tokens.first().map(|&t| scorer.model.vocab().token_to_piece(t, false, None)).unwrap_or_default();
        }
        let end = (self.done + SCORE_BATCH).min(self.tokens.len());
        scorer.batch.clear();
        for position in self.done..end {
            scorer.batch.add(self.tokens[position], position as i32, &[0], true).map_err(backend_error)?;
        }
        scorer.ctx.decode(&mut scorer.batch).map_err(backend_error)?;
        for (row, position) in (self.done..end).enumerate() {
            let Some(&next) = self.tokens.get(position + 1) else { break };
            let logits = scorer.ctx.get_logits_ith(row as i32);
            self.rest.push(token_logprob(scorer.model, logits, next, self.top));
        }
        self.done = end;
        Ok(())
    }

    fn finish(self) {
        let _ = self.reply.send(Ok(Scored { first: self.first, rest: self.rest }));
    }

    fn fail(self, error: GenerateError) {
        let _ = self.reply.send(Err(error));
    }
}
