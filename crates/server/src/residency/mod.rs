//! Which models are loaded: a model loads on its first request and stays for `keep_alive`
//! after its last one (default 5 minutes; 0 unloads at once, negative keeps it), at most
//! `max_loaded` at a time (the least recently used one goes first), unloading idle models
//! while a model to load needs their memory. A request holds a [`Lease`] on its model, so
//! nothing unloads under a running answer. A lease carries a permit of the model's
//! admission semaphore (slots plus queue): a model is idle when all its permits are back,
//! whoever else holds a reference to it (a `/metrics` scrape, `ps`).
//!
//! A loaded engine is one GGUF file run with one set of settings: names that are the same
//! file with the same settings (a copy, a `FROM` without a new template) share it, and a
//! request that asks for more context than the loaded engines have (Ollama's `num_ctx`)
//! gets an engine with that context; one with at least as much serves it otherwise.
//!
//! The list of loaded models is behind a lock held only for moments, never across a load:
//! loads take turns on a lock of their own, so a request for a loaded model is answered
//! while another model loads. Nothing here knows HTTP or the engine's type ([`Loader`]).

mod error;
mod keep_alive;
mod loader;
#[cfg(test)]
mod tests;

pub use error::ResidencyError;
pub use keep_alive::KeepAlive;
pub use loader::{LlamaLoader, Loader, MeterFactory};

use hearth_engine::{EngineError, EngineSettings, PromptCacheConfig, Verdict};
use hearth_store::{ModelName, ModelSpec};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Bytes of memory the system can give now (`None`: unknown, so never the reason to unload).
pub type MemoryProbe = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// The system's `MemAvailable`.
pub fn system_memory() -> MemoryProbe {
    Arc::new(hearth_engine::available_memory)
}

/// A model's memory against the machine's, now (see [`Residency::fit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Fit {
    /// Bytes the model needs with the settings a load would use.
    pub needed: u64,
    /// Bytes available now.
    pub available: u64,
    /// Bytes (of model files) held by the other loaded models, which unloading frees.
    pub loaded: u64,
    pub verdict: Verdict,
}

#[derive(Clone)]
pub struct ResidencyConfig {
    /// Sequences each engine decodes at once.
    pub parallel: u32,
    pub max_loaded: usize,
    /// Requests that may wait for a slot of a model; past that, [`ResidencyError::Busy`].
    pub max_queue: usize,
    pub keep_alive: KeepAlive,
    /// The server's own engine settings (threads, the KV cache), over each model's stored ones.
    pub engine: EngineSettings,
    pub meter: MeterFactory,
    /// Idle models unload, least recently used first, while a model to load needs more.
    pub available_memory: MemoryProbe,
    /// Where long prompts' caches are saved; `None`: nowhere.
    pub prompt_cache: Option<PromptCacheConfig>,
}

/// What a request asks of the model it leases, beyond its name.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// How long the model stays loaded after this request; the server's default if `None`.
    pub keep_alive: Option<KeepAlive>,
    /// Tokens of context (Ollama's per-request `num_ctx`); the model's stored or default
    /// context if `None`.
    pub context_size: Option<u32>,
    /// A draft model for speculative decoding (hearth's per-request `draft`), over the
    /// server's and the model's; an engine with another draft does not serve the request.
    pub draft: Option<DraftModel>,
}

/// A request's draft model: as the request names it, then the GGUF that name is stored as
/// (the service looks it up before the lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftModel {
    Named(ModelName),
    File(PathBuf),
}

/// A loaded model: an engine running one file with one set of settings.
pub struct LoadedModel<E> {
    /// The name it was loaded under, and its stored spec.
    pub name: ModelName,
    pub spec: ModelSpec,
    pub engine: E,
    settings: EngineSettings,
    /// Every name it has served, so an unload by any of them finds it.
    names: Mutex<Vec<ModelName>>,
    /// When it unloads if no request holds it; `None`: never.
    expires: Mutex<Option<Instant>>,
    keep_alive: Mutex<KeepAlive>,
    /// One permit per request that may run or wait: slots plus the queue.
    admission: Arc<tokio::sync::Semaphore>,
    capacity: usize,
}

impl<E> LoadedModel<E> {
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

    /// A lease for `spec`, if the model has room for one more request.
    fn lease(self: &Arc<Self>, spec: &ModelSpec, load_duration: Duration) -> Option<Lease<E>> {
        let permit = self.admission.clone().try_acquire_owned().ok()?;
        Some(Lease { model: self.clone(), spec: spec.clone(), load_duration, _permit: permit })
    }

