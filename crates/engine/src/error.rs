//! The engine's errors: each one a sentence a user can act on.

use crate::gguf::GgufError;
use crate::template::TemplateError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file not found: {0}")]
    ModelNotFound(PathBuf),
    #[error("{path}: not a model file (it is a directory)")]
    NotAFile { path: PathBuf },
    #[error("{path}: {source}")]
    InvalidModel { path: PathBuf, source: GgufError },
    #[error("{path}: model architecture '{architecture}' is not supported by this build of llama.cpp")]
    UnsupportedArchitecture { path: PathBuf, architecture: String },
    #[error("{path}: llama.cpp could not load the model: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("could not create a llama.cpp context: {0}")]
    Context(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("invalid engine setting: {0}")]
    InvalidSetting(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}
