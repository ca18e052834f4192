//! One way to turn a request's stream of [`StreamEvent`]s into its whole answer, for every
//! caller that wants the answer rather than the stream (a non-streaming HTTP reply, the
//! CLI, benchmarks, tests), so each one adds text, log-probabilities and the final report
//! the same way.

use crate::{EnergyReport, FinishReason, GenerateError, StreamEvent, Timings, TokenLogprob, Usage};

/// A whole answer: everything a stream said, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Every `Token`'s text, in order.
    pub text: String,
    /// Every `Logprob`, in order (empty unless the request asked for them).
    pub logprobs: Vec<TokenLogprob>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
    pub energy: Option<EnergyReport>,
}

/// What one event did to the answer being collected.
#[derive(Debug, PartialEq)]
pub enum Fed<'a> {
    /// This text was added to the end of the answer: a caller that shows the answer as it
    /// comes shows this.
    Text(&'a str),
    /// A log-probability was added.
    Logprob,
    /// The stream ended with this answer; the collector is empty again.
    Done(Answer),
}

/// Collects an answer from its events, fed one at a time (from a blocking channel, an
/// async stream, or with a timeout between them). A stream's `Error` is returned as the
/// error of the event that carried it.
#[derive(Debug, Default)]
pub struct Collector {
    text: String,
    logprobs: Vec<TokenLogprob>,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event to the answer.
    pub fn feed(&mut self, event: StreamEvent) -> Result<Fed<'_>, GenerateError> {
        match event {
            StreamEvent::Token(piece) => {
                let start = self.text.len();
                self.text.push_str(&piece);
                Ok(Fed::Text(&self.text[start..]))
            }
            StreamEvent::Logprob(logprob) => {
                self.logprobs.push(logprob);
                Ok(Fed::Logprob)
            }
            StreamEvent::Done { finish_reason, usage, timings, energy } => Ok(Fed::Done(Answer {
                text: std::mem::take(&mut self.text),
                logprobs: std::mem::take(&mut self.logprobs),
                finish_reason,
                usage,
                timings,
                energy,
            })),
            StreamEvent::Error(e) => Err(e),
        }
    }

    /// The text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The log-probabilities so far.
    pub fn logprobs(&self) -> &[TokenLogprob] {
        &self.logprobs
    }
}

/// Collects a whole stream. One that ends before its `Done` or `Error` (the engine dropped
/// its end of the channel) is [`GenerateError::EngineStopped`].
pub fn collect(events: impl IntoIterator<Item = StreamEvent>) -> Result<Answer, GenerateError> {
    let mut collector = Collector::new();
    for event in events {
        if let Fed::Done(answer) = collector.feed(event)? {
            return Ok(answer);
        }
    }
    Err(GenerateError::EngineStopped("the stream ended before the answer did".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EnergySource, TopLogprob};
    use std::time::Duration;

    fn logprob(byte: u8) -> TokenLogprob {
        TokenLogprob { bytes: vec![byte], logprob: -0.5, top: vec![TopLogprob { bytes: vec![byte], logprob: -0.5 }] }
    }

    fn done(finish_reason: FinishReason) -> StreamEvent {
        StreamEvent::Done {
            finish_reason,
            usage: Usage { prompt_tokens: 7, cached_prompt_tokens: 2, completion_tokens: 3, ..Default::default() },
            timings: Timings {
                prompt_eval: Duration::from_millis(5),
                eval: Duration::from_millis(9),
                time_to_first_token: Duration::from_millis(6),
            },
            energy: Some(EnergyReport {
                prefill_joules: 1.0,
                decode_joules: 2.0,
                seconds: 0.5,
                idle_watts: None,
                source: EnergySource::Estimated,
            }),
        }
    }

    #[test]
    fn an_answer_has_every_piece_of_text_and_logprob_in_order_and_the_final_report() {
        let events = vec![
            StreamEvent::Logprob(logprob(b'H')),
            StreamEvent::Logprob(logprob(b'i')),
            StreamEvent::Token("Hi".into()),
            StreamEvent::Logprob(logprob(b'!')),
            StreamEvent::Token("!".into()),
            done(FinishReason::Length),
        ];
        let StreamEvent::Done { usage, timings, energy, .. } = done(FinishReason::Length) else { unreachable!() };
        let answer = collect(events).unwrap();
        assert_eq!(
            answer,
            Answer {
                text: "Hi!".into(),
                logprobs: vec![logprob(b'H'), logprob(b'i'), logprob(b'!')],
                finish_reason: FinishReason::Length,
                usage,
                timings,
                energy,
            }
        );
    }

    #[test]
    fn each_piece_of_text_is_handed_back_as_it_is_added() {
        let mut collector = Collector::new();
        assert_eq!(collector.feed(StreamEvent::Token("Bon".into())), Ok(Fed::Text("Bon")));
        assert_eq!(collector.feed(StreamEvent::Logprob(logprob(b'j'))), Ok(Fed::Logprob));
        assert_eq!(collector.feed(StreamEvent::Token("jour ☕".into())), Ok(Fed::Text("jour ☕")));
        assert_eq!((collector.text(), collector.logprobs()), ("Bonjour ☕", &[logprob(b'j')][..]));
        let Ok(Fed::Done(answer)) = collector.feed(done(FinishReason::Stop)) else { panic!("no answer") };
        assert_eq!((answer.text.as_str(), answer.finish_reason), ("Bonjour ☕", FinishReason::Stop));
        assert_eq!((collector.text(), collector.logprobs()), ("", &[][..]), "the next answer starts empty");
    }

    #[test]
    fn an_answer_without_text_is_empty() {
        let answer = collect([done(FinishReason::Cancelled)]).unwrap();
        assert_eq!((answer.text.as_str(), answer.logprobs.len()), ("", 0));
        assert_eq!(answer.finish_reason, FinishReason::Cancelled);
    }

    #[test]
    fn a_stream_error_is_the_answers_error_even_after_text() {
        let error = GenerateError::Backend("decode failed".into());
        let events = [StreamEvent::Token("partial".into()), StreamEvent::Error(error.clone())];
        assert_eq!(collect(events), Err(error.clone()));
        let mut collector = Collector::new();
        assert_eq!(collector.feed(StreamEvent::Error(error.clone())), Err(error));
    }

    #[test]
    fn a_stream_that_stops_before_its_end_is_an_engine_that_stopped() {
        let events = [StreamEvent::Token("half an ans".into())];
        assert!(matches!(collect(events), Err(GenerateError::EngineStopped(_))));
        assert!(matches!(collect([]), Err(GenerateError::EngineStopped(_))));
    }

    #[test]
    fn events_after_the_end_are_not_read() {
        let events = [done(FinishReason::Stop), StreamEvent::Error(GenerateError::Backend("late".into()))];
        assert_eq!(collect(events).unwrap().finish_reason, FinishReason::Stop);
    }
}
