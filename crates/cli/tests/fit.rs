//! `hearth fit` end to end: the built binary on the real test models, read from disk and
//! from servers on 127.0.0.1 (a plain file server, a Hugging Face listing, a registry),
//! each test in its own home directory so no bench history but its own is seen.

use hearth_engine::test_models::{gemma3, smollm2};
use hearth_store::test_registry::{Registry, Route};
use std::path::Path;
use std::process::{Command, Output};

/// `hearth ARGS` with `home` as HOME (an empty store, no history) and one thread.
fn hearth(home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command.args(args).current_dir(home).env("HOME", home);
    for name in ["HEARTH_LOG", "HEARTH_MODELS", "HEARTH_BENCH_HISTORY", "HEARTH_HOST", "HEARTH_HF_ENDPOINT"] {
        command.env_remove(name);
    }
    // No server answers here, so no memory counts as held by one.
    command.env("HEARTH_HOST", "127.0.0.1:9");
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn fit_json(home: &Path, args: &[&str]) -> serde_json::Value {
    let output = hearth(home, &[&["fit", "--json", "-t", "1"], args].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The sum of the `buffer size = N MiB` lines llama.cpp logs while `hearth run` loads `model`.
fn llama_cpp_buffers(home: &Path, model: &Path) -> f64 {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["run", model.to_str().unwrap(), "--threads", "1", "--ctx-size", "4096", "--num-predict", "1", "hi"])
        .current_dir(home)
        .env("HOME", home)
        .env("HEARTH_LOG", "llama_cpp=debug");
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stderr)
        .lines()
        .filter_map(|line| line.split_once("buffer size =").map(|(_, rest)| rest.to_string()))
        .filter_map(|rest| rest.trim().strip_suffix("MiB")?.trim().parse::<f64>().ok())
        .map(|mib| mib * 1048576.0)
        .sum()
}

#[test]
fn memory_estimates_match_the_buffers_llama_cpp_reports() {
    let home = tempfile::tempdir().unwrap();
    for model in [smollm2(), gemma3()] {
        let report = fit_json(home.path(), &[model.to_str().unwrap(), "--ctx-size", "4096"]);
        let fit = &report["models"][0];
        let memory = &fit["memory"];
        let estimated: f64 =
            ["weights", "kv_cache", "compute", "outputs"].iter().map(|k| memory[k].as_f64().unwrap()).sum();
        let reported = llama_cpp_buffers(home.path(), &model);
        let error = (estimated - reported).abs() / reported;
        assert!(error < 0.10, "{}: estimated {estimated}, llama.cpp {reported}", model.display());
        assert_eq!(memory["total"].as_f64().unwrap(), estimated + memory["overhead"].as_f64().unwrap());
        // Both fit this machine with room to spare, and say so with settings to use.
        assert_eq!(fit["verdict"], "fits");
        assert!(fit["largest_context"].as_u64().unwrap() >= 4096, "{fit}");
        assert!(fit["recommendation"].as_str().unwrap().contains("context"), "{fit}");
        for figure in ["prompt_tokens_per_second", "generation_tokens_per_second", "joules_per_token"] {
            assert!(fit["predicted"][figure].as_f64().unwrap() > 0.0, "{figure}: {fit}");
        }
        assert_eq!(fit["predicted"]["energy_source"], "estimated", "{fit}");
        assert!(fit["predicted"]["basis"].as_str().unwrap().contains("no bench history"), "{fit}");
    }
    let machine = fit_json(home.path(), &[])["machine"].clone();
    assert!(machine["memory_available_bytes"].as_u64().unwrap() > 0);
    assert!(machine["bandwidth_gb_s"].as_f64().unwrap() > 0.0, "{machine}");
    assert!(machine["compute_gflops"].as_f64().unwrap() > 0.0, "{machine}");
    assert_eq!(machine["memory_held_by_server_bytes"], 0);
}

#[test]
fn a_remote_model_is_read_by_its_header_alone() {
    let gguf = std::fs::read(smollm2()).unwrap();
    let size = gguf.len() as u64;
    let server = Registry::start([("/files/smol-Q4_1.gguf".to_string(), Route::Body(gguf))].into());
    let home = tempfile::tempdir().unwrap();
    let url = format!("http://{}/files/smol-Q4_1.gguf", server.host);
    let remote = fit_json(home.path(), &[&url]);
    let local = fit_json(home.path(), &[smollm2().to_str().unwrap()]);
    let (remote, local) = (&remote["models"][0], &local["models"][0]);
    assert_eq!(remote["memory"], local["memory"], "the same file read either way");
    assert_eq!(remote["location"], url.as_str());
    // The header of a 98 MB file is a few hundred KiB of its 49,152-token vocabulary.
    let read = remote["header_bytes_read"].as_u64().unwrap();
    assert!(read > 0 && read < size / 20, "read {read} of {size} bytes");
    let ranges = server.ranges_asked_for("/files/smol-Q4_1.gguf");
    assert!(!ranges.is_empty() && ranges.len() < 20 && ranges.iter().all(Option::is_some), "{ranges:?}");
    // Nothing was stored.
    assert!(
        !home.path().join(".hearth/models/blobs").exists()
            || std::fs::read_dir(home.path().join(".hearth/models/blobs")).unwrap().next().is_none()
    );

    // The same file as an Ollama registry's model: its manifest is read, then its blob's header.
    let gguf = std::fs::read(smollm2()).unwrap();
    let digest = "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest, "size": 1},
        "layers": [{"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": size}],
    });
    let registry = Registry::start(
        [
            ("/v2/library/smol/manifests/latest".to_string(), Route::Body(serde_json::to_vec(&manifest).unwrap())),
            (format!("/v2/library/smol/blobs/{digest}"), Route::Body(gguf)),
        ]
        .into(),
    );
    let from_registry = fit_json(home.path(), &["--insecure", &format!("{}/library/smol", registry.host)]);
    assert_eq!(from_registry["models"][0]["memory"], local["memory"]);
    assert!(from_registry["models"][0]["header_bytes_read"].as_u64().unwrap() < size / 20);

    // A server that ignores ranges would send the whole file: refused, in one line.
    let whole = Registry::start([("/m.gguf".to_string(), Route::IgnoresRanges(vec![0; 1 << 20]))].into());
    let output = hearth(home.path(), &["fit", &format!("http://{}/m.gguf", whole.host)]);
    let err = text(&output.stderr);
    assert!(!output.status.success() && err.contains("range requests") && err.lines().count() == 1, "{err}");
}

