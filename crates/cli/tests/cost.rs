//! `hearth cost` end to end: the built binary with its inputs from flags, a bench history, a
//! config file and a server usage file written here, each test in its own home directory.

use std::path::Path;
use std::process::{Command, Output};

/// `hearth cost ARGS` with `home` as HOME and none of the caller's settings.
fn cost(home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command.arg("cost").args(args).current_dir(home).env("HOME", home);
    for name in [
        "HEARTH_LOG",
        "HEARTH_CONFIG",
        "HEARTH_BENCH_HISTORY",
        "HEARTH_USAGE_FILE",
        "HEARTH_ENERGY_PRICE",
        "HEARTH_CURRENCY",
        "HEARTH_GRID_INTENSITY",
    ] {
        command.env_remove(name);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn close(value: &serde_json::Value, want: f64) -> bool {
    value.as_f64().is_some_and(|got| (got - want).abs() <= 1e-6 * want.abs().max(1.0))
}

const CLAIM: &[&str] = &[
    "--tokens-per-day",
    "1000000",
    "--hardware-price",
    "3600",
    "--electricity-price",
    "0.30",
    "--joules-per-token",
    "1",
    "--cloud-price-input",
    "3",
    "--cloud-price-output",
    "15",
];

#[test]
fn json_figures_for_given_inputs() {
    let home = tempfile::tempdir().unwrap();
    let report = json(&cost(home.path(), &[CLAIM, &["--json"]].concat()));
    // 1e6 J a day = 0.2778 kWh = 0.0833 at 0.30; the cloud 0.5 * 3 + 0.5 * 15 = 9 a day.
    let energy = 0.25 / 3.0;
    assert_eq!(report["currency"], "USD");
    assert!(close(&report["tokens_in_per_day"], 500_000.0));
    assert!(close(&report["local"]["energy_cost_per_day"], energy));
    assert!(close(&report["local"]["energy_wh_per_day"], 1e6 / 3600.0));
    assert!(close(&report["local"]["three_year_cost"], 3600.0 + 1095.0 * energy));
    assert_eq!(report["energy"]["source"], "given");
    assert_eq!(report["estimated"], false);
    let cloud = &report["clouds"][0];
    assert_eq!(cloud["name"], "cloud");
    assert!(close(&cloud["per_million"], 9.0));
    assert!(close(&cloud["break_even_months"], 3600.0 / (9.0 - energy) / (365.0 / 12.0)));
    assert!(close(&cloud["three_year_cost"], 9855.0));
    let rows = report["sensitivity"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[2]["break_even_months"][1], cloud["break_even_months"]);
    assert!(report["local"]["co2e_grams_per_day"].is_null(), "no grid intensity, no CO2e");
}

#[test]
fn several_cloud_models_a_config_file_and_the_environment() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".hearth")).unwrap();
    std::fs::write(
        home.path().join(".hearth/config.toml"),
        "[cost]\ntokens_per_day = 2000000\nhardware_price = 1000\nlifetime_years = 2\njoules_per_token = 0.5\n\n\
         [[cost.cloud]]\nname = \"big\"\ninput = 10\noutput = 30\nas_of = \"2026-12\"\n\n\
         [[cost.cloud]]\nname = \"small\"\ninput = 0.1\noutput = 0.4\n",
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    let output = command
        .args(["cost", "--json", "--hardware-price", "2000"])
        .env("HOME", home.path())
        .env_remove("HEARTH_CONFIG")
        .env_remove("HEARTH_BENCH_HISTORY")
        .env("HEARTH_ENERGY_PRICE", "0.2")
        .env("HEARTH_CURRENCY", "EUR")
        .env("HEARTH_GRID_INTENSITY", "400")
        .output()
        .unwrap();
    let report = json(&output);
    assert_eq!(report["currency"], "EUR");
    assert!(close(&report["hardware_price"], 2000.0), "the flag overrides the file");
    assert!(close(&report["lifetime_years"], 2.0));
    assert!(close(&report["electricity_price"], 0.2));
    assert_eq!(report["clouds"].as_array().unwrap().len(), 2);
    assert_eq!(report["clouds"][0]["as_of"], "2026-12");
    // 2e6 tokens at 0.5 J = 1e6 J = 0.2778 kWh: 111.1 g at 400 g/kWh.
    assert!(close(&report["local"]["co2e_grams_per_day"], 400.0 / 3.6));
    // `--cloud NAME` picks one model of the file.
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["cost", "--cloud", "small", "--electricity-price", "0.2"])
        .env("HOME", home.path())
        .env_remove("HEARTH_CONFIG")
        .output()
        .unwrap();
    let table = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(table.contains("small (0.10 in, 0.40 out)") && !table.contains("big"), "{table}");
}

