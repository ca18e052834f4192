//! `GET /metrics` in Prometheus's text format: requests, tokens in and out, time to first
//! token and inter-token latency histograms, requests in flight, loaded models, the energy
//! answers have reported, and the machine's own meter per domain with its power; and the
//! live reading the web page charts while an answer streams (`GET /api/live`).

use crate::usage::DailyUsage;
use hearth_core::{EnergyMeter, EnergyReport, EnergySource, Usage};
use serde::Serialize;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The server's own reading of the machine's energy meter, scrape by scrape.
struct MachineMeter {
    meter: Box<dyn EnergyMeter>,
    /// The total at the previous scrape, for the power since then.
    last: Option<(Instant, f64)>,
    /// Recent live readings: kept apart from the scrapes', so a page polling three times
    /// a second does not shorten Prometheus's interval, and several pages share them.
    recent: VecDeque<(Instant, f64)>,
}

/// How far back a live reading looks for the power: short enough to follow an answer,
/// long enough that a counter updated a few times a second reads steadily.
const LIVE_WINDOW: Duration = Duration::from_secs(2);
/// A reading closer than this to the previous one reuses it rather than taking another.
const LIVE_MIN_STEP: Duration = Duration::from_millis(200);

impl MachineMeter {
    /// The average power over about the last [`LIVE_WINDOW`]; `None` until two readings
    /// [`LIVE_MIN_STEP`] apart exist.
    fn live_watts(&mut self) -> Option<f64> {
        let now = Instant::now();
        let fresh = self.recent.back().is_some_and(|(at, _)| now.duration_since(*at) < LIVE_MIN_STEP);
        if !fresh {
            let joules = self.meter.joules().ok()?;
            self.recent.push_back((now, joules));
        }
        while self.recent.len() > 2 && self.recent[1].0 + LIVE_WINDOW < now {
            self.recent.pop_front();
        }
        let (&(first, before), &(last, after)) = (self.recent.front()?, self.recent.back()?);
        let seconds = last.duration_since(first).as_secs_f64();
        (seconds > 0.0).then(|| ((after - before) / seconds).max(0.0))
    }

    fn render(&mut self, out: &mut String) {
        let source = self.meter.source().as_str();
        let (Ok(domains), Ok(total)) = (self.meter.domains(), self.meter.joules()) else { return };
        let _ = writeln!(
            out,
            "# HELP hearth_energy_joules_total The machine's energy since the server started, by meter domain.\n\
             # TYPE hearth_energy_joules_total counter"
        );
        for (domain, joules) in domains {
            let _ = writeln!(out, "hearth_energy_joules_total{{domain=\"{domain}\",source=\"{source}\"}} {joules}");
        }
        let now = Instant::now();
        if let Some((then, before)) = self.last {
            let seconds = now.duration_since(then).as_secs_f64();
            if seconds > 0.0 {
                let _ = writeln!(
                    out,
                    "# HELP hearth_power_watts The machine's average power since the previous scrape.\n\
                     # TYPE hearth_power_watts gauge\n\
                     hearth_power_watts{{source=\"{source}\"}} {}",
                    (total - before) / seconds
                );
            }
        }
        self.last = Some((now, total));
    }
}

const TTFT_BUCKETS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const ITL_BUCKETS: &[f64] = &[0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

/// A Prometheus histogram: cumulative bucket counts, sum and count.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, seconds: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}",
            self.count, self.sum, self.count
        );
    }
}

/// `GET /api/live`'s answer.
#[derive(Debug, Serialize)]
pub struct Live {
    /// The machine's average power over the last two seconds or so; absent without a meter
    /// or before two readings.
    pub watts: Option<f64>,
    /// `measured` or `estimated`: how the meter knows.
    pub source: Option<&'static str>,
    /// Requests being answered or waiting for a slot.
    pub in_flight: u64,
    pub requests: u64,
    pub generated_tokens: u64,
}

pub struct Metrics {
    requests: AtomicU64,
    failed: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    draft_tokens: AtomicU64,
    accepted_draft_tokens: AtomicU64,
    in_flight: AtomicU64,
    ttft: Mutex<Histogram>,
    itl: Mutex<Histogram>,
    /// Joules reported by answers: measured, estimated.
    joules: Mutex<[f64; 2]>,
    /// The average power of the last answer, watts.
    last_watts: Mutex<Option<f64>>,
    machine: Option<Mutex<MachineMeter>>,
    /// The same answers by UTC day, kept on disk for `hearth cost --from-usage`.
    pub usage: DailyUsage,
}

