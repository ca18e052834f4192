//! `hearth run MODEL [PROMPT]`: answer one prompt and exit, or chat in the terminal.

use crate::answer::{self, Answer};
use crate::kv::KvArgs;
use crate::models;
use crate::repl::{self, ReplCommand};
use anyhow::{bail, Context, Result};
use hearth_core::parameters::StoredParameters;
use hearth_core::{ChatMessage, EnergyPrices, FinishReason, GenerateRequest, Prompt, SamplingParams};
use hearth_engine::{Engine, EngineSettings, LoadOptions};
use hearth_store::ModelSpec;
use rustyline::error::ReadlineError;
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// Exit status after Ctrl-C, as shells report a SIGINT death.
const INTERRUPTED_EXIT: u8 = 130;

#[derive(clap::Args)]
pub struct RunArgs {
    /// A model name from the store (`hearth list`), or a path to a GGUF file; a model not in
    /// the store yet is pulled first
    #[arg(default_value = hearth_store::DEFAULT_MODEL)]
    model: String,
    /// The prompt to answer. Without one, hearth reads standard input when it is not a
    /// terminal, and otherwise starts an interactive chat.
    prompt: Vec<String>,
    /// Print timings after each answer: load time, prompt and answer tokens and tok/s, TTFT
    #[arg(long)]
    verbose: bool,
    /// System message to start the conversation with
    #[arg(long)]
    system: Option<String>,
    /// CPU threads [default: the physical cores]
    #[arg(long, short = 't')]
    threads: Option<u32>,
    /// Context size in tokens, prompt and answer together [default: 4096, at most the model's]
    #[arg(long, short = 'c', visible_alias = "num-ctx")]
    ctx_size: Option<u32>,
    /// Tokens per batch while processing the prompt [default: 512]
    #[arg(long, short = 'b')]
    batch_size: Option<u32>,
    /// Random seed: the same seed and prompt give the same answer
    #[arg(long)]
    seed: Option<u32>,
    /// Sampling temperature; 0 always picks the most likely token [default: 0.8]
    #[arg(long, allow_negative_numbers = true)]
    temperature: Option<f32>,
    /// Maximum tokens to generate; -1 for no limit [default: -1]
    #[arg(long, allow_negative_numbers = true)]
    num_predict: Option<i64>,
    #[command(flatten)]
    kv: KvArgs,
    #[command(flatten)]
    speculation: crate::speculation::SpeculationArgs,
    #[command(flatten)]
    prompt_cache: crate::prompt_cache::PromptCacheArgs,
}

impl RunArgs {
    /// Flags first, then what the model was stored with, then defaults.
    fn engine_settings(&self, model: &ModelSpec) -> Result<EngineSettings> {
        let flags = EngineSettings {
            threads: self.threads,
            context_size: self.ctx_size,
            batch_size: self.batch_size,
            ..self.speculation.over(self.kv.settings()?)?
        };
        Ok(flags.or(EngineSettings::stored(&model.parameters, model.template.clone(), model.draft.clone())?))
    }

    fn sampling(&self, model: &ModelSpec) -> Result<SamplingParams> {
        let mut params = stored_sampling(&model.parameters);
        if self.seed.is_some() {
            params.seed = self.seed;
        }
        if let Some(t) = self.temperature {
            params.temperature = t;
        }
        if let Some(n) = self.num_predict {
            params.max_tokens =
                if n < 0 { None } else { Some(u32::try_from(n).context("--num-predict is too large")?) };
        }
        params.validate().map_err(anyhow::Error::msg)?;
        Ok(params)
    }
}

/// Sampling parameters a Modelfile stored, over the defaults; values that do not parse are
/// reported and skipped.
fn stored_sampling(stored: &StoredParameters) -> SamplingParams {
    let (params, ignored) = stored.sampling();
    for message in ignored {
        tracing::warn!("stored parameter ignored: {message}");
    }
    params.clone()
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    install_interrupt_handler()?;
    let model = models::resolve(&args.model)?;
    let sampling = args.sampling(&model)?;
    let prompt = one_shot_prompt(&args.prompt)?;
    let meter = crate::energy::meter(args.verbose);
    let options = LoadOptions { meter, prompt_cache: args.prompt_cache.config() };
    let engine = Engine::load_with(&model.path, &args.engine_settings(&model)?, options)?;
    let prices = crate::energy::prices()?;
    let mut chat = Chat { engine, sampling, messages: Vec::new(), verbose: args.verbose, prices };
    // The command line's system message replaces the stored one.
    if let Some(system) = args.system.clone().or(model.system) {
        chat.messages.push(ChatMessage::system(system));
    }
    chat.messages.extend(model.messages);
    match prompt {
        Some(prompt) => chat.answer_once(prompt),
        None => chat.interactive(),
    }
}

/// The prompt from the arguments and from standard input when it is not a terminal
/// (`echo hi | hearth run m.gguf`), or `None` for an interactive chat.
fn one_shot_prompt(words: &[String]) -> Result<Option<String>> {
    let mut parts = Vec::new();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut piped = String::new();
        stdin.lock().read_to_string(&mut piped).context("reading the prompt from standard input")?;
        parts.push(piped);
    }
    parts.extend(words.iter().cloned());
    if parts.is_empty() {
        return Ok(None);
    }
    let prompt = parts.join(" ").trim().to_string();
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    Ok(Some(prompt))
}

