//! Picks each next token: llama.cpp's sampler chain built from our `SamplingParams`, in
//! llama.cpp's own order (penalties, then top-k, top-p, min-p, temperature, a seeded draw),
//! or a plain argmax when nothing but the most likely token can win.

use hearth_core::SamplingParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

pub(crate) enum TokenPicker {
    /// Temperature 0 without penalties. llama.cpp's chain would copy every logit into a
    /// candidate array first: 3 MB per token on a 262k vocabulary, a tenth of gemma3's
    /// decode time on 2 cores.
    Argmax,
    Chain(LlamaSampler),
}

impl TokenPicker {
    pub fn new(params: &SamplingParams, n_vocab: i32) -> Self {
        if params.temperature <= 0.0 && params.repeat_penalty == 1.0 {
            Self::Argmax
        } else {
            Self::Chain(chain(params, n_vocab))
        }
    }

    /// Shows the sampler the prompt's last tokens, which the repeat penalty counts too (as
    /// llama.cpp's server does).
    pub fn accept_prompt(&mut self, tokens: &[LlamaToken]) {
        if let Self::Chain(sampler) = self {
            sampler.accept_many(tokens);
        }
    }

    /// The next token from the logits at batch index `idx`.
    pub fn pick(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        match self {
            Self::Argmax => argmax(ctx.get_logits_ith(idx)),
            Self::Chain(sampler) => sampler.sample(ctx, idx),
        }
    }
}

/// The first most likely token, as llama.cpp's greedy sampler picks it.
fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = 0;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > logits[best] {
            best = i;
        }
    }
    LlamaToken(best as i32)
}

fn chain(params: &SamplingParams, n_vocab: i32) -> LlamaSampler {
    let mut chain = Vec::new();
    if params.repeat_penalty != 1.0 {
        let last_n = i32::try_from(params.repeat_last_n).unwrap_or(i32::MAX);
        chain.push(LlamaSampler::penalties(n_vocab, last_n, params.repeat_penalty, 0.0, 0.0));
    }
    if params.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(i32::try_from(params.top_k).unwrap_or(i32::MAX)));
        }
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        if params.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(params.min_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        chain.push(LlamaSampler::dist(params.seed.unwrap_or_else(random_seed)));
    }
    LlamaSampler::chain(chain, true)
}

fn random_seed() -> u32 {
    // RandomState is seeded from the OS per process and varies per instance.
    RandomState::new().hash_one(std::time::SystemTime::now()) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), LlamaToken(1));
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), LlamaToken(1));
        assert_eq!(argmax(&[2.0]), LlamaToken(0));
    }
}
