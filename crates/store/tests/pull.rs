//! Pulling from a real HTTP registry started on 127.0.0.1 inside the test, serving manifests
//! and blobs the way an Ollama registry does.

use hearth_store::manifest::{CONFIG_MEDIA_TYPE, MODEL};
use hearth_store::{Digest, Layer, Manifest, ModelName, Store, StoreError};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
enum Route {
    Body(Vec<u8>),
    /// The body, but the first response breaks off after this many bytes.
    BreaksOnceAfter(Vec<u8>, usize),
    Status(u16),
}

/// Each request's path and the start of the range it asked for.
type RequestLog = Mutex<Vec<(String, Option<String>)>>;

/// A registry on 127.0.0.1; each request's path and Range header are recorded.
struct Registry {
    host: String,
    requests: Arc<RequestLog>,
}

impl Registry {
    fn start(routes: HashMap<String, Route>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(Mutex::new(routes));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (routes, log) = (routes.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &routes, &log));
            }
        });
        Self { host, requests }
    }

    fn ranges_asked_for(&self, path_end: &str) -> Vec<Option<String>> {
        self.requests.lock().unwrap().iter().filter(|(p, _)| p.ends_with(path_end)).map(|(_, r)| r.clone()).collect()
    }
}

fn serve(stream: TcpStream, routes: &Mutex<HashMap<String, Route>>, log: &RequestLog) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = Some(value.trim().trim_end_matches('-').to_string());
        }
    }
    log.lock().unwrap().push((path.clone(), range.clone()));
    let route = routes.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let (body, cut) = match route {
        None => return respond(&mut out, 404, b"not found"),
        Some(Route::Status(code)) => return respond(&mut out, code, b"no"),
        Some(Route::Body(body)) => (body, None),
        Some(Route::BreaksOnceAfter(body, cut)) => {
            // Only the first request breaks off.
            routes.lock().unwrap().insert(path.clone(), Route::Body(body.clone()));
            (body, Some(cut))
        }
    };
    let from: usize = range.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0);
    let (status, extra) = if from > 0 {
        (206, vec![format!("Content-Range: bytes {from}-{}/{}", body.len() - 1, body.len())])
    } else {
        (200, vec![])
    };
    let rest = &body[from..];
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        rest.len(),
        extra.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    );
    out.write_all(head.as_bytes()).unwrap();
    let sent = cut.map_or(rest.len(), |c| c.min(rest.len()));
    let _ = out.write_all(&rest[..sent]);
    let _ = out.flush();
    // Dropping the stream here, short of Content-Length, is the broken connection.
}

fn respond(out: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
}

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
    let pulled = store.pull_from_registry(&name(&registry), true, &mut |s| steps.push(s.to_string())).unwrap();
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
    store.pull_from_registry(&name(&registry), true, &mut |s| steps.push(s.to_string())).unwrap();
    assert_eq!(std::fs::read(store.blob_path(&manifest.layers[0].digest)).unwrap(), data);
    assert_eq!(registry.ranges_asked_for(&blob), [None, Some("500000".to_string())]);
    assert!(steps.iter().any(|s| s.contains("resuming") && s.contains("at byte 500000")), "{steps:?}");
}

#[test]
fn a_digest_mismatch_leaves_nothing_in_the_store() {
    let (manifest, mut routes) = model(&weights());
    let blob = format!("/v2/library/tiny/blobs/{}", manifest.layers[0].digest);
    routes.insert(blob, Route::Body(b"tampered".repeat(1000)));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let err = store.pull_from_registry(&name(&registry), true, &mut |_| {}).unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(matches!(store.manifest(&name(&registry)), Err(StoreError::NotFound(_))));
    assert!(store.list().unwrap().0.is_empty());
    // Only the config blob made it; no partial file remains.
    assert_eq!(blob_files(&store), [manifest.config.digest.file_name()]);
}

#[test]
fn missing_models_and_refused_access_are_clear_errors() {
    let (_, mut routes) = model(&weights());
    routes.insert("/v2/library/secret/manifests/latest".into(), Route::Status(401));
    let registry = Registry::start(routes);
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let missing = ModelName::parse(&format!("{}/library/nothere", registry.host)).unwrap();
    let err = store.pull_from_registry(&missing, true, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("not found") && err.contains("HTTP 404"), "{err}");
    let secret = ModelName::parse(&format!("{}/library/secret", registry.host)).unwrap();
    let err = store.pull_from_registry(&secret, true, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("requires authentication (HTTP 401)"), "{err}");
    let down = ModelName::parse("127.0.0.1:9/library/tiny").unwrap();
    let err = store.pull_from_registry(&down, true, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("could not reach"), "{err}");
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
