//! Tool calling for both dialects. A model whose chat template knows tools sees them through
//! its template and answers in its own format (`<tool_call>` blocks, or a bare call object);
//! any other model is told the tools in a system message and answers in JSON under a
//! grammar (llama.cpp's "generic" format), so even a small model's calls always parse.

use crate::format::schema_grammar;
use hearth_core::{ChatMessage, Role, SamplingParams, ToolCall};
use hearth_engine::grammar;
use serde_json::{json, Map, Value};

/// OpenAI's `tool_choice` (Ollama always means `Auto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Auto,
    None,
    Required,
    Function(String),
}

impl Choice {
    /// `"auto"`, `"none"`, `"required"`, or `{"type": "function", "function": {"name": ...}}`.
    pub fn parse(value: Option<&Value>) -> Result<Self, String> {
        match value {
            None | Some(Value::Null) => Ok(Self::Auto),
            Some(Value::String(s)) => match s.as_str() {
                "auto" => Ok(Self::Auto),
                "none" => Ok(Self::None),
                "required" => Ok(Self::Required),
                other => Err(format!("tool_choice {other:?} is not one of auto, none, required")),
            },
            Some(object) => object
                .pointer("/function/name")
                .and_then(Value::as_str)
                .map(|name| Self::Function(name.to_string()))
                .ok_or_else(|| format!("tool_choice {object} names no function")),
        }
    }
}

/// How the model was asked to use tools, to read its answer back.
#[derive(Debug, Clone)]
pub struct ToolUse {
    format: Format,
    names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The model's template shows the tools; calls come back in the model's own format.
    Native,
    /// `{"tool_calls": [...]}` or `{"response": "..."}`, under a grammar.
    Generic,
}

/// Checks `tools` (OpenAI's and Ollama's shape: `{"type": "function", "function": {"name",
/// "description", "parameters"}}`) and prepares the request to use them. Returns `None` when
/// there are no tools or the choice is `none`.
pub fn prepare(
    tools: &[Value],
    choice: &Choice,
    parallel: bool,
    template: Option<&str>,
    conversation: &mut Vec<ChatMessage>,
    sampling: &mut SamplingParams,
) -> Result<Option<(ToolUse, Vec<Value>)>, String> {
    if tools.is_empty() || *choice == Choice::None {
        return Ok(None);
    }
    let mut names = Vec::with_capacity(tools.len());
    for (index, tool) in tools.iter().enumerate() {
        let name = tool.pointer("/function/name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(format!("tools[{index}] has no function name"));
        };
        if tool.get("type").and_then(Value::as_str).is_some_and(|t| t != "function") {
            return Err(format!("tools[{index}]: only tools of type function are supported"));
        }
        names.push(name.to_string());
    }
    let allowed: Vec<&Value> = match choice {
        Choice::Function(name) => {
            let tool = tools.iter().zip(&names).find(|(_, n)| *n == name).map(|(t, _)| t);
            vec![tool.ok_or_else(|| format!("tool_choice names {name}, which is not among the tools"))?]
        }
        _ => tools.iter().collect(),
    };
    let forced = matches!(choice, Choice::Required | Choice::Function(_));
    if sampling.grammar.is_some() {
        return Err("tools cannot be combined with a response format".into());
    }
    let native = template.is_some_and(|t| t.contains("tools"));
    if native {
        if forced {
            let call = call_schema(&allowed, "arguments");
            let call = grammar::compact(&schema_grammar(&call).map_err(|e| in_tools(e, &names))?);
            sampling.grammar = Some(if template.is_some_and(|t| t.contains("<tool_call>")) {
                wrap_root(&call, "\"<tool_call>\\n\"", "\"\\n</tool_call>\"")
            } else {
                call
            });
        }
        let use_ = ToolUse { format: Format::Native, names };
        return Ok(Some((use_, tools.to_vec())));
    }
    let schema = generic_schema(&allowed, parallel, forced);
    sampling.grammar = Some(grammar::compact(&schema_grammar(&schema).map_err(|e| in_tools(e, &names))?));
    let definitions: Vec<&Value> = allowed.iter().map(|t| t.get("function").unwrap_or(t)).collect();
    let instructions = format!(
        "You can call these tools:\n{}\n\nAnswer with one JSON object. To call tools: \
         {{\"tool_calls\": [{{\"name\": \"<tool name>\", \"arguments\": {{...}}}}]}}{}",
        serde_json::to_string_pretty(&definitions).expect("json"),
        if forced { "." } else { ". To answer directly: {\"response\": \"<your answer>\"}." }
    );
    match conversation.iter_mut().find(|m| m.role == Role::System) {
        Some(system) => system.content = format!("{}\n\n{instructions}", system.content),
        None => conversation.insert(0, ChatMessage::system(instructions)),
    }
    for message in conversation.iter_mut() {
        generic_history(message);
    }
    Ok(Some((ToolUse { format: Format::Generic, names }, Vec::new())))
}

