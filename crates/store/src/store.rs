//! The store on disk: `blobs/sha256-<hex>` and `manifests/<host>/<namespace>/<model>/<tag>`
//! under one root. Every write goes to a temporary file that is synced and then renamed into
//! place, so a crash or a full disk never leaves a half-written blob or manifest visible.

use crate::digest::Digest;
use crate::download::ParallelDownloads;
use crate::link::{self, Placement};
use crate::manifest::{Layer, Manifest};
use crate::name::ModelName;
use crate::temp::{self, PREFIX as TEMP_PREFIX, UNLOCKED_GRACE};
use crate::StoreError;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Blobs no model refers to are kept this long by `remove` (which deletes at once only the
/// removed model's own blobs): an upload or import that a `create` is about to refer to.
const REMOVE_ORPHANS_AFTER: Duration = Duration::from_secs(3600);

pub struct Store {
    root: PathBuf,
    pub(crate) parallel: ParallelDownloads,
    /// The most one upload may hold, besides the free space (see `with_max_upload`).
    pub(crate) max_upload: Option<u64>,
}

/// How `import_file` stores a file that is already on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// A reflink or a hard link where the file system allows (no second copy), else a copy.
    LinkOrCopy,
    Copy,
}

/// One model in the store.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: ModelName,
    /// The digest of the manifest file: the model's id, as `list` shows it.
    pub id: Digest,
    pub manifest: Manifest,
    pub modified: SystemTime,
}

impl Store {
    /// `$HEARTH_MODELS`, else `~/.hearth/models`.
    pub fn default_root() -> PathBuf {
        hearth_core::home::file("HEARTH_MODELS", "models")
    }

