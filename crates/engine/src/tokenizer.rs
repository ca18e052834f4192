//! A model's vocabulary on its own (no weights): text to token ids and back, for callers
//! that count or inspect tokens without running the model.

use crate::error::EngineError;
use crate::load::ModelFile;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::path::Path;

pub struct Tokenizer {
    model: LlamaModel,
}

impl Tokenizer {
    /// Loads only the vocabulary of the GGUF model at `path`.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let model = ModelFile::open(path)?.load(&LlamaModelParams::default().with_vocab_only(true))?;
        Ok(Self { model })
    }

    /// Token ids for `text`. `add_special` adds the BOS token where the model wants one;
    /// special-token text such as `<|im_start|>` becomes its token either way.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.model.vocab().tokenize(text.as_bytes(), add_special, true).into_iter().map(|t| t.0 as u32).collect()
    }

    /// The bytes of one token, as the engine streams them. Byte-level vocabularies have
    /// tokens that hold only part of a UTF-8 character.
    pub fn piece(&self, token: u32) -> Vec<u8> {
        self.model.vocab().token_to_piece(LlamaToken(token as i32), false, None)
    }
}
