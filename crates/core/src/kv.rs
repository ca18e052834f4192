//! The KV cache's settings, as every layer names them: the element type of keys and of
//! values (llama.cpp's `-ctk`/`-ctv`, Ollama's `OLLAMA_KV_CACHE_TYPE`) and whether flash
//! attention runs (llama.cpp's `-fa auto|on|off`).

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// The element type of a KV cache's keys or values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum KvType {
    /// llama.cpp's default: exact for every model.
    #[default]
    #[serde(rename = "f16")]
    F16,
    /// Half the memory of f16, at a small loss.
    #[serde(rename = "q8_0")]
    Q8_0,
    /// A little over a quarter of the memory of f16, at a larger loss.
    #[serde(rename = "q4_0")]
    Q4_0,
}

impl KvType {
    pub const ALL: [KvType; 3] = [KvType::F16, KvType::Q8_0, KvType::Q4_0];

    pub fn as_str(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::Q8_0 => "q8_0",
            KvType::Q4_0 => "q4_0",
        }
    }

    /// Bytes per block and elements per block: ggml stores q8_0 and q4_0 in blocks of 32
    /// elements with an f16 scale each.
    pub fn block(self) -> (u64, u64) {
        match self {
            KvType::F16 => (2, 1),
            KvType::Q8_0 => (34, 32),
            KvType::Q4_0 => (18, 32),
        }
    }

    /// Bytes `elements` values take (whole blocks).
    pub fn bytes(self, elements: u64) -> u64 {
        let (bytes, per_block) = self.block();
        elements.div_ceil(per_block) * bytes
    }

    pub fn is_quantized(self) -> bool {
        self != KvType::F16
    }
}

impl fmt::Display for KvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KvType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let wanted = text.trim().to_ascii_lowercase();
        KvType::ALL
            .into_iter()
            .find(|t| t.as_str() == wanted)
            .ok_or_else(|| format!("'{text}' is not a KV cache type: use f16, q8_0 or q4_0"))
    }
}

/// Whether llama.cpp computes attention with its fused kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FlashAttention {
    /// llama.cpp decides per model and backend (on for the CPU): its default.
    #[default]
    Auto,
    On,
    Off,
}

impl FlashAttention {
    pub fn as_str(self) -> &'static str {
        match self {
            FlashAttention::Auto => "auto",
            FlashAttention::On => "on",
            FlashAttention::Off => "off",
        }
    }
}

impl fmt::Display for FlashAttention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FlashAttention {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(FlashAttention::Auto),
            "on" | "true" | "1" | "enabled" => Ok(FlashAttention::On),
            "off" | "false" | "0" | "disabled" => Ok(FlashAttention::Off),
            _ => Err(format!("'{text}' is not a flash attention setting: use auto, on or off")),
        }
    }
}

/// The KV cache a model runs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct KvCache {
    pub keys: KvType,
    pub values: KvType,
    pub flash_attention: FlashAttention,
}

impl KvCache {
    /// The one rule llama.cpp enforces when it makes a context: a quantized V cache is read
    /// only by the flash-attention kernel.
    pub fn check(&self) -> Result<(), String> {
        if self.values.is_quantized() && self.flash_attention == FlashAttention::Off {
            return Err(format!(
                "a {} V cache needs flash attention: use --flash-attn on or auto, or an f16 V cache",
                self.values
            ));
        }
        Ok(())
    }

    /// `f16`, or `q8_0/f16` when keys and values differ: how reports name the cache.
    pub fn label(&self) -> String {
        if self.keys == self.values {
            self.keys.to_string()
        } else {
            format!("{}/{}", self.keys, self.values)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_by_llama_cpp_s_names_and_size_by_ggml_s_blocks() {
        assert_eq!("Q8_0".parse::<KvType>(), Ok(KvType::Q8_0));
        assert!("q5_1".parse::<KvType>().unwrap_err().contains("f16, q8_0 or q4_0"));
        // One 64-wide head: 128 bytes in f16, 2 blocks of 34 in q8_0, 2 of 18 in q4_0.
        assert_eq!([KvType::F16, KvType::Q8_0, KvType::Q4_0].map(|t| t.bytes(64)), [128, 68, 36]);
        assert_eq!(KvType::Q4_0.bytes(33), 36, "a partial block takes a whole one");
    }

    #[test]
    fn a_quantized_v_cache_needs_flash_attention() {
        let cache = KvCache { values: KvType::Q4_0, flash_attention: FlashAttention::Off, ..KvCache::default() };
        assert!(cache.check().unwrap_err().contains("needs flash attention"));
        assert!(KvCache { flash_attention: FlashAttention::Auto, ..cache }.check().is_ok());
        let keys_only = KvCache { keys: KvType::Q8_0, flash_attention: FlashAttention::Off, ..KvCache::default() };
        assert!(keys_only.check().is_ok(), "llama.cpp reads a quantized K cache without it");
        assert_eq!(keys_only.label(), "q8_0/f16");
        assert_eq!(KvCache::default().label(), "f16");
        assert_eq!("ON".parse::<FlashAttention>(), Ok(FlashAttention::On));
    }
}
