//! `hearth serve`: Ollama's and OpenAI's APIs on one port (`HEARTH_HOST`, default
//! 127.0.0.1:11434), until Ctrl-C or SIGTERM; answers in flight then get time to finish,
//! and the process ends soon after whatever is still running.

use crate::config::Config;
use crate::models::open_store;
use anyhow::{Context, Result};
use hearth_core::EnergyMeter;
use hearth_server::auth::host::AllowedHosts;
use hearth_server::auth::keyring::Keyring;
use hearth_server::auth::WithoutKeys;
use hearth_server::{AdminPolicy, AppState, Auth, KeepAlive, Origins, ResidencyConfig, ServeLimits};
use std::path::PathBuf;
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
    #[command(flatten)]
    kv: crate::kv::KvArgs,
    #[command(flatten)]
    speculation: crate::speculation::SpeculationArgs,
    #[command(flatten)]
    prompt_cache: crate::prompt_cache::PromptCacheArgs,
    /// Browser origins allowed besides this machine's, comma-separated; `*` is a wildcard
    #[arg(long, env = "HEARTH_ORIGINS", default_value = "")]
    origins: String,
    /// Seconds answers in flight get to finish at shutdown
    #[arg(long, env = "HEARTH_SHUTDOWN_GRACE", default_value_t = 30)]
    shutdown_grace: u64,
    /// Time a client has to send a request's headers ("60s", "1m", "500ms"; a bare number is seconds)
    #[arg(long, env = "HEARTH_HEADER_TIMEOUT", default_value = "60s", value_parser = timeout)]
    header_timeout: Duration,
    /// Time a request body may go without a byte arriving before it gets 408
    #[arg(long, env = "HEARTH_BODY_TIMEOUT", default_value = "60s", value_parser = timeout)]
    body_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request
    #[arg(long, env = "HEARTH_IDLE_TIMEOUT", default_value = "75s", value_parser = timeout)]
    idle_timeout: Duration,
    /// Time an answer may wait for the client to take any of it (streams the client reads are never cut)
    #[arg(long, env = "HEARTH_SEND_TIMEOUT", default_value = "60s", value_parser = timeout)]
    send_timeout: Duration,
    /// Connections served at once; more wait until one closes
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Largest request body in bytes (blob uploads aside); larger gets 413
    #[arg(long, env = "HEARTH_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_body_bytes: u64,
    /// Allow pull, create, copy, delete and blob uploads from other machines too (without
    /// it, only clients on this machine may change the store)
    #[arg(long, env = "HEARTH_ALLOW_REMOTE_ADMIN", value_parser = clap::builder::BoolishValueParser::new())]
    allow_remote_admin: bool,
    /// Serve other machines without API keys (without it, a bind beyond loopback needs keys)
    #[arg(long, env = "HEARTH_ALLOW_UNAUTHENTICATED", value_parser = clap::builder::BoolishValueParser::new())]
    allow_unauthenticated: bool,
    /// The API keys accepted (`hearth keys create` makes them); read again on SIGHUP
    #[arg(long, env = "HEARTH_KEYS_FILE")]
    keys_file: Option<PathBuf>,
    /// Names besides this machine's that a loopback server answers in the Host header,
    /// comma-separated (`.example.com` for a domain, `*` for any)
    #[arg(long, env = "HEARTH_ALLOWED_HOSTS", default_value = "")]
    allowed_hosts: String,
    /// The most tokens one request may generate, whatever it asks
    #[arg(long, env = "HEARTH_MAX_PREDICT", value_parser = clap::value_parser!(u32).range(1..))]
    max_predict: Option<u32>,
    /// The config file (default ~/.hearth/config.toml): limits per API key
    #[arg(long, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
}

