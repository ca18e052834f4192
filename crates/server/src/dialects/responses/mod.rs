//! OpenAI's Responses API: `/v1/responses` (create, streamed or not) and
//! `/v1/responses/{id}` (get, delete), with responses kept in a bounded store so that
//! `previous_response_id` continues a conversation. Errors take OpenAI's shape.

mod answer;
mod routes;
mod stored;
mod translate;
mod wire;

pub use routes::{create, delete, get};
pub use stored::Responses;
