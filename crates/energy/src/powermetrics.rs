//! macOS: Apple's `powermetrics` tool prints the power of the CPU, GPU and Neural Engine
//! (Apple silicon) or of the package (Intel) once per interval. The meter runs it in the
//! background and integrates each sample's power over the sample's own elapsed time. The
//! parser is platform-neutral so it is tested everywhere; the process runs only on macOS.

/// One sample: how long it covered and the power of each domain over it.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerSample {
    pub elapsed_seconds: f64,
    /// `cpu`, `gpu`, `ane`, `combined` (Apple silicon) or `package` (Intel), in watts.
    pub watts: Vec<(String, f64)>,
}

impl PowerSample {
    /// The whole machine's power as powermetrics totals it.
    pub fn total_watts(&self) -> f64 {
        let get = |name: &str| self.watts.iter().find(|(n, _)| n == name).map(|(_, w)| *w);
        get("combined").or_else(|| get("package")).unwrap_or_else(|| {
            self.watts.iter().filter(|(n, _)| ["cpu", "gpu", "ane"].contains(&n.as_str())).map(|(_, w)| w).sum()
        })
    }
}

/// The samples in powermetrics' text output, in order; a sample still being written at the
/// end is left out.
pub fn parse_samples(text: &str) -> Vec<PowerSample> {
    let mut samples = Vec::new();
    let mut current: Option<PowerSample> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("*** Sampled system activity") {
            samples.extend(current.take().filter(|s| !s.watts.is_empty()));
            let elapsed = line
                .rsplit_once('(')
                .and_then(|(_, rest)| rest.split_once("ms elapsed"))
                .and_then(|(ms, _)| ms.trim().parse::<f64>().ok());
            current = elapsed.map(|ms| PowerSample { elapsed_seconds: ms / 1e3, watts: Vec::new() });
            continue;
        }
        let Some(sample) = current.as_mut() else { continue };
        let Some((label, value)) = line.split_once(':') else { continue };
        let domain = match label {
            "CPU Power" => "cpu",
            "GPU Power" => "gpu",
            "ANE Power" => "ane",
            l if l.starts_with("Combined Power") => "combined",
            l if l.starts_with("Intel energy model derived package power") => "package",
            _ => continue,
        };
        if let Some(watts) = parse_power(value) {
            sample.watts.push((domain.to_string(), watts));
        }
    }
    samples.extend(current.filter(|s| !s.watts.is_empty() && text.trim_end().ends_with("mW")));
    samples
}

/// `1234 mW` or `3.21W`, in watts.
fn parse_power(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some(mw) = text.strip_suffix("mW") {
        return mw.trim().parse::<f64>().ok().map(|mw| mw / 1e3);
    }
    text.strip_suffix('W').and_then(|w| w.trim().parse().ok())
}

#[cfg(target_os = "macos")]
mod meter {
    use super::{parse_samples, PowerSample};
    use crate::EnergyError;
    use hearth_core::{EnergyMeter, EnergySource};
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};

    /// Joules per domain so far, shared with the thread reading powermetrics.
    type Totals = Arc<Mutex<(f64, Vec<(String, f64)>)>>;

    /// `powermetrics` running in the background (it needs root: run hearth with sudo).
    pub struct PowermetricsMeter {
        child: Child,
        totals: Totals,
    }

    impl PowermetricsMeter {
        pub fn open(interval_ms: u32) -> Result<Self, EnergyError> {
            let unreadable = |detail: String| EnergyError::Unreadable { path: "powermetrics".into(), detail };
            let mut child = Command::new("/usr/bin/powermetrics")
                .args(["--samplers", "cpu_power,gpu_power", "-i", &interval_ms.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| unreadable(e.to_string()))?;
            std::thread::sleep(std::time::Duration::from_millis(200));
            if let Ok(Some(status)) = child.try_wait() {
                return Err(unreadable(format!(
                    "powermetrics exited ({status}); it needs root: run hearth with sudo to measure energy"
                )));
            }
            let stdout = child.stdout.take().ok_or_else(|| unreadable("no output".into()))?;
            let totals: Totals = Arc::default();
            let shared = totals.clone();
            std::thread::spawn(move || {
                let mut pending = String::new();
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line.starts_with("*** Sampled system activity") && !pending.is_empty() {
                        for sample in parse_samples(&pending) {
                            add(&shared, &sample);
                        }
                        pending.clear();
                    }
                    pending.push_str(&line);
                    pending.push('\n');
                }
            });
            Ok(Self { child, totals })
        }
    }

    fn add(totals: &Totals, sample: &PowerSample) {
        let mut totals = totals.lock().expect("not poisoned");
        totals.0 += sample.total_watts() * sample.elapsed_seconds;
        for (domain, watts) in &sample.watts {
            let joules = watts * sample.elapsed_seconds;
            match totals.1.iter_mut().find(|(d, _)| d == domain) {
                Some((_, total)) => *total += joules,
                None => totals.1.push((domain.clone(), joules)),
            }
        }
    }

    impl EnergyMeter for PowermetricsMeter {
        fn source(&self) -> EnergySource {
            EnergySource::Measured
        }

        fn joules(&mut self) -> Result<f64, String> {
            Ok(self.totals.lock().expect("not poisoned").0)
        }

        fn domains(&mut self) -> Result<Vec<(String, f64)>, String> {
            Ok(self.totals.lock().expect("not poisoned").1.clone())
        }
    }

    impl Drop for PowermetricsMeter {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(target_os = "macos")]
pub use meter::PowermetricsMeter;

#[cfg(test)]
mod tests {
    use super::*;

    const APPLE_SILICON: &str = "\
*** Sampled system activity (Sat Nov 21 10:00:00 2026 +0000) (500.12ms elapsed) ***

**** Processor usage ****

E-Cluster HW active frequency: 1020 MHz
CPU Power: 1200 mW
GPU Power: 300 mW
ANE Power: 0 mW
Combined Power (CPU + GPU + ANE): 1500 mW

*** Sampled system activity (Sat Nov 21 10:00:00 2026 +0000) (499.88ms elapsed) ***
CPU Power: 2000 mW
GPU Power: 1000 mW
ANE Power: 0 mW
Combined Power (CPU + GPU + ANE): 3000 mW
";

    #[test]
    fn apple_silicon_samples_give_power_per_domain_and_a_total() {
        let samples = parse_samples(APPLE_SILICON);
        assert_eq!(samples.len(), 2);
        assert!((samples[0].elapsed_seconds - 0.50012).abs() < 1e-9);
        assert_eq!(samples[0].watts[0], ("cpu".to_string(), 1.2));
        assert_eq!(samples[1].total_watts(), 3.0);
        let joules: f64 = samples.iter().map(|s| s.total_watts() * s.elapsed_seconds).sum();
        assert!((joules - (1.5 * 0.50012 + 3.0 * 0.49988)).abs() < 1e-9);
    }

    #[test]
    fn intel_macs_report_package_power_and_a_cut_sample_is_left_out() {
        let text = "*** Sampled system activity (x) (1000.0ms elapsed) ***\n\
                    Intel energy model derived package power (CPUs+GT+SA): 3.21W\n\
                    *** Sampled system activity (x) (1000.0ms elapsed) ***\n\
                    **** Processor usage ****\n";
        let samples = parse_samples(text);
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].total_watts(), 3.21);
        assert!(parse_samples("").is_empty());
    }
}
