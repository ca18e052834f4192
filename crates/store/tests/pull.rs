//! Pulling from a real HTTP registry started on 127.0.0.1 inside the test, serving manifests
//! and blobs the way an Ollama registry does.

use hearth_store::manifest::{CONFIG_MEDIA_TYPE, MODEL};
use hearth_store::test_registry::{Registry, Route};
use hearth_store::{
    Digest, Layer, Manifest, ModelName, ParallelDownloads, Progress, Store, StoreError, UpstreamFailure,
};
use std::collections::HashMap;
use std::sync::Arc;

/// A model on the registry: its manifest and blob routes.
fn model(weights: &[u8]) -> (Manifest, HashMap<String, Route>) {
    let config = br#"{"model_format":"gguf"}"#.to_vec();
    let layer = |media_type: &str, bytes: &[u8]| Layer {
        media_type: media_type.into(),
        digest: Digest::of_bytes(bytes),
        size: bytes.len() as u64,
    };
    let manifest = Manifest::new(layer(CONFIG_MEDIA_TYPE, &config), vec![layer(MODEL, weights)]);
    let mut routes = HashMap::new();
    routes.insert("/v2/library/tiny/manifests/latest".into(), Route::Body(serde_json::to_vec(&manifest).unwrap()));
    routes.insert(format!("/v2/library/tiny/blobs/{}", Digest::of_bytes(&config)), Route::Body(config));
    routes.insert(format!("/v2/library/tiny/blobs/{}", Digest::of_bytes(weights)), Route::Body(weights.to_vec()));
    (manifest, routes)
}

fn name(registry: &Registry) -> ModelName {
    ModelName::parse(&format!("{}/library/tiny", registry.host)).unwrap()
}

fn blob_files(store: &Store) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(store.root().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

fn record(steps: &mut Vec<String>, progress: Progress<'_>) {
    match progress {
        Progress::Step(step) => steps.push(step.to_string()),
        Progress::Bytes { done, total, .. } => assert!(total.is_none_or(|t| done <= t), "{done} of {total:?}"),
    }
}

fn weights() -> Vec<u8> {
    (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect()
}

#[test]
fn pulls_a_model_by_name() {
    let (manifest, routes) = model(&weights());
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let mut steps = Vec::new();
    let pulled = store.pull_from_registry(&name(&registry), true, &mut |p| record(&mut steps, p)).unwrap();
    assert_eq!(pulled, manifest);
    assert_eq!(store.manifest(&name(&registry)).unwrap(), manifest);
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), weights());
    assert_eq!(steps.first().map(String::as_str), Some("pulling manifest"));
    assert_eq!(store.list().unwrap().0.len(), 1);
}

#[test]
fn a_dropped_connection_is_resumed_with_a_range_request() {
    let data = weights();
    let (manifest, mut routes) = model(&data);
    let blob = format!("/v2/library/tiny/blobs/{}", manifest.layers[0].digest);
    routes.insert(blob.clone(), Route::BreaksOnceAfter(data.clone(), 500_000));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let mut steps = Vec::new();
    store.pull_from_registry(&name(&registry), true, &mut |p| record(&mut steps, p)).unwrap();
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), data);
    assert_eq!(registry.ranges_asked_for(&blob), [None, Some("500000".to_string())]);
    assert!(steps.iter().any(|s| s.contains("resuming") && s.contains("at byte 500000")), "{steps:?}");
}

#[test]
fn a_digest_mismatch_leaves_nothing_in_the_store() {
    let data = weights();
    let (manifest, mut routes) = model(&data);
    let blob = format!("/v2/library/tiny/blobs/{}", manifest.layers[0].digest);
    let tampered: Vec<u8> = data.iter().map(|b| b ^ 1).collect();
    routes.insert(blob, Route::Body(tampered));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let err = store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(matches!(store.manifest(&name(&registry)), Err(StoreError::NotFound(_))));
    assert!(store.list().unwrap().0.is_empty());
    // Not even the config blob, which arrived whole, stays: nothing was stored.
    assert_eq!(blob_files(&store), Vec::<String>::new());
}

