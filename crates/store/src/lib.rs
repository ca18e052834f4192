//! hearth's model store: content-addressed blobs and Ollama-compatible manifests under one
//! root, with names like Ollama's. Writes are atomic; nothing half-written is ever visible.

mod catalog;
mod digest;
mod download;
mod hugging_face;
mod link;
pub mod manifest;
mod modelfile;
mod name;
mod parts;
mod registry;
mod space;
mod spec;
mod store;
#[doc(hidden)]
pub mod test_registry;
mod upload;
mod web;

pub use catalog::{lookup as catalog_lookup, CatalogEntry, CatalogSources, Pip, Source, CATALOG, DEFAULT_MODEL};
pub use digest::Digest;
pub use download::ParallelDownloads;
pub use hugging_face::{HfFile, HUGGING_FACE_HOSTS};
pub use link::Placement;
pub use manifest::{Layer, Manifest, ModelConfig};
pub use modelfile::{Modelfile, ModelfileError};
pub use name::{ModelName, NameError, DEFAULT_HOST, DEFAULT_NAMESPACE, DEFAULT_TAG};
pub use spec::ModelSpec;
pub use store::{Entry, ImportMode, Store};
pub use upload::BlobUpload;
pub use web::{is_gguf_url, name_for_url};

use std::path::{Path, PathBuf};

/// What a pull reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A step: "pulling manifest", "verifying", ...
    Step(&'a str),
    /// Bytes of one blob so far, of `total` where known. `blob` is its digest
    /// (`sha256:...`), or for a plain URL whose digest is not known yet, its file name.
    Bytes { blob: &'a str, done: u64, total: Option<u64> },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("model '{0}' not found; `hearth list` shows the models in the store")]
    NotFound(ModelName),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("blob {0} is missing from the store")]
    MissingBlob(Digest),
    #[error("digest mismatch: expected {expected}, got {actual}; nothing was stored")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("{path}: unreadable manifest: {detail}")]
    CorruptManifest { path: PathBuf, detail: String },
    #[error("not enough free space in {path}: the download needs {needed} more bytes, {available} are free")]
    NoSpace { path: PathBuf, needed: u64, available: u64 },
    #[error("could not pull {name}: {}", reasons.join("; "))]
    Pull { name: String, reasons: Vec<String> },
    #[error("{0}")]
    Source(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl StoreError {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().to_path_buf(), source }
    }
}