impl Metrics {
    /// Metrics that also read the machine's energy meter at every scrape.
    pub fn with_meter(meter: Option<Box<dyn EnergyMeter>>) -> Self {
        let machine = meter.map(|meter| Mutex::new(MachineMeter { meter, last: None, recent: VecDeque::new() }));
        Self { machine, ..Self::default() }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            cached_prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            draft_tokens: AtomicU64::new(0),
            accepted_draft_tokens: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            ttft: Mutex::new(Histogram::new(TTFT_BUCKETS)),
            itl: Mutex::new(Histogram::new(ITL_BUCKETS)),
            joules: Mutex::new([0.0; 2]),
            last_watts: Mutex::new(None),
            machine: None,
            usage: DailyUsage::default(),
        }
    }
}

impl Metrics {
    pub fn started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// The request is over, however it ended.
    pub fn ended(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn token_gap(&self, gap: Duration) {
        self.itl.lock().expect("not poisoned").observe(gap.as_secs_f64());
    }

    pub fn answered(&self, usage: &Usage, time_to_first_token: Duration, energy: Option<&EnergyReport>) {
        self.prompt_tokens.fetch_add(u64::from(usage.prompt_tokens), Ordering::Relaxed);
        self.cached_prompt_tokens.fetch_add(u64::from(usage.cached_prompt_tokens), Ordering::Relaxed);
        self.generated_tokens.fetch_add(u64::from(usage.completion_tokens), Ordering::Relaxed);
        self.draft_tokens.fetch_add(u64::from(usage.draft_tokens), Ordering::Relaxed);
        self.accepted_draft_tokens.fetch_add(u64::from(usage.accepted_draft_tokens), Ordering::Relaxed);
        self.ttft.lock().expect("not poisoned").observe(time_to_first_token.as_secs_f64());
        if let Some(energy) = energy {
            let index = usize::from(energy.source == EnergySource::Estimated);
            self.joules.lock().expect("not poisoned")[index] += energy.total_joules();
            *self.last_watts.lock().expect("not poisoned") = energy.average_watts();
        }
        let (prompt, completion) = (u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens));
        self.usage.record(SystemTime::now(), prompt, completion, energy);
    }

    /// What is happening now, cheaply: for a page that charts it while an answer streams.
    pub fn live(&self) -> Live {
        let (watts, source) = match &self.machine {
            Some(machine) => {
                let mut machine = machine.lock().expect("not poisoned");
                (machine.live_watts(), Some(machine.meter.source().as_str()))
            }
            None => (None, None),
        };
        Live {
            watts,
            source,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            generated_tokens: self.generated_tokens.load(Ordering::Relaxed),
        }
    }

