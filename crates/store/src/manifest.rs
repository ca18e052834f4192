//! Manifests in the registry format Ollama uses: a config blob and typed layers (the GGUF,
//! parameters, template, system prompt, messages, license), so a store written by one can be
//! read by the other.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
pub const MODEL: &str = "application/vnd.ollama.image.model";
pub const PARAMS: &str = "application/vnd.ollama.image.params";
/// Ollama's templates are Go templates; hearth keeps them for compatibility, never runs them.
pub const TEMPLATE: &str = "application/vnd.ollama.image.template";
/// A Jinja chat template (a Modelfile's TEMPLATE in hearth), used instead of the GGUF's.
pub const TEMPLATE_JINJA: &str = "application/vnd.hearth.template.jinja";
pub const SYSTEM: &str = "application/vnd.ollama.image.system";
pub const MESSAGES: &str = "application/vnd.ollama.image.messages";
pub const LICENSE: &str = "application/vnd.ollama.image.license";
/// A draft model's GGUF, for speculative decoding (a Modelfile's DRAFT in hearth).
pub const DRAFT: &str = "application/vnd.hearth.draft";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    pub config: Layer,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

impl Manifest {
    pub fn new(config: Layer, layers: Vec<Layer>) -> Self {
        Self { schema_version: 2, media_type: MANIFEST_MEDIA_TYPE.into(), config, layers }
    }

    pub fn layer(&self, media_type: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.media_type == media_type)
    }

    /// Every blob the manifest refers to, the config included.
    pub fn digests(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.config.digest).chain(self.layers.iter().map(|l| &l.digest))
    }

    /// Total bytes of the model's blobs.
    pub fn size(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// The config blob: what `list` shows without opening the GGUF.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub model_format: String,
    #[serde(default)]
    pub model_family: String,
    /// Parameter size, e.g. "135M".
    #[serde(default)]
    pub model_type: String,
    /// Quantization, e.g. "Q4_1".
    #[serde(default)]
    pub file_type: String,
}