/// The schema of an answer in the generic format: `{"tool_calls": [...]}` (one call at most
/// unless `parallel`), or, unless a call is `forced`, `{"response": "..."}`.
fn generic_schema(allowed: &[&Value], parallel: bool, forced: bool) -> Value {
    let mut call = call_schema(allowed, "arguments");
    // The definitions the call's parameters refer to sit at the root of the whole schema.
    let definitions = call.as_object_mut().and_then(|c| c.remove("$defs"));
    let mut variants = vec![json!({
        "type": "object",
        "properties": {"tool_calls": {"type": "array", "items": call, "minItems": 1}},
        "required": ["tool_calls"],
    })];
    if !parallel {
        variants[0]["properties"]["tool_calls"]["maxItems"] = json!(1);
    }
    if !forced {
        variants.push(json!({
            "type": "object",
            "properties": {"response": {"type": "string"}},
            "required": ["response"],
        }));
    }
    let mut schema = json!({"anyOf": variants});
    if let Some(definitions) = definitions {
        schema["$defs"] = definitions;
    }
    schema
}

/// Earlier turns in the generic format: calls as the JSON the model would have written,
/// results as user messages (every template knows that role).
fn generic_history(message: &mut ChatMessage) {
    if !message.tool_calls.is_empty() {
        let calls: Vec<Value> =
            message.tool_calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect();
        message.content = json!({"tool_calls": calls}).to_string();
        message.tool_calls.clear();
    } else if message.role == Role::Other("tool".into()) {
        let tool = message.tool_name.take().or_else(|| message.tool_call_id.take());
        message.content = json!({"tool_response": {"tool": tool, "content": message.content}}).to_string();
        message.role = Role::User;
    }
}

/// A schema error met while converting the tools' parameters, saying so.
fn in_tools(error: String, names: &[String]) -> String {
    format!("the parameters of the tools ({}) cannot be used: {error}", names.join(", "))
}

/// A JSON schema of one call to any of `tools`, with the definitions their parameters refer
/// to in its `$defs`.
fn call_schema(tools: &[&Value], arguments: &str) -> Value {
    let mut definitions = Map::new();
    let variants: Vec<Value> = tools
        .iter()
        .enumerate()
        .map(|(index, tool)| {
            let function = tool.get("function").unwrap_or(tool);
            let parameters = function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}));
            let parameters = hoist_definitions(parameters, &format!("tool{index}"), &mut definitions);
            json!({
                "type": "object",
                "properties": {"name": {"const": function["name"]}, arguments: parameters},
                "required": ["name", arguments],
            })
        })
        .collect();
    let mut schema =
        if variants.len() == 1 { variants.into_iter().next().expect("one") } else { json!({"anyOf": variants}) };
    if !definitions.is_empty() {
        schema["$defs"] = Value::Object(definitions);
    }
    schema
}

/// Parameters that refer into themselves (`"$ref": "#/$defs/Address"`, as pydantic writes
/// every nested model) stop resolving once nested in a call schema, whose root is another.
/// Their `$defs` (or draft-07 `definitions`) move into `definitions` under names of their
/// own (`tool0_Address`), a reference to anything else of theirs (`#`, `#/properties/...`)
/// points into a copy of them there (`tool0`), and every reference follows.
fn hoist_definitions(mut parameters: Value, prefix: &str, definitions: &mut Map<String, Value>) -> Value {
    let mut own = Map::new();
    if let Some(object) = parameters.as_object_mut() {
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(defs)) = object.remove(key) {
                own.extend(defs);
            }
        }
    }
    let mut refers_to_root = false;
    let mut rewrite = |value: &mut Value| rewrite_refs(value, prefix, &mut refers_to_root);
    rewrite(&mut parameters);
    for (name, mut definition) in own {
        rewrite(&mut definition);
        definitions.insert(format!("{prefix}_{name}"), definition);
    }
    if refers_to_root {
        definitions.insert(prefix.to_string(), parameters.clone());
    }
    parameters
}

