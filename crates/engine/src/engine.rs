//! A loaded model: its weights (shared, read-only) and the engine thread that owns its
//! llama.cpp context. A request is prepared (template rendered under limits, tokenized,
//! checked against the context) on the caller's thread, so a long render never stalls the
//! streams decoding; the engine thread gets only prepared requests, each with the channel
//! its answer goes back on. Dropping the receiving end cancels the request.

use crate::draft_model::{self, ModelDrafter};
use crate::error::EngineError;
use crate::gguf::MetaValue;
use crate::limits;
use crate::llama_log;
use crate::load::{backend, ModelFile};
use crate::prepare::{self, Cancellation, Prepared};
use crate::prompt_cache::{self, PromptCacheConfig, SavedPrompts};
use crate::scheduler::{Helpers, Scheduler};
use crate::scorer::Scored;
use crate::template::ChatTemplate;
use hearth_core::{
    check_top_logprobs, EmbedRequest, Embeddings, EnergyMeter, FlashAttention, GenerateError, GenerateRequest, KvCache,
    KvType, ModelInfo, StreamEvent,
};
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Context size used when the caller sets none (Ollama's default), capped by what the model
/// was trained for.
pub const DEFAULT_CONTEXT_SIZE: u32 = 4096;
pub const DEFAULT_BATCH_SIZE: u32 = 512;
/// Tokens prompt lookup drafts per step at most, unless set: a wrong draft's verification
/// costs the batch no more than 16 extra tokens.
pub const DEFAULT_DRAFT_MAX: u32 = 16;
/// Tokens a draft model drafts per step, unless set (llama.cpp's default): each costs a decode
/// of the draft model, whether the model keeps it or not.
pub const DEFAULT_MODEL_DRAFT_MAX: u32 = 3;

/// The stack of the engine thread and of the thread a request's grammar is parsed on:
/// reserved, and only used as deep as a grammar goes (llama.cpp parses and advances
/// grammars recursively by nesting).
pub(crate) const ENGINE_STACK: usize = 64 << 20;

/// How to run a model. `None` means "pick for this machine and model".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineSettings {
    /// Threads for decoding and prompt processing; default: the physical cores.
    pub threads: Option<u32>,
    /// Tokens of context (prompt + answer); default: 4096, at most the trained length.
    pub context_size: Option<u32>,
    /// Tokens per llama.cpp batch during prompt processing; default 512.
    pub batch_size: Option<u32>,
    /// Layers offloaded to a GPU; default: all of them when llama.cpp was built with a GPU
    /// backend, none otherwise.
    pub gpu_layers: Option<u32>,
    /// A Jinja chat template to use instead of the one in the model file.
    pub chat_template: Option<String>,
    /// Requests decoded together (continuous batching); default 1. Each has a KV cache of
    /// `context_size` tokens of its own.
    pub parallel: Option<u32>,
    /// The KV cache's key type; default f16.
    pub kv_keys: Option<KvType>,
    /// The KV cache's value type; default f16. A quantized one needs flash attention.
    pub kv_values: Option<KvType>,
    /// Default: llama.cpp's `auto`.
    pub flash_attention: Option<FlashAttention>,
    /// Speculative decoding by prompt lookup (drafts from the prompt and the answer so
    /// far); default off.
    pub lookup: Option<bool>,
    /// The most tokens drafted per step; default [`DEFAULT_DRAFT_MAX`] for prompt lookup,
    /// [`DEFAULT_MODEL_DRAFT_MAX`] for a draft model.
    pub draft_max: Option<u32>,
    /// Speculative decoding with this draft model (a GGUF of the same vocabulary); default
    /// none. Not with `lookup`.
    pub draft: Option<PathBuf>,
}

/// The settings a model actually runs with, after defaults were resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedSettings {
    pub threads: u32,
    pub context_size: u32,
    pub batch_size: u32,
    pub gpu_layers: u32,
    pub parallel: u32,
    pub kv_cache: KvCache,
    /// Prompt lookup's longest draft, when it is on.
    pub lookup: Option<u32>,
    /// The draft model's longest draft, when there is one.
    pub draft: Option<u32>,
}

