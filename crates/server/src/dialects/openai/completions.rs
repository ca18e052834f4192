//! `/v1/chat/completions` and `/v1/completions`: a request becomes a lease and an engine
//! request; [`super::answer`] sends back what the engine says.

use super::answer::{answer, Kind, Reply};
use super::wire::{ChatBody, CompletionBody, PromptBody};
use super::OpenAiError;
use crate::dialects::request;
use crate::residency::Wanted;
use crate::service::{self, Chat, ServiceError};
use crate::tools;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use hearth_core::{GenerateRequest, Prompt};

pub async fn chat_completions(State(state): State<AppState>, body: Bytes) -> Result<Response, OpenAiError> {
    let body: ChatBody = request::parse(&body)?;
    let common = &body.common;
    let name = common.model_name()?;
    common.refuse_unsupported()?;
    let messages = body.chat_messages()?;
    let choice = tools::Choice::parse(common.tool_choice.as_ref()).map_err(ServiceError::Invalid)?;
    let logprobs = common.logprobs()?;
    let lease = state.service.lease(&name, Wanted::default()).await?;
    let sampling = common.sampling(&lease.spec.parameters)?;
    let tools = common.tools.clone().unwrap_or_default();
    let parallel_calls = common.parallel_tool_calls.unwrap_or(true);
    let chat = Chat { messages, sampling, tools: &tools, choice: &choice, parallel_calls, logprobs };
    let (mut request, tool_use) = service::chat_request(&lease, chat)?;
    request.thinking = common.thinking(lease.thinks());
    answer(&state, lease, request, tool_use, Reply::new(Kind::Chat, common)).await
}

pub async fn completions(State(state): State<AppState>, body: Bytes) -> Result<Response, OpenAiError> {
    let body: CompletionBody = request::parse(&body)?;
    let common = &body.common;
    let name = common.model_name()?;
    common.refuse_unsupported()?;
    if common.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ServiceError::invalid("tools are for /v1/chat/completions").into());
    }
    let logprobs = common.logprobs()?;
    let prompt = match body.prompt {
        PromptBody::Text(text) => Prompt::Raw(text),
        PromptBody::Tokens(ids) => Prompt::Tokens(ids),
        PromptBody::Texts(mut texts) if texts.len() == 1 => Prompt::Raw(texts.remove(0)),
        PromptBody::Texts(_) => {
            return Err(ServiceError::invalid("prompt must be one string: hearth answers one prompt per request").into())
        }
    };
    // `max_tokens: 0` generates nothing: with `echo`, it scores a text.
    let scoring_only = common.max_completion_tokens.or(common.max_tokens) == Some(0);
    if scoring_only && !body.echo {
        return Err(ServiceError::invalid(
            "max_tokens 0 generates nothing; it is for scoring a prompt, with echo: true",
        )
        .into());
    }
    let lease = state.service.lease(&name, Wanted::default()).await?;
    let echo = match body.echo {
        true => Some(state.service.echo(&lease, prompt.clone(), logprobs).await?),
        false => None,
    };
    let reply = Reply::new(Kind::Completion, common).with_echo(echo);
    if scoring_only {
        return Ok(reply.echo_only());
    }
    let sampling = common.sampling(&lease.spec.parameters)?;
    let mut request = GenerateRequest::new(prompt, sampling);
    request.logprobs = logprobs;
    answer(&state, lease, request, None, reply).await
}
