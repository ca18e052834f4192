//! `hearth ps`: the models a running `hearth serve` has loaded, asked over its API
//! (`HEARTH_HOST`, default 127.0.0.1:11434).

use crate::list::human_size;
use anyhow::{Context, Result};
use serde_json::Value;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PsArgs {}

/// The server's base URL from `HEARTH_HOST` (`host:port`, or a URL).
pub fn server_url() -> String {
    let host = std::env::var("HEARTH_HOST").unwrap_or_else(|_| "127.0.0.1:11434".into());
    let host = host.trim_end_matches('/');
    if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

/// A request with the key in `HEARTH_API_KEY`, which a server with keys wants.
fn with_key<B>(request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match std::env::var("HEARTH_API_KEY") {
        Ok(key) => request.header("authorization", format!("Bearer {key}")),
        Err(_) => request,
    }
}

/// Sends a request to the server; a server that is not running is said plainly.
pub fn call(method: &str, path: &str, body: Option<Value>) -> Result<Value> {
    let url = format!("{}{path}", server_url());
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let response = match (method, body) {
        ("GET", _) => with_key(agent.get(&url)).call(),
        (_, Some(body)) => with_key(agent.post(&url)).send_json(body),
        (_, None) => with_key(agent.post(&url)).send_empty(),
    };
    let mut response =
        response.with_context(|| format!("could not reach hearth at {url}; is `hearth serve` running?"))?;
    let status = response.status();
    let reply: Value =
        response.body_mut().read_json().with_context(|| format!("{url} sent something that is not JSON"))?;
    if !status.is_success() {
        let message = reply["error"].as_str().map(str::to_string).unwrap_or_else(|| reply.to_string());
        anyhow::bail!("{message}");
    }
    Ok(reply)
}

pub fn run(_args: PsArgs) -> Result<ExitCode> {
    let reply = call("GET", "/api/ps", None)?;
    let mut rows = vec![["NAME", "ID", "SIZE", "CONTEXT", "UNTIL"].map(String::from).to_vec()];
    for model in reply["models"].as_array().into_iter().flatten() {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        rows.push(vec![
            text(&model["name"]),
            text(&model["digest"]).chars().take(12).collect(),
            human_size(model["size"].as_u64().unwrap_or(0)),
            model["context_length"].as_u64().map_or_else(String::new, |n| n.to_string()),
            text(&model["expires_at"]),
        ]);
    }
    print!("{}", crate::list::columns(&rows));
    Ok(ExitCode::SUCCESS)
}
