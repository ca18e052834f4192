//! One llama.cpp context serving requests on the engine thread: prompt processing in
//! batches, KV-cache reuse of the prompt prefix a previous request left behind (the next
//! turn of a chat), sampling, and streaming whole-character text back to the caller.

use crate::engine::{Job, ResolvedSettings};
use crate::sampler::TokenPicker;
use crate::stop::{StopMatcher, StopOutcome};
use crate::template::ChatTemplate;
use crate::utf8_stream::Utf8Stream;
use hearth_core::{
    EnergyMeter, EnergyReport, EnergySource, FinishReason, GenerateError, GenerateRequest, Prompt, StreamEvent,
    Timings, Usage,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::time::Instant;

const SEQ: i32 = 0;

pub(crate) struct Session<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: ChatTemplate,
    batch: LlamaBatch<'static>,
    /// Tokens whose keys and values are in the KV cache, in order from position 0.
    cached: Vec<LlamaToken>,
    settings: ResolvedSettings,
    /// Attention window of sliding-window layers (0: none). Those layers keep only the
    /// last window of positions, which limits how much of a cached prefix can be reused.
    sliding_window: u64,
    meter: Option<Box<dyn EnergyMeter>>,
    idle: IdleBaseline,
}

/// Power drawn while no request runs: the meter is read when a request ends and when the
/// next begins, and a gap of at least `IDLE_GAP` between them is idle time.
#[derive(Default)]
struct IdleBaseline {
    last_finish: Option<(Instant, f64)>,
    watts: Option<f64>,
}

const IDLE_GAP: std::time::Duration = std::time::Duration::from_millis(500);

impl IdleBaseline {
    fn request_started(&mut self, now: Instant, joules: f64) {
        if let Some((finished, joules_then)) = self.last_finish.take() {
            let gap = now.duration_since(finished);
            if gap >= IDLE_GAP {
                self.watts = Some((joules - joules_then).max(0.0) / gap.as_secs_f64());
            }
        }
    }

    fn request_finished(&mut self, now: Instant, joules: f64) {
        self.last_finish = Some((now, joules));
    }
}

impl<'m> Session<'m> {
    pub fn new(
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        template: ChatTemplate,
        settings: ResolvedSettings,
        sliding_window: u64,
        meter: Option<Box<dyn EnergyMeter>>,
    ) -> Self {
        let batch = LlamaBatch::new(settings.batch_size as usize, 1);
        let idle = IdleBaseline::default();
        Self { model, ctx, template, batch, cached: Vec::new(), settings, sliding_window, meter, idle }
    }

    /// Joules so far by the meter, if there is one and it reads.
    fn read_meter(&mut self) -> Option<f64> {
        let meter = self.meter.as_mut()?;
        meter.joules().map_err(|e| tracing::warn!("energy meter: {e}")).ok()
    }

    /// One decode of a single token, then an empty cache, as llama.cpp's tools do after
    /// loading: weight pages are faulted in and llama.cpp's buffers and thread pool set up
    /// now, so the first request's time to first token is not paying for them.
    pub fn warm_up(&mut self) -> Result<(), GenerateError> {
        let token = self.model.vocab().bos();
        let warmed = self.decode_one(token);
        self.forget_cache();
        warmed
    }

    pub fn serve(&mut self, job: Job) {
        let Job { request, events, submitted } = job;
        let event = match self.generate(&request, &events, submitted) {
            Ok(done) => done,
            Err(e) => StreamEvent::Error(e),
        };
        let _ = events.send(event);
    }

