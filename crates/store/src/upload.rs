//! A blob sent to the store piece by piece (Ollama's `POST /api/blobs/:digest`): written
//! to a temporary file while hashed, and placed under its name only when every byte matches
//! the digest it was announced with. An abandoned upload leaves nothing behind.

use crate::digest::HashingWriter;
use crate::space::Recheck;
use crate::{Digest, Store, StoreError};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Kept free beyond an upload: manifests, temporaries, everyone else.
const FREE_MARGIN: u64 = 256 << 20;

pub struct BlobUpload<'s> {
    store: &'s Store,
    expected: Digest,
    temp: PathBuf,
    writer: Option<HashingWriter<BufWriter<File>>>,
    written: u64,
    limit: u64,
    why: String,
    recheck: Recheck,
}

impl Store {
    /// Starts receiving the blob `expected`. It may hold at most the store's cap
    /// (`with_max_upload`) and at most the free space on the store's file system less a
    /// margin: a write past either is refused with `UploadTooLarge` and nothing is kept.
    pub fn upload_blob(&self, expected: Digest) -> Result<BlobUpload<'_>, StoreError> {
        let (limit, why) = self.upload_limit();
        let temp = self.temp_path();
        let file = crate::temp::create(&temp).map_err(|e| StoreError::io(&temp, e))?;
        let writer = Some(Digest::hashing(BufWriter::with_capacity(1 << 20, file)));
        Ok(BlobUpload { store: self, expected, temp, writer, written: 0, limit, why, recheck: Recheck::default() })
    }

    /// The most an upload may hold now, and why that much.
    fn upload_limit(&self) -> (u64, String) {
        let blobs = self.root().join("blobs");
        let room = crate::space::available(&blobs).map(|free| free.saturating_sub(FREE_MARGIN));
        match (self.max_upload, room) {
            (Some(cap), Some(room)) if room < cap => (room, free_space_reason(&blobs)),
            (Some(cap), _) => (cap, "the most this server accepts".into()),
            (None, Some(room)) => (room, free_space_reason(&blobs)),
            (None, None) => (u64::MAX, String::new()),
        }
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }
}

fn free_space_reason(blobs: &std::path::Path) -> String {
    format!("the free space in {} less {} MiB kept free", blobs.display(), FREE_MARGIN >> 20)
}

impl BlobUpload<'_> {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let len = bytes.len() as u64;
        if self.written.saturating_add(len) > self.limit {
            return Err(StoreError::UploadTooLarge { limit: self.limit, why: self.why.clone() });
        }
        if self.recheck.due(len) {
            let blobs = self.store.root().join("blobs");
            if crate::space::available(&blobs).is_some_and(|free| free < len.saturating_add(FREE_MARGIN)) {
                return Err(StoreError::UploadTooLarge { limit: self.written, why: free_space_reason(&blobs) });
            }
        }
        let writer = self.writer.as_mut().expect("present until finished");
        writer.write_all(bytes).map_err(|e| StoreError::io(&self.temp, e))?;
        self.written += len;
        Ok(())
    }

    /// Checks the digest and stores the blob; returns its size.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        let (actual, size, buffered) = self.writer.take().expect("present until finished").finish();
        let file = buffered.into_inner().map_err(|e| StoreError::io(&self.temp, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io(&self.temp, e))?;
        if actual != self.expected {
            return Err(StoreError::DigestMismatch { expected: self.expected.clone(), actual });
        }
        // `file` (and its lock) is held until the blob is in place.
        self.store.place(&self.temp, &actual)?;
        drop(file);
        Ok(size)
    }
}

impl Drop for BlobUpload<'_> {
    fn drop(&mut self) {
        // Gone already when placed; otherwise an unfinished or refused upload.
        let _ = fs::remove_file(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_only_when_its_bytes_match_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = Digest::of_bytes(b"hello world");
        let mut upload = store.upload_blob(digest.clone()).unwrap();
        upload.write(b"hello ").unwrap();
        upload.write(b"world").unwrap();
        assert_eq!(upload.finish().unwrap(), 11);
        assert!(store.has_blob(&digest));
        assert_eq!(store.read_blob(&digest).unwrap(), b"hello world");

        let other = Digest::of_bytes(b"something else");
        let mut upload = store.upload_blob(other.clone()).unwrap();
        upload.write(b"not it").unwrap();
        assert!(matches!(upload.finish(), Err(StoreError::DigestMismatch { .. })));
        let mut abandoned = store.upload_blob(other.clone()).unwrap();
        abandoned.write(b"half").unwrap();
        drop(abandoned);
        assert!(!store.has_blob(&other));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("blobs")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "only the stored blob: {leftovers:?}");
    }

    #[test]
    fn an_upload_past_the_cap_is_refused_at_once_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap().with_max_upload(10);
        let digest = Digest::of_bytes(b"0123456789abc");
        let mut upload = store.upload_blob(digest.clone()).unwrap();
        upload.write(b"0123456789").unwrap();
        let err = upload.write(b"abc").unwrap_err();
        assert!(matches!(err, StoreError::UploadTooLarge { limit: 10, .. }), "{err}");
        assert!(err.to_string().contains("larger than 10 bytes, the most this server accepts"), "{err}");
        drop(upload);
        assert!(!store.has_blob(&digest));
        assert_eq!(fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);

        // Without a cap, the free space bounds it.
        let store = Store::open(dir.path()).unwrap();
        let upload = store.upload_blob(digest).unwrap();
        let free = crate::space::available(&dir.path().join("blobs")).unwrap();
        assert!(upload.limit < free && upload.why.contains("free space"), "{} of {free}", upload.limit);
    }
}
