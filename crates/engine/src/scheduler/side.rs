//! Work the engine thread does beside decoding, a step per loop (an embedding input, a
//! batch of a prompt to score), on a llama.cpp context of its own made on first need: the
//! one rule for taking the oldest request, dropping those whose caller left, and answering
//! a request when it fails or is done.

use hearth_core::GenerateError;
use std::collections::VecDeque;

/// A request of such work in progress, on a context `C`.
pub(crate) trait SideWork<C> {
    /// The caller stopped waiting: nothing more is done for it.
    fn abandoned(&self) -> bool;
    /// Does the next step.
    fn step(&mut self, context: &mut C) -> Result<(), GenerateError>;
    fn is_done(&self) -> bool;
    /// Answers the caller with the result.
    fn finish(self);
    fn fail(self, error: GenerateError);
}

/// One step of the oldest live request in `queue`, on `context` (made by `make` first if
/// there is none yet; `what` names it in the error when it cannot be made).
pub(crate) fn step<C, W: SideWork<C>>(
    queue: &mut VecDeque<W>,
    context: &mut Option<C>,
    make: impl FnOnce() -> Result<C, String>,
    what: &str,
) {
    while queue.front().is_some_and(W::abandoned) {
        queue.pop_front();
    }
    let Some(work) = queue.front_mut() else { return };
    if context.is_none() {
        match make() {
            Ok(made) => *context = Some(made),
            Err(e) => {
                let work = queue.pop_front().expect("front exists");
                return work.fail(GenerateError::Backend(format!("no {what} context: {e}")));
            }
        }
    }
    let context = context.as_mut().expect("made above");
    if let Err(e) = work.step(context) {
        return queue.pop_front().expect("front exists").fail(e);
    }
    if work.is_done() {
        queue.pop_front().expect("front exists").finish();
    }
}
