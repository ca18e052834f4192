//! The engine thread's continuous-batching loop. Up to `parallel` sequences share one
//! llama.cpp context, each with a KV stream of the full context size.
//! Each step admits waiting requests into free slots (starting from the longest prefix a
//! slot has cached: the next turn of a chat), then decodes one batch holding the next token
//! of every generating sequence plus a chunk of prompt for those still prefilling, samples,
//! and streams each token out on its request's own channel. A request whose receiver is gone
//! frees its slot at the next step. Embedding requests are served one input per step
//! between decodes, so they neither stall the streams nor outlive their caller.
//! A long prompt's cache is also saved to disk when its prefill ends, and a saved one is
//! restored into a slot when it serves more of a prompt than any slot does ([`prompt_cache`]).
//! What to do is decided in [`policy`]; this file carries it out on llama.cpp.

mod policy;
pub(crate) mod side;

pub(crate) use policy::common_prefix;

use self::policy::{Chunk, Prefilling, Sampled, SlotView};
use crate::attribution::{self, IdleBaseline};
use crate::draft_model::{ModelDrafter, Want};
use crate::embedder::{EmbedWork, Embedder};
use crate::engine::{Job, ResolvedSettings};
use crate::lookup::{self, DraftLength};
use crate::prepare::Prepared;
use crate::prompt_cache::SavedPrompts;
use crate::sampler::{self, TokenPicker};
use crate::scorer::{ScoreWork, Scorer};
use crate::stop::{StopMatcher, StopOutcome};
use crate::utf8_stream::Utf8Stream;
use hearth_core::{
    EnergyMeter, EnergyReport, FinishReason, GenerateError, StreamEvent, Timings, TokenLogprob, TopLogprob, Usage,
    MAX_TOP_LOGPROBS,
};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::LlamaStateSeqFlags;
use side::SideWork;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub(crate) struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    settings: ResolvedSettings,
    /// Attention window of sliding-window layers (0: none). Those layers keep only the
    /// last window of positions, which limits how much of a cached prefix can be reused.
    sliding_window: u64,
    slots: Vec<Slot>,
    meter: Option<Box<dyn EnergyMeter>>,
    idle: IdleBaseline,
    /// Counts admissions: orders slots by last use and prompts by arrival.
    clock: u64,
    /// The model's own pooling type, for embeddings (`None`: a generative model).
    pooling: Option<u32>,
    /// Made on the first embedding request.
    embedder: Option<Embedder<'m>>,
    /// Embedding requests in arrival order; the first is worked on, an input per step.
    embeds: VecDeque<EmbedWork>,
    /// Made on the first scoring request.
    scorer: Option<Scorer<'m>>,
    /// Scoring requests in arrival order; the first is worked on, a batch per step.
    scores: VecDeque<ScoreWork>,
    /// Prompt lookup's longest draft, when it drafts (see [`lookup`]).
    lookup: Option<usize>,
    /// The draft model and its longest draft, when one drafts (see [`crate::draft_model`]).
    drafter: Option<(ModelDrafter<'m>, usize)>,
    /// Prompt caches saved to disk, when they are on.
    saved: Option<SavedPrompts>,
}

/// What a scheduler may have besides a model and its context.
#[derive(Default)]
pub(crate) struct Helpers<'m> {
    pub meter: Option<Box<dyn EnergyMeter>>,
    pub saved: Option<SavedPrompts>,
    pub drafter: Option<ModelDrafter<'m>>,
}

struct Slot {
    seq: i32,
    /// Tokens whose keys and values are in the KV cache for this sequence, from position 0.
    cached: Vec<LlamaToken>,
    last_used: u64,
    active: Option<Box<Active>>,
}

/// A request waiting for a prefix that another slot is computing.
#[derive(Debug, Clone, Copy)]
struct Wait {
    /// The slot computing it, and the admission of the request there.
    donor: usize,
    arrival: u64,
    /// Prompt tokens the donor will hold, and those the waiting slot's own cache serves.
    shared: usize,
    own: usize,
}