/// A bench history line with the fields `hearth bench` writes.
fn record(model: &str, at: u64, joules: f64, watts: Option<f64>) -> String {
    serde_json::json!({
        "at": at, "model": model, "architecture": "llama", "quantization": "Q4_1", "parameters": 134_515_008u64,
        "file_bytes": 99_000_000u64, "threads": 2, "context": 4096, "batch_size": 512, "kv_cache_type": "f16",
        "bandwidth_gb_s": 10.0, "prompt_tokens_per_second": 400.0, "generation_tokens_per_second": 60.0,
        "joules_per_token": joules, "watts": watts, "energy_source": "estimated", "peak_rss_bytes": null
    })
    .to_string()
}

#[test]
fn the_bench_history_gives_the_energy_and_says_so() {
    let home = tempfile::tempdir().unwrap();
    let history = home.path().join("history.jsonl");
    // 2026-12-07 and 2026-12-08, the newer one of another model.
    let lines = [record("smollm2:135m", 1_796_644_800, 0.135, Some(8.0)), record("gemma", 1_796_731_200, 0.5, None)];
    std::fs::write(&history, lines.join("\n") + "\n").unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
        command.arg("cost").args(args).env("HOME", home.path()).env("HEARTH_BENCH_HISTORY", &history);
        command.env_remove("HEARTH_CONFIG").output().unwrap()
    };
    let base =
        ["--tokens-per-day", "1000000", "--hardware-price", "3600", "--electricity-price", "0.3", "--cloud", "x=3,15"];
    let output = run(&[&base[..], &["--model", "smollm2:135m"]].concat());
    let table = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        table.contains("0.135 J/token generated, estimated by hearth bench of smollm2:135m on 2026-12-07"),
        "{table}"
    );
    assert!(table.contains("prompt tokens at 0.0200 J/token"), "8 W over 400 tokens/s: {table}");
    assert!(table.contains("* rests on an estimated energy figure"), "{table}");
    // 500k / 400 + 500k / 60 seconds.
    assert!(
        table.contains("busy: 2.7 hours a day at the bench run's 400 prompt and 60.0 generated tokens/s"),
        "{table}"
    );
    let report = json(&run(&[&base[..], &["--json"]].concat()));
    assert_eq!(report["energy"]["origin"], "bench");
    assert!(report["energy"]["description"].as_str().unwrap().contains("of gemma on 2026-12-08"), "the newest");
    assert!(close(&report["energy"]["joules_per_input_token"], 0.5), "no power: the generation figure");
    assert_eq!(report["estimated"], true);
    assert!(close(&report["busy_hours_per_day"], (500_000.0 / 400.0 + 500_000.0 / 60.0) / 3600.0));
    let output = run(&[&base[..], &["--model", "llama:70b"]].concat());
    let error = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(error.starts_with("Error: no bench record of \"llama:70b\"") && error.lines().count() == 1, "{error}");
}