#[test]
fn every_quantization_of_a_repository_is_listed_and_the_one_that_fits_is_named() {
    let gguf = std::fs::read(smollm2()).unwrap();
    let size = gguf.len() as u64;
    // A second quantization far larger than any machine's memory: only its size is listed.
    let listing = serde_json::json!({"siblings": [
        {"rfilename": "README.md"},
        {"rfilename": "smol-Q4_1.gguf", "lfs": {"sha256": "00", "size": size}},
        {"rfilename": "smol-F32.gguf", "lfs": {"sha256": "00", "size": 1u64 << 50}},
    ]});
    let hub = Registry::start(
        [
            ("/api/models/org/smol-GGUF?blobs=true".to_string(), Route::Body(serde_json::to_vec(&listing).unwrap())),
            ("/org/smol-GGUF/resolve/main/smol-Q4_1.gguf".to_string(), Route::Body(gguf)),
        ]
        .into(),
    );
    let home = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(["fit", "--json", "-t", "1", "hf.co/org/smol-GGUF"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("HEARTH_HOST", "127.0.0.1:9")
        .env("HEARTH_HF_ENDPOINT", format!("http://{}", hub.host))
        .env_remove("HEARTH_MODELS");
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let models = report["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "{report}");
    let (big, small) = (&models[0], &models[1]);
    assert_eq!((big["quantization"].as_str(), small["quantization"].as_str()), (Some("F32"), Some("Q4_1")));
    assert_eq!(big["verdict"], "does_not_fit");
    assert_eq!(big["header_of"], "smol-Q4_1.gguf");
    assert_eq!(big["header_bytes_read"], 0, "one header serves the whole listing");
    let advice = big["recommendation"].as_str().unwrap();
    assert!(
        advice.starts_with("too large: Q4_1 fits, at 5.") && advice.contains("bits per weight instead of"),
        "{advice}"
    );
    assert_eq!(small["verdict"], "fits");
    // Only the one file's header was fetched; the big one was never asked for.
    assert!(hub.ranges_asked_for("smol-F32.gguf").is_empty());
}

#[test]
fn bad_input_gets_one_clear_line() {
    let registry = Registry::start(Default::default());
    let home = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["fit", "missing.gguf"], "missing.gguf: no such file".to_string()),
        (vec!["fit", "--ctx-size", "0"], "must be at least 1".to_string()),
        (vec!["fit", "--insecure", &format!("{}/library/nothing:latest", registry.host)], "(HTTP 404)".to_string()),
    ] {
        let output = hearth(home.path(), &args);
        let err = text(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(err.contains(&expected) && err.lines().count() == 1, "{args:?}: {err}");
    }
}

/// `--check` runs the real bench and puts each prediction beside what it measured; the
/// memory estimate is held to llama.cpp's buffers (speeds vary too much under a parallel
/// test run to be held to anything here; the closing figures come from a quiet run).
#[test]
fn check_puts_predictions_beside_a_bench_run_and_keeps_its_history() {
    let home = tempfile::tempdir().unwrap();
    let report = fit_json(home.path(), &[smollm2().to_str().unwrap(), "--check"]);
    let check = &report["check"][0];
    for figure in ["generation", "prompt"] {
        assert!(check[figure]["measured"].as_f64().unwrap() > 0.0, "{check}");
        assert!(check[figure]["error_percent"].as_f64().unwrap().is_finite(), "{check}");
    }
    let memory = &check["memory_buffers_bytes"];
    assert!(memory["error_percent"].as_f64().unwrap().abs() < 10.0, "{check}");
    // The bench run went into this home's history, which the next prediction uses (for
    // another model: a model's own runs never calibrate its own check).
    let history = std::fs::read_to_string(home.path().join(".hearth/bench-history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 1, "{history}");
    let gemma = fit_json(home.path(), &[gemma3().to_str().unwrap()]);
    let basis = gemma["models"][0]["predicted"]["basis"].as_str().unwrap();
    assert!(basis.contains("bench history (1 run of SmolLM2-135M-Instruct.Q4_1.gguf"), "{basis}");
    let again = fit_json(home.path(), &[smollm2().to_str().unwrap()]);
    assert!(again["models"][0]["predicted"]["basis"].as_str().unwrap().contains("no bench history"));
}
