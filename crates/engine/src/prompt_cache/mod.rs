//! Prompt caches saved to disk: the KV state of a long prompt, written when its prefill
//! ends, and restored into a slot when a later request starts with it after the slot was
//! reused, the model unloaded or the server restarted. Files are named by a key of the
//! weights and settings (their first 16 hex digits) and by their tokens, written whole or
//! not at all by a thread of their own, kept under a size bound by evicting the least
//! recently used, and checked whole before a restore: one that does not check out is
//! deleted with a log line, never loaded.

mod file;

use crate::engine::ResolvedSettings;
use file::{FileError, Key};
use llama_cpp_2::token::LlamaToken;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// A prompt is saved only when at least this many of its tokens are in no saved file
/// already: a document or a long system prompt, not each turn of a chat over one.
pub(crate) const SAVE_MIN_TOKENS: usize = 512;

/// Extension of a saved prompt cache.
const EXTENSION: &str = "kvc";

/// A temporary file this old was left by a process that died while writing it.
const ABANDONED: Duration = Duration::from_secs(3600);

/// Where prompt caches are saved, and how much they may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptCacheConfig {
    pub dir: PathBuf,
    /// Bytes all files in `dir` may take together (all models'); the least recently used
    /// go first.
    pub max_bytes: u64,
}

/// The saved prompts of one model run with one set of settings, as the engine thread sees
/// them.
pub(crate) struct SavedPrompts {
    dir: PathBuf,
    key: Key,
    /// A file longer than a context cannot be restored.
    max_tokens: usize,
    max_bytes: u64,
    /// Files written, and files being written (not restored until they are).
    entries: Vec<Entry>,
    saves: Option<flume::Sender<Save>>,
    written: flume::Receiver<PathBuf>,
    writer: Option<JoinHandle<()>>,
}

struct Entry {
    path: PathBuf,
    tokens: Vec<LlamaToken>,
    written: bool,
}

/// A file read and checked: its tokens and llama.cpp's state for them.
pub(crate) struct Restored {
    pub tokens: Vec<LlamaToken>,
    bytes: Vec<u8>,
    state: std::ops::Range<usize>,
}

impl Restored {
    pub fn state(&self) -> &[u8] {
        &self.bytes[self.state.clone()]
    }
}

struct Save {
    path: PathBuf,
    tokens: Vec<i32>,
    state: Vec<u8>,
}

impl SavedPrompts {
    /// The files in `config.dir` saved for `key`, and a writer for new ones. A directory
    /// that cannot be made or read gives a warning and no saved prompts.
    pub fn open(config: &PromptCacheConfig, key: Key, max_tokens: usize) -> Option<Self> {
        if let Err(e) = make_private_dir(&config.dir) {
            tracing::warn!("prompt cache off: {}: {e}", config.dir.display());
            return None;
        }
        let entries = scan(&config.dir, &key, max_tokens);
        let (saves, to_write) = flume::bounded(1);
        let (wrote, written) = flume::unbounded();
        let (dir, max_bytes) = (config.dir.clone(), config.max_bytes);
        let writer = std::thread::Builder::new()
            .name("hearth-prompt-cache".into())
            .spawn(move || write_files(&dir, &key, max_bytes, &to_write, &wrote))
            .map_err(|e| tracing::warn!("prompt cache off: no writer thread: {e}"))
            .ok()?;
        Some(Self {
            dir: config.dir.clone(),
            key,
            max_tokens,
            max_bytes: config.max_bytes,
            entries,
            saves: Some(saves),
            written,
            writer: Some(writer),
        })
    }

    /// The tokens each file holds, least recently used first; `None` while it is being
    /// written. Indices are the entries [`SavedPrompts::load`] takes.
    pub fn holdings(&mut self) -> impl Iterator<Item = Option<&[LlamaToken]>> {
        self.note_written();
        self.entries.iter().map(|e| e.written.then_some(&e.tokens[..]))
    }

    /// Whether a cache holding `tokens` is worth a file: [`SAVE_MIN_TOKENS`] of them are in no
    /// file yet, and the writer is free (else the save is skipped, not queued).
    pub fn worth_saving(&mut self, tokens: &[LlamaToken]) -> bool {
        self.note_written();
        let saved = self.entries.iter().map(|e| crate::scheduler::common_prefix(&e.tokens, tokens)).max();
        let free = self.saves.as_ref().is_some_and(|s| !s.is_full());
        free && tokens.len() <= self.max_tokens && tokens.len() - saved.unwrap_or(0) >= SAVE_MIN_TOKENS
    }

    /// Whether a state of `bytes` may be saved at all.
    pub fn fits(&self, bytes: usize) -> bool {
        bytes as u64 <= self.max_bytes
    }

    /// Hands `state`, the cache of `tokens`, to the writer.
    pub fn save(&mut self, tokens: Vec<LlamaToken>, state: Vec<u8>) {
        let raw: Vec<i32> = tokens.iter().map(|t| t.0).collect();
        let path = self.dir.join(file_name(&self.key, &raw));
        let Some(saves) = &self.saves else { return };
        if saves.try_send(Save { path: path.clone(), tokens: raw, state }).is_ok() {
            self.entries.retain(|e| e.path != path);
            self.entries.push(Entry { path, tokens, written: false });
        }
    }