/// A failed pull takes away only what it stored itself: a blob another model uses stays.
#[test]
fn a_failed_pull_keeps_blobs_that_other_models_use() {
    let data = weights();
    let (manifest, routes) = model(&data);
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap();
    store.copy(&name(&registry), &ModelName::parse("kept").unwrap()).unwrap();
    store.remove(&name(&registry)).unwrap();
    // The same config, other weights that arrive tampered.
    let other_weights: Vec<u8> = data.iter().rev().copied().collect();
    let (other_manifest, mut routes) = model(&other_weights);
    assert_eq!(other_manifest.config, manifest.config);
    let blob = format!("/v2/library/tiny/blobs/{}", other_manifest.layers[0].digest);
    routes.insert(blob, Route::Body(other_weights.iter().map(|b| b ^ 1).collect()));
    let other = Registry::start(routes);
    let before = blob_files(&store);
    let err = store.pull_from_registry(&name(&other), true, &mut |_| {}).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert_eq!(blob_files(&store), before, "the kept model's blobs are all there");
    assert!(store.model_spec(&ModelName::parse("kept").unwrap()).is_ok());
}

/// A manifest that understates a blob's size: the download stops as soon as it passes the
/// declared size (progress never passes it), and nothing is stored.
#[test]
fn a_blob_larger_than_declared_is_stopped_and_nothing_is_stored() {
    let data: Vec<u8> = (0..8_000_000u32).map(|i| (i % 251) as u8).collect();
    let (mut manifest, mut routes) = model(&data);
    manifest.layers[0].size = data.len() as u64 / 2;
    routes.insert("/v2/library/tiny/manifests/latest".into(), Route::Body(serde_json::to_vec(&manifest).unwrap()));
    let blob = format!("/v2/library/tiny/blobs/{}", manifest.layers[0].digest);
    // Without a Content-Length, so only counting the bytes can catch it.
    routes.insert(blob, Route::Unsized(data.clone()));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let mut steps = Vec::new();
    let err = store.pull_from_registry(&name(&registry), true, &mut |p| record(&mut steps, p)).unwrap_err();
    match &err {
        StoreError::Upstream { host, failure: UpstreamFailure::TooLarge { declared }, .. } => {
            assert_eq!((host.as_str(), *declared), (registry.host.as_str(), 4_000_000));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("sent more than the 4000000 bytes"), "{err}");
    assert_eq!(blob_files(&store), Vec::<String>::new(), "no blob, no partial file");

    // With a Content-Length that says so, it is refused before a byte is written.
    let (_, mut routes) = model(&data);
    routes.insert("/v2/library/tiny/manifests/latest".into(), Route::Body(serde_json::to_vec(&manifest).unwrap()));
    let registry = Registry::start(routes);
    let err = store.pull_from_registry(&name(&registry), true, &mut |p| record(&mut steps, p)).unwrap_err();
    assert!(matches!(err, StoreError::Upstream { failure: UpstreamFailure::TooLarge { .. }, .. }), "{err}");
    assert_eq!(blob_files(&store), Vec::<String>::new());
}

#[test]
fn a_blob_smaller_than_declared_is_refused() {
    let data = weights();
    let (mut manifest, mut routes) = model(&data);
    manifest.layers[0].size = data.len() as u64 + 10;
    routes.insert("/v2/library/tiny/manifests/latest".into(), Route::Body(serde_json::to_vec(&manifest).unwrap()));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let err = store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap_err();
    let expected = UpstreamFailure::WrongSize { declared: data.len() as u64 + 10, actual: data.len() as u64 };
    assert!(matches!(&err, StoreError::Upstream { failure, .. } if *failure == expected), "{err}");
    assert_eq!(blob_files(&store), Vec::<String>::new());
}

/// In ranged parts, the size the server gives in `Content-Range` is checked against the
/// declared one before anything is written.
#[test]
fn a_parallel_download_of_a_blob_of_another_size_is_refused() {
    let data = weights();
    let (mut manifest, mut routes) = model(&data);
    manifest.layers[0].size = 600_000;
    routes.insert("/v2/library/tiny/manifests/latest".into(), Route::Body(serde_json::to_vec(&manifest).unwrap()));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = parallel_store(root.path());
    let err = store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, StoreError::Upstream { failure: UpstreamFailure::TooLarge { declared: 600_000 }, .. }),
        "{err}"
    );
    assert_eq!(blob_files(&store), Vec::<String>::new(), "no partial file or parts record left");
}

