//! The service layer's one error type, and the kinds every dialect maps to its own status
//! codes and error shapes.

use crate::models::ModelError;
use crate::residency::ResidencyError;
use axum::http::StatusCode;
use hearth_core::GenerateError;
use hearth_store::{ModelName, StoreError};

/// What went wrong, as far as a client needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or asks for something out of bounds.
    InvalidRequest,
    /// The model (or blob) it names is not in the store.
    NotFound,
    /// The prompt does not fit the model's context.
    ContextOverflow,
    /// A body or upload over its limit.
    TooLarge,
    /// Slots, queue or memory are taken by requests now running: try again shortly.
    Overloaded,
    /// The model cannot fit in this machine's memory with these settings, even alone.
    InsufficientMemory,
    /// The disk is too full to store what was asked.
    InsufficientStorage,
    /// The server a pull fetches from failed.
    Upstream,
    /// The model's engine stopped (an unload or shutdown) before the answer was done.
    EngineStopped,
    /// hearth's own failure: the client is told only that, the log has the detail.
    Internal,
    /// Refused by the HTTP layer before any service ran (no such route, a method not
    /// allowed, a timeout, a cross-origin call), with the status HTTP's rules give it.
    Protocol(StatusCode),
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(String),
    /// The name as the client wrote it.
    #[error("model '{0}' not found, try pulling it first")]
    ModelNotFound(String),
    /// Something else a request names that is not here (a kept response, ...).
    #[error("{0}")]
    NotFound(String),
    /// Boxed: a model name is large, and this error travels in every `Result`.
    #[error(transparent)]
    Residency(Box<ResidencyError>),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{message}")]
    Protocol { status: StatusCode, message: String },
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn protocol(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Protocol { status, message: message.into() }
    }

    /// This error, from work on the model `name`: the store's "no such manifest" is
    /// [`Self::ModelNotFound`], naming it.
    pub fn about_model(self, name: &ModelName) -> Self {
        match self {
            Self::Store(StoreError::NotFound(_)) => Self::ModelNotFound(name.to_string()),
            other => other,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidRequest,
            Self::ModelNotFound(_) | Self::NotFound(_) => ErrorKind::NotFound,
            Self::Residency(e) => match e.as_ref() {
                ResidencyError::Busy { .. } | ResidencyError::AllBusy { .. } | ResidencyError::NoRoomNow { .. } => {
                    ErrorKind::Overloaded
                }
                ResidencyError::DoesNotFit { .. } => ErrorKind::InsufficientMemory,
                ResidencyError::InvalidSetting { .. } => ErrorKind::InvalidRequest,
                ResidencyError::LoadFailed { .. } => ErrorKind::Internal,
                ResidencyError::ShuttingDown => ErrorKind::EngineStopped,
            },
            Self::Generate(e) => match e {
                GenerateError::PromptTooLong { .. } => ErrorKind::ContextOverflow,
                GenerateError::InvalidRequest(_) => ErrorKind::InvalidRequest,
                GenerateError::EngineStopped(_) => ErrorKind::EngineStopped,
                GenerateError::Backend(_) => ErrorKind::Internal,
            },
            Self::Store(e) => store_kind(e),
            Self::Model(e) => match e {
                ModelError::Name(_) | ModelError::NotGguf { .. } | ModelError::From { .. } | ModelError::Invalid(_) => {
                    ErrorKind::InvalidRequest
                }
                ModelError::Store(e) => store_kind(e),
            },
            Self::Protocol { status, .. } => ErrorKind::Protocol(*status),
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// What the client is told: the error itself, except for hearth's own failures,
    /// whose detail (paths, llama.cpp's words) goes to the log only.
    pub fn client_message(&self) -> String {
        if self.kind() == ErrorKind::Internal {
            tracing::error!("{self}");
            let failed = match self {
                Self::Residency(e) => match e.as_ref() {
                    ResidencyError::LoadFailed { model, .. } => format!("loading {model} failed"),
                    _ => "hearth failed on this request".to_string(),
                },
                _ => "hearth failed on this request".to_string(),
            };
            return format!("{failed}; the server's log has the details");
        }
        self.to_string()
    }
}

impl From<ResidencyError> for ServiceError {
    fn from(error: ResidencyError) -> Self {
        Self::Residency(Box::new(error))
    }
}

fn store_kind(error: &StoreError) -> ErrorKind {
    match error {
        StoreError::NotFound(_) | StoreError::MissingBlob(_) | StoreError::NoSuchModel { .. } => ErrorKind::NotFound,
        StoreError::Upstream { .. } => ErrorKind::Upstream,
        StoreError::UploadTooLarge { .. } => ErrorKind::TooLarge,
        StoreError::NoSpace { .. } => ErrorKind::InsufficientStorage,
        StoreError::DigestMismatch { .. } | StoreError::Name(_) => ErrorKind::InvalidRequest,
        _ => ErrorKind::Internal,
    }
}
