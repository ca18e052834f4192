//! Picks each next token: the repeat penalty, the grammar, then llama.cpp's sampler chain
//! built from our `SamplingParams` (top-k, top-p, min-p, temperature, a seeded draw), in
//! llama.cpp's own order; or a plain argmax when nothing but the most likely token can win.

use hearth_core::SamplingParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;

pub(crate) struct TokenPicker {
    draw: Draw,
    /// Kept apart from the chain: the prompt must not advance it, only generated tokens.
    grammar: Option<LlamaSampler>,
    penalty: Option<RepeatPenalty>,
    /// The penalised logits, reused from token to token (a vocabulary's worth of floats).
    penalised: Vec<f32>,
}

impl std::fmt::Debug for TokenPicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPicker").field("grammar", &self.grammar.is_some()).finish_non_exhaustive()
    }
}

enum Draw {
    /// Temperature 0. llama.cpp's chain would copy every logit into a candidate array
    /// first: 3 MB per token on a 262k vocabulary, a tenth of gemma3's decode time on 2 cores.
    Argmax,
    Chain(LlamaSampler),
}

/// llama.cpp's repeat penalty (its `penalties` sampler with no frequency or presence
/// penalty), applied to the logits of the tokens in the window only. llama.cpp's sampler
/// looks every vocabulary entry up in a hash map instead: 49k lookups per token and slot,
/// 2% of all the CPU time of 8 streams on SmolLM2.
struct RepeatPenalty {
    penalty: f32,
    last_n: usize,
    window: VecDeque<LlamaToken>,
}

impl RepeatPenalty {
    fn new(params: &SamplingParams) -> Option<Self> {
        let last_n = params.repeat_last_n as usize;
        (params.repeat_penalty != 1.0 && last_n > 0).then(|| Self {
            penalty: params.repeat_penalty,
            last_n,
            window: VecDeque::with_capacity(last_n),
        })
    }

    fn accept(&mut self, token: LlamaToken) {
        if self.window.len() == self.last_n {
            self.window.pop_front();
        }
        self.window.push_back(token);
    }

    /// Divides a positive logit by the penalty and multiplies a negative one, once per
    /// distinct token in the window, as llama.cpp does.
    fn apply(&self, logits: &mut [f32]) {
        let mut seen: Vec<LlamaToken> = Vec::with_capacity(self.window.len());
        for &token in &self.window {
            if seen.contains(&token) {
                continue;
            }
            seen.push(token);
            if let Some(logit) = logits.get_mut(token.0 as usize) {
                if *logit <= 0.0 {
                    *logit *= self.penalty;
                } else {
                    *logit /= self.penalty;
                }
            }
        }
    }
}

impl TokenPicker {
    /// Fails when the request's grammar does not parse.
    pub fn new(params: &SamplingParams, model: &LlamaModel) -> Result<Self, String> {
        let grammar = match &params.grammar {
            Some(grammar) => Some(
                LlamaSampler::grammar(model, grammar, "root")
                    .map_err(|e| format!("the grammar is not valid GBNF ({e})"))?,
            ),
            None => None,
        };
        let draw = if params.temperature <= 0.0 { Draw::Argmax } else { Draw::Chain(chain(params)) };
        Ok(Self { draw, grammar, penalty: RepeatPenalty::new(params), penalised: Vec::new() })
    }

    /// Shows the repeat penalty the prompt's last tokens, which it counts too (as llama.cpp's
    /// server does).
    pub fn accept_prompt(&mut self, tokens: &[LlamaToken]) {
        if let Some(penalty) = &mut self.penalty {
            tokens.iter().for_each(|&t| penalty.accept(t));
        }
    }

    /// The next token from the logits at batch index `idx`.
    pub fn pick(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        let token = self.choose(ctx, idx);
        if let Some(grammar) = &mut self.grammar {
            grammar.accept(token);
        }
        if let Some(penalty) = &mut self.penalty {
            penalty.accept(token);
        }
        token
    }

    fn choose(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        let raw = ctx.get_logits_ith(idx);
        if self.grammar.is_none() && self.penalty.is_none() {
            return match &mut self.draw {
                Draw::Argmax => argmax(raw),
                Draw::Chain(sampler) => sampler.sample(ctx, idx),
            };
        }
        let logits = match &self.penalty {
            Some(penalty) => {
                self.penalised.clear();
                self.penalised.extend_from_slice(raw);
                penalty.apply(&mut self.penalised);
                &self.penalised[..]
            }
            None => raw,
        };
        if self.grammar.is_none() {
            if let Draw::Argmax = self.draw {
                return argmax(logits);
            }
        }
        let candidates =
            logits.iter().enumerate().map(|(id, &logit)| LlamaTokenData::new(LlamaToken(id as i32), logit, 0.0));
        let mut candidates = LlamaTokenDataArray::from_iter(candidates, false);
        if let Some(grammar) = &mut self.grammar {
            // Tokens the grammar does not allow here get a logit of minus infinity.
            candidates.apply_sampler(grammar);
        }
        match &mut self.draw {
            Draw::Argmax => {
                let best = candidates.data.iter().enumerate().fold(0, |best, (i, d)| {
                    if d.logit() > candidates.data[best].logit() {
                        i
                    } else {
                        best
                    }
                });
                candidates.data[best].id()
            }
            Draw::Chain(sampler) => {
                candidates.apply_sampler(sampler);
                let token = candidates.selected_token().unwrap_or_else(|| argmax(logits));
                sampler.accept(token);
                token
            }
        }
    }
}

