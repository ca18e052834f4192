//! Residency's rules with a fake engine: keep-alive, least recently used first, the cap on
//! loaded models, unloading for memory, the queue limit, and loads that never block
//! requests for models already loaded.

use super::*;
use hearth_engine::EngineError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};

const GIB: u64 = 1 << 30;

/// A loaded fake: holds its share of the fake machine's memory until dropped, and says
/// when it goes.
struct FakeEngine {
    name: String,
    /// As asked at load, else 4096.
    context_size: u32,
    bytes: u64,
    in_use: Arc<AtomicU64>,
    dropped: flume::Sender<String>,
    stopped: AtomicBool,
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.in_use.fetch_sub(self.bytes, Ordering::SeqCst);
        let _ = self.dropped.send(self.name.clone());
    }
}

/// Models are files named `<name>.gguf`; each needs `sizes[name]` bytes (1 GiB unless
/// set). A model in `gated` loads only when the test sends on its gate.
struct FakeLoader {
    sizes: HashMap<String, u64>,
    gated: Mutex<HashMap<String, flume::Receiver<()>>>,
    /// Tells the test a gated load has begun.
    loading: flume::Sender<String>,
    loads: AtomicUsize,
    in_use: Arc<AtomicU64>,
    dropped: flume::Sender<String>,
}

fn model_of(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

impl Loader for FakeLoader {
    type Engine = FakeEngine;

    fn memory_needed(&self, path: &Path, _: &EngineSettings) -> Result<u64, EngineError> {
        Ok(*self.sizes.get(&model_of(path)).unwrap_or(&GIB))
    }

    fn load(&self, path: &Path, settings: &EngineSettings) -> Result<FakeEngine, EngineError> {
        let name = model_of(path);
        if name == "broken" {
            return Err(EngineError::Load { path: path.into(), detail: "not a model".into() });
        }
        let gate = self.gated.lock().unwrap().remove(&name);
        if let Some(gate) = gate {
            let _ = self.loading.send(name.clone());
            gate.recv().expect("the test opens the gate");
        }
        self.loads.fetch_add(1, Ordering::SeqCst);
        let bytes = self.memory_needed(path, settings)?;
        self.in_use.fetch_add(bytes, Ordering::SeqCst);
        Ok(FakeEngine {
            name,
            context_size: settings.context_size.unwrap_or(4096),
            bytes,
            in_use: self.in_use.clone(),
            dropped: self.dropped.clone(),
            stopped: AtomicBool::new(false),
        })
    }

    fn stop(engine: &FakeEngine) {
        engine.stopped.store(true, Ordering::SeqCst);
    }

    fn context_size(engine: &FakeEngine) -> u32 {
        engine.context_size
    }
}

struct Machine {
    residency: Arc<Residency<FakeLoader>>,
    dropped: flume::Receiver<String>,
    loading: flume::Receiver<String>,
}

struct Setup {
    max_loaded: usize,
    parallel: u32,
    max_queue: usize,
    keep_alive: KeepAlive,
    /// Memory of the fake machine; `None`: unknown.
    memory: Option<u64>,
    sizes: &'static [(&'static str, u64)],
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            max_loaded: 3,
            parallel: 1,
            max_queue: 0,
            keep_alive: KeepAlive::For(Duration::from_secs(300)),
            memory: None,
            sizes: &[],
        }
    }
}

impl Setup {
    fn machine(self) -> Machine {
        let in_use = Arc::new(AtomicU64::new(0));
        let (dropped_tx, dropped) = flume::unbounded();
        let (loading_tx, loading) = flume::unbounded();
        let loader = FakeLoader {
            sizes: self.sizes.iter().map(|(name, bytes)| (name.to_string(), *bytes)).collect(),
            gated: Mutex::default(),
            loading: loading_tx,
            loads: AtomicUsize::new(0),
            in_use: in_use.clone(),
            dropped: dropped_tx,
        };
        let memory = self.memory;
        let config = ResidencyConfig {
            parallel: self.parallel,
            max_loaded: self.max_loaded,
            max_queue: self.max_queue,
            keep_alive: self.keep_alive,
            engine: EngineSettings::default(),
            meter: Arc::new(|| None),
            available_memory: Arc::new(move || memory.map(|total| total - in_use.load(Ordering::SeqCst))),
            prompt_cache: None,
        };
        Machine { residency: Arc::new(Residency::with_loader(loader, config)), dropped, loading }
    }
}

