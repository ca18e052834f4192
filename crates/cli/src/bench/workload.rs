//! What a benchmark sends: random token ids for fixed-size runs (as llama.cpp's llama-bench
//! uses, so speed does not depend on a text and the two tools measure the same work), random
//! words where a server takes only text, and real prompts: a built-in set of chat,
//! summarization and code requests, or a user's JSONL file.

use anyhow::{bail, Context, Result};
use hearth_core::Role;
use serde::Deserialize;
use std::path::Path;

/// A xorshift stream seeded with `seed`: reproducible, and different per seed.
struct Xorshift(u64);

impl Xorshift {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

/// `count` token ids below `vocab`; a different seed per run keeps one run from reusing
/// another's KV cache.
pub fn random_tokens(count: u32, vocab: u32, seed: u64) -> Vec<u32> {
    let mut stream = Xorshift::new(seed);
    (0..count).map(|_| stream.below(u64::from(vocab)) as u32).collect()
}

/// Common English words, each one token with its leading space in the usual vocabularies.
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he",
    "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their",
    "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no",
    "time", "water", "house", "light", "river", "city", "world", "night", "day", "road", "hand", "door", "small",
    "great", "old", "new", "long", "little", "good", "first", "last", "other", "people", "year", "way", "man", "woman",
    "child", "life", "work", "part", "place", "case", "point", "number", "group", "problem", "fact",
];

/// About `count` tokens of random words: a fixed-size prompt for servers, which take text.
/// The server's own count of the prompt's tokens is what the report uses.
pub fn random_words(count: u32, seed: u64) -> String {
    let mut stream = Xorshift::new(seed);
    let words: Vec<&str> = (0..count).map(|_| WORDS[stream.below(WORDS.len() as u64) as usize]).collect();
    words.join(" ")
}

/// A real request: what kind of work it is, and the conversation.
#[derive(Debug, Clone)]
pub struct RealPrompt {
    pub kind: String,
    pub turns: Vec<(Role, String)>,
}

/// The built-in set: two each of chat, summarization and code, of the sizes local users send.
pub fn built_in() -> Vec<RealPrompt> {
    let user = |kind: &str, text: &str| RealPrompt { kind: kind.into(), turns: vec![(Role::User, text.into())] };
    vec![
        user("chat", "What are three good habits for keeping a small vegetable garden healthy through a dry summer?"),
        RealPrompt {
            kind: "chat".into(),
            turns: vec![
                (Role::System, "You are a concise assistant. Answer in a few sentences.".into()),
                (Role::User, "I am planning a weekend trip by train. How should I pack to travel light?".into()),
            ],
        },
        user("summarization", &format!("Summarize the following text in three sentences.\n\n{SUMMARY_TEXT_A}")),
        user("summarization", &format!("Write a one-paragraph summary of this report.\n\n{SUMMARY_TEXT_B}")),
        user(
            "code",
            "Write a Python function that takes a list of integers and returns the length of the longest strictly \
             increasing contiguous run. Include a short docstring.",
        ),
        user(
            "code",
            "Explain what this shell command does, step by step:\n\nfind . -name '*.log' -mtime +7 -print0 | xargs -0 \
             gzip -9",
        ),
    ]
}

const SUMMARY_TEXT_A: &str = "The town library opened its doors in the spring after two years of renovation. The old \
building had suffered from a leaking roof and poor heating, and many of its rooms had been closed to the public. \
Volunteers raised part of the money through book sales and a summer fair, and the council paid for the rest. The \
new library has a children's room with large windows, a quiet reading hall, and a small workshop where residents \
can learn to repair electronics and furniture. Opening hours have been extended into the evening on weekdays, and \
on the first Saturday of every month local authors read from their work. In the first month, the number of visitors \
was three times higher than in the same month before the library closed.";

const SUMMARY_TEXT_B: &str = "Over the past quarter the delivery team reduced the average time between an order and \
its dispatch from two days to one. The main change was moving the packing stations closer to the most frequently \
ordered items, which shortened the walking distance of each order by about forty percent. A second change was a \
daily planning meeting of ten minutes, in which the team looks at the orders expected that day and assigns people \
to the busiest stations. Errors in packed orders fell slightly, from one in two hundred to one in two hundred and \
fifty. The team recommends extending the same layout to the second warehouse, and testing whether a later cut-off \
time for same-day dispatch would increase sales without overloading the evening shift.";

