//! GPU energy: each device's cumulative energy counter where the driver has one (NVIDIA
//! Volta and newer through NVML), else its power polled at every read and integrated over
//! time. The driver is behind [`GpuCounters`], so the arithmetic is tested without a GPU.

use crate::EnergyError;
use hearth_core::{EnergyMeter, EnergySource};
use std::time::Instant;

/// What a GPU driver says about its devices' energy.
pub trait GpuCounters: Send {
    fn device_count(&self) -> Result<u32, EnergyError>;
    /// Millijoules since the driver loaded; `None` for a device without the counter.
    fn total_energy_mj(&self, device: u32) -> Result<Option<u64>, EnergyError>;
    /// Power drawn now, in milliwatts.
    fn power_mw(&self, device: u32) -> Result<u32, EnergyError>;
}

enum Reading {
    Counter {
        last_mj: u64,
    },
    /// The last power reading and when it was taken, for trapezoids.
    Polled {
        last: (Instant, f64),
    },
}

struct Device {
    index: u32,
    reading: Reading,
    joules: f64,
}

/// Every GPU the driver reports, as one meter with a domain per device (`gpu-0`, ...).
pub struct GpuMeter<C> {
    counters: C,
    devices: Vec<Device>,
}

impl<C: GpuCounters> GpuMeter<C> {
    pub fn open(counters: C) -> Result<Self, EnergyError> {
        let count = counters.device_count()?;
        if count == 0 {
            return Err(EnergyError::NotFound("GPU"));
        }
        let now = Instant::now();
        let devices = (0..count)
            .map(|index| {
                let reading = match counters.total_energy_mj(index)? {
                    Some(mj) => Reading::Counter { last_mj: mj },
                    None => Reading::Polled { last: (now, f64::from(counters.power_mw(index)?) / 1e3) },
                };
                Ok(Device { index, reading, joules: 0.0 })
            })
            .collect::<Result<Vec<_>, EnergyError>>()?;
        Ok(Self { counters, devices })
    }

    /// How each device is read, for people: "gpu-0 counter, gpu-1 polled".
    pub fn describe(&self) -> String {
        let how = |d: &Device| match d.reading {
            Reading::Counter { .. } => "energy counter",
            Reading::Polled { .. } => "polled power",
        };
        self.devices.iter().map(|d| format!("gpu-{} {}", d.index, how(d))).collect::<Vec<_>>().join(", ")
    }

    fn read_at(&mut self, now: Instant) -> Result<(), EnergyError> {
        for device in &mut self.devices {
            match &mut device.reading {
                Reading::Counter { last_mj } => {
                    let mj = self.counters.total_energy_mj(device.index)?.unwrap_or(*last_mj);
                    // The counter restarts when the driver reloads: count from there.
                    device.joules += mj.saturating_sub(*last_mj) as f64 / 1e3;
                    *last_mj = mj;
                }
                Reading::Polled { last } => {
                    let watts = f64::from(self.counters.power_mw(device.index)?) / 1e3;
                    let (then, previous) = *last;
                    device.joules += (previous + watts) / 2.0 * now.duration_since(then).as_secs_f64();
                    *last = (now, watts);
                }
            }
        }
        Ok(())
    }
}

impl<C: GpuCounters> EnergyMeter for GpuMeter<C> {
    fn source(&self) -> EnergySource {
        EnergySource::Measured
    }

    fn joules(&mut self) -> Result<f64, String> {
        self.read_at(Instant::now()).map_err(|e| e.to_string())?;
        Ok(self.devices.iter().map(|d| d.joules).sum())
    }

    fn domains(&mut self) -> Result<Vec<(String, f64)>, String> {
        self.read_at(Instant::now()).map_err(|e| e.to_string())?;
        Ok(self.devices.iter().map(|d| (format!("gpu-{}", d.index), d.joules)).collect())
    }
}

/// Several meters read as one: the machine's CPU side and its GPUs. Measured only when
/// every part is.
pub struct CombinedMeter {
    parts: Vec<Box<dyn EnergyMeter>>,
}

impl CombinedMeter {
    pub fn new(parts: Vec<Box<dyn EnergyMeter>>) -> Self {
        Self { parts }
    }
}

impl EnergyMeter for CombinedMeter {
    fn source(&self) -> EnergySource {
        if self.parts.iter().all(|p| p.source() == EnergySource::Measured) {
            EnergySource::Measured
        } else {
            EnergySource::Estimated
        }
    }

    fn joules(&mut self) -> Result<f64, String> {
        self.parts.iter_mut().map(|p| p.joules()).sum()
    }