    fn answers_to(&self, name: &ModelName) -> bool {
        self.names.lock().expect("not poisoned").iter().any(|n| n.same_as(name))
    }

    fn expire_now(&self) {
        *self.keep_alive.lock().expect("not poisoned") = KeepAlive::For(Duration::ZERO);
        *self.expires.lock().expect("not poisoned") = Some(Instant::now());
    }
}

/// A request's hold on a loaded model; when it ends, the model's keep-alive starts over.
pub struct Lease<E> {
    pub model: Arc<LoadedModel<E>>,
    /// The spec of the name the request asked for (its system message, parameters), which
    /// may be another name for the file the engine runs.
    pub spec: ModelSpec,
    /// Time spent loading the model for this request (zero when it was loaded already).
    pub load_duration: Duration,
    /// Given back after `drop` has set the expiry, so a sweep never sees an idle model
    /// without it.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<E> Drop for Lease<E> {
    fn drop(&mut self) {
        let keep_alive = *self.model.keep_alive.lock().expect("not poisoned");
        *self.model.expires.lock().expect("not poisoned") = match keep_alive {
            KeepAlive::For(d) => Some(Instant::now() + d),
            KeepAlive::Forever => None,
        };
    }
}

pub struct Residency<L: Loader = LlamaLoader> {
    loader: Arc<L>,
    config: ResidencyConfig,
    /// Loaded models, most recently used last. Held only for moments, never across an await.
    loaded: Mutex<Vec<Arc<LoadedModel<L::Engine>>>>,
    /// Loads take turns: each measures memory and unloads for itself.
    loading: tokio::sync::Mutex<()>,
    /// Set at shutdown: a load that finishes later is dropped rather than kept.
    closed: AtomicBool,
}

impl Residency<LlamaLoader> {
    /// Residency of llama.cpp engines, metered with `config.meter`.
    pub fn new(config: ResidencyConfig) -> Self {
        let loader = LlamaLoader { meter: config.meter.clone(), prompt_cache: config.prompt_cache.clone() };
        Self::with_loader(loader, config)
    }
}

