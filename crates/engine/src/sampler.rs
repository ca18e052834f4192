//! Builds llama.cpp's sampler chain from our `SamplingParams`, in llama.cpp's own order
//! (penalties, then top-k, top-p, min-p, temperature, and a seeded draw).

use hearth_core::SamplingParams;
use llama_cpp_2::sampling::LlamaSampler;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

pub(crate) fn build(params: &SamplingParams, n_vocab: i32) -> LlamaSampler {
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
