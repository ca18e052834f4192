//! Prompt lookup: drafts the next tokens of an answer from what followed the same tokens
//! earlier in the prompt or the answer, with no second model. It pays where an answer
//! repeats its input (a code file given back with one change, a summary quoting its
//! document); the model verifies every drafted token in one batch, so a wrong draft costs
//! compute and never changes the answer.

/// A draft needs the history's last this many tokens to have occurred before: shorter
/// matches in ordinary text are chance, and each wrong draft is a wasted verification.
pub const MIN_MATCH: usize = 3;
/// Matches are compared back this far, to choose among several occurrences.
const MAX_MATCH: usize = 32;
/// Drafts start this long and grow while the model keeps accepting them.
const FIRST_DRAFT: usize = 4;

/// Up to `max` tokens proposed to follow `history`: those that followed the earlier
/// occurrence of its end that matches the most tokens back (at least [`MIN_MATCH`]; among
/// equal matches the most recent). Empty when the end has not occurred before.
pub fn draft<T: PartialEq + Copy>(history: &[T], max: usize) -> Vec<T> {
    let n = history.len();
    if max == 0 || n <= MIN_MATCH {
        return Vec::new();
    }
    let last = history[n - 1];
    // (match length, the index just after the matched occurrence)
    let mut best: Option<(usize, usize)> = None;
    // `end` is one past an earlier occurrence of the last token; the history's own end is
    // excluded, and an occurrence must leave at least one token after it to propose.
    for end in (1..n).rev() {
        if history[end - 1] != last {
            continue;
        }
        let limit = MAX_MATCH.min(end);
        let matched = (0..limit).take_while(|&k| history[end - 1 - k] == history[n - 1 - k]).count();
        if matched >= MIN_MATCH && best.is_none_or(|(length, _)| matched > length) {
            best = Some((matched, end));
            if matched == limit {
                break;
            }
        }
    }
    best.map(|(_, end)| history[end..(end + max).min(n)].to_vec()).unwrap_or_default()
}

/// How long the next draft of one request may be: doubled after a draft accepted whole, cut
/// to one more than was accepted after one that was not, so a request whose drafts keep
/// failing spends little verifying them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DraftLength {
    next: usize,
    max: usize,
}

impl DraftLength {
    pub fn new(max: usize) -> Self {
        Self { next: FIRST_DRAFT.min(max), max }
    }

    pub fn get(&self) -> usize {
        self.next
    }

    /// After a draft of `drafted` tokens of which the first `accepted` were right.
    pub fn update(&mut self, drafted: usize, accepted: usize) {
        if drafted == 0 {
            return;
        }
        self.next = if accepted == drafted { (drafted * 2).min(self.max) } else { (accepted + 1).min(self.max) };
        self.next = self.next.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposes_what_followed_the_earlier_occurrence() {
        //            0  1  2  3  4  5  6  7  8  9
        let history = [1, 2, 3, 4, 5, 6, 9, 1, 2, 3];
        assert_eq!(draft(&history, 3), vec![4, 5, 6]);
        assert_eq!(draft(&history, 10), vec![4, 5, 6, 9, 1, 2, 3]);
    }

    #[test]
    fn too_short_a_match_proposes_nothing() {
        assert!(draft(&[1, 2, 7, 8, 1, 2], 4).is_empty());
        assert!(draft(&[1, 2, 3], 4).is_empty());
        assert!(draft(&[1, 2, 3, 4, 5, 6], 4).is_empty());
        assert!(draft(&[1, 2, 3, 4, 1, 2, 3], 0).is_empty());
    }

    #[test]
    fn the_longest_match_wins_then_the_most_recent() {
        // "7 1 2 3" occurs at the start and matches four back; "1 2 3" later matches three.
        let history = [7, 1, 2, 3, 4, 0, 1, 2, 3, 5, 8, 7, 1, 2, 3];
        assert_eq!(draft(&history, 1), vec![4]);
        // Two equal matches: the later one.
        let history = [1, 2, 3, 4, 0, 1, 2, 3, 5, 0, 1, 2, 3];
        assert_eq!(draft(&history, 1), vec![5]);
    }

    #[test]
    fn a_repeated_token_run_drafts_more_of_it() {
        let history = [9, 9, 9, 9, 9];
        assert_eq!(draft(&history, 3), vec![9]);
    }

    #[test]
    fn draft_length_grows_on_success_and_shrinks_on_failure() {
        let mut length = DraftLength::new(16);
        assert_eq!(length.get(), 4);
        length.update(4, 4);
        assert_eq!(length.get(), 8);
        length.update(8, 8);
        length.update(16, 16);
        assert_eq!(length.get(), 16);
        length.update(16, 2);
        assert_eq!(length.get(), 3);
        length.update(3, 0);
        assert_eq!(length.get(), 1);
        length.update(0, 0);
        assert_eq!(length.get(), 1);
        assert_eq!(DraftLength::new(2).get(), 2);
    }
}
