//! Files replaced whole or not at all, readable by their owner only: written under a
//! temporary name beside the target, synced, then renamed over it, so a process killed
//! mid-write leaves the old file or the new one, never a part.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of the temporary names: a file that carries it was never finished.
pub const TEMPORARY_SUFFIX: &str = ".partial";

/// Writes `path` through `write`, which is given the new file; on any error the temporary
/// file goes and `path` is as it was.
pub fn write_private(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    // Unique per process and per write: two threads may write beside each other.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}-{}{TEMPORARY_SUFFIX}", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
    let temp = path.with_file_name(name);
    let result = (|| {
        let mut options = OpenOptions::new();
        // Truncated, not created anew: the name is this process's and this write's, so a
        // file already there is a dead process's leftover under a reused pid.
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temp)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    // Makes the rename durable. Best effort: not every platform can sync a directory.
    if let Some(d) = path.parent().and_then(|dir| File::open(dir).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("hearth-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("totals.json");
        write_private(&path, |f| f.write_all(b"old")).unwrap();
        let failed = write_private(&path, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "the temporary file was removed");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
