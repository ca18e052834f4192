//! A response in the Responses API's shapes: one `response` object, or its semantic events
//! (`response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`..., the `.done` events,
//! `response.completed` or `response.incomplete`), each numbered. An answer that may hold
//! function calls is read whole first, then sent as items. A response is kept for `GET` and
//! `previous_response_id` unless the request said `store: false`.

use super::stored::{Kept, Responses};
use super::wire::{
    CreateBody, Event, IncompleteDetails, InputTokensDetails, OutputItem, OutputText, OutputTokensDetails, Response,
    Sequenced, ToolChoice, Usage,
};
use crate::dialects::hearth::{self, Energy};
use crate::dialects::openai::{self, OpenAiError};
use crate::service::{self, Finished, Lease, Piece};
use crate::tools::ToolUse;
use crate::AppState;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use hearth_core::{ChatMessage, FinishReason, GenerateRequest, ToolCall};
use std::sync::Arc;
use std::time::SystemTime;

/// How one response goes back, and where it is kept.
pub struct Reply {
    /// The response as it starts: its id and the request's settings, no output yet.
    started: Response,
    streaming: bool,
    /// The conversation so far, instructions aside, for a later `previous_response_id`.
    history: Vec<ChatMessage>,
    responses: Arc<Responses>,
}

impl Reply {
    pub fn new(body: &CreateBody, history: Vec<ChatMessage>, responses: Arc<Responses>) -> Self {
        let started = Response {
            id: hearth::random_id("resp"),
            object: "response",
            created_at: hearth::unix_seconds(SystemTime::now()),
            status: "in_progress",
            error: None,
            incomplete_details: None,
            instructions: body.instructions.clone(),
            max_output_tokens: body.max_output_tokens,
            model: body.model.clone(),
            output: Vec::new(),
            parallel_tool_calls: body.parallel_tool_calls.unwrap_or(true),
            previous_response_id: body.previous_response_id.clone(),
            temperature: body.temperature,
            top_p: body.top_p,
            tool_choice: body.tool_choice.clone().unwrap_or(ToolChoice::Mode("auto".into())),
            tools: body.tools.clone(),
            text: body.text.clone().unwrap_or_default(),
            store: body.store.unwrap_or(true),
            metadata: body.metadata.clone().unwrap_or_default(),
            usage: None,
        };
        Self { started, streaming: body.stream.unwrap_or(false), history, responses }
    }

    /// The response once the answer is whole, kept unless `store: false`.
    fn finish(&self, text: &str, calls: &[ToolCall], message_id: String, finished: &Finished) -> Response {
        let cut = finished.finish_reason == FinishReason::Length && calls.is_empty();
        let mut response = self.started.clone();
        response.status = if cut { "incomplete" } else { "completed" };
        response.incomplete_details = cut.then_some(IncompleteDetails { reason: "max_output_tokens" });
        response.output = output(text, calls, message_id, response.status);
        response.usage = Some(usage(finished));
        if response.store {
            let mut conversation = self.history.clone();
            let mut turn = ChatMessage::assistant(text);
            turn.tool_calls = calls.to_vec();
            conversation.push(turn);
            let json = serde_json::to_string(&response).expect("a response serializes");
            self.responses.keep(response.id.clone(), Kept { json, conversation });
        }
        response
    }

    /// The events every stream opens with.
    fn opening(&self) -> [Event; 2] {
        [Event::Created { response: self.started.clone() }, Event::InProgress { response: self.started.clone() }]
    }
}

pub async fn answer(
    state: &AppState,
    lease: Lease,
    request: GenerateRequest,
    tool_use: Option<ToolUse>,
    reply: Reply,
) -> Result<HttpResponse, OpenAiError> {
    let pieces = state.service.generate(lease, request).await?.pieces;
    let message_id = hearth::random_id("msg");
    if !reply.streaming || tool_use.is_some() {
        // Calls are known only once the answer is whole: it is read first, then sent.
        let answer = service::collect(pieces).await?;
        let (text, calls) = service::read_calls(tool_use.as_ref(), answer.text);
        let response = reply.finish(&text, &calls, message_id, &answer.finished);
        if !reply.streaming {
            return Ok(Json(response).into_response());
        }
        let mut events: Vec<Event> = reply.opening().into();
        for (index, item) in response.output.iter().enumerate() {
            events.extend(whole_item(index, item));
        }
        events.push(closing(response));
        return Ok(event_stream(stream::iter(events)));
    }
    let message =
        OutputItem::Message { id: message_id.clone(), status: "in_progress", role: "assistant", content: Vec::new() };
    let text_event = text_events(message_id.clone());
    let mut start: Vec<Event> = reply.opening().into();
    start.push(Event::ItemAdded { output_index: 0, item: message });
    start.push(text_event(TextStep::Added));
    let mut text = String::new();
    let events = pieces.flat_map(move |piece| {
        let events = match piece {
            Piece::Text(delta, _) if delta.is_empty() => Vec::new(),
            Piece::Text(delta, _) => {
                text.push_str(&delta);
                vec![text_event(TextStep::Delta(delta))]
            }
            Piece::Done(finished) => {
                let response = reply.finish(&text, &[], message_id.clone(), &finished);
                let item = response.output[0].clone();
                let done = std::mem::take(&mut text);
                vec![
                    text_event(TextStep::Done(done.clone())),
                    text_event(TextStep::PartDone(done)),
                    Event::ItemDone { output_index: 0, item },
                    closing(response),
                ]
            }
            Piece::Failed(e) => {
                let body = openai::error_body(&e);
                vec![Event::Error { code: body.error.code, message: body.error.message, param: None }]
            }
        };
        stream::iter(events)
    });
    Ok(event_stream(stream::iter(start).chain(events)))
}

