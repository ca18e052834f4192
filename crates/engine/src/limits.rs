//! The bounds every value reaching llama.cpp is held to, in one place: engine settings
//! (threads, context, batch, slots), prompt rendering (instructions, output size, time) and
//! embedding requests. Out of bounds is an error that names the setting and its range,
//! never a value passed through for llama.cpp to throw or allocate on.

use crate::EngineError;
use std::time::Duration;

/// Threads per model: llama.cpp's own ceiling (`GGML_MAX_N_THREADS`). Each thread gets a
/// share of llama.cpp's work buffer, which it allocates by thread count.
pub const MAX_THREADS: u32 = 512;
/// The smallest context a model runs with: room for a template's framing and an answer.
pub const MIN_CONTEXT_SIZE: u32 = 16;
/// Tokens per batch: llama.cpp's batch buffers and compute graph are sized by it.
pub const MAX_BATCH_SIZE: u32 = 16_384;
/// Sequences decoded together; each has a KV stream of the whole context.
pub const MAX_PARALLEL: u32 = 256;
/// Tokens drafted per step by speculative decoding: each is verified in the step's batch.
pub const MAX_DRAFT: u32 = 64;
/// Inputs per embedding request (OpenAI's limit).
pub const MAX_EMBED_INPUTS: usize = 2048;

/// Minijinja instructions one render of a chat template may take. A chat of a hundred
/// turns takes well under a million; a template that loops without end runs out here.
pub const RENDER_FUEL: u64 = 50_000_000;
/// Wall-clock time one render may take.
pub const RENDER_TIME: Duration = Duration::from_secs(10);
/// Bytes of rendered prompt per token of context: more text than that cannot fit once
/// tokenized (a token is 3-4 bytes of text on average), so a longer render stops early.
pub const RENDER_BYTES_PER_TOKEN: usize = 64;
/// Rendered bytes allowed on top of that, for small contexts.
pub const RENDER_BYTES_EXTRA: usize = 1 << 20;

fn out_of_range(name: &str, value: u32, low: u32, high: u32) -> EngineError {
    EngineError::InvalidSetting(format!("{name} must be between {low} and {high}, got {value}"))
}

fn within(name: &str, value: Option<u32>, low: u32, high: u32) -> Result<Option<u32>, EngineError> {
    match value {
        Some(v) if !(low..=high).contains(&v) => Err(out_of_range(name, v, low, high)),
        other => Ok(other),
    }
}

/// `draft_max`: 1 to [`MAX_DRAFT`].
pub fn draft_max(value: Option<u32>) -> Result<Option<u32>, EngineError> {
    within("draft_max", value, 1, MAX_DRAFT)
}

/// `num_thread`: 1 to [`MAX_THREADS`].
pub fn threads(value: Option<u32>) -> Result<Option<u32>, EngineError> {
    within("num_thread (threads)", value, 1, MAX_THREADS)
}

/// `num_ctx`: [`MIN_CONTEXT_SIZE`] to the length the model was trained for; default 4096
/// or the trained length if shorter.
/// The context `model` runs with when `value` is asked (`None`: the default), within what
/// it was trained for (4096 when its file does not say).
pub fn model_context_size(model: &hearth_core::ModelInfo, value: Option<u32>) -> Result<u32, EngineError> {
    let trained = model.context_length.and_then(|n| u32::try_from(n).ok()).unwrap_or(crate::DEFAULT_CONTEXT_SIZE);
    context_size(value, trained)
}

pub fn context_size(value: Option<u32>, trained: u32) -> Result<u32, EngineError> {
    let trained = trained.max(MIN_CONTEXT_SIZE);
    match value {
        None => Ok(crate::DEFAULT_CONTEXT_SIZE.min(trained)),
        Some(v) if v > trained => Err(EngineError::InvalidSetting(format!(
            "num_ctx (context size) {v} is more than the model's trained context of {trained} tokens"
        ))),
        Some(v) if v < MIN_CONTEXT_SIZE => Err(EngineError::InvalidSetting(format!(
            "num_ctx (context size) must be at least {MIN_CONTEXT_SIZE}, got {v}"
        ))),
        Some(v) => Ok(v),
    }
}

/// `num_batch`: 1 to [`MAX_BATCH_SIZE`].
pub fn batch_size(value: Option<u32>) -> Result<Option<u32>, EngineError> {
    within("num_batch (batch size)", value, 1, MAX_BATCH_SIZE)
}

/// Slots: 1 to [`MAX_PARALLEL`]; default 1.
pub fn parallel(value: Option<u32>) -> Result<u32, EngineError> {
    Ok(within("parallel (slots)", value, 1, MAX_PARALLEL)?.unwrap_or(1))
}

/// An embedding request's input count.
pub fn embed_inputs(count: usize) -> Result<(), String> {
    if count > MAX_EMBED_INPUTS {
        return Err(format!("an embedding request takes at most {MAX_EMBED_INPUTS} inputs, got {count}"));
    }
    Ok(())
}

/// The most bytes a rendered prompt for a context of `context_size` tokens may have.
pub fn render_bytes(context_size: u32) -> usize {
    (context_size as usize).saturating_mul(RENDER_BYTES_PER_TOKEN).saturating_add(RENDER_BYTES_EXTRA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_is_held_to_its_range() {
        assert!(threads(Some(0)).is_err());
        assert!(threads(Some(1_000_000)).unwrap_err().to_string().contains("between 1 and 512"));
        assert_eq!(threads(Some(8)).unwrap(), Some(8));
        assert_eq!(threads(None).unwrap(), None);
        assert!(context_size(Some(0), 8192).is_err());
        assert!(context_size(Some(1_000_000_000), 8192).unwrap_err().to_string().contains("trained context of 8192"));
        assert_eq!(context_size(Some(2048), 8192).unwrap(), 2048);
        assert_eq!(context_size(None, 8192).unwrap(), 4096);
        assert_eq!(context_size(None, 2048).unwrap(), 2048);
        assert!(batch_size(Some(0)).is_err());
        assert!(batch_size(Some(1_000_000_000)).is_err());
        assert_eq!(batch_size(Some(2048)).unwrap(), Some(2048));
        assert!(parallel(Some(0)).is_err() && parallel(Some(257)).is_err());
        assert_eq!(parallel(None).unwrap(), 1);
        assert!(embed_inputs(MAX_EMBED_INPUTS).is_ok() && embed_inputs(MAX_EMBED_INPUTS + 1).is_err());
        assert_eq!(render_bytes(1024), 1024 * 64 + (1 << 20));
    }
}