    pub fn render(&self, loaded_models: usize) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        counter("hearth_requests_total", "Generation requests received.", "counter", get(&self.requests));
        counter(
            "hearth_requests_failed_total",
            "Generation requests that ended in an error.",
            "counter",
            get(&self.failed),
        );
        counter(
            "hearth_prompt_tokens_total",
            "Prompt tokens of answered requests.",
            "counter",
            get(&self.prompt_tokens),
        );
        counter(
            "hearth_prompt_tokens_cached_total",
            "Prompt tokens served from the KV cache instead of computed.",
            "counter",
            get(&self.cached_prompt_tokens),
        );
        counter("hearth_generated_tokens_total", "Tokens generated.", "counter", get(&self.generated_tokens));
        counter(
            "hearth_draft_tokens_total",
            "Tokens speculative decoding drafted for the model to verify.",
            "counter",
            get(&self.draft_tokens),
        );
        counter(
            "hearth_draft_tokens_accepted_total",
            "Drafted tokens the model accepted; over hearth_draft_tokens_total, the acceptance rate.",
            "counter",
            get(&self.accepted_draft_tokens),
        );
        counter(
            "hearth_requests_in_flight",
            "Requests being answered or waiting for a slot.",
            "gauge",
            get(&self.in_flight),
        );
        counter("hearth_loaded_models", "Models loaded now.", "gauge", loaded_models.to_string());
        if let Some(watts) = *self.last_watts.lock().expect("not poisoned") {
            counter("hearth_answer_power_watts", "Average power of the last answer.", "gauge", watts.to_string());
        }
        let joules = *self.joules.lock().expect("not poisoned");
        let _ = writeln!(
            out,
            "# HELP hearth_request_energy_joules_total Energy attributed to answers, by how it was known.\n\
             # TYPE hearth_request_energy_joules_total counter\n\
             hearth_request_energy_joules_total{{source=\"measured\"}} {}\n\
             hearth_request_energy_joules_total{{source=\"estimated\"}} {}",
            joules[0], joules[1]
        );
        if let Some(machine) = &self.machine {
            machine.lock().expect("not poisoned").render(&mut out);
        }
        self.ttft.lock().expect("not poisoned").render(
            &mut out,
            "hearth_time_to_first_token_seconds",
            "From a request's arrival to its first token.",
        );
        self.itl.lock().expect("not poisoned").render(
            &mut out,
            "hearth_inter_token_latency_seconds",
            "Between consecutive pieces of text of a streamed answer.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_add_up() {
        let metrics = Metrics::default();
        metrics.started();
        let usage = Usage {
            prompt_tokens: 30,
            cached_prompt_tokens: 20,
            completion_tokens: 5,
            draft_tokens: 8,
            accepted_draft_tokens: 3,
        };
        let energy = EnergyReport {
            prefill_joules: 1.0,
            decode_joules: 2.0,
            seconds: 1.5,
            idle_watts: None,
            source: EnergySource::Estimated,
        };
        metrics.answered(&usage, Duration::from_millis(70), Some(&energy));
        metrics.token_gap(Duration::from_millis(7));
        metrics.ended();
        let text = metrics.render(1);
        for line in [
            "hearth_requests_total 1",
            "hearth_requests_in_flight 0",
            "hearth_prompt_tokens_total 30",
            "hearth_prompt_tokens_cached_total 20",
            "hearth_generated_tokens_total 5",
            "hearth_draft_tokens_total 8",
            "hearth_draft_tokens_accepted_total 3",
            "hearth_loaded_models 1",
            "hearth_answer_power_watts 2",
            "hearth_request_energy_joules_total{source=\"estimated\"} 3",
            "hearth_time_to_first_token_seconds_bucket{le=\"0.05\"} 0",
            "hearth_time_to_first_token_seconds_bucket{le=\"0.1\"} 1",
            "hearth_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1",
            "hearth_inter_token_latency_seconds_bucket{le=\"0.01\"} 1",
            "hearth_inter_token_latency_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("hearth_energy_joules_total"), "no machine meter, no machine energy");
    }

    /// Two packages that each draw 1 J per read.
    struct TwoPackages(f64);

    impl EnergyMeter for TwoPackages {
        fn source(&self) -> EnergySource {
            EnergySource::Measured
        }
        fn joules(&mut self) -> Result<f64, String> {
            self.0 += 1.0;
            Ok(2.0 * self.0)
        }
        fn domains(&mut self) -> Result<Vec<(String, f64)>, String> {
            Ok(vec![("package-0".into(), self.0), ("package-1".into(), self.0)])
        }
    }

    #[test]
    fn live_power_comes_from_readings_a_step_apart_whatever_prometheus_scrapes() {
        let metrics = Metrics::with_meter(Some(Box::new(TwoPackages(0.0))));
        let first = metrics.live();
        assert_eq!((first.watts, first.source, first.in_flight), (None, Some("measured"), 0), "one reading: no power");
        metrics.started();
        assert_eq!(metrics.live().watts, None, "a second poll within the step reuses the reading");
        metrics.render(0);
        std::thread::sleep(LIVE_MIN_STEP + Duration::from_millis(50));
        let live = metrics.live();
        // Each read of the fake adds 2 J: one between the two live readings (the scrape's
        // own reading is in between, so 4 J over at least the step).
        let watts = live.watts.expect("two readings a step apart");
        let most = 4.0 / LIVE_MIN_STEP.as_secs_f64();
        assert!(watts > 0.0 && watts <= most, "{watts} W");
        assert_eq!(live.in_flight, 1);
        let without = Metrics::default().live();
        assert_eq!((without.watts, without.source), (None, None), "no meter, no power");
    }

    #[test]
    fn the_machine_meter_is_reported_per_domain_with_power_between_scrapes() {
        let metrics = Metrics::with_meter(Some(Box::new(TwoPackages(0.0))));
        let first = metrics.render(0);
        assert!(first.contains("hearth_energy_joules_total{domain=\"package-0\",source=\"measured\"} 0"), "{first}");
        assert!(first.contains("hearth_energy_joules_total{domain=\"package-1\",source=\"measured\"} 0"), "{first}");
        assert!(!first.contains("hearth_power_watts"), "power needs two scrapes");
        std::thread::sleep(Duration::from_millis(20));
        let second = metrics.render(0);
        let watts: f64 = second
            .lines()
            .find_map(|l| l.strip_prefix("hearth_power_watts{source=\"measured\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(watts > 0.0, "{second}");
    }
}
