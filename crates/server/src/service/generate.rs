//! Generation, whatever the dialect: sampling parameters from the model's stored ones and
//! the request's, preparation on a blocking thread (given up when the client goes away),
//! and the engine's events as a stream (which holds the model's lease, and cancels the
//! request when the client goes away).

use super::{Lease, Service, ServiceError};
use crate::metrics::Metrics;
use futures_util::stream::{self, Stream, StreamExt};
use hearth_core::parameters::{self, StoredParameters};
use hearth_core::think::{Sorted, ThinkSplitter};
use hearth_core::{
    ChatMessage, Collector, EnergyPrices, EnergyReport, Fed, FinishReason, GenerateRequest, Prompt, Role,
    SamplingParams, StreamEvent, Timings, TokenLogprob, Usage,
};
use hearth_engine::{Cancellation, Prepared};
use hearth_store::ModelSpec;
use serde_json::{Map, Value};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// The model's stored parameters, then the request's (Ollama names), over the defaults.
pub fn sampling(stored: &StoredParameters, options: &Map<String, Value>) -> Result<SamplingParams, String> {
    let (params, ignored) = stored.sampling();
    let mut params = params.clone();
    for message in ignored {
        tracing::warn!("stored parameter ignored: {message}");
    }
    for name in parameters::apply_all(&mut params, options, parameters::Unknown::Ignore)? {
        tracing::warn!("option {name} is not supported and was ignored");
    }
    params.validate()?;
    Ok(params)
}

/// A dialect's limit on generated tokens (`max_tokens`, `max_output_tokens`, named by
/// `field`): at least one, and a count the engine takes.
pub fn max_tokens(field: &str, value: i64) -> Result<u32, ServiceError> {
    if value < 1 {
        return Err(ServiceError::invalid(format!("{field} must be at least 1, got {value}")));
    }
    u32::try_from(value).map_err(|_| ServiceError::invalid(format!("{field} {value} is too large")))
}

/// What an OpenAI-style reasoning effort (chat's `reasoning_effort`, the Responses API's
/// `reasoning.effort`) asks of a thinking model's template (`enable_thinking`): `none` is
/// no thinking, any other effort thinking when the model can, none given leaves it to the
/// template. A model that cannot think ignores the effort: clients send one whatever the
/// model. Thinking is sent back unless this says `Some(false)`.
pub fn effort_thinking(effort: Option<&str>, model_thinks: bool) -> Option<bool> {
    match effort {
        Some("none") => Some(false),
        Some(_) if model_thinks => Some(true),
        _ => None,
    }
}

/// The end of an answer, as every dialect reports it.
pub struct Finished {
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub timings: Timings,
    pub energy: Option<EnergyReport>,
    /// What energy costs in carbon and money, as configured, to report the answer's.
    pub prices: Arc<EnergyPrices>,
    /// Generated tokens that were thinking (0 for a model that does not think).
    pub thinking_tokens: u32,
}

/// What the engine streams, as the handlers consume it.
pub enum Piece {
    /// Text of the answer, with the log-probabilities of the tokens it completes (when
    /// asked for).
    Text(String, Vec<TokenLogprob>),
    /// Text of a thinking model's thinking, kept apart from its answer.
    Thinking(String),
    Done(Finished),
    Failed(ServiceError),
}

