//! A large blob in several ranged parts at once. The partial file is allocated at full size
//! and `<partial>.parts` records how far each part has got, written only after the bytes it
//! counts are synced, so an interrupted pull (a dropped connection, a killed process)
//! resumes every part where it stopped.

use crate::download::ParallelDownloads;
use crate::http::{check_status, upstream, Http};
use crate::retry::{self, Failed};
use crate::{Progress, StoreError, UpstreamFailure};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};

/// Progress is made durable (synced, then recorded) at least this often per part.
const CHECKPOINT_BYTES: u64 = 8 << 20;
const MAX_PARTS: u64 = 64;

pub(crate) fn state_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".parts");
    PathBuf::from(name)
}

/// Bytes `start..end` of the blob, of which the first `done` are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Part {
    start: u64,
    end: u64,
    done: u64,
}

impl Part {
    fn remaining(&self) -> u64 {
        self.end - self.start - self.done
    }
}

pub(crate) enum Parallel {
    Complete,
    /// The server sends the whole blob whatever range is asked for: download it in one go.
    RangesRefused,
}

pub(crate) struct Target<'a> {
    pub file: &'a File,
    pub url: &'a str,
    /// Where the parts' progress is kept.
    pub state: &'a Path,
    pub size: u64,
    pub label: &'a str,
}

/// What ends a parallel download (an interruption is retried, see `retry`).
enum PartError {
    RangesRefused,
    Store(StoreError),
}

impl From<StoreError> for PartError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// What the workers share.
struct Shared<'a> {
    http: &'a Http,
    target: &'a Target<'a>,
    parts: Mutex<Vec<Part>>,
    next: AtomicUsize,
    stop: AtomicBool,
    failure: Mutex<Option<PartError>>,
}

pub(crate) fn download(
    http: &Http,
    target: &Target<'_>,
    settings: &ParallelDownloads,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Parallel, StoreError> {
    let parts = match read_state(target.state, target.size) {
        Some(parts) if target.file.metadata().is_ok_and(|m| m.len() == target.size) => parts,
        _ => {
            let parts = plan(target.size, settings);
            // The record first: a partial file at full size without one would look complete.
            write_state(target.state, &parts)?;
            target.file.set_len(target.size).map_err(|e| StoreError::io(target.state, e))?;
            parts
        }
    };
    let already: u64 = parts.iter().map(|p| p.done).sum();
    let count = parts.len();
    if already > 0 {
        progress(Progress::Step(&format!(
            "resuming {} at {already} of {} bytes, {count} parts",
            target.label, target.size
        )));
    } else {
        progress(Progress::Step(&format!(
            "downloading {} ({} bytes, {count} parts, {} at once)",
            target.label, target.size, settings.connections
        )));
    }
    let shared = Shared {
        http,
        target,
        parts: Mutex::new(parts),
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
    };
    let (sender, received) = mpsc::channel::<u64>();
    std::thread::scope(|scope| {
        for _ in 0..settings.connections.clamp(1, count) {
            let (shared, sender) = (&shared, sender.clone());
            scope.spawn(move || work(shared, &sender));
        }
        drop(sender);
        let mut done = already;
        for bytes in received {
            done += bytes;
            progress(Progress::Bytes { blob: target.label, done, total: Some(target.size) });
        }
    });
    match shared.failure.into_inner().expect("no worker panics holding it") {
        None => Ok(Parallel::Complete),
        Some(PartError::RangesRefused) => Ok(Parallel::RangesRefused),
        Some(PartError::Store(e)) => Err(e),
    }
}

/// Parts of at least `min_part` bytes, at most `MAX_PARTS` of them.
fn plan(size: u64, settings: &ParallelDownloads) -> Vec<Part> {
    let count = (size / settings.min_part.max(1)).clamp(1, MAX_PARTS);
    // Even shares (never more than `size / min_part` of them): no part is below `min_part`.
    let bound = |i: u64| (u128::from(size) * u128::from(i) / u128::from(count)) as u64;
    (0..count).map(|i| Part { start: bound(i), end: bound(i + 1), done: 0 }).filter(|p| p.end > p.start).collect()
}

/// Takes parts off the shared list until none are left or another worker failed.
fn work(shared: &Shared<'_>, sender: &mpsc::Sender<u64>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        if index >= shared.parts.lock().expect("not poisoned").len() {
            return;
        }
        if let Err(error) = retry::resuming(shared.target.url, |_| fetch_part(shared, index, sender)) {
            shared.stop.store(true, Ordering::Relaxed);
            shared.failure.lock().expect("not poisoned").get_or_insert(error);
            return;
        }
    }
}