impl Slot {
    /// What the slot's cache will hold once its request's prompt is in (a slot waiting for a copy
    /// has nothing to give).
    fn holding(&self) -> Option<&[LlamaToken]> {
        match &self.active {
            None => Some(&self.cached),
            Some(active) if active.waiting.is_some() => None,
            Some(active) if active.pending.is_none() && active.prefilled < active.prompt.len() => Some(&active.prompt),
            Some(_) => Some(&self.cached),
        }
    }
}

/// A request in a slot.
struct Active {
    events: flume::Sender<StreamEvent>,
    submitted: Instant,
    admitted: Instant,
    arrival: u64,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens served from the cache.
    reused: usize,
    /// Set while the request waits for another slot to compute the prefix it will copy.
    waiting: Option<Wait>,
    /// Prompt tokens in the cache so far (from `reused` up to the whole prompt).
    prefilled: usize,
    prefill_done: Option<Instant>,
    /// The token sampled last, to be decoded at the next step.
    pending: Option<LlamaToken>,
    /// Where this sequence's logits are in the step's batch, when it has any.
    logits_at: Option<i32>,
    /// Tokens drafted to follow `pending`, in the step's batch right after it, for the
    /// model to verify: their cache cells are beyond `cached` until accepted.
    draft: Vec<LlamaToken>,
    draft_length: DraftLength,
    /// Tokens drafted and tokens of those accepted, for the request's report.
    drafted: u32,
    accepted: u32,
    picker: TokenPicker,
    utf8: Utf8Stream,
    /// The bytes of the token being detokenized, reused from token to token.
    piece: Vec<u8>,
    stops: StopMatcher,
    max_tokens: Option<u32>,
    ignore_eos: bool,
    /// How many alternatives to report with each token's log-probability, if asked.
    logprobs: Option<usize>,
    generated: u32,
    first_token_at: Option<Instant>,
    last_token_at: Option<Instant>,
    prefill_joules: f64,
    decode_joules: f64,
    /// A meter read failed during a step this request was in: its figure would be short.
    unmetered: bool,
}

impl<'m> Scheduler<'m> {
    pub fn new(
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        settings: ResolvedSettings,
        sliding_window: u64,
        pooling: Option<u32>,
        helpers: Helpers<'m>,
    ) -> Self {
        let Helpers { meter, saved, drafter } = helpers;
        let batch = LlamaBatch::new(settings.batch_size as usize, 1);
        let slots = (0..settings.parallel as i32)
            .map(|seq| Slot { seq, cached: Vec::new(), last_used: 0, active: None })
            .collect();
        // A recurrent model's state cannot drop the cells of rejected drafts.
        let drafts = !model.is_recurrent() && !model.is_hybrid();
        if !drafts && (settings.lookup.is_some() || drafter.is_some()) {
            tracing::warn!(
                "speculative decoding is off: this model's recurrent state cannot take back rejected drafts"
            );
        }
        let lookup = settings.lookup.map(|max| max as usize).filter(|_| drafts);
        let drafter = drafter.zip(settings.draft).map(|(drafter, max)| (drafter, max as usize)).filter(|_| drafts);
        Self {
            model,
            ctx,
            batch,
            settings,
            sliding_window,
            slots,
            meter,
            idle: IdleBaseline::default(),
            clock: 0,
            pooling,
            embedder: None,
            embeds: VecDeque::new(),
            scorer: None,
            scores: VecDeque::new(),
            lookup,
            drafter,
            saved,
        }
    }

    /// One decode of a single token, then an empty cache, as llama.cpp's tools do after
    /// loading: weight pages are faulted in and llama.cpp's buffers and thread pool set up
    /// now, so the first request's time to first token is not paying for them.
    pub fn warm_up(&mut self) -> Result<(), GenerateError> {
        self.batch.clear();
        self.batch.add(self.model.vocab().bos(), 0, &[0], true).map_err(backend_error)?;
        let warmed = self.ctx.decode(&mut self.batch).map_err(backend_error);
        self.ctx.clear_kv_cache();
        warmed
    }

