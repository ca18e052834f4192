//! Picks the best meter this machine offers: RAPL counters, else a discharging battery,
//! else the CPU-time estimate, and says why a better one was not used.

use crate::{default_watts_per_core, BatteryMeter, CpuTimeEstimate, EnergyError, EstimateScope, RaplMeter};
use hearth_core::EnergyMeter;
use std::path::PathBuf;

/// Where the kernel's files are: `/sys` and `/proc` on a real machine, fixture trees in tests.
#[derive(Debug, Clone)]
pub struct Roots {
    pub sys: PathBuf,
    pub proc: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self { sys: PathBuf::from("/sys"), proc: PathBuf::from("/proc") }
    }
}

pub struct Detected {
    pub meter: Box<dyn EnergyMeter>,
    /// What the meter is, for people: "RAPL (package-0, dram)", "battery BAT0", ...
    pub description: String,
    /// Why a measuring meter could not be used, when that is worth telling (no permission).
    pub hint: Option<String>,
}

/// `watts_per_core` overrides the estimate's built-in default for this CPU family. With the
/// `nvml` feature, NVIDIA GPUs are added to whatever measures the rest of the machine.
pub fn detect(roots: &Roots, watts_per_core: Option<f64>) -> Result<Detected, EnergyError> {
    detect_scoped(roots, watts_per_core, EstimateScope::Process)
}

/// As [`detect`], with the estimate (when nothing better exists) counting `scope`'s CPU time.
/// Counters (RAPL, battery, GPUs) always measure the whole machine.
pub fn detect_scoped(
    roots: &Roots,
    watts_per_core: Option<f64>,
    scope: EstimateScope,
) -> Result<Detected, EnergyError> {
    let host = detect_host(roots, watts_per_core, scope)?;
    #[cfg(feature = "nvml")]
    if let Ok(gpus) = crate::NvmlCounters::init().and_then(crate::GpuMeter::open) {
        let description = format!("{} + NVIDIA GPUs ({})", host.description, gpus.describe());
        let meter = Box::new(crate::CombinedMeter::new(vec![host.meter, Box::new(gpus)]));
        return Ok(Detected { meter, description, hint: host.hint });
    }
    Ok(host)
}

/// The meter for the machine besides its GPUs.
fn detect_host(roots: &Roots, watts_per_core: Option<f64>, scope: EstimateScope) -> Result<Detected, EnergyError> {
    let mut hint = None;
    #[cfg(target_os = "macos")]
    match crate::powermetrics::PowermetricsMeter::open(250) {
        Ok(meter) => {
            let description = "powermetrics (CPU, GPU, ANE)".to_string();
            return Ok(Detected { meter: Box::new(meter), description, hint });
        }
        Err(e) => hint = Some(e.to_string()),
    }
    match RaplMeter::open(&roots.sys) {
        Ok(mut rapl) => {
            let zones: Vec<String> = rapl.zones()?.iter().map(|z| z.name.clone()).collect();
            return Ok(Detected { meter: Box::new(rapl), description: format!("RAPL ({})", zones.join(", ")), hint });
        }
        Err(e @ EnergyError::PermissionDenied { .. }) => hint = Some(e.to_string()),
        Err(_) => {}
    }
    if let Ok(battery) = BatteryMeter::open(&roots.sys) {
        return Ok(Detected { meter: Box::new(battery), description: "battery (discharging)".into(), hint });
    }
    let watts = watts_per_core.unwrap_or_else(|| default_watts_per_core(&roots.proc));
    let estimate = CpuTimeEstimate::open_scoped(&roots.proc, watts, scope)?;
    let whose = if scope == EstimateScope::Machine { "machine " } else { "" };
    Ok(Detected {
        meter: Box::new(estimate),
        description: format!("{whose}CPU-time estimate at {watts} W per busy core"),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::EnergySource;
    use std::fs;

    fn tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("proc/self")).unwrap();
        fs::write(root.path().join("proc/self/stat"), "1 (x) R 1 1 1 0 -1 0 0 0 0 0 5 5 0 0 20 0 1 0 1 1 1").unwrap();
        fs::write(root.path().join("proc/cpuinfo"), "model name\t: AMD Ryzen\n").unwrap();
        root
    }

    fn roots(root: &tempfile::TempDir) -> Roots {
        Roots { sys: root.path().join("sys"), proc: root.path().join("proc") }
    }

    #[test]
    fn no_counters_no_battery_means_an_estimate() {
        let root = tree();
        let detected = detect(&roots(&root), None).unwrap();
        assert_eq!(detected.meter.source(), EnergySource::Estimated);
        assert_eq!(detected.description, "CPU-time estimate at 10 W per busy core");
        let overridden = detect(&roots(&root), Some(4.5)).unwrap();
        assert_eq!(overridden.description, "CPU-time estimate at 4.5 W per busy core");
    }

    #[test]
    fn rapl_wins_when_readable() {
        let root = tree();
        let zone = root.path().join("sys/class/powercap/intel-rapl:0");
        fs::create_dir_all(&zone).unwrap();
        fs::write(zone.join("name"), "package-0").unwrap();
        fs::write(zone.join("energy_uj"), "5").unwrap();
        fs::write(zone.join("max_energy_range_uj"), "100000").unwrap();
        let detected = detect(&roots(&root), None).unwrap();
        assert_eq!(detected.meter.source(), EnergySource::Measured);
        assert_eq!(detected.description, "RAPL (package-0)");
    }

    #[test]
    fn a_discharging_battery_beats_the_estimate() {
        let root = tree();
        let bat = root.path().join("sys/class/power_supply/BAT0");
        fs::create_dir_all(&bat).unwrap();
        for (name, value) in [("type", "Battery"), ("status", "Discharging"), ("power_now", "9000000")] {
            fs::write(bat.join(name), value).unwrap();
        }
        let detected = detect(&roots(&root), None).unwrap();
        assert_eq!(detected.meter.source(), EnergySource::Measured);
        assert_eq!(detected.description, "battery (discharging)");
    }
}