impl EngineSettings {
    /// The settings a model was stored with: its engine parameters (Ollama's `num_ctx`,
    /// `num_batch`, `num_thread`), its chat template and its draft model. Callers put their
    /// own overrides (command-line flags, server settings) over these.
    pub fn stored(
        parameters: &hearth_core::parameters::StoredParameters,
        chat_template: Option<String>,
        draft: Option<PathBuf>,
    ) -> Result<Self, EngineError> {
        let stored = parameters.settings().map_err(EngineError::InvalidSetting)?;
        Ok(Self {
            threads: stored.num_thread,
            context_size: stored.num_ctx,
            batch_size: stored.num_batch,
            kv_keys: stored.kv_cache_type,
            kv_values: stored.kv_cache_type,
            flash_attention: stored.flash_attn,
            lookup: stored.lookup,
            draft_max: stored.draft_max,
            chat_template,
            draft,
            ..Self::default()
        })
    }

    /// These settings, each one unset taken from `below`: a command line's or a server's
    /// own over what a model was stored with.
    pub fn or(&self, below: EngineSettings) -> EngineSettings {
        EngineSettings {
            threads: self.threads.or(below.threads),
            context_size: self.context_size.or(below.context_size),
            batch_size: self.batch_size.or(below.batch_size),
            gpu_layers: self.gpu_layers.or(below.gpu_layers),
            chat_template: self.chat_template.clone().or(below.chat_template),
            parallel: self.parallel.or(below.parallel),
            kv_keys: self.kv_keys.or(below.kv_keys),
            kv_values: self.kv_values.or(below.kv_values),
            flash_attention: self.flash_attention.or(below.flash_attention),
            lookup: self.lookup.or(below.lookup),
            draft_max: self.draft_max.or(below.draft_max),
            draft: self.draft.clone().or(below.draft),
        }
    }

    /// The bounds that hold whatever the model (everything but the context's upper bound,
    /// which is the model's trained length): for a check before a model is at hand.
    pub fn check(&self) -> Result<(), EngineError> {
        limits::threads(self.threads)?;
        limits::batch_size(self.batch_size)?;
        limits::parallel(self.parallel)?;
        limits::context_size(self.context_size, u32::MAX)?;
        limits::draft_max(self.draft_max)?;
        self.kv_cache().check().map_err(EngineError::InvalidSetting)?;
        self.one_drafter()
    }

