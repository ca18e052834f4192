//! Ollama's dialect: `/api/generate` and `/api/chat`, embeddings, the model endpoints and
//! those that change the store, with Ollama's field names and error shape.

mod embed;
mod error;
mod generate;
mod models;
mod store;
mod wire;

pub use embed::{embed, embeddings};
pub use error::OllamaError;
pub use generate::{chat, generate};
pub use models::{copy, delete, ps, show, tags, version};
pub use store::{create, has_blob, pull, upload_blob};