impl<L: Loader> Residency<L> {
    pub fn with_loader(loader: L, config: ResidencyConfig) -> Self {
        Self {
            loader: Arc::new(loader),
            config,
            loaded: Mutex::new(Vec::new()),
            loading: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &ResidencyConfig {
        &self.config
    }

    fn models(&self) -> MutexGuard<'_, Vec<Arc<LoadedModel<L::Engine>>>> {
        self.loaded.lock().expect("not poisoned")
    }

    /// A lease on `name` (stored as `spec`), loading it if no engine runs its file with the
    /// settings `wanted` makes; the keep-alive `wanted` gives applies from now on.
    pub async fn acquire(
        &self,
        name: &ModelName,
        spec: ModelSpec,
        wanted: Wanted,
    ) -> Result<Lease<L::Engine>, ResidencyError> {
        let keep_alive = wanted.keep_alive.unwrap_or(self.config.keep_alive);
        let settings = self.engine_settings(name, &spec, &wanted)?;
        if let Some(lease) = self.lease_loaded(name, &spec, &settings, keep_alive)? {
            return Ok(lease);
        }
        let _turn = self.loading.lock().await;
        // It may have loaded while this request waited for its turn.
        if let Some(lease) = self.lease_loaded(name, &spec, &settings, keep_alive)? {
            return Ok(lease);
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(ResidencyError::ShuttingDown);
        }
        self.keep_under_max_loaded()?;
        self.make_room(name, &spec, &settings).await?;
        let started = Instant::now();
        let (loader, path, for_load) = (self.loader.clone(), spec.path.clone(), settings.clone());
        let engine = tokio::task::spawn_blocking(move || loader.load(&path, &for_load))
            .await
            .map_err(|e| {
                ResidencyError::load(name, EngineError::Load { path: spec.path.clone(), detail: e.to_string() })
            })?
            .map_err(|e| ResidencyError::load(name, e))?;
        tracing::info!(model = %name, seconds = started.elapsed().as_secs_f64(), "model loaded");
        let capacity = self.config.parallel as usize + self.config.max_queue;
        let model = Arc::new(LoadedModel {
            name: name.clone(),
            spec: spec.clone(),
            engine,
            settings,
            names: Mutex::new(vec![name.clone()]),
            expires: Mutex::new(None),
            keep_alive: Mutex::new(keep_alive),
            admission: Arc::new(tokio::sync::Semaphore::new(capacity)),
            capacity,
        });
        let lease = model.lease(&spec, started.elapsed()).expect("a new model has room");
        let mut loaded = self.models();
        if self.closed.load(Ordering::SeqCst) {
            drop(loaded);
            drop(lease);
            unload(model);
            return Err(ResidencyError::ShuttingDown);
        }
        known_as(&loaded, &model, name);
        loaded.push(model);
        Ok(lease)
    }

    /// A lease on an engine that runs `spec`'s file with `settings` (made most recently
    /// used, and known by `name` from now on), or why it has no room; `None` when there is
    /// no such engine.
    fn lease_loaded(
        &self,
        name: &ModelName,
        spec: &ModelSpec,
        settings: &EngineSettings,
        keep_alive: KeepAlive,
    ) -> Result<Option<Lease<L::Engine>>, ResidencyError> {
        let mut loaded = self.models();
        // The most recently used engine that serves it.
        let Some(at) = loaded.iter().rposition(|m| serves(m, spec, settings, L::context_size(&m.engine))) else {
            return Ok(None);
        };
        let Some(lease) = loaded[at].lease(spec, Duration::ZERO) else {
            return Err(ResidencyError::Busy {
                model: name.clone(),
                requests: loaded[at].requests(),
                slots: self.config.parallel,
                queue: self.config.max_queue,
            });
        };
        let model = loaded.remove(at);
        *model.keep_alive.lock().expect("not poisoned") = keep_alive;
        known_as(&loaded, &model, name);
        loaded.push(model);
        Ok(Some(lease))
    }

    /// Room for one more model: idle ones unload, least recently used first.
    fn keep_under_max_loaded(&self) -> Result<(), ResidencyError> {
        let mut loaded = self.models();
        while loaded.len() >= self.config.max_loaded.max(1) {
            let Some(idle) = loaded.iter().position(|m| m.is_idle()) else {
                return Err(ResidencyError::AllBusy { loaded: loaded.len() });
            };
            unload(loaded.remove(idle));
        }
        Ok(())
    }

    /// Unloads idle models, least recently used first, until the model fits in memory; a
    /// model that cannot fit even alone is refused rather than pushing the machine to swap.
    async fn make_room(
        &self,
        name: &ModelName,
        spec: &ModelSpec,
        settings: &EngineSettings,
    ) -> Result<(), ResidencyError> {
        // The load itself reports a model it cannot read.
        let Some(needed) = self.memory_needed(name, spec, settings).await? else { return Ok(()) };
        loop {
            let Some(available) = (self.config.available_memory)() else { return Ok(()) };
            if needed <= available {
                return Ok(());
            }
            let idle = {
                let mut loaded = self.models();
                match loaded.iter().position(|m| m.is_idle()) {
                    Some(idle) => loaded.remove(idle),
                    None if loaded.is_empty() => {
                        let slots = self.config.parallel;
                        return Err(ResidencyError::DoesNotFit { model: name.clone(), needed, available, slots });
                    }
                    None => return Err(ResidencyError::NoRoomNow { model: name.clone(), needed, available }),
                }
            };
            tracing::info!(model = %idle.name, for_model = %name, "unloading to free memory");
            // Wait for the memory to be given back before measuring again.
            let _ = tokio::task::spawn_blocking(move || drop(idle)).await;
        }
    }

    /// The memory `spec` needs with `settings`; `None` when its file cannot be read.
    async fn memory_needed(
        &self,
        name: &ModelName,
        spec: &ModelSpec,
        settings: &EngineSettings,
    ) -> Result<Option<u64>, ResidencyError> {
        let (loader, path, for_estimate) = (self.loader.clone(), spec.path.clone(), settings.clone());
        match tokio::task::spawn_blocking(move || loader.memory_needed(&path, &for_estimate)).await {
            Ok(Ok(needed)) => Ok(Some(needed)),
            Ok(Err(e @ EngineError::InvalidSetting(_))) => Err(ResidencyError::load(name, e)),
            Ok(Err(_)) | Err(_) => Ok(None),
        }
    }

    /// Whether `spec` would load now with the settings a request without options gets: the
    /// memory it needs against what is available and what unloading the loaded models would
    /// free. `None` when either side is unknown.
    pub async fn fit(&self, name: &ModelName, spec: &ModelSpec) -> Result<Option<Fit>, ResidencyError> {
        let settings = self.engine_settings(name, spec, &Wanted::default())?;
        let Some(needed) = self.memory_needed(name, spec, &settings).await? else { return Ok(None) };
        let Some(available) = (self.config.available_memory)() else { return Ok(None) };
        let (running, loaded) = {
            let models = self.models();
            let running = models.iter().any(|m| m.spec.path == spec.path);
            (running, models.iter().filter(|m| m.spec.path != spec.path).map(|m| m.spec.size).sum())
        };
        // A model running now fits: its own memory is already out of what is available.
        let verdict = if running { Verdict::Fits } else { Verdict::of(needed, available, loaded) };
        Ok(Some(Fit { needed, available, loaded, verdict }))
    }

    /// The settings `spec` runs with: the server's own (threads, KV cache) over its stored
    /// ones, the server's slots, and the context and draft model a request asks for (a
    /// draft model asked for replaces prompt lookup).
    fn engine_settings(
        &self,
        name: &ModelName,
        spec: &ModelSpec,
        wanted: &Wanted,
    ) -> Result<EngineSettings, ResidencyError> {
        let stored = EngineSettings::stored(&spec.parameters, spec.template.clone(), spec.draft.clone())
            .map_err(|e| ResidencyError::load(name, e))?;
        let mut settings = self.config.engine.or(stored);
        settings.context_size = wanted.context_size.or(settings.context_size);
        if let Some(DraftModel::File(draft)) = &wanted.draft {
            settings.draft = Some(draft.clone());
            settings.lookup = None;
        }
        settings.parallel = Some(self.config.parallel);
        settings.check().map_err(|e| ResidencyError::load(name, e))?;
        Ok(settings)
    }

    /// Unloads every engine `name` is served by, now if no request holds it, else when its
    /// last request ends; returns whether any was loaded.
    pub fn unload(&self, name: &ModelName) -> bool {
        let mut loaded = self.models();
        let (mine, others): (Vec<_>, Vec<_>) = loaded.drain(..).partition(|m| m.answers_to(name));
        *loaded = others;
        let found = !mine.is_empty();
        for model in mine {
            if model.is_idle() {
                unload(model);
            } else {
                // Answering still: it goes when its last request ends.
                model.expire_now();
                loaded.push(model);
            }
        }
        found
    }

    /// The loaded models, most recently used first.
    pub fn loaded(&self) -> Vec<Arc<LoadedModel<L::Engine>>> {
        self.models().iter().rev().cloned().collect()
    }

    /// Unloads every model whose keep-alive ran out and that no request holds.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut loaded = self.models();
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
    /// next step, so no engine thread outlives the server; a load still going is dropped
    /// when it ends.
    pub fn unload_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for model in self.models().drain(..) {
            L::stop(&model.engine);
            unload(model);
        }
    }
}

