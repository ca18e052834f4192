//! How much memory a model needs to run, from its GGUF header alone: the weights (mapped
//! from the file), the KV cache every slot gets (keys and values for each layer and
//! position, in the cache's types), and every buffer the settings size: llama.cpp's compute
//! graph for a batch (its logits for every token of the batch, attention scores,
//! feed-forward activations), the output logits of every slot, and the batch itself. Used to refuse settings that
//! cannot fit and to decide what must unload first.

use crate::gguf::{GgufHeader, MetaValue};
use crate::load::read_header;
use crate::{EngineError, EngineSettings, ResolvedSettings};
use hearth_core::KvCache;
use std::path::Path;

/// What llama.cpp holds whatever the settings: the thread pool, the graph's metadata,
/// the tokenizer's tables.
const BASE_BYTES: u64 = 64 << 20;

/// Where a model stands against the memory available now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Fits,
    /// Fits once the models loaded now are unloaded.
    FitsAfterUnloading,
    DoesNotFit,
}

impl Verdict {
    /// The one rule `hearth fit` and the server's answer about a model share: `needed` bytes
    /// against what is `available`, and against that plus what unloading would free.
    pub fn of(needed: u64, available: u64, freed_by_unloading: u64) -> Self {
        if needed <= available {
            Verdict::Fits
        } else if needed <= available.saturating_add(freed_by_unloading) {
            Verdict::FitsAfterUnloading
        } else {
            Verdict::DoesNotFit
        }
    }
}

/// What a model needs when loaded with some settings, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The weights, mapped from the file.
    pub weights: u64,
    /// Keys and values of every position of every slot.
    pub kv_cache: u64,
    /// llama.cpp's compute graph for one micro-batch.
    pub compute: u64,
    /// The output logits of every slot, and the batch's arrays.
    pub outputs: u64,
    /// What llama.cpp holds besides its buffers (see [`BASE_BYTES`]).
    pub overhead: u64,
}

impl MemoryEstimate {
    pub fn total(&self) -> u64 {
        self.buffers() + self.overhead
    }

    /// The parts llama.cpp reports as buffers when it loads the model (`model buffer`,
    /// `KV buffer`, `compute buffer`, `output buffer`).
    pub fn buffers(&self) -> u64 {
        self.weights + self.kv_cache + self.compute + self.outputs
    }
}

/// Bytes a model at `path` needs when loaded with `settings` (its draft model included);
/// settings out of bounds are an error, as they would be at load.
pub fn memory_needed(path: &Path, settings: &EngineSettings) -> Result<u64, EngineError> {
    let mut needed = estimate_memory(&read_header(path)?, settings)?.total();
    if let Some(draft) = &settings.draft {
        // A draft model runs beside it, in a context of the same shape with llama.cpp's
        // default cache.
        let same_shape = EngineSettings {
            draft: None,
            lookup: None,
            kv_keys: None,
            kv_values: None,
            flash_attention: None,
            ..settings.clone()
        };
        needed += estimate_memory(&read_header(draft)?, &same_shape)?.buffers();
    }
    Ok(needed)
}

/// The same by part, from a header read from anywhere (a file not downloaded yet).
pub fn estimate_memory(header: &GgufHeader, settings: &EngineSettings) -> Result<MemoryEstimate, EngineError> {
    let info = header.model_info();
    let resolved = settings.resolve(&info, false)?;
    Ok(estimate_resolved(header, &resolved))
}

fn estimate_resolved(header: &GgufHeader, settings: &ResolvedSettings) -> MemoryEstimate {
    let value = |key: &str| header.arch_value(key).and_then(MetaValue::as_u64).unwrap_or(0);
    let context = u64::from(settings.context_size);
    let parallel = u64::from(settings.parallel);
    let vocab = header.model_info().vocab_size.unwrap_or(0);
    // llama.cpp computes a batch in micro-batches of at most this many tokens (hearth sets
    // the micro-batch to the batch), and reserves its graph for the worst case: a logit
    // row (f32) for every token, the widest activations beside it, and the attention mask
    // (f16) over one slot's context. With flash attention, which llama.cpp turns on by
    // default where the backend has it (the CPU does), no attention-score matrix is kept.
    // Checked against the compute buffer llama.cpp reports for both test models.
    let ubatch = u64::from(settings.batch_size);
    let per_token_scratch = 4 * (vocab + 2 * value("feed_forward_length") + value("embedding_length")) + 2 * context;
    // The batch's token, position, sequence and output arrays.
    let batch = 32 * u64::from(settings.batch_size);
    MemoryEstimate {
        weights: header.file_size,
        kv_cache: kv_bytes_per_position(header, &settings.kv_cache) * context * parallel,
        compute: ubatch * per_token_scratch,
        outputs: 4 * vocab * parallel + batch,
        overhead: BASE_BYTES,
    }
}

