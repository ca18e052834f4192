//! `Store::prune` run from another thread while an import, an upload or a download of this
//! process is writing: the file being written survives and the operation completes. Each
//! writer is paused at a known point by the test itself (a pipe it feeds, an upload it
//! drives, a progress callback that waits on a channel), so the prune always lands in the
//! middle of the write.

use hearth_store::manifest::{CONFIG_MEDIA_TYPE, MODEL};
use hearth_store::test_registry::{Registry, Route};
use hearth_store::{Digest, ImportMode, Layer, Manifest, ModelName, ParallelDownloads, Placement, Progress, Store};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bytes of a blob: 3 MiB, more than one read or write buffer of any of the writers.
fn blob_bytes() -> Vec<u8> {
    (0..(3u32 << 18)).flat_map(|i| i.to_le_bytes()).collect()
}

/// The files in the store's blob directory whose names satisfy `keep`.
fn blob_dir_files(store: &Store, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(store.root().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    files
}

fn temporaries(store: &Store) -> Vec<PathBuf> {
    blob_dir_files(store, |name| name.starts_with(".tmp-"))
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// Waits for `condition` to hold, for at most 30 s.
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Prunes from a thread of its own, as a second request of a server would.
fn prune_elsewhere(store: &Store) -> usize {
    std::thread::scope(|scope| scope.spawn(|| store.prune().unwrap()).join().unwrap())
}

#[test]
fn an_upload_survives_a_prune_from_another_thread() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bytes = blob_bytes();
    let digest = Digest::of_bytes(&bytes);
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    let mut upload = store.upload_blob(digest.clone()).unwrap();
    upload.write(first).unwrap();
    let [temp] = temporaries(&store).try_into().unwrap();
    assert!(len(&temp) > 0, "the upload has written to its temporary");

    assert_eq!(prune_elsewhere(&store), 0);
    // And what opening the store does (another command, a server starting).
    assert_eq!(Store::open(root.path()).unwrap().remove_abandoned_temporaries(), 0);
    assert!(temp.exists(), "the upload's temporary was taken");

    upload.write(rest).unwrap();
    assert_eq!(upload.finish().unwrap(), bytes.len() as u64);
    assert_eq!(store.read_blob(&digest).unwrap(), bytes);
    assert!(temporaries(&store).is_empty());
}

/// The source is a named pipe the test feeds: the import reads it once to hash it and once
/// to copy it, and the copy waits, half written, for the rest. (Linux: whether the hashing
/// read has closed the pipe is seen in `/proc/self/fd`.)
#[cfg(target_os = "linux")]
#[test]
fn an_import_survives_a_prune_from_another_thread() {
    use nix::sys::stat::Mode;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path().join("store")).unwrap();
    let source = root.path().join("model.gguf");
    nix::unistd::mkfifo(&source, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    let source = fs::canonicalize(&source).unwrap();
    let pipe_open = || {
        fs::read_dir("/proc/self/fd").unwrap().flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == source))
    };
    let bytes = blob_bytes();
    let (first, rest) = bytes.split_at(bytes.len() / 2);
    std::thread::scope(|scope| {
        let import = scope.spawn(|| store.import_file(MODEL, &source, ImportMode::Copy));
        // The hashing read: all of it. (Opening a pipe waits for its reader.) Its end is
        // when it closes the pipe; a writer opened before would feed it, not the copy.
        fs::write(&source, &bytes).unwrap();
        wait_until("the hashing read to close the pipe", || !pipe_open());
        // The copying read: half, then wait until the temporary holds that half.
        let mut writer = fs::OpenOptions::new().write(true).open(&source).unwrap();
        writer.write_all(first).unwrap();
        let half_written = || temporaries(&store).into_iter().find(|t| len(t) == first.len() as u64);
        wait_until("a temporary holding the first half", || half_written().is_some());
        let temp = half_written().unwrap();

        assert_eq!(prune_elsewhere(&store), 0);
        assert!(temp.exists(), "the import's temporary was taken");

        writer.write_all(rest).unwrap();
        drop(writer);
        let (layer, placement) = import.join().unwrap().unwrap();
        assert_eq!((layer.digest.clone(), placement), (Digest::of_bytes(&bytes), Placement::Copy));
        assert_eq!(store.read_blob(&layer.digest).unwrap(), bytes);
    });
    assert!(temporaries(&store).is_empty());
}

