//! Which models are loaded: a model loads on its first request and stays for `keep_alive`
//! after its last one (default 5 minutes; 0 unloads at once, negative keeps it), at most
//! `max_loaded` at a time (the least recently used one goes first). A request holds a
//! [`Lease`] on its model, so nothing unloads under a running answer. A lease carries a
//! permit of the model's admission semaphore (slots plus queue): a model is idle when all
//! its permits are back, whoever else holds a reference to it (a `/metrics` scrape, `ps`).

use crate::error::{ApiError, Dialect};
use hearth_core::EnergyMeter;
use hearth_engine::{Engine, EngineError, EngineSettings};
use hearth_store::{ModelName, ModelSpec, Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Makes the energy meter each loaded engine reads.
pub type MeterFactory = Arc<dyn Fn() -> Option<Box<dyn EnergyMeter>> + Send + Sync>;

/// Bytes of memory the system can give now (`None`: unknown, so never the reason to unload).
pub type MemoryProbe = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// The system's `MemAvailable`.
pub fn system_memory() -> MemoryProbe {
    Arc::new(hearth_engine::available_memory)
}

/// How long a model stays loaded after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    For(Duration),
    Forever,
}

impl KeepAlive {
    /// Ollama's forms: a number of seconds, or a duration string like `"5m"`, `"1h30m"`,
    /// `"0"`, `"-1"`; negative keeps the model loaded.
    pub fn parse(value: &serde_json::Value) -> Result<Self, String> {
        let seconds = match value {
            serde_json::Value::Number(n) => n.as_f64().ok_or("keep_alive is not a number")?,
            serde_json::Value::String(text) => parse_duration(text)?,
            other => return Err(format!("keep_alive must be a duration like \"5m\" or seconds, got {other}")),
        };
        if seconds < 0.0 {
            Ok(Self::Forever)
        } else {
            Ok(Self::For(Duration::from_secs_f64(seconds.min(1e9))))
        }
    }
}

/// `"1h2m3.5s"`, `"300ms"`, `"5m"`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<f64, String> {
    let invalid = || format!("keep_alive: '{text}' is not a duration like \"5m\" or \"1h30m\"");
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(seconds);
    }
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text),
    };
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(invalid()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(sign * total)
}

#[derive(Clone)]
pub struct ResidencyConfig {
    /// Sequences each engine decodes at once.
    pub parallel: u32,
    pub max_loaded: usize,
    /// Requests that may wait for a slot of a model; past that, 503.
    pub max_queue: usize,
    pub keep_alive: KeepAlive,
    pub threads: Option<u32>,
    pub meter: MeterFactory,
    /// Idle models unload, least recently used first, while a model to load needs more.
    pub available_memory: MemoryProbe,
}

/// A loaded model.
pub struct LoadedModel {
    pub name: ModelName,
    pub spec: ModelSpec,
    pub engine: Engine,
    /// When it unloads if no request holds it; `None`: never.
    expires: Mutex<Option<Instant>>,
    keep_alive: Mutex<KeepAlive>,
    /// One permit per request that may run or wait: slots plus the queue.
    admission: Arc<tokio::sync::Semaphore>,
    capacity: usize,
}

impl LoadedModel {
    pub fn expires_at(&self) -> Option<Instant> {
        *self.expires.lock().expect("not poisoned")
    }

    /// Requests running or waiting on this model.
    pub fn requests(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    fn is_idle(&self) -> bool {
        self.requests() == 0
    }

    /// A lease, if the model has room for one more request.
    fn lease(self: &Arc<Self>, load_duration: Duration) -> Option<Lease> {
        let permit = self.admission.clone().try_acquire_owned().ok()?;
        Some(Lease { model: self.clone(), load_duration, _permit: permit })
    }
}

/// A request's hold on a loaded model; when it ends, the model's keep-alive starts over.
pub struct Lease {
    pub model: Arc<LoadedModel>,
    /// Time spent loading the model for this request (zero when it was loaded already).
    pub load_duration: Duration,
    /// Given back after `drop` has set the expiry, so a sweep never sees an idle model
    /// without it.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let keep_alive = *self.model.keep_alive.lock().expect("not poisoned");
        *self.model.expires.lock().expect("not poisoned") = match keep_alive {
            KeepAlive::For(d) => Some(Instant::now() + d),
            KeepAlive::Forever => None,
        };
    }
}

pub struct Residency {
    store: Arc<Store>,
    config: ResidencyConfig,
    /// Loaded models, most recently used last. The async lock also serialises loading.
    loaded: tokio::sync::Mutex<Vec<Arc<LoadedModel>>>,
}

