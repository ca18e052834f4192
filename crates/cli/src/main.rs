//! The `hearth` command: parses arguments, sets up logging, and maps errors to one line on
//! stderr and an exit code. Each subcommand lives in its own module.

mod answer;
mod bench;
mod config;
mod cost;
mod cp;
mod create;
mod energy;
mod eval;
mod fit;
mod history;
mod keys;
mod kv;
mod list;
mod models;
mod prompt_cache;
mod ps;
mod pull;
mod quantize;
mod repl;
mod rm;
mod run;
mod serve;
mod show;
mod speculation;
mod stop;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hearth", version, about = "Run open-weight language models locally, and measure what they cost")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Chat with a model, or answer one prompt and exit
    Run(run::RunArgs),
    /// Fetch a model into the store
    Pull(pull::PullArgs),
    /// Create a model from a Modelfile
    Create(create::CreateArgs),
    /// List the models in the store
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// Show information about a model
    Show(show::ShowArgs),
    /// Copy a model to a new name
    Cp(cp::CpArgs),
    /// Remove models
    Rm(rm::RmArgs),
    /// Show the energy meters of this machine and what they read
    Energy(energy::EnergyArgs),
    /// Measure models side by side: speed, latency, memory, energy and quality
    Bench(bench::BenchArgs),
    /// Compare the cost of answering locally with cloud APIs
    Cost(cost::CostArgs),
    /// Whether a model fits this machine and how fast it would run, before downloading it
    Fit(fit::FitArgs),
    /// Measure a model's quality on a text: perplexity, and KL divergence from a reference
    Eval(eval::EvalArgs),
    /// Write a model with its weights in another quantization type
    Quantize(quantize::QuantizeArgs),
    /// Serve Ollama's and OpenAI's APIs on one port
    Serve(serve::ServeArgs),
    /// List the models a running server has loaded
    Ps(ps::PsArgs),
    /// Unload a model from a running server
    Stop(stop::StopArgs),
    /// Create, list and revoke the API keys a server accepts
    Keys(keys::KeysArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs what it does; the other commands speak only when something is wrong.
    init_logging(if matches!(cli.command, Command::Serve(_)) { "info,llama_cpp=off" } else { "error,llama_cpp=off" });
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Create(args) => create::run(args),
        Command::List(args) => list::run(args),
        Command::Show(args) => show::run(args),
        Command::Cp(args) => cp::run(args),
        Command::Rm(args) => rm::run(args),
        Command::Energy(args) => energy::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Fit(args) => fit::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Cost(args) => cost::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Ps(args) => ps::run(args),
        Command::Stop(args) => stop::run(args),
        Command::Keys(args) => keys::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`hearth run m.gguf hi | head -1`) is the reader's choice, not a failure.
            if err
                .chain()
                .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            let _ = std::io::stdout().flush();
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `HEARTH_LOG` (e.g. `HEARTH_LOG=debug`, or
/// `HEARTH_LOG=llama_cpp=debug` for llama.cpp's own messages), one JSON object per line with
/// `HEARTH_LOG_FORMAT=json` (for log collectors). Quiet by default: the errors that matter
/// reach the user as error messages.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true);
    if std::env::var("HEARTH_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().init();
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
}
