//! The estimate used when no counter can be read: CPU time (user + system) times a typical
//! power per busy core, of this process (`/proc/self/stat`) or of the whole machine
//! (`/proc/stat`, for work done by other processes such as a server being benchmarked).
//! Labelled `estimated` everywhere it appears, because that is all it is.

use crate::error::{read_text, EnergyError};
use hearth_core::{EnergyMeter, EnergySource};
use std::path::{Path, PathBuf};

/// Linux reports CPU time in USER_HZ ticks, fixed at 100 per second by the kernel ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Whose CPU time the estimate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EstimateScope {
    /// This process only: what an answer computed here cost.
    #[default]
    Process,
    /// Every process: what the machine spent, whoever spent it.
    Machine,
}

pub struct CpuTimeEstimate {
    stat_file: PathBuf,
    scope: EstimateScope,
    watts_per_core: f64,
    start_ticks: u64,
}

impl CpuTimeEstimate {
    /// Estimates from `proc_root/self/stat` (normally `/proc`), at `watts_per_core` for each
    /// core kept busy.
    pub fn open(proc_root: &Path, watts_per_core: f64) -> Result<Self, EnergyError> {
        Self::open_scoped(proc_root, watts_per_core, EstimateScope::Process)
    }

    /// As [`CpuTimeEstimate::open`], counting the CPU time of `scope`.
    pub fn open_scoped(proc_root: &Path, watts_per_core: f64, scope: EstimateScope) -> Result<Self, EnergyError> {
        let stat_file = match scope {
            EstimateScope::Process => proc_root.join("self/stat"),
            EstimateScope::Machine => proc_root.join("stat"),
        };
        let start_ticks = ticks(&stat_file, scope)?;
        Ok(Self { stat_file, scope, watts_per_core, start_ticks })
    }

    pub fn scope(&self) -> EstimateScope {
        self.scope
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
        let ticks = ticks(&self.stat_file, self.scope).map_err(|e| e.to_string())?;
        Ok(ticks.saturating_sub(self.start_ticks) as f64 / TICKS_PER_SECOND * self.watts_per_core)
    }
}

fn ticks(stat_file: &Path, scope: EstimateScope) -> Result<u64, EnergyError> {
    match scope {
        EstimateScope::Process => cpu_ticks(stat_file),
        EstimateScope::Machine => machine_busy_ticks(stat_file),
    }
}

/// Busy time of all CPUs from the `cpu` line of `/proc/stat`: user, nice, system, irq,
/// softirq and steal (fields 1, 2, 3, 6, 7, 8); idle and iowait are not work. Guest time is
/// already inside user and nice.
fn machine_busy_ticks(stat_file: &Path) -> Result<u64, EnergyError> {
    let text = read_text(stat_file)?;
    let bad = || EnergyError::Unreadable { path: stat_file.to_path_buf(), detail: "no aggregate cpu line".into() };
    let line = text.lines().find(|l| l.starts_with("cpu ")).ok_or_else(bad)?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    if fields.len() < 4 {
        return Err(bad());
    }
    Ok([0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum())
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
    fn machine_scope_counts_every_busy_field_but_idle_and_iowait() {
        let root = tempfile::tempdir().unwrap();
        let write = |user: u64, idle: u64| {
            let text = format!("cpu  {user} 10 20 {idle} 40 5 5 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n");
            fs::write(root.path().join("stat"), text).unwrap();
        };
        write(100, 1000);
        let mut meter = CpuTimeEstimate::open_scoped(root.path(), 5.0, EstimateScope::Machine).unwrap();
        assert_eq!(meter.scope(), EstimateScope::Machine);
        write(300, 9000); // 2 more busy seconds; idle time does not count
        assert_eq!(meter.joules().unwrap(), 10.0);
        let mut real = CpuTimeEstimate::open_scoped(Path::new("/proc"), 10.0, EstimateScope::Machine).unwrap();
        assert!(real.joules().unwrap() >= 0.0);
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