fn keeping(keep_alive: KeepAlive) -> Wanted {
    Wanted { keep_alive: Some(keep_alive), ..Wanted::default() }
}

fn name(model: &str) -> ModelName {
    ModelName::parse(model).unwrap()
}

fn spec(model: &str) -> ModelSpec {
    ModelSpec {
        path: PathBuf::from(format!("/models/{model}.gguf")),
        digest: None,
        size: GIB,
        parameters: Default::default(),
        system: None,
        template: None,
        messages: Vec::new(),
        draft: None,
    }
}

impl Machine {
    async fn acquire(&self, model: &str) -> Result<Lease<FakeEngine>, ResidencyError> {
        self.residency.acquire(&name(model), spec(model), Wanted::default()).await
    }

    fn loaded(&self) -> Vec<String> {
        self.residency.loaded().iter().map(|m| m.engine.name.clone()).collect()
    }

    /// The next model whose engine went away.
    async fn next_dropped(&self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.dropped.recv_async())
            .await
            .expect("an engine was dropped")
            .unwrap()
    }

    /// Makes `model`'s next load wait for the returned gate.
    fn gate(&self, model: &str) -> flume::Sender<()> {
        let (open, gate) = flume::bounded(1);
        self.residency.loader.gated.lock().unwrap().insert(model.to_string(), gate);
        open
    }

    fn loads(&self) -> usize {
        self.residency.loader.loads.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_model_unloads_when_its_keep_alive_runs_out_and_not_before() {
    let machine = Setup::default().machine();
    let lease =
        machine.residency.acquire(&name("a"), spec("a"), keeping(KeepAlive::For(Duration::ZERO))).await.unwrap();
    machine.residency.sweep();
    assert_eq!(machine.loaded(), ["a"], "a lease keeps its model loaded past its keep-alive");
    drop(lease);
    drop(machine.residency.acquire(&name("b"), spec("b"), keeping(KeepAlive::For(Duration::from_secs(3600)))).await);
    drop(machine.residency.acquire(&name("c"), spec("c"), keeping(KeepAlive::Forever)).await);
    machine.residency.sweep();
    assert_eq!(machine.next_dropped().await, "a");
    assert_eq!(machine.loaded(), ["c", "b"]);
    assert_eq!(machine.residency.loaded()[0].expires_at(), None, "forever has no expiry");
}

#[tokio::test]
async fn the_least_recently_used_idle_model_makes_room_under_max_loaded() {
    let machine = Setup { max_loaded: 2, ..Setup::default() }.machine();
    drop(machine.acquire("a").await.unwrap());
    drop(machine.acquire("b").await.unwrap());
    drop(machine.acquire("a").await.unwrap());
    assert_eq!(machine.loaded(), ["a", "b"], "most recently used first");
    drop(machine.acquire("c").await.unwrap());
    assert_eq!(machine.next_dropped().await, "b");
    assert_eq!(machine.loaded(), ["c", "a"]);
    assert_eq!(machine.loads(), 3, "a was used again without loading again");
}

#[tokio::test]
async fn no_model_unloads_under_a_request_and_a_full_house_is_busy() {
    let machine = Setup { max_loaded: 2, ..Setup::default() }.machine();
    let (a, b) = (machine.acquire("a").await.unwrap(), machine.acquire("b").await.unwrap());
    let refused = machine.acquire("c").await.err().unwrap();
    assert!(matches!(refused, ResidencyError::AllBusy { loaded: 2 }), "{refused}");
    drop(a);
    drop(machine.acquire("c").await.unwrap());
    assert_eq!(machine.next_dropped().await, "a");
    drop(b);
}

#[tokio::test]
async fn a_model_fits_now_after_unloading_or_not_at_all() {
    let sizes = &[("a", 4 * GIB), ("b", 4 * GIB), ("c", 7 * GIB), ("huge", 20 * GIB)];
    let machine = Setup { memory: Some(10 * GIB), sizes, ..Setup::default() }.machine();
    let fit = |model: &'static str| {
        let residency = machine.residency.clone();
        async move { residency.fit(&name(model), &spec(model)).await.unwrap().unwrap() }
    };
    let _a = machine.acquire("a").await.unwrap();
    let b = fit("b").await;
    assert_eq!((b.verdict, b.needed, b.available, b.loaded), (Verdict::Fits, 4 * GIB, 6 * GIB, GIB));
    // 7 GiB against 6 free, and a's file (1 GiB in the fake store) would come back unloaded.
    assert_eq!(fit("c").await.verdict, Verdict::FitsAfterUnloading);
    assert_eq!(fit("huge").await.verdict, Verdict::DoesNotFit);
    assert_eq!(fit("a").await.verdict, Verdict::Fits, "a model running now fits");
    assert_eq!(machine.loaded(), ["a"], "asking loads and unloads nothing");
    let unknown = Setup { sizes, ..Setup::default() }.machine();
    assert_eq!(unknown.residency.fit(&name("b"), &spec("b")).await.unwrap(), None, "no memory probe, no verdict");
}

