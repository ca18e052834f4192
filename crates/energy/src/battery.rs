//! A laptop battery as a power meter (`/sys/class/power_supply/BAT*`): while it discharges,
//! everything the machine draws comes from it, so its power integrated over time is the
//! machine's energy. Power is `power_now`, or `current_now` x `voltage_now`. The battery's
//! own fuel gauge (`energy_now`, or `charge_now` x `voltage_now`) is kept beside it as a
//! cross-check: it moves in coarse steps, but over minutes the two should agree.

use crate::error::{read_text, read_u64, EnergyError};
use hearth_core::{EnergyMeter, EnergySource};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct BatteryMeter {
    dir: PathBuf,
    last: Option<(Instant, f64)>,
    joules: f64,
    /// The fuel gauge's stored energy when the meter opened, joules.
    gauge_at_open: Option<f64>,
}

impl BatteryMeter {
    /// The first battery under `sys_root` (normally `/sys`), if it is discharging now.
    pub fn open(sys_root: &Path) -> Result<Self, EnergyError> {
        let supplies = sys_root.join("class/power_supply");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&supplies)
            .map_err(|_| EnergyError::NotFound("battery"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|d| read_text(&d.join("type")).is_ok_and(|t| t == "Battery"))
            .collect();
        dirs.sort();
        let dir = dirs.into_iter().next().ok_or(EnergyError::NotFound("battery"))?;
        let mut meter = Self { dir, last: None, joules: 0.0, gauge_at_open: None };
        meter.read_at(Instant::now())?;
        meter.gauge_at_open = meter.gauge();
        Ok(meter)
    }

    /// Energy stored in the battery by its fuel gauge, joules.
    fn gauge(&self) -> Option<f64> {
        let read = |name: &str| read_u64(&self.dir.join(name)).ok().map(|v| v as f64);
        let microwatt_hours = read("energy_now").or_else(|| Some(read("charge_now")? * read("voltage_now")? / 1e6))?;
        Some(microwatt_hours * 3.6e-3)
    }

    /// Joules drawn since opening by the fuel gauge, to cross-check the integrated power.
    pub fn gauge_joules(&self) -> Option<f64> {
        Some(self.gauge_at_open? - self.gauge()?)
    }

    /// Watts drawn from the battery now; an error unless it is discharging.
    pub fn watts(&self) -> Result<f64, EnergyError> {
        let status = read_text(&self.dir.join("status"))?;
        if status != "Discharging" {
            return Err(EnergyError::NotDischarging(status));
        }
        match read_u64(&self.dir.join("power_now")) {
            Ok(microwatts) => Ok(microwatts as f64 / 1e6),
            Err(_) => {
                let microamps = read_u64(&self.dir.join("current_now"))? as f64;
                let microvolts = read_u64(&self.dir.join("voltage_now"))? as f64;
                Ok(microamps * microvolts / 1e12)
            }
        }
    }

    /// Integrates power up to `now` (trapezoids between readings); joules since opening.
    fn read_at(&mut self, now: Instant) -> Result<f64, EnergyError> {
        let watts = self.watts()?;
        if let Some((then, previous)) = self.last {
            self.joules += (previous + watts) / 2.0 * now.duration_since(then).as_secs_f64();
        }
        self.last = Some((now, watts));
        Ok(self.joules)
    }
}

impl EnergyMeter for BatteryMeter {
    fn source(&self) -> EnergySource {
        EnergySource::Measured
    }

    fn joules(&mut self) -> Result<f64, String> {
        self.read_at(Instant::now()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    fn battery(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let ac = root.path().join("class/power_supply/AC");
        fs::create_dir_all(&ac).unwrap();
        fs::write(ac.join("type"), "Mains\n").unwrap();
        let bat = root.path().join("class/power_supply/BAT0");
        fs::create_dir_all(&bat).unwrap();
        fs::write(bat.join("type"), "Battery\n").unwrap();
        for (name, value) in files {
            fs::write(bat.join(name), format!("{value}\n")).unwrap();
        }
        root
    }

    #[test]
    fn integrates_power_while_discharging() {
        let root = battery(&[("status", "Discharging"), ("power_now", "10000000")]);
        let mut meter = BatteryMeter::open(root.path()).unwrap();
        let start = meter.last.unwrap().0;
        fs::write(root.path().join("class/power_supply/BAT0/power_now"), "14000000").unwrap();
        // 2 s from 10 W to 14 W: 24 J.
        let joules = meter.read_at(start + Duration::from_secs(2)).unwrap();
        assert!((joules - 24.0).abs() < 1e-9, "{joules}");
        assert_eq!(meter.source(), EnergySource::Measured);
    }

    #[test]
    fn the_fuel_gauge_cross_checks_the_integrated_power() {
        let root = battery(&[("status", "Discharging"), ("power_now", "10000000"), ("energy_now", "40000000")]);
        let meter = BatteryMeter::open(root.path()).unwrap();
        assert_eq!(meter.gauge_joules(), Some(0.0));
        // 40 Wh to 39.99 Wh: 10 mWh = 36 J drawn.
        fs::write(root.path().join("class/power_supply/BAT0/energy_now"), "39990000").unwrap();
        assert!((meter.gauge_joules().unwrap() - 36.0).abs() < 1e-6);
        let charge = battery(&[
            ("status", "Discharging"),
            ("power_now", "10000000"),
            ("charge_now", "3000000"),
            ("voltage_now", "12000000"),
        ]);
        let meter = BatteryMeter::open(charge.path()).unwrap();
        fs::write(charge.path().join("class/power_supply/BAT0/charge_now"), "2999000").unwrap();
        // 1 mAh at 12 V = 12 mWh = 43.2 J.
        assert!((meter.gauge_joules().unwrap() - 43.2).abs() < 1e-6);
    }

    #[test]
    fn current_times_voltage_when_there_is_no_power_file() {
        let root = battery(&[("status", "Discharging"), ("current_now", "1500000"), ("voltage_now", "12000000")]);
        let meter = BatteryMeter::open(root.path()).unwrap();
        assert!((meter.watts().unwrap() - 18.0).abs() < 1e-9);
    }

    #[test]
    fn a_charging_battery_is_no_meter() {
        let root = battery(&[("status", "Charging"), ("power_now", "30000000")]);
        assert!(matches!(BatteryMeter::open(root.path()), Err(EnergyError::NotDischarging(s)) if s == "Charging"));
    }

    #[test]
    fn unplugging_mid_run_is_an_error_not_a_wrong_figure() {
        let root = battery(&[("status", "Discharging"), ("power_now", "10000000")]);
        let mut meter = BatteryMeter::open(root.path()).unwrap();
        fs::write(root.path().join("class/power_supply/BAT0/status"), "Charging").unwrap();
        assert!(meter.joules().is_err());
    }

    #[test]
    fn no_battery_is_not_found() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(BatteryMeter::open(root.path()), Err(EnergyError::NotFound(_))));
    }
}
