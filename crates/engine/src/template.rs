//! Renders a conversation into the prompt text a model was trained on, using the Jinja chat
//! template stored in its GGUF file, the way Hugging Face's tokenizers render it. llama.cpp's
//! built-in matcher only recognises a fixed list of templates; rendering the template itself
//! works for any model and, later, for tools. A template is code a client can store, so
//! every render is bounded: in instructions (minijinja's fuel), output size and time, and
//! it stops as soon as its caller goes away.

use crate::limits;
use crate::prepare::Cancellation;
use hearth_core::clock::civil_from_days;
use hearth_core::ChatMessage;
use minijinja::{context, Environment, Error, ErrorKind, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const TEMPLATE_NAME: &str = "chat";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the model's chat template does not parse: {0}")]
    Parse(String),
    #[error("the model's chat template failed to render: {0}")]
    Render(String),
    #[error("the model's chat template took more than its {} instructions to render; fix the template (hearth show --modelfile)", limits::RENDER_FUEL)]
    OutOfFuel,
    #[error("the model's chat template rendered more than {0} bytes, more than the context can hold")]
    TooLong(usize),
    #[error("the model's chat template took more than {} s to render", limits::RENDER_TIME.as_secs())]
    TimedOut,
    #[error("rendering was given up: its caller went away")]
    Cancelled,
}

/// What one render may use up before it is stopped.
pub struct RenderLimits<'a> {
    max_bytes: usize,
    deadline: Instant,
    cancel: &'a Cancellation,
}

impl<'a> RenderLimits<'a> {
    pub fn new(max_bytes: usize, cancel: &'a Cancellation) -> Self {
        Self { max_bytes, deadline: Instant::now() + limits::RENDER_TIME, cancel }
    }
}

/// Collects a render's output, and fails the render once it is too long, too late or no
/// longer wanted (minijinja checks the writer at every piece of output).
struct BoundedOutput<'a> {
    text: Vec<u8>,
    limits: &'a RenderLimits<'a>,
    stopped: Option<TemplateError>,
}

