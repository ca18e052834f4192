//! What a model in the store is made of, ready to run: its GGUF file and what its manifest
//! says about running it (parameters, system message, template, messages).

use crate::manifest::{self, Manifest};
use crate::{Digest, ModelName, Store, StoreError};
use hearth_core::parameters::StoredParameters;
use hearth_core::ChatMessage;
use serde_json::Map;
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct ModelSpec {
    pub path: PathBuf,
    /// The digest of the GGUF: two names with the same one are the same weights.
    pub digest: Option<Digest>,
    pub size: u64,
    /// Ollama-named parameters (`temperature`, `num_ctx`, `stop`, ...), read once.
    pub parameters: StoredParameters,
    pub system: Option<String>,
    /// A Jinja chat template to use instead of the GGUF's.
    pub template: Option<String>,
    pub messages: Vec<ChatMessage>,
    /// The GGUF of its draft model for speculative decoding, if it has one.
    pub draft: Option<PathBuf>,
}

impl ModelSpec {
    /// The Modelfile that would create this model (what `show --modelfile` prints).
    pub fn modelfile(&self, name: &ModelName) -> String {
        let mut text = format!("# Modelfile of {name}\nFROM {}\n", self.path.display());
        if let Some(draft) = &self.draft {
            text.push_str(&format!("DRAFT {}\n", draft.display()));
        }
        for (key, value) in self.parameters.values() {
            for value in hearth_core::parameters::texts(value) {
                text.push_str(&format!("PARAMETER {key} {value}\n"));
            }
        }
        if let Some(template) = &self.template {
            text.push_str(&format!("TEMPLATE \"\"\"{template}\"\"\"\n"));
        }
        if let Some(system) = &self.system {
            text.push_str(&format!("SYSTEM \"\"\"{system}\"\"\"\n"));
        }
        for message in &self.messages {
            text.push_str(&format!("MESSAGE {} \"\"\"{}\"\"\"\n", message.role.as_str(), message.content));
        }
        text
    }
}

impl Store {
    /// The model `name` as its manifest describes it.
    pub fn model_spec(&self, name: &ModelName) -> Result<ModelSpec, StoreError> {
        let manifest = self.manifest(name)?;
        self.spec_of(name, &manifest)
    }

    /// The same, from a manifest already read (`name` is for error messages).
    pub fn spec_of(&self, name: &ModelName, manifest: &Manifest) -> Result<ModelSpec, StoreError> {
        let corrupt = |what: &str, e: serde_json::Error| StoreError::CorruptManifest {
            path: self.root().join("manifests").join(name.manifest_path()),
            detail: format!("the {what} layer is not valid JSON: {e}"),
        };
        let text = |media_type: &str| self.text_layer(manifest, media_type);
        let model = manifest.layer(manifest::MODEL).ok_or_else(|| StoreError::CorruptManifest {
            path: self.root().join("manifests").join(name.manifest_path()),
            detail: "no GGUF layer".into(),
        })?;
        let parameters = match text(manifest::PARAMS)? {
            Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("parameters", e))?,
            None => Map::new(),
        };
        let messages = match text(manifest::MESSAGES)? {
            Some(json) => serde_json::from_str(&json).map_err(|e| corrupt("messages", e))?,
            None => Vec::new(),
        };
        Ok(ModelSpec {
            path: self.blob_path(&model.digest),
            digest: Some(model.digest.clone()),
            size: model.size,
            parameters: StoredParameters::read(parameters),
            system: text(manifest::SYSTEM)?,
            template: text(manifest::TEMPLATE_JINJA)?,
            messages,
            draft: manifest.layer(manifest::DRAFT).map(|layer| self.blob_path(&layer.digest)),
        })
    }
}
