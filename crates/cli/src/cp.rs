//! `hearth cp SOURCE DESTINATION`: a second name for a model; the files are shared.

use crate::models::open_store;
use anyhow::Result;
use hearth_store::ModelName;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CpArgs {
    source: String,
    destination: String,
}

pub fn run(args: CpArgs) -> Result<ExitCode> {
    let (from, to) = (ModelName::parse(&args.source)?, ModelName::parse(&args.destination)?);
    open_store()?.copy(&from, &to)?;
    println!("copied '{from}' to '{to}'");
    Ok(ExitCode::SUCCESS)
}
