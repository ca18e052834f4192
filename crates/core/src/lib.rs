//! Vocabulary types shared by every hearth crate: what a generation request asks for, what
//! flows back while it runs (energy included) and the whole answer it adds up to, and what
//! we know about a model file. No I/O (but where hearth's home is, and how a file is
//! replaced whole), no behaviour beyond validation and collecting a stream, so every edge
//! (CLI, HTTP dialects, router) speaks the same language.

pub mod clock;
mod collect;
mod energy;
mod event;
pub mod files;
pub mod hex;
pub mod home;
mod kv;
mod model;
pub mod parameters;
mod request;
pub mod think;

pub use collect::{collect, Answer, Collector, Fed};
pub use energy::{EnergyMeter, EnergyPrices, EnergyReport, EnergySource};
pub use event::{FinishReason, GenerateError, StreamEvent, Timings, TokenLogprob, TopLogprob, Usage};
pub use kv::{FlashAttention, KvCache, KvType};
pub use model::ModelInfo;
pub use request::{
    check_top_logprobs, ChatMessage, EmbedInput, EmbedRequest, Embeddings, GenerateRequest, Prompt, Role,
    SamplingParams, ToolCall, MAX_TOP_LOGPROBS,
};