impl std::io::Write for BoundedOutput<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let stop = if self.text.len() + bytes.len() > self.limits.max_bytes {
            Some(TemplateError::TooLong(self.limits.max_bytes))
        } else if self.limits.cancel.is_cancelled() {
            Some(TemplateError::Cancelled)
        } else if Instant::now() > self.limits.deadline {
            Some(TemplateError::TimedOut)
        } else {
            None
        };
        if let Some(stop) = stop {
            self.stopped = Some(stop);
            return Err(std::io::Error::other("render stopped"));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a model turns a conversation into prompt text.
#[derive(Debug)]
pub struct ChatTemplate {
    /// `None` for models without a template (base models): messages become plain text.
    env: Option<Environment<'static>>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// `source` is the model's `tokenizer.chat_template`; the token texts are what the
    /// template sees as `bos_token` and `eos_token`.
    pub fn new(source: Option<&str>, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let env = source.map(build_environment).transpose()?;
        Ok(Self { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    pub fn has_template(&self) -> bool {
        self.env.is_some()
    }

    /// The prompt text for a conversation, ending with the cue for the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, TemplateError> {
        self.render_with_tools(messages, &[])
    }

    /// Like [`ChatTemplate::render`], with function definitions (OpenAI's `tools` entries)
    /// the template shows the model, as transformers passes them.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: &[serde_json::Value],
    ) -> Result<String, TemplateError> {
        let never = Cancellation::never();
        self.render_limited(messages, tools, None, &RenderLimits::new(usize::MAX, &never))
    }

    /// Like [`ChatTemplate::render_with_tools`], stopped at `limits`. `thinking` is given
    /// to the template as `enable_thinking` (Qwen3's templates read it) when set.
    pub fn render_limited(
        &self,
        messages: &[ChatMessage],
        tools: &[serde_json::Value],
        thinking: Option<bool>,
        limits: &RenderLimits<'_>,
    ) -> Result<String, TemplateError> {
        match &self.env {
            Some(env) => self.render_with(env, messages, tools, thinking, limits),
            None => Ok(plain_completion(messages)),
        }
    }

    fn render_with(
        &self,
        env: &Environment<'static>,
        messages: &[ChatMessage],
        tools: &[serde_json::Value],
        thinking: Option<bool>,
        limits: &RenderLimits<'_>,
    ) -> Result<String, TemplateError> {
        let messages: Vec<Value> = messages.iter().map(message_value).collect();
        // transformers passes `tools=None` when there are none; templates test for that.
        let tools = (!tools.is_empty()).then(|| Value::from_serialize(tools));
        let template = env.get_template(TEMPLATE_NAME).map_err(|e| TemplateError::Parse(describe(&e)))?;
        let mut out = BoundedOutput { text: Vec::new(), limits, stopped: None };
        let context = context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        // Left undefined unless asked: templates test `enable_thinking is defined`.
        let context = match thinking {
            Some(enable_thinking) => context! { enable_thinking, ..context },
            None => context,
        };
        let rendered = template.render_captured_to(context, &mut out);
        match rendered {
            Ok(_) => String::from_utf8(out.text).map_err(|e| TemplateError::Render(e.to_string())),
            Err(_) if out.stopped.is_some() => Err(out.stopped.expect("checked")),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(TemplateError::OutOfFuel),
            Err(e) => Err(TemplateError::Render(describe(&e))),
        }
    }
}

/// A message as transformers gives it to templates: tool calls in OpenAI's shape with
/// arguments as an object, and keys a message lacks left undefined.
fn message_value(message: &ChatMessage) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("role".into(), message.role.as_str().into());
    fields.insert("content".into(), message.content.as_str().into());
    if !message.tool_calls.is_empty() {
        let calls = message
            .tool_calls
            .iter()
            .map(|call| {
                serde_json::json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        fields.insert("tool_calls".into(), serde_json::Value::Array(calls));
    }
    if let Some(id) = &message.tool_call_id {
        fields.insert("tool_call_id".into(), id.as_str().into());
    }
    if let Some(name) = &message.tool_name {
        fields.insert("name".into(), name.as_str().into());
    }
    Value::from_serialize(&fields)
}

/// A model without a chat template is a text continuer: the conversation is its messages'
/// text, one paragraph each, for the model to carry on.
fn plain_completion(messages: &[ChatMessage]) -> String {
    messages.iter().map(|m| m.content.as_str()).filter(|c| !c.is_empty()).collect::<Vec<_>>().join("\n\n")
}

fn build_environment(source: &str) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_fuel(Some(limits::RENDER_FUEL));
    // The settings transformers renders chat templates with.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    minijinja_contrib::add_to_environment(&mut env);
    // Templates are Python-flavoured: `.strip()`, `.startswith()`, `.items()`, ...
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, message))
    });
    env.add_function("strftime_now", |format: String| strftime_now(&format));
    env.add_template_owned(TEMPLATE_NAME, source.to_string()).map_err(|e| TemplateError::Parse(describe(&e)))?;
    Ok(env)
}

fn describe(e: &Error) -> String {
    match e.detail() {
        Some(detail) => format!("{} ({detail})", e.kind()),
        None => e.to_string(),
    }
}

