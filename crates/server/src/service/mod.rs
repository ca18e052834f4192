//! The layer between the dialects and the engines: leases on models, generation,
//! embeddings and the model operations, in hearth's own terms and with one error type.
//! Dialects translate their wire formats into these calls and [`ServiceError`]'s kinds
//! into their statuses; nothing here knows HTTP. Store calls run on blocking threads.

mod chat;
mod echo;
pub mod embed;
mod error;
mod generate;
mod models;

pub use chat::{chat_request, collect_calls, read_whole, Chat};
pub use echo::Echo;
pub use error::{ErrorKind, ServiceError};
pub use generate::{collect, conversation, effort_thinking, max_tokens, sampling, Finished, Piece};
pub use models::{ModelDescription, StoredModel};

use crate::metrics::Metrics;
use crate::residency::{DraftModel, Residency, Wanted};
use hearth_core::EnergyPrices;
use hearth_engine::Engine;
use hearth_store::{ModelName, Store, StoreError};
use std::sync::Arc;

/// A request's hold on a loaded llama.cpp engine.
pub type Lease = crate::residency::Lease<Engine>;

impl Lease {
    /// The chat template the engine renders with: the model's own, or the one it is stored with.
    pub fn template(&self) -> Option<&str> {
        self.model.engine.info().chat_template.as_deref()
    }

    /// Whether the model thinks before it answers (its template writes thinking tags).
    pub fn thinks(&self) -> bool {
        hearth_core::think::template_thinks(self.template())
    }
}

pub struct Service {
    pub residency: Residency,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// Carbon intensity and electricity price, to report what answers cost.
    pub prices: Arc<EnergyPrices>,
    /// The most tokens one request may generate, whatever it asks (`HEARTH_MAX_PREDICT`).
    pub max_predict: Option<u32>,
}

impl Service {
    /// A lease on the model `name`, loaded (with what `wanted` asks) if it is not yet. A
    /// draft model named by the request is looked up in the store first.
    pub async fn lease(&self, name: &ModelName, mut wanted: Wanted) -> Result<Lease, ServiceError> {
        let spec = {
            let name = name.clone();
            self.with_store(move |store| store.model_spec(&name)).await
        };
        let spec = spec.map_err(|e| e.about_model(name))?;
        if let Some(DraftModel::Named(draft)) = &wanted.draft {
            let found = {
                let draft = draft.clone();
                self.with_store(move |store| store.model_spec(&draft)).await
            };
            let found = found.map_err(|e| e.about_model(draft))?;
            wanted.draft = Some(DraftModel::File(found.path));
        }
        if let Some(record) = crate::audit::current() {
            record.set_model(&name.to_string());
        }
        Ok(self.residency.acquire(name, spec, wanted).await?)
    }

    /// Runs `work` on the leased model's engine on a blocking thread (tokenizing a large
    /// body or rendering a template takes a while), holding the lease until it ends.
    pub async fn on_engine<T: Send + 'static>(
        &self,
        lease: Lease,
        work: impl FnOnce(&Engine) -> Result<T, hearth_core::GenerateError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        match tokio::task::spawn_blocking(move || work(&lease.model.engine)).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(ServiceError::Internal(format!("an engine task failed: {e}"))),
        }
    }

    /// Runs `work` on the store on a blocking thread.
    pub async fn with_store<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(ServiceError::Internal(format!("a store task failed: {e}"))),
        }
    }
}
