//! A response in the Responses API's shapes: one `response` object, or its semantic events
//! (`response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`..., the `.done` events,
//! `response.completed` or `response.incomplete`), each numbered. An answer that may hold
//! function calls is read whole first, then sent as items. A response is kept for `GET` and
//! `previous_response_id` unless the request said `store: false`.

use super::stored::{Kept, Responses};
use super::wire::{
    CreateBody, Event, IncompleteDetails, InputTokensDetails, OutputItem, OutputText, OutputTokensDetails,
    ReasoningText, Response, Sequenced, ToolChoice, Usage,
};
use crate::dialects::hearth::{self, Energy};
use crate::dialects::openai::{self, OpenAiError};
use crate::dialects::sse;
use crate::service::{self, Finished, Lease, Piece};
use crate::tools::ToolUse;
use crate::AppState;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use hearth_core::clock::unix_seconds;
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
    /// Whether a thinking model's thinking is sent, as a reasoning item.
    thinking: bool,
}

impl Reply {
    pub fn new(body: &CreateBody, history: Vec<ChatMessage>, responses: Arc<Responses>) -> Self {
        let started = Response {
            id: hearth::random_id("resp"),
            object: "response",
            created_at: unix_seconds(SystemTime::now()),
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
        let thinking = body.thinking(true) != Some(false);
        Self { started, streaming: body.stream.unwrap_or(false), history, responses, thinking }
    }

    /// The response once the answer is whole, kept unless `store: false`.
    fn finish(&self, said: &Said, calls: &[ToolCall], finished: &Finished) -> Response {
        let cut = finished.finish_reason == FinishReason::Length && calls.is_empty();
        let mut response = self.started.clone();
        response.status = if cut { "incomplete" } else { "completed" };
        response.incomplete_details = cut.then_some(IncompleteDetails { reason: "max_output_tokens" });
        response.output = said.output(calls, response.status);
        response.usage = Some(usage(finished));
        if response.store {
            let mut conversation = self.history.clone();
            let mut turn = ChatMessage::assistant(said.text.clone());
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

/// What the model said, with the ids of the items that carry it.
struct Said {
    thinking: String,
    text: String,
    reasoning_id: String,
    message_id: String,
}

impl Said {
    fn new(thinking: String, text: String) -> Self {
        Self { thinking, text, reasoning_id: hearth::random_id("rs"), message_id: hearth::random_id("msg") }
    }

    fn reasoning(&self, status: &'static str) -> OutputItem {
        let content = vec![ReasoningText { kind: "reasoning_text", text: self.thinking.clone() }];
        OutputItem::Reasoning { id: self.reasoning_id.clone(), summary: Vec::new(), content, status }
    }

    fn message(&self, status: &'static str) -> OutputItem {
        let content = vec![OutputText::new(self.text.clone())];
        OutputItem::Message { id: self.message_id.clone(), status, role: "assistant", content }
    }

    /// The output items: the thinking (if any), the text as a message (unless the answer is
    /// only calls), then each call.
    fn output(&self, calls: &[ToolCall], status: &'static str) -> Vec<OutputItem> {
        let mut items = Vec::with_capacity(calls.len() + 2);
        if !self.thinking.is_empty() {
            items.push(self.reasoning("completed"));
        }
        if !self.text.is_empty() || calls.is_empty() {
            items.push(self.message(status));
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
}

pub async fn answer(
    state: &AppState,
    lease: Lease,
    request: GenerateRequest,
    tool_use: Option<ToolUse>,
    reply: Reply,
) -> Result<HttpResponse, OpenAiError> {
    let pieces = state.service.generate(lease, request).await?.pieces;
    if service::read_whole(reply.streaming, tool_use.as_ref()) {
        let (answer, calls) = service::collect_calls(pieces, tool_use.as_ref()).await?;
        let thinking = if reply.thinking { answer.thinking } else { String::new() };
        let response = reply.finish(&Said::new(thinking, answer.text), &calls, &answer.finished);
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
    let opening: Vec<Event> = reply.opening().into();
    let mut streaming = Streaming { said: Said::new(String::new(), String::new()), reasoning: None, message: None };
    let events = pieces.flat_map(move |piece| {
        let events = match piece {
            Piece::Text(delta, _) if delta.is_empty() => Vec::new(),
            Piece::Thinking(_) if !reply.thinking => Vec::new(),
            Piece::Thinking(delta) => streaming.thinking(delta),
            Piece::Text(delta, _) => streaming.text(delta),
            Piece::Done(finished) => streaming.done(&reply, &finished),
            Piece::Failed(e) => {
                let body = openai::error_body(&e);
                vec![Event::Error { code: body.error.code, message: body.error.message, param: None }]
            }
        };
        stream::iter(events)
    });
    Ok(event_stream(stream::iter(opening).chain(events)))
}

/// A streamed answer's items as they open: the thinking first (if the model thinks), then
/// the message. Each holds its output index once opened.
struct Streaming {
    said: Said,
    reasoning: Option<usize>,
    message: Option<usize>,
}

impl Streaming {
    fn thinking(&mut self, delta: String) -> Vec<Event> {
        let mut events = Vec::new();
        let output_index = match self.reasoning {
            Some(index) => index,
            None => {
                events.push(Event::ItemAdded { output_index: 0, item: self.said.reasoning("in_progress") });
                *self.reasoning.insert(0)
            }
        };
        self.said.thinking.push_str(&delta);
        let item_id = self.said.reasoning_id.clone();
        events.push(Event::ReasoningDelta { item_id, output_index, content_index: 0, delta });
        events
    }

    fn text(&mut self, delta: String) -> Vec<Event> {
        let mut events = if self.message.is_none() { self.open_message() } else { Vec::new() };
        self.said.text.push_str(&delta);
        let (item_id, output_index) = (self.said.message_id.clone(), self.message.expect("opened"));
        events.push(Event::TextDelta { item_id, output_index, content_index: 0, delta, logprobs: Vec::new() });
        events
    }

    /// Ends the thinking (if it is open) and opens the message after it.
    fn open_message(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some(output_index) = self.reasoning {
            let (item_id, text) = (self.said.reasoning_id.clone(), self.said.thinking.clone());
            events.push(Event::ReasoningDone { item_id, output_index, content_index: 0, text });
            events.push(Event::ItemDone { output_index, item: self.said.reasoning("completed") });
        }
        let output_index = self.reasoning.map_or(0, |index| index + 1);
        self.message = Some(output_index);
        let added = OutputItem::Message {
            id: self.said.message_id.clone(),
            status: "in_progress",
            role: "assistant",
            content: Vec::new(),
        };
        events.push(Event::ItemAdded { output_index, item: added });
        let item_id = self.said.message_id.clone();
        events.push(Event::PartAdded { item_id, output_index, content_index: 0, part: OutputText::new(String::new()) });
        events
    }

    fn done(&mut self, reply: &Reply, finished: &Finished) -> Vec<Event> {
        let mut events = if self.message.is_none() { self.open_message() } else { Vec::new() };
        let response = reply.finish(&self.said, &[], finished);
        let (item_id, output_index, text) =
            (self.said.message_id.clone(), self.message.expect("opened"), self.said.text.clone());
        let part = OutputText::new(text.clone());
        events.extend([
            Event::TextDone { item_id: item_id.clone(), output_index, content_index: 0, text, logprobs: Vec::new() },
            Event::PartDone { item_id, output_index, content_index: 0, part },
            Event::ItemDone { output_index, item: response.output[output_index].clone() },
            closing(response),
        ]);
        events
    }
}

/// An item known whole, as the events that stream it.
fn whole_item(output_index: usize, item: &OutputItem) -> Vec<Event> {
    let done = Event::ItemDone { output_index, item: item.clone() };
    match item {
        OutputItem::Reasoning { id, content, .. } => {
            let text = content.first().map(|part| part.text.clone()).unwrap_or_default();
            let added = OutputItem::Reasoning {
                id: id.clone(),
                summary: Vec::new(),
                content: Vec::new(),
                status: "in_progress",
            };
            let item_id = id.clone();
            vec![
                Event::ItemAdded { output_index, item: added },
                Event::ReasoningDelta { item_id: item_id.clone(), output_index, content_index: 0, delta: text.clone() },
                Event::ReasoningDone { item_id, output_index, content_index: 0, text },
                done,
            ]
        }
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
        output_tokens_details: OutputTokensDetails { reasoning_tokens: finished.thinking_tokens },
        total_tokens: usage.prompt_tokens + usage.completion_tokens,
        energy: Energy::of(finished),
    }
}

/// Numbered events as SSE, each named by its type.
fn event_stream(events: impl Stream<Item = Event> + Send + 'static) -> HttpResponse {
    sse::response(events.enumerate().map(|(sequence_number, event)| {
        let name = event.name();
        sse::named(name, &Sequenced { event, sequence_number: sequence_number as u64 })
    }))
}
