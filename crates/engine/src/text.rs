//! A loaded model's text, without running it: the tokens of a text and the text of tokens,
//! and the prompt its chat template makes of a conversation (what llama.cpp's server
//! answers at `/tokenize`, `/detokenize` and `/apply-template`).

use crate::engine::Engine;
use crate::limits;
use crate::prepare::Cancellation;
use crate::prepare::{self, in_vocabulary};
use crate::template::RenderLimits;
use hearth_core::{ChatMessage, GenerateError};

impl Engine {
    /// Token ids of `text`. `add_special` adds the BOS token where the model wants one;
    /// `parse_special` makes special-token text (`<|im_start|>`) its token, not plain text.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let vocab = self.model().llama.vocab();
        vocab.tokenize(text.as_bytes(), add_special, parse_special).into_iter().map(|t| t.0 as u32).collect()
    }

    /// Token ids of a prompt's text, exactly as an answer to it would see them.
    pub fn prompt_tokens(&self, text: &str) -> Vec<u32> {
        prepare::tokenize(self.model(), text).into_iter().map(|t| t.0 as u32).collect()
    }

    /// The bytes of each token, special tokens as their text. Byte-level vocabularies have
    /// tokens that hold only part of a UTF-8 character. An id outside the vocabulary is an
    /// error naming it.
    pub fn token_bytes(&self, ids: &[u32]) -> Result<Vec<Vec<u8>>, GenerateError> {
        let llama = &self.model().llama;
        ids.iter().map(|&id| Ok(llama.vocab().token_to_piece(in_vocabulary(llama, id)?, true, None))).collect()
    }

    /// The text of `ids` (bytes that are not UTF-8 become U+FFFD).
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, GenerateError> {
        Ok(String::from_utf8_lossy(&self.token_bytes(ids)?.concat()).into_owned())
    }

    /// The prompt the model's chat template makes of `messages`, ending with the cue for the
    /// assistant's turn, rendered under a request's limits and given up once `cancel` says so.
    pub fn apply_template(&self, messages: &[ChatMessage], cancel: &Cancellation) -> Result<String, GenerateError> {
        let limits = RenderLimits::new(limits::render_bytes(self.settings().context_size), cancel);
        self.model()
            .template
            .render_limited(messages, &[], None, &limits)
            .map_err(|e| GenerateError::InvalidRequest(e.to_string()))
    }
}
