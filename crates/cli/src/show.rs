//! `hearth show NAME`: what a model is (from its GGUF header) and what is stored with it;
//! `--path` prints the GGUF file so other tools can use the same file.

use crate::list::human_size;
use crate::models::open_store;
use anyhow::{Context, Result};
use hearth_engine::GgufHeader;
use hearth_store::{manifest, ModelName};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ShowArgs {
    name: String,
    /// Print the path of the model's GGUF file
    #[arg(long, group = "part")]
    path: bool,
    /// Print a Modelfile that recreates the model
    #[arg(long, group = "part")]
    modelfile: bool,
    /// Print the stored parameters
    #[arg(long, group = "part")]
    parameters: bool,
    /// Print the system message
    #[arg(long, group = "part")]
    system: bool,
    /// Print the chat template (stored, or the one in the GGUF)
    #[arg(long, group = "part")]
    template: bool,
    /// Print the license
    #[arg(long, group = "part")]
    license: bool,
}

pub fn run(args: ShowArgs) -> Result<ExitCode> {
    let name = ModelName::parse(&args.name)?;
    let store = open_store()?;
    let manifest = store.manifest(&name)?;
    let text = |media_type: &str| store.text_layer(&manifest, media_type);
    let model = manifest.layer(manifest::MODEL).context("the model has no GGUF layer")?;
    let gguf = store.blob_path(&model.digest);
    let info = GgufHeader::read(&gguf).with_context(|| gguf.display().to_string())?.model_info();
    let parameters: serde_json::Map<String, serde_json::Value> =
        text(manifest::PARAMS)?.map(|j| serde_json::from_str(&j)).transpose()?.unwrap_or_default();
    let parameter_lines: Vec<String> = parameters
        .iter()
        .flat_map(|(key, value)| match value {
            serde_json::Value::Array(items) => items.iter().map(|v| format!("{key} {v}")).collect::<Vec<_>>(),
            other => vec![format!("{key} {other}")],
        })
        .collect();
    let template = text(manifest::TEMPLATE_JINJA)?.or(info.chat_template.clone());
    let system = text(manifest::SYSTEM)?;
    let license = text(manifest::LICENSE)?;

    if args.path {
        println!("{}", gguf.display());
    } else if args.parameters {
        parameter_lines.iter().for_each(|l| println!("{l}"));
    } else if args.system {
        println!("{}", system.unwrap_or_default());
    } else if args.template {
        println!("{}", template.unwrap_or_default());
    } else if args.license {
        println!("{}", license.unwrap_or_default());
    } else if args.modelfile {
        print!("{}", store.spec_of(&name, &manifest)?.modelfile(&name));
    } else {
        let config = store.config_of(&manifest);
        println!("  Model");
        println!("    architecture        {}", info.architecture);
        println!("    parameters          {}", config.model_type);
        println!("    quantization        {}", info.quantization);
        println!("    context length      {}", info.context_length.map_or("unknown".into(), |n| n.to_string()));
        println!("    size                {}", human_size(manifest.size()));
        println!("    chat template       {}", if template.is_some() { "yes" } else { "none (plain completion)" });
        println!("    path                {}", gguf.display());
        if !parameter_lines.is_empty() {
            println!("\n  Parameters");
            parameter_lines.iter().for_each(|l| println!("    {l}"));
        }
        if let Some(system) = system {
            println!("\n  System\n    {}", system.replace('\n', "\n    "));
        }
        if let Some(license) = license {
            println!("\n  License\n    {}", license.lines().next().unwrap_or_default());
        }
    }
    Ok(ExitCode::SUCCESS)
}
