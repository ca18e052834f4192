//! The server's own daily totals (`~/.hearth/usage.json`, `HEARTH_USAGE_FILE`): per UTC day
//! the requests answered, their prompt and generated tokens and the energy they reported,
//! so `hearth cost --from-usage` can price what this server really does. Kept in memory,
//! written whole (through a temporary file renamed over the old one) about once a minute
//! and at shutdown; what the file held at start is added in, so a restart keeps the day.

use hearth_core::{EnergyReport, EnergySource};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// Days kept: more than a year, so a year's average has its full year.
pub const KEPT_DAYS: usize = 400;

/// One UTC day's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageDay {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Energy the answers reported, gross (the meter's whole reading while each ran).
    pub joules: f64,
    /// `measured` when every answer's energy was read from a counter, `estimated` when any
    /// was estimated; absent when no answer reported energy.
    pub energy_source: Option<String>,
}

impl UsageDay {
    fn add(&mut self, other: &UsageDay) {
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.joules += other.joules;
        self.energy_source = weaker(self.energy_source.take(), other.energy_source.clone());
    }
}

/// Of two sources, the one a figure summing both can claim: one estimate makes it an estimate.
fn weaker(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) if a == EnergySource::Measured.as_str() => Some(b),
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

/// The file's layout.
#[derive(Debug, Default, Serialize, Deserialize)]
struct UsageFile {
    days: Vec<UsageDay>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is not a usage file: {source}", path.display())]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

/// `$HEARTH_USAGE_FILE`, else `~/.hearth/usage.json`.
pub fn default_path() -> PathBuf {
    hearth_core::home::file("HEARTH_USAGE_FILE", "usage.json")
}

/// The days in the file at `path`, oldest first; a file that does not exist holds none.
pub fn read(path: &Path) -> Result<Vec<UsageDay>, UsageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(UsageError::Io { path: path.into(), source }),
    };
    let file: UsageFile =
        serde_json::from_str(&text).map_err(|source| UsageError::Corrupt { path: path.into(), source })?;
    let mut days = file.days;
    days.sort_by(|a, b| a.date.cmp(&b.date));
    Ok(days)
}

/// The UTC date of `at`, `YYYY-MM-DD`.
pub fn date_of(at: SystemTime) -> String {
    hearth_core::clock::rfc3339(at)[..10].to_string()
}

/// The running totals, by date.
#[derive(Default)]
pub struct DailyUsage {
    days: Mutex<BTreeMap<String, UsageDay>>,
    /// Where [`DailyUsage::save`] writes; none for a server that keeps no totals (tests).
    file: OnceLock<PathBuf>,
    /// Whether anything was recorded since the last save: an idle server writes nothing.
    changed: AtomicBool,
}