/// Counts a request in flight until it is dropped, however it ends; the audit record of
/// the request it serves, for the tokens it uses.
struct InFlight(Arc<Metrics>, Option<Arc<crate::audit::Record>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// Renders, tokenizes and checks `request` on a blocking thread, so the async workers and
/// the engine thread never wait on a template. If the client goes away meanwhile (this
/// future is dropped), the render is told to stop; the lease, and with it the request's
/// admission permit, stays with the blocking work until it ends, so abandoned renders
/// can never outnumber the model's slots and queue.
async fn prepare(lease: Lease, request: GenerateRequest) -> Result<(Lease, Prepared), ServiceError> {
    struct CancelOnDrop(Cancellation);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let cancel = Cancellation::new();
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let prepared = tokio::task::spawn_blocking(move || {
        let prepared = lease.model.engine.prepare(request, &cancel);
        (lease, prepared)
    });
    match prepared.await {
        Ok((lease, Ok(prepared))) => Ok((lease, prepared)),
        Ok((_, Err(e))) => Err(e.into()),
        Err(e) => Err(ServiceError::Internal(format!("preparing the request failed: {e}"))),
    }
}

/// Starts a prepared request on the leased model. The stream owns the lease and the
/// engine's receiver: dropping it (a client that went away) cancels the request at the
/// engine's next step.
fn start(
    lease: Lease,
    prepared: Prepared,
    in_flight: InFlight,
    prices: Arc<EnergyPrices>,
) -> impl Stream<Item = Piece> + Send {
    let running =
        Running { events: lease.model.engine.submit(prepared), _lease: lease, in_flight, prices, last_text: None };
    stream::unfold(Some(running), move |running| async move {
        let mut running = running?;
        let metrics = &running.in_flight.0;
        let mut logprobs = Vec::new();
        let mut event = running.events.recv_async().await;
        while let Ok(StreamEvent::Logprob(logprob)) = event {
            logprobs.push(logprob);
            event = running.events.recv_async().await;
        }
        match event {
            Ok(StreamEvent::Logprob(_)) => unreachable!("taken above"),
            Ok(StreamEvent::Token(text)) => {
                let now = Instant::now();
                if let Some(last) = running.last_text {
                    metrics.token_gap(now - last);
                }
                running.last_text = Some(now);
                Some((Piece::Text(text, logprobs), Some(running)))
            }
            Ok(StreamEvent::Done { finish_reason, usage, timings, energy }) => {
                metrics.answered(&usage, timings.time_to_first_token, energy.as_ref());
                if let Some(record) = &running.in_flight.1 {
                    record.used(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens));
                }
                let prices = running.prices.clone();
                let finished = Finished { finish_reason, usage, timings, energy, prices, thinking_tokens: 0 };
                Some((Piece::Done(finished), None))
            }
            Ok(StreamEvent::Error(e)) => {
                metrics.failed();
                Some((Piece::Failed(e.into()), None))
            }
            Err(_) => {
                metrics.failed();
                Some((Piece::Failed(ServiceError::Internal("the engine stopped mid-answer".into())), None))
            }
        }
    })
}

/// A request while its answer streams: dropping it (the client went away) drops the
/// engine's receiver, which cancels the request, and the lease on its model.
struct Running {
    events: flume::Receiver<StreamEvent>,
    _lease: Lease,
    in_flight: InFlight,
    prices: Arc<EnergyPrices>,
    /// When the last text went out, for inter-token latency.
    last_text: Option<Instant>,
}

/// An answer on its way: the prompt's size, known before the first token (as Anthropic's
/// stream opens with it), and the stream of pieces, which yields every piece.
pub struct Generation<S> {
    pub prompt_tokens: u32,
    pub pieces: S,
}

