//! Property tests of what the store reads from text it did not write itself: Modelfiles
//! (arbitrary text, and valid ones damaged line by line), manifests (arbitrary bytes, valid
//! ones with fields changed, and a store whose manifest file on disk is damaged), model names
//! and digests. Nothing may panic or hang; what parses must mean what it says (a name's
//! manifest path stays under `manifests/`, a name and a manifest read back the same), and a
//! store with a damaged manifest still lists its other models, reports the damage, and deletes
//! no blob.
//!
//! Bounded and deterministic: a fixed seed (`HEARTH_FUZZ_SEED` picks another) and a fixed
//! number of cases per test (`HEARTH_FUZZ_CASES` sets another).

use hearth_store::manifest::{CONFIG_MEDIA_TYPE, MODEL, PARAMS, SYSTEM};
use hearth_store::{Digest, Manifest, ModelName, ModelSpec, Modelfile, Store, StoreError};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::path::Component;
use std::time::{Duration, Instant};

fn config(cases: u32) -> Config {
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    Config {
        cases: number("HEARTH_FUZZ_CASES").map_or(cases, |n| n as u32),
        failure_persistence: None,
        max_shrink_iters: 1024,
        rng_seed: RngSeed::Fixed(number("HEARTH_FUZZ_SEED").unwrap_or(1)),
        ..Config::default()
    }
}

/// Runs `test` on `cases` values of `strategy`; a case that takes 10 s has hung (the slowest
/// writes and syncs a few small files).
fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: Clone,
{
    let mut runner = TestRunner::new(config(cases));
    let result = runner.run(&strategy, |value| {
        let started = Instant::now();
        test(value)?;
        prop_assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Modelfiles.

const VALID_MODELFILE: &str = r#"# a comment
FROM ./SmolLM2.gguf
PARAMETER temperature 0.2
PARAMETER num_ctx 2048
PARAMETER stop "<|im_end|>"
PARAMETER stop User:
SYSTEM """You are terse.
Answer in one line."""
TEMPLATE "{{ messages }}"
MESSAGE user Hi
MESSAGE assistant "Hello!"
LICENSE """MIT"""
"#;

#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "FROM", "FROM ", "FROM x", "PARAMETER", "PARAMETER ", "PARAMETER temperature", "PARAMETER temperature NaN",
    "PARAMETER temperature inf", "PARAMETER temperature 1e400", "PARAMETER num_ctx -1",
    "PARAMETER num_ctx 99999999999999999999", "PARAMETER seed 1.5", "PARAMETER stop", "PARAMETER stop \"",
    "PARAMETER stop \"\"", "PARAMETER stop \"\"\"", "SYSTEM", "SYSTEM \"", "SYSTEM \"\"", "SYSTEM \"\"\"",
    "SYSTEM \"\"\"\"", "SYSTEM \"\"\"\"\"", "\"\"\"", "\"\"\"\"\"\"", "TEMPLATE \"\"\"{{", "MESSAGE", "MESSAGE user",
    "MESSAGE user \"\"\"", "MESSAGE robot hi", "LICENSE", "ADAPTER x", "#", "# \"\"\"", "\t", " ", "\r", "é", "🦀",
    "\u{0}", "\u{FEFF}FROM x", "from x", "PaRaMeTeR top_k 5",
];

fn text_with_lines() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
            2 => "\\PC{0,30}",
            1 => any::<String>(),
        ],
        0..12,
    )
    .prop_map(|lines| lines.join("\n"))
}

#[test]
fn modelfile_parse_takes_any_text() {
    check(3000, prop_oneof![any::<String>(), "\\PC{0,200}", text_with_lines()], |text| {
        if let Ok(modelfile) = Modelfile::parse(&text) {
            prop_assert!(!modelfile.from.is_empty(), "a Modelfile without FROM parsed: {text:?}");
        }
        Ok(())
    });
}

#[derive(Debug, Clone)]
enum LineEdit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    Insert(Index, String),
    /// Characters put inside a line.
    Splice(Index, Index, String),
    Truncate(Index),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    let fragment = prop_oneof![prop::sample::select(FRAGMENTS).prop_map(str::to_string), "\\PC{0,12}"];
    prop_oneof![
        any::<Index>().prop_map(LineEdit::Delete),
        any::<Index>().prop_map(LineEdit::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        (any::<Index>(), fragment.clone()).prop_map(|(i, f)| LineEdit::Insert(i, f)),
        (any::<Index>(), any::<Index>(), fragment).prop_map(|(i, j, f)| LineEdit::Splice(i, j, f)),
        any::<Index>().prop_map(LineEdit::Truncate),
    ]
}

