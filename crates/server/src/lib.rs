//! hearth's HTTP server: Ollama's `/api/*` and OpenAI's `/v1/*` on one port, both
//! translated into the engine's neutral requests. Handlers talk to the engines only through
//! a request carrying its own response channel; models load on demand and stay resident
//! for their keep-alive.

mod admin;
mod body;
mod embed;
mod error;
mod format;
mod generate;
mod http_layers;
mod listener;
mod metrics;
pub mod models;
mod ollama;
mod openai;
mod residency;
mod store_api;
mod tools;

pub use admin::AdminPolicy;
pub use error::{ApiError, Dialect};
pub use http_layers::Origins;
pub use listener::ServeLimits;
pub use residency::{system_memory, KeepAlive, MemoryProbe, MeterFactory, Residency, ResidencyConfig};

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use hearth_core::EnergyPrices;
use hearth_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub residency: Arc<Residency>,
    pub metrics: Arc<metrics::Metrics>,
    /// Browser origins allowed to call (CORS).
    pub origins: Arc<Origins>,
    /// Carbon intensity and electricity price, to report what answers cost.
    pub prices: Arc<EnergyPrices>,
    /// Timeouts, the connection cap and the body size limit.
    pub limits: Arc<ServeLimits>,
    /// Who may pull, create, copy and delete.
    pub admin: AdminPolicy,
}

impl AppState {
    pub fn new(store: Store, config: ResidencyConfig) -> Self {
        let metrics = metrics::Metrics::with_meter((config.meter)());
        Self {
            residency: Arc::new(Residency::new(Arc::new(store), config)),
            metrics: Arc::new(metrics),
            origins: Arc::new(Origins::local()),
            prices: Arc::default(),
            limits: Arc::default(),
            admin: AdminPolicy::default(),
        }
    }

    pub fn with_admin(mut self, admin: AdminPolicy) -> Self {
        self.admin = admin;
        self
    }

    pub fn with_prices(mut self, prices: EnergyPrices) -> Self {
        self.prices = Arc::new(prices);
        self
    }

    pub fn with_origins(mut self, origins: Origins) -> Self {
        self.origins = Arc::new(origins);
        self
    }

    pub fn with_limits(mut self, limits: ServeLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(root).head(root))
        .route("/api/version", get(ollama::version))
        .route("/api/tags", get(ollama::tags))
        .route("/api/show", post(ollama::show))
        .route("/api/ps", get(ollama::ps))
        .route("/api/generate", post(ollama::generate))
        .route("/api/chat", post(ollama::chat))
        .route("/api/embed", post(embed::ollama_embed))
        .route("/api/embeddings", post(embed::ollama_embeddings))
        .route("/api/delete", delete(ollama::delete))
        .route("/api/pull", post(store_api::pull))
        .route("/api/create", post(store_api::create))
        .route("/api/blobs/{digest}", post(store_api::upload_blob).head(store_api::has_blob))
        .route("/api/copy", post(ollama::copy))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(embed::openai_embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::model))
        .route("/metrics", get(metrics_text))
        .fallback(http_layers::no_route)
        // `bodies` has read the body whole under the limit already; this is a second fence.
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.limits.clone(), http_layers::bodies))
        // Before a body is read: a refused upload is not taken in first.
        .layer(axum::middleware::from_fn_with_state(state.admin, admin::guard))
        .layer(axum::middleware::from_fn_with_state(state.origins.clone(), http_layers::cors))
        .layer(axum::middleware::from_fn(http_layers::json_errors))
        .layer(axum::middleware::from_fn(http_layers::request_id))
        .with_state(state)
}

async fn root() -> &'static str {
    "hearth is running"
}

async fn metrics_text(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let loaded = state.residency.loaded().await.len();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render(loaded))
}

/// How often blobs that no model uses are looked for, and how old one must be to go: an
/// upload gets that long for the create that refers to it.
const ORPHAN_SWEEP: Duration = Duration::from_secs(600);
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

async fn collect_orphans(store: Arc<Store>) {
    match tokio::task::spawn_blocking(move || store.collect_orphans(ORPHAN_GRACE)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => tracing::info!(removed, "removed blobs no model uses"),
        Ok(Err(e)) => tracing::warn!("collecting unused blobs: {e}"),
        Err(e) => tracing::warn!("collecting unused blobs: {e}"),
    }
}

/// After the grace period, how long unloading may wait for the model list, which a model
/// still loading holds.
const UNLOAD_WAIT: Duration = Duration::from_millis(250);

/// Serves `router(state)` on `listener`, under `state.limits` (timeouts, connection cap),
/// until `shutdown` resolves; answers in flight then get up to `grace` to finish and the
/// rest are cut off, so this returns within `grace` and half a second of the signal. Expired
/// models are unloaded once a second meanwhile; all are unloaded at the end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let residency = state.residency.clone();
    let limits = state.limits.clone();
    let sweeper = tokio::spawn({
        let residency = residency.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for second in 0u64.. {
                tick.tick().await;
                residency.sweep().await;
                if second % ORPHAN_SWEEP.as_secs() == 0 {
                    collect_orphans(residency.store().clone()).await;
                }
            }
        }
    });
    listener::run(listener, router(state), &limits, shutdown, grace).await;
    sweeper.abort();
    if tokio::time::timeout(UNLOAD_WAIT, residency.unload_all()).await.is_err() {
        tracing::warn!("a model was still loading at shutdown; not waiting for it");
    }
    Ok(())
}
