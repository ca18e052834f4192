//! `hearth rm NAME...`: removes models; blobs no remaining model uses are deleted.

use crate::models::open_store;
use anyhow::Result;
use hearth_store::ModelName;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RmArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn run(args: RmArgs) -> Result<ExitCode> {
    let store = open_store()?;
    for name in &args.names {
        let name = ModelName::parse(name)?;
        store.remove(&name)?;
        println!("deleted '{name}'");
    }
    Ok(ExitCode::SUCCESS)
}