#[test]
fn plot_marks_the_break_even() {
    let home = tempfile::tempdir().unwrap();
    let output = cost(home.path(), &[CLAIM, &["--cloud", "cheap=0.1,0.1", "--plot", "cost.svg"]].concat());
    assert!(output.status.success(), "{}", text(&output.stderr));
    let svg = std::fs::read_to_string(home.path().join("cost.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches(r#"class="break-even""#).count(), 1, "the cheap cloud never breaks even: {svg}");
    assert!(svg.contains("break-even with cloud: 13.3 months"), "{svg}");
    assert!(svg.contains("this machine") && svg.contains("cheap"));
}

#[test]
fn bad_inputs_give_one_line() {
    let home = tempfile::tempdir().unwrap();
    let with = |flag: &str, value: &str| {
        let mut args: Vec<&str> = CLAIM.to_vec();
        match args.iter().position(|a| *a == flag) {
            Some(i) => args[i + 1] = value,
            None => args.extend([flag, value]),
        }
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (with("--hardware-price", "-5"), "the hardware price must be a number of 0 or more"),
        (with("--electricity-price", "nan"), "the electricity price must be a number of 0 or more"),
        (with("--cloud-price-output", "-1"), "cloud's output price must be"),
        (with("--tokens-per-day", "0"), "tokens per day must be more than 0"),
        (with("--lifetime-years", "0"), "the lifetime must be more than 0 years"),
        (with("--cloud", "gpt-9"), "no prices for the cloud model \"gpt-9\""),
        (with("--cloud", "x=3"), "--cloud x=3: expected NAME=INPUT,OUTPUT"),
        (
            CLAIM[..10].iter().map(|a| a.to_string()).collect(),
            "--cloud-price-input and --cloud-price-output go together",
        ),
        (CLAIM[..8].iter().map(|a| a.to_string()).collect(), "no cloud model to compare with"),
        (
            ["--tokens-per-day", "1000", "--hardware-price", "1", "--electricity-price", "1", "--cloud", "a=1,1"]
                .map(String::from)
                .to_vec(),
            "no energy per token: run `hearth bench MODEL`",
        ),
        (vec!["--hardware-price".into(), "1".into()], "no tokens per day"),
        (vec!["--from-usage".into()], "no usage recorded in"),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = cost(home.path(), &args);
        let error = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {error}");
        assert!(error.starts_with(&format!("Error: {message}")), "{args:?}: {error}");
        assert_eq!(error.lines().count(), 1, "{args:?}: {error}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn from_usage_averages_the_complete_days() {
    let home = tempfile::tempdir().unwrap();
    let usage = home.path().join("usage.json");
    // Two complete days long past and today's partial one, which is left out.
    let today = hearth_server::usage::date_of(std::time::SystemTime::now());
    let day = |date: &str, prompt: u64, completion: u64, joules: f64| {
        serde_json::json!({"date": date, "requests": 10, "prompt_tokens": prompt, "completion_tokens": completion,
            "joules": joules, "energy_source": "measured"})
    };
    let file = serde_json::json!({"days": [
        day("2026-01-01", 300_000, 100_000, 40_000.0),
        day("2026-01-02", 500_000, 100_000, 60_000.0),
        day(&today, 1, 1, 1.0),
    ]});
    std::fs::write(&usage, file.to_string()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["cost", "--from-usage", "--hardware-price", "3600", "--electricity-price", "0.3", "--cloud", "x=3,15"])
        .arg("--json")
        .env("HOME", home.path())
        .env("HEARTH_USAGE_FILE", &usage)
        .env_remove("HEARTH_CONFIG")
        .output()
        .unwrap();
    let report = json(&output);
    assert!(close(&report["tokens_in_per_day"], 400_000.0));
    assert!(close(&report["tokens_out_per_day"], 100_000.0));
    // 100 kJ over 1M tokens.
    assert!(close(&report["energy"]["joules_per_output_token"], 0.1));
    assert_eq!(report["energy"]["origin"], "usage");
    assert_eq!(report["energy"]["source"], "measured");
    assert_eq!(report["usage"]["days"], 2);
    assert!(report["tokens_note"].as_str().unwrap().contains("2 complete days (2026-01-01 to 2026-01-02)"));
    // A corrupt usage file is one line too.
    std::fs::write(&usage, "{ torn").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["cost", "--from-usage", "--hardware-price", "1", "--electricity-price", "0.3", "--cloud", "x=3,15"])
        .env("HOME", home.path())
        .env("HEARTH_USAGE_FILE", &usage)
        .output()
        .unwrap();
    let error = text(&output.stderr);
    assert!(error.contains("is not a usage file") && error.lines().count() == 1, "{error}");
}
