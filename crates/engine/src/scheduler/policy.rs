//! The scheduler's decisions over plain data, with no llama.cpp types: which free slot a
//! prompt goes to and how much of that slot's cache it reuses, how many prompt tokens each
//! sequence still prefilling gets in a step, and whether a sequence is done after a sampled
//! token, and why.

use hearth_core::FinishReason;

/// While other sequences are generating, a prompt is evaluated at most this many tokens per
/// step, so their streams keep flowing while it is prefilled.
pub(crate) const PREFILL_CHUNK_WHILE_DECODING: usize = 256;

/// A slot as the choice of a slot sees it.
pub(crate) struct SlotView<'a, T> {
    /// A request holds the slot.
    pub busy: bool,
    /// Tokens whose keys and values the slot has cached, from position 0.
    pub cached: &'a [T],
    /// The admission that last used the slot (0: never used).
    pub last_used: u64,
}

/// Where a prompt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotChoice {
    /// Index of the slot among those offered.
    pub index: usize,
    /// Prompt tokens the slot's cache can serve: the prefix it shares with the prompt, less
    /// the prompt's last token, which is always evaluated again (its logits start the answer).
    pub reusable: usize,
}

/// The free slot whose cache shares the longest prefix with `prompt` (all of it counted,
/// even the last token that is evaluated again); among equal prefixes, none included, the
/// one used least recently, and among those the last. `None` when no slot is free.
/// `prompt` is not empty.
pub(crate) fn choose_slot<'a, T: PartialEq + 'a>(
    slots: impl IntoIterator<Item = SlotView<'a, T>>,
    prompt: &[T],
) -> Option<SlotChoice> {
    let (index, shared) = slots
        .into_iter()
        .enumerate()
        .filter(|(_, slot)| !slot.busy)
        .map(|(index, slot)| (index, common_prefix(slot.cached, prompt), slot.last_used))
        .max_by_key(|&(_, shared, last_used)| (shared, std::cmp::Reverse(last_used)))
        .map(|(index, shared, _)| (index, shared))?;
    Some(SlotChoice { index, reusable: shared.min(prompt.len() - 1) })
}

/// Prompt tokens a cache holding `cached` can serve: the prefix it shares with `prompt`,
/// less the prompt's last token, which is always evaluated again (its logits start the
/// answer). `prompt` is not empty.
pub(crate) fn reusable<T: PartialEq>(cached: &[T], prompt: &[T]) -> usize {
    common_prefix(cached, prompt).min(prompt.len() - 1)
}

/// Whether copying another slot's cells, which serve `offered` prompt tokens, pays over the
/// `own` a slot's cache serves: a copy moves all `context_size` cells of a slot, so the gain
/// must be at least 64 tokens and 1/64 of them.
pub(crate) fn copy_pays(offered: usize, own: usize, context_size: usize) -> bool {
    offered > own && offered - own >= (context_size / 64).max(64)
}

/// Whether restoring a saved cache that serves `offered` prompt tokens pays over the `own` a
/// slot (or a copy of another's) serves. A restore reads all the file holds, which costs
/// about as much as prefilling a thirtieth of its tokens, so the gain must be at least 64
/// tokens and a sixteenth of `offered`.
pub(crate) fn restore_pays(offered: usize, own: usize) -> bool {
    offered > own && offered - own >= (offered / 16).max(64)
}

/// The saved cache (each offered as its tokens, or `None` while it is being written) that
/// serves the most of `prompt`, the latest among equals, when restoring it pays over the
/// `own` tokens served without it ([`restore_pays`]). With sliding-window layers of `window`
/// positions a saved cache keeps only its last `window` positions there, so it serves a
/// prompt only as far as [`window_limited`] allows.
pub(crate) fn saved_donor<'a, T: PartialEq + 'a>(
    saved: impl IntoIterator<Item = Option<&'a [T]>>,
    prompt: &[T],
    own: usize,
    window: u64,
) -> Option<SlotChoice> {
    saved
        .into_iter()
        .enumerate()
        .filter_map(|(index, holds)| {
            let holds = holds?;
            let oldest_kept = (holds.len() as u64).saturating_sub(window);
            Some(SlotChoice { index, reusable: window_limited(reusable(holds, prompt), oldest_kept, window) })
        })
        .max_by_key(|saved| (saved.reusable, saved.index))
        .filter(|saved| restore_pays(saved.reusable, own))
}