fn edit(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for edit in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match edit {
            LineEdit::Delete(i) => {
                lines.remove(i.index(n));
            }
            LineEdit::Duplicate(i) => {
                let line = lines[i.index(n)].clone();
                lines.insert(i.index(n), line);
            }
            LineEdit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            LineEdit::Insert(i, line) => lines.insert(i.index(n + 1), line.clone()),
            LineEdit::Splice(i, j, piece) => {
                let line = &mut lines[i.index(n)];
                let chars: Vec<char> = line.chars().collect();
                let at = j.index(chars.len() + 1);
                *line =
                    chars[..at].iter().chain(piece.chars().collect::<Vec<_>>().iter()).chain(&chars[at..]).collect();
            }
            LineEdit::Truncate(i) => {
                let joined = lines.join("\n");
                let cut: String = joined.chars().take(i.index(joined.chars().count() + 1)).collect();
                lines = cut.lines().map(str::to_string).collect();
            }
        }
    }
    lines.join("\n")
}

#[test]
fn modelfile_parse_takes_damaged_modelfiles() {
    check(3000, prop::collection::vec(line_edit(), 1..6), |edits| {
        let text = edit(VALID_MODELFILE, &edits);
        match Modelfile::parse(&text) {
            Ok(modelfile) => {
                prop_assert!(!modelfile.from.is_empty(), "{text:?}");
                // What parsed is what hearth knows: parameters of the known kinds only.
                for (name, value) in &modelfile.parameters {
                    let known = [
                        "num_ctx",
                        "num_predict",
                        "top_k",
                        "repeat_last_n",
                        "seed",
                        "num_thread",
                        "num_batch",
                        "temperature",
                        "top_p",
                        "min_p",
                        "repeat_penalty",
                        "stop",
                    ];
                    prop_assert!(known.contains(&name.as_str()), "unknown parameter {name} from {text:?}");
                    prop_assert!(!value.is_null(), "{name} is null from {text:?}");
                }
                for (role, _) in &modelfile.messages {
                    prop_assert!(["system", "user", "assistant"].contains(&role.as_str()), "{role} from {text:?}");
                }
            }
            Err(e) => {
                let lines = text.lines().count();
                prop_assert!(e.line <= lines.max(1), "line {} of {lines}: {e} in {text:?}", e.line);
            }
        }
        Ok(())
    });
}

/// Text a Modelfile can hold in `"""` blocks: lines of printable characters with no quotes at
/// their ends and no `"""`, the first not blank.
fn block_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Za-z0-9][A-Za-z0-9 .,:;!?'()é🦀{}%-]{0,30}[A-Za-z0-9.!?]", 1..4)
        .prop_map(|lines| lines.join("\n"))
}

/// What `hearth show --modelfile` prints (`ModelSpec::modelfile`) creates the same model again.
#[test]
fn a_shown_modelfile_parses_back_to_the_same_model() {
    let strategy = (
        block_text(),
        prop::option::of(block_text()),
        prop::collection::vec((prop::sample::select(&["user", "assistant", "system"][..]), block_text()), 0..3),
        0.0f64..2.0,
        1i64..100_000,
        prop::collection::vec("[A-Za-z<|>_]{1,12}", 0..3),
    );
    check(500, strategy, |(system, template, messages, temperature, num_ctx, stop)| {
        let mut parameters = serde_json::Map::new();
        parameters.insert("temperature".into(), json!(temperature));
        parameters.insert("num_ctx".into(), json!(num_ctx));
        if !stop.is_empty() {
            parameters.insert("stop".into(), json!(stop));
        }
        let spec = ModelSpec {
            path: "/models/blobs/sha256-x".into(),
            parameters: hearth_core::parameters::StoredParameters::read(parameters.clone()),
            system: Some(system.clone()),
            template: template.clone(),
            messages: messages
                .iter()
                .map(|(role, text)| hearth_core::ChatMessage::new(hearth_core::Role::parse(role), text.clone()))
                .collect(),
            ..ModelSpec::default()
        };
        let text = spec.modelfile(&ModelName::parse("m").unwrap());
        let parsed = Modelfile::parse(&text).map_err(|e| TestCaseError::fail(format!("{e} in {text:?}")))?;
        prop_assert_eq!(&parsed.from, "/models/blobs/sha256-x");
        prop_assert_eq!(parsed.system.as_ref(), Some(&system), "{}", text);
        prop_assert_eq!(parsed.template, template, "{}", text);
        let roles: Vec<(String, String)> = messages.iter().map(|(r, t)| (r.to_string(), t.clone())).collect();
        prop_assert_eq!(parsed.messages, roles, "{}", text);
        prop_assert_eq!(parsed.parameters.get("num_ctx"), parameters.get("num_ctx"), "{}", text);
        prop_assert_eq!(parsed.parameters.get("stop"), parameters.get("stop"), "{}", text);
        let t = parsed.parameters["temperature"].as_f64().unwrap();
        prop_assert!((t - temperature).abs() < 1e-9, "{t} != {temperature}: {text}");
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Names and digests.

fn name_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_./:-]{0,40}",
        "(\\.\\.|\\.|[a-z0-9]{1,4}|[A-Z_-]{1,3}|:|/){0,10}",
        prop::collection::vec(
            prop::sample::select(&["..", ".", "/", ":", "a", "-b", "_c", "5000", "é", "\\", "%2e"][..]),
            0..10
        )
        .prop_map(|parts| parts.concat()),
        (0usize..400).prop_map(|n| "x".repeat(n)),
    ]
}

