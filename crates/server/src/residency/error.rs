//! Why residency could not give a request its model.

use hearth_engine::EngineError;
use hearth_store::ModelName;

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

#[derive(Debug, thiserror::Error)]
pub enum ResidencyError {
    #[error(
        "the server is busy: {requests} requests are running or waiting for {model} \
         ({slots} slots, HEARTH_MAX_QUEUE {queue}); try again shortly"
    )]
    Busy { model: ModelName, requests: usize, slots: u32, queue: usize },
    #[error("{loaded} models are loaded and all are answering requests (HEARTH_MAX_LOADED_MODELS); try again shortly")]
    AllBusy { loaded: usize },
    /// Even with nothing else loaded.
    #[error(
        "{model} needs {:.1} GiB of memory with {slots} slots of context, but {:.1} GiB are available; \
         lower num_ctx or HEARTH_NUM_PARALLEL, or free memory",
        gib(*.needed), gib(*.available)
    )]
    DoesNotFit { model: ModelName, needed: u64, available: u64, slots: u32 },
    /// Once the models now answering are done.
    #[error(
        "{model} needs {:.1} GiB of memory, {:.1} GiB are available, and the loaded models \
         are all answering; try again shortly",
        gib(*.needed), gib(*.available)
    )]
    NoRoomNow { model: ModelName, needed: u64, available: u64 },
    /// A setting stored with the model is out of bounds: the model's owner can fix it.
    #[error("{model}: {source}")]
    InvalidSetting { model: ModelName, source: Box<EngineError> },
    #[error("loading {model} failed: {source}")]
    LoadFailed { model: ModelName, source: Box<EngineError> },
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl ResidencyError {
    /// An engine's refusal to load `model`.
    pub(crate) fn load(model: &ModelName, source: EngineError) -> Self {
        let model = model.clone();
        match source {
            EngineError::InvalidSetting(_) => Self::InvalidSetting { model, source: Box::new(source) },
            source => Self::LoadFailed { model, source: Box::new(source) },
        }
    }
}
