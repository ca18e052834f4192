//! Responses kept for `GET /v1/responses/{id}` and for `previous_response_id` to continue:
//! in memory, the newest first to stay, bounded in count and in bytes so no client can
//! make the server hold without end. A restart forgets them.

use hearth_core::ChatMessage;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// At most this many responses are kept...
const MAX_RESPONSES: usize = 1024;
/// ...holding at most this many bytes of text between them.
const MAX_BYTES: usize = 64 << 20;

/// A kept response: the object as it was answered, and the conversation a continuation
/// starts from (its input, instructions aside, then its output).
pub struct Kept {
    pub json: String,
    pub conversation: Vec<ChatMessage>,
}

impl Kept {
    /// About what it holds: its text, its messages' and their calls'.
    fn bytes(&self) -> usize {
        let call = |c: &hearth_core::ToolCall| c.id.len() + c.name.len() + c.arguments.to_string().len();
        let message = |m: &ChatMessage| m.content.len() + 64 + m.tool_calls.iter().map(call).sum::<usize>();
        self.json.len() + self.conversation.iter().map(message).sum::<usize>()
    }
}

#[derive(Default)]
pub struct Responses {
    kept: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Oldest first, each with its size.
    entries: VecDeque<(String, Arc<Kept>, usize)>,
    bytes: usize,
}

impl Responses {
    /// Keeps `kept` under `id`, forgetting the oldest responses while over the bounds.
    pub fn keep(&self, id: String, kept: Kept) {
        let size = kept.bytes();
        if size > MAX_BYTES {
            tracing::warn!(id, size, "a response too large to keep");
            return;
        }
        let mut inner = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        while inner.entries.len() >= MAX_RESPONSES || inner.bytes + size > MAX_BYTES {
            let Some((_, _, oldest)) = inner.entries.pop_front() else { break };
            inner.bytes -= oldest;
        }
        inner.bytes += size;
        inner.entries.push_back((id, Arc::new(kept), size));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Kept>> {
        let inner = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.iter().rev().find(|(kept_id, ..)| kept_id == id).map(|(_, kept, _)| kept.clone())
    }

    /// Forgets `id`; false if it was not kept.
    pub fn remove(&self, id: &str) -> bool {
        let mut inner = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let Some(at) = inner.entries.iter().position(|(kept_id, ..)| kept_id == id) else { return false };
        let (_, _, size) = inner.entries.remove(at).expect("found above");
        inner.bytes -= size;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(text: &str) -> Kept {
        Kept { json: text.to_string(), conversation: vec![ChatMessage::user(text)] }
    }

    #[test]
    fn kept_responses_are_found_forgotten_and_bounded() {
        let responses = Responses::default();
        responses.keep("a".into(), kept("first"));
        assert_eq!(responses.get("a").unwrap().json, "first");
        assert!(responses.remove("a") && !responses.remove("a") && responses.get("a").is_none());
        for n in 0..MAX_RESPONSES + 5 {
            responses.keep(format!("r{n}"), kept("x"));
        }
        assert!(responses.get("r4").is_none(), "the oldest go first");
        assert!(responses.get("r5").is_some() && responses.get(&format!("r{}", MAX_RESPONSES + 4)).is_some());
        let big = "y".repeat(MAX_BYTES / 3);
        for n in 0..4 {
            responses.keep(format!("big{n}"), kept(&big));
        }
        assert!(responses.get("big0").is_none() && responses.get("big3").is_some());
        assert!(responses.kept.lock().unwrap().bytes <= MAX_BYTES);
    }
}