/// The slot other than `chosen` that holds, or is computing, the longest prefix of `prompt`,
/// when copying its cells into the chosen slot pays ([`copy_pays`]): many clients sharing
/// one long system prompt, where the first computes it and the others copy it. Each slot is
/// offered as the tokens it will hold (a prompt still being prefilled counts whole), or
/// `None` when it cannot give.
pub(crate) fn prefix_donor<'a, T: PartialEq + 'a>(
    holdings: impl IntoIterator<Item = Option<&'a [T]>>,
    prompt: &[T],
    chosen: SlotChoice,
    context_size: usize,
) -> Option<SlotChoice> {
    holdings
        .into_iter()
        .enumerate()
        .filter(|&(index, _)| index != chosen.index)
        .filter_map(|(index, holds)| Some(SlotChoice { index, reusable: reusable(holds?, prompt) }))
        .max_by_key(|donor| (donor.reusable, std::cmp::Reverse(donor.index)))
        .filter(|donor| copy_pays(donor.reusable, chosen.reusable, context_size))
}

/// What is left of a `reuse`-token prefix once sliding-window layers of `window` positions
/// (0: the model has none) are taken into account: those layers keep positions from
/// `oldest_kept` on, and the first token after the prefix, at position `reuse`, attends to
/// the `window` positions up to its own (llama.cpp's standard window masks what lies
/// `window` or more before). All of the prefix when those are still there, else none.
pub(crate) fn window_limited(reuse: usize, oldest_kept: u64, window: u64) -> usize {
    if reuse > 0 && window > 0 && oldest_kept > (reuse as u64 + 1).saturating_sub(window) {
        0
    } else {
        reuse
    }
}

/// A sequence still evaluating its prompt, as a step's budget sees it.
pub(crate) struct Prefilling {
    /// The admission that started its request: lower came first.
    pub arrival: u64,
    /// Prompt tokens not yet in the cache.
    pub remaining: usize,
}

/// Prompt tokens of one prefilling sequence in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Index of the sequence among those passed to [`prefill_chunks`].
    pub index: usize,
    pub tokens: usize,
}

/// How a step's batch of `batch_size` tokens, `decoding` of which are the next tokens of
/// generating sequences, is filled with prompt: the room left, and at most
/// [`PREFILL_CHUNK_WHILE_DECODING`] tokens while anything is decoding, goes to the
/// prefilling sequences oldest request first, each taking what its prompt still needs.
/// The chunks come in the order they go into the batch; a sequence that gets nothing has
/// none.
pub(crate) fn prefill_chunks(batch_size: usize, decoding: usize, prefilling: &[Prefilling]) -> Vec<Chunk> {
    let mut room = batch_size.saturating_sub(decoding);
    if decoding > 0 {
        room = room.min(PREFILL_CHUNK_WHILE_DECODING);
    }
    let mut order: Vec<usize> = (0..prefilling.len()).collect();
    order.sort_by_key(|&i| prefilling[i].arrival);
    let mut chunks = Vec::new();
    for index in order {
        if room == 0 {
            break;
        }
        let tokens = prefilling[index].remaining.min(room);
        if tokens > 0 {
            chunks.push(Chunk { index, tokens });
        }
        room -= tokens;
    }
    chunks
}

/// Whether a sampled token ends the answer by itself, its text unsent: an end-of-generation
/// token, unless the request ignores those.
pub(crate) fn ends_generation(end_of_generation_token: bool, ignore_eos: bool) -> bool {
    end_of_generation_token && !ignore_eos
}

/// What came of a sequence's sampled token, for [`finish_reason`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sampled {
    /// The token ends the answer ([`ends_generation`]); its text was not looked at.
    pub ends_generation: bool,
    /// The stop sequence (its place in the request's list) the token's text completed.
    pub stop_matched: Option<usize>,
    /// The token's text could not be sent: the receiver is gone.
    pub undelivered: bool,
    /// Tokens generated so far, this one included.
    pub generated: u32,
    /// The request's limit on generated tokens, if it has one.
    pub max_tokens: Option<u32>,
    /// Tokens in the sequence's cache, this one not yet.
    pub cached: usize,
    pub context_size: usize,
    /// The receiver went away since.
    pub disconnected: bool,
}

