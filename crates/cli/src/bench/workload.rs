//! Synthetic prompts for `hearth bench`: random token ids, as llama.cpp's llama-bench uses, so
//! speed does not depend on a text and the two tools measure the same work.

/// `count` token ids below `vocab` from a xorshift stream seeded with `seed`; a different
/// seed per run keeps one run from reusing another's KV cache.
pub fn random_tokens(count: u32, vocab: u32, seed: u64) -> Vec<u32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % u64::from(vocab.max(1))) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_per_seed_and_stay_in_the_vocabulary() {
        assert_eq!(random_tokens(16, 100, 7), random_tokens(16, 100, 7));
        assert_ne!(random_tokens(16, 100, 7), random_tokens(16, 100, 8));
        assert!(random_tokens(1000, 50, 1).iter().all(|&t| t < 50));
    }
}
