//! Stop strings: generation ends before the first occurrence of any of them, and text that
//! might be the start of one is held back until we know, so a client never sees half of a
//! stop string that later turns out to be one.

#[derive(Debug, Default)]
pub struct StopMatcher {
    /// The stop strings, each with its place in the request's list (empty ones are left out).
    stops: Vec<(usize, String)>,
    pending: String,
}

/// What the matcher lets through after a push.
#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// Text that is safe to send; generation goes on.
    Continue(String),
    /// A stop string was met: send this text (what came before it) and end. The number is
    /// the stop string's place in the request's list.
    Stopped(String, usize),
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        let stops = stops.iter().enumerate().filter(|(_, s)| !s.is_empty()).map(|(i, s)| (i, s.clone())).collect();
        Self { stops, pending: String::new() }
    }

    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Continue(text.to_string());
        }
        self.pending.push_str(text);
        let first = self.stops.iter().filter_map(|(index, s)| Some((self.pending.find(s.as_str())?, *index))).min();
        if let Some((at, index)) = first {
            let before = self.pending[..at].to_string();
            self.pending.clear();
            return StopOutcome::Stopped(before, index);
        }
        let keep_from = self.held_back_from();
        let ready = self.pending[..keep_from].to_string();
        self.pending.drain(..keep_from);
        StopOutcome::Continue(ready)
    }

    /// The end of generation: whatever was held back is plain text after all.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Start of the longest tail of `pending` that is a proper prefix of some stop string.
    fn held_back_from(&self) -> usize {
        self.pending
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.pending[i..];
                self.stops.iter().any(|(_, s)| s.starts_with(tail))
            })
            .unwrap_or(self.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for chunk in chunks {
            match m.push(chunk) {
                StopOutcome::Continue(t) => out.push_str(&t),
                StopOutcome::Stopped(t, _) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stops_before_a_string_split_across_chunks() {
        assert_eq!(run(&["<|im_end|>"], &["Paris", ".<|im", "_end|>", "more"]), ("Paris.".into(), true));
    }

    #[test]
    fn a_near_miss_is_released_as_text() {
        assert_eq!(run(&["END"], &["the EN", "D-less", " story"]), ("the ".into(), true));
        assert_eq!(run(&["END"], &["the EN", "d story"]), ("the ENd story".into(), false));
    }

    #[test]
    fn text_that_could_start_a_stop_is_held_back() {
        let mut m = StopMatcher::new(&["\n\nUser:".to_string()]);
        assert_eq!(m.push("Hi\n"), StopOutcome::Continue("Hi".into()));
        assert_eq!(m.push("\nUs"), StopOutcome::Continue(String::new()));
        assert_eq!(m.push("ually"), StopOutcome::Continue("\n\nUsually".into()));
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "a"], &["xxabc"]), ("xx".into(), true));
    }

    #[test]
    fn the_stop_met_is_named_by_its_place_in_the_request() {
        let stops: Vec<String> = ["", "zz", "b", "a"].iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        assert_eq!(m.push("xxabc"), StopOutcome::Stopped("xx".into(), 3));
    }

    #[test]
    fn no_stops_passes_everything_through() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn multibyte_text_is_never_cut_mid_character() {
        assert_eq!(run(&["日本x"], &["日本", "語"]), ("日本語".into(), false));
    }
}
