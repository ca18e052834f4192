//! Speculative decoding with a draft model: a smaller model of the same vocabulary, in a
//! llama.cpp context of its own with a sequence per slot, proposes each answer's next tokens
//! greedily; the scheduler verifies them as it verifies prompt lookup's, so the answer is
//! the model's own. The draft sequences follow the slots' caches: before each proposal a
//! sequence is cut back to what it shares with its slot's history and catches up on the rest.

use crate::engine::{slotted_params, with_kv_cache, ResolvedSettings};
use crate::load::backend;
use crate::scheduler::common_prefix;
use hearth_core::KvCache;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

/// Whether `draft` can draft for `model`: as many tokens, the same start and end tokens,
/// and every token the same text, so a drafted token means what the model reads.
pub(crate) fn check_vocabulary(model: &LlamaModel, draft: &LlamaModel) -> Result<(), String> {
    let (ours, theirs) = (model.vocab(), draft.vocab());
    // Not by `vocab_type()`, which panics on all but two of llama.cpp's kinds.
    if ours.n_tokens() != theirs.n_tokens() {
        return Err(format!(
            "its vocabulary has {} tokens and the model's {}: a draft model must share the model's tokenizer",
            theirs.n_tokens(),
            ours.n_tokens()
        ));
    }
    if ours.bos() != theirs.bos() || ours.eos() != theirs.eos() {
        return Err("its start and end tokens differ from the model's: a draft model must share the model's \
                    tokenizer"
            .into());
    }
    for id in 0..ours.n_tokens() {
        let token = LlamaToken(id);
        let (here, there) = (ours.text(token), theirs.text(token));
        if here != there {
            return Err(format!(
                "token {id} is {there:?} in it and {here:?} in the model: a draft model must share the model's \
                 tokenizer"
            ));
        }
    }
    Ok(())
}

/// What one slot asks of the draft model in a step.
pub(crate) struct Want<'h> {
    pub slot: usize,
    /// The slot's cache and its pending token: what the draft follows.
    pub history: &'h [LlamaToken],
    /// Tokens to propose at most.
    pub longest: usize,
}

pub(crate) struct ModelDrafter<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    batch_size: usize,
    /// Per slot: the tokens whose cells its draft sequence holds, from position 0.
    cached: Vec<Vec<LlamaToken>>,
}

impl<'m> ModelDrafter<'m> {
    /// A context for `model` with a stream per slot of the target's context size; its cache
    /// is llama.cpp's default (f16, flash attention as llama.cpp decides).
    pub fn new(model: &'m LlamaModel, settings: &ResolvedSettings) -> Result<Self, String> {
        let params = with_kv_cache(slotted_params(settings), KvCache::default());
        let ctx = model.new_context(backend(), params).map_err(|e| format!("the draft model's context: {e}"))?;
        Ok(Self {
            model,
            ctx,
            batch: LlamaBatch::new(settings.batch_size as usize, 1),
            batch_size: settings.batch_size as usize,
            cached: vec![Vec::new(); settings.parallel as usize],
        })
    }

    /// A draft for each want, in order: the draft model's greedy continuation of its history,
    /// `longest` tokens, or fewer if it ends the answer (as llama.cpp drafts by default: no
    /// confidence cut, a fixed length, `--draft-max` here). A failed decode gives
    /// no drafts (and forgets the draft sequences, which catch up again next time).
    pub fn drafts(&mut self, wants: &[Want<'_>]) -> Vec<Vec<LlamaToken>> {
        let mut drafts = vec![Vec::new(); wants.len()];
        match self.propose(wants, &mut drafts) {
            Ok(()) => drafts,
            Err(e) => {
                tracing::warn!("the draft model failed a step: {e}");
                self.ctx.clear_kv_cache();
                self.cached.iter_mut().for_each(Vec::clear);
                vec![Vec::new(); wants.len()]
            }
        }
    }

    fn propose(&mut self, wants: &[Want<'_>], drafts: &mut [Vec<LlamaToken>]) -> Result<(), String> {
        let longest: Vec<usize> = wants.iter().map(|w| w.longest).collect();
        let wants: Vec<(usize, &Want<'_>)> =
            wants.iter().enumerate().filter(|(_, w)| w.longest > 0 && !w.history.is_empty()).collect();
        // Each sequence keeps what it shares with its history, less the history's last token,
        // which is decoded again: its logits start the draft.
        for (_, want) in &wants {
            let cached = &mut self.cached[want.slot];
            let keep = common_prefix(cached, want.history).min(want.history.len() - 1);
            if keep < cached.len() {
                let seq = want.slot as u32;
                if !self.ctx.clear_kv_cache_seq(Some(seq), Some(keep as u32), None).unwrap_or(false) {
                    return Err("the draft cache could not be cut back".into());
                }
                cached.truncate(keep);
            }
        }
        // Catch up on the rest (a new prompt, the first time; the tokens accepted since,
        // after that), a batch at a time, until the rest fits one batch with each history's
        // last token, whose logits start the drafts.
        loop {
            let left: usize = wants.iter().map(|(_, w)| w.history.len() - self.cached[w.slot].len()).sum();
            if left <= self.batch_size {
                break;
            }
            self.batch.clear();
            for (_, want) in &wants {
                let cached = &mut self.cached[want.slot];
                while cached.len() + 1 < want.history.len() && (self.batch.n_tokens() as usize) < self.batch_size {
                    let token = want.history[cached.len()];
                    self.batch
                        .add(token, cached.len() as i32, &[want.slot as i32], false)
                        .map_err(|e| e.to_string())?;
                    cached.push(token);
                }
            }
            self.ctx.decode(&mut self.batch).map_err(|e| e.to_string())?;
        }
        // Then all that is left, and a token per still-drafting sequence per decode.
        let mut next: Vec<(usize, usize, Vec<LlamaToken>)> = (wants.iter())
            .map(|&(i, want)| (i, want.slot, want.history[self.cached[want.slot].len()..].to_vec()))
            .collect();
        let vocab = self.model.vocab();
        while !next.is_empty() {
            self.batch.clear();
            let mut logits_at = Vec::with_capacity(next.len());
            for (_, slot, tokens) in &next {
                let slot = *slot;
                for (offset, &token) in tokens.iter().enumerate() {
                    let position = self.cached[slot].len() as i32;
                    let last = offset + 1 == tokens.len();
                    self.batch.add(token, position, &[slot as i32], last).map_err(|e| e.to_string())?;
                    self.cached[slot].push(token);
                }
                logits_at.push(self.batch.n_tokens() - 1);
            }
            self.ctx.decode(&mut self.batch).map_err(|e| e.to_string())?;
            let decoded = std::mem::take(&mut next);
            for ((i, slot, _), at) in decoded.into_iter().zip(logits_at) {
                let token = crate::sampler::argmax(self.ctx.get_logits_ith(at));
                if vocab.is_eog(token) {
                    continue;
                }
                drafts[i].push(token);
                if drafts[i].len() < longest[i] {
                    next.push((i, slot, vec![token]));
                }
            }
        }
        Ok(())
    }
}
