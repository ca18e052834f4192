//! A blob sent to the store piece by piece (Ollama's `POST /api/blobs/:digest`): written
//! to a temporary file while hashed, and placed under its name only when every byte matches
//! the digest it was announced with. An abandoned upload leaves nothing behind.

use crate::digest::HashingWriter;
use crate::{Digest, Store, StoreError};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

pub struct BlobUpload<'s> {
    store: &'s Store,
    expected: Digest,
    temp: PathBuf,
    writer: Option<HashingWriter<BufWriter<File>>>,
}

impl Store {
    /// Starts receiving the blob `expected`.
    pub fn upload_blob(&self, expected: Digest) -> Result<BlobUpload<'_>, StoreError> {
        let temp = self.temp_path();
        let file = File::create(&temp).map_err(|e| StoreError::io(&temp, e))?;
        let writer = Some(Digest::hashing(BufWriter::with_capacity(1 << 20, file)));
        Ok(BlobUpload { store: self, expected, temp, writer })
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }
}

impl BlobUpload<'_> {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let writer = self.writer.as_mut().expect("present until finished");
        writer.write_all(bytes).map_err(|e| StoreError::io(&self.temp, e))
    }

    /// Checks the digest and stores the blob; returns its size.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        let (actual, size, buffered) = self.writer.take().expect("present until finished").finish();
        let file = buffered.into_inner().map_err(|e| StoreError::io(&self.temp, e.into_error()))?;
        file.sync_all().map_err(|e| StoreError::io(&self.temp, e))?;
        if actual != self.expected {
            return Err(StoreError::DigestMismatch { expected: self.expected.clone(), actual });
        }
        self.store.place(&self.temp, &actual)?;
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
}
