//! An answer in Anthropic's shapes: one `message` object, or the event stream
//! (`message_start`, `content_block_start`, `ping`, `content_block_delta`...,
//! `content_block_stop`, `message_delta`, `message_stop`). An answer that may hold tool
//! calls is read whole first, then sent as blocks.

use super::error::{self, AnthropicError};
use super::wire::{BlockOut, Delta, Event, Message, MessageDelta, Usage};
use crate::dialects::hearth::{self, Energy};
use crate::dialects::sse;
use crate::service::{self, Finished, Lease, Piece};
use crate::tools::ToolUse;
use crate::AppState;
use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use hearth_core::{FinishReason, GenerateRequest, ToolCall};
use serde_json::json;

/// What every event of one answer shares, and how it goes back.
pub struct Reply {
    id: String,
    model: String,
    streaming: bool,
    /// The request's stop sequences, to name the one that ended the answer.
    stop_sequences: Vec<String>,
    /// Whether a thinking model's thinking is sent, as `thinking` blocks.
    thinking: bool,
}

impl Reply {
    pub fn new(model: &str, streaming: bool, stop_sequences: &[String], thinking: bool) -> Self {
        Self {
            id: hearth::random_id("msg"),
            model: model.to_string(),
            streaming,
            stop_sequences: stop_sequences.to_vec(),
            thinking,
        }
    }

    fn message(&self, content: Vec<BlockOut>, ending: Option<(&'static str, Option<String>)>, usage: Usage) -> Message {
        let (stop_reason, stop_sequence) = ending.map_or((None, None), |(reason, sequence)| (Some(reason), sequence));
        Message {
            id: self.id.clone(),
            kind: "message",
            role: "assistant",
            model: self.model.clone(),
            content,
            stop_reason,
            stop_sequence,
            usage,
        }
    }

    /// Why the answer ended, in Anthropic's words, and the stop sequence met if one was.
    fn ending(&self, finished: &Finished, calls: &[ToolCall]) -> (&'static str, Option<String>) {
        if !calls.is_empty() {
            return ("tool_use", None);
        }
        match finished.finish_reason {
            FinishReason::Length => ("max_tokens", None),
            FinishReason::StopSequence(index) => match self.stop_sequences.get(index) {
                Some(sequence) => ("stop_sequence", Some(sequence.clone())),
                None => ("end_turn", None),
            },
            FinishReason::Stop | FinishReason::Cancelled => ("end_turn", None),
        }
    }

    /// The events that open a stream: the message, empty, with the prompt's size.
    fn opening(&self, prompt_tokens: u32) -> Event {
        let usage = Usage { input_tokens: prompt_tokens, ..Usage::default() };
        Event::MessageStart { message: self.message(Vec::new(), None, usage) }
    }

    /// The events that close a stream.
    fn closing(&self, finished: &Finished, calls: &[ToolCall]) -> [Event; 2] {
        let (stop_reason, stop_sequence) = self.ending(finished, calls);
        let delta = MessageDelta { stop_reason: Some(stop_reason), stop_sequence };
        [Event::MessageDelta { delta, usage: usage(finished) }, Event::MessageStop]
    }
}

pub async fn answer(
    state: &AppState,
    lease: Lease,
    request: GenerateRequest,
    tool_use: Option<ToolUse>,
    reply: Reply,
) -> Result<Response, AnthropicError> {
    let generation = state.service.generate(lease, request).await?;
    let opening = reply.opening(generation.prompt_tokens);
    if service::read_whole(reply.streaming, tool_use.as_ref()) {
        let (answer, calls) = service::collect_calls(generation.pieces, tool_use.as_ref()).await?;
        let thinking = if reply.thinking { answer.thinking } else { String::new() };
        let content = blocks(thinking, answer.text, &calls);
        if !reply.streaming {
            let ending = reply.ending(&answer.finished, &calls);
            return Ok(Json(reply.message(content, Some(ending), usage(&answer.finished))).into_response());
        }
        let mut events = vec![opening];
        for (index, block) in content.into_iter().enumerate() {
            events.extend(whole_block(index, block));
        }
        events.extend(reply.closing(&answer.finished, &calls));
        return Ok(event_stream(stream::iter(events)));
    }
    let mut blocks = OpenBlock::default();
    let events = generation.pieces.flat_map(move |piece| {
        let events = match piece {
            Piece::Text(text, _) if text.is_empty() => Vec::new(),
            Piece::Thinking(_) if !reply.thinking => Vec::new(),
            Piece::Thinking(thinking) => blocks.delta(Delta::Thinking { thinking }),
            Piece::Text(text, _) => blocks.delta(Delta::Text { text }),
            Piece::Done(finished) => {
                let mut events = blocks.close();
                events.extend(reply.closing(&finished, &[]));
                events
            }
            Piece::Failed(e) => vec![Event::Error { error: error::detail(&e) }],
        };
        stream::iter(events)
    });
    Ok(event_stream(stream::iter([opening]).chain(events)))
}

/// The content block a stream has open: a delta of another kind closes it and opens the
/// next; a `ping` follows the first start, as Anthropic's streams have it.
#[derive(Default)]
struct OpenBlock {
    /// The open block's index, and whether it is thinking.
    open: Option<(usize, bool)>,
    next: usize,
}

impl OpenBlock {
    fn delta(&mut self, delta: Delta) -> Vec<Event> {
        let thinking = matches!(delta, Delta::Thinking { .. });
        let mut events = Vec::new();
        if self.open.is_none_or(|(_, open_thinking)| open_thinking != thinking) {
            events.extend(self.stop());
            events.extend(self.start(thinking));
        }
        let (index, _) = self.open.expect("opened above");
        events.push(Event::ContentBlockDelta { index, delta });
        events
    }