impl Residency {
    pub fn new(store: Arc<Store>, config: ResidencyConfig) -> Self {
        Self { store, config, loaded: tokio::sync::Mutex::new(Vec::new()) }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The model `name`, loaded if it is not yet; `keep_alive` applies from now on.
    pub async fn acquire(
        &self,
        name: &ModelName,
        keep_alive: Option<KeepAlive>,
        dialect: Dialect,
    ) -> Result<Lease, ApiError> {
        let keep_alive = keep_alive.unwrap_or(self.config.keep_alive);
        let mut loaded = self.loaded.lock().await;
        let spec = self.spec(name, dialect)?;
        if let Some(at) = loaded.iter().position(|m| m.name.same_as(name) && m.spec.path == spec.path) {
            let Some(lease) = loaded[at].lease(Duration::ZERO) else {
                let requests = loaded[at].requests();
                return Err(ApiError::new(
                    dialect,
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the server is busy: {requests} requests are running or waiting for {name} \
                         ({} slots, HEARTH_MAX_QUEUE {}); try again shortly",
                        self.config.parallel, self.config.max_queue
                    ),
                ));
            };
            let model = loaded.remove(at);
            *model.keep_alive.lock().expect("not poisoned") = keep_alive;
            loaded.push(model);
            return Ok(lease);
        }
        // Room for one more: unload idle models, least recently used first.
        while loaded.len() >= self.config.max_loaded.max(1) {
            let Some(idle) = loaded.iter().position(|m| m.is_idle()) else {
                return Err(ApiError::new(
                    dialect,
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "{} models are loaded and all are answering requests (HEARTH_MAX_LOADED_MODELS); try again shortly",
                        loaded.len()
                    ),
                ));
            };
            unload(loaded.remove(idle));
        }
        let settings = self.engine_settings(name, &spec, dialect)?;
        self.make_room(&mut loaded, name, &spec, &settings, dialect).await?;
        let started = Instant::now();
        let (path, meter) = (spec.path.clone(), (self.config.meter)());
        let engine = tokio::task::spawn_blocking(move || Engine::load_metered(&path, &settings, meter))
            .await
            .map_err(|e| ApiError::internal(dialect, format!("loading the model failed: {e}")))?
            .map_err(|e| load_error(dialect, name, e))?;
        tracing::info!(model = %name, seconds = started.elapsed().as_secs_f64(), "model loaded");
        let capacity = self.config.parallel as usize + self.config.max_queue;
        let model = Arc::new(LoadedModel {
            name: name.clone(),
            spec,
            engine,
            expires: Mutex::new(None),
            keep_alive: Mutex::new(keep_alive),
            admission: Arc::new(tokio::sync::Semaphore::new(capacity)),
            capacity,
        });
        let lease = model.lease(started.elapsed()).expect("a new model has room");
        loaded.push(model);
        Ok(lease)
    }

    /// Unloads idle models, least recently used first, until the model fits in memory; a
    /// model that cannot fit even alone is refused rather than pushing the machine to swap.
    async fn make_room(
        &self,
        loaded: &mut Vec<Arc<LoadedModel>>,
        name: &ModelName,
        spec: &ModelSpec,
        settings: &EngineSettings,
        dialect: Dialect,
    ) -> Result<(), ApiError> {
        let needed = match hearth_engine::memory_needed(&spec.path, settings) {
            Ok(needed) => needed,
            Err(e @ EngineError::InvalidSetting(_)) => return Err(load_error(dialect, name, e)),
            // The load itself reports a model it cannot read.
            Err(_) => return Ok(()),
        };
        let gib = |bytes: u64| bytes as f64 / f64::from(1u32 << 30);
        loop {
            let Some(available) = (self.config.available_memory)() else { return Ok(()) };
            if needed <= available {
                return Ok(());
            }
            match loaded.iter().position(|m| m.is_idle()) {
                Some(idle) => {
                    let model = loaded.remove(idle);
                    tracing::info!(model = %model.name, for_model = %name, "unloading to free memory");
                    // Wait for the memory to be given back before measuring again.
                    let _ = tokio::task::spawn_blocking(move || drop(model)).await;
                }
                None if loaded.is_empty() => {
                    return Err(ApiError::internal(
                        dialect,
                        format!(
                            "{name} needs {:.1} GiB of memory with {} slots of context, but {:.1} GiB are available; \
                             lower num_ctx or HEARTH_NUM_PARALLEL, or free memory",
                            gib(needed),
                            self.config.parallel,
                            gib(available)
                        ),
                    ))
                }
                None => {
                    return Err(ApiError::new(
                        dialect,
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "{name} needs {:.1} GiB of memory, {:.1} GiB are available, and the loaded models \
                             are all answering; try again shortly",
                            gib(needed),
                            gib(available)
                        ),
                    ))
                }
            }
        }
    }

    fn spec(&self, name: &ModelName, dialect: Dialect) -> Result<ModelSpec, ApiError> {
        self.store.model_spec(name).map_err(|e| match e {
            StoreError::NotFound(_) => {
                ApiError::not_found(dialect, format!("model '{name}' not found, try pulling it first"))
            }
            other => ApiError::internal(dialect, other.to_string()),
        })
    }

    fn engine_settings(
        &self,
        name: &ModelName,
        spec: &ModelSpec,
        dialect: Dialect,
    ) -> Result<EngineSettings, ApiError> {
        let mut settings = EngineSettings::stored(&spec.parameters, spec.template.clone())
            .map_err(|e| load_error(dialect, name, e))?;
        settings.threads = self.config.threads.or(settings.threads);
        settings.parallel = Some(self.config.parallel);
        Ok(settings)
    }

    /// Unloads `name` now if no request holds it; returns whether it was loaded.
    pub async fn unload(&self, name: &ModelName) -> bool {
        let mut loaded = self.loaded.lock().await;
        match loaded.iter().position(|m| m.name.same_as(name)) {
            Some(at) => {
                let model = loaded.remove(at);
                if model.is_idle() {
                    unload(model);
                } else {
                    // Answering still: it goes when its last request ends.
                    *model.keep_alive.lock().expect("not poisoned") = KeepAlive::For(Duration::ZERO);
                    *model.expires.lock().expect("not poisoned") = Some(Instant::now());
                    loaded.push(model);
                }
                true
            }
            None => false,
        }
    }

    /// The loaded models, most recently used first.
    pub async fn loaded(&self) -> Vec<Arc<LoadedModel>> {
        self.loaded.lock().await.iter().rev().cloned().collect()
    }

    /// Unloads every model whose keep-alive ran out and that no request holds.
    pub async fn sweep(&self) {
        let now = Instant::now();
        let mut loaded = self.loaded.lock().await;
        let mut at = 0;
        while at < loaded.len() {
            let model = &loaded[at];
            if model.is_idle() && model.expires_at().is_some_and(|t| t <= now) {
                unload(loaded.remove(at));
            } else {
                at += 1;
            }
        }
    }

    /// Unloads everything (at shutdown): requests still running end at their engine's
    /// next step, so no engine thread outlives the server.
    pub async fn unload_all(&self) {
        for model in self.loaded.lock().await.drain(..) {
            model.engine.stop();
            unload(model);
        }
    }
}

