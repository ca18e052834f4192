//! Grammars that constrain decoding, in llama.cpp's GBNF: converted from a JSON schema by
//! llama.cpp's own converter, so structured output always parses and validates.

use serde_json::Value;
use std::sync::{Condvar, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JSON schema cannot be used to constrain the answer: {0}")]
pub struct SchemaError(String);

/// The largest schema accepted, as JSON text. OpenAI's structured outputs allow about
/// 120,000 characters of names and values; this leaves room for the structure around them.
pub const MAX_SCHEMA_BYTES: usize = 256 << 10;

/// Stack for llama.cpp's converter. It escapes every literal with `std::regex`, whose
/// matcher recurses once per character: about 500 bytes of stack per byte of a name, so a
/// 10 KB property name overflowed a 2 MiB thread and aborted the process. A schema of
/// [`MAX_SCHEMA_BYTES`] needs about 130 MiB; the stack is only reserved, not used, until then.
const CONVERTER_STACK: usize = 512 << 20;

/// Conversions that run at once; more wait their turn, so schemas sent together cannot
/// take every core or reserve stacks without bound.
const CONVERSIONS_AT_ONCE: usize = 4;

static CONVERTING: Gate = Gate { running: Mutex::new(0), freed: Condvar::new() };

/// A counting gate: at most [`CONVERSIONS_AT_ONCE`] holders at a time.
struct Gate {
    running: Mutex<usize>,
    freed: Condvar,
}

struct Turn<'a>(&'a Gate);

impl Gate {
    fn enter(&self) -> Turn<'_> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= CONVERSIONS_AT_ONCE {
            running = self.freed.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Turn(self)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// The GBNF grammar whose sentences are exactly the JSON documents `schema` accepts.
pub fn from_json_schema(schema: &Value) -> Result<String, SchemaError> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(SchemaError(format!("a schema is an object, got {schema}")));
    }
    let text = serde_json::to_string(schema).expect("a JSON value serializes");
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(SchemaError(format!(
            "the schema is {} bytes of JSON; at most {MAX_SCHEMA_BYTES} are accepted",
            text.len()
        )));
    }
    let _turn = CONVERTING.enter();
    let schema = schema.clone();
    let converter = std::thread::Builder::new()
        .name("hearth-schema".into())
        .stack_size(CONVERTER_STACK)
        .spawn(move || llama_cpp_2::json_schema_to_grammar(&text).map_err(|_| SchemaError(diagnose(&schema))))
        .map_err(|e| SchemaError(format!("no thread to convert it on: {e}")))?;
    converter.join().map_err(|_| SchemaError("the converter failed".into()))?
}

/// What in `schema` llama.cpp's converter refused, found again here since the binding
/// reports only an error code: a `$ref` outside the document or to nothing in it, a `type`
/// that is none of JSON's, a `pattern` it cannot turn into a grammar (each one is tried
/// alone); else a general word.
fn diagnose(schema: &Value) -> String {
    let mut found = None;
    walk(schema, "#", &mut |at, object| {
        if found.is_some() {
            return;
        }
        if let Some(target) = object.get("$ref") {
            found = ref_problem(schema, target).map(|problem| format!("{problem} (at {at})"));
        }
        if let Some(kinds) = object.get("type") {
            let known = ["string", "number", "integer", "boolean", "object", "array", "null"];
            let names: Vec<&Value> = kinds.as_array().map_or(vec![kinds], |list| list.iter().collect());
            if let Some(bad) = names.iter().find(|k| !k.as_str().is_some_and(|k| known.contains(&k))) {
                found = Some(format!("type {bad} (at {at}) is not a JSON type"));
            }
        }
        if let Some(pattern) = object.get("pattern") {
            let alone = serde_json::json!({"type": "string", "pattern": pattern}).to_string();
            if llama_cpp_2::json_schema_to_grammar(&alone).is_err() {
                found = Some(format!("pattern {pattern} (at {at}) is not a regular expression llama.cpp can follow"));
            }
        }
    });
    found.unwrap_or_else(|| "llama.cpp's converter refused it".into())
}