/// One request for what part `index` still lacks, from where it stopped.
fn fetch_part(shared: &Shared<'_>, index: usize, sender: &mpsc::Sender<u64>) -> Result<(), Failed<PartError>> {
    let target = shared.target;
    let part = shared.parts.lock().expect("not poisoned")[index];
    if part.remaining() == 0 {
        return Ok(());
    }
    let from = part.start + part.done;
    let range = format!("bytes={from}-{}", part.end - 1);
    let mut response = shared.http.get(target.url, &[("Range", &range)]).map_err(Failed::of_request)?;
    match response.status().as_u16() {
        206 => {}
        200 => return Err(Failed::Final(PartError::RangesRefused)),
        status => {
            check_status(target.url, status)?;
            return Err(upstream(target.url, UpstreamFailure::Status(status)).into());
        }
    }
    // `Content-Range: bytes a-b/<total>`: a blob of another size than declared is refused
    // before any of it is written.
    let total = response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit_once('/'))
        .and_then(|(_, total)| total.trim().parse::<u64>().ok());
    if let Some(actual) = total.filter(|&total| total != target.size) {
        let failure = if actual > target.size {
            UpstreamFailure::TooLarge { declared: target.size }
        } else {
            UpstreamFailure::WrongSize { declared: target.size, actual }
        };
        return Err(upstream(target.url, failure).into());
    }
    let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 256 << 10];
    let (mut done, mut unsynced) = (part.done, 0u64);
    let io_error = |e: io::Error| StoreError::io(target.state, e);
    while done < part.end - part.start && !shared.stop.load(Ordering::Relaxed) {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => (n as u64).min(part.end - part.start - done),
            Err(_) => {
                checkpoint(shared, index, done)?;
                return Err(Failed::Interrupted);
            }
        };
        write_at(target.file, &buf[..n as usize], part.start + done).map_err(io_error)?;
        done += n;
        unsynced += n;
        let _ = sender.send(n);
        if unsynced >= CHECKPOINT_BYTES {
            checkpoint(shared, index, done)?;
            unsynced = 0;
        }
    }
    checkpoint(shared, index, done)?;
    if done < part.end - part.start && !shared.stop.load(Ordering::Relaxed) {
        return Err(Failed::Interrupted);
    }
    Ok(())
}

/// Makes a part's bytes durable, then records them.
fn checkpoint(shared: &Shared<'_>, index: usize, done: u64) -> Result<(), StoreError> {
    shared.target.file.sync_data().map_err(|e| StoreError::io(shared.target.state, e))?;
    let mut parts = shared.parts.lock().expect("not poisoned");
    parts[index].done = done;
    write_state(shared.target.state, &parts)
}

fn read_state(path: &Path, size: u64) -> Option<Vec<Part>> {
    let parts: Vec<Part> = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    // Only a record that tiles the blob exactly is trusted.
    let tiles = parts.first().is_some_and(|p| p.start == 0)
        && parts.last().is_some_and(|p| p.end == size)
        && parts.windows(2).all(|w| w[0].end == w[1].start)
        && parts.iter().all(|p| p.start < p.end && p.done <= p.end - p.start);
    tiles.then_some(parts)
}

fn write_state(path: &Path, parts: &[Part]) -> Result<(), StoreError> {
    crate::store::write_atomically(path, &serde_json::to_vec(parts).expect("parts serialize"))
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, bytes, offset)?;
        bytes = &bytes[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_tile_the_blob() {
        let settings = ParallelDownloads { min_size: 0, min_part: 100, connections: 4 };
        for size in [1, 99, 100, 101, 1000, 6401, 1_000_000] {
            let parts = plan(size, &settings);
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts.last().unwrap().end, size);
            assert!(parts.windows(2).all(|w| w[0].end == w[1].start), "{size}: {parts:?}");
            assert!(parts.len() as u64 <= MAX_PARTS);
            assert!(parts.len() == 1 || parts.iter().all(|p| p.end - p.start >= 100), "{size}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parts");
        write_state(&path, &plan(1000, &settings)).unwrap();
        assert_eq!(read_state(&path, 1000), Some(plan(1000, &settings)));
        assert_eq!(read_state(&path, 999), None, "a record for another size is not trusted");
        fs::write(&path, b"[{\"start\":0,\"end\":10,\"done\":11}]").unwrap();
        assert_eq!(read_state(&path, 10), None);
    }
}
