//! `hearth keys create|list|revoke`: the API keys a `hearth serve` accepts, in the keys file
//! (`HEARTH_KEYS_FILE`, default `~/.hearth/keys.json`). A running server reads the file
//! again on SIGHUP.

use anyhow::{Context, Result};
use hearth_core::clock::rfc3339;
use hearth_server::auth::keyring::{Keyring, Scope};
use hearth_server::KeepAlive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    /// The keys file
    #[arg(long, global = true, env = "HEARTH_KEYS_FILE")]
    file: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum KeysCommand {
    /// Make a key and print it (it is shown only this once)
    Create {
        /// A name for the key: who or what uses it (letters, digits, '.', '_', '-')
        name: String,
        /// `chat`: generate, embed, list; `admin`: also pull, create, copy, delete, unload
        #[arg(long, value_enum, default_value_t = ScopeArg::Chat)]
        scope: ScopeArg,
        /// Refuse the key after this long ("30d", "12h", "90m"); default: never
        #[arg(long, value_parser = lifetime)]
        expires: Option<Duration>,
    },
    /// The keys' names, scopes and expiry (never the keys)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a key; a running server refuses it once it reloads (SIGHUP)
    Revoke { name: String },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScopeArg {
    Chat,
    Admin,
}

/// A key's lifetime: Ollama's duration forms, plus days and weeks ("30d", "2w").
fn lifetime(text: &str) -> Result<Duration, String> {
    let unit = |suffix: char, seconds: u64| {
        text.strip_suffix(suffix).and_then(|n| n.parse::<u64>().ok()).map(|n| Duration::from_secs(n * seconds))
    };
    let parsed = match unit('d', 86_400).or_else(|| unit('w', 7 * 86_400)) {
        Some(duration) => duration,
        None => match KeepAlive::parse(&serde_json::Value::String(text.to_string()))? {
            KeepAlive::For(duration) => duration,
            KeepAlive::Forever => return Err(format!("{text}: leave --expires out for a key that never expires")),
        },
    };
    if parsed.is_zero() {
        return Err(format!("{text}: a key's lifetime must be more than zero"));
    }
    Ok(parsed)
}

pub fn run(args: KeysArgs) -> Result<ExitCode> {
    let path = args.file.unwrap_or_else(Keyring::default_path);
    match args.command {
        KeysCommand::Create { name, scope, expires } => {
            let scope = match scope {
                ScopeArg::Chat => Scope::Chat,
                ScopeArg::Admin => Scope::Admin,
            };
            let expires_at = expires.map(|d| SystemTime::now() + d);
            let key = Keyring::create_in(&path, &name, scope, expires_at)
                .with_context(|| format!("creating a key in {}", path.display()))?;
            println!("{key}");
            let until = expires_at.map_or("never expires".to_string(), |at| format!("expires {}", rfc3339(at)));
            eprintln!(
                "created the {scope} key '{name}' ({until}) in {}; it is shown only now. A running hearth serve \
                 takes it when told to reload (kill -HUP, or systemctl reload hearth).",
                path.display()
            );
        }
        KeysCommand::List { json } => {
            let keyring = Keyring::load(&path)?;
            let when = |at: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(at));
            let now = SystemTime::now();
            if json {
                let keys: Vec<_> = keyring
                    .keys()
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "name": k.name,
                            "scope": k.scope,
                            "created_at": when(k.created_at),
                            "expires_at": k.expires_at.map(when),
                            "expired": k.expired(now),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keyring.is_empty() {
                eprintln!("no keys in {} (`hearth keys create NAME` makes one)", path.display());
            } else {
                println!("{:<24} {:<6} {:<25} EXPIRES", "NAME", "SCOPE", "CREATED");
                for k in keyring.keys() {
                    let expires = match k.expires_at {
                        None => "never".to_string(),
                        Some(at) if k.expired(now) => format!("{} (expired)", when(at)),
                        Some(at) => when(at),
                    };
                    println!("{:<24} {:<6} {:<25} {expires}", k.name, k.scope.to_string(), when(k.created_at));
                }
            }
        }
        KeysCommand::Revoke { name } => {
            Keyring::revoke_in(&path, &name).with_context(|| format!("revoking in {}", path.display()))?;
            eprintln!("revoked '{name}'; a running hearth serve refuses it once it reloads (kill -HUP)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_take_days_weeks_and_ollama_s_durations() {
        assert_eq!(lifetime("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(lifetime("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(lifetime("90m"), Ok(Duration::from_secs(5400)));
        assert!(lifetime("0d").is_err());
        assert!(lifetime("-1").is_err());
        assert!(lifetime("soon").is_err());
    }
}
