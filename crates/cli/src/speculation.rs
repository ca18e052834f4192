//! The speculative-decoding flags `hearth run` and `hearth serve` share: prompt lookup or a
//! draft model, and the longest draft, over what a model was stored with.

use anyhow::{Context, Result};
use hearth_engine::EngineSettings;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct SpeculationArgs {
    /// Speculative decoding by prompt lookup: draft the answer's next tokens from what
    /// followed the same tokens earlier in the prompt or the answer, verified in one batch
    /// (pays on answers that repeat their input; the answer is the same) [default: off, or
    /// the model's `lookup`]
    #[arg(long, env = "HEARTH_LOOKUP")]
    lookup: bool,
    /// Speculative decoding with a draft model: a smaller model of the same vocabulary (a
    /// name in the store or a GGUF path) proposes the next tokens, verified in one batch (the
    /// answer is the same) [default: none]
    #[arg(long, value_name = "MODEL", env = "HEARTH_DRAFT_MODEL")]
    draft: Option<String>,
    /// Tokens drafted per step at most, 1 to 64 [default: 16 with --lookup, 3 with --draft, or
    /// the model's `draft_max`]
    #[arg(long, value_name = "N", env = "HEARTH_DRAFT_MAX")]
    draft_max: Option<u32>,
}

impl SpeculationArgs {
    /// `settings` with these flags set over them; unset ones stay as they were, for what
    /// the model was stored with to fill. A draft model's name is looked up (and pulled)
    /// as `hearth run`'s model is.
    pub fn over(&self, settings: EngineSettings) -> Result<EngineSettings> {
        let draft = match &self.draft {
            Some(name) => Some(crate::models::resolve(name).with_context(|| format!("the draft model {name}"))?.path),
            None => settings.draft,
        };
        Ok(EngineSettings {
            lookup: self.lookup.then_some(true).or(settings.lookup),
            draft_max: self.draft_max.or(settings.draft_max),
            draft,
            ..settings
        })
    }
}
