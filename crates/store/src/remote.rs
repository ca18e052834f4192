//! A model file read where it lies, without downloading it: the GGUF files a model name
//! stands for (a URL, a Hugging Face repository's files, a registry's model blob, a catalog
//! entry's URL), and a reader that fetches only the bytes asked for, in ranged requests of
//! one block, so `hearth fit` can read a GGUF header (a few MiB) and never the weights.

use crate::catalog::{CatalogEntry, Source};
use crate::http::{check_status, upstream, Http};
use crate::hugging_face::{choose, list_ggufs};
use crate::manifest::MODEL;
use crate::name::ModelName;
use crate::registry::registry_manifest;
use crate::{HfFile, StoreError, UpstreamFailure};
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

/// Bytes fetched per ranged request.
const BLOCK: u64 = 256 << 10;

/// The most a reader fetches: far more than any header (a 256k-token vocabulary takes about
/// 4 MiB), far less than weights.
const MAX_FETCHED: u64 = 32 << 20;

/// A GGUF file on a server, and what it is called there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteGguf {
    /// The file's name, or the model's where the server names no file.
    pub label: String,
    pub url: String,
    /// The size the listing or manifest declares, where it declares one.
    pub size: Option<u64>,
}

/// The GGUF a URL names.
pub fn gguf_at_url(url: &str) -> RemoteGguf {
    let label = url.split(['?', '#']).next().unwrap_or(url).rsplit('/').next().unwrap_or(url).to_string();
    RemoteGguf { label, url: url.to_string(), size: None }
}

/// The GGUF files of a Hugging Face repository (`org/name`) at `endpoint`: the one `file`
/// picks, as `hearth pull` would, or every one when `file` is `None`.
pub fn hugging_face_ggufs(endpoint: &str, repo: &str, file: Option<HfFile<'_>>) -> Result<Vec<RemoteGguf>, StoreError> {
    let siblings = list_ggufs(&Http::new(), endpoint, repo)?;
    let url = |name: &str| format!("{endpoint}/{repo}/resolve/main/{name}");
    let remote = |s: &crate::hugging_face::Sibling| RemoteGguf {
        label: s.rfilename.clone(),
        url: url(&s.rfilename),
        size: s.size(),
    };
    match file {
        Some(file) => Ok(vec![remote(choose(&siblings, file, repo)?)]),
        None => Ok(siblings.iter().map(remote).collect()),
    }
}

/// The model blob of a registry's model (its manifest is read; its blobs are not).
pub fn registry_gguf(name: &ModelName, insecure: bool) -> Result<RemoteGguf, StoreError> {
    let (base, manifest) = registry_manifest(&Http::new(), name, insecure)?;
    let layer = manifest.layer(MODEL).ok_or_else(|| {
        upstream(&base, UpstreamFailure::Invalid(format!("the manifest of {name} has no model layer")))
    })?;
    Ok(RemoteGguf { label: name.to_string(), url: format!("{base}/blobs/{}", layer.digest), size: Some(layer.size) })
}

/// A catalog entry's GGUF, where one of its sources is a URL (a wheel cannot be read by range).
pub fn catalog_gguf(entry: &CatalogEntry) -> Option<RemoteGguf> {
    entry.sources.iter().find_map(|source| match source {
        Source::Url(url) => {
            Some(RemoteGguf { label: entry.name.to_string(), url: url.to_string(), size: Some(entry.size) })
        }
        Source::PyPiWheels { .. } => None,
    })
}

/// Reads a remote file by ranges: `Read + Seek` over blocks fetched on first use and kept.
pub struct RangeReader {
    http: Http,
    url: String,
    size: u64,
    position: u64,
    blocks: BTreeMap<u64, Vec<u8>>,
    fetched: u64,
}

impl RangeReader {
    /// Opens the file at `url`, learning its size from the first block's `Content-Range`.
    /// A server that ignores ranges is refused: reading on would download the whole file.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut reader =
            Self { http: Http::new(), url: url.to_string(), size: 0, position: 0, blocks: BTreeMap::new(), fetched: 0 };
        let (first, size) = reader.fetch(0)?;
        reader.size = size;
        reader.blocks.insert(0, first);
        Ok(reader)
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes fetched so far.
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    /// Block `index`, and the file's whole size.
    fn fetch(&mut self, index: u64) -> Result<(Vec<u8>, u64), StoreError> {
        let start = index * BLOCK;
        if self.fetched + BLOCK > MAX_FETCHED {
            return Err(upstream(
                &self.url,
                UpstreamFailure::Invalid(format!("its GGUF header is larger than {} MiB", MAX_FETCHED >> 20)),
            ));
        }
        let range = format!("bytes={start}-{}", start + BLOCK - 1);
        let mut response = self.http.get(&self.url, &[("Range", &range)])?;
        let status = response.status().as_u16();
        if status == 200 {
            return Err(upstream(
                &self.url,
                UpstreamFailure::Invalid(
                    "the server does not answer range requests, so its header cannot be read alone".into(),
                ),
            ));
        }
        check_status(&self.url, status)?;
        let total = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('/').next())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                upstream(&self.url, UpstreamFailure::Invalid("a ranged answer without its total size".into()))
            })?;
        let mut bytes = Vec::with_capacity(BLOCK as usize);
        response
            .body_mut()
            .as_reader()
            .take(BLOCK)
            .read_to_end(&mut bytes)
            .map_err(|_| upstream(&self.url, UpstreamFailure::BrokeOff))?;
        self.fetched += bytes.len() as u64;
        Ok((bytes, total))
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let index = self.position / BLOCK;
        if !self.blocks.contains_key(&index) {
            let (block, _) = self.fetch(index).map_err(io::Error::other)?;
            self.blocks.insert(index, block);
        }
        let block = &self.blocks[&index];
        let offset = (self.position - index * BLOCK) as usize;
        let available = block.len().saturating_sub(offset);
        if available == 0 {
            return Err(io::Error::other(upstream(&self.url, UpstreamFailure::BrokeOff)));
        }
        let n = available.min(buf.len());
        buf[..n].copy_from_slice(&block[offset..offset + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_registry::{Registry, Route};

    #[test]
    fn reads_only_the_blocks_asked_for() {
        let file: Vec<u8> = (0..4 * BLOCK as usize).map(|i| (i % 251) as u8).collect();
        let registry = Registry::start([("/m.gguf".to_string(), Route::Body(file.clone()))].into());
        let mut reader = RangeReader::open(&format!("http://{}/m.gguf", registry.host)).unwrap();
        assert_eq!(reader.size(), file.len() as u64);
        let mut head = [0u8; 16];
        reader.read_exact(&mut head).unwrap();
        assert_eq!(head, file[..16]);
        // A skip past a whole block fetches nothing for it.
        reader.seek(SeekFrom::Start(3 * BLOCK + 5)).unwrap();
        let mut tail = [0u8; 8];
        reader.read_exact(&mut tail).unwrap();
        assert_eq!(tail, file[3 * BLOCK as usize + 5..3 * BLOCK as usize + 13]);
        assert_eq!(reader.fetched(), 2 * BLOCK);
        assert_eq!(registry.ranges_asked_for("/m.gguf").len(), 2);
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).unwrap(), BLOCK as usize - 13);
    }
}
