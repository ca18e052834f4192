//! hearth's HTTP server: Ollama's `/api/*`, OpenAI's `/v1/*` (chat, completions,
//! embeddings, responses) and Anthropic's `/v1/messages` on one port. Each dialect
//! (`dialects/`) translates its wire format into calls of one service layer (`service`),
//! which reaches the engines only through a validated request carrying its own response
//! channel; models load on demand and stay resident for their keep-alive (`residency`).

mod audit;
pub mod auth;
mod dialects;
mod format;
mod http_layers;
mod listener;
mod metrics;
pub mod models;
mod residency;
mod service;
mod tools;
mod ui;
pub mod usage;

pub use auth::{AdminPolicy, Auth};
pub use dialects::Dialect;
pub use http_layers::Origins;
pub use listener::ServeLimits;
pub use residency::{
    system_memory, DraftModel, KeepAlive, LlamaLoader, Loader, MemoryProbe, MeterFactory, Residency, ResidencyConfig,
    ResidencyError, Wanted,
};
pub use service::{ErrorKind, Service, ServiceError};

use dialects::{anthropic, llama_server, ollama, openai, responses};

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
    pub service: Arc<Service>,
    /// Browser origins allowed to call (CORS).
    pub origins: Arc<Origins>,
    /// Timeouts, the connection cap and the body size limit.
    pub limits: Arc<ServeLimits>,
    /// Who may call, with which key, how often.
    pub auth: Arc<Auth>,
    /// Responses kept for the Responses API's `GET` and `previous_response_id`.
    pub responses: Arc<dialects::responses::Responses>,
}

impl AppState {
    pub fn new(store: Store, config: ResidencyConfig) -> Self {
        let metrics = Arc::new(metrics::Metrics::with_meter((config.meter)()));
        let service = Service {
            residency: Residency::new(config),
            store: Arc::new(store),
            metrics,
            prices: Arc::default(),
            max_predict: None,
        };
        Self {
            service: Arc::new(service),
            origins: Arc::new(Origins::local()),
            limits: Arc::default(),
            auth: Arc::default(),
            responses: Arc::default(),
        }
    }

    pub fn with_auth(mut self, auth: Arc<Auth>) -> Self {
        self.auth = auth;
        self
    }

    /// The most tokens any one request may generate (set before the state is shared).
    pub fn with_max_predict(mut self, max_predict: Option<u32>) -> Self {
        Arc::get_mut(&mut self.service).expect("set before serving").max_predict = max_predict;
        self
    }

    /// Set before the state is shared (the service is not yet cloned).
    pub fn with_prices(mut self, prices: EnergyPrices) -> Self {
        Arc::get_mut(&mut self.service).expect("prices are set before serving").prices = Arc::new(prices);
        self
    }

    /// Keeps the daily usage totals in `path` (see [`usage`]), adding in what it holds now.
    pub fn with_usage_file(self, path: std::path::PathBuf) -> Self {
        self.service.metrics.usage.persist_to(path);
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
        .route("/", get(ui::root).head(ui::root))
        .route("/ui", get(ui::page_without_slash))
        .route("/ui/", get(ui::page))
        .route("/ui/{name}", get(ui::asset))
        .route("/api/live", get(ui::live))
        .route("/api/version", get(ollama::version))
        .route("/api/tags", get(ollama::tags))
        .route("/api/show", post(ollama::show))
        .route("/api/ps", get(ollama::ps))
        .route("/api/generate", post(ollama::generate))
        .route("/api/chat", post(ollama::chat))
        .route("/api/embed", post(ollama::embed))
        .route("/api/embeddings", post(ollama::embeddings))
        .route("/api/delete", delete(ollama::delete))
        .route("/api/pull", post(ollama::pull))
        .route("/api/create", post(ollama::create))
        .route("/api/blobs/{digest}", post(ollama::upload_blob).head(ollama::has_blob))
        .route("/api/copy", post(ollama::copy))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{*id}", get(openai::model))
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/{id}", get(responses::get).delete(responses::delete))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/tokenize", post(llama_server::tokenize))
        .route("/detokenize", post(llama_server::detokenize))
        .route("/apply-template", post(llama_server::apply_template))
        .route("/metrics", get(metrics_text))
        .fallback(http_layers::no_route)
        // `bodies` has read the body whole under the limit already; this is a second fence.
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.limits.clone(), http_layers::bodies))
        // Before a body is read: a refused upload is not taken in first.
        .layer(axum::middleware::from_fn_with_state(state.auth.clone(), auth::guard))
        .layer(axum::middleware::from_fn_with_state(state.origins.clone(), http_layers::cors))
        .layer(axum::middleware::from_fn(http_layers::json_errors))
        .layer(axum::middleware::from_fn(http_layers::request_id))
        .with_state(state)
}

async fn metrics_text(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let loaded = state.service.residency.loaded().len();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.service.metrics.render(loaded))
}

/// How often blobs that no model uses are looked for, and how old one must be to go: an
/// upload gets that long for the create that refers to it.
const ORPHAN_SWEEP: Duration = Duration::from_secs(600);
const ORPHAN_GRACE: Duration = Duration::from_secs(3600);

/// How often the daily usage totals are written: a crash loses at most this much.
const USAGE_SAVE: Duration = Duration::from_secs(60);

async fn save_usage(service: Arc<Service>) {
    let saved = tokio::task::spawn_blocking(move || service.metrics.usage.save_or_warn()).await;
    if let Err(e) = saved {
        tracing::warn!("saving the usage totals: {e}");
    }
}

async fn collect_orphans(store: Arc<Store>) {
    match tokio::task::spawn_blocking(move || store.collect_orphans(ORPHAN_GRACE)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => tracing::info!(removed, "removed blobs no model uses"),
        Ok(Err(e)) => tracing::warn!("collecting unused blobs: {e}"),
        Err(e) => tracing::warn!("collecting unused blobs: {e}"),
    }
}

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
    let service = state.service.clone();
    let limits = state.limits.clone();
    let sweeper = tokio::spawn({
        let service = service.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for second in 0u64.. {
                tick.tick().await;
                service.residency.sweep();
                if second % ORPHAN_SWEEP.as_secs() == 0 {
                    collect_orphans(service.store.clone()).await;
                }
                if second > 0 && second % USAGE_SAVE.as_secs() == 0 {
                    save_usage(service.clone()).await;
                }
            }
        }
    });
    listener::run(listener, router(state), &limits, shutdown, grace).await;
    sweeper.abort();
    save_usage(service.clone()).await;
    // A model still loading is dropped when its load ends; nothing waits for it.
    service.residency.unload_all();
    Ok(())
}
