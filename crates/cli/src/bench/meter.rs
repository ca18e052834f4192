//! Energy over a benchmark's runs: the meter read around each run (or each load level), an
//! idle baseline measured before a target's runs, and the figures made of them.

use super::stats::Spread;
use hearth_core::EnergyMeter;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Energy of a workload's runs, each figure over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Energy {
    pub joules_per_generated_token: Spread,
    pub wh_per_1000_tokens: Spread,
    pub watts: Spread,
    /// Joules per generated token above the idle baseline.
    pub net_joules_per_generated_token: Option<Spread>,
    pub source: &'static str,
}

/// Joules measured over one window.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub joules: f64,
    pub seconds: f64,
}

/// A meter and the power it reads while nothing runs.
pub struct Meter {
    meter: Option<Box<dyn EnergyMeter>>,
    pub idle_watts: Option<f64>,
}

impl Meter {
    pub fn new(meter: Option<Box<dyn EnergyMeter>>) -> Self {
        Self { meter, idle_watts: None }
    }

    pub fn source(&self) -> Option<&'static str> {
        self.meter.as_ref().map(|m| m.source().as_str())
    }

    /// Measures the idle power over `span`, for net figures.
    pub fn measure_idle(&mut self, span: Duration) {
        let start = self.start();
        std::thread::sleep(span);
        self.idle_watts = self.stop(start).map(|r| r.joules / r.seconds.max(1e-9));
    }

    /// The meter's reading now, to be passed to [`Meter::stop`].
    pub fn start(&mut self) -> Option<(f64, Instant)> {
        let joules = self.meter.as_mut()?.joules().ok()?;
        Some((joules, Instant::now()))
    }

    pub fn stop(&mut self, start: Option<(f64, Instant)>) -> Option<Reading> {
        let (before, then) = start?;
        let after = self.meter.as_mut()?.joules().ok()?;
        Some(Reading { joules: (after - before).max(0.0), seconds: then.elapsed().as_secs_f64() })
    }

    /// The figures of windows that each produced `tokens` generated tokens.
    pub fn energy(&self, windows: &[(Reading, u32)]) -> Option<Energy> {
        let source = self.source()?;
        let per_token: Vec<(f64, f64)> = windows
            .iter()
            .filter(|(_, tokens)| *tokens > 0)
            .map(|(reading, tokens)| {
                let net = self.idle_watts.map_or(f64::NAN, |idle| (reading.joules - idle * reading.seconds).max(0.0));
                (reading.joules / f64::from(*tokens), net / f64::from(*tokens))
            })
            .collect();
        let gross: Vec<f64> = per_token.iter().map(|(g, _)| *g).collect();
        let net: Vec<f64> = per_token.iter().map(|(_, n)| *n).filter(|n| n.is_finite()).collect();
        let watts: Vec<f64> =
            windows.iter().filter(|(r, _)| r.seconds > 0.0).map(|(r, _)| r.joules / r.seconds).collect();
        let wh: Vec<f64> = gross.iter().map(|j| j * 1000.0 / 3600.0).collect();
        Some(Energy {
            joules_per_generated_token: Spread::of(&gross)?,
            wh_per_1000_tokens: Spread::of(&wh)?,
            watts: Spread::of(&watts)?,
            net_joules_per_generated_token: Spread::of(&net),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::EnergySource;

    /// A meter at a fixed 10 J per read.
    struct Steps(f64);

    impl EnergyMeter for Steps {
        fn source(&self) -> EnergySource {
            EnergySource::Measured
        }

        fn joules(&mut self) -> Result<f64, String> {
            self.0 += 10.0;
            Ok(self.0)
        }
    }

    #[test]
    fn figures_per_token_with_and_without_a_baseline() {
        let mut meter = Meter::new(Some(Box::new(Steps(0.0))));
        let started = meter.start();
        let reading = meter.stop(started).unwrap();
        assert_eq!(reading.joules, 10.0);
        let windows = [(Reading { joules: 20.0, seconds: 2.0 }, 10), (Reading { joules: 40.0, seconds: 2.0 }, 10)];
        let energy = meter.energy(&windows).unwrap();
        assert_eq!(energy.joules_per_generated_token.median, 3.0);
        assert!((energy.wh_per_1000_tokens.median - 3.0 / 3.6).abs() < 1e-12);
        assert_eq!((energy.watts.min, energy.watts.max), (10.0, 20.0));
        assert!(energy.net_joules_per_generated_token.is_none());
        meter.idle_watts = Some(5.0);
        let net = meter.energy(&windows).unwrap().net_joules_per_generated_token.unwrap();
        assert_eq!((net.min, net.max), (1.0, 3.0));
        assert_eq!(energy.source, "measured");
        assert!(Meter::new(None).energy(&windows).is_none());
    }
}