    /// Serves requests until the queue closes and the last answer is out, or until `stop`
    /// is raised: then every request in hand ends at once.
    pub fn run(&mut self, jobs: &flume::Receiver<Job>, stop: &AtomicBool) {
        loop {
            if stop.load(Ordering::SeqCst) {
                return self.abandon_all(jobs);
            }
            if self.active_count() == 0 && self.embeds.is_empty() && self.scores.is_empty() {
                if let Some(joules) = self.read_meter() {
                    self.idle.idle(Instant::now(), joules);
                }
                let Ok(job) = jobs.recv() else { return };
                if let Some(joules) = self.read_meter() {
                    self.idle.busy(Instant::now(), joules);
                }
                self.admit(job);
                continue;
            }
            while self.slots.iter().any(|s| s.active.is_none()) {
                match jobs.try_recv() {
                    Ok(job) => self.admit(job),
                    Err(_) => break,
                }
            }
            self.embed_next();
            self.score_next();
            if self.active_count() > 0 {
                self.step();
            }
        }
    }

    /// At a stop: every running request, embedding and queued job gets an error.
    fn abandon_all(&mut self, jobs: &flume::Receiver<Job>) {
        let stopped = || GenerateError::EngineStopped("the model was stopped (the server is shutting down)".into());
        for slot in &mut self.slots {
            if let Some(active) = slot.active.take() {
                let _ = active.events.send(StreamEvent::Error(stopped()));
            }
        }
        for work in self.embeds.drain(..) {
            SideWork::<Embedder>::fail(work, stopped());
        }
        for work in self.scores.drain(..) {
            SideWork::<Scorer>::fail(work, stopped());
        }
        for job in jobs.try_iter() {
            match job {
                Job::Generate { events, .. } => drop(events.send(StreamEvent::Error(stopped()))),
                Job::Embed { reply, .. } => drop(reply.send(Err(stopped()))),
                Job::Score { reply, .. } => drop(reply.send(Err(stopped()))),
                Job::Wake => {}
            }
        }
    }

    fn active_count(&self) -> usize {
        self.slots.iter().filter(|s| s.active.is_some()).count()
    }

    /// Joules so far by the meter, if there is one and it reads.
    fn read_meter(&mut self) -> Option<f64> {
        let meter = self.meter.as_mut()?;
        meter.joules().map_err(|e| tracing::warn!("energy meter: {e}")).ok()
    }

    /// Starts a generation in a free slot, or queues an embedding request.
    fn admit(&mut self, job: Job) {
        match job {
            Job::Generate { prepared, events } => self.admit_generation(*prepared, events),
            Job::Embed { request, reply } => self.embeds.push_back(EmbedWork::new(request, reply)),
            Job::Score { tokens, top, reply } => self.scores.push_back(ScoreWork::new(tokens, top, reply)),
            Job::Wake => {}
        }
    }

    /// Embeds the next input of the oldest embedding request (see [`side::step`]).
    fn embed_next(&mut self) {
        let (model, settings, pooling) = (self.model, self.settings, self.pooling);
        let make = || Embedder::new(model, settings.context_size, settings.threads, pooling);
        side::step(&mut self.embeds, &mut self.embedder, make, "embedding");
    }

    /// Scores the next batch of the oldest scoring request (see [`side::step`]).
    fn score_next(&mut self) {
        let (model, settings) = (self.model, self.settings);
        side::step(
            &mut self.scores,
            &mut self.scorer,
            || Scorer::new(model, settings.context_size, settings.threads),
            "scoring",
        );
    }

