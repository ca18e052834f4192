//! RAPL energy counters through Linux's powercap interface
//! (`/sys/class/powercap/intel-rapl:*`, also used for AMD processors): one cumulative
//! microjoule counter per zone, which wraps at `max_energy_range_uj`.

use crate::error::{read_text, read_u64, EnergyError};
use hearth_core::{EnergyMeter, EnergySource};
use std::io;
use std::path::{Path, PathBuf};

const PERMISSION_PATTERN: &str =
    "/sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj";

/// One powercap zone: a package, or a sub-zone such as `core`, `uncore` or `dram`.
#[derive(Debug, Clone)]
pub struct RaplZone {
    /// The zone's `name` file: `package-0`, `dram`, `core`, `psys`, ...
    pub name: String,
    /// The zone's directory, e.g. `intel-rapl:0:1`.
    pub id: String,
    /// The zone as a metrics domain: `package-0`, or `package-0/dram` for a sub-zone.
    pub domain: String,
    energy_file: PathBuf,
    max_range_uj: u64,
    last_uj: u64,
    /// Microjoules since the meter was opened, wraps corrected.
    total_uj: u128,
}

impl RaplZone {
    /// Whether this zone's energy belongs in the total: packages and DRAM. Core and uncore
    /// are parts of their package, and psys covers the whole platform (it would count twice).
    pub fn counts_towards_total(&self) -> bool {
        self.name.starts_with("package") || self.name == "dram"
    }

    fn update(&mut self) -> Result<(), EnergyError> {
        let now = read_energy(&self.energy_file)?;
        self.total_uj += u128::from(delta_with_wrap(self.last_uj, now, self.max_range_uj));
        self.last_uj = now;
        Ok(())
    }

    pub fn joules(&self) -> f64 {
        self.total_uj as f64 / 1e6
    }
}

/// Microjoules between two readings of a counter that wraps back to zero after `max_range`.
fn delta_with_wrap(previous: u64, now: u64, max_range: u64) -> u64 {
    if now >= previous {
        now - previous
    } else {
        max_range.saturating_sub(previous) + now
    }
}

fn read_energy(path: &Path) -> Result<u64, EnergyError> {
    match std::fs::read_to_string(path) {
        Ok(_) => read_u64(path),
        Err(e) => Err(classify(path, e)),
    }
}

/// Since 2020 (CVE-2020-8694) the counters are readable only by root by default; say how to
/// allow reading them, rather than only that it failed.
fn classify(path: &Path, error: io::Error) -> EnergyError {
    if error.kind() == io::ErrorKind::PermissionDenied {
        EnergyError::PermissionDenied { path: path.to_path_buf(), pattern: PERMISSION_PATTERN.to_string() }
    } else {
        EnergyError::Unreadable { path: path.to_path_buf(), detail: error.to_string() }
    }
}

/// All RAPL zones of the machine whose sysfs is at `sys_root` (normally `/sys`).
pub struct RaplMeter {
    zones: Vec<RaplZone>,
}

impl RaplMeter {
    pub fn open(sys_root: &Path) -> Result<Self, EnergyError> {
        let powercap = sys_root.join("class/powercap");
        let entries = std::fs::read_dir(&powercap).map_err(|_| EnergyError::NotFound("RAPL powercap zones"))?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                // `intel-rapl-mmio:*` mirrors the package counter through another interface.
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("intel-rapl:"))
            })
            .collect();
        dirs.sort();
        let mut zones: Vec<RaplZone> = Vec::new();
        for dir in dirs {
            let energy_file = dir.join("energy_uj");
            let last_uj = read_energy(&energy_file)?;
            let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let name = read_text(&dir.join("name"))?;
            // `intel-rapl:0:1` is a sub-zone of `intel-rapl:0`, which sorts before it.
            let parent = id.rsplit_once(':').map(|(p, _)| p).filter(|p| p.matches(':').count() == 1);
            let domain = match parent.and_then(|p| zones.iter().find(|z| z.id == p)) {
                Some(package) => format!("{}/{name}", package.name),
                None => name.clone(),
            };
            zones.push(RaplZone {
                name,
                id,
                domain,
                max_range_uj: read_u64(&dir.join("max_energy_range_uj"))?,
                energy_file,
                last_uj,
                total_uj: 0,
            });
        }
        if !zones.iter().any(RaplZone::counts_towards_total) {
            return Err(EnergyError::NotFound("RAPL package zone"));
        }
        Ok(Self { zones })
    }

    /// Reads every zone; returns them with their joules since the meter was opened.
    pub fn zones(&mut self) -> Result<&[RaplZone], EnergyError> {
        for zone in &mut self.zones {
            zone.update()?;
        }
        Ok(&self.zones)
    }
}