    /// Reads and checks entry `entry`'s file, and marks it used. A file that does not
    /// check out is deleted and forgotten, with the reason in the log.
    pub fn load(&mut self, entry: usize) -> Option<Restored> {
        let path = self.entries[entry].path.clone();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Evicted to make room (perhaps by another server sharing the directory).
                self.entries.remove(entry);
                return None;
            }
            Err(e) => {
                self.reject(entry, &e.to_string());
                return None;
            }
        };
        let state = match file::read(&bytes, &self.key, self.max_tokens) {
            Ok((header, state))
                if header.tokens.iter().copied().map(LlamaToken).eq(self.entries[entry].tokens.iter().copied()) =>
            {
                let start = state.as_ptr() as usize - bytes.as_ptr() as usize;
                start..start + state.len()
            }
            Ok(_) => {
                self.reject(entry, "its tokens are not the ones its name was made from");
                return None;
            }
            Err(e) => {
                self.reject(entry, &e.to_string());
                return None;
            }
        };
        // Its time of last use orders eviction.
        if let Err(e) = fs::File::options().append(true).open(&path).and_then(|f| f.set_modified(SystemTime::now())) {
            tracing::debug!("prompt cache {}: {e}", path.display());
        }
        let used = self.entries.remove(entry);
        let tokens = used.tokens.clone();
        self.entries.push(used);
        Some(Restored { tokens, bytes, state })
    }

    /// The entry of the file that holds `tokens`.
    pub fn entry_of(&self, tokens: &[LlamaToken]) -> Option<usize> {
        self.entries.iter().position(|e| e.tokens == tokens)
    }

    /// Forgets entry `entry` and deletes its file, saying why.
    pub fn reject(&mut self, entry: usize, why: &str) {
        let gone = self.entries.remove(entry);
        tracing::warn!("prompt cache {} ignored and deleted: {why}", gone.path.display());
        let _ = fs::remove_file(&gone.path);
    }

    fn note_written(&mut self) {
        for path in self.written.try_iter() {
            if let Some(entry) = self.entries.iter_mut().find(|e| e.path == path) {
                entry.written = true;
            }
        }
    }
}

impl Drop for SavedPrompts {
    /// Waits for the files handed to the writer: the next load of the model finds them.
    fn drop(&mut self) {
        self.saves.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The key of files made by the model file at `model` run with `settings` by this build:
/// the file (by path, size and modification time: a changed file is another model), what
/// shapes the state (the cache's types, flash attention, which lays values out otherwise,
/// and the number of slots, each a stream of its own) and the llama.cpp revision.
pub(crate) fn key(model: &Path, settings: &ResolvedSettings) -> std::io::Result<Key> {
    let path = fs::canonicalize(model)?;
    let meta = fs::metadata(&path)?;
    let modified = meta.modified()?.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let mut hash = Sha256::new();
    for part in [
        format!("hearth prompt cache {}", env!("CARGO_PKG_VERSION")),
        crate::LLAMA_CPP_CRATE.to_string(),
        path.display().to_string(),
        format!("{} bytes, modified {modified}", meta.len()),
        format!("{:?} {}", settings.kv_cache, settings.parallel),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    Ok(hash.finalize().into())
}

fn key_prefix(key: &Key) -> String {
    hearth_core::hex::encode(&key[..8])
}

fn file_name(key: &Key, tokens: &[i32]) -> String {
    let mut hash = Sha256::new();
    for token in tokens {
        hash.update(token.to_le_bytes());
    }
    format!("{}-{}.{EXTENSION}", key_prefix(key), hearth_core::hex::encode(&hash.finalize()[..8]))
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The files in `dir` saved for `key`, least recently used first, each known by its
/// header; one whose header does not read is deleted with a log line.
fn scan(dir: &Path, key: &Key, max_tokens: usize) -> Vec<Entry> {
    let prefix = key_prefix(key);
    let mut found: Vec<(SystemTime, Entry)> = Vec::new();
    for (path, modified, _) in cache_files(dir) {
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix)) {
            continue;
        }
        let header = fs::File::open(&path)
            .map_err(FileError::from)
            .and_then(|f| file::read_header(&mut std::io::BufReader::new(f), key, max_tokens));
        match header {
            Ok(header) => {
                let tokens = header.tokens.into_iter().map(LlamaToken).collect();
                found.push((modified, Entry { path, tokens, written: true }));
            }
            Err(FileError::TooLong(_)) => {} // Saved with a longer context: not this one's.
            Err(e) => {
                tracing::warn!("prompt cache {} ignored and deleted: {e}", path.display());
                let _ = fs::remove_file(&path);
            }
        }
    }
    found.sort_by_key(|(modified, _)| *modified);
    found.into_iter().map(|(_, entry)| entry).collect()
}

/// Every saved prompt cache in `dir`, of any model: path, last use, size.
fn cache_files(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(fs::Metadata::is_file)?;
            Some((e.path(), meta.modified().ok()?, meta.len()))
        })
        .collect()
}