impl Service {
    /// Prepares and starts `request`. An error that comes before any text is returned as the
    /// error itself, so the response can carry its status code. A chat with a model whose
    /// template thinks has its thinking apart, as [`Piece::Thinking`].
    pub async fn generate(
        &self,
        lease: Lease,
        mut request: GenerateRequest,
    ) -> Result<Generation<impl Stream<Item = Piece> + Send>, ServiceError> {
        if let Some(ceiling) = self.max_predict {
            let asked = request.sampling.max_tokens.unwrap_or(ceiling);
            request.sampling.max_tokens = Some(asked.min(ceiling));
        }
        self.metrics.started();
        let in_flight = InFlight(self.metrics.clone(), crate::audit::current());
        // A grammar shapes the answer from its first token: there is no thinking to split off.
        let thinks = matches!(request.prompt, Prompt::Chat(_)) && request.sampling.grammar.is_none() && lease.thinks();
        let (lease, prepared) = prepare(lease, request).await.inspect_err(|_| self.metrics.failed())?;
        let prompt_tokens = prepared.prompt_tokens() as u32;
        let opens_thinking = prepared.opens_thinking();
        let started = start(lease, prepared, in_flight, self.prices.clone());
        let mut pieces: Pin<Box<dyn Stream<Item = Piece> + Send>> =
            if thinks { Box::pin(split_thinking(started, opens_thinking)) } else { Box::pin(started) };
        match pieces.next().await.expect("a stream ends with Done or Failed") {
            Piece::Failed(e) => Err(e),
            first => Ok(Generation { prompt_tokens, pieces: stream::once(async move { first }).chain(pieces) }),
        }
    }

    /// The tokens `request`'s prompt takes on the leased model, as it would be prepared for
    /// an answer (template, tools and all), without answering it.
    pub async fn count_tokens(&self, lease: Lease, mut request: GenerateRequest) -> Result<u32, ServiceError> {
        // A grammar shapes only the answer; parsing one would be work for nothing.
        request.sampling.grammar = None;
        let (_, prepared) = prepare(lease, request).await?;
        Ok(prepared.prompt_tokens() as u32)
    }
}

/// `pieces` with the thinking at the start of the answer apart from the answer (`opened`:
/// the prompt left the answer inside `<think>`); the ending counts the thinking tokens.
fn split_thinking(pieces: impl Stream<Item = Piece> + Send, opened: bool) -> impl Stream<Item = Piece> + Send {
    let mut splitter = ThinkSplitter::new(opened);
    let mut thinking_tokens = 0;
    pieces.flat_map(move |piece| {
        let out = match piece {
            Piece::Text(text, logprobs) => {
                let sorted = splitter.push(&text);
                // A token held back (a tag's start) or the closing tag is thinking's too.
                if sorted.content.is_empty() {
                    thinking_tokens += 1;
                }
                sorted_pieces(sorted, logprobs)
            }
            Piece::Done(mut finished) => {
                let mut out = sorted_pieces(splitter.finish(), Vec::new());
                finished.thinking_tokens = thinking_tokens;
                out.push(Piece::Done(finished));
                out
            }
            other => vec![other],
        };
        stream::iter(out)
    })
}

/// The pieces a sorted text makes. Log-probabilities go with the answer's text only: those
/// of thinking tokens would spell out thinking that may be hidden.
fn sorted_pieces(sorted: Sorted, logprobs: Vec<TokenLogprob>) -> Vec<Piece> {
    let mut out = Vec::with_capacity(2);
    if !sorted.thinking.is_empty() {
        out.push(Piece::Thinking(sorted.thinking));
    }
    if !sorted.content.is_empty() {
        out.push(Piece::Text(sorted.content, logprobs));
    }
    out
}

/// The conversation a model is asked: its own system message (unless the request brings
/// one) and stored messages, then the request's messages.
pub fn conversation(spec: &ModelSpec, messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
    let mut conversation = Vec::with_capacity(messages.len() + spec.messages.len() + 1);
    if let Some(system) = spec.system.as_ref().filter(|_| !messages.iter().any(|m| m.role == Role::System)) {
        conversation.push(ChatMessage::system(system.clone()));
    }
    conversation.extend(spec.messages.iter().cloned());
    conversation.extend(messages);
    conversation
}

/// A whole answer.
pub struct Answer {
    pub text: String,
    /// A thinking model's thinking; empty for any other.
    pub thinking: String,
    pub logprobs: Vec<TokenLogprob>,
    pub finished: Finished,
}

