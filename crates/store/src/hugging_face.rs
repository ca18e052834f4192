//! Pulls a GGUF file from a Hugging Face repository: `hf.co/<org>/<repo>:<quant>` picks the
//! file for that quantization (`:latest` prefers Q4_K_M, as Ollama does), or a file is named
//! outright. The repository listing gives each file's sha256, so the download is verified
//! like any other blob.

use crate::digest::Digest;
use crate::http::{upstream, Http};
use crate::manifest::{Layer, MODEL};
use crate::registry::no_such_model;
use crate::{Progress, Store, StoreError, UpstreamFailure};
use serde::Deserialize;

/// Hosts whose names mean a Hugging Face repository.
pub const HUGGING_FACE_HOSTS: [&str; 2] = ["hf.co", "huggingface.co"];

#[derive(Debug, Clone, Copy)]
pub enum HfFile<'a> {
    /// A quantization label such as `Q4_K_M`, or `latest`.
    Quant(&'a str),
    /// A file in the repository, e.g. `model-Q8_0.gguf`.
    Named(&'a str),
}

#[derive(Deserialize)]
struct RepoInfo {
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
pub(crate) struct Sibling {
    pub rfilename: String,
    lfs: Option<Lfs>,
}

impl Sibling {
    pub fn size(&self) -> Option<u64> {
        self.lfs.as_ref().map(|lfs| lfs.size)
    }
}

#[derive(Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

impl Store {
    /// Downloads the chosen GGUF of `repo` (`org/name`) from `endpoint`
    /// (`https://huggingface.co`) into the store; returns its model layer.
    pub fn pull_from_hugging_face(
        &self,
        endpoint: &str,
        repo: &str,
        file: HfFile<'_>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Layer, StoreError> {
        let http = Http::new();
        progress(Progress::Step("listing the repository's files"));
        let siblings = list_ggufs(&http, endpoint, repo)?;
        let chosen = choose(&siblings, file, repo)?;
        let lfs = chosen.lfs.as_ref().ok_or_else(|| {
            StoreError::Source(format!(
                "{repo}/{} has no sha256 in the listing, so it cannot be verified",
                chosen.rfilename
            ))
        })?;
        let digest = Digest::parse(&format!("sha256:{}", lfs.sha256))
            .ok_or_else(|| StoreError::Source(format!("{repo}/{}: not a sha256: {}", chosen.rfilename, lfs.sha256)))?;
        progress(Progress::Step(&format!("file {}", chosen.rfilename)));
        let url = format!("{endpoint}/{repo}/resolve/main/{}", chosen.rfilename);
        self.download_blob(&http, &url, &digest, lfs.size, progress)?;
        Ok(Layer { media_type: MODEL.into(), digest, size: lfs.size })
    }
}

/// The repository's GGUF files (not its vision projectors), as its listing names them.
pub(crate) fn list_ggufs(http: &Http, endpoint: &str, repo: &str) -> Result<Vec<Sibling>, StoreError> {
    let listing_url = format!("{endpoint}/api/models/{repo}?blobs=true");
    let listing = http.get_bytes(&listing_url, "application/json").map_err(|e| no_such_model(e, repo))?;
    let info: RepoInfo = serde_json::from_slice(&listing).map_err(|e| {
        upstream(&listing_url, UpstreamFailure::Invalid(format!("the listing of {repo} is not valid: {e}")))
    })?;
    Ok(info
        .siblings
        .into_iter()
        .filter(|s| s.rfilename.to_ascii_lowercase().ends_with(".gguf") && !s.rfilename.contains("mmproj"))
        .collect())
}

/// The file `file` picks among a repository's GGUF files, as `hearth pull` picks it.
pub(crate) fn choose<'s>(ggufs: &'s [Sibling], file: HfFile<'_>, repo: &str) -> Result<&'s Sibling, StoreError> {
    let found = match file {
        HfFile::Named(name) => ggufs.iter().find(|s| s.rfilename == name),
        HfFile::Quant(quant) => {
            let wanted = if quant.eq_ignore_ascii_case("latest") { "Q4_K_M" } else { quant };
            let matching: Vec<&Sibling> = ggufs.iter().filter(|s| has_quant(&s.rfilename, wanted)).collect();
            if matching.iter().any(|s| is_split(&s.rfilename)) {
                return Err(StoreError::Source(format!(
                    "{repo} splits its {wanted} GGUF into parts; split files are not supported yet"
                )));
            }
            match (matching.as_slice(), quant.eq_ignore_ascii_case("latest"), ggufs) {
                ([one], _, _) => Some(*one),
                ([], true, [only]) => Some(only),
                _ => None,
            }
        }
    };
    found.ok_or_else(|| {
        let names: Vec<&str> = ggufs.iter().map(|s| s.rfilename.as_str()).collect();
        let what = match file {
            HfFile::Named(name) => format!("no file {name}"),
            HfFile::Quant(quant) => format!("no single GGUF for {quant}"),
        };
        StoreError::Source(format!(
            "{repo} has {what}; its GGUF files: {}",
            if names.is_empty() { "none".into() } else { names.join(", ") }
        ))
    })
}

/// Whether the file name carries the quantization label as a word: `x-Q4_K_M.gguf`,
/// `x.q4_k_m.gguf`, not `x-IQ4_K_M.gguf`.
fn has_quant(file: &str, quant: &str) -> bool {
    let (file, quant) = (file.to_ascii_lowercase(), quant.to_ascii_lowercase());
    file.match_indices(&quant).any(|(at, _)| {
        let before = file[..at].chars().last();
        let after = file[at + quant.len()..].chars().next();
        matches!(before, Some('-' | '.' | '_')) && matches!(after, Some('-' | '.'))
    })
}

fn is_split(file: &str) -> bool {
    let stem = file.trim_end_matches(".gguf");
    stem.rsplit_once("-of-")
        .is_some_and(|(head, tail)| tail.len() == 5 && head.len() >= 6 && head[head.len() - 6..].starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quant_labels_match_as_words() {
        assert!(has_quant("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"));
        assert!(has_quant("smollm2.q8_0.gguf", "Q8_0"));
        assert!(!has_quant("model-IQ4_K_M.gguf", "Q4_K_M"));
        assert!(!has_quant("model-Q4_K_M_L.gguf", "Q4_K_M"));
        assert!(is_split("big-Q8_0-00001-of-00003.gguf"));
        assert!(!is_split("big-Q8_0.gguf"));
    }
}