    /// Opens (creating) the store at `root`, and removes temporary files that writes of
    /// processes which are gone left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in ["blobs", "manifests"] {
            fs::create_dir_all(root.join(dir)).map_err(|e| StoreError::io(root.join(dir), e))?;
        }
        let store = Self { root, parallel: ParallelDownloads::default(), max_upload: None };
        store.remove_abandoned_temporaries();
        Ok(store)
    }

    /// Removes the temporary files of writes that can never finish (their process is gone,
    /// or nobody holds them any more); those of writes in progress, in this process or
    /// another, are kept, and so are `-partial` downloads, which a later pull resumes.
    /// `open` does this; a long-running server may call it now and then. Returns how many
    /// went.
    pub fn remove_abandoned_temporaries(&self) -> usize {
        temp::remove_stale(&self.root.join("blobs"), false, UNLOCKED_GRACE)
            + temp::remove_stale(&self.root.join("manifests"), true, UNLOCKED_GRACE)
    }

    /// Caps the size of one upload (`upload_blob`) at `bytes`; the free space on the
    /// store's file system, less a margin, caps it in any case.
    pub fn with_max_upload(mut self, bytes: u64) -> Self {
        self.max_upload = Some(bytes);
        self
    }

    /// How large downloads are split into parts fetched at once.
    pub fn with_parallel_downloads(mut self, parallel: ParallelDownloads) -> Self {
        self.parallel = parallel;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join(digest.file_name())
    }

    /// Where the manifest of `name` is, or would be written: names compare without regard
    /// to case, as in Ollama, so each part takes the casing already on disk where there is
    /// one (`SMOL` is the file of `smol` when that exists) and a model has one manifest.
    fn manifest_file(&self, name: &ModelName) -> PathBuf {
        let exact = self.root.join("manifests").join(name.manifest_path());
        if exact.is_file() {
            return exact;
        }
        let mut path = self.root.join("manifests");
        for (i, part) in [&name.host, &name.namespace, &name.model, &name.tag].into_iter().enumerate() {
            let want_dir = i < 3;
            let existing = fs::read_dir(&path).ok().and_then(|entries| {
                let mut matches: Vec<String> = entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() == want_dir))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.eq_ignore_ascii_case(part) && !n.starts_with(TEMP_PREFIX))
                    .collect();
                matches.sort();
                // The exact casing first (a store from before names folded case may hold two).
                matches.iter().find(|n| *n == part).or(matches.first()).cloned()
            });
            path.push(existing.as_deref().unwrap_or(part));
        }
        path
    }

    /// The name of the model `name` refers to, as the store spells it (`smol` for `SMOL`);
    /// `None` when there is no such model.
    pub fn resolve(&self, name: &ModelName) -> Option<ModelName> {
        let path = self.manifest_file(name);
        if !path.is_file() {
            return None;
        }
        let parts: Vec<String> = path
            .strip_prefix(self.root.join("manifests"))
            .ok()?
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let [host, namespace, model, tag] = parts.as_slice() else { return None };
        Some(ModelName { host: host.clone(), namespace: namespace.clone(), model: model.clone(), tag: tag.clone() })
    }

    /// Stores `bytes` as a blob (idempotent); returns its layer description.
    pub fn write_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Layer, StoreError> {
        let digest = Digest::of_bytes(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        Ok(Layer { media_type: media_type.into(), digest, size: bytes.len() as u64 })
    }

    /// Stores a file from this machine as a blob without reading it into memory. With
    /// `LinkOrCopy` a reflink is tried first, then a hard link (same file system), then a
    /// copy; each lands under a temporary name, and is renamed into place once its digest
    /// is known. Returns the layer and how the bytes got there.
    pub fn import_file(
        &self,
        media_type: &str,
        source: &Path,
        mode: ImportMode,
    ) -> Result<(Layer, Placement), StoreError> {
        let temp = self.temp_path();
        let result = self.import_into(source, mode, &temp);
        let _ = fs::remove_file(&temp);
        let (digest, size, placement) = result?;
        Ok((Layer { media_type: media_type.into(), digest, size }, placement))
    }

    fn import_into(
        &self,
        source: &Path,
        mode: ImportMode,
        temp: &Path,
    ) -> Result<(Digest, u64, Placement), StoreError> {
        let hash = |path: &Path| {
            let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
            Digest::of_reader(io::BufReader::new(file)).map_err(|e| StoreError::io(path, e))
        };
        // Each temporary is locked while it exists, so no cleanup takes it from under us.
        let lock = |path: &Path| temp::lock_existing(path).map_err(|e| StoreError::io(path, e));
        if mode == ImportMode::LinkOrCopy && link::reflink(source, temp).is_ok() {
            let _held = lock(temp)?;
            // The clone is a snapshot: what is hashed is what is stored.
            let (digest, size) = hash(temp)?;
            self.place(temp, &digest)?;
            return Ok((digest, size, Placement::Reflink));
        }
        let (digest, size) = hash(source)?;
        if self.blob_path(&digest).exists() {
            return Ok((digest, size, Placement::AlreadyStored));
        }
        if mode == ImportMode::LinkOrCopy && fs::hard_link(source, temp).is_ok() {
            let _held = lock(temp)?;
            self.place(temp, &digest)?;
            return Ok((digest, size, Placement::HardLink));
        }
        let _held = copy_synced(source, temp)?;
        // A copy must hold what was hashed; a source changed meanwhile is refused.
        let (copied, _) = hash(temp)?;
        if copied != digest {
            return Err(StoreError::DigestMismatch { expected: digest, actual: copied });
        }
        self.place(temp, &digest)?;
        Ok((digest, size, Placement::Copy))
    }

    /// Renames a finished temporary file to the blob `digest` (unless that is there already).
    pub(crate) fn place(&self, temp: &Path, digest: &Digest) -> Result<(), StoreError> {
        let path = self.blob_path(digest);
        if !path.exists() {
            fs::rename(temp, &path).map_err(|e| StoreError::io(&path, e))?;
            sync_dir(path.parent().expect("blobs dir"));
        }
        Ok(())
    }

    /// The config blob of a manifest (family, parameter size, quantization); empty fields
    /// when it cannot be read.
    pub fn config_of(&self, manifest: &Manifest) -> crate::ModelConfig {
        self.read_blob(&manifest.config.digest).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    pub fn write_manifest(&self, name: &ModelName, manifest: &Manifest) -> Result<(), StoreError> {
        for digest in manifest.digests() {
            if !self.blob_path(digest).exists() {
                return Err(StoreError::MissingBlob(digest.clone()));
            }
        }
        let path = self.manifest_file(name);
        let dir = path.parent().expect("manifest paths have a parent");
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let json = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        write_atomically(&path, &json)
    }

    /// When the model `name` was last written (created, pulled or copied): its manifest's
    /// modification time, the epoch if that cannot be read.
    pub fn modified(&self, name: &ModelName) -> SystemTime {
        modified_at(&self.manifest_file(name))
    }

    pub fn manifest(&self, name: &ModelName) -> Result<Manifest, StoreError> {
        self.manifest_with_id(name).map(|(manifest, _)| manifest)
    }

    /// The manifest and the digest of its file (the model's id), from one read.
    fn manifest_with_id(&self, name: &ModelName) -> Result<(Manifest, Digest), StoreError> {
        let bytes = self.manifest_bytes(name)?;
        let manifest = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::CorruptManifest { path: self.manifest_file(name), detail: e.to_string() })?;
        Ok((manifest, Digest::of_bytes(&bytes)))
    }

    fn manifest_bytes(&self, name: &ModelName) -> Result<Vec<u8>, StoreError> {
        let path = self.manifest_file(name);
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound(name.clone()),
            _ => StoreError::io(&path, e),
        })
    }

    /// The text of a manifest's layer of `media_type` (system message, template, JSON
    /// parameters, ...), if it has one.
    pub fn text_layer(&self, manifest: &Manifest, media_type: &str) -> Result<Option<String>, StoreError> {
        manifest
            .layer(media_type)
            .map(|layer| Ok(String::from_utf8_lossy(&self.read_blob(&layer.digest)?).into_owned()))
            .transpose()
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(|e| StoreError::io(&path, e))
    }

    /// Every model in the store, sorted by name. A manifest that cannot be read is skipped
    /// with a warning in the result, never a reason to list nothing.
    pub fn list(&self) -> Result<(Vec<Entry>, Vec<String>), StoreError> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        let manifests = self.root.join("manifests");
        for host in read_dirs(&manifests)? {
            for namespace in read_dirs(&host)? {
                for model in read_dirs(&namespace)? {
                    for tag in read_files(&model)? {
                        let parts: Vec<String> = [&host, &namespace, &model, &tag]
                            .iter()
                            .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
                            .collect();
                        let Ok(name) =
                            ModelName::parse(&format!("{}/{}/{}:{}", parts[0], parts[1], parts[2], parts[3]))
                        else {
                            continue;
                        };
                        match self.manifest_with_id(&name) {
                            Ok((manifest, id)) => {
                                let modified = modified_at(&tag);
                                entries.push(Entry { name, id, manifest, modified });
                            }
                            Err(e) => problems.push(e.to_string()),
                        }
                    }
                }
            }
        }
        entries.sort_by_key(|e| e.name.to_string());
        Ok((entries, problems))
    }

    /// Removes a model's manifest (whatever the case of `name`), then its blobs that no
    /// other model uses, the temporaries of writes that can never finish, and blobs no
    /// model has referred to for an hour.
    pub fn remove(&self, name: &ModelName) -> Result<(), StoreError> {
        let manifest = self.manifest(name)?;
        let path = self.manifest_file(name);
        fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        // Empty directories left behind are tidied; failures here are harmless.
        let manifests = self.root.join("manifests");
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != manifests) {
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        let own: BTreeSet<Digest> = manifest.digests().cloned().collect();
        self.sweep(|digest, path| own.contains(digest) || temp::age(path).is_some_and(|a| a > REMOVE_ORPHANS_AFTER))?;
        self.remove_abandoned_temporaries();
        Ok(())
    }

    /// Gives the model `from` a second name `to`; the blobs are shared. A `to` that differs
    /// from an existing name only in case replaces that model, as in Ollama.
    pub fn copy(&self, from: &ModelName, to: &ModelName) -> Result<(), StoreError> {
        let manifest = self.manifest(from)?;
        self.write_manifest(to, &manifest)
    }

    /// Deletes every blob that no manifest refers to and the temporary files of writes that
    /// can never finish (never those of writes in progress). Returns how many files went.
    pub fn prune(&self) -> Result<usize, StoreError> {
        Ok(self.sweep(|_, _| true)? + self.remove_abandoned_temporaries())
    }

    /// Deletes the blobs that no manifest refers to and that have not changed for `grace`
    /// (an upload that a `create` will refer to in a moment is younger than that, and
    /// stays). Partial downloads and temporaries are not blobs and are left alone. Deletes
    /// nothing while a manifest cannot be read, as it may refer to any blob. Returns how
    /// many blobs went.
    pub fn collect_orphans(&self, grace: Duration) -> Result<usize, StoreError> {
        self.sweep(|_, path| temp::age(path).is_some_and(|a| a >= grace))
    }

    /// Deletes those of `digests` (blobs a failed operation stored) that no manifest refers
    /// to. Best effort: a failure leaves them for `collect_orphans`.
    pub(crate) fn discard_unreferenced(&self, digests: &[Digest]) {
        if !digests.is_empty() {
            let _ = self.sweep(|digest, _| digests.contains(digest));
        }
    }

    /// Deletes the blobs no manifest refers to for which `doomed` says yes; nothing at all
    /// when a manifest cannot be read.
    fn sweep(&self, doomed: impl Fn(&Digest, &Path) -> bool) -> Result<usize, StoreError> {
        let (entries, problems) = self.list()?;
        if !problems.is_empty() {
            // A manifest we cannot read may still refer to blobs: delete nothing.
            return Ok(0);
        }
        let referenced: BTreeSet<Digest> = entries.iter().flat_map(|e| e.manifest.digests().cloned()).collect();
        let mut removed = 0;
        for file in read_files(&self.root.join("blobs"))? {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(digest) = Digest::parse(&name) else { continue };
            if !referenced.contains(&digest) && doomed(&digest, &file) && fs::remove_file(&file).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A new temporary name among the blobs, for a write of this process.
    pub(crate) fn temp_path(&self) -> PathBuf {
        temp::path_in(&self.root.join("blobs"), "")
    }
}

/// Writes `bytes` to `path` through a synced temporary file in the same directory, locked
/// while it is written.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().expect("store paths have a parent");
    let temp = temp::path_in(dir, "");
    let result = (|| {
        let mut file = temp::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(StoreError::io(path, e));
    }
    sync_dir(dir);
    Ok(())
}

/// Copies `source` to the new temporary `target`, synced; returns it, still locked.
fn copy_synced(source: &Path, target: &Path) -> Result<File, StoreError> {
    let mut from = File::open(source).map_err(|e| StoreError::io(source, e))?;
    let mut to = temp::create(target).map_err(|e| StoreError::io(target, e))?;
    io::copy(&mut from, &mut to).map_err(|e| StoreError::io(target, e))?;
    to.sync_all().map_err(|e| StoreError::io(target, e))?;
    Ok(to)
}

/// Makes a rename durable. Best effort: not every platform can sync a directory.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    read_entries(dir, true)
}

