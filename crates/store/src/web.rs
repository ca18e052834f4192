//! A GGUF from any http(s) URL: downloaded like a registry blob (resumable, in parallel parts
//! when large), its digest computed on arrival, and a model name derived from the URL.

use crate::download::Fetch;
use crate::http::Http;
use crate::manifest::{Layer, MODEL};
use crate::name::{ModelName, DEFAULT_TAG};
use crate::{Progress, Store, StoreError};

/// Whether `text` is an http(s) URL of a `.gguf` file, as `hearth pull` and `FROM` accept.
pub fn is_gguf_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && lower.split(['?', '#']).next().is_some_and(|path| path.ends_with(".gguf"))
}

/// The name a GGUF pulled from `url` is stored under: `host/directory/file-stem:latest`, e.g.
/// `https://example.com/models/tiny-Q8_0.gguf` is `example.com/models/tiny-Q8_0:latest`.
pub fn name_for_url(url: &str) -> Result<ModelName, StoreError> {
    let invalid = |why: &str| StoreError::Source(format!("{url}: {why}"));
    let rest = url.split_once("://").map(|(_, rest)| rest).ok_or_else(|| invalid("not a URL"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').ok_or_else(|| invalid("no file in the URL"))?;
    let host = authority.rsplit('@').next().unwrap_or(authority).to_ascii_lowercase();
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let file = segments.pop().ok_or_else(|| invalid("no file in the URL"))?;
    let stem = &file[..file.len().saturating_sub(".gguf".len())];
    let namespace = segments.last().map_or_else(|| "url".to_string(), |dir| sanitize(dir, false));
    let name = format!("{host}/{namespace}/{}:{DEFAULT_TAG}", sanitize(stem, true));
    Ok(ModelName::parse(&name)?)
}

/// Replaces what a name part may not hold with `_`, as Ollama's name rules require.
fn sanitize(text: &str, dots: bool) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| match c {
            c if c.is_ascii_alphanumeric() || c == '_' => c,
            '-' if i > 0 => c,
            '.' if i > 0 && dots => c,
            _ => '_',
        })
        .take(80)
        .collect()
}

impl Store {
    /// Downloads the GGUF at `url` into the store; returns its model layer.
    pub fn pull_from_url(&self, url: &str, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Layer, StoreError> {
        let http = Http::new();
        let (digest, size, _) = self.download(&http, &Fetch { url, digest: None, size: None }, progress)?;
        Ok(Layer { media_type: MODEL.into(), digest, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_model_names() {
        for (url, name) in [
            ("https://example.com/models/tiny-Q8_0.gguf", "example.com/models/tiny-Q8_0:latest"),
            ("http://127.0.0.1:8080/a/b/Model.v2.gguf?download=1", "127.0.0.1:8080/b/Model.v2:latest"),
            ("https://example.com/x.gguf", "example.com/url/x:latest"),
            ("https://example.com/my.dir/-odd name.gguf", "example.com/my_dir/_odd_name:latest"),
        ] {
            assert_eq!(name_for_url(url).unwrap().to_string(), name, "{url}");
        }
        assert!(is_gguf_url("https://example.com/m.GGUF?x=1"));
        assert!(!is_gguf_url("https://example.com/m.bin"));
        assert!(!is_gguf_url("./m.gguf"));
        assert!(name_for_url("https://example.com").is_err());
    }
}