/// The steps of the text of the one message a stream carries (output 0, content 0).
enum TextStep {
    Added,
    Delta(String),
    Done(String),
    PartDone(String),
}

fn text_events(item_id: String) -> impl Fn(TextStep) -> Event {
    move |step| {
        let (item_id, output_index, content_index) = (item_id.clone(), 0, 0);
        match step {
            TextStep::Added => {
                Event::PartAdded { item_id, output_index, content_index, part: OutputText::new(String::new()) }
            }
            TextStep::Delta(delta) => {
                Event::TextDelta { item_id, output_index, content_index, delta, logprobs: Vec::new() }
            }
            TextStep::Done(text) => {
                Event::TextDone { item_id, output_index, content_index, text, logprobs: Vec::new() }
            }
            TextStep::PartDone(text) => {
                Event::PartDone { item_id, output_index, content_index, part: OutputText::new(text) }
            }
        }
    }
}

/// The output items of an answer: its text as a message (unless it is only calls), then
/// each call.
fn output(text: &str, calls: &[ToolCall], message_id: String, status: &'static str) -> Vec<OutputItem> {
    let mut items = Vec::with_capacity(calls.len() + 1);
    if !text.is_empty() || calls.is_empty() {
        let content = vec![OutputText::new(text.to_string())];
        items.push(OutputItem::Message { id: message_id, status, role: "assistant", content });
    }
    for call in calls {
        items.push(OutputItem::FunctionCall {
            id: hearth::random_id("fc"),
            call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.to_string(),
            status: "completed",
        });
    }
    items
}

/// An item known whole, as the events that stream it.
fn whole_item(output_index: usize, item: &OutputItem) -> Vec<Event> {
    let done = Event::ItemDone { output_index, item: item.clone() };
    match item {
        OutputItem::Message { id, role, content, .. } => {
            let text = content.first().map(|part| part.text.clone()).unwrap_or_default();
            let (item_id, content_index) = (id.clone(), 0);
            let added = OutputItem::Message { id: id.clone(), status: "in_progress", role, content: Vec::new() };
            vec![
                Event::ItemAdded { output_index, item: added },
                Event::PartAdded {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    part: OutputText::new(String::new()),
                },
                Event::TextDelta {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    delta: text.clone(),
                    logprobs: Vec::new(),
                },
                Event::TextDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    text: text.clone(),
                    logprobs: Vec::new(),
                },
                Event::PartDone { item_id, output_index, content_index, part: OutputText::new(text) },
                done,
            ]
        }
        OutputItem::FunctionCall { id, call_id, name, arguments, .. } => {
            let added = OutputItem::FunctionCall {
                id: id.clone(),
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: String::new(),
                status: "in_progress",
            };
            vec![
                Event::ItemAdded { output_index, item: added },
                Event::ArgumentsDelta { item_id: id.clone(), output_index, delta: arguments.clone() },
                Event::ArgumentsDone { item_id: id.clone(), output_index, arguments: arguments.clone() },
                done,
            ]
        }
    }
}

/// The event that ends a stream: the whole response, completed or incomplete.
fn closing(response: Response) -> Event {
    match response.status {
        "incomplete" => Event::Incomplete { response },
        _ => Event::Completed { response },
    }
}

fn usage(finished: &Finished) -> Usage {
    let usage = &finished.usage;
    Usage {
        input_tokens: usage.prompt_tokens,
        input_tokens_details: InputTokensDetails { cached_tokens: usage.cached_prompt_tokens, cache_write_tokens: 0 },
        output_tokens: usage.completion_tokens,
        output_tokens_details: OutputTokensDetails { reasoning_tokens: 0 },
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
        energy: Energy::of(finished),
    }
}

/// Numbered events as SSE, each named by its type.
fn event_stream(events: impl Stream<Item = Event> + Send + 'static) -> HttpResponse {
    let body = events.enumerate().map(|(sequence_number, event)| {
        let name = event.name();
        let data = serde_json::to_string(&Sequenced { event, sequence_number: sequence_number as u64 }).expect("json");
        Ok::<_, std::convert::Infallible>(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
    });
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], Body::from_stream(body))
        .into_response()
}
