//! Where the real test models live (the directory `scripts/fetch-test-models` fills), for the
//! tests and benchmarks of every crate.

use std::path::PathBuf;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// `$HEARTH_TEST_MODELS`, else `${XDG_CACHE_HOME:-~/.cache}/hearth/test-models`. Panics with
/// the command to run when the models are missing: a test without its model must fail,
/// never pass by skipping.
pub fn dir() -> PathBuf {
    let dir = std::env::var_os("HEARTH_TEST_MODELS").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("hearth/test-models")
    });
    for model in [SMOLLM2, GEMMA3] {
        assert!(dir.join(model).is_file(), "{model} missing in {}: run scripts/fetch-test-models", dir.display());
    }
    dir
}

pub fn smollm2() -> PathBuf {
    dir().join(SMOLLM2)
}

pub fn gemma3() -> PathBuf {
    dir().join(GEMMA3)
}