#[test]
fn model_names_parse_safely_and_read_back_the_same() {
    check(5000, name_text(), |text| {
        if let Ok(name) = ModelName::parse(&text) {
            let path = name.manifest_path();
            prop_assert_eq!(path.components().count(), 4, "{:?} -> {:?}", text, path);
            for component in path.components() {
                let Component::Normal(part) = component else {
                    return Err(TestCaseError::fail(format!("{text:?} -> {path:?} leaves manifests/")));
                };
                let part = part.to_string_lossy();
                prop_assert!(part != ".." && part != "." && !part.contains('\\'), "{:?} -> {:?}", text, path);
            }
            let shown = name.to_string();
            let again = ModelName::parse(&shown)
                .map_err(|e| TestCaseError::fail(format!("{text:?} shows as {shown:?}: {e}")))?;
            prop_assert_eq!(&again, &name, "{:?} shows as {:?}", text, shown);
            prop_assert!(again.same_as(&name));
        }
        Ok(())
    });
}

#[test]
fn digests_parse_only_sha256_hex() {
    let regex = |r: &str| proptest::string::string_regex(r).unwrap();
    let strategy = prop_oneof![
        any::<String>().boxed(),
        regex("sha256[:-][0-9a-f]{63,65}").boxed(),
        regex("(sha256|SHA256|md5)[:-][0-9a-fA-F]{60,68}").boxed(),
    ];
    check(3000, strategy, |text| {
        if let Some(digest) = Digest::parse(&text) {
            let shown = digest.to_string();
            prop_assert_eq!(Digest::parse(&shown), Some(digest.clone()));
            prop_assert_eq!(shown.len(), 71, "{:?} -> {:?}", text, shown);
            prop_assert!(!digest.file_name().contains('/'));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Manifests.

fn valid_manifest() -> Value {
    let digest = |n: u8| format!("sha256:{}", format!("{n:02x}").repeat(32));
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest(1), "size": 7},
        "layers": [
            {"mediaType": MODEL, "digest": digest(2), "size": 98_362_432u64},
            {"mediaType": PARAMS, "digest": digest(3), "size": 20},
            {"mediaType": SYSTEM, "digest": digest(4), "size": 5}
        ]
    })
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
        prop::sample::select(vec![json!(-1), json!(0), json!(u64::MAX), json!(1e300), json!(-0.0), json!(2.5)]),
        "\\PC{0,20}".prop_map(Value::String),
        "sha256[:-][0-9a-fA-F]{62,66}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of the manifest (by its place in a depth-first walk) replaced, removed, or added to.
#[derive(Debug, Clone)]
enum FieldEdit {
    Replace(Index, Value),
    Remove(Index),
    Add(Index, String, Value),
}

fn field_edit() -> impl Strategy<Value = FieldEdit> {
    prop_oneof![
        (any::<Index>(), json_value()).prop_map(|(i, v)| FieldEdit::Replace(i, v)),
        any::<Index>().prop_map(FieldEdit::Remove),
        (any::<Index>(), "[a-zA-Z]{1,12}", json_value()).prop_map(|(i, k, v)| FieldEdit::Add(i, k, v)),
    ]
}

/// Pointers (`/layers/0/digest`) to every value below the root.
fn pointers(value: &Value, here: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            let p = format!("{here}/{}", k.replace('~', "~0").replace('/', "~1"));
            out.push(p.clone());
            pointers(v, p, out);
        }),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| {
            let p = format!("{here}/{i}");
            out.push(p.clone());
            pointers(v, p, out);
        }),
        _ => {}
    }
}