/// Every local `$ref` in `value` rewritten for [`hoist_definitions`]; notes whether any
/// points at the parameters themselves rather than their definitions.
fn rewrite_refs(value: &mut Value, prefix: &str, refers_to_root: &mut bool) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(target)) = object.get_mut("$ref") {
                let local = ["#/$defs/", "#/definitions/"].iter().find_map(|p| target.strip_prefix(p));
                if let Some(rest) = local {
                    *target = format!("#/$defs/{prefix}_{rest}");
                } else if let Some(rest) = target.strip_prefix('#') {
                    *target = format!("#/$defs/{prefix}{rest}");
                    *refers_to_root = true;
                }
            }
            object.values_mut().for_each(|v| rewrite_refs(v, prefix, refers_to_root));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix, refers_to_root)),
        _ => {}
    }
}

/// `grammar` with its root between two literals.
fn wrap_root(grammar: &str, before: &str, after: &str) -> String {
    let renamed: Vec<String> = grammar
        .lines()
        .map(|line| match line.strip_prefix("root ::=") {
            Some(rest) => format!("call ::={rest}"),
            None => line.to_string(),
        })
        .collect();
    format!("root ::= {before} call {after}\n{}", renamed.join("\n"))
}

impl ToolUse {
    /// The answer's text outside any calls, and the calls.
    pub fn parse(&self, text: &str) -> (String, Vec<ToolCall>) {
        match self.format {
            Format::Generic => parse_generic(text),
            Format::Native => self.parse_native(text),
        }
    }

    fn parse_native(&self, text: &str) -> (String, Vec<ToolCall>) {
        if text.contains("<tool_call>") {
            let mut calls = Vec::new();
            let mut content = String::new();
            let mut rest = text;
            while let Some(start) = rest.find("<tool_call>") {
                content.push_str(&rest[..start]);
                let body = &rest[start + "<tool_call>".len()..];
                let (inside, after) = body.split_once("</tool_call>").unwrap_or((body, ""));
                match serde_json::from_str::<Value>(inside.trim()).ok().and_then(|v| call_from(&v)) {
                    Some(call) => calls.push(call),
                    None => content.push_str(&rest[start..rest.len() - after.len()]),
                }
                rest = after;
            }
            content.push_str(rest);
            return (content.trim().to_string(), calls);
        }
        let trimmed = text.trim().trim_start_matches("[TOOL_CALLS]").trim();
        match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(items)) => {
                let calls: Option<Vec<ToolCall>> = items.iter().map(call_from).collect();
                match calls {
                    Some(calls) if !calls.is_empty() && calls.iter().all(|c| self.names.contains(&c.name)) => {
                        (String::new(), calls)
                    }
                    _ => (text.to_string(), Vec::new()),
                }
            }
            Ok(value) => match call_from(&value).filter(|c| self.names.contains(&c.name)) {
                Some(call) => (String::new(), vec![call]),
                None => (text.to_string(), Vec::new()),
            },
            Err(_) => (text.to_string(), Vec::new()),
        }
    }
}

fn parse_generic(text: &str) -> (String, Vec<ToolCall>) {
    let Ok(value) = serde_json::from_str::<Value>(text.trim()) else {
        return (cut_short(text), Vec::new());
    };
    if let Some(calls) = value.get("tool_calls").and_then(Value::as_array) {
        return (String::new(), calls.iter().filter_map(call_from).collect());
    }
    match value.get("response") {
        Some(Value::String(response)) => (response.clone(), Vec::new()),
        _ => (text.to_string(), Vec::new()),
    }
}

/// An answer in the generic format that the token limit cut off: the text of a
/// `{"response": "...` so far, decoded; nothing of calls that never closed (the wrapper is
/// hearth's, never the model's words).
fn cut_short(text: &str) -> String {
    let object = text.trim_start().strip_prefix('{').unwrap_or_default().trim_start();
    let Some(response) = object.strip_prefix("\"response\"") else { return String::new() };
    let Some(started) = response.trim_start().strip_prefix(':').map(str::trim_start) else { return String::new() };
    let Some(string) = started.strip_prefix('"') else { return String::new() };
    // The grammar kept it valid JSON up to the cut, so only its last few characters (an
    // escape, at most a surrogate pair's twelve) can be incomplete.
    let ends: Vec<usize> = string.char_indices().map(|(i, _)| i).chain([string.len()]).collect();
    for &end in ends.iter().rev().take(13) {
        if let Ok(decoded) = serde_json::from_str::<String>(&format!("\"{}\"", &string[..end])) {
            return decoded;
        }
    }
    String::new()
}

