//! Modelfiles as Ollama writes them: `FROM`, `PARAMETER`, `TEMPLATE`, `SYSTEM`, `MESSAGE`,
//! `LICENSE`, with `"..."` and multi-line `"""..."""` values and `#` comments. Parameters are
//! checked against the ones hearth applies, so a typo is an error at `create`, not a
//! setting silently ignored at run time.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Modelfile {
    /// A path to a GGUF file, or the name of a model in the store.
    pub from: String,
    /// Parameters as JSON, the way the params layer stores them (`stop` is a list).
    pub parameters: Map<String, Value>,
    pub template: Option<String>,
    pub system: Option<String>,
    pub messages: Vec<(String, String)>,
    pub license: Vec<String>,
    /// A draft model for speculative decoding: a GGUF path or a model in the store, as FROM.
    pub draft: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Modelfile line {line}: {message}")]
pub struct ModelfileError {
    pub line: usize,
    pub message: String,
}

enum Kind {
    Int,
    Float,
    /// One name, checked when the parameters are (`kv_cache_type q8_0`).
    Text,
    /// `true` or `false` (`lookup true`).
    Bool,
    Strings,
}

/// The parameters hearth applies, with their types.
fn parameter_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "num_ctx" | "num_predict" | "top_k" | "repeat_last_n" | "seed" | "num_thread" | "num_batch" | "draft_max" => {
            Kind::Int
        }
        "temperature" | "top_p" | "min_p" | "repeat_penalty" => Kind::Float,
        "kv_cache_type" | "flash_attn" => Kind::Text,
        "lookup" => Kind::Bool,
        "stop" => Kind::Strings,
        _ => return None,
    })
}

impl Modelfile {
    pub fn parse(text: &str) -> Result<Self, ModelfileError> {
        let mut modelfile = Modelfile::default();
        let mut lines = text.lines().enumerate().peekable();
        while let Some((index, line)) = lines.next() {
            let line_no = index + 1;
            let error = |message: String| ModelfileError { line: line_no, message };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (command, rest) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
            let rest = rest.trim();
            let value = |lines: &mut std::iter::Peekable<_>| read_value(rest, lines).map_err(error);
            match command.to_ascii_uppercase().as_str() {
                "FROM" => modelfile.from = value(&mut lines)?,
                "TEMPLATE" => modelfile.template = Some(value(&mut lines)?),
                "SYSTEM" => modelfile.system = Some(value(&mut lines)?),
                "DRAFT" => modelfile.draft = Some(value(&mut lines)?),
                "LICENSE" => modelfile.license.push(value(&mut lines)?),
                "MESSAGE" => {
                    let (role, content) = rest
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| error("MESSAGE needs a role and a message".into()))?;
                    if !matches!(role, "system" | "user" | "assistant") {
                        return Err(error(format!("MESSAGE role must be system, user or assistant, not '{role}'")));
                    }
                    let content = read_value(content.trim(), &mut lines).map_err(error)?;
                    modelfile.messages.push((role.to_string(), content));
                }
                "PARAMETER" => {
                    let (name, raw) = rest
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| error("PARAMETER needs a name and a value".into()))?;
                    let raw = read_value(raw.trim(), &mut lines).map_err(error)?;
                    let kind = parameter_kind(name).ok_or_else(|| error(format!("unknown parameter '{name}'")))?;
                    let invalid = || error(format!("'{raw}' is not a valid value for {name}"));
                    match kind {
                        Kind::Int => {
                            let n: i64 = raw.parse().map_err(|_| invalid())?;
                            modelfile.parameters.insert(name.into(), n.into());
                        }
                        Kind::Float => {
                            let x: f64 = raw.parse().map_err(|_| invalid())?;
                            let x = serde_json::Number::from_f64(x).ok_or_else(invalid)?;
                            modelfile.parameters.insert(name.into(), Value::Number(x));
                        }
                        Kind::Text => {
                            let mut one = serde_json::Map::new();
                            one.insert(name.into(), Value::String(raw));
                            // Refused here, on its line, before FROM's file is taken in.
                            hearth_core::parameters::check_stored(&one).map_err(error)?;
                            modelfile.parameters.extend(one);
                        }
                        Kind::Bool => {
                            let on: bool = raw.parse().map_err(|_| invalid())?;
                            modelfile.parameters.insert(name.into(), Value::Bool(on));
                        }
                        Kind::Strings => {
                            let list = modelfile.parameters.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                            if let Value::Array(items) = list {
                                items.push(Value::String(raw));
                            }
                        }
                    }
                }
                "ADAPTER" => return Err(error("ADAPTER (LoRA adapters) is not supported yet".into())),
                other => return Err(error(format!("unknown command '{other}'"))),
            }
        }
        if modelfile.from.is_empty() {
            return Err(ModelfileError { line: 0, message: "a Modelfile needs a FROM line".into() });
        }
        Ok(modelfile)
    }
}