    /// Prompt lookup and a draft model do not draft together.
    fn one_drafter(&self) -> Result<(), EngineError> {
        match (self.lookup, &self.draft) {
            (Some(true), Some(_)) => Err(EngineError::InvalidSetting(
                "prompt lookup and a draft model cannot both draft: set one of them".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The KV cache these settings ask for, defaults filled in.
    pub fn kv_cache(&self) -> KvCache {
        KvCache {
            keys: self.kv_keys.unwrap_or_default(),
            values: self.kv_values.unwrap_or_default(),
            flash_attention: self.flash_attention.unwrap_or_default(),
        }
    }

    /// The settings with defaults filled in, each checked against [`limits`] and the model,
    /// so nothing out of bounds ever reaches llama.cpp.
    pub fn resolve(&self, info: &ModelInfo, gpu_offload: bool) -> Result<ResolvedSettings, EngineError> {
        let context_size = limits::model_context_size(info, self.context_size)?;
        let parallel = limits::parallel(self.parallel)?;
        let kv_cache = self.kv_cache();
        kv_cache.check().map_err(EngineError::InvalidSetting)?;
        let draft_max = limits::draft_max(self.draft_max)?;
        self.one_drafter()?;
        let lookup = self.lookup == Some(true);
        Ok(ResolvedSettings {
            threads: limits::threads(self.threads)?.unwrap_or_else(physical_cores),
            context_size,
            // A batch holds at least one token of every slot (llama.cpp requires it), and
            // never more than the whole context: llama.cpp would cut it there anyway, and
            // the batch's buffers are allocated at its full size.
            batch_size: limits::batch_size(self.batch_size)?
                .unwrap_or(DEFAULT_BATCH_SIZE)
                .min(context_size.saturating_mul(parallel))
                .max(parallel),
            gpu_layers: self.gpu_layers.unwrap_or(if gpu_offload { u32::MAX } else { 0 }),
            parallel,
            kv_cache,
            lookup: lookup.then_some(draft_max.unwrap_or(DEFAULT_DRAFT_MAX)),
            draft: self.draft.is_some().then_some(draft_max.unwrap_or(DEFAULT_MODEL_DRAFT_MAX)),
        })
    }
}

/// Physical CPU cores: llama.cpp's decode is memory-bound, and a second hyper-thread per
/// core only adds contention.
pub fn physical_cores() -> u32 {
    u32::try_from(num_cpus::get_physical()).unwrap_or(1).max(1)
}

pub(crate) enum Job {
    Generate {
        /// Boxed: a prepared request (its sampler, its prompt) is large beside the others.
        prepared: Box<Prepared>,
        events: flume::Sender<StreamEvent>,
    },
    Embed {
        request: EmbedRequest,
        reply: flume::Sender<Result<Embeddings, GenerateError>>,
    },
    Score {
        tokens: Vec<LlamaToken>,
        top: usize,
        reply: flume::Sender<Result<Scored, GenerateError>>,
    },
    /// Wakes an idle engine thread so it sees its stop flag.
    Wake,
}

/// What the caller's threads and the engine thread share: the weights and the template.
pub(crate) struct Model {
    pub llama: LlamaModel,
    pub template: ChatTemplate,
    /// The draft model of speculative decoding, if one is set.
    pub draft: Option<LlamaModel>,
}

/// What a load takes besides the model and its settings.
#[derive(Default)]
pub struct LoadOptions {
    /// Read around each request's prompt processing and decoding, so every answer reports
    /// its joules.
    pub meter: Option<Box<dyn EnergyMeter>>,
    /// Where long prompts' caches are saved, to be restored after a restart; `None`: nowhere.
    pub prompt_cache: Option<PromptCacheConfig>,
}

/// A loaded model and the thread that runs it.
pub struct Engine {
    jobs: Option<flume::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    model: Arc<Model>,
    /// Set to make the engine thread end every request it holds and return.
    stop: Arc<AtomicBool>,
    info: ModelInfo,
    path: PathBuf,
    settings: ResolvedSettings,
    load_duration: Duration,
}

impl Engine {
    /// Loads the GGUF model at `path` (memory-mapped) and starts its engine thread. Returns
    /// once the model is ready, or with the reason it cannot be.
    pub fn load(path: &Path, settings: &EngineSettings) -> Result<Self, EngineError> {
        Self::load_with(path, settings, LoadOptions::default())
    }

    /// Like [`Engine::load`], with an energy meter and saved prompt caches.
    pub fn load_with(path: &Path, settings: &EngineSettings, options: LoadOptions) -> Result<Self, EngineError> {
        let LoadOptions { meter, prompt_cache } = options;
        let draft_path = settings.draft.clone();
        let started = Instant::now();
        let file = ModelFile::open(path)?;
        let header = file.header();
        let mut info = header.model_info();
        if let Some(template) = &settings.chat_template {
            info.chat_template = Some(template.clone());
        }
        let sliding_window = header.arch_value("attention.sliding_window").and_then(MetaValue::as_u64).unwrap_or(0);
        let pooling = header.arch_value("pooling_type").and_then(MetaValue::as_u64).map(|kind| kind as u32);
        let backend = backend();
        let settings = settings.resolve(&info, backend.supports_gpu_offload())?;
        let llama = file.load(&LlamaModelParams::default().with_n_gpu_layers(settings.gpu_layers))?;
        let vocab = llama.vocab();
        let special_text = |token| String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned();
        let template =
            ChatTemplate::new(info.chat_template.as_deref(), &special_text(vocab.bos()), &special_text(vocab.eos()))?;
        let draft = match &draft_path {
            Some(draft_path) => {
                let params = LlamaModelParams::default().with_n_gpu_layers(settings.gpu_layers);
                let draft = ModelFile::open(draft_path)?.load(&params)?;
                draft_model::check_vocabulary(&llama, &draft).map_err(|e| draft_refused(draft_path, &e))?;
                Some(draft)
            }
            None => None,
        };
        let model = Arc::new(Model { llama, template, draft });
        let saved = match (prompt_cache, prompt_cache::key(path, &settings)) {
            (Some(config), Ok(key)) => Some((config, key)),
            (Some(_), Err(e)) => {
                tracing::warn!("prompt cache off: {}: {e}", path.display());
                None
            }
            (None, _) => None,
        };

        let (ready_tx, ready_rx) = flume::bounded(1);
        let (jobs_tx, jobs_rx) = flume::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("hearth-engine".into())
            // llama.cpp advances each request's grammar on this thread, recursively by nesting.
            .stack_size(ENGINE_STACK)
            .spawn({
                let (model, stop) = (model.clone(), stop.clone());
                move || {
                    let shape = Shape { sliding_window, pooling };
                    let saved = saved
                        .and_then(|(config, key)| SavedPrompts::open(&config, key, settings.context_size as usize));
                    engine_thread(&model, settings, shape, (meter, saved), &ready_tx, &jobs_rx, &stop)
                }
            })
            .map_err(|e| EngineError::Io { path: path.to_path_buf(), source: e })?;

        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                jobs: Some(jobs_tx),
                thread: Some(thread),
                model,
                stop,
                info,
                path: path.to_path_buf(),
                settings,
                load_duration: started.elapsed(),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(EngineError::Load {
                    path: path.to_path_buf(),
                    detail: "the engine thread stopped while loading".into(),
                })
            }
        }
    }

    /// Prepares `request` on the calling thread: checks its settings, renders the chat
    /// template (bounded in instructions, output size and time, and given up once
    /// `cancel` says the caller went away), tokenizes, and checks the prompt fits.
    pub fn prepare(&self, request: GenerateRequest, cancel: &Cancellation) -> Result<Prepared, GenerateError> {
        prepare::prepare(&self.model, self.settings.context_size, request, cancel)
    }

    /// Queues a prepared request; its events arrive on the returned receiver. Drop the
    /// receiver to cancel: the engine notices at its next step and frees the work.
    pub fn submit(&self, prepared: Prepared) -> flume::Receiver<StreamEvent> {
        let (events, receiver) = flume::unbounded();
        let job = Job::Generate { prepared: Box::new(prepared), events: events.clone() };
        if self.jobs.as_ref().expect("present until drop").send(job).is_err() {
            let _ = events.send(StreamEvent::Error(unloaded()));
        }
        receiver
    }

    /// [`Engine::prepare`] and [`Engine::submit`] in one, for callers on a thread of their
    /// own: a request that cannot be prepared gets its error as the stream's only event.
    pub fn generate(&self, request: GenerateRequest) -> flume::Receiver<StreamEvent> {
        match self.prepare(request, &Cancellation::never()) {
            Ok(prepared) => self.submit(prepared),
            Err(e) => {
                let (events, receiver) = flume::bounded(1);
                let _ = events.send(StreamEvent::Error(e));
                receiver
            }
        }
    }

    /// Queues an embedding request; the vectors arrive on the returned receiver. The
    /// engine thread embeds one input at a time between decoding steps, so chats on this
    /// model keep streaming, and gives up once the receiver is dropped.
    pub fn embed(&self, request: EmbedRequest) -> flume::Receiver<Result<Embeddings, GenerateError>> {
        let (reply, receiver) = flume::bounded(1);
        if let Err(message) = limits::embed_inputs(request.inputs.len()) {
            let _ = reply.send(Err(GenerateError::InvalidRequest(message)));
            return receiver;
        }
        let job = Job::Embed { request, reply: reply.clone() };
        if self.jobs.as_ref().expect("present until drop").send(job).is_err() {
            let _ = reply.send(Err(unloaded()));
        }
        receiver
    }

    /// Queues the scoring of a prompt's tokens, each after those before it, with `top`
    /// alternatives each; the scores arrive on the returned receiver. The engine scores a
    /// batch at a time between decoding steps and gives up once the receiver is dropped.
    pub fn score(&self, tokens: &[u32], top: u32) -> flume::Receiver<Result<Scored, GenerateError>> {
        let (reply, receiver) = flume::bounded(1);
        let checked = prepare::checked_tokens(&self.model, self.settings.context_size, tokens)
            .and_then(|tokens| match tokens.is_empty() {
                true => Err(GenerateError::InvalidRequest("the prompt is empty".into())),
                false => Ok(tokens),
            })
            .and_then(|tokens| check_top_logprobs(top).map(|()| tokens).map_err(GenerateError::InvalidRequest));
        let tokens = match checked {
            Ok(tokens) => tokens,
            Err(e) => {
                let _ = reply.send(Err(e));
                return receiver;
            }
        };
        let job = Job::Score { tokens, top: top as usize, reply: reply.clone() };
        if self.jobs.as_ref().expect("present until drop").send(job).is_err() {
            let _ = reply.send(Err(unloaded()));
        }
        receiver
    }

    /// Ends every request this engine is running or holds in its queue, at its next step
    /// (at shutdown: nothing then waits for answers that are still going).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Wake);
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The weights and template, for work on the caller's thread.
    pub(crate) fn model(&self) -> &Model {
        &self.model
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn settings(&self) -> ResolvedSettings {
        self.settings
    }

    /// From `load` being called to the model being ready for requests.
    pub fn load_duration(&self) -> Duration {
        self.load_duration
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once the requests in hand are answered
        // (none, unless `stop` was called: a model unloads only when nothing holds it).
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether the model at `draft` can draft for the one at `model` (their vocabularies only are
/// read): for a check before either is loaded, when a model is created with a draft.
pub fn check_draft(model: &Path, draft: &Path) -> Result<(), EngineError> {
    let vocabulary = LlamaModelParams::default().with_vocab_only(true);
    let (model_vocabulary, draft_vocabulary) =
        (ModelFile::open(model)?.load(&vocabulary)?, ModelFile::open(draft)?.load(&vocabulary)?);
    draft_model::check_vocabulary(&model_vocabulary, &draft_vocabulary).map_err(|e| draft_refused(draft, &e))
}

fn draft_refused(draft: &Path, why: &str) -> EngineError {
    EngineError::InvalidSetting(format!("draft model {}: {why}", draft.display()))
}

pub(crate) fn unloaded() -> GenerateError {
    GenerateError::EngineStopped("the model was unloaded".into())
}

/// What the engine thread needs from the model's metadata besides its `ModelInfo`.
struct Shape {
    sliding_window: u64,
    pooling: Option<u32>,
}

fn engine_thread(
    model: &Model,
    settings: ResolvedSettings,
    shape: Shape,
    (meter, saved): (Option<Box<dyn EnergyMeter>>, Option<SavedPrompts>),
    ready: &flume::Sender<Result<(), EngineError>>,
    jobs: &flume::Receiver<Job>,
    stop: &AtomicBool,
) {
    let backend = backend();
    let llama = &model.llama;
    let drafter = match model.draft.as_ref().map(|draft| ModelDrafter::new(draft, &settings)).transpose() {
        Ok(drafter) => drafter,
        Err(e) => {
            let _ = ready.send(Err(EngineError::Context(e)));
            return;
        }
    };
    let helpers = Helpers { meter, saved, drafter };
    let mut scheduler = match new_context(backend, llama, settings) {
        Ok(ctx) => Scheduler::new(llama, ctx, settings, shape.sliding_window, shape.pooling, helpers),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Err(e) = scheduler.warm_up() {
        let _ = ready.send(Err(EngineError::Context(format!("the warm-up decode failed: {e}"))));
        return;
    }
    if ready.send(Ok(())).is_err() {
        return;
    }
    scheduler.run(jobs, stop);
}

/// `params` with the cache's types and flash attention, for every context hearth makes.
pub(crate) fn with_kv_cache(params: LlamaContextParams, cache: KvCache) -> LlamaContextParams {
    params
        .with_type_k(llama_kv_type(cache.keys))
        .with_type_v(llama_kv_type(cache.values))
        .with_flash_attention_policy(llama_flash_attention(cache.flash_attention))
}

fn llama_kv_type(kind: KvType) -> KvCacheType {
    match kind {
        KvType::F16 => KvCacheType::F16,
        KvType::Q8_0 => KvCacheType::Q8_0,
        KvType::Q4_0 => KvCacheType::Q4_0,
    }
}

fn llama_flash_attention(setting: FlashAttention) -> llama_cpp_sys_2::llama_flash_attn_type {
    match setting {
        FlashAttention::Auto => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
        FlashAttention::On => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
        FlashAttention::Off => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
    }
}

/// A context of `settings`' slots, threads and batch, for the model and its draft model:
/// each sequence gets a KV stream of its own, of the whole context size. A slot never
/// shrinks the context, and a sequence's cells sit where they would if it ran alone, so an
/// answer does not depend on what else is being decoded (a cache shared by all sequences
/// interleaves their cells, which changes the order attention sums in).
pub(crate) fn slotted_params(settings: &ResolvedSettings) -> LlamaContextParams {
    let threads = i32::try_from(settings.threads).unwrap_or(i32::MAX);
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(settings.context_size.saturating_mul(settings.parallel)))
        .with_n_batch(settings.batch_size)
        .with_n_ubatch(settings.batch_size)
        .with_n_seq_max(settings.parallel)
        .with_kv_unified(false)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

fn new_context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    settings: ResolvedSettings,
) -> Result<llama_cpp_2::context::LlamaContext<'m>, EngineError> {
    let params = with_kv_cache(slotted_params(&settings), settings.kv_cache);
    llama_log::take_recent();
    model
        .new_context(backend, params)
        .map_err(|e| EngineError::Context(llama_log::take_recent().pop().unwrap_or_else(|| e.to_string())))
}
