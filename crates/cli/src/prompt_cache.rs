//! The `--prompt-cache` flag `hearth run` and `hearth serve` share: how much disk long
//! prompts' saved caches may take, in a directory beside the model store.

use hearth_engine::PromptCacheConfig;
use hearth_store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct PromptCacheArgs {
    /// Disk for saved prompt caches (a long prompt's KV state, restored when a later request
    /// starts with it, after a restart too): "2GiB", "500MiB", bytes, or 0 for none
    #[arg(long, value_name = "SIZE", env = "HEARTH_PROMPT_CACHE", default_value = "2GiB", value_parser = size)]
    prompt_cache: u64,
}

impl PromptCacheArgs {
    /// Where and how much, in the store's directory (`$HEARTH_MODELS`); `None` when it is off.
    pub fn config(&self) -> Option<PromptCacheConfig> {
        (self.prompt_cache > 0).then(|| PromptCacheConfig {
            dir: Store::default_root().join("prompt-cache"),
            max_bytes: self.prompt_cache,
        })
    }
}

/// A size in bytes: a number, with an optional unit (KiB, MiB, GiB, TiB, or their
/// one-letter forms K, M, G, T: all powers of 1024).
fn size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text}: expected a size such as 2GiB, 500MiB or 0")),
    };
    let number: f64 = number.parse().map_err(|_| format!("{text}: expected a size such as 2GiB, 500MiB or 0"))?;
    let bytes = number * (1u64 << shift) as f64;
    if !(0.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("{text}: too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size("2GiB"), Ok(2 << 30));
        assert_eq!(size("500 MiB"), Ok(500 << 20));
        assert_eq!(size("1.5G"), Ok(3 << 29));
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("0"), Ok(0));
        assert!(size("lots").is_err() && size("2 parsecs").is_err() && size("").is_err());
    }
}
