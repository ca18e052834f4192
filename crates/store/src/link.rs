//! How a file already on this machine becomes a blob without a second copy of its bytes: a
//! reflink (a copy-on-write clone, on btrfs, XFS, bcachefs...) where the file system can make
//! one, else a hard link, else a copy.

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// How an imported file's bytes got into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A copy-on-write clone: no bytes copied, and later edits of the original do not reach it.
    Reflink,
    /// The same file under a second name: no bytes copied.
    HardLink,
    Copy,
    /// A blob with the same digest was in the store already.
    AlreadyStored,
}

impl Placement {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Reflink => "reflinked (copy-on-write, no second copy)",
            Self::HardLink => "hard-linked (no second copy)",
            Self::Copy => "copied",
            Self::AlreadyStored => "already in the store",
        }
    }
}

/// Clones `source` to the new file `target`; fails where the file system cannot, leaving no
/// `target` behind.
#[cfg(target_os = "linux")]
pub(crate) fn reflink(source: &Path, target: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // FICLONE = _IOW(0x94, 9, int), from linux/fs.h.
    nix::ioctl_write_int!(ficlone, 0x94, 9);
    let from = File::open(source)?;
    let to = File::options().write(true).create_new(true).open(target)?;
    let fd = nix::sys::ioctl::ioctl_param_type::try_from(from.as_raw_fd()).map_err(io::Error::other)?;
    // SAFETY: both descriptors are open for the duration of the call; FICLONE reads nothing
    // from memory, its argument is the source descriptor itself.
    match unsafe { ficlone(to.as_raw_fd(), fd) } {
        Ok(_) => to.sync_all(),
        Err(errno) => {
            drop(to);
            let _ = fs::remove_file(target);
            Err(io::Error::from(errno))
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn reflink(_source: &Path, _target: &Path) -> io::Result<()> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "reflinks are implemented for Linux only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reflink_leaves_no_target() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("a");
        fs::write(&source, b"bytes").unwrap();
        let target = dir.path().join("b");
        match reflink(&source, &target) {
            // A file system with clones (btrfs, XFS): the clone has the bytes.
            Ok(()) => assert_eq!(fs::read(&target).unwrap(), b"bytes"),
            // ext4, tmpfs, ...: EOPNOTSUPP or EINVAL, and nothing left behind.
            Err(_) => assert!(!target.exists()),
        }
        assert!(reflink(&dir.path().join("missing"), &dir.path().join("c")).is_err());
        assert!(!dir.path().join("c").exists());
    }
}