#[tokio::test]
async fn idle_models_unload_for_memory_and_a_model_too_large_is_refused() {
    let sizes = &[("a", 4 * GIB), ("b", 4 * GIB), ("c", 5 * GIB), ("huge", 20 * GIB)];
    let machine = Setup { memory: Some(10 * GIB), sizes, ..Setup::default() }.machine();
    drop(machine.acquire("a").await.unwrap());
    let b = machine.acquire("b").await.unwrap();
    assert_eq!(machine.loaded(), ["b", "a"], "8 of 10 GiB: both fit");
    // c needs 5 GiB with 2 free: a is idle and goes; b is answering and stays.
    drop(machine.acquire("c").await.unwrap());
    assert_eq!(machine.next_dropped().await, "a");
    assert_eq!(machine.loaded(), ["c", "b"]);
    let refused = machine.acquire("huge").await.err().unwrap();
    assert!(matches!(refused, ResidencyError::NoRoomNow { .. }), "b is answering, so huge might fit later: {refused}");
    assert!(machine.loaded().contains(&"b".to_string()));
    drop(b);
    let refused = machine.acquire("huge").await.err().unwrap();
    assert!(matches!(refused, ResidencyError::DoesNotFit { needed, .. } if needed == 20 * GIB), "{refused}");
    assert!(refused.to_string().contains("20.0 GiB of memory"), "{refused}");
    assert!(machine.loaded().is_empty(), "everything idle was unloaded trying");
}

#[tokio::test]
async fn past_the_slots_and_the_queue_a_request_is_busy_and_scrapes_do_not_count() {
    let machine = Setup { parallel: 2, max_queue: 1, ..Setup::default() }.machine();
    let mut leases = vec![machine.acquire("a").await.unwrap()];
    // What /metrics and /api/ps hold while they render: references, not permits.
    let scrapes: Vec<_> = (0..8).map(|_| machine.residency.loaded()).collect();
    leases.push(machine.acquire("a").await.unwrap());
    leases.push(machine.acquire("a").await.unwrap());
    let refused = machine.acquire("a").await.err().unwrap();
    assert!(matches!(refused, ResidencyError::Busy { requests: 3, slots: 2, queue: 1, .. }), "{refused}");
    assert_eq!(scrapes[0][0].requests(), 3);
    leases.pop();
    leases.push(machine.acquire("a").await.expect("a permit came back"));
    // Idle with references still out: it unloads when its keep-alive says.
    leases.clear();
    assert!(machine.residency.unload(&name("a")));
    assert!(machine.loaded().is_empty());
    drop(scrapes);
    assert_eq!(machine.next_dropped().await, "a");
}

