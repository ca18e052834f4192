//! Temporary files of writes in progress: `.tmp-<pid>-<n>` beside their destination, held
//! under an exclusive lock for as long as they are written. One whose process is gone, or
//! that nobody holds locked any more, can never be finished and is removed; one that a live
//! write holds is never touched. (`-partial` downloads are not temporaries: they resume.)

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// Temporary files and directories start with this.
pub(crate) const PREFIX: &str = ".tmp-";

/// The lock file inside a temporary directory.
const DIR_LOCK: &str = ".lock";

/// An unlocked temporary of a live process is left alone this long: the moment between its
/// creation and its lock (or a hard link made before it can be locked).
pub(crate) const UNLOCKED_GRACE: Duration = Duration::from_secs(60);

/// A new temporary name in `dir`, `.tmp-<pid>-<n>` (with `kind-` before the pid if given).
pub(crate) fn path_in(dir: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{PREFIX}{kind}{}-{n}", std::process::id()))
}

/// Creates the temporary file `path` (it must not exist) and locks it.
pub(crate) fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
    file.lock()?;
    Ok(file)
}

/// Locks a temporary file made by other means (a hard link, a clone).
pub(crate) fn lock_existing(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    file.lock()?;
    Ok(file)
}

/// A temporary directory, removed with what is in it when dropped; its lock file is held
/// locked meanwhile.
pub(crate) struct TempDir {
    pub path: PathBuf,
    _lock: File,
}

impl TempDir {
    pub(crate) fn new(parent: &Path, kind: &str) -> io::Result<Self> {
        let path = path_in(parent, kind);
        fs::create_dir_all(&path)?;
        match create(&path.join(DIR_LOCK)) {
            Ok(lock) => Ok(Self { path, _lock: lock }),
            Err(e) => {
                let _ = fs::remove_dir_all(&path);
                Err(e)
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes the temporaries under `dir` (at any depth when `recursive`) that can no longer
/// be finished; an unlocked one of a live process only once older than `grace`. Returns
/// how many went.
pub(crate) fn remove_stale(dir: &Path, recursive: bool, grace: Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(PREFIX) {
            if is_dir && recursive {
                removed += remove_stale(&path, true, grace);
            }
            continue;
        }
        let lock_file = if is_dir { path.join(DIR_LOCK) } else { path.clone() };
        if !is_stale(&name, &lock_file, grace) {
            continue;
        }
        let gone = if is_dir { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        if gone.is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether the temporary `name`, whose lock is taken on `lock_file`, is abandoned.
fn is_stale(name: &str, lock_file: &Path, grace: Duration) -> bool {
    if pid_of(name).is_some_and(|pid| !process_alive(pid)) {
        return true;
    }
    // The process lives (or the pid was reused): abandoned only if nobody holds the lock,
    // and not in the moment before a writer takes it.
    let Ok(file) = File::open(lock_file) else {
        // A directory whose lock file is missing: made and not yet locked, or half removed.
        return age(lock_file.parent().unwrap_or(lock_file)).is_some_and(|a| a > grace);
    };
    match file.try_lock() {
        Ok(()) => {
            let old = age(lock_file).is_some_and(|a| a > grace);
            drop(file);
            old
        }
        Err(_) => false,
    }
}

/// The pid in `.tmp-<pid>-<n>` or `.tmp-<kind>-<pid>-<n>`.
fn pid_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let fields: Vec<&str> = rest.split('-').collect();
    match fields.as_slice() {
        [pid, _] | [_, pid, _] => pid.parse().ok(),
        _ => None,
    }
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pid) else { return true };
    // Signal 0 checks for the process without touching it; EPERM means it exists.
    !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    // Unknown here: rely on the lock.
    true
}

/// How long ago `path` last changed, by the later of its modification and status-change
/// times (a hard link keeps its source's mtime, but making the link sets its ctime).
pub(crate) fn age(path: &Path) -> Option<Duration> {
    let meta = fs::symlink_metadata(path).ok()?;
    let mut changed = meta.modified().ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ctime = SystemTime::UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
        changed = changed.max(ctime);
    }
    Some(SystemTime::now().duration_since(changed).unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The pid of a process that has exited.
    pub(crate) fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn pids_are_read_from_names() {
        assert_eq!(pid_of(".tmp-123-4"), Some(123));
        assert_eq!(pid_of(".tmp-pip-77-0"), Some(77));
        assert_eq!(pid_of(".tmp-x"), None);
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(dead_pid()));
    }

    #[test]
    fn only_abandoned_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Written by a live process (this one), locked: kept, however old.
        let live = path_in(dir.path(), "");
        let _held = create(&live).unwrap();
        // Left by a process that is gone: removed at once.
        let dead = dir.path().join(format!("{PREFIX}{}-0", dead_pid()));
        fs::write(&dead, b"half").unwrap();
        let dead_dir = dir.path().join(format!("{PREFIX}pip-{}-0", dead_pid()));
        fs::create_dir(&dead_dir).unwrap();
        fs::write(dead_dir.join("x.whl"), b"wheel").unwrap();
        // This process's pid but nobody's lock (a pid reused after a crash): removed once old.
        let unlocked = dir.path().join(format!("{PREFIX}{}-999999", std::process::id()));
        fs::write(&unlocked, b"orphan").unwrap();
        // Not temporaries: a resumable download and a blob.
        fs::write(dir.path().join("sha256-abc-partial"), b"resume me").unwrap();
        fs::write(dir.path().join("sha256-abc"), b"blob").unwrap();

        assert_eq!(remove_stale(dir.path(), false, UNLOCKED_GRACE), 2);
        assert!(live.exists() && unlocked.exists() && !dead.exists() && !dead_dir.exists());
        assert_eq!(remove_stale(dir.path(), false, Duration::ZERO), 1);
        assert!(live.exists() && !unlocked.exists());
        assert!(dir.path().join("sha256-abc-partial").exists() && dir.path().join("sha256-abc").exists());

        let temp = TempDir::new(dir.path(), "pip-").unwrap();
        assert_eq!(remove_stale(dir.path(), false, Duration::ZERO), 0, "a held directory stays");
        let path = temp.path.clone();
        drop(temp);
        assert!(!path.exists());
    }
}
