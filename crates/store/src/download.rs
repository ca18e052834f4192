//! Downloads a blob over HTTP into the store: into a `-partial` file kept aside, resumed
//! with a `Range` request when the connection drops (here, or in a later pull), large blobs
//! in several parts at once, and renamed into place only once its sha256 digest is known
//! and, where one was expected, matches.

use crate::digest::Digest;
use crate::http::{check_status, content_length, upstream, Http};
use crate::parts::{self, Parallel};
use crate::retry::{self, Failed};
use crate::{Progress, Store, StoreError, UpstreamFailure};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// How large blobs are split into ranged parts fetched at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParallelDownloads {
    /// Blobs smaller than this come in one request.
    pub min_size: u64,
    /// Parts are at least this large (and at most 64 per blob).
    pub min_part: u64,
    /// Requests in flight at once.
    pub connections: usize,
}

impl Default for ParallelDownloads {
    fn default() -> Self {
        Self { min_size: 64 << 20, min_part: 16 << 20, connections: 4 }
    }
}

/// One thing to download.
pub(crate) struct Fetch<'a> {
    pub url: &'a str,
    /// Known ahead (from a manifest, a listing, the catalog) and checked before the blob
    /// becomes visible; `None` for a plain URL, whose digest is what arrives.
    pub digest: Option<&'a Digest>,
    pub size: Option<u64>,
}

impl Store {
    pub(crate) fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root().join("blobs").join(format!("{}-partial", digest.file_name()))
    }

    /// Fetches `url` as the blob `digest` of `size` bytes, unless the store has it already.
    /// Returns whether this call put the blob in place (`false`: it was there already).
    pub(crate) fn download_blob(
        &self,
        http: &Http,
        url: &str,
        digest: &Digest,
        size: u64,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<bool, StoreError> {
        self.download(http, &Fetch { url, digest: Some(digest), size: Some(size) }, progress)
            .map(|(_, _, placed)| placed)
    }

    /// Downloads into the store; returns the blob's digest and size, and whether this call
    /// placed it (`false` when the blob was in the store already).
    pub(crate) fn download(
        &self,
        http: &Http,
        fetch: &Fetch<'_>,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(Digest, u64, bool), StoreError> {
        if let (Some(digest), Some(size)) = (fetch.digest, fetch.size) {
            if self.blob_path(digest).exists() {
                return Ok((digest.clone(), size, false));
            }
        }
        // A plain URL's partial file is named after the URL, so a later pull resumes it.
        let partial = match fetch.digest {
            Some(digest) => self.partial_path(digest),
            None => {
                let key = Digest::of_bytes(fetch.url.as_bytes()).file_name();
                self.root().join("blobs").join(format!("url-{}-partial", &key["sha256-".len()..][..16]))
            }
        };
        let label = match fetch.digest {
            Some(digest) => digest.to_string(),
            None => fetch.url.split(['?', '#']).next().unwrap_or_default().rsplit('/').next().unwrap_or("").to_string(),
        };
        let file = open_locked(&partial)?;
        if let (Some(digest), Some(size)) = (fetch.digest, fetch.size) {
            if self.blob_path(digest).exists() {
                if file.metadata().is_ok_and(|m| m.len() == 0) {
                    let _ = fs::remove_file(&partial);
                }
                return Ok((digest.clone(), size, false));
            }
        }
        let parts_file = parts::state_path(&partial);
        let discard = || {
            let _ = fs::remove_file(&partial);
            let _ = fs::remove_file(&parts_file);
        };
        let fetched = self.fetch_into_partial(http, fetch, &file, &partial, &label, progress);
        match &fetched {
            // Bytes beyond the declared size: what arrived is not the blob, keep none of it.
            Err(StoreError::Upstream {
                failure: UpstreamFailure::TooLarge { .. } | UpstreamFailure::WrongSize { .. },
                ..
            }) => discard(),
            // Nothing arrived (a 404, a refused connection): leave nothing behind.
            Err(_) if !parts_file.exists() && file.metadata().is_ok_and(|m| m.len() == 0) => {
                let _ = fs::remove_file(&partial);
            }
            _ => {}
        }
        fetched?;
        let (actual, actual_size) =
            Digest::of_reader(io::BufReader::new(File::open(&partial).map_err(|e| StoreError::io(&partial, e))?))
                .map_err(|e| StoreError::io(&partial, e))?;
        if let Some(declared) = fetch.size.filter(|&size| size != actual_size) {
            discard();
            return Err(upstream(fetch.url, UpstreamFailure::WrongSize { declared, actual: actual_size }));
        }
        if let Some(expected) = fetch.digest {
            if actual != *expected {
                discard();
                return Err(StoreError::DigestMismatch { expected: expected.clone(), actual });
            }
        }
        file.sync_all().map_err(|e| StoreError::io(&partial, e))?;
        let path = self.blob_path(&actual);
        let placed = !path.exists();
        if placed {
            fs::rename(&partial, &path).map_err(|e| StoreError::io(&path, e))?;
        } else {
            let _ = fs::remove_file(&partial);
        }
        let _ = fs::remove_file(&parts_file);
        Ok((actual, actual_size, placed))
    }

    /// Brings the partial file to the whole blob: in parallel parts when it is large (or a
    /// parallel download is being resumed), else in one stream.
    fn fetch_into_partial(
        &self,
        http: &Http,
        fetch: &Fetch<'_>,
        file: &File,
        partial: &Path,
        label: &str,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), StoreError> {
        let size = match fetch.size {
            Some(size) => Some(size),
            None => http.content_length(fetch.url)?,
        };
        let parts_file = parts::state_path(partial);
        let have = file.metadata().map_err(|e| StoreError::io(partial, e))?.len();
        let mut whole = false;
        if let Some(size) = size {
            let parallel_state = parts_file.exists();
            let needed = if parallel_state { size } else { size.saturating_sub(have) };
            crate::space::ensure_room(partial.parent().expect("blobs dir"), needed)?;
            if parallel_state || (have == 0 && size >= self.parallel.min_size) {
                let target = parts::Target { file, url: fetch.url, state: &parts_file, size, label };
                match parts::download(http, &target, &self.parallel, progress)? {
                    Parallel::Complete => whole = true,
                    Parallel::RangesRefused => {
                        let _ = fs::remove_file(&parts_file);
                        file.set_len(0).map_err(|e| StoreError::io(partial, e))?;
                    }
                }
            }
        }
        if !whole {
            let target = Target { file, path: partial, label, size };
            download_sequentially(http, fetch.url, &target, progress)?;
        }
        Ok(())
    }
}

