//! What we know about a model file from its GGUF header, without loading its weights.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `general.architecture`, e.g. `llama`, `gemma3`.
    pub architecture: String,
    /// `general.name`, when the file has one.
    pub name: Option<String>,
    /// Total number of weights across all tensors.
    pub parameter_count: u64,
    /// The file's overall quantization (`general.file_type`), e.g. `Q4_K_M`.
    pub quantization: String,
    /// The context length the model was trained with.
    pub context_length: Option<u64>,
    /// Tokens in the vocabulary.
    pub vocab_size: Option<u64>,
    /// The Jinja chat template stored in the file (`tokenizer.chat_template`).
    pub chat_template: Option<String>,
    /// Size of the file in bytes.
    pub file_size: u64,
}

impl ModelInfo {
    /// "135M", "1.2B": the way model sizes are usually written.
    pub fn parameter_size(&self) -> String {
        let n = self.parameter_count as f64;
        if n >= 1e9 {
            format!("{:.1}B", n / 1e9)
        } else if n >= 1e6 {
            format!("{:.0}M", n / 1e6)
        } else {
            format!("{:.0}K", n / 1e3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(parameter_count: u64) -> ModelInfo {
        ModelInfo {
            architecture: "llama".into(),
            name: None,
            parameter_count,
            quantization: "Q4_1".into(),
            context_length: None,
            vocab_size: None,
            chat_template: None,
            file_size: 0,
        }
    }

    #[test]
    fn parameter_size_is_human_readable() {
        assert_eq!(info(134_515_008).parameter_size(), "135M");
        assert_eq!(info(268_098_176).parameter_size(), "268M");
        assert_eq!(info(7_241_732_096).parameter_size(), "7.2B");
        assert_eq!(info(500_000).parameter_size(), "500K");
    }
}
