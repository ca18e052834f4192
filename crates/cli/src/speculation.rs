//! The speculative-decoding flags `hearth run` and `hearth serve` share: prompt lookup and
//! the longest draft, over what a model was stored with.

use hearth_engine::EngineSettings;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct SpeculationArgs {
    /// Speculative decoding by prompt lookup: draft the answer's next tokens from what
    /// followed the same tokens earlier in the prompt or the answer, verified in one batch
    /// (pays on answers that repeat their input; the answer is the same) [default: off, or
    /// the model's `lookup`]
    #[arg(long, env = "HEARTH_LOOKUP")]
    lookup: bool,
    /// Tokens drafted per step at most, 1 to 64 [default: 16, or the model's `draft_max`]
    #[arg(long, value_name = "N", env = "HEARTH_DRAFT_MAX")]
    draft_max: Option<u32>,
}

impl SpeculationArgs {
    /// `settings` with these flags set over them; unset ones stay as they were, for what
    /// the model was stored with to fill.
    pub fn over(&self, settings: EngineSettings) -> EngineSettings {
        EngineSettings {
            lookup: self.lookup.then_some(true).or(settings.lookup),
            draft_max: self.draft_max.or(settings.draft_max),
            ..settings
        }
    }
}