/// Dropping an engine joins its thread: done off the async workers.
fn unload<E: Send + Sync + 'static>(model: Arc<LoadedModel<E>>) {
    tracing::info!(model = %model.name, "model unloaded");
    tokio::task::spawn_blocking(move || drop(model));
}

/// Whether `model` serves a request for `spec` run with `settings`: the same file, the same
/// settings but for the context, and at least the context asked for (`context_size`: the
/// engine's, defaults resolved); a request that asks for none takes any.
fn serves<E>(model: &LoadedModel<E>, spec: &ModelSpec, settings: &EngineSettings, context_size: u32) -> bool {
    let same_but_context = EngineSettings { context_size: None, ..model.settings.clone() }
        == EngineSettings { context_size: None, ..settings.clone() };
    model.spec.path == spec.path
        && same_but_context
        && settings.context_size.is_none_or(|wanted| context_size >= wanted)
}

/// `name` is served by `model` from now on: an engine of another file that it named before
/// no longer answers to it (the name was made anew).
fn known_as<E>(loaded: &[Arc<LoadedModel<E>>], model: &LoadedModel<E>, name: &ModelName) {
    for other in loaded.iter().filter(|m| m.spec.path != model.spec.path) {
        other.names.lock().expect("not poisoned").retain(|n| !n.same_as(name));
    }
    if !model.answers_to(name) {
        model.names.lock().expect("not poisoned").push(name.clone());
    }
}