/// `token`'s log-probability under the raw `logits`, and the `top` most likely tokens with
/// theirs, most likely first.
pub(crate) fn logprobs(logits: &[f32], token: LlamaToken, top: usize) -> (f32, Vec<(LlamaToken, f32)>) {
    let log_sum = log_sum_exp(logits) as f32;
    let chosen = logits.get(token.0 as usize).map_or(f32::NEG_INFINITY, |&l| l - log_sum);
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        for (i, &logit) in logits.iter().enumerate() {
            if best.len() == top && logit <= best[top - 1].1 {
                continue;
            }
            let at = best.partition_point(|&(_, l)| l >= logit);
            best.insert(at, (i, logit));
            best.truncate(top);
        }
    }
    (chosen, best.into_iter().map(|(i, l)| (LlamaToken(i as i32), l - log_sum)).collect())
}

/// `log(sum(exp(logits)))`, computed stably (from the largest logit) and summed in f64:
/// the normaliser of a log-softmax.
pub(crate) fn log_sum_exp(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    f64::from(max) + sum.ln()
}

/// The first most likely token, as llama.cpp's greedy sampler picks it.
pub(crate) fn argmax(logits: &[f32]) -> LlamaToken {
    let mut best = 0;
    for (i, &logit) in logits.iter().enumerate() {
        if logit > logits[best] {
            best = i;
        }
    }
    LlamaToken(best as i32)
}

/// The draw at a temperature above 0: llama.cpp's samplers in llama.cpp's order.
fn chain(params: &SamplingParams) -> LlamaSampler {
    let mut chain = Vec::new();
    {
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
    fn logprobs_are_a_normalised_log_softmax_with_the_top_in_order() {
        let logits = [1.0f32, 3.0, 2.0, 3.0, -1.0];
        let (chosen, top) = logprobs(&logits, LlamaToken(2), 3);
        let total: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((chosen - (2.0f32.exp() / total).ln()).abs() < 1e-5);
        let ids: Vec<i32> = top.iter().map(|(t, _)| t.0).collect();
        assert_eq!(ids, [1, 3, 2], "ties keep vocabulary order");
        let probability: f32 = (0..5).map(|i| logprobs(&logits, LlamaToken(i), 0).0.exp()).sum();
        assert!((probability - 1.0).abs() < 1e-5);
        assert!(logprobs(&logits, LlamaToken(0), 0).1.is_empty());
    }

    #[test]
    fn the_repeat_penalty_matches_llama_cpps_penalties_sampler() {
        let n_vocab = 300;
        let logits: Vec<f32> = (0..n_vocab).map(|i| ((i * 7919) % 101) as f32 / 10.0 - 5.0).collect();
        let params = SamplingParams { repeat_penalty: 1.3, repeat_last_n: 8, ..SamplingParams::default() };
        let mut ours = RepeatPenalty::new(&params).unwrap();
        let mut theirs = LlamaSampler::penalties(n_vocab as i32, 8, 1.3, 0.0, 0.0);
        // More tokens than the window, with repeats, positive and negative logits.
        let history = [3, 17, 3, 250, 99, 17, 42, 5, 3, 120, 7, 7, 64, 0];
        for &t in &history {
            ours.accept(LlamaToken(t));
            theirs.accept(LlamaToken(t));
        }
        let mut mine = logits.clone();
        ours.apply(&mut mine);
        let candidates = logits.iter().enumerate().map(|(i, &l)| LlamaTokenData::new(LlamaToken(i as i32), l, 0.0));
        let mut reference = LlamaTokenDataArray::from_iter(candidates, false);
        reference.apply_sampler(&mut theirs);
        let mut expected = vec![0.0; n_vocab];
        for d in &reference.data {
            expected[d.id().0 as usize] = d.logit();
        }
        assert_eq!(mine, expected);
        assert_ne!(mine, logits, "the window's tokens were penalised");
    }

    #[test]
    fn argmax_takes_the_first_of_equal_maxima() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), LlamaToken(1));
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), LlamaToken(1));
        assert_eq!(argmax(&[2.0]), LlamaToken(0));
    }
}
