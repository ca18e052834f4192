//! Free space on the store's file system, checked before a download starts, so a pull that
//! cannot fit fails at once with the figures instead of filling the disk.

use crate::StoreError;
use std::path::Path;

/// Kept free beyond the download itself: the manifest, temporary files, everyone else.
const MARGIN: u64 = 64 << 20;

/// Bytes available to this user on the file system holding `path`; `None` where unknown.
pub(crate) fn available(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let stats = nix::sys::statvfs::statvfs(path).ok()?;
        Some((stats.blocks_available() as u64).saturating_mul(stats.fragment_size() as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Says when a transfer whose end is not known in advance (an upload, a download of
/// unknown size) should look at the free space again: after every 64 MiB written.
#[derive(Debug, Default)]
pub(crate) struct Recheck {
    unchecked: u64,
}

impl Recheck {
    const EVERY: u64 = 64 << 20;

    /// Counts `bytes` more written; true when the free space is due to be checked.
    pub fn due(&mut self, bytes: u64) -> bool {
        self.unchecked += bytes;
        if self.unchecked < Self::EVERY {
            return false;
        }
        self.unchecked = 0;
        true
    }
}

/// Refuses a download of `needed` more bytes into `dir` when they would not fit.
pub(crate) fn ensure_room(dir: &Path, needed: u64) -> Result<(), StoreError> {
    match available(dir) {
        Some(free) if free < needed.saturating_add(MARGIN) => {
            Err(StoreError::NoSpace { path: dir.to_path_buf(), needed, available: free })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_free_space_and_refuses_what_cannot_fit() {
        let dir = tempfile::tempdir().unwrap();
        let free = available(dir.path()).unwrap();
        assert!(free > 0);
        assert!(ensure_room(dir.path(), 1024).is_ok());
        let err = ensure_room(dir.path(), free).unwrap_err().to_string();
        assert!(err.contains("not enough free space"), "{err}");
    }
}