/// A value: the rest of the line, a `"quoted"` string, or a `"""` block over several lines.
fn read_value<'a>(
    rest: &str,
    lines: &mut std::iter::Peekable<impl Iterator<Item = (usize, &'a str)>>,
) -> Result<String, String> {
    if let Some(after) = rest.strip_prefix("\"\"\"") {
        if let Some(inner) = after.strip_suffix("\"\"\"") {
            return Ok(inner.to_string());
        }
        let mut value = after.to_string();
        for (_, line) in lines.by_ref() {
            if let Some(last) = line.strip_suffix("\"\"\"") {
                value.push('\n');
                value.push_str(last);
                return Ok(value.trim_start_matches('\n').to_string());
            }
            value.push('\n');
            value.push_str(line);
        }
        return Err("a \"\"\" block is never closed".into());
    }
    if rest.len() >= 2 && rest.starts_with('"') && rest.ends_with('"') {
        return Ok(rest[1..rest.len() - 1].replace("\\\"", "\"").replace("\\n", "\n"));
    }
    if rest.is_empty() {
        return Err("the value is missing".into());
    }
    Ok(rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let text = r#"
# a comment
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
DRAFT ./SmolLM2-Q2_K.gguf
"#;
        let m = Modelfile::parse(text).unwrap();
        assert_eq!(m.from, "./SmolLM2.gguf");
        assert_eq!(m.parameters["temperature"], serde_json::json!(0.2));
        assert_eq!(m.parameters["num_ctx"], serde_json::json!(2048));
        assert_eq!(m.parameters["stop"], serde_json::json!(["<|im_end|>", "User:"]));
        assert_eq!(m.system.as_deref(), Some("You are terse.\nAnswer in one line."));
        assert_eq!(m.template.as_deref(), Some("{{ messages }}"));
        assert_eq!(
            m.messages,
            [("user".to_string(), "Hi".to_string()), ("assistant".to_string(), "Hello!".to_string())]
        );
        assert_eq!(m.license, ["MIT"]);
        assert_eq!(m.draft.as_deref(), Some("./SmolLM2-Q2_K.gguf"));
    }

    #[test]
    fn mistakes_name_their_line() {
        for (text, line, message) in [
            ("PARAMETER temperature 1", 0, "needs a FROM line"),
            ("FROM x\nPARAMETER temprature 0.5", 2, "unknown parameter 'temprature'"),
            ("FROM x\nPARAMETER top_k lots", 2, "'lots' is not a valid value for top_k"),
            ("FROM x\nPARAMETER kv_cache_type q9", 2, "'q9' is not a KV cache type"),
            ("FROM x\n\nPARAMETER flash_attn sometimes", 3, "not a flash attention setting"),
            ("FROM x\nPARAMETER lookup maybe", 2, "'maybe' is not a valid value for lookup"),
            ("FROM x\nSYSTEM \"\"\"never closed", 2, "never closed"),
            ("FROM x\nMESSAGE robot hi", 2, "role must be system, user or assistant"),
            ("FROM x\nQUANTIZE q4", 2, "unknown command 'QUANTIZE'"),
            ("FROM x\nADAPTER ./lora.gguf", 2, "not supported yet"),
            ("FROM", 1, "the value is missing"),
        ] {
            let err = Modelfile::parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text}");
            assert!(err.message.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn speculative_decoding_is_a_switch_and_a_count() {
        let m = Modelfile::parse("FROM x\nPARAMETER lookup true\nPARAMETER draft_max 8").unwrap();
        assert_eq!(m.parameters["lookup"], serde_json::json!(true));
        assert_eq!(m.parameters["draft_max"], serde_json::json!(8));
    }

    #[test]
    fn commands_are_case_insensitive() {
        let m = Modelfile::parse("from model.gguf\nparameter seed 42").unwrap();
        assert_eq!((m.from.as_str(), &m.parameters["seed"]), ("model.gguf", &serde_json::json!(42)));
    }
}