#[test]
fn missing_models_and_refused_access_are_clear_errors() {
    let (_, mut routes) = model(&weights());
    routes.insert("/v2/library/secret/manifests/latest".into(), Route::Status(401));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let missing = ModelName::parse(&format!("{}/library/nothere", registry.host)).unwrap();
    let err = store.pull_from_registry(&missing, true, &mut |_| {}).unwrap_err();
    assert!(matches!(&err, StoreError::NoSuchModel { host, .. } if *host == registry.host), "{err}");
    let err = err.to_string();
    assert!(err.contains("not found") && err.contains("HTTP 404"), "{err}");
    let secret = ModelName::parse(&format!("{}/library/secret", registry.host)).unwrap();
    let err = store.pull_from_registry(&secret, true, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("requires authentication (HTTP 401)"), "{err}");
    let down = ModelName::parse("127.0.0.1:9/library/tiny").unwrap();
    let err = store.pull_from_registry(&down, true, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&err, StoreError::Upstream { host, failure: UpstreamFailure::Unreachable, .. } if host == "127.0.0.1:9")
    );
    assert_eq!(err.to_string(), "could not reach http://127.0.0.1:9/v2/library/tiny/manifests/latest");

    // A blob the registry lacks is the registry's failure, not a missing model.
    let (manifest, mut routes) = model(&weights());
    routes.remove(&format!("/v2/library/tiny/blobs/{}", manifest.layers[0].digest));
    let broken = Registry::start(routes);
    let err = store.pull_from_registry(&name(&broken), true, &mut |_| {}).unwrap_err();
    assert!(matches!(err, StoreError::Upstream { failure: UpstreamFailure::Status(404), .. }), "{err}");
    assert!(blob_files(&store).is_empty(), "{:?}", blob_files(&store));
}

#[test]
fn two_concurrent_pulls_of_one_model_leave_one_good_copy() {
    let data = weights();
    let (manifest, routes) = model(&data);
    let registry = Arc::new(Registry::start(routes));
    let root = tempfile::tempdir().unwrap();
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let (registry, root) = (registry.clone(), root.path().to_path_buf());
            std::thread::spawn(move || {
                Store::open(root).unwrap().pull_from_registry(&name(&registry), true, &mut |_| {})
            })
        })
        .collect();
    for pull in pulls {
        pull.join().unwrap().unwrap();
    }
    let store = Store::open(root.path()).unwrap();
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), data);
    let mut expected = vec![manifest.config.digest.file_name(), manifest.layers[0].digest.file_name()];
    expected.sort();
    assert_eq!(blob_files(&store), expected, "no partial or temporary files left");
}

/// What a pull killed mid-blob leaves (a partial file) is ignored by list and resumed by the
/// next pull.
#[test]
fn a_pull_killed_mid_blob_leaves_a_readable_store_and_the_next_pull_resumes() {
    let data = weights();
    let (manifest, routes) = model(&data);
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let digest = &manifest.layers[0].digest;
    let partial = root.path().join("blobs").join(format!("{}-partial", digest.file_name()));
    std::fs::write(&partial, &data[..123_456]).unwrap();
    let (entries, problems) = store.list().unwrap();
    assert!(entries.is_empty() && problems.is_empty());
    store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap();
    let blob = format!("/v2/library/tiny/blobs/{digest}");
    assert_eq!(registry.ranges_asked_for(&blob), [Some("123456".to_string())]);
    assert_eq!(std::fs::read(store.blob_path(digest)).unwrap(), data);
}

