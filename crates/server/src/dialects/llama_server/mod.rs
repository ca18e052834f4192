//! llama.cpp's server's utility endpoints, which its users script against: `/tokenize`,
//! `/detokenize` and `/apply-template`, in its shapes.

mod routes;
mod wire;

pub use routes::{apply_template, detokenize, tokenize};
