//! Turns a `MODEL` argument into a GGUF file and the settings stored with it: a path names a
//! file; anything else is a model name looked up in the store.

use anyhow::{Context, Result};
use hearth_store::{ModelSpec, ParallelDownloads, Store, StoreError};
use std::path::Path;

/// The store at `$HEARTH_MODELS`; `HEARTH_DOWNLOAD_CONNECTIONS` sets how many parts of a
/// large blob download at once (default 4).
pub fn open_store() -> Result<Store> {
    let root = Store::default_root();
    let store = Store::open(&root).with_context(|| format!("opening the model store at {}", root.display()))?;
    let mut parallel = ParallelDownloads::default();
    if let Ok(value) = std::env::var("HEARTH_DOWNLOAD_CONNECTIONS") {
        parallel.connections = value
            .parse()
            .ok()
            .filter(|&n| (1..=64).contains(&n))
            .with_context(|| format!("HEARTH_DOWNLOAD_CONNECTIONS={value}: expected a number from 1 to 64"))?;
    }
    Ok(store.with_parallel_downloads(parallel))
}

/// An existing path, or anything ending in `.gguf` but a URL, is a file; the rest are model
/// names (a URL of a GGUF is one too: the name `hearth pull` gives it).
pub fn resolve(arg: &str) -> Result<ModelSpec> {
    let path = Path::new(arg);
    if path.exists() || (arg.ends_with(".gguf") && !hearth_store::is_gguf_url(arg)) {
        return Ok(ModelSpec { path: path.to_path_buf(), ..Default::default() });
    }
    let name = crate::pull::model_name(arg)?;
    let store = open_store()?;
    match store.model_spec(&name) {
        // A model not in the store is pulled on first use, as Ollama does.
        Err(StoreError::NotFound(_)) => {
            crate::pull::pull(&store, arg, false)
                .with_context(|| format!("model '{name}' is not in the store, and pulling it failed"))?;
            Ok(store.model_spec(&name)?)
        }
        other => Ok(other?),
    }
}
