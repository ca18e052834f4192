//! The interactive chat's commands (`/bye`, `/set parameter ...`, ...), parsed apart from
//! any terminal so they can be tested as plain text.

use hearth_core::parameters::{self, ParameterError};
use hearth_core::SamplingParams;

pub const HELP: &str = "\
Available commands:
  /set parameter NAME VALUE   Set a sampling parameter (/set parameter to list them)
  /set system TEXT            Set the system message
  /set verbose | quiet        Show or hide statistics after each answer
  /show info                  Show details about the model
  /show parameters            Show the current sampling parameters
  /clear                      Forget the conversation so far
  /bye                        Exit
  /?, /help                   Show this help

Use \"\"\" to begin and end a multi-line message.
Ctrl-C stops the current answer; Ctrl-D or /bye exits.";

pub const PARAMETERS_HELP: &str = "\
Parameters:
  /set parameter seed INT            Random seed (same seed, same prompt: same answer)
  /set parameter num_predict INT     Maximum tokens to generate (-1: no limit)
  /set parameter temperature FLOAT   Creativity; 0 always picks the most likely token
  /set parameter top_k INT           Pick from the K most likely tokens (0: off)
  /set parameter top_p FLOAT         Pick from the tokens making up probability P
  /set parameter min_p FLOAT         Drop tokens less likely than P x the most likely
  /set parameter repeat_penalty FLOAT  Penalise repeated tokens (1: off)
  /set parameter repeat_last_n INT   How far back the repeat penalty looks
  /set parameter stop STRING ...     Stop at any of these strings";

#[derive(Debug, PartialEq)]
pub enum ReplCommand {
    Bye,
    Clear,
    Help,
    SetSystem(String),
    SetVerbose(bool),
    ShowInfo,
    ShowParameters,
    /// A parameter was changed; the message says to what.
    Parameter(String),
    /// A line to send to the model.
    Message(String),
}

/// Interprets one line of input. Parameter changes are applied to `params` directly.
pub fn parse(line: &str, params: &mut SamplingParams) -> Result<ReplCommand, String> {
    let trimmed = line.trim();
    if !trimmed.starts_with('/') {
        return Ok(ReplCommand::Message(line.to_string()));
    }
    let mut words = trimmed.split_whitespace();
    let command = words.next().unwrap_or_default();
    match (command, words.next()) {
        ("/bye" | "/exit", _) => Ok(ReplCommand::Bye),
        ("/clear", _) => Ok(ReplCommand::Clear),
        ("/?" | "/help", _) => Ok(ReplCommand::Help),
        ("/set", Some("parameter")) => set_parameter(words.collect(), params).map(ReplCommand::Parameter),
        ("/set", Some("system")) => {
            let text = trimmed.split_once("system").map_or("", |(_, rest)| rest).trim();
            Ok(ReplCommand::SetSystem(text.trim_matches('"').to_string()))
        }
        ("/set", Some("verbose")) => Ok(ReplCommand::SetVerbose(true)),
        ("/set", Some("quiet")) => Ok(ReplCommand::SetVerbose(false)),
        ("/show", Some("info")) => Ok(ReplCommand::ShowInfo),
        ("/show", Some("parameters")) => Ok(ReplCommand::ShowParameters),
        ("/set" | "/show", _) => Err(format!("unknown or incomplete command '{trimmed}'; type /? for help")),
        _ => Err(format!("unknown command '{command}'; type /? for help")),
    }
}

fn set_parameter(args: Vec<&str>, params: &mut SamplingParams) -> Result<String, String> {
    let (Some(&name), values) = (args.first(), &args[1.min(args.len())..]) else {
        return Err(PARAMETERS_HELP.to_string());
    };
    if values.is_empty() {
        return Err(format!("/set parameter {name} needs a value\n{PARAMETERS_HELP}"));
    }
    let texts: Vec<String> = values.iter().map(|v| unescape(v)).collect();
    let mut updated = params.clone();
    match parameters::apply(&mut updated, name, &texts) {
        Ok(()) => {}
        Err(ParameterError::Unknown) => return Err(format!("unknown parameter '{name}'\n{PARAMETERS_HELP}")),
        Err(ParameterError::Invalid(message)) => return Err(message),
    }
    updated.validate()?;
    *params = updated;
    Ok(format!("Set parameter '{name}' to '{}'", values.join(", ")))
}

/// `\n` and `\t` typed at the prompt mean the characters, as in Ollama.
fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_fresh(line: &str) -> (Result<ReplCommand, String>, SamplingParams) {
        let mut params = SamplingParams::default();
        let result = parse(line, &mut params);
        (result, params)
    }

    #[test]
    fn plain_lines_are_messages() {
        assert_eq!(parse_fresh("hello there").0, Ok(ReplCommand::Message("hello there".into())));
    }

    #[test]
    fn commands_are_recognised() {
        for (line, expected) in [
            ("/bye", ReplCommand::Bye),
            ("  /clear ", ReplCommand::Clear),
            ("/?", ReplCommand::Help),
            ("/show info", ReplCommand::ShowInfo),
            ("/show parameters", ReplCommand::ShowParameters),
            ("/set verbose", ReplCommand::SetVerbose(true)),
            ("/set quiet", ReplCommand::SetVerbose(false)),
            ("/set system You are terse.", ReplCommand::SetSystem("You are terse.".into())),
        ] {
            assert_eq!(parse_fresh(line).0, Ok(expected), "{line}");
        }
    }

    #[test]
    fn parameters_are_applied() {
        let (result, params) = parse_fresh("/set parameter temperature 0.2");
        assert!(result.is_ok());
        assert_eq!(params.temperature, 0.2);
        assert_eq!(parse_fresh("/set parameter seed 42").1.seed, Some(42));
        assert_eq!(parse_fresh("/set parameter num_predict 16").1.max_tokens, Some(16));
        assert_eq!(parse_fresh("/set parameter num_predict -1").1.max_tokens, None);
        assert_eq!(parse_fresh("/set parameter stop END \\n\\n").1.stop, vec!["END".to_string(), "\n\n".to_string()]);
    }

    #[test]
    fn bad_parameters_are_rejected_and_change_nothing() {
        for line in [
            "/set parameter temperature hot",
            "/set parameter temperature -1",
            "/set parameter top_p 2",
            "/set parameter warp 9",
            "/set parameter seed",
            "/set parameter",
            "/set",
            "/frobnicate",
        ] {
            let (result, params) = parse_fresh(line);
            assert!(result.is_err(), "{line} should fail");
            assert_eq!(params, SamplingParams::default(), "{line} changed the parameters");
        }
    }
}
