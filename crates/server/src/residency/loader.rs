//! What residency needs from an engine: its memory estimate, loading it, stopping it. The
//! real one loads llama.cpp engines; tests put a fake in its place.

use hearth_core::EnergyMeter;
use hearth_engine::{Engine, EngineError, EngineSettings, LoadOptions, PromptCacheConfig};
use std::path::Path;
use std::sync::Arc;

/// Makes the energy meter each loaded engine reads.
pub type MeterFactory = Arc<dyn Fn() -> Option<Box<dyn EnergyMeter>> + Send + Sync>;

/// Loads models for [`super::Residency`]. Both calls block (they read files and build
/// llama.cpp state): residency makes them on blocking threads.
pub trait Loader: Send + Sync + 'static {
    type Engine: Send + Sync + 'static;

    /// Bytes of memory the model at `path` takes loaded with `settings`.
    fn memory_needed(&self, path: &Path, settings: &EngineSettings) -> Result<u64, EngineError>;

    fn load(&self, path: &Path, settings: &EngineSettings) -> Result<Self::Engine, EngineError>;

    /// Ends every request the engine runs or holds, at its next step (at shutdown).
    fn stop(engine: &Self::Engine);

    /// Tokens of context the engine runs with, defaults resolved.
    fn context_size(engine: &Self::Engine) -> u32;
}

/// llama.cpp engines, each with an energy meter of its own, saving prompt caches where
/// `prompt_cache` says.
pub struct LlamaLoader {
    pub meter: MeterFactory,
    pub prompt_cache: Option<PromptCacheConfig>,
}

impl Loader for LlamaLoader {
    type Engine = Engine;

    fn memory_needed(&self, path: &Path, settings: &EngineSettings) -> Result<u64, EngineError> {
        hearth_engine::memory_needed(path, settings)
    }

    fn load(&self, path: &Path, settings: &EngineSettings) -> Result<Engine, EngineError> {
        let options = LoadOptions { meter: (self.meter)(), prompt_cache: self.prompt_cache.clone() };
        Engine::load_with(path, settings, options)
    }

    fn stop(engine: &Engine) {
        engine.stop();
    }

    fn context_size(engine: &Engine) -> u32 {
        engine.settings().context_size
    }
}