/// A Hugging Face repository on the local server: a listing and two GGUF files.
fn hugging_face_repo() -> (Registry, Vec<u8>, Vec<u8>) {
    let q4 = weights();
    let q8: Vec<u8> = weights().iter().rev().copied().collect();
    let sibling = |name: &str, bytes: &[u8]| {
        let hex = Digest::of_bytes(bytes).to_string()["sha256:".len()..].to_string();
        serde_json::json!({"rfilename": name, "lfs": {"sha256": hex, "size": bytes.len()}})
    };
    let listing = serde_json::json!({"siblings": [
        {"rfilename": "README.md"},
        sibling("tiny-Q4_K_M.gguf", &q4),
        sibling("tiny-Q8_0.gguf", &q8),
        sibling("mmproj-tiny-f16.gguf", b"vision"),
        {"rfilename": "tiny-F16.gguf"},
    ]});
    let mut routes = HashMap::new();
    routes
        .insert("/api/models/org/tiny-GGUF?blobs=true".to_string(), Route::Body(serde_json::to_vec(&listing).unwrap()));
    routes.insert("/org/tiny-GGUF/resolve/main/tiny-Q4_K_M.gguf".to_string(), Route::Body(q4.clone()));
    routes.insert("/org/tiny-GGUF/resolve/main/tiny-Q8_0.gguf".to_string(), Route::Body(q8.clone()));
    (Registry::start(routes), q4, q8)
}

#[test]
fn hugging_face_files_are_picked_by_quant_or_name_and_verified() {
    use hearth_store::HfFile;
    let (hub, q4, q8) = hugging_face_repo();
    let endpoint = format!("http://{}", hub.host);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    for (file, expected) in [
        (HfFile::Quant("Q4_K_M"), &q4),
        (HfFile::Quant("latest"), &q4),
        (HfFile::Quant("q8_0"), &q8),
        (HfFile::Named("tiny-Q8_0.gguf"), &q8),
    ] {
        let layer = store.pull_from_hugging_face(&endpoint, "org/tiny-GGUF", file, &mut |_| {}).unwrap();
        assert_eq!(&std::fs::read(store.blob_path(&layer.digest)).unwrap(), expected, "{file:?}");
    }

    let err = store.pull_from_hugging_face(&endpoint, "org/tiny-GGUF", HfFile::Quant("Q2_K"), &mut |_| {});
    let message = err.unwrap_err().to_string();
    assert!(message.contains("no single GGUF for Q2_K") && message.contains("tiny-Q4_K_M.gguf"), "{message}");
    let err = store.pull_from_hugging_face(&endpoint, "org/tiny-GGUF", HfFile::Quant("F16"), &mut |_| {});
    assert!(err.unwrap_err().to_string().contains("has no sha256"));
    let err = store.pull_from_hugging_face(&endpoint, "org/missing", HfFile::Quant("latest"), &mut |_| {});
    assert!(err.unwrap_err().to_string().contains("HTTP 404"));
}

#[test]
fn blobs_follow_redirects_to_where_they_are_stored() {
    let data = weights();
    let (manifest, mut routes) = model(&data);
    let blob = format!("/v2/library/tiny/blobs/{}", manifest.layers[0].digest);
    routes.insert(blob.clone(), Route::Redirect("/cdn/weights".into()));
    routes.insert("/cdn/weights".into(), Route::Body(data.clone()));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), data);
    assert_eq!(registry.ranges_asked_for("/cdn/weights").len(), 1);
}

/// Parts of 200,000 bytes, three at a time, for every blob.
fn parallel_store(root: &std::path::Path) -> Store {
    Store::open(root).unwrap().with_parallel_downloads(ParallelDownloads {
        min_size: 1,
        min_part: 200_000,
        connections: 3,
    })
}

#[test]
fn large_blobs_come_in_ranged_parts_at_once() {
    let data = weights(); // 1,200,000 bytes: six parts
    let (manifest, routes) = model(&data);
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = parallel_store(root.path());
    let mut steps = Vec::new();
    store.pull_from_registry(&name(&registry), true, &mut |p| record(&mut steps, p)).unwrap();
    let digest = &manifest.layers[0].digest;
    assert_eq!(std::fs::read(store.blob_path(digest)).unwrap(), data);
    let mut starts: Vec<u64> = registry
        .ranges_asked_for(&format!("blobs/{digest}"))
        .into_iter()
        .map(|r| r.expect("every part is a range request").parse().unwrap())
        .collect();
    starts.sort();
    assert_eq!(starts, [0, 200_000, 400_000, 600_000, 800_000, 1_000_000]);
    assert!(steps.iter().any(|s| s.contains("6 parts, 3 at once")), "{steps:?}");
    let mut expected = vec![manifest.config.digest.file_name(), digest.file_name()];
    expected.sort();
    assert_eq!(blob_files(&store), expected, "no partial file or parts record left");
}

