//! `hearth create NAME -f Modelfile`: a model in the store from a local GGUF file (linked,
//! not copied, where the file system allows) or from another model, with parameters, a
//! system message, a template and messages.

use crate::models::open_store;
use anyhow::{bail, Context, Result};
use hearth_engine::GgufHeader;
use hearth_store::{manifest, ImportMode, Layer, Manifest, ModelConfig, ModelName, Modelfile, Store};
use serde_json::Value;
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
    let base_dir = args.file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mode = if args.copy { ImportMode::Copy } else { ImportMode::LinkOrCopy };
    let mut layers = base_layers(&store, &modelfile.from, base_dir, mode)?;

    let mut parameters = match layers.iter().find(|l| l.media_type == manifest::PARAMS) {
        Some(layer) => serde_json::from_slice(&store.read_blob(&layer.digest)?)?,
        None => serde_json::Map::new(),
    };
    parameters.extend(modelfile.parameters.clone());
    let mut set = |media_type: &str, bytes: Option<Vec<u8>>| -> Result<()> {
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
    set(manifest::TEMPLATE_JINJA, modelfile.template.map(String::into_bytes))?;
    set(manifest::SYSTEM, modelfile.system.map(String::into_bytes))?;
    let messages: Vec<Value> = modelfile
        .messages
        .iter()
        .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
        .collect();
    set(manifest::MESSAGES, (!messages.is_empty()).then(|| serde_json::to_vec(&messages).expect("json")))?;
    set(manifest::LICENSE, (!modelfile.license.is_empty()).then(|| modelfile.license.join("\n\n").into_bytes()))?;

    write_model(&store, &name, layers)?;
    println!("created {name}");
    Ok(ExitCode::SUCCESS)
}

/// Writes the manifest of a model made of `layers`, with a config read from its GGUF header
/// (family, parameter size, quantization) for `list` and `show`.
pub fn write_model(store: &Store, name: &ModelName, layers: Vec<Layer>) -> Result<()> {
    let model = layers.iter().find(|l| l.media_type == manifest::MODEL).context("no model layer")?;
    let info = GgufHeader::read(&store.blob_path(&model.digest))?.model_info();
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

/// The layers to start from: a GGUF file's, or those of a model already in the store.
fn base_layers(store: &Store, from: &str, base_dir: &Path, mode: ImportMode) -> Result<Vec<Layer>> {
    if hearth_store::is_gguf_url(from) {
        let layer = crate::pull::fetch_url(store, from)?;
        GgufHeader::read(&store.blob_path(&layer.digest)).with_context(|| from.to_string())?;
        return Ok(vec![layer]);
    }
    let path = base_dir.join(from);
    if path.is_file() {
        // Refuse a file that is not a complete GGUF before it enters the store.
        GgufHeader::read(&path).with_context(|| path.display().to_string())?;
        let (layer, placement) = store.import_file(manifest::MODEL, &path, mode)?;
        eprintln!("{}: {}", path.display(), placement.describe());
        return Ok(vec![layer]);
    }
    match ModelName::parse(from).ok().map(|name| store.manifest(&name)) {
        Some(Ok(base)) => Ok(base.layers),
        _ if from.ends_with(".gguf") || from.contains(std::path::MAIN_SEPARATOR) => {
            bail!("FROM {from}: no such file ({})", path.display())
        }
        _ => bail!("FROM {from}: neither a file nor a model in the store"),
    }
}
