//! API keys at rest: the keys file (`~/.hearth/keys.json`, `HEARTH_KEYS_FILE`), which holds
//! for each key its name, scope, expiry, a random salt and SHA-256(salt ‖ key), never the
//! key itself. It is written whole through a synced temporary file with mode 0600 and
//! renamed over the old one, under a lock, so a killed `hearth keys` leaves the old file or
//! the new one and two at once lose neither's change.

use hearth_core::clock::unix_seconds;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Generate, embed, tokenize and list models.
    Chat,
    /// All of `chat`, and pull, create, copy, delete and unload models.
    Admin,
}

impl Scope {
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Chat => "chat",
            Scope::Admin => "admin",
        })
    }
}

/// One key as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    pub name: String,
    pub scope: Scope,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// Seconds since the Unix epoch after which the key is refused; none: never.
    pub expires_at: Option<u64>,
    /// 16 random bytes, hex.
    salt: String,
    /// SHA-256 of the salt's bytes and then the key's, hex.
    sha256: String,
}

impl StoredKey {
    /// The salt and hash as bytes; none for an entry whose hex is damaged (it matches nothing).
    fn salted(&self) -> Option<Salted> {
        Some(Salted { salt: unhex(&self.salt)?, sha256: unhex(&self.sha256)?.try_into().ok()? })
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| unix_seconds(now) >= at)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    keys: Vec<StoredKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a keys file: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("a key named '{0}' exists already; revoke it first or choose another name")]
    Exists(String),
    #[error("no key is named '{0}'")]
    NoSuchKey(String),
    #[error("a key's name is 1 to 64 letters, digits, '.', '_' or '-', not '{0}'")]
    BadName(String),
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

/// What a key presented by a client turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'a> {
    Valid(&'a StoredKey),
    /// A key of the file whose time is past; its name, for the log.
    Expired(&'a StoredKey),
    Unknown,
}

/// A stored key's salt and hash, decoded once when the keys are read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Salted {
    salt: Vec<u8>,
    sha256: [u8; 32],
}

impl Salted {
    fn matches(&self, key: &str) -> bool {
        salted_hash(&self.salt, key).ct_eq(&self.sha256).into()
    }
}

/// The keys the server accepts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<StoredKey>,
    /// Each key's [`Salted`], in the same order.
    salted: Vec<Option<Salted>>,
}

/// Keys start with this, so that secret scanners and people can tell one when they see it.
pub const KEY_PREFIX: &str = "hearth-";

/// The longest key worth hashing: keys made here are the prefix and 64 hex digits.
const MAX_KEY_BYTES: usize = 256;

impl Keyring {
    /// `$HEARTH_KEYS_FILE`, else `~/.hearth/keys.json`.
    pub fn default_path() -> PathBuf {
        hearth_core::home::file("HEARTH_KEYS_FILE", "keys.json")
    }

