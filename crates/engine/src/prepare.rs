//! One validation step between a caller's request and the engine thread: sampling ranges,
//! the grammar parsed, the chat template rendered under limits, the prompt tokenized, token
//! ids and the context checked. It runs on the caller's thread; the engine thread accepts
//! only its result.

use crate::engine::{Model, ENGINE_STACK};
use crate::limits;
use crate::sampler::TokenPicker;
use crate::template::RenderLimits;
use hearth_core::{check_top_logprobs, think, GenerateError, GenerateRequest, Prompt, SamplingParams};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Tells work done for a caller that the caller went away. Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Option<Arc<AtomicBool>>);

impl Cancellation {
    /// A flag to raise with [`Cancellation::cancel`].
    pub fn new() -> Self {
        Self(Some(Arc::new(AtomicBool::new(false))))
    }

    /// For callers that never give up (the terminal chat stops answers another way).
    pub fn never() -> Self {
        Self(None)
    }

    pub fn cancel(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::SeqCst);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|flag| flag.load(Ordering::SeqCst))
    }
}

/// A request ready for the engine thread: valid settings and a prompt that fits.
#[derive(Debug)]
pub struct Prepared {
    pub(crate) request: GenerateRequest,
    pub(crate) prompt: Vec<LlamaToken>,
    /// The request's sampler, its grammar parsed and its repeat penalty shown the prompt.
    pub(crate) picker: TokenPicker,
    /// The rendered prompt ends inside an open `<think>`: the answer starts with thinking.
    opens_thinking: bool,
    /// When preparation began: time to first token counts from here.
    pub(crate) submitted: Instant,
}

impl Prepared {
    /// Tokens of the prompt, as the model will see them.
    pub fn prompt_tokens(&self) -> usize {
        self.prompt.len()
    }

    /// Whether the chat template left the answer inside an open `<think>` (DeepSeek-R1's do).
    pub fn opens_thinking(&self) -> bool {
        self.opens_thinking
    }
}

pub(crate) fn prepare(
    model: &Model,
    context_size: u32,
    mut request: GenerateRequest,
    cancel: &Cancellation,
) -> Result<Prepared, GenerateError> {
    let submitted = Instant::now();
    request.sampling.validate().map_err(GenerateError::InvalidRequest)?;
    if let Some(top) = request.logprobs {
        check_top_logprobs(top).map_err(GenerateError::InvalidRequest)?;
    }
    let mut picker = picker(model, &request.sampling)?;
    let mut opens_thinking = false;
    let prompt = match &request.prompt {
        Prompt::Chat(messages) => {
            let limits = RenderLimits::new(limits::render_bytes(context_size), cancel);
            let text = model
                .template
                .render_limited(messages, &request.tools, request.thinking, &limits)
                .map_err(|e| GenerateError::InvalidRequest(e.to_string()))?;
            opens_thinking = think::prompt_opens_thinking(&text);
            tokenize(model, &text)
        }
        Prompt::Raw(text) => {
            // Text far longer than the context cannot fit however it tokenizes.
            if text.len() > limits::render_bytes(context_size) {
                return Err(GenerateError::InvalidRequest(format!(
                    "the prompt is {} bytes, more than a context of {context_size} tokens can hold",
                    text.len()
                )));
            }
            tokenize(model, text)
        }
        Prompt::Tokens(ids) => checked_tokens(model, context_size, ids)?,
    };
    // Only ids are kept: the text or messages are not needed past this point.
    request.prompt = Prompt::Tokens(Vec::new());
    if prompt.is_empty() {
        return Err(GenerateError::InvalidRequest("the prompt is empty".into()));
    }
    if prompt.len() >= context_size as usize {
        return Err(too_long(prompt.len() as u32, context_size));
    }
    let last_n = request.sampling.repeat_last_n as usize;
    picker.accept_prompt(&prompt[prompt.len().saturating_sub(last_n)..]);
    Ok(Prepared { request, prompt, picker, opens_thinking, submitted })
}

/// The request's token picker. A grammar is parsed here, not on the engine thread, where a
/// large one would stall every stream; llama.cpp's GBNF parser recurses once per level of
/// nesting, so it gets a thread with the engine thread's stack.
fn picker(model: &Model, params: &SamplingParams) -> Result<TokenPicker, GenerateError> {
    let build = || TokenPicker::new(params, &model.llama).map_err(GenerateError::InvalidRequest);
    if params.grammar.is_none() {
        return build();
    }
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("hearth-grammar".into())
            .stack_size(ENGINE_STACK)
            .spawn_scoped(scope, build)
            .map_err(|e| GenerateError::Backend(format!("no thread to parse the grammar on: {e}")))?;
        parser.join().map_err(|_| GenerateError::Backend("parsing the grammar failed".into()))?
    })
}

/// Token ids a caller gave: each in the vocabulary, fewer than the context holds.
pub(crate) fn checked_tokens(model: &Model, context_size: u32, ids: &[u32]) -> Result<Vec<LlamaToken>, GenerateError> {
    if ids.len() >= context_size as usize {
        return Err(too_long(ids.len() as u32, context_size));
    }
    ids.iter().map(|&id| in_vocabulary(&model.llama, id)).collect()
}

/// `id` as a token of `model`'s vocabulary, or the error naming it.
pub(crate) fn in_vocabulary(model: &LlamaModel, id: u32) -> Result<LlamaToken, GenerateError> {
    let n_vocab = model.vocab().n_tokens();
    match i32::try_from(id) {
        Ok(token) if token < n_vocab => Ok(LlamaToken(token)),
        _ => Err(GenerateError::InvalidRequest(format!("token id {id} is outside the vocabulary (0..{n_vocab})"))),
    }
}

fn too_long(prompt_tokens: u32, context_size: u32) -> GenerateError {
    GenerateError::PromptTooLong { prompt_tokens, context_size }
}

pub(crate) fn tokenize(model: &Model, text: &str) -> Vec<LlamaToken> {
    let vocab = model.llama.vocab();
    let mut tokens = vocab.tokenize(text.as_bytes(), true, true);
    // A template that writes the BOS token itself, on a vocabulary that adds one too.
    if tokens.len() >= 2 && tokens[0] == vocab.bos() && tokens[1] == vocab.bos() {
        tokens.remove(0);
    }
    tokens
}