#[tokio::test]
async fn a_loaded_model_is_served_while_another_model_loads() {
    let machine = Setup::default().machine();
    drop(machine.acquire("a").await.unwrap());
    let open_b = machine.gate("b");
    let residency = machine.residency.clone();
    let loading_b =
        tokio::spawn(async move { residency.acquire(&name("b"), spec("b"), Wanted::default()).await.map(drop) });
    assert_eq!(machine.loading.recv_async().await.unwrap(), "b");
    let a = tokio::time::timeout(Duration::from_secs(5), machine.acquire("a"))
        .await
        .expect("a's lease does not wait for b's load")
        .unwrap();
    assert_eq!(a.load_duration, Duration::ZERO);
    assert!(!loading_b.is_finished(), "b is still loading");
    drop(a);
    open_b.send(()).unwrap();
    loading_b.await.unwrap().unwrap();
    assert_eq!(machine.loaded(), ["b", "a"]);
}

#[tokio::test]
async fn requests_for_a_model_that_is_loading_share_one_load() {
    let machine = Setup { parallel: 4, ..Setup::default() }.machine();
    let open = machine.gate("a");
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let residency = machine.residency.clone();
        waiting.push(tokio::spawn(async move {
            residency.acquire(&name("a"), spec("a"), Wanted::default()).await.map(drop)
        }));
    }
    assert_eq!(machine.loading.recv_async().await.unwrap(), "a");
    open.send(()).unwrap();
    for request in waiting {
        request.await.unwrap().unwrap();
    }
    assert_eq!(machine.loads(), 1);
}

#[tokio::test]
async fn a_failed_load_is_the_requests_error_and_leaves_nothing_behind() {
    let machine = Setup::default().machine();
    let refused = machine.acquire("broken").await.err().unwrap();
    assert!(matches!(refused, ResidencyError::LoadFailed { .. }), "{refused}");
    let mut stored = spec("a");
    let mut parameters = serde_json::Map::new();
    parameters.insert("num_thread".into(), 1_000_000.into());
    stored.parameters = hearth_core::parameters::StoredParameters::read(parameters);
    let refused = machine.residency.acquire(&name("a"), stored, Wanted::default()).await.err().unwrap();
    assert!(matches!(refused, ResidencyError::InvalidSetting { .. }), "{refused}");
    assert!(machine.loaded().is_empty());
    drop(machine.acquire("a").await.unwrap());
}

#[tokio::test]
async fn shutdown_stops_engines_and_drops_a_load_that_ends_after_it() {
    let machine = Setup::default().machine();
    let a = machine.acquire("a").await.unwrap();
    let open_b = machine.gate("b");
    let residency = machine.residency.clone();
    let loading_b =
        tokio::spawn(async move { residency.acquire(&name("b"), spec("b"), Wanted::default()).await.map(drop) });
    assert_eq!(machine.loading.recv_async().await.unwrap(), "b");
    machine.residency.unload_all();
    assert!(a.model.engine.stopped.load(Ordering::SeqCst), "running requests are told to end");
    open_b.send(()).unwrap();
    assert!(matches!(loading_b.await.unwrap(), Err(ResidencyError::ShuttingDown)));
    assert_eq!(machine.next_dropped().await, "b");
    drop(a);
    assert_eq!(machine.next_dropped().await, "a");
    assert!(matches!(machine.acquire("c").await, Err(ResidencyError::ShuttingDown)));
}

