//! Model names as Ollama writes them: `[host/][namespace/]model[:tag]`, with Ollama's
//! defaults (`smollm2` is `registry.ollama.ai/library/smollm2:latest`) and its character
//! rules, so a name that works in Ollama works here and means the same model.

use std::fmt;

pub const DEFAULT_HOST: &str = "registry.ollama.ai";
pub const DEFAULT_NAMESPACE: &str = "library";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName {
    pub host: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model name '{name}': {reason}")]
pub struct NameError {
    pub name: String,
    pub reason: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Part {
    Host,
    Namespace,
    Model,
    Tag,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::Host => "host",
            Part::Namespace => "namespace",
            Part::Model => "model",
            Part::Tag => "tag",
        }
    }
}

impl ModelName {
    /// Parses `[host/][namespace/]model[:tag]`, filling in Ollama's defaults.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let error = |reason: String| NameError { name: name.to_string(), reason };
        // The tag follows the last ':' after the last '/' (a ':' before it is a host's port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], &name[last_slash + i + 1..]),
            None => (name, DEFAULT_TAG),
        };
        let mut parts: Vec<&str> = path.split('/').collect();
        let model = parts.pop().unwrap_or_default();
        let (host, namespace) = match parts.as_slice() {
            [] => (DEFAULT_HOST, DEFAULT_NAMESPACE),
            [namespace] => (DEFAULT_HOST, *namespace),
            [host, namespace] => (*host, *namespace),
            _ => return Err(error("too many '/' (expected [host/][namespace/]model[:tag])".into())),
        };
        for (part, value) in [(Part::Host, host), (Part::Namespace, namespace), (Part::Model, model), (Part::Tag, tag)]
        {
            check(part, value).map_err(error)?;
        }
        Ok(Self { host: host.into(), namespace: namespace.into(), model: model.into(), tag: tag.into() })
    }

    /// The manifest's path under `manifests/`: `host/namespace/model/tag`.
    pub fn manifest_path(&self) -> std::path::PathBuf {
        [&self.host, &self.namespace, &self.model, &self.tag].iter().collect()
    }

    /// Whether two names are the same model: Ollama compares names without regard to case.
    pub fn same_as(&self, other: &Self) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.namespace.eq_ignore_ascii_case(&other.namespace)
            && self.model.eq_ignore_ascii_case(&other.model)
            && self.tag.eq_ignore_ascii_case(&other.tag)
    }
}

/// The shortest form that parses back to the same name, as Ollama displays names:
/// `smollm2:latest`, `user/model:tag`, `hf.co/org/repo:Q4_K_M`.
impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host != DEFAULT_HOST {
            write!(f, "{}/{}/", self.host, self.namespace)?;
        } else if self.namespace != DEFAULT_NAMESPACE {
            write!(f, "{}/", self.namespace)?;
        }
        write!(f, "{}:{}", self.model, self.tag)
    }
}

fn check(part: Part, value: &str) -> Result<(), String> {
    let label = part.label();
    let max = if part == Part::Host { 350 } else { 80 };
    if value.is_empty() {
        return Err(format!("the {label} is empty"));
    }
    if value.len() > max {
        return Err(format!("the {label} is longer than {max} characters"));
    }
    for (i, c) in value.chars().enumerate() {
        let ok = c.is_ascii_alphanumeric()
            || c == '_'
            || (i > 0 && (c == '-' || (c == '.' && part != Part::Namespace) || (c == ':' && part == Part::Host)));
        if !ok {
            return Err(format!("'{c}' is not allowed {} the {label}", if i == 0 { "at the start of" } else { "in" }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_ollama_defaults() {
        for (input, host, namespace, model, tag, shown) in [
            ("smollm2", DEFAULT_HOST, "library", "smollm2", "latest", "smollm2:latest"),
            ("smollm2:135m", DEFAULT_HOST, "library", "smollm2", "135m", "smollm2:135m"),
            ("gemma3:270m", DEFAULT_HOST, "library", "gemma3", "270m", "gemma3:270m"),
            ("jane/tiny-llm", DEFAULT_HOST, "jane", "tiny-llm", "latest", "jane/tiny-llm:latest"),
            ("jane/tiny.llm:v1.2_q4", DEFAULT_HOST, "jane", "tiny.llm", "v1.2_q4", "jane/tiny.llm:v1.2_q4"),
            (
                "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
                "hf.co",
                "bartowski",
                "Llama-3.2-1B-Instruct-GGUF",
                "Q4_K_M",
                "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
            ),
            (
                "localhost:5000/team/model:dev",
                "localhost:5000",
                "team",
                "model",
                "dev",
                "localhost:5000/team/model:dev",
            ),
            ("registry.ollama.ai/library/qwen3", DEFAULT_HOST, "library", "qwen3", "latest", "qwen3:latest"),
            ("_private/x", DEFAULT_HOST, "_private", "x", "latest", "_private/x:latest"),
        ] {
            let name = ModelName::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (name.host.as_str(), name.namespace.as_str(), name.model.as_str(), name.tag.as_str()),
                (host, namespace, model, tag),
                "{input}"
            );
            assert_eq!(name.to_string(), shown, "{input}");
            assert_eq!(ModelName::parse(shown).unwrap(), name, "{shown} round-trips");
        }
    }

    #[test]
    fn invalid_names_say_what_is_wrong() {
        for (input, reason) in [
            ("", "the model is empty"),
            ("model:", "the tag is empty"),
            ("/model", "the namespace is empty"),
            ("a/b/c/d", "too many '/'"),
            ("my.ns/model", "'.' is not allowed in the namespace"),
            ("-model", "'-' is not allowed at the start of the model"),
            ("model:tag:x", "':' is not allowed in the model"),
            ("mod el", "' ' is not allowed in the model"),
            ("modèle", "'è' is not allowed in the model"),
        ] {
            let err = ModelName::parse(input).expect_err(input);
            assert!(err.reason.contains(reason), "{input}: {err}");
        }
        assert!(ModelName::parse(&"x".repeat(81)).is_err());
        assert!(ModelName::parse(&format!("{}:t", "x".repeat(80))).is_ok());
    }

    #[test]
    fn manifest_path_and_case_insensitive_identity() {
        let name = ModelName::parse("hf.co/Org/Repo:Q8_0").unwrap();
        assert_eq!(name.manifest_path(), std::path::PathBuf::from("hf.co/Org/Repo/Q8_0"));
        assert!(name.same_as(&ModelName::parse("HF.co/org/REPO:q8_0").unwrap()));
        assert!(!name.same_as(&ModelName::parse("hf.co/org/repo:Q4_0").unwrap()));
    }
}