#[test]
fn an_interrupted_parallel_pull_resumes_each_part_where_it_stopped() {
    let data = weights();
    let (manifest, routes) = model(&data);
    let digest = &manifest.layers[0].digest;
    let blob = format!("/v2/library/tiny/blobs/{digest}");
    let registry = Registry::start(routes);
    registry.set_route(&blob, Route::AlwaysBreaksAfter(data.clone(), 30_000));
    let root = tempfile::tempdir().unwrap();
    let store = parallel_store(root.path());
    let err = store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("kept breaking off") && err.contains("run the pull again"), "{err}");
    let (entries, problems) = store.list().unwrap();
    assert!(entries.is_empty() && problems.is_empty(), "nothing half-pulled is a model");
    let first_pull = registry.ranges_asked_for(&blob).len();

    registry.set_route(&blob, Route::Body(data.clone()));
    store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(store.blob_path(digest)).unwrap(), data);
    // Each request of the second pull runs to the end of its part: what it asked for is
    // less than the blob, because the parts kept what the first pull got.
    let asked: u64 = registry.ranges_asked_for(&blob)[first_pull..]
        .iter()
        .map(|r| r.as_ref().unwrap().parse::<u64>().unwrap())
        .map(|start| (start / 200_000 + 1) * 200_000 - start)
        .sum();
    assert!(asked < data.len() as u64 - 100_000, "asked for {asked} bytes again");
    assert_eq!(blob_files(&store).len(), 2, "{:?}", blob_files(&store));
}

#[test]
fn a_server_that_ignores_ranges_still_delivers_the_whole_blob() {
    let data = weights();
    let (manifest, routes) = model(&data);
    let digest = &manifest.layers[0].digest;
    let registry = Registry::start(routes);
    registry.set_route(&format!("/v2/library/tiny/blobs/{digest}"), Route::IgnoresRanges(data.clone()));
    let root = tempfile::tempdir().unwrap();
    let store = parallel_store(root.path());
    store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap();
    assert_eq!(std::fs::read(store.blob_path(digest)).unwrap(), data);
    assert_eq!(blob_files(&store).len(), 2, "{:?}", blob_files(&store));
}

#[test]
fn a_gguf_at_a_plain_url_is_pulled_resumed_and_named_after_it() {
    let data = weights();
    let routes = [("/files/tiny-Q8_0.gguf".to_string(), Route::BreaksOnceAfter(data.clone(), 400_000))].into();
    let registry = Registry::start(routes);
    let url = format!("http://{}/files/tiny-Q8_0.gguf", registry.host);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let mut steps = Vec::new();
    let layer = store.pull_from_url(&url, &mut |p| record(&mut steps, p)).unwrap();
    assert_eq!(layer.digest, Digest::of_bytes(&data));
    assert_eq!(layer.size, data.len() as u64);
    assert_eq!(std::fs::read(store.blob_path(&layer.digest)).unwrap(), data);
    assert_eq!(registry.ranges_asked_for("tiny-Q8_0.gguf"), [None, Some("400000".to_string())]);
    assert!(steps.iter().any(|s| s.contains("resuming tiny-Q8_0.gguf at byte 400000")), "{steps:?}");
    assert_eq!(blob_files(&store), [layer.digest.file_name()]);
    let name = hearth_store::name_for_url(&url).unwrap();
    assert_eq!(name.to_string(), format!("{}/files/tiny-Q8_0:latest", registry.host));

    let missing = format!("http://{}/files/none.gguf", registry.host);
    let err = store.pull_from_url(&missing, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("not found") && err.contains("404"), "{err}");
}