/// A registry pull whose progress callback stops at the first bytes of the model's blob
/// until the prune is done; `parallel` fetches it in ranged parts, with a parts record.
fn a_download_survives_a_prune_from_another_thread(parallel: Option<ParallelDownloads>) {
    let bytes = blob_bytes();
    let config = br#"{"model_format":"gguf"}"#.to_vec();
    let layer = |media_type: &str, bytes: &[u8]| Layer {
        media_type: media_type.into(),
        digest: Digest::of_bytes(bytes),
        size: bytes.len() as u64,
    };
    let manifest = Manifest::new(layer(CONFIG_MEDIA_TYPE, &config), vec![layer(MODEL, &bytes)]);
    let routes: HashMap<String, Route> = [
        ("/v2/library/tiny/manifests/latest".to_string(), Route::Body(serde_json::to_vec(&manifest).unwrap())),
        (format!("/v2/library/tiny/blobs/{}", manifest.config.digest), Route::Body(config)),
        (format!("/v2/library/tiny/blobs/{}", manifest.layers[0].digest), Route::Body(bytes.clone())),
    ]
    .into();
    let registry = Registry::start(routes);
    let name = ModelName::parse(&format!("{}/library/tiny", registry.host)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut store = Store::open(root.path()).unwrap();
    if let Some(parallel) = parallel {
        store = store.with_parallel_downloads(parallel);
    }
    let model_blob = manifest.layers[0].digest.to_string();
    let (store, name, model_blob) = (&store, &name, &model_blob);
    std::thread::scope(|scope| {
        // Made in here, so that a failing assertion drops `resume` before the scope waits.
        let (paused, paused_at) = mpsc::channel::<()>();
        let (resume, resumed) = mpsc::channel::<()>();
        let pull = scope.spawn(move || {
            let mut once = Some((paused, resumed));
            store.pull_from_registry(name, true, &mut |progress| {
                match (progress, once.take()) {
                    (Progress::Bytes { blob, .. }, Some((paused, resumed))) if blob == *model_blob => {
                        paused.send(()).unwrap();
                        // Dropped (the test failed): go on, so the scope can end.
                        let _ = resumed.recv();
                    }
                    (_, signals) => once = signals,
                }
            })
        });
        paused_at.recv_timeout(Duration::from_secs(30)).expect("the download reports its first bytes");
        let in_progress = blob_dir_files(store, |name| name.contains("-partial"));
        assert!(!in_progress.is_empty());
        if parallel.is_some() {
            assert!(in_progress.iter().any(|p| p.to_string_lossy().ends_with(".parts")), "{in_progress:?}");
        }

        assert_eq!(prune_elsewhere(store), 0);
        for file in &in_progress {
            assert!(file.exists(), "the download's {} was taken", file.display());
        }

        resume.send(()).unwrap();
        assert_eq!(pull.join().unwrap().unwrap(), manifest);
    });
    assert_eq!(store.read_blob(&manifest.layers[0].digest).unwrap(), bytes);
    assert!(blob_dir_files(store, |name| name.contains("-partial") || name.starts_with(".tmp-")).is_empty());
}

#[test]
fn a_download_in_one_stream_survives_a_prune_from_another_thread() {
    a_download_survives_a_prune_from_another_thread(None);
}

#[test]
fn a_download_in_parts_survives_a_prune_from_another_thread() {
    let parallel = ParallelDownloads { min_size: 1 << 20, min_part: 1 << 20, connections: 2 };
    a_download_survives_a_prune_from_another_thread(Some(parallel));
}