    fn domains(&mut self) -> Result<Vec<(String, f64)>, String> {
        let mut domains = Vec::new();
        for part in &mut self.parts {
            domains.extend(part.domains()?);
        }
        Ok(domains)
    }
}

#[cfg(feature = "nvml")]
mod nvml {
    //! NVIDIA's management library, loaded at run time (a machine without the driver just
    //! has no GPU meter).
    use super::GpuCounters;
    use crate::EnergyError;
    use nvml_wrapper::error::NvmlError;
    use nvml_wrapper::Nvml;

    pub struct NvmlCounters(Nvml);

    impl NvmlCounters {
        pub fn init() -> Result<Self, EnergyError> {
            Nvml::init()
                .map(Self)
                .map_err(|e| EnergyError::Unreadable { path: "libnvidia-ml".into(), detail: e.to_string() })
        }
    }

    fn error(e: NvmlError) -> EnergyError {
        EnergyError::Unreadable { path: "nvml".into(), detail: e.to_string() }
    }

    impl GpuCounters for NvmlCounters {
        fn device_count(&self) -> Result<u32, EnergyError> {
            self.0.device_count().map_err(error)
        }

        fn total_energy_mj(&self, device: u32) -> Result<Option<u64>, EnergyError> {
            let device = self.0.device_by_index(device).map_err(error)?;
            match device.total_energy_consumption() {
                Ok(mj) => Ok(Some(mj)),
                Err(NvmlError::NotSupported) => Ok(None),
                Err(e) => Err(error(e)),
            }
        }

        fn power_mw(&self, device: u32) -> Result<u32, EnergyError> {
            self.0.device_by_index(device).and_then(|d| d.power_usage()).map_err(error)
        }
    }
}

#[cfg(feature = "nvml")]
pub use nvml::NvmlCounters;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Device 0 has an energy counter; device 1 only reports power.
    #[derive(Clone, Default)]
    struct FakeDriver(Arc<Mutex<(u64, u32)>>);

    impl GpuCounters for FakeDriver {
        fn device_count(&self) -> Result<u32, EnergyError> {
            Ok(2)
        }
        fn total_energy_mj(&self, device: u32) -> Result<Option<u64>, EnergyError> {
            Ok((device == 0).then(|| self.0.lock().unwrap().0))
        }
        fn power_mw(&self, _device: u32) -> Result<u32, EnergyError> {
            Ok(self.0.lock().unwrap().1)
        }
    }

    #[test]
    fn counters_give_deltas_and_polled_power_is_integrated() {
        let driver = FakeDriver::default();
        *driver.0.lock().unwrap() = (5_000, 100_000);
        let mut meter = GpuMeter::open(driver.clone()).unwrap();
        assert_eq!(meter.describe(), "gpu-0 energy counter, gpu-1 polled power");
        let start = Instant::now();
        *driver.0.lock().unwrap() = (12_500, 300_000);
        meter.read_at(start + std::time::Duration::from_secs(2)).unwrap();
        assert!((meter.devices[0].joules - 7.5).abs() < 1e-9);
        // 100 W then 300 W over about 2 s: about 400 J by trapezoid.
        assert!((meter.devices[1].joules - 400.0).abs() < 1.0, "{}", meter.devices[1].joules);
        // A driver reload restarts the counter: no negative energy, counting resumes.
        *driver.0.lock().unwrap() = (1_000, 300_000);
        meter.read_at(start + std::time::Duration::from_secs(2)).unwrap();
        assert!((meter.devices[0].joules - 7.5).abs() < 1e-9);
        let domains: Vec<String> = meter.domains().unwrap().into_iter().map(|(d, _)| d).collect();
        assert_eq!(domains, ["gpu-0", "gpu-1"]);
    }

    struct Fixed(f64, EnergySource);

    impl EnergyMeter for Fixed {
        fn source(&self) -> EnergySource {
            self.1
        }
        fn joules(&mut self) -> Result<f64, String> {
            Ok(self.0)
        }
    }

    #[test]
    fn a_combined_meter_sums_and_is_measured_only_when_every_part_is() {
        let mut both = CombinedMeter::new(vec![
            Box::new(Fixed(2.0, EnergySource::Measured)),
            Box::new(Fixed(3.0, EnergySource::Measured)),
        ]);
        assert_eq!((both.joules().unwrap(), both.source()), (5.0, EnergySource::Measured));
        let mixed = CombinedMeter::new(vec![
            Box::new(Fixed(2.0, EnergySource::Estimated)),
            Box::new(Fixed(3.0, EnergySource::Measured)),
        ]);
        assert_eq!(mixed.source(), EnergySource::Estimated);
        assert_eq!(both.domains().unwrap().len(), 2);
    }
}