impl DailyUsage {
    /// Adds one answered request to the day of `at`.
    pub fn record(&self, at: SystemTime, prompt_tokens: u64, completion_tokens: u64, energy: Option<&EnergyReport>) {
        let answer = UsageDay {
            date: date_of(at),
            requests: 1,
            prompt_tokens,
            completion_tokens,
            joules: energy.map_or(0.0, EnergyReport::total_joules),
            energy_source: energy.map(|e| e.source.as_str().to_string()),
        };
        let mut days = self.days.lock().expect("not poisoned");
        add_to(&mut days, &answer);
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Keeps the totals in `path` from now on, adding in what it holds. A file that cannot
    /// be read or parsed is logged and replaced at the next save: the server starts either way.
    pub fn persist_to(&self, path: PathBuf) {
        let held = match read(&path) {
            Ok(days) => days,
            Err(e) => {
                tracing::warn!("the usage totals start afresh: {e}");
                Vec::new()
            }
        };
        let mut days = self.days.lock().expect("not poisoned");
        for day in held {
            add_to(&mut days, &day);
        }
        let _ = self.file.set(path);
    }

    /// Every day's totals, oldest first.
    pub fn days(&self) -> Vec<UsageDay> {
        self.days.lock().expect("not poisoned").values().cloned().collect()
    }

    /// Writes the totals to the file, if there is one and anything changed since the last save.
    pub fn save(&self) -> Result<(), UsageError> {
        let Some(path) = self.file.get() else { return Ok(()) };
        if !self.changed.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let text = serde_json::to_string_pretty(&UsageFile { days: self.days() }).expect("totals serialize");
        let io = |source| UsageError::Io { path: path.clone(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| hearth_core::files::write_private(path, |file| file.write_all(text.as_bytes())))
            .map_err(io);
        if written.is_err() {
            // Try again at the next save rather than lose the change.
            self.changed.store(true, Ordering::Relaxed);
        }
        written
    }

    /// [`DailyUsage::save`], with a failure logged: the totals are worth a warning, not a stop.
    pub fn save_or_warn(&self) {
        if let Err(e) = self.save() {
            tracing::warn!("the usage totals were not saved: {e}");
        }
    }
}

/// Adds `day`'s totals to the same date's, then forgets the oldest days past [`KEPT_DAYS`].
fn add_to(days: &mut BTreeMap<String, UsageDay>, day: &UsageDay) {
    days.entry(day.date.clone()).or_insert_with(|| UsageDay { date: day.date.clone(), ..UsageDay::default() }).add(day);
    while days.len() > KEPT_DAYS {
        days.pop_first();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2026-12-07T12:00:00Z.
    fn noon() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_644_800)
    }

    fn energy(joules: f64, source: EnergySource) -> EnergyReport {
        EnergyReport {
            prefill_joules: joules / 4.0,
            decode_joules: joules * 0.75,
            seconds: 1.0,
            idle_watts: None,
            source,
        }
    }

    #[test]
    fn answers_add_up_by_day_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.json");
        let usage = DailyUsage::default();
        usage.persist_to(path.clone());
        usage.record(noon(), 100, 20, Some(&energy(8.0, EnergySource::Measured)));
        usage.record(noon(), 50, 10, Some(&energy(4.0, EnergySource::Estimated)));
        usage.record(noon() + Duration::from_secs(86_400), 7, 3, None);
        usage.save().unwrap();
        let days = read(&path).unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(
            days[0],
            UsageDay {
                date: "2026-12-07".into(),
                requests: 2,
                prompt_tokens: 150,
                completion_tokens: 30,
                joules: 12.0,
                energy_source: Some("estimated".into()),
            }
        );
        assert_eq!(
            (days[1].date.as_str(), days[1].requests, days[1].energy_source.as_deref()),
            ("2026-12-08", 1, None)
        );

        // A new server adds to the day the file holds.
        let restarted = DailyUsage::default();
        restarted.record(noon() + Duration::from_secs(86_400), 3, 1, None);
        restarted.persist_to(path.clone());
        restarted.save().unwrap();
        let days = read(&path).unwrap();
        assert_eq!((days[1].requests, days[1].prompt_tokens, days[1].completion_tokens), (2, 10, 4));
        assert_eq!(days[0].requests, 2);
    }

    #[test]
    fn a_corrupt_file_starts_afresh_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.json");
        std::fs::write(&path, "{\"days\": [ torn").unwrap();
        assert!(matches!(read(&path), Err(UsageError::Corrupt { .. })));
        let usage = DailyUsage::default();
        usage.persist_to(path.clone());
        assert!(usage.days().is_empty());
        usage.record(noon(), 1, 1, None);
        usage.save().unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
    }

    #[test]
    fn only_the_newest_days_are_kept_and_an_idle_server_writes_nothing() {
        let usage = DailyUsage::default();
        for day in 0..(KEPT_DAYS as u64 + 5) {
            usage.record(UNIX_EPOCH + Duration::from_secs(day * 86_400), 1, 1, None);
        }
        let days = usage.days();
        assert_eq!(days.len(), KEPT_DAYS);
        assert_eq!(days[0].date, "1970-01-06");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.json");
        let idle = DailyUsage::default();
        idle.persist_to(path.clone());
        idle.save().unwrap();
        assert!(!path.exists(), "nothing recorded, nothing written");
        assert!(read(&path).unwrap().is_empty(), "no file holds no days");
    }
}
