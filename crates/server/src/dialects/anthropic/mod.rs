//! Anthropic's Messages API: `/v1/messages` and `/v1/messages/count_tokens`, with
//! Anthropic's shapes, event stream and error bodies. The `x-api-key` and
//! `anthropic-version` headers its clients send are accepted.

mod answer;
mod error;
mod messages;
mod translate;
mod wire;

pub use error::AnthropicError;
pub use messages::{count_tokens, messages};