/// Regression: the same GGUF under several names (a copy, a `FROM` another name) was loaded
/// once per name.
#[tokio::test]
async fn names_for_one_file_with_one_set_of_settings_share_an_engine() {
    let machine = Setup { parallel: 2, ..Setup::default() }.machine();
    let alias = ModelSpec { system: Some("Be a pirate.".into()), ..spec("a") };
    let first = machine.acquire("a").await.unwrap();
    let second = machine.residency.acquire(&name("pirate"), alias, Wanted::default()).await.unwrap();
    assert!(Arc::ptr_eq(&first.model, &second.model), "one engine");
    assert_eq!((machine.loads(), machine.loaded()), (1, vec!["a".to_string()]));
    assert_eq!(second.spec.system.as_deref(), Some("Be a pirate."), "each lease has its own name's spec");
    assert_eq!(first.spec.system, None);
    // Another template is another engine.
    let templated = ModelSpec { template: Some("{{ messages }}".into()), ..spec("a") };
    drop(machine.residency.acquire(&name("templated"), templated, Wanted::default()).await.unwrap());
    assert_eq!(machine.loads(), 2);
    drop((first, second));
    // An unload by any of its names finds it.
    assert!(machine.residency.unload(&name("pirate")));
    assert_eq!(machine.next_dropped().await, "a");
}

/// Regression: Ollama's per-request `num_ctx` was ignored, every model ran at 4096 tokens.
#[tokio::test]
async fn a_request_for_more_context_gets_an_engine_with_that_context() {
    let machine = Setup { max_loaded: 1, ..Setup::default() }.machine();
    let wanted = |context_size| Wanted { context_size, ..Wanted::default() };
    let default = machine.residency.acquire(&name("a"), spec("a"), wanted(None)).await.unwrap();
    assert_eq!(default.model.engine.context_size, 4096);
    drop(default);
    // As much as the loaded engine has, or less: that engine serves it.
    drop(machine.residency.acquire(&name("a"), spec("a"), wanted(Some(4096))).await.unwrap());
    drop(machine.residency.acquire(&name("a"), spec("a"), wanted(Some(1024))).await.unwrap());
    assert_eq!(machine.loads(), 1);
    let larger = machine.residency.acquire(&name("a"), spec("a"), wanted(Some(8192))).await.unwrap();
    assert_eq!((larger.model.engine.context_size, machine.loads()), (8192, 2));
    assert_eq!(machine.next_dropped().await, "a", "the idle engine made room under max_loaded");
    drop(larger);
    // The larger engine now serves every context up to its own, and requests that ask none.
    drop(machine.residency.acquire(&name("a"), spec("a"), wanted(None)).await.unwrap());
    let stored = ModelSpec {
        parameters: hearth_core::parameters::StoredParameters::read(
            serde_json::json!({"num_ctx": 2048}).as_object().unwrap().clone(),
        ),
        ..spec("a")
    };
    drop(machine.residency.acquire(&name("a"), stored, wanted(None)).await.unwrap());
    assert_eq!(machine.loads(), 2);
}

/// An unload by name reaches every engine the name is served by, and a name made anew for
/// another file leaves the engine of its old file alone.
#[tokio::test]
async fn unloading_a_name_reaches_its_engines_and_only_theirs() {
    let machine = Setup::default().machine();
    let wanted = |context_size| Wanted { context_size, ..Wanted::default() };
    drop(machine.residency.acquire(&name("a"), spec("a"), wanted(None)).await.unwrap());
    drop(machine.residency.acquire(&name("a"), spec("a"), wanted(Some(8192))).await.unwrap());
    // "b" shares "a"'s file, then is made anew from another file.
    drop(machine.residency.acquire(&name("b"), spec("a"), wanted(None)).await.unwrap());
    drop(machine.residency.acquire(&name("b"), spec("c"), wanted(None)).await.unwrap());
    assert_eq!(machine.loads(), 3);
    assert!(machine.residency.unload(&name("b")));
    assert_eq!(machine.next_dropped().await, "c", "b's engine now, not a's");
    assert!(machine.residency.unload(&name("a")));
    let mut gone = [machine.next_dropped().await, machine.next_dropped().await];
    gone.sort();
    assert_eq!(gone, ["a", "a"], "both of a's engines");
    assert!(!machine.residency.unload(&name("a")));
}
