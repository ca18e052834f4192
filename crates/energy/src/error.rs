//! Why a meter cannot be read.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EnergyError {
    #[error("no {0} found")]
    NotFound(&'static str),
    #[error(
        "{path} is readable only by root; to measure energy instead of estimating it, run: sudo chmod a+r {pattern}"
    )]
    PermissionDenied { path: PathBuf, pattern: String },
    #[error("the battery is not discharging (status: {0}); its power draw says nothing about ours")]
    NotDischarging(String),
    #[error("{path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}

/// Reads a sysfs file holding one unsigned number.
pub(crate) fn read_u64(path: &std::path::Path) -> Result<u64, EnergyError> {
    let text = read_text(path)?;
    text.parse()
        .map_err(|_| EnergyError::Unreadable { path: path.to_path_buf(), detail: format!("not a number: {text:?}") })
}

pub(crate) fn read_text(path: &std::path::Path) -> Result<String, EnergyError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| EnergyError::Unreadable { path: path.to_path_buf(), detail: e.to_string() })
}
