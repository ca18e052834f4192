//! hearth's engine: the only crate that talks to llama.cpp. It reads GGUF files, renders
//! chat templates, and runs each loaded model on its own thread, answering requests with a
//! stream of events on each request's own channel.

mod attribution;
mod draft_model;
mod embedder;
mod engine;
mod error;
mod ffi_guard;
pub mod gguf;
pub mod grammar;
pub mod limits;
mod llama_log;
mod load;
mod lookup;
mod memory;
mod prepare;
mod prompt_cache;
pub mod quality;
pub mod quantize;
mod sampler;
mod scheduler;
mod scorer;
mod stop;
pub mod template;
#[doc(hidden)]
pub mod test_models;
mod text;
mod tokenizer;
mod utf8_stream;

pub use embedder::normalize;
pub use engine::{
    check_draft, physical_cores, Engine, EngineSettings, LoadOptions, ResolvedSettings, DEFAULT_BATCH_SIZE,
    DEFAULT_CONTEXT_SIZE, DEFAULT_DRAFT_MAX, DEFAULT_MODEL_DRAFT_MAX,
};
pub use error::EngineError;
pub use gguf::{GgufError, GgufHeader};
pub use memory::{
    available_memory, estimate_memory, memory_needed, peak_resident_memory, reset_peak_resident_memory, total_memory,
    MemoryEstimate, Verdict,
};
pub use prepare::{Cancellation, Prepared};
pub use prompt_cache::PromptCacheConfig;
pub use scorer::Scored;
pub use template::{ChatTemplate, RenderLimits, TemplateError};
pub use tokenizer::Tokenizer;
pub use utf8_stream::Utf8Stream;

/// The llama.cpp revision this engine was built with, for reports.
pub const LLAMA_CPP_CRATE: &str = "llama-cpp-2 0.1.160";

/// Whether this build of llama.cpp can offload layers to a GPU it found (a GPU backend was
/// built in and a device answered).
pub fn gpu_offload_available() -> bool {
    load::backend().supports_gpu_offload()
}
