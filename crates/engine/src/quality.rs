//! What quantization costs in quality, measured the way llama.cpp's perplexity tool does:
//! the text is tokenized once and cut into chunks of `chunk_tokens`; each chunk is
//! evaluated from an empty cache (its first token replaced by BOS where the model adds
//! one), and only its second half is scored, so every scored token has at least half a
//! chunk of context. Perplexity is the exponent of the mean negative log-likelihood; the KL
//! divergence compares a model's whole next-token distribution with a reference model's
//! at every scored position.

use crate::engine::physical_cores;
use crate::load::{backend, ModelFile};
use crate::sampler::{self, log_sum_exp};
use crate::EngineError;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::Path;

/// How to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualitySettings {
    /// Tokens per chunk (llama.cpp's `-c`); 512 by default.
    pub chunk_tokens: u32,
    /// Evaluate at most this many chunks (llama.cpp's `--chunks`); all by default.
    pub max_chunks: Option<usize>,
    /// Threads; default: the physical cores.
    pub threads: Option<u32>,
    /// The KV cache the text is scored through: a quantized one changes the logits.
    pub kv_cache: hearth_core::KvCache,
}

impl Default for QualitySettings {
    fn default() -> Self {
        Self { chunk_tokens: 512, max_chunks: None, threads: None, kv_cache: hearth_core::KvCache::default() }
    }
}

/// Perplexity over the scored tokens, with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    pub perplexity: f64,
    /// One standard error of the perplexity (from the spread of per-token log-likelihoods).
    pub uncertainty: f64,
    pub chunks: usize,
    pub tokens_scored: usize,
}

/// How far a model's predictions are from a reference model's on the same text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divergence {
    /// Mean KL(reference || model) per scored token, in nats.
    pub kl_mean: f64,
    /// One standard error of the mean.
    pub kl_uncertainty: f64,
    /// The largest KL divergence at any scored token.
    pub kl_max: f64,
    /// Fraction of scored tokens where both models put the same token first.
    pub same_top_token: f64,
    pub reference: Perplexity,
    pub model: Perplexity,
}

/// The perplexity of the model at `path` on `text`.
pub fn perplexity(path: &Path, text: &str, settings: &QualitySettings) -> Result<Perplexity, EngineError> {
    let scorer = Scorer::load(path, settings)?;
    let tokens = scorer.tokenize(text);
    let chunks = chunk_count(tokens.len(), settings)?;
    let mut evaluator = scorer.evaluator()?;
    let mut tally = Tally::default();
    for chunk in 0..chunks {
        evaluator.evaluate(&tokens, chunk, |_, log_probs, next| tally.add(f64::from(log_probs[next])))?;
    }
    Ok(tally.perplexity(chunks))
}

/// The KL divergence of the model at `path` from the one at `reference` on `text`, with
/// both perplexities. The two must share a vocabulary (quantizations of one model do).
pub fn divergence(
    reference: &Path,
    path: &Path,
    text: &str,
    settings: &QualitySettings,
) -> Result<Divergence, EngineError> {
    // The reference is the exact baseline: its cache is f16 whatever `settings` tries.
    let base =
        Scorer::load(reference, &QualitySettings { kv_cache: hearth_core::KvCache::default(), ..settings.clone() })?;
    let other = Scorer::load(path, settings)?;
    if base.model.n_vocab() != other.model.n_vocab() {
        return Err(EngineError::InvalidSetting(format!(
            "{} has {} tokens in its vocabulary and {} has {}: KL divergence compares models that share one",
            reference.display(),
            base.model.n_vocab(),
            path.display(),
            other.model.n_vocab()
        )));
    }
    let tokens = base.tokenize(text);
    let chunks = chunk_count(tokens.len(), settings)?;
    let (mut base, mut other) = (base.evaluator()?, other.evaluator()?);
    let (mut base_tally, mut other_tally) = (Tally::default(), Tally::default());
    let (mut kl_sum, mut kl_squares, mut kl_max, mut same_top, mut count) = (0.0, 0.0, 0.0f64, 0usize, 0usize);
    for chunk in 0..chunks {
        let mut reference_rows: Vec<Vec<f32>> = Vec::new();
        base.evaluate(&tokens, chunk, |_, log_probs, next| {
            base_tally.add(f64::from(log_probs[next]));
            reference_rows.push(log_probs.to_vec());
        })?;
        other.evaluate(&tokens, chunk, |row, log_probs, next| {
            other_tally.add(f64::from(log_probs[next]));
            let reference = &reference_rows[row];
            let kl: f64 = reference
                .iter()
                .zip(log_probs)
                .map(|(&p, &q)| {
                    let p = f64::from(p);
                    if p == f64::NEG_INFINITY {
                        0.0
                    } else {
                        p.exp() * (p - f64::from(q))
                    }
                })
                .sum::<f64>()
                .max(0.0);
            kl_sum += kl;
            kl_squares += kl * kl;
            kl_max = kl_max.max(kl);
            same_top += usize::from(argmax(reference) == argmax(log_probs));
            count += 1;
        })?;
    }
    let n = count as f64;
    let mean = kl_sum / n;
    let variance = (kl_squares / n - mean * mean).max(0.0);
    Ok(Divergence {
        kl_mean: mean,
        kl_uncertainty: if count > 1 { (variance / (n - 1.0)).sqrt() } else { 0.0 },
        kl_max,
        same_top_token: same_top as f64 / n,
        reference: base_tally.perplexity(chunks),
        model: other_tally.perplexity(chunks),
    })
}