/// The subset of C's strftime that chat templates use to print today's date (UTC).
fn strftime_now(format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let (hour, minute) = ((secs / 3600) % 24, (secs / 60) % 60);
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('B') => out.push_str(month_name),
            Some('b') => out.push_str(&month_name[..3]),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_thinking_reaches_the_template_only_when_asked() {
        let source = "{% if enable_thinking is defined and enable_thinking is false %}off{% elif enable_thinking is defined %}on{% else %}unset{% endif %}";
        let t = ChatTemplate::new(Some(source), "", "").unwrap();
        let never = Cancellation::never();
        let render = |thinking| {
            t.render_limited(&[ChatMessage::user("x")], &[], thinking, &RenderLimits::new(usize::MAX, &never)).unwrap()
        };
        assert_eq!(
            (render(None), render(Some(true)), render(Some(false))),
            ("unset".into(), "on".into(), "off".into())
        );
    }

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_generation_prompt() {
        let t = ChatTemplate::new(Some(CHATML), "<s>", "</s>").unwrap();
        let text = t.render(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")]).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_special_tokens_work() {
        let source = "{{ bos_token }}{% for m in messages %}{{ m['content'].strip().upper() }}{% if m.content.startswith(' ') %}!{% endif %}{% endfor %}{{ eos_token }}";
        let t = ChatTemplate::new(Some(source), "<bos>", "<eos>").unwrap();
        let text = t.render(&[ChatMessage::user("  hello ")]).unwrap();
        assert_eq!(text, "<bos>HELLO!<eos>");
    }

    #[test]
    fn raise_exception_becomes_a_render_error_with_its_message() {
        let source = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}";
        let t = ChatTemplate::new(Some(source), "", "").unwrap();
        let err = t.render(&[ChatMessage::assistant("x")]).unwrap_err();
        assert!(err.to_string().contains("Conversation must start with user"), "{err}");
    }

    #[test]
    fn tools_and_tool_calls_reach_the_template() {
        let source = "{% if tools %}[{% for t in tools %}{{ t.function.name }}{% endfor %}]{% endif %}{% for m in messages %}{% if m.tool_calls is defined %}{% for c in m.tool_calls %}{{ c.function.name }}({{ c.function.arguments.city }}){% endfor %}{% elif m.role == 'tool' %}<{{ m.name }}:{{ m.content }}>{% else %}{{ m.content }}{% endif %}{% endfor %}";
        let t = ChatTemplate::new(Some(source), "", "").unwrap();
        let mut call = ChatMessage::assistant("");
        call.tool_calls = vec![hearth_core::ToolCall {
            id: "call_1".into(),
            name: "weather".into(),
            arguments: serde_json::json!({"city": "Paris"}),
        }];
        let mut result = ChatMessage::new(hearth_core::Role::Other("tool".into()), "18C");
        result.tool_name = Some("weather".into());
        let tools = [serde_json::json!({"type": "function", "function": {"name": "weather"}})];
        let chat = [ChatMessage::user("Weather?"), call, result];
        assert_eq!(t.render_with_tools(&chat, &tools).unwrap(), "[weather]Weather?weather(Paris)<weather:18C>");
        assert_eq!(t.render(&chat).unwrap(), "Weather?weather(Paris)<weather:18C>");
    }

    /// A stored template is code from a client: one that never ends is stopped, by fuel
    /// when it writes nothing, by the size cap when it writes, and by its caller leaving.
    #[test]
    fn a_template_that_never_ends_is_stopped() {
        let silent = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}";
        let t = ChatTemplate::new(Some(silent), "", "").unwrap();
        assert!(matches!(t.render(&[ChatMessage::user("x")]), Err(TemplateError::OutOfFuel)));

        let loud = "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}";
        let t = ChatTemplate::new(Some(loud), "", "").unwrap();
        let never = Cancellation::never();
        let limited = RenderLimits::new(1 << 20, &never);
        let err = t.render_limited(&[ChatMessage::user("x")], &[], None, &limited).unwrap_err();
        assert!(matches!(err, TemplateError::TooLong(_)), "{err}");

        let cancel = Cancellation::new();
        cancel.cancel();
        let err = t
            .render_limited(&[ChatMessage::user("x")], &[], None, &RenderLimits::new(usize::MAX, &cancel))
            .unwrap_err();
        assert!(matches!(err, TemplateError::Cancelled), "{err}");
    }

    /// A template that recurses without end stops at minijinja's recursion limit, within
    /// the 2 MiB stack of the blocking threads prompts are rendered on.
    #[test]
    fn a_template_that_recurses_without_end_is_an_error_on_a_small_stack() {
        let source = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        let t = ChatTemplate::new(Some(source), "", "").unwrap();
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || t.render(&[ChatMessage::user("x")]).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .unwrap();
        assert!(result.unwrap_err().contains("recursion limit"));
    }

    #[test]
    fn a_broken_template_is_a_parse_error() {
        assert!(matches!(ChatTemplate::new(Some("{% for %}"), "", ""), Err(TemplateError::Parse(_))));
    }

    #[test]
    fn no_template_gives_plain_text() {
        let t = ChatTemplate::new(None, "<bos>", "<eos>").unwrap();
        let chat = [ChatMessage::system("Context."), ChatMessage::user("Once upon a time")];
        assert_eq!(t.render(&chat).unwrap(), "Context.\n\nOnce upon a time");
    }

    #[test]
    fn strftime_now_formats_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
        let today = strftime_now("%d %b %Y|%%");
        assert_eq!(today.len(), "21 Nov 2026|%".len(), "{today}");
    }
}