/// Opens (creating) and locks the partial file: one download of a blob at a time, across
/// processes. Another pull of the same blob waits here, then finds the blob in place; if the
/// file it waited on was removed meanwhile (a failed download tidied up), it opens afresh.
fn open_locked(partial: &Path) -> Result<File, StoreError> {
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(partial)
            .map_err(|e| StoreError::io(partial, e))?;
        file.lock().map_err(|e| StoreError::io(partial, e))?;
        if same_file(&file, partial) {
            return Ok(file);
        }
    }
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// The partial file a blob is being written to, in one stream.
struct Target<'a> {
    file: &'a File,
    path: &'a Path,
    label: &'a str,
    size: Option<u64>,
}

fn download_sequentially(
    http: &Http,
    url: &str,
    target: &Target<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(), StoreError> {
    let described = target.size.map_or_else(String::new, |s| format!(" ({s} bytes)"));
    retry::resuming(url, |attempt| {
        let mut have = target.file.metadata().map_err(|e| StoreError::io(target.path, e))?.len();
        if target.size.is_some_and(|size| have > size) {
            // Not from this version of hearth: start over rather than trust it.
            target.file.set_len(0).map_err(|e| StoreError::io(target.path, e))?;
            have = 0;
        }
        if target.size.is_some_and(|size| size > 0 && have == size) {
            return Ok(());
        }
        if have > 0 {
            let of = target.size.map_or_else(String::new, |s| format!(" of {s}"));
            progress(Progress::Step(&format!("resuming {} at byte {have}{of}", target.label)));
        } else if attempt == 1 {
            progress(Progress::Step(&format!("downloading {}{described}", target.label)));
        }
        fetch_into(http, url, target, have, progress)
    })
}

/// One request for the bytes of `url` from `have` on, appended to the target. More bytes
/// than the target's declared size stop it at once.
fn fetch_into(
    http: &Http,
    url: &str,
    target: &Target<'_>,
    have: u64,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(), Failed<StoreError>> {
    let (mut file, partial) = (target.file, target.path);
    let range = format!("bytes={have}-");
    let headers: &[(&str, &str)] = if have > 0 { &[("Range", &range)] } else { &[] };
    let mut response = http.get(url, headers).map_err(Failed::of_request)?;
    let status = response.status().as_u16();
    // Asking for bytes past the end of a file whose size we did not know: it is all here.
    if status == 416 && have > 0 && target.size.is_none() {
        return Ok(());
    }
    check_status(url, status)?;
    let mut done = if status == 206 { have } else { 0 };
    let too_large = |declared| Err(upstream(url, UpstreamFailure::TooLarge { declared }).into());
    if let (Some(declared), Some(length)) = (target.size, content_length(&response)) {
        if done.saturating_add(length) > declared {
            return too_large(declared);
        }
    }
    // 206: the rest, as asked. 200: the server ignored the range, so start over.
    if status == 206 {
        file.seek(SeekFrom::End(0)).map_err(|e| StoreError::io(partial, e))?;
    } else {
        file.set_len(0).and_then(|()| file.seek(SeekFrom::Start(0))).map_err(|e| StoreError::io(partial, e))?;
    }
    let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut recheck = crate::space::Recheck::default();
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => {
                file.flush().map_err(|e| StoreError::io(partial, e))?;
                return Err(Failed::Interrupted);
            }
        };
        if let Some(declared) = target.size.filter(|&declared| done + n as u64 > declared) {
            return too_large(declared);
        }
        file.write_all(&buf[..n]).map_err(|e| StoreError::io(partial, e))?;
        done += n as u64;
        if recheck.due(n as u64) && target.size.is_none() {
            crate::space::ensure_room(partial.parent().expect("blobs dir"), 0)?;
        }
        progress(Progress::Bytes { blob: target.label, done, total: target.size });
    }
    file.flush().map_err(|e| StoreError::io(partial, e))?;
    Ok(())
}
