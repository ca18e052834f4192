//! `hearth serve`: Ollama's and OpenAI's APIs on one port (`HEARTH_HOST`, default
//! 127.0.0.1:11434), until Ctrl-C or SIGTERM; answers in flight then get time to finish.

use crate::models::open_store;
use anyhow::{Context, Result};
use hearth_core::EnergyMeter;
use hearth_server::{AppState, KeepAlive, Origins, ResidencyConfig};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "HEARTH_HOST", default_value = "127.0.0.1:11434")]
    host: String,
    /// Requests each model decodes at once (continuous batching)
    #[arg(long, env = "HEARTH_NUM_PARALLEL", default_value_t = 4)]
    parallel: u32,
    /// Models loaded at once; the least recently used idle one makes room
    #[arg(long, env = "HEARTH_MAX_LOADED_MODELS", default_value_t = 3)]
    max_loaded: usize,
    /// Requests that may wait for a slot of a model; past that they get 503
    #[arg(long, env = "HEARTH_MAX_QUEUE", default_value_t = 512)]
    max_queue: usize,
    /// How long a model stays loaded after its last request ("5m", "1h", "0", "-1" = forever)
    #[arg(long, env = "HEARTH_KEEP_ALIVE", default_value = "5m")]
    keep_alive: String,
    /// Threads per model; default: the physical cores
    #[arg(long, env = "HEARTH_NUM_THREADS")]
    threads: Option<u32>,
    /// Browser origins allowed besides this machine's, comma-separated; `*` is a wildcard
    #[arg(long, env = "HEARTH_ORIGINS", default_value = "")]
    origins: String,
    /// Seconds answers in flight get to finish at shutdown
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let keep_alive = KeepAlive::parse(&serde_json::Value::String(args.keep_alive.clone()))
        .map_err(anyhow::Error::msg)
        .context("HEARTH_KEEP_ALIVE")?;
    if args.parallel == 0 {
        anyhow::bail!("HEARTH_NUM_PARALLEL must be at least 1");
    }
    let store = open_store()?;
    let meter: hearth_server::MeterFactory = Arc::new(|| -> Option<Box<dyn EnergyMeter>> {
        hearth_energy::detect(&crate::energy::roots(), crate::energy::watts_per_core_override())
            .map(|detected| detected.meter)
            .map_err(|e| tracing::warn!("no energy meter: {e}"))
            .ok()
    });
    let config = ResidencyConfig {
        parallel: args.parallel,
        max_loaded: args.max_loaded,
        max_queue: args.max_queue,
        keep_alive,
        threads: args.threads,
        meter,
        available_memory: hearth_server::system_memory(),
    };
    let state = AppState::new(store, config)
        .with_origins(Origins::local().with(&args.origins))
        .with_prices(crate::energy::prices()?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.host)
            .await
            .with_context(|| format!("listening on {} (HEARTH_HOST)", args.host))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, parallel = args.parallel, "hearth is listening");
        eprintln!("hearth {} listening on http://{address}", env!("CARGO_PKG_VERSION"));
        hearth_server::serve(listener, state, shutdown_signal(), Duration::from_secs(args.shutdown_grace)).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