/// Runs a stream to its end, its pieces fed to the collector every caller of the engine
/// uses (as the events they were made of).
pub async fn collect(pieces: impl Stream<Item = Piece>) -> Result<Answer, ServiceError> {
    let mut pieces = std::pin::pin!(pieces);
    let mut collector = Collector::new();
    let mut thinking = String::new();
    while let Some(piece) = pieces.next().await {
        match piece {
            Piece::Thinking(text) => thinking.push_str(&text),
            Piece::Text(text, logprobs) => {
                for event in logprobs.into_iter().map(StreamEvent::Logprob).chain([StreamEvent::Token(text)]) {
                    collector.feed(event)?;
                }
            }
            Piece::Done(Finished { finish_reason, usage, timings, energy, prices, thinking_tokens }) => {
                let Fed::Done(answer) = collector.feed(StreamEvent::Done { finish_reason, usage, timings, energy })?
                else {
                    unreachable!("Done ends an answer")
                };
                let hearth_core::Answer { text, logprobs, finish_reason, usage, timings, energy } = answer;
                let finished = Finished { finish_reason, usage, timings, energy, prices, thinking_tokens };
                return Ok(Answer { text, thinking, logprobs, finished });
            }
            Piece::Failed(e) => return Err(e),
        }
    }
    unreachable!("a stream ends with Done or Failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn options_override_stored_parameters_and_bad_ones_are_refused() {
        let stored = StoredParameters::read(map(json!({"temperature": 0.2, "top_k": 10})));
        let params = sampling(&stored, &map(json!({"temperature": 0.5, "num_predict": 7, "num_ctx": 2048}))).unwrap();
        assert_eq!((params.temperature, params.top_k, params.max_tokens), (0.5, 10, Some(7)));
        let params = sampling(&stored, &map(json!({"stop": ["a", "b"], "seed": 3, "num_predict": -1}))).unwrap();
        assert_eq!((params.stop.len(), params.seed, params.max_tokens), (2, Some(3), None));
        for (bad, why) in [
            (json!({"temperature": "hot"}), "not a valid value for temperature"),
            (json!({"top_k": {"x": 1}}), "wrong type"),
            (json!({"num_predict": 1e12}), "not a valid value"),
            (json!({"num_predict": 99999999999i64}), "too large"),
            (json!({"top_p": 3}), "top_p must be between 0 and 1"),
        ] {
            let err = sampling(&stored, &map(bad.clone())).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn logprob(byte: u8) -> TokenLogprob {
        TokenLogprob { bytes: vec![byte], logprob: -1.0, top: Vec::new() }
    }

    #[tokio::test]
    async fn collecting_pieces_keeps_text_logprobs_and_the_ending() {
        let usage = Usage { prompt_tokens: 4, cached_prompt_tokens: 1, completion_tokens: 2, ..Default::default() };
        let prices = Arc::new(EnergyPrices { grams_co2e_per_kwh: Some(100.0), ..EnergyPrices::default() });
        let finished = Finished {
            finish_reason: FinishReason::Length,
            usage,
            timings: Timings::default(),
            energy: None,
            prices: prices.clone(),
            thinking_tokens: 0,
        };
        let pieces = [
            Piece::Text("a".into(), vec![logprob(b'a')]),
            Piece::Text("bc".into(), vec![logprob(b'b'), logprob(b'c')]),
            Piece::Done(finished),
        ];
        let answer = collect(stream::iter(pieces)).await.ok().unwrap();
        assert_eq!((answer.text.as_str(), answer.logprobs), ("abc", vec![logprob(b'a'), logprob(b'b'), logprob(b'c')]));
        assert_eq!((answer.finished.finish_reason, answer.finished.usage), (FinishReason::Length, usage));
        assert!(Arc::ptr_eq(&answer.finished.prices, &prices));

        let failed = [Piece::Text("a".into(), Vec::new()), Piece::Failed(ServiceError::Internal("gone".into()))];
        assert!(matches!(collect(stream::iter(failed)).await, Err(ServiceError::Internal(m)) if m == "gone"));
    }
}