    /// The keys in `path`; a file that does not exist holds none.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(KeyringError::Io { path: path.into(), source }),
        };
        let file: KeysFile = serde_json::from_str(&text)
            .map_err(|e| KeyringError::Malformed { path: path.into(), message: e.to_string() })?;
        Ok(Self::new(file.keys))
    }

    fn new(keys: Vec<StoredKey>) -> Self {
        let salted = keys.iter().map(StoredKey::salted).collect();
        Self { keys, salted }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[StoredKey] {
        &self.keys
    }

    /// Which stored key `key` is. Every stored key is compared, each in constant time, so
    /// the time taken tells nothing of how much of a guess was right.
    pub fn verify(&self, key: &str, now: SystemTime) -> Verdict<'_> {
        // Every key made is 71 bytes; a longer one is refused unhashed, so a client cannot
        // make each request hash a header's worth of bytes once per stored key.
        if key.len() > MAX_KEY_BYTES {
            return Verdict::Unknown;
        }
        let mut found = None;
        for (stored, salted) in self.keys.iter().zip(&self.salted) {
            if salted.as_ref().is_some_and(|s| s.matches(key)) && found.is_none() {
                found = Some(stored);
            }
        }
        match found {
            Some(stored) if stored.expired(now) => Verdict::Expired(stored),
            Some(stored) => Verdict::Valid(stored),
            None => Verdict::Unknown,
        }
    }

    /// Adds a new key named `name` and returns it: the only time it is ever seen.
    fn create(
        &mut self,
        name: &str,
        scope: Scope,
        expires_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<String, KeyringError> {
        check_name(name)?;
        if self.keys.iter().any(|k| k.name == name) {
            return Err(KeyringError::Exists(name.into()));
        }
        let mut secret = [0u8; 32];
        let mut salt = [0u8; 16];
        getrandom::fill(&mut secret).map_err(|e| KeyringError::Random(e.to_string()))?;
        getrandom::fill(&mut salt).map_err(|e| KeyringError::Random(e.to_string()))?;
        let key = format!("{KEY_PREFIX}{}", hearth_core::hex::encode(&secret));
        let mut keys = std::mem::take(&mut self.keys);
        keys.push(StoredKey {
            name: name.into(),
            scope,
            created_at: unix_seconds(now),
            expires_at: expires_at.map(unix_seconds),
            salt: hearth_core::hex::encode(&salt),
            sha256: hearth_core::hex::encode(&salted_hash(&salt, &key)),
        });
        *self = Self::new(keys);
        Ok(key)
    }

    fn revoke(&mut self, name: &str) -> Result<(), KeyringError> {
        if !self.keys.iter().any(|k| k.name == name) {
            return Err(KeyringError::NoSuchKey(name.into()));
        }
        let keys = std::mem::take(&mut self.keys).into_iter().filter(|k| k.name != name).collect();
        *self = Self::new(keys);
        Ok(())
    }

    /// Creates a key in the file at `path` and returns it.
    pub fn create_in(
        path: &Path,
        name: &str,
        scope: Scope,
        expires_at: Option<SystemTime>,
    ) -> Result<String, KeyringError> {
        Self::change(path, |keyring| keyring.create(name, scope, expires_at, SystemTime::now()))
    }

    /// Removes the key `name` from the file at `path`.
    pub fn revoke_in(path: &Path, name: &str) -> Result<(), KeyringError> {
        Self::change(path, |keyring| keyring.revoke(name))
    }

    /// Reads, changes and rewrites the file under its lock.
    fn change<T>(path: &Path, edit: impl FnOnce(&mut Self) -> Result<T, KeyringError>) -> Result<T, KeyringError> {
        let io = |source| KeyringError::Io { path: path.into(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io)?;
        let lock = File::create(lock_path(path)).map_err(io)?;
        lock.lock().map_err(io)?;
        let mut keyring = Self::load(path)?;
        let out = edit(&mut keyring)?;
        let text = serde_json::to_string_pretty(&KeysFile { keys: keyring.keys }).expect("keys serialize");
        hearth_core::files::write_private(path, |file| file.write_all(text.as_bytes())).map_err(io)?;
        Ok(out)
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

fn check_name(name: &str) -> Result<(), KeyringError> {
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 || !name.chars().all(fits) {
        return Err(KeyringError::BadName(name.into()));
    }
    Ok(())
}

fn salted_hash(salt: &[u8], key: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(key.as_bytes());
    hasher.finalize().into()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_created_key_verifies_and_the_file_never_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("keys.json");
        let chat = Keyring::create_in(&path, "app", Scope::Chat, None).unwrap();
        let admin = Keyring::create_in(&path, "ops", Scope::Admin, None).unwrap();
        assert!(chat.starts_with(KEY_PREFIX) && chat.len() == KEY_PREFIX.len() + 64, "{chat}");
        assert_ne!(chat, admin);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&chat[KEY_PREFIX.len()..]) && !text.contains(&admin[KEY_PREFIX.len()..]), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let keyring = Keyring::load(&path).unwrap();
        let now = SystemTime::now();
        assert!(matches!(keyring.verify(&chat, now), Verdict::Valid(k) if k.name == "app" && k.scope == Scope::Chat));
        assert!(matches!(keyring.verify(&admin, now), Verdict::Valid(k) if k.scope == Scope::Admin));
        let mut wrong = chat.clone();
        wrong.replace_range(chat.len() - 1.., if chat.ends_with('0') { "1" } else { "0" });
        assert_eq!(keyring.verify(&wrong, now), Verdict::Unknown);
        assert_eq!(keyring.verify("", now), Verdict::Unknown);
        assert_eq!(keyring.verify(&format!("{chat}{}", "0".repeat(MAX_KEY_BYTES)), now), Verdict::Unknown);

        assert!(matches!(Keyring::create_in(&path, "app", Scope::Chat, None), Err(KeyringError::Exists(_))));
        Keyring::revoke_in(&path, "app").unwrap();
        assert!(matches!(Keyring::revoke_in(&path, "app"), Err(KeyringError::NoSuchKey(_))));
        let keyring = Keyring::load(&path).unwrap();
        assert_eq!(keyring.verify(&chat, now), Verdict::Unknown);
        assert!(matches!(keyring.verify(&admin, now), Verdict::Valid(_)));
    }

    #[test]
    fn an_expired_key_is_known_but_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let soon = SystemTime::now() + Duration::from_secs(60);
        let key = Keyring::create_in(&path, "temp", Scope::Chat, Some(soon)).unwrap();
        let keyring = Keyring::load(&path).unwrap();
        assert!(matches!(keyring.verify(&key, SystemTime::now()), Verdict::Valid(_)));
        assert!(matches!(keyring.verify(&key, soon + Duration::from_secs(1)), Verdict::Expired(k) if k.name == "temp"));
    }

    #[test]
    fn bad_names_and_files_are_refused_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        for name in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(matches!(Keyring::create_in(&path, name, Scope::Chat, None), Err(KeyringError::BadName(_))));
        }
        assert!(Keyring::load(&path).unwrap().is_empty(), "a missing file holds no keys");
        fs::write(&path, "{\"keys\": [{\"name\": 1}]}").unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(err.contains("is not a keys file"), "{err}");
    }
}
