//! A server as a benchmark target: any OpenAI-compatible API (hearth, llama.cpp's server,
//! vLLM, a cloud) or Ollama's. Answers stream and every piece is timed here, so all servers
//! are measured the same way: from outside, HTTP included.

use super::target::{Answer, Ask, Input, Stopwatch, Target};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::BufRead;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Ollama,
}

pub struct Endpoint {
    /// The base URL as given: `http://host:port/v1` or `http://host:port`.
    pub url: String,
    pub dialect: Dialect,
    pub model: String,
    /// `OPENAI_API_KEY` for OpenAI-compatible endpoints that want one.
    key: Option<String>,
    agent: ureq::Agent,
}

impl Endpoint {
    /// `[MODEL=]URL`. A URL whose path ends in `/v1` speaks OpenAI's API; any other, Ollama's.
    /// Without a model, the first one the endpoint lists is measured.
    pub fn open(spec: &str) -> Result<Self> {
        let (model, url) = match spec.split_once('=') {
            Some((model, url)) if !model.contains("://") => (Some(model.to_string()), url),
            _ => (None, spec),
        };
        let url = url.trim_end_matches('/').to_string();
        if !url.starts_with("http://") && !url.starts_with("https://") {
            bail!("--endpoint takes [MODEL=]URL, such as http://127.0.0.1:8080/v1; got {spec:?}");
        }
        let dialect = if url.ends_with("/v1") { Dialect::OpenAi } else { Dialect::Ollama };
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let key = std::env::var("OPENAI_API_KEY").ok().filter(|k| !k.is_empty() && dialect == Dialect::OpenAi);
        let mut endpoint = Self { url, dialect, model: model.unwrap_or_default(), key, agent };
        if endpoint.model.is_empty() {
            endpoint.model = endpoint.first_model()?;
        }
        Ok(endpoint)
    }

    /// The name the report gives this target.
    pub fn label(&self) -> String {
        format!("{} @ {}", self.model, self.url)
    }

    /// Whether the server runs on this machine, so this machine's meter sees its energy.
    pub fn is_local(&self) -> bool {
        let host = self.url.split("://").nth(1).unwrap_or_default();
        let host = host.split('/').next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, port)| if port.contains(']') { host } else { h });
        matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1" | "0.0.0.0")
    }

    fn first_model(&self) -> Result<String> {
        let path = match self.dialect {
            Dialect::OpenAi => "/models",
            Dialect::Ollama => "/api/tags",
        };
        let url = format!("{}{path}", self.url);
        let mut request = self.agent.get(&url);
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.call().with_context(|| format!("could not reach {url}"))?;
        let status = response.status();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if !status.is_success() {
            bail!("{url} answered {status}: {}", body.trim());
        }
        let list: Value =
            serde_json::from_str(&body).with_context(|| format!("{url} sent something that is not JSON"))?;
        let first = match self.dialect {
            Dialect::OpenAi => list["data"][0]["id"].as_str(),
            Dialect::Ollama => list["models"][0]["name"].as_str(),
        };
        first.map(str::to_string).with_context(|| format!("{url} lists no models; name one as MODEL=URL"))
    }

    fn body(&self, ask: &Ask) -> Result<(String, Value)> {
        let messages = |turns: &[(hearth_core::Role, String)]| -> Vec<Value> {
            turns.iter().map(|(role, content)| json!({"role": role.as_str(), "content": content})).collect()
        };
        Ok(match (self.dialect, &ask.input) {
            (_, Input::Tokens(_)) => bail!("token prompts need a model in this process"),
            (Dialect::OpenAi, input) => {
                let mut body = json!({
                    "model": self.model,
                    "max_tokens": ask.max_tokens,
                    "temperature": 0,
                    "stream": true,
                    "stream_options": {"include_usage": true},
                });
                if ask.ignore_eos {
                    // vLLM's, llama.cpp's and hearth's extension: fixed-length answers.
                    body["ignore_eos"] = json!(true);
                }
                let path = match input {
                    Input::Text(text) => {
                        body["prompt"] = json!(text);
                        "/completions"
                    }
                    Input::Chat(turns) => {
                        body["messages"] = json!(messages(turns));
                        "/chat/completions"
                    }
                    Input::Tokens(_) => unreachable!("refused above"),
                };
                (path.to_string(), body)
            }
            (Dialect::Ollama, input) => {
                let mut body = json!({
                    "model": self.model,
                    "stream": true,
                    "options": {"num_predict": ask.max_tokens, "temperature": 0},
                });
                let path = match input {
                    Input::Text(text) => {
                        body["prompt"] = json!(text);
                        body["raw"] = json!(true);
                        "/api/generate"
                    }
                    Input::Chat(turns) => {
                        body["messages"] = json!(messages(turns));
                        "/api/chat"
                    }
                    Input::Tokens(_) => unreachable!("refused above"),
                };
                (path.to_string(), body)
            }
        })
    }
}

