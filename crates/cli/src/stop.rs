//! `hearth stop NAME`: a running `hearth serve` unloads the model now (as `keep_alive: 0`).

use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StopArgs {
    /// The model to unload
    name: String,
}

pub fn run(args: StopArgs) -> Result<ExitCode> {
    crate::ps::call("POST", "/api/generate", Some(json!({"model": args.name, "keep_alive": 0})))?;
    Ok(ExitCode::SUCCESS)
}
