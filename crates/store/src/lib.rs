//! hearth's model store: content-addressed blobs and Ollama-compatible manifests under one
//! root, with names like Ollama's. Writes are atomic; nothing half-written is ever visible.

mod catalog;
mod digest;
mod download;
mod http;
mod hugging_face;
mod link;
pub mod manifest;
mod modelfile;
mod name;
mod parts;
mod registry;
mod remote;
mod retry;
mod space;
mod spec;
mod store;
mod temp;
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
pub use remote::{catalog_gguf, gguf_at_url, hugging_face_ggufs, registry_gguf, RangeReader, RemoteGguf};
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
    /// A registry (or Hugging Face) answered 404 for the model itself: it has no such model.
    #[error("model '{name}' not found on {host} (HTTP 404); check the name and the tag")]
    NoSuchModel { name: String, host: String },
    /// A server hearth fetched from on the user's behalf failed: `host` is the upstream
    /// (`name[:port]`), `url` the address asked for without credentials or query string.
    #[error("{}", .failure.describe(.url))]
    Upstream { host: String, url: String, failure: UpstreamFailure },
    /// An upload (`POST /api/blobs/:digest`) passed the most the store accepts.
    #[error("the upload is larger than {limit} bytes, {why}; nothing was stored")]
    UploadTooLarge { limit: u64, why: String },
    #[error("{0}")]
    Source(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// How an upstream failed; see [`StoreError::Upstream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// No HTTP answer came: the connection was refused, timed out or failed TLS, or the
    /// name did not resolve. These are one failure on purpose: telling them apart would
    /// let a client map which ports of the server's network are open.
    Unreachable,
    /// The upstream answered with this HTTP status.
    Status(u16),
    /// The connection kept breaking off in the middle of the body.
    BrokeOff,
    /// A redirect to `to`, a loopback, private or link-local address, from a URL whose host
    /// is not such an address.
    RedirectRefused {
        to: String,
    },
    TooManyRedirects,
    /// The upstream sent more bytes than the size it declared (in a manifest, a listing, a
    /// `Content-Length`); the download was stopped there.
    TooLarge {
        declared: u64,
    },
    /// The whole blob is not the size it was declared to be.
    WrongSize {
        declared: u64,
        actual: u64,
    },
    /// An answer that is not what the protocol promises (a manifest that is not JSON, ...).
    Invalid(String),
}

impl UpstreamFailure {
    /// A sentence about the upstream at `url`.
    pub fn describe(&self, url: &str) -> String {
        match self {
            Self::Unreachable => format!("could not reach {url}"),
            Self::Status(status @ (401 | 403)) => format!("{url} requires authentication (HTTP {status})"),
            Self::Status(404) => format!("not found: {url} (HTTP 404)"),
            Self::Status(status) => format!("{url} answered HTTP {status}"),
            Self::BrokeOff => {
                format!("the download of {url} kept breaking off; run the pull again to resume it")
            }
            Self::RedirectRefused { to } => format!(
                "{url} redirected to {to}, a loopback, private or link-local address, which hearth does not follow from a public address"
            ),
            Self::TooManyRedirects => format!("{url} redirected more than 10 times"),
            Self::TooLarge { declared } => format!(
                "{url} sent more than the {declared} bytes it was declared to be; the download was stopped and nothing was stored"
            ),
            Self::WrongSize { declared, actual } => {
                format!("{url} is {actual} bytes, not the {declared} it was declared to be; nothing was stored")
            }
            Self::Invalid(why) => format!("{url}: {why}"),
        }
    }
}

impl StoreError {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().to_path_buf(), source }
    }
}
