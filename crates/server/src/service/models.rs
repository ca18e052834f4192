//! Model operations, whatever the dialect: what the store holds, what one model is, what
//! is loaded, removing and copying. Each dialect words the answers its own way.

use super::{Service, ServiceError};
use hearth_core::ModelInfo;
use hearth_store::{manifest, ModelConfig, ModelName, ModelSpec};
use std::time::{Instant, SystemTime};

/// A model in the store.
pub struct StoredModel {
    pub name: ModelName,
    pub modified: SystemTime,
    /// Bytes of all its layers.
    pub size: u64,
    /// Its manifest's digest, without `sha256:`.
    pub digest: String,
    pub config: ModelConfig,
}

/// Everything `show` tells of a model.
pub struct ModelDescription {
    pub spec: ModelSpec,
    /// From its GGUF's header.
    pub info: ModelInfo,
    pub config: ModelConfig,
    pub license: Option<String>,
    /// When it was last written (created, pulled or copied).
    pub modified: SystemTime,
}

impl ModelDescription {
    /// The chat template the model runs with: its own, or the GGUF's.
    pub fn template(&self) -> Option<&str> {
        self.spec.template.as_deref().or(self.info.chat_template.as_deref())
    }
}

/// A loaded model.
pub struct RunningModel {
    pub name: ModelName,
    pub size: u64,
    /// Its GGUF's digest, without `sha256:`.
    pub digest: Option<String>,
    pub config: ModelConfig,
    /// When it unloads; `None`: never.
    pub expires: Option<SystemTime>,
    pub context_length: u32,
}

fn hex(digest: &hearth_store::Digest) -> String {
    digest.to_string().trim_start_matches("sha256:").to_string()
}

impl Service {
    /// The models in the store; manifests that cannot be read are logged and left out.
    pub async fn list(&self) -> Result<Vec<StoredModel>, ServiceError> {
        self.with_store(|store| {
            let (entries, problems) = store.list()?;
            for problem in problems {
                tracing::warn!("{problem}");
            }
            Ok(entries
                .into_iter()
                .map(|entry| StoredModel {
                    config: store.config_of(&entry.manifest),
                    size: entry.manifest.size(),
                    digest: hex(&entry.id),
                    modified: entry.modified,
                    name: entry.name,
                })
                .collect())
        })
        .await
    }

    /// What `name` is and what is stored with it.
    pub async fn describe(&self, name: &ModelName) -> Result<ModelDescription, ServiceError> {
        let found = name.clone();
        let description = self
            .with_store(move |store| {
                let manifest = store.manifest(&found)?;
                let spec = store.spec_of(&found, &manifest)?;
                let license = store.text_layer(&manifest, manifest::LICENSE).ok().flatten();
                Ok((spec, store.config_of(&manifest), license, store.modified(&found)))
            })
            .await;
        let (spec, config, license, modified) = description.map_err(|e| e.about_model(name))?;
        let path = spec.path.clone();
        let header = tokio::task::spawn_blocking(move || hearth_engine::GgufHeader::read(&path))
            .await
            .map_err(|e| ServiceError::Internal(format!("reading the model's header failed: {e}")))?
            .map_err(|e| ServiceError::Internal(format!("{name}: {e}")))?;
        Ok(ModelDescription { info: header.model_info(), spec, config, license, modified })
    }

    /// The loaded models, most recently used first.
    pub async fn running(&self) -> Vec<RunningModel> {
        let loaded = self.residency.loaded();
        let names: Vec<ModelName> = loaded.iter().map(|m| m.name.clone()).collect();
        let configs = self
            .with_store(move |store| {
                Ok(names
                    .iter()
                    .map(|name| store.manifest(name).map(|m| store.config_of(&m)).unwrap_or_default())
                    .collect())
            })
            .await
            .unwrap_or_else(|_| vec![ModelConfig::default(); loaded.len()]);
        let (now, wall) = (Instant::now(), SystemTime::now());
        loaded
            .iter()
            .zip(configs)
            .map(|(model, config)| RunningModel {
                name: model.name.clone(),
                size: model.spec.size,
                digest: model.spec.digest.as_ref().map(hex),
                config,
                expires: model.expires_at().map(|at| wall + at.saturating_duration_since(now)),
                context_length: model.engine.settings().context_size,
            })
            .collect()
    }

    /// Unloads `name` if it is loaded and no request holds it (else once the last one ends).
    pub fn unload(&self, name: &ModelName) -> bool {
        self.residency.unload(name)
    }

    /// Removes `name` from the store (and the blobs nothing else uses), unloading it first.
    pub async fn delete(&self, name: &ModelName) -> Result<(), ServiceError> {
        self.residency.unload(name);
        let removed = name.clone();
        self.with_store(move |store| store.remove(&removed)).await.map_err(|e| e.about_model(name))
    }

    /// A second name for a model.
    pub async fn copy(&self, source: &ModelName, destination: ModelName) -> Result<(), ServiceError> {
        let from = source.clone();
        self.with_store(move |store| store.copy(&from, &destination)).await.map_err(|e| e.about_model(source))
    }
}
