//! Grammars that constrain decoding, in llama.cpp's GBNF: converted from a JSON schema by
//! llama.cpp's own converter, so structured output always parses and validates.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JSON schema cannot be used to constrain the answer: {0}")]
pub struct SchemaError(String);

/// The GBNF grammar whose sentences are exactly the JSON documents `schema` accepts.
pub fn from_json_schema(schema: &Value) -> Result<String, SchemaError> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(SchemaError(format!("a schema is an object, got {schema}")));
    }
    let text = serde_json::to_string(schema).expect("a JSON value serializes");
    llama_cpp_2::json_schema_to_grammar(&text).map_err(|e| SchemaError(e.to_string()))
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
    from_json_schema(&serde_json::json!({"type": "object"})).expect("the plain object schema converts")
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

    #[test]
    fn schemas_the_converter_cannot_use_are_refused() {
        assert!(from_json_schema(&json!("a string")).is_err());
        assert!(from_json_schema(&json!({"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}})).is_err());
    }
}
