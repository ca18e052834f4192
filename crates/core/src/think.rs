//! A reasoning model's thinking kept apart from its answer: the text between `<think>` and
//! `</think>` (as DeepSeek-R1 and Qwen3 write it) at the start of an answer, or before the
//! first `</think>` when the prompt itself opened the tag. Text that may be the start of a
//! tag is held back until the next piece says, so a tag split across tokens never leaks.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Text of one piece of an answer, sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sorted {
    pub thinking: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but white space yet: an opening tag may still come.
    Start,
    Thinking,
    /// Thinking is over, or never began: the rest is the answer.
    Answer,
}

#[derive(Debug)]
pub struct ThinkSplitter {
    state: State,
    /// Text not yet sorted: a possible tag's beginning, or leading white space.
    held: String,
    /// White space right after a tag is dropped, from whichever text follows it.
    trim_start: bool,
}

impl ThinkSplitter {
    /// `opened_by_prompt`: the prompt ends with `<think>` (the model's template opened it),
    /// so the answer starts inside the thinking.
    pub fn new(opened_by_prompt: bool) -> Self {
        let state = if opened_by_prompt { State::Thinking } else { State::Start };
        Self { state, held: String::new(), trim_start: opened_by_prompt }
    }

    /// Sorts the next piece of the answer.
    pub fn push(&mut self, text: &str) -> Sorted {
        let mut sorted = Sorted::default();
        self.held.push_str(text);
        loop {
            match self.state {
                State::Start => {
                    let rest = self.held.trim_start();
                    if let Some(after) = rest.strip_prefix(OPEN) {
                        self.held = after.to_string();
                        self.state = State::Thinking;
                        self.trim_start = true;
                    } else if rest.is_empty() || OPEN.starts_with(rest) {
                        return sorted; // white space, or the tag's beginning so far
                    } else {
                        self.state = State::Answer;
                    }
                }
                State::Thinking => match self.held.find(CLOSE) {
                    Some(at) => {
                        let thinking = trimmed(&mut self.trim_start, &self.held[..at]);
                        sorted.thinking.push_str(&thinking);
                        self.held = self.held[at + CLOSE.len()..].to_string();
                        self.state = State::Answer;
                        self.trim_start = true;
                    }
                    None => {
                        let keep = partial_tag_start(&self.held, CLOSE);
                        let thinking = trimmed(&mut self.trim_start, &self.held[..keep]);
                        sorted.thinking.push_str(&thinking);
                        self.held.drain(..keep);
                        return sorted;
                    }
                },
                State::Answer => {
                    let text = std::mem::take(&mut self.held);
                    sorted.content.push_str(&trimmed(&mut self.trim_start, &text));
                    return sorted;
                }
            }
        }
    }

    /// The end of the answer: whatever was held back goes where it was headed.
    pub fn finish(&mut self) -> Sorted {
        let held = std::mem::take(&mut self.held);
        let held = trimmed(&mut self.trim_start, &held);
        match self.state {
            State::Thinking => Sorted { thinking: held, content: String::new() },
            State::Start | State::Answer => Sorted { thinking: String::new(), content: held },
        }
    }
}

/// `text` without the white space that follows a tag, while `trim_start` says that lasts.
fn trimmed(trim_start: &mut bool, text: &str) -> String {
    if !*trim_start {
        return text.to_string();
    }
    let text = text.trim_start();
    *trim_start = text.is_empty();
    text.to_string()
}

/// Where the longest tail of `text` that could begin `tag` starts (`text.len()` if none).
fn partial_tag_start(text: &str, tag: &str) -> usize {
    text.char_indices().map(|(i, _)| i).find(|&i| tag.starts_with(&text[i..])).unwrap_or(text.len())
}

/// Whether a chat template writes thinking tags, so its model thinks.
pub fn template_thinks(template: Option<&str>) -> bool {
    template.is_some_and(|t| t.contains(OPEN) || t.contains(CLOSE))
}

/// Whether a rendered prompt leaves the model inside an open `<think>`.
pub fn prompt_opens_thinking(prompt: &str) -> bool {
    prompt.trim_end().ends_with(OPEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `pieces`, then finishes; returns (thinking, answer) as joined.
    fn split(opened: bool, pieces: &[&str]) -> (String, String) {
        let mut splitter = ThinkSplitter::new(opened);
        let mut all = Sorted::default();
        for piece in pieces.iter().copied() {
            let sorted = splitter.push(piece);
            all.thinking.push_str(&sorted.thinking);
            all.content.push_str(&sorted.content);
        }
        let last = splitter.finish();
        (all.thinking + &last.thinking, all.content + &last.content)
    }

    #[test]
    fn thinking_at_the_start_is_kept_apart_whatever_the_token_boundaries() {
        let whole = "<think>\nThe sky scatters blue light.\n</think>\n\nRayleigh scattering.";
        let expected = ("The sky scatters blue light.\n".to_string(), "Rayleigh scattering.".to_string());
        // Every way of cutting the text in two, and one character at a time.
        for cut in 1..whole.len() {
            assert_eq!(split(false, &[&whole[..cut], &whole[cut..]]), expected, "cut at {cut}");
        }
        let chars: Vec<String> = whole.chars().map(String::from).collect();
        let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(split(false, &pieces), expected);
    }

    #[test]
    fn a_prompt_that_opened_the_tag_makes_the_answer_start_inside_it() {
        assert_eq!(split(true, &["Let me ", "see.</th", "ink>Paris"]), ("Let me see.".into(), "Paris".into()));
        assert_eq!(
            split(true, &["still thinking when cut <", "/th"]),
            ("still thinking when cut </th".into(), "".into())
        );
    }

    #[test]
    fn an_answer_without_thinking_is_all_answer_and_later_tags_are_text() {
        assert_eq!(split(false, &["Paris ", "is <think> big"]), ("".into(), "Paris is <think> big".into()));
        assert_eq!(split(false, &["  ", "<th", "e"]), ("".into(), "  <the".into()));
        assert_eq!(split(false, &["<thi"]), ("".into(), "<thi".into()), "an answer that ends mid-tag keeps it");
        assert_eq!(split(false, &["<think>a</think>b</think>"]), ("a".into(), "b</think>".into()));
    }

    #[test]
    fn templates_and_prompts_that_think_are_told_apart() {
        assert!(template_thinks(Some("{{ '<think>\\n' }}")) && !template_thinks(Some("{{ messages }}")));
        assert!(!template_thinks(None));
        assert!(prompt_opens_thinking("<|Assistant|><think>\n") && !prompt_opens_thinking("<|im_start|>assistant\n"));
    }
}
