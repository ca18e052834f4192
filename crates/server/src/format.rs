//! Structured output: Ollama's `format` and OpenAI's `response_format` as a grammar the
//! answer is decoded under, so it always parses and validates against the schema. The
//! conversion runs without holding up the async worker it is called on.

use hearth_engine::grammar;
use serde_json::Value;

/// Ollama's `format`: `"json"` (any object) or a JSON schema; `""`/absent means free text.
pub fn ollama(format: Option<&Value>) -> Result<Option<String>, String> {
    match format {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(grammar::json_object())),
        Some(Value::String(other)) => Err(format!("format must be \"json\" or a JSON schema, got {other:?}")),
        Some(schema) => schema_grammar(schema).map(Some),
    }
}

/// llama.cpp's converter on `schema`. A large schema takes a while (and a deep stack, on a
/// thread of its own), so on a multi-threaded runtime tokio is told this worker blocks and
/// moves its other tasks elsewhere meanwhile.
pub fn schema_grammar(schema: &Value) -> Result<String, String> {
    let convert = || grammar::from_json_schema(schema).map_err(|e| e.to_string());
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(convert)
        }
        _ => convert(),
    }
}

/// OpenAI's `response_format`: `{"type": "text"}`, `{"type": "json_object"}`, or
/// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
pub fn openai(response_format: Option<&Value>) -> Result<Option<String>, String> {
    let Some(format) = response_format.filter(|f| !f.is_null()) else { return Ok(None) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(grammar::json_object())),
        Some("json_schema") => {
            let schema =
                format.pointer("/json_schema/schema").ok_or("response_format json_schema needs json_schema.schema")?;
            schema_grammar(schema).map(Some)
        }
        Some(other) => Err(format!("response_format type {other:?} is not one of text, json_object, json_schema")),
        None => Err("response_format needs a type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_dialect_s_forms_map_to_grammars_or_errors() {
        assert_eq!(ollama(None), Ok(None));
        assert_eq!(ollama(Some(&json!(""))), Ok(None));
        assert!(ollama(Some(&json!("json"))).unwrap().is_some());
        assert!(ollama(Some(&json!({"type": "object", "properties": {"a": {"type": "number"}}}))).unwrap().is_some());
        assert!(ollama(Some(&json!("yaml"))).is_err());
        assert_eq!(openai(Some(&json!({"type": "text"}))), Ok(None));
        assert!(openai(Some(&json!({"type": "json_object"}))).unwrap().is_some());
        let schema = json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "integer"}}});
        assert!(openai(Some(&schema)).unwrap().is_some());
        assert!(openai(Some(&json!({"type": "json_schema"}))).is_err());
        assert!(openai(Some(&json!({"type": "xml"}))).is_err());
    }
}
