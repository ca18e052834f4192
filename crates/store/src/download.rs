//! Downloads a blob over HTTP into the store: into a `-partial` file kept aside, resumed
//! with a `Range` request when the connection drops (here, or in a later pull), and renamed
//! into place only once its sha256 digest matches.

use crate::digest::Digest;
use crate::{Progress, Store, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Dropped connections are resumed this many times within one pull.
const ATTEMPTS: usize = 4;

pub(crate) struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { agent: config.into() }
    }

    /// A small document (a manifest), whole.
    pub fn get_bytes(&self, url: &str, accept: &str) -> Result<Vec<u8>, StoreError> {
        let mut response = self.agent.get(url).header("Accept", accept).call().map_err(|e| network(url, &e))?;
        check_status(url, response.status().as_u16())?;
        let mut bytes = Vec::new();
        response.body_mut().as_reader().take(16 << 20).read_to_end(&mut bytes).map_err(|e| network(url, &e))?;
        Ok(bytes)
    }
}

fn network(url: &str, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::Source(format!("could not reach {url}: {error}"))
}

fn check_status(url: &str, status: u16) -> Result<(), StoreError> {
    match status {
        200..=299 => Ok(()),
        401 | 403 => Err(StoreError::Source(format!("{url} requires authentication (HTTP {status})"))),
        404 => Err(StoreError::Source(format!("not found: {url} (HTTP 404)"))),
        _ => Err(StoreError::Source(format!("{url} answered HTTP {status}"))),
    }
}

/// Outcome of one attempt at the body of a blob.
enum Attempt {
    Complete,
    /// The connection broke; what arrived is kept for the next attempt.
    Interrupted(String),
}

impl Store {
    pub(crate) fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root().join("blobs").join(format!("{}-partial", digest.file_name()))
    }

    /// Fetches `url` as the blob `digest` of `size` bytes, unless the store has it already.
    pub(crate) fn download_blob(
        &self,
        http: &Http,
        url: &str,
        digest: &Digest,
        size: u64,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        let partial = self.partial_path(digest);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(|e| StoreError::io(&partial, e))?;
        // One download of a blob at a time, across processes: another pull of the same model
        // waits here, then finds the blob in place.
        file.lock().map_err(|e| StoreError::io(&partial, e))?;
        if path.exists() {
            if file.metadata().is_ok_and(|m| m.len() == 0) {
                let _ = fs::remove_file(&partial);
            }
            return Ok(());
        }
        let have = file.metadata().map_err(|e| StoreError::io(&partial, e))?.len();
        crate::space::ensure_room(partial.parent().expect("blobs dir"), size.saturating_sub(have))?;
        for attempt in 1..=ATTEMPTS {
            let have = file.metadata().map_err(|e| StoreError::io(&partial, e))?.len();
            if have >= size && size > 0 {
                break;
            }
            if have > 0 {
                progress(Progress::Step(&format!("resuming {} at byte {have} of {size}", digest.short())));
            } else if attempt == 1 {
                progress(Progress::Step(&format!("downloading {} ({size} bytes)", digest.short())));
            }
            let target = Target { file: &file, path: &partial, digest, size };
            match fetch_into(http, url, &target, have, progress)? {
                Attempt::Complete => break,
                Attempt::Interrupted(why) if attempt == ATTEMPTS => {
                    return Err(StoreError::Source(format!(
                        "the download of {url} kept breaking off ({why}); run the pull again to resume it"
                    )));
                }
                Attempt::Interrupted(_) => {}
            }
        }
        let (actual, _) =
            Digest::of_reader(io::BufReader::new(File::open(&partial).map_err(|e| StoreError::io(&partial, e))?))
                .map_err(|e| StoreError::io(&partial, e))?;
        if actual != *digest {
            let _ = fs::remove_file(&partial);
            return Err(StoreError::DigestMismatch { expected: digest.clone(), actual });
        }
        file.sync_all().map_err(|e| StoreError::io(&partial, e))?;
        fs::rename(&partial, &path).map_err(|e| StoreError::io(&path, e))
    }
}

/// The partial file a blob is being written to.
struct Target<'a> {
    file: &'a File,
    path: &'a Path,
    digest: &'a Digest,
    size: u64,
}

/// One request for the bytes of `url` from `have` on, appended to the target.
fn fetch_into(
    http: &Http,
    url: &str,
    target: &Target<'_>,
    have: u64,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Attempt, StoreError> {
    let (mut file, partial) = (target.file, target.path);
    let mut request = http.agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = match request.call() {
        Ok(response) => response,
        Err(e) => return Ok(Attempt::Interrupted(e.to_string())),
    };
    let status = response.status().as_u16();
    check_status(url, status)?;
    // 206: the rest, as asked. 200: the server ignored the range, so start over.
    if status == 206 {
        file.seek(SeekFrom::End(0)).map_err(|e| StoreError::io(partial, e))?;
    } else {
        file.set_len(0).and_then(|()| file.seek(SeekFrom::Start(0))).map_err(|e| StoreError::io(partial, e))?;
    }
    let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = if status == 206 { have } else { 0 };
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                file.flush().map_err(|e| StoreError::io(partial, e))?;
                return Ok(Attempt::Interrupted(e.to_string()));
            }
        };
        file.write_all(&buf[..n]).map_err(|e| StoreError::io(partial, e))?;
        done += n as u64;
        progress(Progress::Bytes { digest: target.digest, done, total: target.size });
    }
    file.flush().map_err(|e| StoreError::io(partial, e))?;
    Ok(Attempt::Complete)
}
