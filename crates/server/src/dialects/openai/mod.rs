//! OpenAI's dialect: `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings` and
//! `/v1/models`, with OpenAI's shapes, streaming and error bodies (which the Responses
//! API's folder shares).

mod answer;
mod completions;
mod embeddings;
mod error;
mod models;
mod translate;
mod wire;

pub use completions::{chat_completions, completions};
pub use embeddings::embeddings;
pub use error::{body as error_body, OpenAiError};
pub use models::{models, one as model};
