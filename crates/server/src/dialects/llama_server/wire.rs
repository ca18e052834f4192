//! llama.cpp's server's utility bodies: `/tokenize`, `/detokenize`, `/apply-template`. hearth
//! serves several models, so each also takes a `model` (optional while one is loaded).

use hearth_core::ChatMessage;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
pub struct TokenizeBody {
    pub model: Option<String>,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub add_special: bool,
    #[serde(default = "yes")]
    pub parse_special: bool,
    #[serde(default)]
    pub with_pieces: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
pub struct Tokenized {
    pub tokens: Tokens,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum Tokens {
    Ids(Vec<u32>),
    WithPieces(Vec<TokenPiece>),
}

#[derive(Serialize)]
pub struct TokenPiece {
    pub id: u32,
    pub piece: PieceText,
}

/// A piece as text, or as its bytes when they are not UTF-8 alone (part of a character).
#[derive(Serialize)]
#[serde(untagged)]
pub enum PieceText {
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Deserialize)]
pub struct DetokenizeBody {
    pub model: Option<String>,
    #[serde(default)]
    pub tokens: Vec<u32>,
}

#[derive(Serialize)]
pub struct Detokenized {
    pub content: String,
}

#[derive(Deserialize)]
pub struct ApplyTemplateBody {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
}

#[derive(Serialize)]
pub struct Applied {
    pub prompt: String,
}
