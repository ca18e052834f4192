//! The estimate used when no counter can be read: this process's CPU time (user + system,
//! from `/proc/self/stat`) times a typical power per busy core. Labelled `estimated`
//! everywhere it appears, because that is all it is.

use crate::error::{read_text, EnergyError};
use hearth_core::{EnergyMeter, EnergySource};
use std::path::{Path, PathBuf};

/// Linux reports CPU time in USER_HZ ticks, fixed at 100 per second by the kernel ABI.
const TICKS_PER_SECOND: f64 = 100.0;

pub struct CpuTimeEstimate {
    stat_file: PathBuf,
    watts_per_core: f64,
    start_ticks: u64,
}

impl CpuTimeEstimate {
    /// Estimates from `proc_root/self/stat` (normally `/proc`), at `watts_per_core` for each
    /// core kept busy.
    pub fn open(proc_root: &Path, watts_per_core: f64) -> Result<Self, EnergyError> {
        let stat_file = proc_root.join("self/stat");
        let start_ticks = cpu_ticks(&stat_file)?;
        Ok(Self { stat_file, watts_per_core, start_ticks })
    }

    pub fn watts_per_core(&self) -> f64 {
        self.watts_per_core
    }
}

impl EnergyMeter for CpuTimeEstimate {
    fn source(&self) -> EnergySource {
        EnergySource::Estimated
    }

    fn joules(&mut self) -> Result<f64, String> {
        let ticks = cpu_ticks(&self.stat_file).map_err(|e| e.to_string())?;
        Ok(ticks.saturating_sub(self.start_ticks) as f64 / TICKS_PER_SECOND * self.watts_per_core)
    }
}

/// utime + stime, fields 14 and 15 of `/proc/[pid]/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn cpu_ticks(stat_file: &Path) -> Result<u64, EnergyError> {
    let text = read_text(stat_file)?;
    let bad = || EnergyError::Unreadable { path: stat_file.to_path_buf(), detail: "unexpected format".into() };
    let after_name = &text[text.rfind(')').ok_or_else(bad)? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field =
        |n: usize| -> Result<u64, EnergyError> { fields.get(n - 3).and_then(|f| f.parse().ok()).ok_or_else(bad) };
    Ok(field(14)? + field(15)?)
}

/// A typical draw per busy core for this machine's CPU family: laptop and desktop x86 cores
/// around 10 W, server cores (Xeon, EPYC) around 8 W, Arm cores around 3 W. Rough by nature;
/// override it with a figure for your machine.
pub fn default_watts_per_core(proc_root: &Path) -> f64 {
    let cpuinfo = std::fs::read_to_string(proc_root.join("cpuinfo")).unwrap_or_default();
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).unwrap_or_default();
    if cpuinfo.contains("CPU implementer") {
        3.0
    } else if model.contains("Xeon") || model.contains("EPYC") {
        8.0
    } else {
        10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn stat(root: &Path, utime: u64, stime: u64) {
        fs::create_dir_all(root.join("self")).unwrap();
        let line = format!(
            "4242 (hearth (x) y) R 1 4242 4242 0 -1 4194304 5000 0 0 0 {utime} {stime} 0 0 20 0 3 0 100 1000 200"
        );
        fs::write(root.join("self/stat"), line).unwrap();
    }

    #[test]
    fn joules_are_cpu_seconds_times_watts_and_labelled_estimated() {
        let root = tempfile::tempdir().unwrap();
        stat(root.path(), 1000, 200);
        let mut meter = CpuTimeEstimate::open(root.path(), 10.0).unwrap();
        assert_eq!(meter.joules().unwrap(), 0.0);
        stat(root.path(), 1250, 250); // 3 more CPU seconds
        assert_eq!(meter.joules().unwrap(), 30.0);
        assert_eq!(meter.source(), EnergySource::Estimated);
    }

    #[test]
    fn reads_this_process_for_real() {
        let mut meter = CpuTimeEstimate::open(Path::new("/proc"), 10.0).unwrap();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(meter.joules().unwrap() > 0.0);
    }

    #[test]
    fn cpu_family_defaults() {
        let root = tempfile::tempdir().unwrap();
        for (cpuinfo, watts) in [
            ("model name\t: Intel(R) Xeon(R) Processor\n", 8.0),
            ("model name\t: AMD Ryzen 7 7840U\n", 10.0),
            ("processor\t: 0\nCPU implementer\t: 0x41\n", 3.0),
        ] {
            fs::write(root.path().join("cpuinfo"), cpuinfo).unwrap();
            assert_eq!(default_watts_per_core(root.path()), watts, "{cpuinfo}");
        }
    }
}