    /// Puts a request into the free slot whose cache shares the longest prefix with its
    /// prompt (else the one used least recently), or answers it with an error.
    fn admit_generation(&mut self, prepared: Prepared, events: flume::Sender<StreamEvent>) {
        let Prepared { request, prompt, picker, submitted, .. } = prepared;
        let slots =
            self.slots.iter().map(|s| SlotView { busy: s.active.is_some(), cached: &s.cached, last_used: s.last_used });
        let Some(choice) = policy::choose_slot(slots, &prompt) else {
            unreachable!("admit is called only with a free slot");
        };
        let index = choice.index;
        let holdings = self.slots.iter().map(Slot::holding);
        let donor = policy::prefix_donor(holdings, &prompt, choice, self.settings.context_size as usize);
        // A saved file that serves more than any slot could is read back into the chosen slot.
        let in_memory = donor.map_or(choice.reusable, |donor| donor.reusable);
        let window = self.sliding_window;
        let saved =
            self.saved.as_mut().and_then(|saved| policy::saved_donor(saved.holdings(), &prompt, in_memory, window));
        let restored = saved.is_some_and(|found| self.restore(index, found.index));
        let (reused, waiting) = match donor {
            _ if restored => (self.reuse_prefix(index, policy::reusable(&self.slots[index].cached, &prompt)), None),
            Some(donor) if policy::reusable(&self.slots[donor.index].cached, &prompt) < donor.reusable => {
                // Another request is computing this prefix now: wait for it, then copy.
                let arrival = self.slots[donor.index].active.as_ref().map_or(0, |a| a.arrival);
                let wait = Wait { donor: donor.index, arrival, shared: donor.reusable, own: choice.reusable };
                (0, Some(wait))
            }
            Some(donor) if self.copy_cache(donor.index, index) => (self.reuse_prefix(index, donor.reusable), None),
            // The slot's own cache (empty if a restore failed half way).
            _ => (self.reuse_prefix(index, policy::reusable(&self.slots[index].cached, &prompt)), None),
        };
        self.clock += 1;
        let params = &request.sampling;
        let slot = &mut self.slots[index];
        slot.last_used = self.clock;
        slot.active = Some(Box::new(Active {
            events,
            submitted,
            admitted: Instant::now(),
            arrival: self.clock,
            prompt,
            reused,
            waiting,
            prefilled: reused,
            prefill_done: None,
            pending: None,
            logits_at: None,
            draft: Vec::new(),
            draft_length: DraftLength::new(self.lookup.unwrap_or(0)),
            drafted: 0,
            accepted: 0,
            picker,
            utf8: Utf8Stream::default(),
            piece: Vec::with_capacity(32),
            stops: StopMatcher::new(&params.stop),
            max_tokens: params.max_tokens,
            ignore_eos: params.ignore_eos,
            logprobs: request.logprobs.map(|n| n.min(MAX_TOP_LOGPROBS) as usize),
            generated: 0,
            first_token_at: None,
            last_token_at: None,
            prefill_joules: 0.0,
            decode_joules: 0.0,
            unmetered: false,
        }));
    }