/// A timeout in Ollama's duration forms ("75s", "1m30s", "500ms", or seconds); it must be
/// positive, since a connection that may never wait could never be served.
fn timeout(text: &str) -> Result<Duration, String> {
    match KeepAlive::parse(&serde_json::Value::String(text.to_string()))? {
        KeepAlive::For(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(format!("{text}: a timeout must be more than zero")),
    }
}

/// After `serve` returns, how long blocking work (a model still loading, an engine being
/// dropped) gets before the process exits without it.
const EXIT_WAIT: Duration = Duration::from_secs(1);

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let keep_alive = KeepAlive::parse(&serde_json::Value::String(args.keep_alive.clone()))
        .map_err(anyhow::Error::msg)
        .context("HEARTH_KEEP_ALIVE")?;
    // The server's own settings are checked now: once serving, an engine setting out of
    // bounds would fail every request as if the client had asked for it.
    let engine = hearth_engine::EngineSettings { threads: args.threads, ..args.speculation.over(args.kv.settings()?)? };
    hearth_engine::EngineSettings { parallel: Some(args.parallel), ..engine.clone() }
        .check()
        .context("HEARTH_NUM_THREADS / HEARTH_NUM_PARALLEL / the KV cache settings / HEARTH_DRAFT_MAX")?;
    let config = Config::load(args.config.as_deref())?;
    let keys_file = args.keys_file.clone().unwrap_or_else(Keyring::default_path);
    let auth = Auth::default()
        .with_keys_file(keys_file.clone())
        .with_context(|| format!("reading the API keys (HEARTH_KEYS_FILE={})", keys_file.display()))?
        .with_limits(config.limits)
        .with_admin(if args.allow_remote_admin { AdminPolicy::Anyone } else { AdminPolicy::Local });
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
        engine,
        meter,
        available_memory: hearth_server::system_memory(),
        prompt_cache: args.prompt_cache.config(),
    };
    let limits = ServeLimits {
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        idle_timeout: args.idle_timeout,
        send_timeout: args.send_timeout,
        max_connections: args.max_connections as usize,
        max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
    };
    let state = AppState::new(store, config)
        .with_origins(Origins::local().with(&args.origins))
        .with_prices(crate::energy::prices()?)
        .with_usage_file(hearth_server::usage::default_path())
        .with_limits(limits)
        .with_max_predict(args.max_predict);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.host)
            .await
            .with_context(|| format!("listening on {} (HEARTH_HOST)", args.host))?;
        let address = listener.local_addr()?;
        let loopback = address.ip().is_loopback();
        let keys = auth.keyring().keys().len();
        if !loopback && keys == 0 && !args.allow_unauthenticated {
            anyhow::bail!(
                "{address} is reachable from other machines and {} holds no API keys; create one first with \
                 `hearth keys create NAME` (or pass --allow-unauthenticated to serve everyone without keys)",
                keys_file.display()
            );
        }
        // The Host check guards loopback binds from DNS rebinding; beyond loopback, keys do.
        let hosts = loopback.then(|| AllowedHosts::local_and(&args.allowed_hosts));
        let without_keys = match (args.allow_unauthenticated, loopback) {
            (true, _) => WithoutKeys::Everyone,
            (false, true) => WithoutKeys::ThisMachine,
            (false, false) => WithoutKeys::Nobody,
        };
        let auth = Arc::new(auth.without_keys(without_keys).with_hosts(hosts));
        tokio::spawn(reload_keys_on_hangup(auth.clone()));
        let state = state.with_auth(auth);
        tracing::info!(%address, parallel = args.parallel, keys, "hearth is listening");
        eprintln!("hearth {} listening on http://{address}", env!("CARGO_PKG_VERSION"));
        if keys > 0 {
            eprintln!("{keys} API key(s) from {}: every request needs one", keys_file.display());
        } else if !loopback {
            eprintln!(
                "serving other machines without API keys (--allow-unauthenticated); pull, create, copy and delete \
                 only from this machine (HEARTH_ALLOW_REMOTE_ADMIN=1 allows them)"
            );
        }
        hearth_server::serve(listener, state, shutdown_signal(), Duration::from_secs(args.shutdown_grace)).await?;
        Ok(ExitCode::SUCCESS)
    });
    // Dropping the runtime would wait for every blocking task however long it runs (a
    // template render, an embedding batch, a model load): SIGTERM must end hearth within
    // the grace period, so they get a moment and the exit takes the rest.
    runtime.shutdown_timeout(EXIT_WAIT);
    served
}

/// Reads the keys file again on each SIGHUP (`systemctl reload`), so keys made or revoked
/// take effect without a restart; a file that cannot be read leaves the keys in force.
async fn reload_keys_on_hangup(auth: Arc<Auth>) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match auth.reload() {
                Ok(keys) => tracing::info!(keys, "reloaded the API keys"),
                Err(e) => tracing::error!("the API keys were not reloaded, the old ones stay: {e}"),
            }
        }
    }
    #[cfg(not(unix))]
    drop(auth);
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