fn chunk_count(tokens: usize, settings: &QualitySettings) -> Result<usize, EngineError> {
    let chunk = settings.chunk_tokens as usize;
    if chunk < 16 {
        return Err(EngineError::InvalidSetting(format!("chunks of {chunk} tokens are too short to score")));
    }
    let available = tokens / chunk;
    if available == 0 {
        return Err(EngineError::InvalidSetting(format!(
            "the text is {tokens} tokens, less than one chunk of {chunk}; use a longer text or smaller chunks"
        )));
    }
    Ok(settings.max_chunks.map_or(available, |max| available.min(max.max(1))))
}

/// Sums of negative log-likelihoods, as llama.cpp keeps them.
#[derive(Default)]
struct Tally {
    nll: f64,
    nll_squares: f64,
    count: usize,
}

impl Tally {
    fn add(&mut self, log_prob: f64) {
        self.nll -= log_prob;
        self.nll_squares += log_prob * log_prob;
        self.count += 1;
    }

    fn perplexity(&self, chunks: usize) -> Perplexity {
        let n = self.count as f64;
        let mean = self.nll / n;
        let perplexity = mean.exp();
        let variance = self.nll_squares / n - mean * mean;
        let uncertainty =
            if variance > 0.0 && self.count > 1 { (variance / (n - 1.0)).sqrt() * perplexity } else { 0.0 };
        Perplexity { perplexity, uncertainty, chunks, tokens_scored: self.count }
    }
}

/// A loaded model, ready to evaluate chunks.
struct Scorer {
    model: LlamaModel,
    chunk: u32,
    threads: i32,
    kv_cache: hearth_core::KvCache,
}

impl Scorer {
    fn load(path: &Path, settings: &QualitySettings) -> Result<Self, EngineError> {
        let model = ModelFile::open(path)?.load(&LlamaModelParams::default().with_n_gpu_layers(0))?;
        let threads = i32::try_from(settings.threads.unwrap_or_else(physical_cores)).unwrap_or(i32::MAX);
        Ok(Self { model, chunk: settings.chunk_tokens, threads, kv_cache: settings.kv_cache })
    }

    /// The text's tokens, with BOS first where the model adds one (as llama.cpp's tool).
    fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), true, false)
    }

    /// A context of one chunk, every position's logits computed in one batch.
    fn evaluator(&self) -> Result<Evaluator<'_>, EngineError> {
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(self.chunk))
            .with_n_batch(self.chunk)
            .with_n_ubatch(self.chunk)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let params = crate::engine::with_kv_cache(params, self.kv_cache);
        let ctx = self.model.new_context(backend(), params).map_err(|e| EngineError::Context(e.to_string()))?;
        Ok(Evaluator { model: &self.model, ctx, chunk: self.chunk as usize, log_probs: Vec::new() })
    }
}

struct Evaluator<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    chunk: usize,
    /// The row being scored, reused from position to position.
    log_probs: Vec<f32>,
}

impl Evaluator<'_> {
    /// Evaluates chunk `index` and calls `score(row, log_probs, next)` for each scored
    /// position: its row among the scored ones, the log-probabilities of the next token
    /// over the vocabulary, and the next token's id.
    fn evaluate(
        &mut self,
        tokens: &[LlamaToken],
        index: usize,
        mut score: impl FnMut(usize, &[f32], usize),
    ) -> Result<(), EngineError> {
        let chunk = self.chunk;
        let first = chunk / 2;
        let mut window = tokens[index * chunk..(index + 1) * chunk].to_vec();
        let vocab = self.model.vocab();
        if vocab.should_add_bos() {
            window[0] = vocab.bos();
        }
        self.ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(chunk, 1);
        for (position, &token) in window.iter().enumerate() {
            batch
                .add(token, position as i32, &[0], position >= first && position < chunk - 1)
                .map_err(|e| EngineError::Context(e.to_string()))?;
        }
        self.ctx.decode(&mut batch).map_err(|e| EngineError::Context(format!("evaluating chunk {index}: {e}")))?;
        for (row, position) in (first..chunk - 1).enumerate() {
            log_softmax(self.ctx.get_logits_ith(position as i32), &mut self.log_probs);
            score(row, &self.log_probs, window[position + 1].0 as usize);
        }
        Ok(())
    }
}

/// `out[i] = logits[i] - log(sum(exp(logits)))`, computed stably.
fn log_softmax(logits: &[f32], out: &mut Vec<f32>) {
    let log_sum = log_sum_exp(logits);
    out.clear();
    out.extend(logits.iter().map(|&l| (f64::from(l) - log_sum) as f32));
}

fn argmax(values: &[f32]) -> usize {
    sampler::argmax(values).0 as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises_and_tallies_follow_llama_cpp() {
        let mut out = Vec::new();
        log_softmax(&[1.0, 2.0, 3.0], &mut out);
        let total: f64 = out.iter().map(|&l| f64::from(l).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(out[2] > out[1] && out[1] > out[0]);
        // Every token predicted with probability 1/4: perplexity 4, no spread.
        let mut tally = Tally::default();
        (0..10).for_each(|_| tally.add(0.25f64.ln()));
        let p = tally.perplexity(1);
        assert!((p.perplexity - 4.0).abs() < 1e-9 && p.uncertainty < 1e-6, "{p:?}");
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), 1);
    }

    #[test]
    fn too_little_text_or_too_short_chunks_are_refused() {
        let settings = QualitySettings { chunk_tokens: 512, ..Default::default() };
        assert!(chunk_count(511, &settings).is_err());
        assert_eq!(chunk_count(2000, &settings).unwrap(), 3);
        assert_eq!(chunk_count(2000, &QualitySettings { max_chunks: Some(2), ..settings.clone() }).unwrap(), 2);
        assert!(chunk_count(2000, &QualitySettings { chunk_tokens: 4, ..settings }).is_err());
    }
}
