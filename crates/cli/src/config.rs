//! hearth's configuration file (`--config`, `HEARTH_CONFIG`, default
//! `~/.hearth/config.toml`): the settings too rich for a flag, read whole at start. Anything
//! malformed or unknown stops the start with its line and column, so a typo never passes
//! for a setting.

use anyhow::{Context, Result};
use hearth_server::auth::limits::KeyLimits;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// API keys' allowances: `[limits]` for every key, `[limits.keys.NAME]` for one.
    #[serde(default)]
    pub limits: KeyLimits,
    /// `hearth cost`'s inputs: `[cost]`, and `[[cost.cloud]]` for each cloud model.
    #[serde(default)]
    pub cost: crate::cost::CostConfig,
}

impl Config {
    pub fn default_path() -> PathBuf {
        hearth_core::home::dir().join("config.toml")
    }

    /// The file at `path`, or, when none was named and the default file does not exist, the
    /// defaults.
    pub fn load(named: Option<&Path>) -> Result<Self> {
        let path = named.map_or_else(Self::default_path, Path::to_path_buf);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && named.is_none() => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading the config file {}", path.display())),
        };
        Self::parse(&text).with_context(|| format!("in the config file {}", path.display()))
    }

    fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_with_each_key_s_own() {
        let config = Config::parse(
            "[limits]\nrequests_per_minute = 60\ntokens_per_day = 100000\n\n[limits.keys.batch]\nrequests_per_minute = 600\n",
        )
        .unwrap();
        assert_eq!(config.limits.requests_per_minute.map(|n| n.get()), Some(60));
        assert_eq!(config.limits.keys["batch"].requests_per_minute.map(|n| n.get()), Some(600));
        assert_eq!(Config::parse("").unwrap().limits, KeyLimits::default());
    }

    #[test]
    fn unknown_or_bad_settings_say_where() {
        let err =
            format!("{:#}", Config::parse("[limits]\nrequests_per_minute = 60\nrequest_per_day = 5\n").unwrap_err());
        assert!(err.contains("line 3") && err.contains("request_per_day"), "{err}");
        let err = format!("{:#}", Config::parse("[limits]\nrequests_per_minute = 0\n").unwrap_err());
        assert!(err.contains("line 2") && err.contains("nonzero"), "{err}");
        let err = format!("{:#}", Config::parse("[limit]\n").unwrap_err());
        assert!(err.contains("limit"), "{err}");
    }
}