    fn start(&mut self, thinking: bool) -> Vec<Event> {
        let content_block = if thinking {
            BlockOut::Thinking { thinking: String::new(), signature: String::new() }
        } else {
            BlockOut::Text { text: String::new() }
        };
        let mut events = vec![Event::ContentBlockStart { index: self.next, content_block }];
        if self.next == 0 {
            events.push(Event::Ping);
        }
        self.open = Some((self.next, thinking));
        self.next += 1;
        events
    }

    fn stop(&mut self) -> Option<Event> {
        self.open.take().map(|(index, _)| Event::ContentBlockStop { index })
    }

    /// Closes the open block; an answer that opened none gets its one empty text block.
    fn close(&mut self) -> Vec<Event> {
        let mut events = if self.next == 0 { self.start(false) } else { Vec::new() };
        events.extend(self.stop());
        events
    }
}

/// What the model said as content blocks: its thinking (if any is sent), its text (if
/// any), then one block per call.
fn blocks(thinking: String, text: String, calls: &[ToolCall]) -> Vec<BlockOut> {
    let mut blocks = Vec::with_capacity(calls.len() + 2);
    if !thinking.is_empty() {
        blocks.push(BlockOut::Thinking { thinking, signature: String::new() });
    }
    if !text.is_empty() || calls.is_empty() {
        blocks.push(BlockOut::Text { text });
    }
    for call in calls {
        // Anthropic's ids for tool uses start with `toolu_`; clients only echo them back.
        let id = match call.id.strip_prefix("call_") {
            Some(rest) => format!("toolu_{rest}"),
            None => call.id.clone(),
        };
        blocks.push(BlockOut::ToolUse { id, name: call.name.clone(), input: call.arguments.clone() });
    }
    blocks
}

/// A block known whole, as the events that stream it: its start (empty), one delta, its stop.
fn whole_block(index: usize, block: BlockOut) -> [Event; 3] {
    let (empty, delta) = match block {
        BlockOut::Thinking { thinking, signature } => {
            (BlockOut::Thinking { thinking: String::new(), signature }, Delta::Thinking { thinking })
        }
        BlockOut::Text { text } => (BlockOut::Text { text: String::new() }, Delta::Text { text }),
        BlockOut::ToolUse { id, name, input } => {
            let partial_json = input.to_string();
            (BlockOut::ToolUse { id, name, input: json!({}) }, Delta::InputJson { partial_json })
        }
    };
    [
        Event::ContentBlockStart { index, content_block: empty },
        Event::ContentBlockDelta { index, delta },
        Event::ContentBlockStop { index },
    ]
}

fn usage(finished: &Finished) -> Usage {
    let usage = &finished.usage;
    Usage {
        input_tokens: usage.prompt_tokens.saturating_sub(usage.cached_prompt_tokens),
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: usage.cached_prompt_tokens,
        energy: Energy::of(finished),
    }
}

fn encoded(event: &Event) -> Bytes {
    sse::named(event.name(), event)
}

fn event_stream(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    sse::response(events.map(|event| encoded(&event)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::{Timings, Usage as CoreUsage};
    use std::sync::Arc;

    fn finished(finish_reason: FinishReason) -> Finished {
        Finished {
            finish_reason,
            usage: CoreUsage {
                prompt_tokens: 20,
                cached_prompt_tokens: 12,
                completion_tokens: 3,
                ..Default::default()
            },
            timings: Timings::default(),
            energy: None,
            prices: Arc::default(),
            thinking_tokens: 0,
        }
    }

    #[test]
    fn endings_in_anthropic_s_words() {
        let reply = Reply::new("m", false, &["END".into(), "STOP".into()], false);
        assert_eq!(reply.ending(&finished(FinishReason::Stop), &[]), ("end_turn", None));
        assert_eq!(reply.ending(&finished(FinishReason::Length), &[]), ("max_tokens", None));
        assert_eq!(reply.ending(&finished(FinishReason::StopSequence(1)), &[]), ("stop_sequence", Some("STOP".into())));
        let call = ToolCall { id: "call_x".into(), name: "f".into(), arguments: json!({"a": 1}) };
        assert_eq!(reply.ending(&finished(FinishReason::Stop), std::slice::from_ref(&call)), ("tool_use", None));
        let blocks = serde_json::to_value(blocks(String::new(), String::new(), &[call])).unwrap();
        assert_eq!(blocks, json!([{"type": "tool_use", "id": "toolu_x", "name": "f", "input": {"a": 1}}]));
    }

    #[test]
    fn usage_counts_cached_input_apart() {
        let usage = serde_json::to_value(usage(&finished(FinishReason::Stop))).unwrap();
        assert_eq!(
            usage,
            json!({"input_tokens": 8, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 12})
        );
    }

    #[test]
    fn a_stream_opens_a_block_per_kind_in_turn_and_always_one() {
        let names = |events: Vec<Event>| events.iter().map(Event::name).collect::<Vec<_>>();
        let mut blocks = OpenBlock::default();
        let mut events = blocks.delta(Delta::Thinking { thinking: "hm".into() });
        events.extend(blocks.delta(Delta::Thinking { thinking: "m".into() }));
        events.extend(blocks.delta(Delta::Text { text: "Paris".into() }));
        events.extend(blocks.close());
        assert_eq!(
            names(events),
            [
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
            ]
        );
        assert_eq!(names(OpenBlock::default().close()), ["content_block_start", "ping", "content_block_stop"]);
    }

    #[test]
    fn events_are_named_by_their_type() {
        let event = Event::ContentBlockDelta { index: 2, delta: Delta::InputJson { partial_json: "{}".into() } };
        let text = String::from_utf8(encoded(&event).to_vec()).unwrap();
        assert_eq!(
            text,
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n"
        );
    }
}