impl EnergyMeter for RaplMeter {
    fn source(&self) -> EnergySource {
        EnergySource::Measured
    }

    fn joules(&mut self) -> Result<f64, String> {
        let zones = self.zones().map_err(|e| e.to_string())?;
        Ok(zones.iter().filter(|z| z.counts_towards_total()).map(RaplZone::joules).sum())
    }

    fn domains(&mut self) -> Result<Vec<(String, f64)>, String> {
        let zones = self.zones().map_err(|e| e.to_string())?;
        Ok(zones.iter().map(|z| (z.domain.clone(), z.joules())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A powercap tree: two packages (each with a core sub-zone), DRAM under package 0, psys.
    fn fixture() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (id, name, energy, max) in [
            ("intel-rapl:0", "package-0", 1_000_000u64, 262_143_328_850u64),
            ("intel-rapl:0:0", "core", 400_000, 262_143_328_850),
            ("intel-rapl:0:1", "dram", 200_000, 65_712_999_613),
            ("intel-rapl:1", "package-1", 3_000_000, 262_143_328_850),
            ("intel-rapl:1:0", "core", 1_000_000, 262_143_328_850),
            ("intel-rapl:2", "psys", 9_000_000, 262_143_328_850),
            ("intel-rapl-mmio:0", "package-0", 1_000_000, 262_143_328_850),
        ] {
            let dir = root.path().join("class/powercap").join(id);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("name"), format!("{name}\n")).unwrap();
            fs::write(dir.join("energy_uj"), format!("{energy}\n")).unwrap();
            fs::write(dir.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
        }
        root
    }

    fn set(root: &Path, id: &str, energy: u64) {
        fs::write(root.join("class/powercap").join(id).join("energy_uj"), energy.to_string()).unwrap();
    }

    #[test]
    fn sums_packages_and_dram_only() {
        let root = fixture();
        let mut meter = RaplMeter::open(root.path()).unwrap();
        assert_eq!(meter.joules().unwrap(), 0.0);
        set(root.path(), "intel-rapl:0", 3_000_000); // +2 J
        set(root.path(), "intel-rapl:0:0", 1_400_000); // +1 J, part of package 0
        set(root.path(), "intel-rapl:0:1", 700_000); // +0.5 J
        set(root.path(), "intel-rapl:1", 4_500_000); // +1.5 J
        set(root.path(), "intel-rapl:2", 19_000_000); // +10 J, the whole platform
        assert_eq!(meter.joules().unwrap(), 4.0);
        assert_eq!(meter.source(), EnergySource::Measured);
        let names: Vec<_> = meter.zones().unwrap().iter().map(|z| z.name.clone()).collect();
        assert_eq!(names, ["package-0", "core", "dram", "package-1", "core", "psys"]);
        let domains = meter.domains().unwrap();
        let expected = [
            ("package-0", 2.0),
            ("package-0/core", 1.0),
            ("package-0/dram", 0.5),
            ("package-1", 1.5),
            ("package-1/core", 0.0),
            ("psys", 10.0),
        ];
        assert_eq!(domains, expected.map(|(d, j)| (d.to_string(), j)));
    }

    #[test]
    fn a_counter_wrap_between_reads_is_corrected_not_dropped() {
        let root = fixture();
        // DRAM's counter sits 0.3 J below its range, then wraps to 0.2 J.
        set(root.path(), "intel-rapl:0:1", 65_712_999_613 - 300_000);
        let mut meter = RaplMeter::open(root.path()).unwrap();
        set(root.path(), "intel-rapl:0:1", 200_000);
        let dram = meter.zones().unwrap().iter().find(|z| z.name == "dram").unwrap().joules();
        assert!((dram - 0.5).abs() < 1e-9, "{dram}");
        assert!((meter.joules().unwrap() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn no_powercap_is_not_found() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(RaplMeter::open(root.path()), Err(EnergyError::NotFound(_))));
    }

    #[test]
    fn an_unreadable_counter_says_how_to_allow_reading_it() {
        let root = fixture();
        let file = root.path().join("class/powercap/intel-rapl:1/energy_uj");
        let err = classify(&file, io::Error::from(io::ErrorKind::PermissionDenied));
        let message = err.to_string();
        assert!(message.contains("readable only by root") && message.contains("sudo chmod a+r"), "{message}");
        // Where the tests do not run as root, the real file system says the same.
        fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        if fs::read(&file).is_err() {
            assert!(matches!(RaplMeter::open(root.path()), Err(EnergyError::PermissionDenied { .. })));
        }
    }

    #[test]
    fn wrap_arithmetic() {
        assert_eq!(delta_with_wrap(10, 15, 100), 5);
        assert_eq!(delta_with_wrap(90, 5, 100), 15);
        assert_eq!(delta_with_wrap(7, 7, 100), 0);
    }
}