    /// Keeps the first `reusable` tokens slot `index` has cached (what it shares with the
    /// prompt) and drops the rest of its cache. Returns how many prompt tokens need no
    /// recomputation: `reusable`, or 0 where the cache could not be cut there or
    /// sliding-window layers have let part of the prefix go.
    fn reuse_prefix(&mut self, index: usize, reusable: usize) -> usize {
        let slot = &mut self.slots[index];
        let seq = slot.seq;
        // Never more than the slot holds: a wait's `own` was counted before a failed restore
        // may have emptied it.
        let mut reuse = reusable.min(slot.cached.len());
        if reuse < slot.cached.len() {
            let removed = self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(reuse as u32), None).unwrap_or(false);
            if !removed {
                reuse = 0;
            }
        }
        if reuse > 0 && self.sliding_window > 0 {
            // Sliding-window layers may already have evicted positions the next tokens
            // attend to; then the prefix cannot be reused.
            let oldest_kept = u64::try_from(self.ctx.kv_cache_seq_pos_min(seq)).unwrap_or(0);
            reuse = policy::window_limited(reuse, oldest_kept, self.sliding_window);
        }
        if reuse == 0 {
            self.forget(index);
        } else {
            self.slots[index].cached.truncate(reuse);
        }
        reuse
    }

    /// Starts each waiting request whose donor has computed the prefix it waits for, or has
    /// stopped computing it (finished, cancelled, failed): from a copy of what the donor
    /// holds when that pays, else from its own slot's cache.
    fn end_waits(&mut self) {
        let context_size = self.settings.context_size as usize;
        for index in 0..self.slots.len() {
            let Some(wait) = self.slots[index].active.as_ref().and_then(|a| a.waiting) else { continue };
            let donor = &self.slots[wait.donor];
            let prompt = &self.slots[index].active.as_ref().expect("waiting").prompt;
            let computing = donor.active.as_ref().is_some_and(|a| a.arrival == wait.arrival && a.pending.is_none());
            let held = policy::reusable(&donor.cached, prompt);
            if computing && held < wait.shared {
                continue;
            }
            let copy = policy::copy_pays(held, wait.own, context_size);
            let reuse = if copy && self.copy_cache(wait.donor, index) { held } else { wait.own };
            let reused = self.reuse_prefix(index, reuse);
            let active = self.slots[index].active.as_mut().expect("waiting");
            active.waiting = None;
            active.reused = reused;
            active.prefilled = reused;
        }
    }

    /// Makes slot `to`'s cache a copy of slot `from`'s. Each slot has a stream of its own,
    /// which llama.cpp copies whole, at the start of the next decode (before that decode
    /// writes anything); the cells' positions and the tokens they hold are copied now.
    fn copy_cache(&mut self, from: usize, to: usize) -> bool {
        let (source, target) = (self.slots[from].seq, self.slots[to].seq);
        match self.ctx.copy_kv_cache_seq(source, target, None, None) {
            Ok(()) => {
                self.slots[to].cached = self.slots[from].cached.clone();
                true
            }
            Err(e) => {
                tracing::warn!("copying slot {from}'s cache to slot {to}: {e}");
                false
            }
        }
    }

    /// Makes slot `index`'s cache the saved file `entry` holds. `false` when the file does not
    /// read or llama.cpp refuses its state; the slot's cache is then as it was, or empty.
    fn restore(&mut self, index: usize, entry: usize) -> bool {
        let started = Instant::now();
        let Some(saved) = self.saved.as_mut() else { return false };
        let Some(restored) = saved.load(entry) else { return false };
        self.forget(index);
        let seq = self.slots[index].seq;
        // SAFETY: the bytes are a state llama.cpp wrote for a context of this model with these
        // settings (the file's key says so, and its checksum that they are as written); and
        // llama.cpp checks a state's shape as it reads it.
        let set = unsafe { self.ctx.state_seq_set_data_ext(restored.state(), seq, LlamaStateSeqFlags::empty()) };
        if !set {
            let saved = self.saved.as_mut().expect("read from it");
            let entry = saved.entry_of(&restored.tokens);
            if let Some(entry) = entry {
                saved.reject(entry, "llama.cpp could not restore its state");
            }
            self.forget(index);
            return false;
        }
        tracing::info!(
            "restored {} prompt tokens from a saved cache in {} ms",
            restored.tokens.len(),
            started.elapsed().as_millis()
        );
        self.slots[index].cached = restored.tokens;
        true
    }

    /// Saves slot `index`'s cache, which holds a prompt just prefilled, when that is worth a
    /// file ([`SavedPrompts::worth_saving`]). Its state is copied out here; the file is
    /// written by the cache's own thread.
    fn save_prompt(&mut self, index: usize) {
        let Some(saved) = self.saved.as_mut() else { return };
        let slot = &self.slots[index];
        if !saved.worth_saving(&slot.cached) {
            return;
        }
        let flags = LlamaStateSeqFlags::empty();
        let size = self.ctx.state_seq_get_size_ext(slot.seq, flags);
        if size == 0 || !saved.fits(size) {
            return;
        }
        let mut state = vec![0u8; size];
        // SAFETY: `state` has the room llama.cpp just said this sequence's state takes.
        let written = unsafe { self.ctx.state_seq_get_data_ext(state.as_mut_ptr(), slot.seq, flags) };
        if written != size {
            tracing::warn!("prompt cache: llama.cpp wrote {written} of a {size}-byte state; not saved");
            return;
        }
        saved.save(slot.cached.clone(), state);
    }

    fn forget(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        let _ = self.ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
        slot.cached.clear();
    }

    /// One decode: the pending token of each generating sequence, then prompt chunks of
    /// prefilling ones (oldest request first) in what room the batch has left.
    fn step(&mut self) {
        self.end_waits();
        self.batch.clear();
        let mut tokens_in_step = vec![0usize; self.slots.len()];
        // Room for drafts once every generating sequence has its pending token in; while a
        // prompt waits to be prefilled, drafts take at most half of it, so it still advances.
        let generating = self.slots.iter().filter(|s| s.active.as_ref().is_some_and(|a| a.pending.is_some())).count();
        let prefilling =
            self.slots.iter().any(|s| s.active.as_ref().is_some_and(|a| a.pending.is_none() && a.waiting.is_none()));
        let room = (self.settings.batch_size as usize).saturating_sub(generating);
        let mut draft_room = if prefilling { room / 2 } else { room };
        let context_size = self.settings.context_size as usize;
        // The step's energy includes the draft model's decodes.
        let joules_before = self.read_meter();
        let drafts = self.drafts(&mut draft_room, context_size);
        for ((i, slot), draft) in self.slots.iter_mut().enumerate().zip(drafts) {
            let Some(active) = slot.active.as_mut() else { continue };
            active.logits_at = None;
            active.draft = draft;
            let Some(token) = active.pending else { continue };
            if self.batch.add(token, slot.cached.len() as i32, &[slot.seq], true).is_err() {
                active.draft.clear();
                continue;
            }
            active.logits_at = Some(self.batch.n_tokens() - 1);
            let first = slot.cached.len() + 1;
            for (offset, &drafted) in active.draft.iter().enumerate() {
                self.batch.add(drafted, (first + offset) as i32, &[slot.seq], true).expect("room was counted");
            }
            tokens_in_step[i] = 1 + active.draft.len();
        }
        let decoding = self.batch.n_tokens() as usize;
        let (prefilling, waiting): (Vec<usize>, Vec<Prefilling>) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| {
                let active = slot.active.as_ref().filter(|a| a.pending.is_none() && a.waiting.is_none())?;
                Some((i, Prefilling { arrival: active.arrival, remaining: active.prompt.len() - active.prefilled }))
            })
            .unzip();
        for Chunk { index, tokens: take } in
            policy::prefill_chunks(self.settings.batch_size as usize, decoding, &waiting)
        {
            let i = prefilling[index];
            let slot = &mut self.slots[i];
            let active = slot.active.as_mut().expect("filtered on active");
            let remaining = &active.prompt[active.prefilled..];
            let completes = take == remaining.len();
            let start = slot.cached.len();
            for (offset, &token) in remaining[..take].iter().enumerate() {
                let last = completes && offset == take - 1;
                self.batch.add(token, (start + offset) as i32, &[slot.seq], last).expect("room was counted");
            }
            if completes {
                active.logits_at = Some(self.batch.n_tokens() - 1);
            }
            tokens_in_step[i] = take;
        }

        if let Err(e) = self.ctx.decode(&mut self.batch) {
            self.fail_step(&tokens_in_step, &backend_error(e));
            return;
        }
        let joules_after = self.read_meter();
        let shares = match (joules_before, joules_after) {
            (Some(before), Some(after)) => Some(attribution::split(after - before, &tokens_in_step)),
            _ => None,
        };
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(active) = slot.active.as_mut().filter(|_| tokens_in_step[i] > 0) else { continue };
            match (&shares, active.pending) {
                (Some(shares), Some(_)) => active.decode_joules += shares[i],
                (Some(shares), None) => active.prefill_joules += shares[i],
                (None, _) => active.unmetered = true,
            }
        }
        // What this step put in the cache, and the prompts it completed.
        let mut prefilled = Vec::new();
        for (index, (slot, &n)) in self.slots.iter_mut().zip(&tokens_in_step).enumerate() {
            let Some(active) = slot.active.as_mut() else { continue };
            match active.pending.take() {
                // Its draft's cells are taken into `cached` as they are accepted.
                Some(token) if n >= 1 => slot.cached.push(token),
                Some(token) => active.pending = Some(token),
                None => {
                    slot.cached.extend_from_slice(&active.prompt[active.prefilled..active.prefilled + n]);
                    active.prefilled += n;
                    if n > 0 && active.prefilled == active.prompt.len() {
                        prefilled.push(index);
                    }
                }
            }
        }
        let now = Instant::now();
        for index in 0..self.slots.len() {
            self.after_step(index, now);
        }
        // After the first token went out; the answer's first token is not in the cache yet.
        for index in prefilled {
            self.save_prompt(index);
        }
    }

    /// Each slot's draft for this step (empty for most): up to the room `draft_room` leaves
    /// (taken from it in slot order), the context, the request's `max_tokens` and the
    /// drafter's own longest, from prompt lookup or the draft model.
    fn drafts(&mut self, draft_room: &mut usize, context_size: usize) -> Vec<Vec<LlamaToken>> {
        let mut drafts = vec![Vec::new(); self.slots.len()];
        let model_longest = self.drafter.as_ref().map(|(_, longest)| *longest);
        if self.lookup.is_none() && model_longest.is_none() {
            return drafts;
        }
        let mut longest = vec![0; self.slots.len()];
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(active) = slot.active.as_mut() else { continue };
            let Some(token) = active.pending else { continue };
            // A draft never reaches past the context's last cell or the request's limit.
            let context_left = context_size.saturating_sub(slot.cached.len() + 2);
            let tokens_left = active.max_tokens.map_or(usize::MAX, |max| max.saturating_sub(active.generated) as usize);
            let wanted = model_longest.unwrap_or_else(|| active.draft_length.get());
            longest[i] = wanted.min(*draft_room).min(context_left).min(tokens_left);
            *draft_room -= longest[i];
            // The history a draft follows: the cache and the pending token (taken off below).
            slot.cached.push(token);
        }
        match &mut self.drafter {
            Some((drafter, _)) => {
                let wants: Vec<Want<'_>> = (self.slots.iter().enumerate())
                    .filter(|(i, _)| longest[*i] > 0)
                    .map(|(slot, s)| Want { slot, history: &s.cached, longest: longest[slot] })
                    .collect();
                let slots: Vec<usize> = wants.iter().map(|w| w.slot).collect();
                for (slot, draft) in slots.into_iter().zip(drafter.drafts(&wants)) {
                    drafts[slot] = draft;
                }
            }
            None => {
                for (i, slot) in self.slots.iter().enumerate().filter(|(i, _)| longest[*i] > 0) {
                    drafts[i] = lookup::draft(&slot.cached, longest[i]);
                }
            }
        }
        for slot in &mut self.slots {
            if slot.active.as_ref().is_some_and(|a| a.pending.is_some()) {
                slot.cached.pop();
            }
        }
        drafts
    }

    /// A failed decode ends every request that was in it; their caches are dropped, since
    /// the failed batch may have left part of itself behind.
    fn fail_step(&mut self, tokens_in_step: &[usize], error: &GenerateError) {
        for (index, &tokens) in tokens_in_step.iter().enumerate() {
            if tokens > 0 {
                if let Some(active) = self.slots[index].active.take() {
                    let _ = active.events.send(StreamEvent::Error(error.clone()));
                }
                self.forget(index);
            }
        }
    }

    /// Samples a sequence whose logits came out of this step and streams the token, or
    /// notices a client that went away. With a draft, each drafted token the sampler picks
    /// too is accepted (its cell is already computed) and the next is sampled from its
    /// logits, until one differs: that one is the sequence's next token. Every token is
    /// picked from the model's own logits in order, so the answer is the one it would be
    /// without the draft, sampled ones included.
    fn after_step(&mut self, index: usize, now: Instant) {
        let context_size = self.settings.context_size as usize;
        let vocab = self.model.vocab();
        let slot = &mut self.slots[index];
        let Some(active) = slot.active.as_mut() else { return };
        let Some(mut logits_at) = active.logits_at else {
            if active.events.is_disconnected() {
                self.finish(index, FinishReason::Cancelled);
            }
            return;
        };
        active.prefill_done.get_or_insert(now);
        let drafted = active.draft.len();
        let mut accepted = 0;
        let finished = loop {
            let token = active.picker.pick(&self.ctx, logits_at);
            if let Some(top) = active.logprobs {
                let logprob = token_logprob(self.model, self.ctx.get_logits_ith(logits_at), token, top);
                let _ = active.events.send(StreamEvent::Logprob(logprob));
            }
            active.generated += 1;
            let picked_at = Instant::now();
            active.last_token_at = Some(picked_at);
            active.first_token_at.get_or_insert(picked_at);
            let mut sampled = Sampled {
                ends_generation: policy::ends_generation(vocab.is_eog(token), active.ignore_eos),
                generated: active.generated,
                max_tokens: active.max_tokens,
                cached: slot.cached.len(),
                context_size,
                ..Sampled::default()
            };
            if !sampled.ends_generation {
                active.piece.clear();
                vocab.token_to_piece_into(token, &mut active.piece, false, None);
                let text = active.utf8.push(&active.piece);
                match active.stops.push(&text) {
                    StopOutcome::Continue(text) => {
                        sampled.undelivered = !text.is_empty() && active.events.send(StreamEvent::Token(text)).is_err();
                    }
                    StopOutcome::Stopped(text, stop) => {
                        if !text.is_empty() {
                            let _ = active.events.send(StreamEvent::Token(text));
                        }
                        sampled.stop_matched = Some(stop);
                    }
                }
            }
            sampled.disconnected = active.events.is_disconnected();
            if let Some(reason) = policy::finish_reason(&sampled) {
                break Some(reason);
            }
            if active.draft.get(accepted) == Some(&token) {
                slot.cached.push(token);
                accepted += 1;
                logits_at += 1;
                continue;
            }
            active.pending = Some(token);
            break None;
        };
        if drafted > 0 {
            active.drafted += drafted as u32;
            active.accepted += accepted as u32;
            active.draft_length.update(drafted, accepted);
        }
        if accepted < drafted || (drafted > 0 && finished.is_some()) {
            // The rejected drafts' cells (and an accepted one that ended the answer) go.
            let seq = slot.seq;
            let kept = slot.cached.len() as u32;
            if !self.ctx.clear_kv_cache_seq(Some(seq as u32), Some(kept), None).unwrap_or(false) {
                let error = GenerateError::Backend("the cache could not drop a rejected draft".into());
                if let Some(active) = self.slots[index].active.take() {
                    let _ = active.events.send(StreamEvent::Error(error));
                }
                return self.forget(index);
            }
        }
        if let Some(reason) = finished {
            self.finish(index, reason);
        }
    }

    /// Sends a request's last text and its `Done` report, and frees its slot; the slot's
    /// cache stays for a later request with the same prefix.
    fn finish(&mut self, index: usize, finish_reason: FinishReason) {
        let Some(mut active) = self.slots[index].active.take() else { return };
        if finish_reason != FinishReason::Cancelled {
            // A character or a stop-string prefix held back is plain text now.
            let mut tail = match active.stops.push(&active.utf8.finish()) {
                StopOutcome::Continue(text) | StopOutcome::Stopped(text, _) => text,
            };
            tail.push_str(&active.stops.finish());
            if !tail.is_empty() {
                let _ = active.events.send(StreamEvent::Token(tail));
            }
        }
        let now = Instant::now();
        let energy = self.meter.as_ref().filter(|_| !active.unmetered).map(|meter| EnergyReport {
            prefill_joules: active.prefill_joules,
            decode_joules: active.decode_joules,
            seconds: (now - active.admitted).as_secs_f64(),
            idle_watts: self.idle.watts,
            source: meter.source(),
        });
        let last = active.last_token_at.unwrap_or(now);
        let first = active.first_token_at.unwrap_or(last);
        let timings = Timings {
            prompt_eval: active.prefill_done.unwrap_or(now) - active.admitted,
            eval: last - first,
            time_to_first_token: first - active.submitted,
        };
        let usage = Usage {
            prompt_tokens: active.prompt.len() as u32,
            cached_prompt_tokens: active.reused as u32,
            completion_tokens: active.generated,
            draft_tokens: active.drafted,
            accepted_draft_tokens: active.accepted,
        };
        let _ = active.events.send(StreamEvent::Done { finish_reason, usage, timings, energy });
    }
}

/// What the request sees of a generated token's probability, from the raw logits (as
/// llama.cpp's server reports them: before temperature, penalties or grammar).
pub(crate) fn token_logprob(model: &LlamaModel, logits: &[f32], token: LlamaToken, top: usize) -> TokenLogprob {
    let piece = |token| model.vocab().token_to_piece(token, false, None);
    let (logprob, alternatives) = sampler::logprobs(logits, token, top);
    TokenLogprob {
        bytes: piece(token),
        logprob,
        top: alternatives.into_iter().map(|(token, logprob)| TopLogprob { bytes: piece(token), logprob }).collect(),
    }
}

/// A llama.cpp failure as a request's error, with the exception it threw if it threw one.
pub(crate) fn backend_error(e: impl std::fmt::Display) -> GenerateError {
    match crate::ffi_guard::take_exception() {
        Some(what) => GenerateError::Backend(format!("{e} (llama.cpp threw: {what})")),
        None => GenerateError::Backend(e.to_string()),
    }
}