/// One line of a user's prompt file.
#[derive(Deserialize)]
struct PromptLine {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Vec<MessageLine>,
}

#[derive(Deserialize)]
struct MessageLine {
    role: String,
    content: String,
}

/// A JSONL file of prompts, one JSON object a line: `{"prompt": "..."}` (a user message) or
/// `{"messages": [{"role": "...", "content": "..."}]}`, with an optional `"kind"` label.
pub fn from_jsonl(path: &Path) -> Result<Vec<RealPrompt>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut prompts = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let place = || format!("{} line {}", path.display(), number + 1);
        let parsed: PromptLine = serde_json::from_str(line).with_context(place)?;
        let mut turns: Vec<(Role, String)> =
            parsed.messages.into_iter().map(|m| (Role::parse(&m.role), m.content)).collect();
        if let Some(prompt) = parsed.prompt {
            turns.push((Role::User, prompt));
        }
        if turns.is_empty() {
            bail!("{}: a line needs \"prompt\" or \"messages\"", place());
        }
        prompts.push(RealPrompt { kind: parsed.kind.unwrap_or_else(|| "custom".into()), turns });
    }
    if prompts.is_empty() {
        bail!("{} holds no prompts", path.display());
    }
    Ok(prompts)
}

/// The prompt made unique, so no cache holds it: a first line naming the request. Servers
/// that keep finished conversations would otherwise answer a repeated prompt warm.
pub fn cold(prompt: &RealPrompt, nonce: u64) -> Vec<(Role, String)> {
    let mut turns = prompt.turns.clone();
    let first = turns.iter_mut().find(|(role, _)| *role == Role::User).expect("every prompt has a user turn");
    first.1 = format!("(request {nonce})\n{}", first.1);
    turns
}

/// Seconds until the next request of a Poisson process at `rate` requests per second.
pub fn poisson_gap(rate: f64, seed: &mut u64) -> f64 {
    let mut stream = Xorshift(*seed | 1);
    let uniform = (stream.below(1 << 53) as f64 + 0.5) / (1u64 << 53) as f64;
    *seed = stream.0;
    -uniform.ln() / rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_per_seed_and_stay_in_the_vocabulary() {
        assert_eq!(random_tokens(16, 100, 7), random_tokens(16, 100, 7));
        assert_ne!(random_tokens(16, 100, 7), random_tokens(16, 100, 8));
        assert!(random_tokens(1000, 50, 1).iter().all(|&t| t < 50));
        assert_eq!(random_words(40, 3).split(' ').count(), 40);
        assert_ne!(random_words(40, 3), random_words(40, 4));
    }

    #[test]
    fn built_in_set_covers_three_kinds_and_cold_copies_differ() {
        let set = built_in();
        for kind in ["chat", "summarization", "code"] {
            assert_eq!(set.iter().filter(|p| p.kind == kind).count(), 2, "{kind}");
        }
        assert_ne!(cold(&set[1], 1), cold(&set[1], 2));
        assert_eq!(cold(&set[1], 1)[0], set[1].turns[0], "the system turn is left alone");
    }

    #[test]
    fn jsonl_files_are_read_and_bad_lines_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        std::fs::write(&path, "{\"prompt\": \"hi\"}\n\n{\"kind\": \"qa\", \"messages\": [{\"role\": \"system\", \"content\": \"be brief\"}, {\"role\": \"user\", \"content\": \"why?\"}]}\n").unwrap();
        let prompts = from_jsonl(&path).unwrap();
        assert_eq!(prompts.len(), 2);
        assert_eq!((prompts[0].kind.as_str(), prompts[1].kind.as_str()), ("custom", "qa"));
        assert_eq!(prompts[1].turns.len(), 2);
        std::fs::write(&path, "{\"prompt\": \"hi\"}\n{\"nothing\": 1}\n").unwrap();
        assert!(from_jsonl(&path).unwrap_err().to_string().contains("line 2"));
        std::fs::write(&path, "not json\n").unwrap();
        assert!(format!("{:#}", from_jsonl(&path).unwrap_err()).contains("line 1"));
    }

    #[test]
    fn poisson_gaps_average_one_over_the_rate() {
        let mut seed = 42;
        let gaps: Vec<f64> = (0..20_000).map(|_| poisson_gap(4.0, &mut seed)).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 0.25).abs() < 0.01, "{mean}");
        assert!(gaps.iter().all(|g| *g > 0.0));
    }
}
