//! The models `hearth fit` is asked about, read as far as their GGUF headers: a file, a
//! model in the store, or anything `hearth pull` accepts, read where it lies by ranged
//! requests (a few MiB of header, never the weights).

use crate::models::open_store;
use anyhow::{bail, Context, Result};
use hearth_engine::gguf::file_type_by_name;
use hearth_engine::GgufHeader;
use hearth_server::models::{self, Sources};
use hearth_store::{RangeReader, RemoteGguf, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One model file, as far as its header.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// What the user asked for, and the file among several where it stands for several.
    pub label: String,
    /// `file`, `store` or the remote URL the header was read from.
    pub location: String,
    /// The file, when it is on this machine.
    pub path: Option<PathBuf>,
    pub header: Arc<GgufHeader>,
    pub quantization: String,
    /// Bytes read to learn what it needs: the header's, for a remote file.
    pub bytes_read: u64,
    /// Whether its header is another file's of the same repository (the repository lists
    /// this one's size, and quantizations of one model share their shape).
    pub header_of: Option<String>,
}

impl Candidate {
    pub fn file_size(&self) -> u64 {
        self.header.file_size
    }
}

/// The candidates `arg` stands for: one, or every quantization of a Hugging Face
/// repository named without a tag.
pub fn resolve(arg: &str, insecure: bool) -> Result<Vec<Candidate>> {
    let path = Path::new(arg);
    if path.exists() {
        return Ok(vec![local(arg, path, "file")?]);
    }
    if arg.ends_with(".gguf") && !hearth_store::is_gguf_url(arg) {
        bail!("{arg}: no such file");
    }
    let name = models::name_to_pull(arg)?;
    let store = open_store()?;
    match store.model_spec(&name) {
        Ok(spec) => return Ok(vec![local(arg, &spec.path, "store")?]),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let sources = Sources { insecure, ..Sources::from_env() };
    let files = models::locate(arg, &sources)?;
    remote(arg, &files)
}

fn local(arg: &str, path: &Path, location: &str) -> Result<Candidate> {
    let header = GgufHeader::read(path).with_context(|| format!("reading {}", path.display()))?;
    let quantization = header.quantization();
    Ok(Candidate {
        label: arg.to_string(),
        location: location.to_string(),
        path: Some(path.to_path_buf()),
        bytes_read: header.data_offset,
        header: Arc::new(header),
        quantization,
        header_of: None,
    })
}

/// Reads the header of the first file (the one `hearth pull` would take, where it names
/// one); the others of a listing share it with their own sizes.
fn remote(arg: &str, files: &[RemoteGguf]) -> Result<Vec<Candidate>> {
    let Some(first) = files.iter().find(|f| f.label.contains("Q4_K_M")).or(files.first()) else {
        bail!("{arg} has no GGUF files");
    };
    let mut reader = RangeReader::open(&first.url)?;
    let size = reader.size();
    let header = GgufHeader::read_from(&mut reader, size).with_context(|| format!("reading the header of {arg}"))?;
    let header = Arc::new(header);
    let shown = |file: &RemoteGguf| {
        if files.len() == 1 {
            arg.to_string()
        } else {
            format!("{arg} {}", file.label)
        }
    };
    let mut candidates = vec![Candidate {
        label: shown(first),
        location: first.url.clone(),
        path: None,
        quantization: header.quantization(),
        bytes_read: reader.fetched(),
        header: header.clone(),
        header_of: None,
    }];
    for file in files.iter().filter(|f| f.url != first.url) {
        let Some(size) = file.size else { continue };
        let mut shared = (*header).clone();
        shared.file_size = size;
        candidates.push(Candidate {
            label: shown(file),
            location: file.url.clone(),
            path: None,
            quantization: quantization_in_name(&file.label).unwrap_or_else(|| "unknown".into()),
            bytes_read: 0,
            header: Arc::new(shared),
            header_of: Some(first.label.clone()),
        });
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.file_size()));
    Ok(candidates)
}

/// The quantization a file name carries as a word (`model-Q4_K_M.gguf`, `m.q8_0.gguf`).
fn quantization_in_name(file: &str) -> Option<String> {
    let stem = file.strip_suffix(".gguf").unwrap_or(file);
    stem.split(['-', '.']).find(|word| file_type_by_name(word).is_some()).map(str::to_ascii_uppercase)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantizations_are_read_from_file_names() {
        assert_eq!(super::quantization_in_name("Llama-3.2-1B-Instruct-Q4_K_M.gguf").as_deref(), Some("Q4_K_M"));
        assert_eq!(super::quantization_in_name("smollm2.q8_0.gguf").as_deref(), Some("Q8_0"));
        assert_eq!(super::quantization_in_name("model.gguf"), None);
    }
}
