//! Turns a stream of token bytes into whole UTF-8 characters. A token can end in the middle
//! of a multi-byte character (emoji, CJK, accented letters in byte-level BPE); its first
//! bytes wait here until the rest arrive, so no broken character ever reaches a client.

#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds token bytes; returns the text that is now complete (possibly empty).
    /// Bytes that can never form a character become U+FFFD, as a lossy decoder would.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    out.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // SAFETY-free: `valid_up_to` guarantees this prefix is UTF-8.
                    out.push_str(std::str::from_utf8(valid).expect("prefix is valid"));
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next token.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Ends the stream: a character still incomplete can never be finished.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text`'s bytes split at every given cut and checks each chunk is whole text and
    /// the chunks add up to the original.
    fn round_trip(text: &str, cuts: &[usize]) {
        let bytes = text.as_bytes();
        let mut stream = Utf8Stream::default();
        let mut joined = String::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            joined.push_str(&stream.push(&bytes[start..cut]));
            start = cut;
        }
        joined.push_str(&stream.finish());
        assert_eq!(joined, text, "cuts {cuts:?}");
    }

    #[test]
    fn characters_split_across_tokens_come_out_whole() {
        let text = "café 日本 🦀!";
        // Every possible single cut, and every byte on its own.
        for cut in 0..=text.len() {
            round_trip(text, &[cut]);
        }
        let every_byte: Vec<usize> = (1..text.len()).collect();
        round_trip(text, &every_byte);
    }

    #[test]
    fn partial_character_is_held_back_not_emitted() {
        let crab = "🦀".as_bytes(); // 4 bytes
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.push(&crab[..1]), "");
        assert_eq!(stream.push(&crab[1..3]), "");
        assert_eq!(stream.push(&crab[3..]), "🦀");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(stream.push(&"é".as_bytes()[..1]), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }
}
