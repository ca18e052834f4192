//! hearth's HTTP server: Ollama's `/api/*` and OpenAI's `/v1/*` on one port, both
//! translated into the engine's neutral requests. Handlers talk to the engines only through
//! a request carrying its own response channel; models load on demand and stay resident
//! for their keep-alive.

mod body;
mod embed;
mod error;
mod format;
mod generate;
mod http_layers;
mod metrics;
pub mod models;
mod ollama;
mod openai;
mod residency;
mod store_api;
mod tools;

pub use error::{ApiError, Dialect};
pub use http_layers::Origins;
pub use residency::{system_memory, KeepAlive, MemoryProbe, MeterFactory, Residency, ResidencyConfig};

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
}

impl AppState {
    pub fn new(store: Store, config: ResidencyConfig) -> Self {
        let metrics = metrics::Metrics::with_meter((config.meter)());
        Self {
            residency: Arc::new(Residency::new(Arc::new(store), config)),
            metrics: Arc::new(metrics),
            origins: Arc::new(Origins::local()),
            prices: Arc::default(),
        }
    }

    pub fn with_prices(mut self, prices: EnergyPrices) -> Self {
        self.prices = Arc::new(prices);
        self
    }

    pub fn with_origins(mut self, origins: Origins) -> Self {
        self.origins = Arc::new(origins);
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
        .layer(axum::middleware::from_fn_with_state(state.origins.clone(), http_layers::cors))
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

/// Serves `router(state)` on `listener` until `shutdown` resolves; answers in flight then
/// get up to `grace` to finish. Expired models are unloaded once a second meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let residency = state.residency.clone();
    let sweeper = tokio::spawn({
        let residency = residency.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                residency.sweep().await;
            }
        }
    });
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing answers in flight (up to {} s)", grace.as_secs());
        let _ = stopping_tx.send(true);
    });
    let mut stopping = stopping_rx;
    let result = tokio::select! {
        result = server => result,
        () = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("answers still running after {} s were cut off", grace.as_secs());
            Ok(())
        }
    };
    sweeper.abort();
    residency.unload_all().await;
    result
}
