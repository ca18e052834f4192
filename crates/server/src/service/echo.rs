//! A prompt echoed, whatever the dialect: the text it stands for and, when asked, each of
//! its tokens' log-probability after those before it (OpenAI's legacy `echo`, and what
//! evaluation harnesses score texts with).

use super::{Lease, Service, ServiceError};
use hearth_core::Prompt;
use hearth_engine::Scored;

/// A prompt as it is echoed back.
pub struct Echo {
    pub text: String,
    /// Its tokens, as an answer to it would count them.
    pub tokens: u32,
    /// Each token after the first, scored (when asked).
    pub scored: Option<Scored>,
}

impl Service {
    /// `prompt` (a text, or token ids) as text and tokens, tokenized as a request's prompt
    /// is, and scored with `top` alternatives per token when `top` is given.
    pub async fn echo(&self, lease: &Lease, prompt: Prompt, top: Option<u32>) -> Result<Echo, ServiceError> {
        let model = lease.model.clone();
        let (text, ids) = tokio::task::spawn_blocking(move || match prompt {
            Prompt::Raw(text) => {
                let ids = model.engine.prompt_tokens(&text);
                Ok((text, ids))
            }
            Prompt::Tokens(ids) => Ok((model.engine.detokenize(&ids)?, ids)),
            Prompt::Chat(_) => Err(ServiceError::invalid("echo is for completions of a text prompt")),
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("tokenizing the prompt failed: {e}")))??;
        let tokens = ids.len() as u32;
        let scored = match top {
            None => None,
            Some(top) => match lease.model.engine.score(&ids, top).recv_async().await {
                Ok(result) => Some(result?),
                Err(_) => return Err(ServiceError::Internal("the engine stopped while scoring".into())),
            },
        };
        Ok(Echo { text, tokens, scored })
    }
}