impl Target for Endpoint {
    fn ask(&self, ask: &Ask) -> Result<Answer> {
        let (path, body) = self.body(ask)?;
        let url = format!("{}{path}", self.url);
        let mut request = self.agent.post(&url);
        if let Some(key) = &self.key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut watch = Stopwatch::start();
        let mut response = request.send_json(&body).with_context(|| format!("could not reach {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            bail!("{url} answered {status}: {}", text.trim());
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        let mut answer = Answer::default();
        let mut counted = false;
        for line in reader.lines() {
            let line = line.with_context(|| format!("reading the answer from {url}"))?;
            let data = match self.dialect {
                Dialect::OpenAi => match line.strip_prefix("data:") {
                    Some(data) => data.trim(),
                    None => continue,
                },
                Dialect::Ollama => line.trim(),
            };
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                break;
            }
            let chunk: Value = serde_json::from_str(data).with_context(|| format!("{url} streamed {data:?}"))?;
            if let Some(error) = chunk.get("error") {
                bail!("{url}: {}", error.get("message").and_then(Value::as_str).unwrap_or(&error.to_string()));
            }
            let piece = match self.dialect {
                Dialect::OpenAi => {
                    chunk["choices"][0]["text"].as_str().or(chunk["choices"][0]["delta"]["content"].as_str())
                }
                Dialect::Ollama => chunk["response"].as_str().or(chunk["message"]["content"].as_str()),
            };
            if piece.is_some_and(|p| !p.is_empty()) {
                watch.token();
            }
            let count = |v: &Value| v.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            match self.dialect {
                Dialect::OpenAi if chunk["usage"].is_object() => {
                    let usage = &chunk["usage"];
                    answer.prompt_tokens = count(&usage["prompt_tokens"]);
                    answer.cached_tokens = count(&usage["prompt_tokens_details"]["cached_tokens"]).unwrap_or(0);
                    if let Some(n) = count(&usage["completion_tokens"]) {
                        answer.completion_tokens = n;
                        counted = true;
                    }
                }
                Dialect::Ollama if chunk["done"].as_bool() == Some(true) => {
                    answer.prompt_tokens = count(&chunk["prompt_eval_count"]);
                    answer.cached_tokens = count(&chunk["prompt_cached_count"]).unwrap_or(0);
                    if let Some(n) = count(&chunk["eval_count"]) {
                        answer.completion_tokens = n;
                        counted = true;
                    }
                    break;
                }
                _ => {}
            }
        }
        if !counted {
            answer.completion_tokens = watch.pieces;
        }
        (answer.ttft, answer.total) = watch.finish();
        answer.gaps_ms = std::mem::take(&mut watch.gaps_ms);
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        let agent = ureq::Agent::config_builder().build().into();
        Endpoint { url: url.into(), dialect: Dialect::Ollama, model: "m".into(), key: None, agent }
    }

    #[test]
    fn local_hosts_are_recognised() {
        for url in ["http://127.0.0.1:8080/v1", "http://localhost:11434", "http://[::1]:80", "http://localhost"] {
            assert!(endpoint(url).is_local(), "{url}");
        }
        for url in ["https://api.example.com/v1", "http://10.0.0.2:8000/v1"] {
            assert!(!endpoint(url).is_local(), "{url}");
        }
    }

    #[test]
    fn specs_need_a_url() {
        assert!(Endpoint::open("smol").is_err());
        assert!(Endpoint::open("smol=ftp://x").is_err());
    }
}