    fn generate(
        &mut self,
        request: &GenerateRequest,
        events: &flume::Sender<StreamEvent>,
        submitted: Instant,
    ) -> Result<StreamEvent, GenerateError> {
        let started = Instant::now();
        let prompt = self.tokenize_prompt(request)?;
        let context_size = self.settings.context_size;
        if prompt.len() >= context_size as usize {
            return Err(GenerateError::PromptTooLong { prompt_tokens: prompt.len() as u32, context_size });
        }

        let reused = self.reuse_prefix(&prompt);
        let joules_at_start = self.read_meter();
        let metering_started = Instant::now();
        if let Some(joules) = joules_at_start {
            self.idle.request_started(metering_started, joules);
        }
        let mut logits_at = match self.prefill(&prompt[reused..], events) {
            Ok(Some(at)) => at,
            Ok(None) => return Ok(done(FinishReason::Cancelled, prompt.len(), reused, 0, Timings::default(), None)),
            Err(e) => {
                self.forget_cache();
                return Err(e);
            }
        };
        let prefill_done = Instant::now();
        let joules_after_prefill = self.read_meter();

        let params = &request.sampling;
        let mut picker = TokenPicker::new(params, self.model.n_vocab());
        picker.accept_prompt(&prompt[prompt.len().saturating_sub(params.repeat_last_n as usize)..]);

        let vocab = self.model.vocab();
        let mut utf8 = Utf8Stream::default();
        let mut stops = StopMatcher::new(&params.stop);
        let mut generated = 0u32;
        let mut first_token_at = None;
        let mut last_token_at;
        let mut piece = Vec::with_capacity(32);
        let finish = loop {
            let token = picker.pick(&self.ctx, logits_at);
            generated += 1;
            last_token_at = Instant::now();
            first_token_at.get_or_insert(last_token_at);
            if vocab.is_eog(token) && !params.ignore_eos {
                break FinishReason::Stop;
            }
            piece.clear();
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let text = utf8.push(&piece);
            match stops.push(&text) {
                StopOutcome::Continue(text) => {
                    if !text.is_empty() && events.send(StreamEvent::Token(text)).is_err() {
                        break FinishReason::Cancelled;
                    }
                }
                StopOutcome::Stopped(text) => {
                    if !text.is_empty() {
                        let _ = events.send(StreamEvent::Token(text));
                    }
                    break FinishReason::Stop;
                }
            }
            if params.max_tokens.is_some_and(|max| generated >= max) || self.cached.len() + 1 >= context_size as usize {
                break FinishReason::Length;
            }
            if events.is_disconnected() {
                break FinishReason::Cancelled;
            }
            if let Err(e) = self.decode_one(token) {
                self.forget_cache();
                return Err(e);
            }
            logits_at = 0;
        };

        if finish != FinishReason::Cancelled {
            // A character or a stop-string prefix held back is plain text now.
            let mut tail = match stops.push(&utf8.finish()) {
                StopOutcome::Continue(text) | StopOutcome::Stopped(text) => text,
            };
            tail.push_str(&stops.finish());
            if !tail.is_empty() {
                let _ = events.send(StreamEvent::Token(tail));
            }
        }
        let joules_at_end = self.read_meter();
        let metering_ended = Instant::now();
        if let Some(joules) = joules_at_end {
            self.idle.request_finished(metering_ended, joules);
        }
        let energy = match (joules_at_start, joules_after_prefill, joules_at_end) {
            (Some(start), Some(prefilled), Some(end)) => Some(EnergyReport {
                prefill_joules: prefilled - start,
                decode_joules: end - prefilled,
                seconds: (metering_ended - metering_started).as_secs_f64(),
                idle_watts: self.idle.watts,
                source: self.meter.as_ref().map_or(EnergySource::Estimated, |m| m.source()),
            }),
            _ => None,
        };
        let timings = Timings {
            prompt_eval: prefill_done - started,
            eval: last_token_at - first_token_at.unwrap_or(last_token_at),
            time_to_first_token: first_token_at.unwrap_or(last_token_at) - submitted,
        };
        Ok(done(finish, prompt.len(), reused, generated, timings, energy))
    }