/// The writer thread: writes each file handed to it whole, says so, and keeps the
/// directory under `max_bytes`. Temporary files a dead process left are removed first.
fn write_files(dir: &Path, key: &Key, max_bytes: u64, saves: &flume::Receiver<Save>, written: &flume::Sender<PathBuf>) {
    remove_abandoned(dir);
    for save in saves.iter() {
        let started = std::time::Instant::now();
        let result = hearth_core::files::write_private(&save.path, |f| {
            let mut out = BufWriter::with_capacity(1 << 20, f);
            file::write(&mut out, key, &save.tokens, &save.state)?;
            out.flush()
        });
        match result {
            Ok(()) => {
                tracing::debug!(
                    "prompt cache: saved {} tokens ({} MiB) in {:?}",
                    save.tokens.len(),
                    save.state.len() >> 20,
                    started.elapsed()
                );
                evict(dir, max_bytes, &save.path);
                let _ = written.send(save.path);
            }
            Err(e) => tracing::warn!("prompt cache {}: not saved: {e}", save.path.display()),
        }
    }
}

/// Deletes the least recently used files of `dir` until they fit `max_bytes`, `keep` last.
fn evict(dir: &Path, max_bytes: u64, keep: &Path) {
    let mut files = cache_files(dir);
    files.sort_by_key(|(path, modified, _)| (path == keep, *modified));
    let mut total: u64 = files.iter().map(|(_, _, size)| size).sum();
    for (path, _, size) in files {
        if total <= max_bytes {
            break;
        }
        if fs::remove_file(&path).is_ok() {
            tracing::debug!("prompt cache {} evicted", path.display());
        }
        total -= size;
    }
}

fn remove_abandoned(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let temporary = entry.file_name().to_string_lossy().ends_with(hearth_core::files::TEMPORARY_SUFFIX);
        let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if temporary && age.is_some_and(|age| age > ABANDONED) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: i32) -> Vec<LlamaToken> {
        (0..n).map(LlamaToken).collect()
    }

    /// The entry holding exactly `wanted`, once written.
    fn find(saved: &mut SavedPrompts, wanted: &[LlamaToken]) -> Option<usize> {
        saved.holdings().position(|held| held == Some(wanted))
    }

    fn open(dir: &Path, max_bytes: u64) -> SavedPrompts {
        SavedPrompts::open(&PromptCacheConfig { dir: dir.to_path_buf(), max_bytes }, [1; 32], 4096).unwrap()
    }

    #[test]
    fn a_saved_prompt_serves_its_prefix_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut saved = open(dir.path(), 1 << 20);
        assert!(saved.worth_saving(&tokens(600)));
        saved.save(tokens(600), vec![9; 1000]);
        drop(saved);

        let mut saved = open(dir.path(), 1 << 20);
        let found = find(&mut saved, &tokens(600)).expect("it was saved");
        let restored = saved.load(found).unwrap();
        assert_eq!((restored.tokens.len(), restored.state()), (600, &[9u8; 1000][..]));
        assert!(!saved.worth_saving(&tokens(1000)), "400 new tokens are too few");
        assert!(saved.worth_saving(&tokens(1200)));
        // Another key sees none of it.
        let mut other =
            SavedPrompts::open(&PromptCacheConfig { dir: dir.path().into(), max_bytes: 1 << 20 }, [2; 32], 4096)
                .unwrap();
        assert_eq!(other.holdings().count(), 0);
    }

    #[test]
    fn a_damaged_file_is_deleted_not_restored() {
        let dir = tempfile::tempdir().unwrap();
        let mut saved = open(dir.path(), 1 << 20);
        saved.save(tokens(600), vec![9; 1000]);
        drop(saved);
        let (path, _, size) = cache_files(dir.path()).pop().unwrap();
        fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(size - 10).unwrap();

        let mut saved = open(dir.path(), 1 << 20);
        let found = find(&mut saved, &tokens(600)).unwrap();
        assert!(saved.load(found).is_none());
        assert!(!path.exists());
        assert_eq!(find(&mut saved, &tokens(600)), None);
    }

    #[test]
    fn the_least_recently_used_go_when_the_files_outgrow_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        // Each file is 3,488 bytes: room for two.
        let mut saved = open(dir.path(), 8000);
        for first in [0, 1000, 2000] {
            saved.save((first..first + 600).map(LlamaToken).collect(), vec![1; 1000]);
            // One write at a time: wait for this one.
            while find(&mut saved, &(first..first + 600).map(LlamaToken).collect::<Vec<_>>()).is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            if first == 1000 {
                // The first file is used again: the second is now the least recent.
                let found = find(&mut saved, &tokens(600)).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                saved.load(found).unwrap();
            }
        }
        drop(saved);
        let mut saved = open(dir.path(), 8000);
        assert!(find(&mut saved, &tokens(600)).is_some());
        assert!(find(&mut saved, &(1000..1600).map(LlamaToken).collect::<Vec<_>>()).is_none());
        assert!(find(&mut saved, &(2000..2600).map(LlamaToken).collect::<Vec<_>>()).is_some());
    }
}