fn install_interrupt_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        // While an answer streams, Ctrl-C stops that answer; at any other time it quits.
        if answer::STREAMING.load(Ordering::SeqCst) {
            answer::INTERRUPTED.store(true, Ordering::SeqCst);
        } else {
            std::process::exit(i32::from(INTERRUPTED_EXIT));
        }
    })
    .context("installing the Ctrl-C handler")
}

struct Chat {
    engine: Engine,
    sampling: SamplingParams,
    messages: Vec<ChatMessage>,
    verbose: bool,
    prices: EnergyPrices,
}

impl Chat {
    fn answer_once(&mut self, prompt: String) -> Result<ExitCode> {
        self.messages.push(ChatMessage::user(prompt));
        let answer = self.ask()?;
        Ok(if answer.finish_reason == FinishReason::Cancelled {
            ExitCode::from(INTERRUPTED_EXIT)
        } else {
            ExitCode::SUCCESS
        })
    }

    /// Streams the answer to the conversation so far, then the stats line if asked for.
    fn ask(&mut self) -> Result<Answer> {
        let request = GenerateRequest::new(Prompt::Chat(self.messages.clone()), self.sampling.clone());
        let mut stdout = std::io::stdout().lock();
        let answer = answer::stream(&self.engine, request, &mut stdout)?;
        writeln!(stdout)?;
        drop(stdout);
        if self.verbose && answer.finish_reason != FinishReason::Cancelled {
            eprintln!("{}", answer::stats_line(&answer, self.engine.load_duration(), &self.prices));
        }
        Ok(answer)
    }

    fn interactive(&mut self) -> Result<ExitCode> {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        loop {
            let line = match read_message(&mut editor) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => {
                    println!("Use Ctrl + d or /bye to exit.");
                    continue;
                }
                Err(ReadlineError::Eof) => return Ok(ExitCode::SUCCESS),
                Err(e) => return Err(e).context("reading input"),
            };
            if line.trim().is_empty() {
                continue;
            }
            let _ = editor.add_history_entry(line.as_str());
            match repl::parse(&line, &mut self.sampling) {
                Ok(ReplCommand::Bye) => return Ok(ExitCode::SUCCESS),
                Ok(ReplCommand::Clear) => {
                    self.messages.retain(|m| m.role == hearth_core::Role::System);
                    println!("Cleared session context");
                }
                Ok(ReplCommand::Help) => println!("{}", repl::HELP),
                Ok(ReplCommand::SetSystem(text)) => {
                    self.messages.retain(|m| m.role != hearth_core::Role::System);
                    self.messages.insert(0, ChatMessage::system(text));
                    println!("Set system message.");
                }
                Ok(ReplCommand::SetVerbose(on)) => {
                    self.verbose = on;
                    println!("Set '{}' mode.", if on { "verbose" } else { "quiet" });
                }
                Ok(ReplCommand::ShowInfo) => println!("{}", self.describe_model()),
                Ok(ReplCommand::ShowParameters) => println!("{:#?}", self.sampling),
                Ok(ReplCommand::Parameter(message)) => println!("{message}"),
                Ok(ReplCommand::Message(text)) => self.converse(text)?,
                Err(message) => println!("{message}"),
            }
        }
    }

    /// One turn: the answer joins the conversation; a failed turn leaves it as it was.
    fn converse(&mut self, text: String) -> Result<()> {
        self.messages.push(ChatMessage::user(text));
        match self.ask() {
            Ok(answer) => {
                self.messages.push(ChatMessage::assistant(answer.text));
                println!();
                Ok(())
            }
            Err(e) if e.downcast_ref::<std::io::Error>().is_some() => Err(e),
            Err(e) => {
                self.messages.pop();
                println!("Error: {e:#}");
                Ok(())
            }
        }
    }

    fn describe_model(&self) -> String {
        let info = self.engine.info();
        let settings = self.engine.settings();
        let trained = info.context_length.map_or_else(|| "unknown".to_string(), |n| n.to_string());
        format!(
            "  Model\n    path              {}\n    architecture      {}\n    parameters        {}\n    quantization      {}\n    context length    {trained}\n    chat template     {}\n  Runtime\n    context size      {}\n    threads           {}\n    batch size        {}",
            self.engine.path().display(),
            info.architecture,
            info.parameter_size(),
            info.quantization,
            if info.chat_template.is_some() { "from the model file" } else { "none (plain completion)" },
            settings.context_size,
            settings.threads,
            settings.batch_size,
        )
    }
}

/// One message from the terminal: a line, or everything between a pair of `"""`.
fn read_message(editor: &mut rustyline::DefaultEditor) -> Result<String, ReadlineError> {
    let first = editor.readline(">>> ")?;
    let Some(rest) = first.trim_start().strip_prefix("\"\"\"") else { return Ok(first) };
    if let Some(whole) = rest.strip_suffix("\"\"\"") {
        return Ok(whole.to_string());
    }
    let mut lines = vec![rest.to_string()];
    loop {
        let line = editor.readline("... ")?;
        if let Some(last) = line.strip_suffix("\"\"\"") {
            lines.push(last.to_string());
            return Ok(lines.join("\n").trim_start_matches('\n').to_string());
        }
        lines.push(line);
    }
}