    fn tokenize_prompt(&self, request: &GenerateRequest) -> Result<Vec<LlamaToken>, GenerateError> {
        let vocab = self.model.vocab();
        let text = match &request.prompt {
            Prompt::Chat(messages) => {
                self.template.render(messages).map_err(|e| GenerateError::InvalidRequest(e.to_string()))?
            }
            Prompt::Raw(text) => text.clone(),
            Prompt::Tokens(ids) => {
                let n_vocab = vocab.n_tokens();
                return ids
                    .iter()
                    .map(|&id| match i32::try_from(id) {
                        Ok(id) if id < n_vocab => Ok(LlamaToken(id)),
                        _ => Err(GenerateError::InvalidRequest(format!(
                            "token id {id} is outside the vocabulary (0..{n_vocab})"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .and_then(non_empty);
            }
        };
        let mut tokens = vocab.tokenize(text.as_bytes(), true, true);
        // A template that writes the BOS token itself, on a vocabulary that adds one too.
        if tokens.len() >= 2 && tokens[0] == vocab.bos() && tokens[1] == vocab.bos() {
            tokens.remove(0);
        }
        non_empty(tokens)
    }

    /// Keeps the longest cached prefix of `prompt` and drops the rest of the cache. Returns
    /// how many prompt tokens need no recomputation.
    fn reuse_prefix(&mut self, prompt: &[LlamaToken]) -> usize {
        let mut reuse = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // The last prompt token is always evaluated again: its logits start the answer.
        reuse = reuse.min(prompt.len() - 1);
        if reuse < self.cached.len() {
            let removed = self.ctx.clear_kv_cache_seq(Some(SEQ as u32), Some(reuse as u32), None).unwrap_or(false);
            if !removed {
                reuse = 0;
            }
        }
        if reuse > 0 && self.sliding_window > 0 {
            // Sliding-window layers may already have evicted positions the next tokens
            // attend to; then the prefix cannot be reused.
            let oldest_kept = u64::try_from(self.ctx.kv_cache_seq_pos_min(SEQ)).unwrap_or(0);
            if oldest_kept > (reuse as u64).saturating_sub(self.sliding_window) {
                reuse = 0;
            }
        }
        if reuse == 0 {
            self.forget_cache();
        } else {
            self.cached.truncate(reuse);
        }
        reuse
    }

    /// Evaluates `tokens` after the cached ones, a batch at a time. Returns the batch index
    /// of the last token's logits, or `None` if the caller went away meanwhile.
    fn prefill(
        &mut self,
        tokens: &[LlamaToken],
        events: &flume::Sender<StreamEvent>,
    ) -> Result<Option<i32>, GenerateError> {
        let chunks = tokens.chunks(self.settings.batch_size as usize);
        let last_chunk = chunks.len() - 1;
        for (i, chunk) in chunks.enumerate() {
            if events.is_disconnected() {
                return Ok(None);
            }
            self.batch.clear();
            let start = self.cached.len();
            for (offset, &token) in chunk.iter().enumerate() {
                let is_last = i == last_chunk && offset == chunk.len() - 1;
                self.batch.add(token, (start + offset) as i32, &[SEQ], is_last).map_err(backend_error)?;
            }
            self.ctx.decode(&mut self.batch).map_err(backend_error)?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(Some(self.batch.n_tokens() - 1))
    }

    fn decode_one(&mut self, token: LlamaToken) -> Result<(), GenerateError> {
        self.batch.clear();
        self.batch.add(token, self.cached.len() as i32, &[SEQ], true).map_err(backend_error)?;
        self.ctx.decode(&mut self.batch).map_err(backend_error)?;
        self.cached.push(token);
        Ok(())
    }

    fn forget_cache(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }
}

fn non_empty(tokens: Vec<LlamaToken>) -> Result<Vec<LlamaToken>, GenerateError> {
    if tokens.is_empty() {
        return Err(GenerateError::InvalidRequest("the prompt is empty".into()));
    }
    Ok(tokens)
}

fn backend_error(e: impl std::fmt::Display) -> GenerateError {
    GenerateError::Backend(e.to_string())
}

fn done(
    finish_reason: FinishReason,
    prompt_tokens: usize,
    cached: usize,
    completion_tokens: u32,
    timings: Timings,
    energy: Option<EnergyReport>,
) -> StreamEvent {
    let usage = Usage { prompt_tokens: prompt_tokens as u32, cached_prompt_tokens: cached as u32, completion_tokens };
    StreamEvent::Done { finish_reason, usage, timings, energy }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn idle_power_comes_from_gaps_between_requests() {
        let mut idle = IdleBaseline::default();
        let t0 = Instant::now();
        idle.request_started(t0, 0.0);
        assert_eq!(idle.watts, None, "nothing measured before the first request");
        idle.request_finished(t0 + Duration::from_secs(1), 50.0);
        // 2 s idle, 6 J: 3 W.
        idle.request_started(t0 + Duration::from_secs(3), 56.0);
        assert_eq!(idle.watts, Some(3.0));
        idle.request_finished(t0 + Duration::from_secs(4), 80.0);
        // A gap too short to measure keeps the last figure.
        idle.request_started(t0 + Duration::from_millis(4100), 80.5);
        assert_eq!(idle.watts, Some(3.0));
    }
}
