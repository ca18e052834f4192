//! What the server's test files share: a store holding the SmolLM2 test model, and
//! residency settings for tests.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use hearth_store::manifest::{CONFIG_MEDIA_TYPE, MODEL, PARAMS};
use hearth_store::{ImportMode, Manifest, ModelName, Store};

/// A store in a new temporary directory with the SmolLM2 test model as `name` (its config
/// blob `config`, its stored parameters `params`).
pub fn store_with_smollm2(name: &str, config: &[u8], params: &[u8]) -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (model, _) = store.import_file(MODEL, &hearth_engine::test_models::smollm2(), ImportMode::LinkOrCopy).unwrap();
    let config = store.write_blob(CONFIG_MEDIA_TYPE, config).unwrap();
    let params = store.write_blob(PARAMS, params).unwrap();
    store.write_manifest(&ModelName::parse(name).unwrap(), &Manifest::new(config, vec![model, params])).unwrap();
    (store, dir)
}

/// Residency for tests: one thread per model, `parallel` slots, `max_queue` waiting, five
/// minutes' keep-alive, no energy meter and no memory probe.
pub fn residency(parallel: u32, max_loaded: usize, max_queue: usize) -> hearth_server::ResidencyConfig {
    hearth_server::ResidencyConfig {
        parallel,
        max_loaded,
        max_queue,
        keep_alive: hearth_server::KeepAlive::For(std::time::Duration::from_secs(300)),
        engine: hearth_engine::EngineSettings { threads: Some(1), ..Default::default() },
        meter: std::sync::Arc::new(|| None::<Box<dyn hearth_core::EnergyMeter>>),
        available_memory: std::sync::Arc::new(|| None),
        prompt_cache: None,
    }
}
