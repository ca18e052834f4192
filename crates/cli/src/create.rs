//! `hearth create NAME -f Modelfile`: a model in the store from a local GGUF file (linked,
//! not copied, where the file system allows), a URL, or another model, with parameters, a
//! system message, a template and messages.

use crate::models::open_store;
use anyhow::{Context, Result};
use hearth_server::models::{self, Base};
use hearth_store::{ImportMode, ModelName, Modelfile, Progress};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Name for the new model, e.g. `mymodel` or `me/mymodel:v1`
    name: String,
    /// The Modelfile to build from
    #[arg(long, short = 'f', default_value = "Modelfile")]
    file: PathBuf,
    /// Copy a local GGUF into the store even when it could be linked
    #[arg(long)]
    copy: bool,
}

pub fn run(args: CreateArgs) -> Result<ExitCode> {
    let name = ModelName::parse(&args.name)?;
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let modelfile = Modelfile::parse(&text).with_context(|| args.file.display().to_string())?;
    let store = open_store()?;
    let dir = args.file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mode = if args.copy { ImportMode::Copy } else { ImportMode::LinkOrCopy };
    let mut downloads = crate::pull::reporter(&name);
    let mut report = |progress: Progress<'_>| match progress {
        // A local file's placement is worth a line; the rest is the download's.
        Progress::Step(step) if step.contains(": ") => eprintln!("{step}"),
        Progress::Step("writing manifest") => {}
        other => downloads(other),
    };
    models::create(&store, &name, &modelfile, Base::Files { dir, mode }, &mut report)?;
    println!("created {name}");
    Ok(ExitCode::SUCCESS)
}
