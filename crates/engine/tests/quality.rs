//! Perplexity and KL divergence on the real SmolLM2 test model, checked against llama.cpp's
//! perplexity tool on the same text.

use hearth_engine::quality::{divergence, perplexity, QualitySettings};
use hearth_engine::test_models;
use std::path::PathBuf;

/// Jules Verne's novel from Project Gutenberg, byte for byte as published.
fn novel() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/around-the-world-in-80-days.txt");
    std::fs::read_to_string(path).unwrap()
}

fn chunks(n: usize) -> QualitySettings {
    QualitySettings { chunk_tokens: 512, max_chunks: Some(n), threads: Some(1), ..Default::default() }
}

/// llama.cpp 0c1e57098's `llama-perplexity -c 512 --chunks 4` on this file and model, built
/// for a CPU with AVX-512: `PPL = 14.9306 +/- 1.23982`.
const LLAMA_CPP_AVX512: (f64, f64) = (14.9306, 1.23982);

/// The same run of hearth built for a CPU with AVX2 and no AVX-512 (`target-cpu=native` on
/// such a machine): ggml's AVX2 kernels round differently, 0.08% away. No llama.cpp tool
/// was at hand on that machine, so this is hearth's own figure there, held as a regression
/// check; the AVX-512 figure above is the one compared with llama.cpp's.
const HEARTH_AVX2: (f64, f64) = (14.9432, 1.23998);

#[test]
fn smollm2_perplexity_matches_llama_cpps_tool() {
    let result = perplexity(&test_models::smollm2(), &novel(), &chunks(4)).unwrap();
    assert_eq!((result.chunks, result.tokens_scored), (4, 4 * 255));
    // Whatever the kernels, within 0.1% of llama.cpp's figure.
    assert!((result.perplexity / LLAMA_CPP_AVX512.0 - 1.0).abs() < 1e-3, "{result:?}");
    // The same chunks, scored the same way with the same kernels, give the same figure to
    // four decimals.
    let (expected, uncertainty) = if cfg!(target_feature = "avx512f") { LLAMA_CPP_AVX512 } else { HEARTH_AVX2 };
    assert!((result.perplexity - expected).abs() < 0.0005, "{result:?}");
    assert!((result.uncertainty - uncertainty).abs() < 0.0005, "{result:?}");
}

#[test]
fn shuffled_words_are_less_predictable_than_the_text() {
    let text = novel();
    let mut words: Vec<&str> = text.split_whitespace().collect();
    // A fixed Fisher-Yates shuffle (a linear congruential generator), so the test is stable.
    let mut state = 12345u64;
    for i in (1..words.len()).rev() {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        words.swap(i, (state >> 33) as usize % (i + 1));
    }
    let shuffled = words.join(" ");
    let model = test_models::smollm2();
    let ordered = perplexity(&model, &text, &chunks(2)).unwrap();
    let mixed = perplexity(&model, &shuffled, &chunks(2)).unwrap();
    assert!(ordered.perplexity.is_finite() && ordered.perplexity < 100.0, "{ordered:?}");
    assert!(mixed.perplexity > 3.0 * ordered.perplexity, "{mixed:?} against {ordered:?}");
}

#[test]
fn a_model_does_not_diverge_from_itself_and_vocabularies_must_match() {
    let model = test_models::smollm2();
    let same = divergence(&model, &model, &novel(), &chunks(1)).unwrap();
    assert!(same.kl_mean.abs() < 1e-6 && same.kl_max < 1e-5, "{same:?}");
    assert_eq!(same.same_top_token, 1.0);
    assert_eq!(same.reference.perplexity, same.model.perplexity);
    let error = divergence(&model, &test_models::gemma3(), &novel(), &chunks(1)).unwrap_err();
    assert!(error.to_string().contains("share"), "{error}");
    let short = perplexity(&model, "Too short.", &chunks(1)).unwrap_err();
    assert!(short.to_string().contains("less than one chunk"), "{short}");
}