fn read_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    read_entries(dir, false)
}

fn read_entries(dir: &Path, dirs: bool) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(TEMP_PREFIX) && dirs {
            continue;
        }
        if entry.file_type().map(|t| t.is_dir() == dirs).unwrap_or(false) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// A manifest file's modification time: when its model was last written.
fn modified_at(manifest: &Path) -> SystemTime {
    fs::metadata(manifest).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{CONFIG_MEDIA_TYPE, MODEL, PARAMS};
    use std::os::unix::fs::MetadataExt;

    fn name(text: &str) -> ModelName {
        ModelName::parse(text).unwrap()
    }

    /// A model made of a GGUF-ish file, a config and a params layer.
    fn add_model(store: &Store, model_name: &str, gguf: &[u8]) -> Manifest {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.gguf");
        fs::write(&file, gguf).unwrap();
        let (model, _) = store.import_file(MODEL, &file, ImportMode::Copy).unwrap();
        let params = store.write_blob(PARAMS, br#"{"temperature":0.2}"#).unwrap();
        let config = store.write_blob(CONFIG_MEDIA_TYPE, br#"{"model_format":"gguf"}"#).unwrap();
        let manifest = Manifest::new(config, vec![model, params]);
        store.write_manifest(&name(model_name), &manifest).unwrap();
        manifest
    }

    fn blob_count(store: &Store) -> usize {
        fs::read_dir(store.root().join("blobs")).unwrap().count()
    }

    #[test]
    fn a_manifest_round_trips_and_lists() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let manifest = add_model(&store, "tiny:v1", b"GGUF one");
        assert_eq!(store.manifest(&name("tiny:v1")).unwrap(), manifest);
        assert!(root.path().join("manifests/registry.ollama.ai/library/tiny/v1").is_file());
        let (entries, problems) = store.list().unwrap();
        assert!(problems.is_empty());
        assert_eq!(entries.iter().map(|e| e.name.to_string()).collect::<Vec<_>>(), ["tiny:v1"]);
        assert_eq!(store.read_blob(&manifest.layer(PARAMS).unwrap().digest).unwrap(), br#"{"temperature":0.2}"#);
        assert!(matches!(store.manifest(&name("nope")), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn importing_links_instead_of_copying_on_the_same_file_system() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path().join("store")).unwrap();
        let source = root.path().join("model.gguf");
        fs::write(&source, b"GGUF weights").unwrap();
        let (linked, placement) = store.import_file(MODEL, &source, ImportMode::LinkOrCopy).unwrap();
        let blob = store.blob_path(&linked.digest);
        let same_inode = fs::metadata(&blob).unwrap().ino() == fs::metadata(&source).unwrap().ino();
        match placement {
            Placement::HardLink => assert!(same_inode, "a hard link"),
            Placement::Reflink => assert!(!same_inode, "a clone is a file of its own"),
            Placement::Copy | Placement::AlreadyStored => panic!("the store and the file share a file system"),
        }
        assert_eq!(linked.digest, Digest::of_bytes(b"GGUF weights"));
        assert_eq!(fs::read(&blob).unwrap(), b"GGUF weights");
        assert_eq!(blob_count(&store), 1, "no temporary file left");

        let copy_root = tempfile::tempdir().unwrap();
        let copies = Store::open(copy_root.path()).unwrap();
        let (copied, placement) = copies.import_file(MODEL, &source, ImportMode::Copy).unwrap();
        assert_eq!(placement, Placement::Copy);
        assert_ne!(fs::metadata(copies.blob_path(&copied.digest)).unwrap().ino(), fs::metadata(&source).unwrap().ino());
    }

    #[test]
    fn a_manifest_needs_its_blobs() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let ghost = Layer { media_type: MODEL.into(), digest: Digest::of_bytes(b"absent"), size: 6 };
        let config = store.write_blob(CONFIG_MEDIA_TYPE, b"{}").unwrap();
        let err = store.write_manifest(&name("ghost"), &Manifest::new(config, vec![ghost])).unwrap_err();
        assert!(matches!(err, StoreError::MissingBlob(_)));
        assert!(store.list().unwrap().0.is_empty());
    }

    #[test]
    fn remove_deletes_only_blobs_nothing_else_uses() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        add_model(&store, "a", b"weights A");
        add_model(&store, "b", b"weights B"); // shares the params and config blobs with a
        assert_eq!(blob_count(&store), 4);
        store.remove(&name("a")).unwrap();
        assert_eq!(blob_count(&store), 3, "only A's weights went");
        assert!(store.manifest(&name("b")).is_ok());
        store.remove(&name("b")).unwrap();
        assert_eq!(blob_count(&store), 0);
        assert!(!root.path().join("manifests/registry.ollama.ai").exists(), "empty directories tidied");
        assert!(matches!(store.remove(&name("b")), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn copy_shares_blobs_and_survives_removing_the_original() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let manifest = add_model(&store, "orig", b"weights");
        store.copy(&name("orig"), &name("jane/mine:fast")).unwrap();
        assert_eq!(blob_count(&store), 3);
        store.remove(&name("orig")).unwrap();
        assert_eq!(store.manifest(&name("jane/mine:fast")).unwrap(), manifest);
        assert_eq!(blob_count(&store), 3);
    }

    #[test]
    fn an_interrupted_write_leaves_a_readable_store_and_is_cleaned_up() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        add_model(&store, "good", b"weights");
        // What a process killed mid-write leaves: a temporary blob and a temporary manifest.
        let pid = crate::temp::tests::dead_pid();
        let blob_temp = root.path().join(format!("blobs/.tmp-{pid}-0"));
        fs::write(&blob_temp, b"half a blob").unwrap();
        let dir = root.path().join("manifests/registry.ollama.ai/library/good");
        let manifest_temp = dir.join(format!(".tmp-{pid}-1"));
        fs::write(&manifest_temp, b"{\"half").unwrap();
        let (entries, problems) = store.list().unwrap();
        assert_eq!(entries.len(), 1, "temporary files are never models");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(store.prune().unwrap(), 2);
        assert!(!blob_temp.exists());
        assert!(!manifest_temp.exists());
        assert_eq!(store.list().unwrap().0.len(), 1);
    }

    /// `hearth create --copy` killed mid-copy: the next `open` (any command) removes its
    /// temporary, and keeps a partial download, which a later pull resumes.
    #[test]
    fn opening_the_store_removes_temporaries_of_processes_that_are_gone() {
        let root = tempfile::tempdir().unwrap();
        Store::open(root.path()).unwrap();
        let pid = crate::temp::tests::dead_pid();
        let copy = root.path().join(format!("blobs/.tmp-{pid}-3"));
        fs::write(&copy, b"half a copied GGUF").unwrap();
        let partial = root.path().join(format!("blobs/{}-partial", Digest::of_bytes(b"x").file_name()));
        fs::write(&partial, b"resume me").unwrap();
        // A live import in this process holds its temporary: it is never taken.
        let live = Store::open(root.path()).unwrap().temp_path();
        let _writing = crate::temp::create(&live).unwrap();
        Store::open(root.path()).unwrap();
        assert!(!copy.exists(), "the killed copy's temporary is gone");
        assert!(partial.exists() && live.exists());
    }

    #[test]
    fn orphans_go_once_older_than_the_grace_and_remove_spares_young_ones() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let kept = add_model(&store, "a", b"weights A");
        add_model(&store, "b", b"weights B");
        // An upload that `create` is about to refer to.
        let uploaded = store.write_blob(MODEL, b"uploaded GGUF").unwrap();
        store.remove(&name("b")).unwrap();
        assert!(store.has_blob(&uploaded.digest), "rm keeps a young orphan");
        assert_eq!(store.collect_orphans(Duration::from_secs(3600)).unwrap(), 0);
        assert!(store.has_blob(&uploaded.digest));
        assert_eq!(store.collect_orphans(Duration::ZERO).unwrap(), 1);
        assert!(!store.has_blob(&uploaded.digest));
        assert!(kept.digests().all(|d| store.has_blob(d)), "referenced blobs stay");
    }

    /// As in Ollama: `SMOL` is `smol`, for reading, writing, copying and removing, and the
    /// store keeps one manifest in the casing it was first written in.
    #[test]
    fn names_compare_without_regard_to_case() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let first = add_model(&store, "jane/smol:v1", b"weights one");
        assert_eq!(store.manifest(&name("JANE/SMOL:V1")).unwrap(), first);
        assert_eq!(store.resolve(&name("Jane/Smol:v1")), Some(name("jane/smol:v1")));
        assert_eq!(store.resolve(&name("jane/other")), None);

        // Writing SMOL replaces smol rather than making a second model.
        let second = add_model(&store, "Jane/SMOL:V1", b"weights two");
        let (entries, _) = store.list().unwrap();
        assert_eq!(entries.iter().map(|e| e.name.to_string()).collect::<Vec<_>>(), ["jane/smol:v1"]);
        assert_eq!(store.manifest(&name("jane/smol:v1")).unwrap(), second);
        // A new tag goes in the existing directories, not in a second `Jane/SMOL`.
        store.copy(&name("JANE/smol:v1"), &name("jane/SMOL:v2")).unwrap();
        let dirs: Vec<_> = fs::read_dir(root.path().join("manifests/registry.ollama.ai")).unwrap().collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        assert!(root.path().join("manifests/registry.ollama.ai/jane/smol/v2").is_file());
        store.copy(&name("jane/smol:v2"), &name("JANE/SMOL:V2")).unwrap();
        assert_eq!(store.list().unwrap().0.len(), 2);

        store.remove(&name("JANE/SMOL:V1")).unwrap();
        store.remove(&name("Jane/Smol:V2")).unwrap();
        assert!(store.list().unwrap().0.is_empty());
        assert!(matches!(store.remove(&name("jane/smol:v1")), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn an_unreadable_manifest_blocks_garbage_collection() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        add_model(&store, "a", b"weights A");
        let dir = root.path().join("manifests/registry.ollama.ai/library/broken");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("latest"), b"not json").unwrap();
        let (_, problems) = store.list().unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(store.prune().unwrap(), 0, "blobs it may refer to are kept");
    }
}