/// Why `name` cannot load, as the request's error: a setting out of bounds (stored with the
/// model) is the client's to fix, anything else the server's.
fn load_error(dialect: Dialect, name: &ModelName, e: EngineError) -> ApiError {
    match e {
        EngineError::InvalidSetting(_) => ApiError::bad_request(dialect, format!("{name}: {e}")),
        e => ApiError::internal(dialect, format!("loading {name} failed: {e}")),
    }
}

/// Dropping an engine joins its thread: done off the async workers.
fn unload(model: Arc<LoadedModel>) {
    tracing::info!(model = %model.name, "model unloaded");
    tokio::task::spawn_blocking(move || drop(model));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keep_alive_takes_ollamas_forms() {
        let secs = |v| match KeepAlive::parse(&v).unwrap() {
            KeepAlive::For(d) => d.as_secs_f64(),
            KeepAlive::Forever => -1.0,
        };
        assert_eq!(secs(json!("5m")), 300.0);
        assert_eq!(secs(json!("1h30m")), 5400.0);
        assert_eq!(secs(json!("1.5s")), 1.5);
        assert_eq!(secs(json!("300ms")), 0.3);
        assert_eq!(secs(json!(0)), 0.0);
        assert_eq!(secs(json!("0")), 0.0);
        assert_eq!(secs(json!(30)), 30.0);
        assert_eq!(secs(json!(-1)), -1.0);
        assert_eq!(secs(json!("-1m")), -1.0);
        assert!(KeepAlive::parse(&json!("soon")).unwrap_err().contains("not a duration"));
        assert!(KeepAlive::parse(&json!("5x")).is_err());
        assert!(KeepAlive::parse(&json!(true)).is_err());
    }
}