/// A call from `{"name", "arguments"}` (or Llama 3's `"parameters"`); arguments given as a
/// JSON string are parsed.
fn call_from(value: &Value) -> Option<ToolCall> {
    let name = value.get("name")?.as_str()?.to_string();
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        Some(arguments) => arguments.clone(),
        None => Value::Object(Map::new()),
    };
    Some(ToolCall { id: call_id(), name, arguments })
}

/// `call_` and 24 random alphanumerics, like OpenAI's ids.
pub fn call_id() -> String {
    crate::dialects::hearth::random_id("call")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Value {
        json!({"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }})
    }

    #[test]
    fn a_template_without_tools_gets_instructions_and_a_grammar() {
        let mut conversation = vec![ChatMessage::user("Weather in Paris?")];
        let mut sampling = SamplingParams::default();
        let (use_, shown) =
            prepare(&[weather()], &Choice::Auto, true, Some("{{ messages }}"), &mut conversation, &mut sampling)
                .unwrap()
                .unwrap();
        assert!(shown.is_empty(), "the template is not shown the tools");
        assert_eq!(conversation[0].role, Role::System);
        assert!(conversation[0].content.contains("get_weather"));
        assert!(sampling.grammar.as_deref().unwrap().contains("tool_calls"));
        let (content, calls) =
            use_.parse(r#"{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}"#);
        assert_eq!((content.as_str(), calls.len()), ("", 1));
        assert_eq!((calls[0].name.as_str(), &calls[0].arguments), ("get_weather", &json!({"city": "Paris"})));
        assert!(calls[0].id.starts_with("call_") && calls[0].id.len() == 29);
        assert_eq!(use_.parse(r#"{"response": "Sunny."}"#), ("Sunny.".into(), vec![]));
    }

    /// Regression: an answer cut off by the token limit while tools were offered showed
    /// hearth's wrapper (`{"response": ...` or `{"tool_calls": ...`) as its content.
    #[test]
    fn an_answer_cut_short_shows_the_model_s_words_and_no_wrapper() {
        let cases = [
            (r#"{"response": "Sun"#, "Sun"),
            (r#"{"response":"It is \"hot"#, "It is \"hot"),
            (r#"{"response": "Line\"#, "Line"),
            (r#"{"response": "caf\u00"#, "caf"),
            (r#"{"response": "smile \ud83d\ude0"#, "smile "),
            (r#"{"response": "#, ""),
            (r#"{"tool_calls": [{"name": "get_wea"#, ""),
            (r#"{"#, ""),
        ];
        for (text, shown) in cases {
            assert_eq!(parse_generic(text), (shown.to_string(), vec![]), "{text}");
        }
    }

    #[test]
    fn a_template_with_tools_sees_them_and_its_calls_are_read_back() {
        let template = "{% if tools %}{{ tools }}{% endif %}<tool_call>";
        let mut conversation = vec![ChatMessage::user("Weather?")];
        let mut sampling = SamplingParams::default();
        let (use_, shown) =
            prepare(&[weather()], &Choice::Auto, true, Some(template), &mut conversation, &mut sampling)
                .unwrap()
                .unwrap();
        assert_eq!((shown.len(), conversation.len(), sampling.grammar.is_none()), (1, 1, true));
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
        let (content, calls) = use_.parse(text);
        assert_eq!((content.as_str(), calls[0].arguments["city"].as_str()), ("Let me check.", Some("Oslo")));
        let (_, calls) = use_.parse(r#"{"name": "get_weather", "parameters": "{\"city\": \"Rome\"}"}"#);
        assert_eq!(calls[0].arguments, json!({"city": "Rome"}));
        let (content, calls) = use_.parse(r#"{"name": "other", "arguments": {}}"#);
        assert!(calls.is_empty() && content.contains("other"), "an unknown function is text");
        // Required: the grammar wraps the call in the template's tags.
        let mut sampling = SamplingParams::default();
        prepare(&[weather()], &Choice::Required, true, Some(template), &mut conversation, &mut sampling).unwrap();
        assert!(sampling.grammar.unwrap().starts_with("root ::= \"<tool_call>\\n\" call"));
    }

    /// What pydantic writes for a model with a nested model: the nested one in `$defs`.
    fn pydantic_tool(name: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "parameters": {
            "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            "type": "object",
            "properties": {"name": {"type": "string"}, "home": {"$ref": "#/$defs/Address"}},
            "required": ["name", "home"],
        }}})
    }

    /// Regression: a tool whose parameters use `$defs`/`$ref` (pydantic, instructor,
    /// `openai.pydantic_function_tool`) was refused with "ffi error -3", while the same
    /// schema worked as a response format.
    #[test]
    fn tool_parameters_with_defs_and_refs_become_grammars() {
        let recursive = json!({"type": "function", "function": {"name": "tree", "parameters": {
            "type": "object", "properties": {"label": {"type": "string"},
                                             "children": {"type": "array", "items": {"$ref": "#"}}},
            "definitions": {"Unused": {"type": "integer"}},
        }}});
        for tools in [vec![pydantic_tool("save")], vec![pydantic_tool("save"), pydantic_tool("keep"), recursive]] {
            for (template, choice) in
                [(None, Choice::Auto), (None, Choice::Required), (Some("{{ tools }}"), Choice::Required)]
            {
                let mut conversation = vec![ChatMessage::user("Save Ann from Oslo.")];
                let mut sampling = SamplingParams::default();
                let prepared = prepare(&tools, &choice, true, template, &mut conversation, &mut sampling);
                assert!(prepared.is_ok(), "{template:?} {choice:?}: {prepared:?}");
                let grammar = sampling.grammar.unwrap();
                assert!(grammar.contains("tool0-Address") && grammar.contains("city"), "{grammar}");
            }
        }
        let schema = call_schema(&[&pydantic_tool("save")], "arguments");
        assert_eq!(schema["properties"]["arguments"]["properties"]["home"]["$ref"], "#/$defs/tool0_Address");
        assert!(
            schema["$defs"]["tool0_Address"].is_object() && schema["properties"]["arguments"].get("$defs").is_none()
        );
    }

    #[test]
    fn unusable_tool_parameters_are_refused_naming_the_problem() {
        let broken = json!({"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"x": {"$ref": "#/$defs/Missing"}}}}});
        let mut conversation = vec![ChatMessage::user("x")];
        let error = prepare(&[broken], &Choice::Auto, true, None, &mut conversation, &mut SamplingParams::default())
            .unwrap_err();
        assert!(error.contains("tools (f)") && error.contains("Missing") && !error.contains("ffi"), "{error}");
    }

    #[test]
    fn bad_tools_and_choices_are_refused() {
        let mut sampling = SamplingParams::default();
        let mut conversation = vec![ChatMessage::user("x")];
        let no_name = json!({"type": "function", "function": {"description": "?"}});
        assert!(prepare(&[no_name], &Choice::Auto, true, None, &mut conversation, &mut sampling).is_err());
        let missing = Choice::Function("nope".into());
        assert!(prepare(&[weather()], &missing, true, None, &mut conversation, &mut sampling).is_err());
        assert!(prepare(&[weather()], &Choice::None, true, None, &mut conversation, &mut sampling).unwrap().is_none());
        assert!(Choice::parse(Some(&json!("sometimes"))).is_err());
        assert_eq!(
            Choice::parse(Some(&json!({"type": "function", "function": {"name": "f"}}))).unwrap(),
            Choice::Function("f".into())
        );
    }

    #[test]
    fn earlier_calls_and_results_are_replayed_in_the_generic_format() {
        let mut call = ChatMessage::assistant("");
        call.tool_calls = vec![ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: json!({}) }];
        let mut result = ChatMessage::new(Role::Other("tool".into()), "18C");
        result.tool_call_id = Some("call_1".into());
        let mut conversation = vec![ChatMessage::user("Weather?"), call, result];
        let mut sampling = SamplingParams::default();
        prepare(&[weather()], &Choice::Auto, true, None, &mut conversation, &mut sampling).unwrap();
        assert!(conversation[2].content.starts_with(r#"{"tool_calls":"#), "{}", conversation[2].content);
        assert_eq!(conversation[3].role, Role::User);
        assert!(conversation[3].content.contains("tool_response"));
    }
}