/// Why a `$ref` cannot be followed, as llama.cpp's converter resolves them: only `#/...`
/// pointers into the same document, token by token.
fn ref_problem(root: &Value, target: &Value) -> Option<String> {
    let Some(target) = target.as_str() else { return Some(format!("$ref {target} is not a string")) };
    let Some(pointer) = target.strip_prefix("#/") else {
        return Some(format!("$ref {target:?} leaves the schema; only references into it (#/...) are followed"));
    };
    let mut at = root;
    for token in pointer.split('/') {
        let next = match at {
            Value::Object(map) => map.get(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return Some(format!("$ref {target:?} points at nothing in the schema ({token:?} is not there)")),
        }
    }
    None
}

/// Calls `visit` with every schema in `schema` and its place (a JSON pointer): the schema
/// itself and those its keywords hold, never values (`enum`, `const`, `default`, examples)
/// or the name maps (`properties`) themselves.
fn walk(schema: &Value, at: &str, visit: &mut impl FnMut(&str, &serde_json::Map<String, Value>)) {
    let Value::Object(map) = schema else { return };
    visit(at, map);
    for (key, child) in map {
        let place = format!("{at}/{key}");
        match (key.as_str(), child) {
            (
                "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                Value::Object(named),
            ) => {
                for (name, schema) in named {
                    walk(schema, &format!("{place}/{name}"), visit);
                }
            }
            ("anyOf" | "allOf" | "oneOf" | "prefixItems" | "items", Value::Array(list)) => {
                for (index, schema) in list.iter().enumerate() {
                    walk(schema, &format!("{place}/{index}"), visit);
                }
            }
            (
                "items"
                | "additionalProperties"
                | "additionalItems"
                | "not"
                | "contains"
                | "if"
                | "then"
                | "else"
                | "propertyNames"
                | "unevaluatedItems"
                | "unevaluatedProperties",
                schema,
            ) => walk(schema, &place, visit),
            _ => {}
        }
    }
}

/// `grammar` with the whitespace between JSON tokens cut to at most one space. The
/// converter allows newlines and up to 20 indents there, on which small models wander off
/// instead of closing the object; a compact answer is shorter too.
pub fn compact(grammar: &str) -> String {
    grammar
        .lines()
        .map(|line| if line.starts_with("space ::=") { "space ::= | \" \"" } else { line })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Any JSON object: Ollama's `format: "json"` and OpenAI's `json_object`.
pub fn json_object() -> String {
    static GRAMMAR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let convert =
        || from_json_schema(&serde_json::json!({"type": "object"})).expect("the plain object schema converts");
    GRAMMAR.get_or_init(convert).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_becomes_a_grammar_with_a_root_rule() {
        let grammar = from_json_schema(&json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        }))
        .unwrap();
        assert!(grammar.contains("root ::="), "{grammar}");
        assert!(grammar.contains("\"\\\"name\\\"\""), "{grammar}");
        assert!(json_object().contains("root ::="));
    }

    #[test]
    fn compact_allows_one_space_at_most() {
        let grammar = compact(&json_object());
        assert!(grammar.lines().any(|l| l == "space ::= | \" \""), "{grammar}");
        assert_eq!(grammar.matches("space ::=").count(), 1);
    }

    /// Regression (found by the server's fuzzer): a long non-ASCII property name overflowed
    /// the converter's stack and aborted the server.
    #[test]
    fn long_names_convert_and_oversized_schemas_are_refused() {
        let long = json!({"type": "object", "properties": {"é".repeat(60_000): {"type": "string"}}});
        assert!(from_json_schema(&long).unwrap().contains("root ::="));
        let huge = json!({"type": "object", "properties": {"x".repeat(MAX_SCHEMA_BYTES): {"type": "string"}}});
        assert!(from_json_schema(&huge).unwrap_err().to_string().contains("at most"));
    }

    #[test]
    fn schemas_the_converter_cannot_use_are_refused_saying_what_in_them() {
        assert!(from_json_schema(&json!("a string")).is_err());
        let cases = [
            (json!({"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}}), "\"#/nowhere\" points at nothing"),
            (json!({"properties": {"x": {"$ref": "https://example.com/s.json"}}}), "leaves the schema"),
            (json!({"type": "object", "properties": {"x": {"type": "text"}}}), "type \"text\" (at #/properties/x)"),
            (json!({"type": "string", "pattern": "^(a$"}), "pattern \"^(a$\" (at #)"),
            // A property named "type" and a value that looks like a schema are not schemas.
            (
                json!({"properties": {"type": {"type": "string"}, "x": {"$ref": "#/$defs/no"}},
                       "default": {"type": "nonsense"}}),
                "\"#/$defs/no\" points at nothing",
            ),
        ];
        for (schema, why) in cases {
            let error = from_json_schema(&schema).unwrap_err().to_string();
            assert!(error.contains(why), "{schema}: {error}");
            assert!(!error.contains("ffi"), "{error}");
        }
    }
}
