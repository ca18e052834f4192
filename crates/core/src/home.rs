//! hearth's own directory, `~/.hearth`: where the store, the keys, the config file, the
//! bench history and the server's usage totals live unless a variable names another place.

use std::path::PathBuf;

/// `$HOME/.hearth` (relative `.hearth` when `HOME` is unset).
pub fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".hearth")
}

/// `file` in [`dir`], unless the variable `env` names another path.
pub fn file(env: &str, file: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| dir().join(file))
}