/// Whether a sequence is done after a sampled token, and why. The first that holds wins: the
/// token ends the answer (`Stop`), or its text completes a stop sequence (`StopSequence`); its text found no
/// receiver (`Cancelled`); the request's `max_tokens` are generated, or the token would
/// leave no room in the context (`Length`); the receiver is gone (`Cancelled`).
pub(crate) fn finish_reason(sampled: &Sampled) -> Option<FinishReason> {
    if sampled.ends_generation {
        Some(FinishReason::Stop)
    } else if let Some(stop) = sampled.stop_matched {
        Some(FinishReason::StopSequence(stop))
    } else if sampled.undelivered {
        Some(FinishReason::Cancelled)
    } else if sampled.max_tokens.is_some_and(|max| sampled.generated >= max)
        || sampled.cached + 1 >= sampled.context_size
    {
        Some(FinishReason::Length)
    } else if sampled.disconnected {
        Some(FinishReason::Cancelled)
    } else {
        None
    }
}

pub(crate) fn common_prefix<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free(cached: &[i32], last_used: u64) -> SlotView<'_, i32> {
        SlotView { busy: false, cached, last_used }
    }

    fn busy(cached: &[i32], last_used: u64) -> SlotView<'_, i32> {
        SlotView { busy: true, cached, last_used }
    }

    fn choice(index: usize, reusable: usize) -> Option<SlotChoice> {
        Some(SlotChoice { index, reusable })
    }

    #[test]
    fn longest_prefix_wins() {
        let prompt = [1, 2, 3, 4, 5, 6];
        let slots = [free(&[1, 2, 9], 1), free(&[1, 2, 3, 4, 7], 9), free(&[], 0), free(&[1, 2, 3], 5)];
        assert_eq!(choose_slot(slots, &prompt), choice(1, 4));
    }

    #[test]
    fn the_prompt_s_last_token_is_never_reused_but_counts_for_the_choice() {
        let prompt = [1, 2, 3, 4];
        // Slot 0 holds the whole prompt, slot 1 all but its last token: both can serve 3
        // tokens, yet the whole match wins although slot 1 was used longer ago.
        let slots = [free(&[1, 2, 3, 4, 8], 7), free(&[1, 2, 3], 1)];
        assert_eq!(choose_slot(slots, &prompt), choice(0, 3));
        // A cache longer than the prompt still serves all but the last prompt token.
        assert_eq!(choose_slot([free(&[1, 2, 3, 4, 5, 6], 3)], &prompt), choice(0, 3));
        // A one-token prompt reuses nothing.
        assert_eq!(choose_slot([free(&[1, 2], 3)], &[1]), choice(0, 0));
    }

    #[test]
    fn least_recently_used_among_equal_prefixes() {
        let prompt = [1, 2, 3, 4];
        let slots = [free(&[1, 2, 7], 6), free(&[1, 2, 8], 2), free(&[1, 2, 9], 4), free(&[1, 5], 1)];
        assert_eq!(choose_slot(slots, &prompt), choice(1, 2));
    }

    #[test]
    fn least_recently_used_when_no_slot_shares_a_prefix() {
        let prompt = [1, 2, 3];
        let slots = [free(&[4, 5], 3), free(&[], 5), free(&[6], 2), free(&[7, 1, 2], 4)];
        assert_eq!(choose_slot(slots, &prompt), choice(2, 0));
    }

    #[test]
    fn the_last_of_equally_old_slots() {
        // A fresh engine: every slot empty and never used.
        let slots = [free(&[], 0), free(&[], 0), free(&[], 0)];
        assert_eq!(choose_slot(slots, &[1, 2]), choice(2, 0));
        let slots = [free(&[1, 5], 4), free(&[1, 6], 4), free(&[1, 7], 9)];
        assert_eq!(choose_slot(slots, &[1, 2]), choice(1, 1));
    }

    #[test]
    fn busy_slots_are_passed_over() {
        let prompt = [1, 2, 3, 4];
        let slots = [busy(&[1, 2, 3, 4], 1), free(&[1], 8), busy(&[], 0), free(&[9], 3)];
        assert_eq!(choose_slot(slots, &prompt), choice(1, 1));
        let slots = [busy(&[1, 2, 3], 1), busy(&[], 0)];
        assert_eq!(choose_slot(slots, &prompt), None);
    }

    #[test]
    fn sliding_window_limits_reuse() {
        // No sliding-window layers: the whole prefix, whatever is kept.
        assert_eq!(window_limited(1000, 900, 0), 1000);
        // Position 1000's window of 512 starts at 489.
        assert_eq!(window_limited(1000, 489, 512), 1000);
        assert_eq!(window_limited(1000, 300, 512), 1000);
        assert_eq!(window_limited(1000, 490, 512), 0);
        // A prefix shorter than the window needs everything from position 0.
        assert_eq!(window_limited(100, 0, 512), 100);
        assert_eq!(window_limited(100, 1, 512), 0);
        assert_eq!(window_limited(0, 0, 512), 0);
    }

    fn prefilling(arrival: u64, remaining: usize) -> Prefilling {
        Prefilling { arrival, remaining }
    }

    fn chunks(of: &[(usize, usize)]) -> Vec<Chunk> {
        of.iter().map(|&(index, tokens)| Chunk { index, tokens }).collect()
    }

    #[test]
    fn prefill_takes_the_whole_batch_when_nothing_decodes() {
        assert_eq!(prefill_chunks(2048, 0, &[prefilling(1, 1500)]), chunks(&[(0, 1500)]));
        assert_eq!(prefill_chunks(512, 0, &[prefilling(1, 1500)]), chunks(&[(0, 512)]));
        // What the first leaves goes to the next.
        assert_eq!(prefill_chunks(512, 0, &[prefilling(1, 300), prefilling(2, 300)]), chunks(&[(0, 300), (1, 212)]));
    }

    #[test]
    fn prefill_is_limited_while_sequences_decode() {
        // Three decoding sequences: at most 256 prompt tokens, however large the batch.
        assert_eq!(prefill_chunks(2048, 3, &[prefilling(4, 1500)]), chunks(&[(0, 256)]));
        assert_eq!(prefill_chunks(2048, 1, &[prefilling(4, 200), prefilling(5, 200)]), chunks(&[(0, 200), (1, 56)]));
        // A batch smaller than that: what the decoding tokens leave.
        assert_eq!(prefill_chunks(128, 3, &[prefilling(4, 1500)]), chunks(&[(0, 125)]));
        // A prompt shorter than the room takes only what it needs.
        assert_eq!(prefill_chunks(2048, 2, &[prefilling(4, 10)]), chunks(&[(0, 10)]));
    }

    #[test]
    fn prefill_gets_nothing_in_a_full_batch() {
        assert_eq!(prefill_chunks(4, 4, &[prefilling(5, 100)]), []);
        assert_eq!(prefill_chunks(512, 0, &[]), []);
    }

    #[test]
    fn prefill_goes_to_the_oldest_request_first() {
        // Slot order is not arrival order: the request that came first is served first and
        // whole, the one after it gets the rest, the newest nothing.
        let waiting = [prefilling(9, 400), prefilling(3, 100), prefilling(5, 400)];
        assert_eq!(prefill_chunks(512, 0, &waiting), chunks(&[(1, 100), (2, 400), (0, 12)]));
        assert_eq!(prefill_chunks(300, 0, &waiting), chunks(&[(1, 100), (2, 200)]));
        assert_eq!(prefill_chunks(2048, 2, &waiting), chunks(&[(1, 100), (2, 156)]));
    }

    #[test]
    fn a_step_never_holds_more_than_the_batch() {
        let waiting = [prefilling(3, 700), prefilling(1, 1), prefilling(2, 90), prefilling(4, 5000)];
        for batch_size in [1, 2, 7, 64, 255, 256, 257, 512, 2048, 8192] {
            for decoding in 0..=batch_size.min(9) {
                let chunks = prefill_chunks(batch_size, decoding, &waiting);
                let prompt: usize = chunks.iter().map(|c| c.tokens).sum();
                assert!(decoding + prompt <= batch_size, "{decoding} + {prompt} > {batch_size}");
                if decoding > 0 {
                    assert!(prompt <= PREFILL_CHUNK_WHILE_DECODING, "{prompt} while decoding");
                }
                for chunk in &chunks {
                    assert!(chunk.tokens > 0 && chunk.tokens <= waiting[chunk.index].remaining);
                }
                // The room is used up, or every prompt is in.
                let room = (batch_size - decoding).min(if decoding > 0 { 256 } else { usize::MAX });
                assert_eq!(prompt, room.min(5791), "batch {batch_size}, decoding {decoding}");
            }
        }
    }

    /// A token in the middle of an answer: nothing ends it.
    fn going_on() -> Sampled {
        Sampled { generated: 5, max_tokens: Some(100), cached: 40, context_size: 4096, ..Sampled::default() }
    }

    #[test]
    fn an_ordinary_token_ends_nothing() {
        assert_eq!(finish_reason(&going_on()), None);
        assert_eq!(finish_reason(&Sampled { max_tokens: None, ..going_on() }), None);
    }

    #[test]
    fn end_of_generation_token_stops_unless_ignored() {
        assert!(ends_generation(true, false));
        assert!(!ends_generation(true, true));
        assert!(!ends_generation(false, false));
        assert!(!ends_generation(false, true));
        let ended = Sampled { ends_generation: true, ..going_on() };
        assert_eq!(finish_reason(&ended), Some(FinishReason::Stop));
    }

    #[test]
    fn stop_sequence_stops() {
        let stopped = Sampled { stop_matched: Some(1), ..going_on() };
        assert_eq!(finish_reason(&stopped), Some(FinishReason::StopSequence(1)));
    }

    #[test]
    fn undelivered_text_cancels() {
        let lost = Sampled { undelivered: true, disconnected: true, ..going_on() };
        assert_eq!(finish_reason(&lost), Some(FinishReason::Cancelled));
    }

    #[test]
    fn max_tokens_is_a_length_finish() {
        assert_eq!(finish_reason(&Sampled { generated: 99, ..going_on() }), None);
        assert_eq!(finish_reason(&Sampled { generated: 100, ..going_on() }), Some(FinishReason::Length));
        // A limit of 0 still lets the first token out, then ends.
        assert_eq!(
            finish_reason(&Sampled { generated: 1, max_tokens: Some(0), ..going_on() }),
            Some(FinishReason::Length)
        );
    }

    #[test]
    fn a_full_context_is_a_length_finish() {
        // The token would go at position 4094, leaving the last one free: it goes on.
        assert_eq!(finish_reason(&Sampled { cached: 4094, ..going_on() }), None);
        assert_eq!(finish_reason(&Sampled { cached: 4095, ..going_on() }), Some(FinishReason::Length));
        assert_eq!(
            finish_reason(&Sampled { cached: 4095, max_tokens: None, ..going_on() }),
            Some(FinishReason::Length)
        );
    }

    #[test]
    fn a_receiver_gone_cancels() {
        assert_eq!(finish_reason(&Sampled { disconnected: true, ..going_on() }), Some(FinishReason::Cancelled));
    }

    #[test]
    fn finish_reasons_in_order_of_precedence() {
        let everything = Sampled {
            ends_generation: true,
            stop_matched: Some(0),
            undelivered: true,
            generated: 100,
            max_tokens: Some(100),
            cached: 4095,
            context_size: 4096,
            disconnected: true,
        };
        assert_eq!(finish_reason(&everything), Some(FinishReason::Stop));
        let no_end = Sampled { ends_generation: false, ..everything };
        assert_eq!(finish_reason(&no_end), Some(FinishReason::StopSequence(0)));
        // A stop sequence wins over a lost receiver: its text was sent regardless.
        let no_stop = Sampled { stop_matched: None, ..no_end };
        assert_eq!(finish_reason(&no_stop), Some(FinishReason::Cancelled));
        let delivered = Sampled { undelivered: false, ..no_stop };
        assert_eq!(finish_reason(&delivered), Some(FinishReason::Length));
        let room_left = Sampled { cached: 10, ..delivered };
        assert_eq!(finish_reason(&room_left), Some(FinishReason::Length), "max_tokens alone");
        let under_max = Sampled { generated: 3, ..room_left };
        assert_eq!(finish_reason(&under_max), Some(FinishReason::Cancelled));
        assert_eq!(finish_reason(&Sampled { disconnected: false, ..under_max }), None);
    }

    #[test]
    fn common_prefix_counts_equal_leading_tokens() {
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4, 5]), 2);
        assert_eq!(common_prefix(&[1, 2], &[1, 2, 3]), 2);
        assert_eq!(common_prefix(&[2], &[1, 2]), 0);
        assert_eq!(common_prefix::<i32>(&[], &[1]), 0);
    }

    #[test]
    fn a_long_prefix_in_another_slot_is_copied_and_a_short_one_is_not() {
        let system: Vec<u32> = (0..200).collect();
        let prompt = [system.clone(), vec![1000, 1001]].concat();
        let with_system = [system.clone(), vec![7, 7, 7]].concat();
        let short = &system[..50];
        let chosen = SlotChoice { index: 2, reusable: 0 };
        let holdings = || [Some(short), Some(&with_system[..]), Some(&[][..])];
        assert_eq!(prefix_donor(holdings(), &prompt, chosen, 4096), Some(SlotChoice { index: 1, reusable: 200 }));
        // Not worth it when the chosen slot already has most of it, or the context is huge.
        assert_eq!(prefix_donor(holdings(), &prompt, SlotChoice { index: 2, reusable: 150 }, 4096), None);
        assert_eq!(prefix_donor(holdings(), &prompt, chosen, 65_536), None);
        // The chosen slot is never its own donor, a slot that cannot give is passed over,
        // and 50 shared tokens are not enough.
        let own = SlotChoice { index: 0, reusable: 200 };
        assert_eq!(prefix_donor([Some(&with_system[..]), Some(short)], &prompt, own, 4096), None);
        assert_eq!(prefix_donor([Some(short), None, None], &prompt, chosen, 4096), None);
        // A prompt that is all prefix still leaves its last token to evaluate.
        assert_eq!(prefix_donor(holdings(), &system, chosen, 4096), Some(SlotChoice { index: 1, reusable: 199 }));
        assert!(copy_pays(64, 0, 4096) && !copy_pays(63, 0, 4096) && !copy_pays(100, 0, 8192));
        assert!(copy_pays(300, 200, 4096) && !copy_pays(200, 300, 4096));
    }

    #[test]
    fn a_restore_pays_for_a_gain_of_64_tokens_and_a_sixteenth_of_the_file() {
        assert!(restore_pays(64, 0) && !restore_pays(63, 0));
        assert!(restore_pays(3000, 2800) && !restore_pays(3000, 2900));
        assert!(!restore_pays(100, 100) && !restore_pays(100, 200));
    }

    #[test]
    fn the_saved_cache_serving_most_is_restored_as_far_as_its_window_reaches() {
        let document: Vec<i32> = (0..1000).collect();
        let longer: Vec<i32> = (0..1200).collect();
        let mut other = document.clone();
        other[10] = -1;
        let saved = || [Some(&document[..]), None, Some(&other[..]), Some(&longer[..])];
        let mut prompt = document.clone();
        prompt.push(-5);
        // The longest match wins, the latest among equals; one being written is passed over.
        assert_eq!(saved_donor(saved(), &prompt, 0, 0), Some(SlotChoice { index: 3, reusable: 1000 }));
        assert_eq!(saved_donor(saved(), &prompt, 950, 0), None, "50 tokens gained do not pay");
        assert_eq!(saved_donor([None, Some(&other[..])], &prompt, 0, 0), None, "10 tokens do not pay");
        // A sliding window: a cache of 1,200 tokens no longer holds what position 1000 attends
        // to; one of 1,000 does (its last position is the prompt's own next).
        assert_eq!(saved_donor(saved(), &prompt, 0, 512), Some(SlotChoice { index: 0, reusable: 1000 }));
        assert_eq!(saved_donor(saved(), &document, 0, 512), Some(SlotChoice { index: 0, reusable: 999 }));
        // Cut back 100 tokens, none of them holds what the window needs.
        let mut shorter = document[..900].to_vec();
        shorter.push(-5);
        assert_eq!(saved_donor(saved(), &shorter, 0, 512), None);
        assert_eq!(saved_donor(saved(), &shorter, 0, 0), Some(SlotChoice { index: 3, reusable: 900 }));
    }
}