fn apply(mut value: Value, edits: &[FieldEdit]) -> Value {
    for edit in edits {
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        if all.is_empty() {
            break;
        }
        match edit {
            FieldEdit::Replace(i, v) => *value.pointer_mut(&all[i.index(all.len())]).unwrap() = v.clone(),
            FieldEdit::Remove(i) => {
                let pointer = &all[i.index(all.len())];
                let (parent, last) = pointer.rsplit_once('/').unwrap();
                match value.pointer_mut(parent).unwrap() {
                    Value::Object(map) => {
                        map.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Value::Array(items) => {
                        items.remove(last.parse::<usize>().unwrap());
                    }
                    _ => {}
                }
            }
            FieldEdit::Add(i, k, v) => {
                if let Some(map) = value.pointer_mut(&all[i.index(all.len())]).unwrap().as_object_mut() {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
    }
    value
}

/// Bytes of a manifest, damaged: cut short, a byte changed, or a literal inserted.
#[derive(Debug, Clone)]
enum ByteEdit {
    Truncate(Index),
    Set(Index, u8),
    Insert(Index, &'static str),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        any::<Index>().prop_map(ByteEdit::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        (any::<Index>(), prop::sample::select(&["\u{0}", "\u{FFFD}", ",", "}", "\"", "NaN", "1e400", "-", " "][..]))
            .prop_map(|(i, s)| ByteEdit::Insert(i, s)),
    ]
}

fn damage(mut bytes: Vec<u8>, edits: &[ByteEdit]) -> Vec<u8> {
    for edit in edits {
        match edit {
            ByteEdit::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
            ByteEdit::Set(i, b) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            ByteEdit::Set(..) => {}
            ByteEdit::Insert(i, s) => {
                let at = i.index(bytes.len() + 1);
                bytes.splice(at..at, s.bytes());
            }
        }
    }
    bytes
}

/// Manifest bytes: arbitrary, a valid manifest with fields changed, or its bytes damaged.
fn manifest_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        3 => prop::collection::vec(field_edit(), 1..4)
            .prop_map(|edits| serde_json::to_vec_pretty(&apply(valid_manifest(), &edits)).unwrap()),
        2 => prop::collection::vec(byte_edit(), 1..4)
            .prop_map(|edits| damage(serde_json::to_vec_pretty(&valid_manifest()).unwrap(), &edits)),
    ]
}

#[test]
fn manifests_parse_from_any_bytes_and_read_back_the_same() {
    check(3000, manifest_bytes(), |bytes| {
        if let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) {
            let again: Manifest = serde_json::from_slice(&serde_json::to_vec(&manifest).unwrap()).unwrap();
            prop_assert_eq!(&again, &manifest);
            let _ = manifest.size();
            prop_assert_eq!(manifest.digests().count(), manifest.layers.len() + 1);
        }
        Ok(())
    });
}

/// A store with two models; one's manifest file is replaced by damaged bytes. The other is
/// still listed, the damaged one is either read as what it says or reported as a problem with
/// its path (never a panic, never an error for the whole list), and no blob is deleted while
/// it cannot be read.
#[test]
fn a_damaged_manifest_on_disk_is_reported_not_fatal() {
    check(150, manifest_bytes(), |bytes| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = store.write_blob(CONFIG_MEDIA_TYPE, br#"{"model_format":"gguf"}"#).unwrap();
        let weights = store.write_blob(MODEL, b"GGUF not really").unwrap();
        let system = store.write_blob(SYSTEM, b"Be brief.").unwrap();
        let good = ModelName::parse("good:v1").unwrap();
        let bad = ModelName::parse("me/bad:v2").unwrap();
        store.write_manifest(&good, &Manifest::new(config.clone(), vec![weights.clone()])).unwrap();
        store.write_manifest(&bad, &Manifest::new(config, vec![weights, system])).unwrap();
        let blobs = || std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        let before = blobs();
        let path = dir.path().join("manifests").join(bad.manifest_path());
        std::fs::write(&path, &bytes).unwrap();

        let (entries, problems) = store.list().map_err(|e| TestCaseError::fail(format!("list failed: {e}")))?;
        prop_assert!(entries.iter().any(|e| e.name == good), "the intact model is listed");
        match serde_json::from_slice::<Manifest>(&bytes) {
            Ok(parsed) => {
                // Listed as what it says, or (referring to blobs that are not there) reported.
                let listed = entries.iter().find(|e| e.name == bad).map(|e| &e.manifest);
                let reported = problems.iter().any(|p| p.contains("bad"));
                prop_assert!(listed == Some(&parsed) || (listed.is_none() && reported), "{listed:?} {problems:?}");
                // What it refers to may be missing: reading the model says so, without a panic.
                let _ = store.model_spec(&bad);
            }
            Err(_) => {
                prop_assert!(!entries.iter().any(|e| e.name == bad));
                prop_assert_eq!(problems.len(), 1, "{:?}", problems);
                prop_assert!(problems[0].contains("bad"), "the problem names the manifest: {}", problems[0]);
                let corrupt = matches!(store.manifest(&bad), Err(StoreError::CorruptManifest { .. }));
                prop_assert!(corrupt, "reading the damaged manifest is a CorruptManifest error");
                prop_assert!(store.model_spec(&bad).is_err());
                let _ = store.prune();
                prop_assert_eq!(blobs(), before, "a blob went while a manifest could not be read");
                prop_assert!(store.model_spec(&good).is_ok(), "the intact model still reads");
            }
        }
        Ok(())
    });
}
