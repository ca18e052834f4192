//! `hearth list`: the models in the store with their size, quantization and parameters.

use crate::models::open_store;
use anyhow::Result;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[derive(clap::Args)]
pub struct ListArgs {
    /// Print where the store is instead
    #[arg(long)]
    path: bool,
}

pub fn run(args: ListArgs) -> Result<ExitCode> {
    let store = open_store()?;
    if args.path {
        println!("{}", store.root().display());
        return Ok(ExitCode::SUCCESS);
    }
    let (entries, problems) = store.list()?;
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|entry| {
            let config = store.config_of(&entry.manifest);
            [
                entry.name.to_string(),
                entry.id.short().to_string(),
                human_size(entry.manifest.size()),
                config.file_type,
                config.model_type,
                ago(entry.modified),
            ]
        })
        .collect();
    let header = ["NAME", "ID", "SIZE", "QUANT", "PARAMETERS", "MODIFIED"].map(String::from);
    print!("{}", columns(std::iter::once(&header).chain(&rows)));
    for problem in problems {
        eprintln!("warning: {problem}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Rows as left-aligned columns four spaces apart, as `ollama list` prints them.
pub fn columns<'a, R: AsRef<[String]> + 'a>(rows: impl IntoIterator<Item = &'a R> + Clone) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows.clone() {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.as_ref().iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("    ").trim_end());
        out.push('\n');
    }
    out
}

pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else {
        format!("{:.0} KB", b / 1e3)
    }
}

fn ago(time: SystemTime) -> String {
    let secs = SystemTime::now().duration_since(time).unwrap_or(Duration::ZERO).as_secs();
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} minutes ago", secs / 60),
        3600..=86_399 => format!("{} hours ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}