/// Keys and values of one position over all layers, in the cache's types (a row of each
/// layer's keys, and one of its values, in whole blocks of the type).
fn kv_bytes_per_position(header: &GgufHeader, cache: &KvCache) -> u64 {
    let value = |key: &str| header.arch_value(key).and_then(MetaValue::as_u64);
    let layers = value("block_count").unwrap_or(0);
    let embedding = value("embedding_length").unwrap_or(0);
    let heads = value("attention.head_count").unwrap_or(1).max(1);
    let kv_heads = value("attention.head_count_kv").unwrap_or(heads);
    let key_length = value("attention.key_length").unwrap_or(embedding / heads);
    let value_length = value("attention.value_length").unwrap_or(key_length);
    layers * (cache.keys.bytes(kv_heads * key_length) + cache.values.bytes(kv_heads * value_length))
}

/// Memory the system can give without swapping (`MemAvailable` of /proc/meminfo), if known.
pub fn available_memory() -> Option<u64> {
    kib_field("/proc/meminfo", "MemAvailable").map(|kib| kib * 1024)
}

/// The machine's memory (`MemTotal` of /proc/meminfo), if known.
pub fn total_memory() -> Option<u64> {
    kib_field("/proc/meminfo", "MemTotal").map(|kib| kib * 1024)
}

/// The most memory this process has held resident so far (`VmHWM` of /proc/self/status).
pub fn peak_resident_memory() -> Option<u64> {
    kib_field("/proc/self/status", "VmHWM").map(|kib| kib * 1024)
}

/// Starts the peak of [`peak_resident_memory`] again from what is resident now (Linux 4.0+:
/// writing 5 to `/proc/self/clear_refs`), so one model's peak is not another's. The heap
/// memory freed by an earlier model is first handed back to the system (glibc keeps it
/// otherwise, and it would count as the next model's). Returns whether the kernel allowed it.
pub fn reset_peak_resident_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only returns free heap pages to the system; it takes no pointers.
        unsafe {
            malloc_trim(0);
        }
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `Key:   1234 kB` line of a /proc file, in KiB.
fn kib_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    value.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::{gguf_bytes, Value};
    use hearth_core::{FlashAttention, KvType};

    #[test]
    fn kv_cache_grows_with_layers_heads_context_and_slots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let bytes = gguf_bytes(
            &[
                ("general.architecture", Value::Str("llama")),
                ("llama.context_length", Value::U32(8192)),
                ("llama.block_count", Value::U32(30)),
                ("llama.embedding_length", Value::U32(576)),
                ("llama.attention.head_count", Value::U32(9)),
                ("llama.attention.head_count_kv", Value::U32(3)),
            ],
            &[("w", &[4])],
        );
        std::fs::write(&path, &bytes).unwrap();
        let one = EngineSettings { context_size: Some(1000), batch_size: Some(100), ..Default::default() };
        let four = EngineSettings { parallel: Some(4), ..one.clone() };
        // 30 layers x 3 kv heads x (64 + 64) x 2 bytes = 23,040 bytes per position; no
        // vocabulary or feed-forward size in this header, so a token's scratch is one
        // embedding in f32 and the f16 mask over 1000 positions.
        let scratch = 100 * (4 * 576 + 2 * 1000);
        let base = bytes.len() as u64 + BASE_BYTES + scratch + 32 * 100;
        assert_eq!(memory_needed(&path, &one).unwrap(), base + 23_040 * 1000);
        assert_eq!(memory_needed(&path, &four).unwrap(), base + 23_040 * 4000);
        // A bigger batch costs more, and one out of bounds is refused before anything runs.
        let big_batch = EngineSettings { batch_size: Some(1000), ..one.clone() };
        assert!(memory_needed(&path, &big_batch).unwrap() > memory_needed(&path, &one).unwrap());
        // Quantized caches: a 64-wide head row is 2 blocks, 68 bytes in q8_0 and 36 in q4_0,
        // so a position is 30 x 3 x (68 + 68) = 12,240 bytes, or 30 x 3 x (68 + 36) mixed.
        let q8 = EngineSettings { kv_keys: Some(KvType::Q8_0), kv_values: Some(KvType::Q8_0), ..one.clone() };
        assert_eq!(memory_needed(&path, &q8).unwrap(), base + 12_240 * 1000);
        let mixed = EngineSettings { kv_values: Some(KvType::Q4_0), ..q8.clone() };
        assert_eq!(memory_needed(&path, &mixed).unwrap(), base + 9_360 * 1000);
        let no_flash = EngineSettings { flash_attention: Some(FlashAttention::Off), ..mixed };
        let refused = memory_needed(&path, &no_flash).unwrap_err().to_string();
        assert!(refused.contains("needs flash attention"), "{refused}");
        let bomb = EngineSettings { batch_size: Some(1_000_000_000), ..one.clone() };
        assert!(matches!(memory_needed(&path, &bomb), Err(EngineError::InvalidSetting(_))));
        assert!(available_memory().is_some_and(|m| m > 0));
        assert!(total_memory().is_some_and(|total| available_memory().is_some_and(|a| a <= total)));
        assert!(peak_resident_memory().is_some_and(|m| m > 0));
    }
}
