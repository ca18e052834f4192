//! The KV-cache flags `hearth run` and `hearth serve` share: the cache's types (as
//! llama.cpp's `-ctk`/`-ctv`, and Ollama's `OLLAMA_KV_CACHE_TYPE` for both) and flash
//! attention, and the engine settings they make.

use anyhow::{Context, Result};
use hearth_core::{FlashAttention, KvType};
use hearth_engine::EngineSettings;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct KvArgs {
    /// KV cache type for keys and values: f16, q8_0 (half the memory) or q4_0 [default: f16,
    /// or the model's `kv_cache_type`; also read from OLLAMA_KV_CACHE_TYPE]
    #[arg(long, value_name = "TYPE", env = "HEARTH_KV_CACHE_TYPE", value_parser = kv_type)]
    kv_type: Option<KvType>,
    /// KV cache type for keys only (llama.cpp's -ctk), over --kv-type
    #[arg(long, value_name = "TYPE", visible_alias = "ctk", value_parser = kv_type)]
    cache_type_k: Option<KvType>,
    /// KV cache type for values only (llama.cpp's -ctv), over --kv-type; a quantized one
    /// needs flash attention
    #[arg(long, value_name = "TYPE", visible_alias = "ctv", value_parser = kv_type)]
    cache_type_v: Option<KvType>,
    /// Flash attention: auto (llama.cpp decides; on for the CPU), on or off
    #[arg(long, value_name = "WHEN", env = "HEARTH_FLASH_ATTENTION", value_parser = flash_attention)]
    flash_attn: Option<FlashAttention>,
}

pub fn kv_type(text: &str) -> Result<KvType, String> {
    text.parse()
}

pub fn flash_attention(text: &str) -> Result<FlashAttention, String> {
    text.parse()
}

/// Ollama's name for the cache type of both, when hearth's is not set.
fn ollama_kv_type() -> Result<Option<KvType>> {
    match std::env::var("OLLAMA_KV_CACHE_TYPE") {
        Ok(text) if !text.trim().is_empty() => {
            Ok(Some(text.parse().map_err(anyhow::Error::msg).context("OLLAMA_KV_CACHE_TYPE")?))
        }
        _ => Ok(None),
    }
}

impl KvArgs {
    /// The engine settings these flags set; unset ones stay `None`, for what the model was
    /// stored with to fill.
    pub fn settings(&self) -> Result<EngineSettings> {
        let both = match self.kv_type {
            Some(kind) => Some(kind),
            None => ollama_kv_type()?,
        };
        Ok(EngineSettings {
            kv_keys: self.cache_type_k.or(both),
            kv_values: self.cache_type_v.or(both),
            flash_attention: self.flash_attn,
            ..EngineSettings::default()
        })
    }
}
