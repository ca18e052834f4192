//! How much each API key may ask: requests per minute and tokens per day, as token buckets
//! that refill continuously (a key may burst up to its whole allowance, then gets its rate).
//! A request is let in while both buckets hold something; the tokens it used are taken
//! when it ends, so one long answer may run a day's bucket below zero, and the key then
//! waits until it has refilled.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One key's allowance; none: unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    pub requests_per_minute: Option<NonZeroU32>,
    pub tokens_per_day: Option<NonZeroU64>,
}

/// The allowances of every key: one for all (`[limits]` in the config file) and any key's
/// own (`[limits.keys.NAME]`), each of whose fields overrides the general one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    pub requests_per_minute: Option<NonZeroU32>,
    pub tokens_per_day: Option<NonZeroU64>,
    #[serde(default)]
    pub keys: BTreeMap<String, Allowance>,
}

impl KeyLimits {
    fn of(&self, key: &str) -> Allowance {
        let own = self.keys.get(key).copied().unwrap_or_default();
        Allowance {
            requests_per_minute: own.requests_per_minute.or(self.requests_per_minute),
            tokens_per_day: own.tokens_per_day.or(self.tokens_per_day),
        }
    }
}

/// A bucket of `capacity` that refills by `capacity` every `period`.
#[derive(Debug, Clone)]
struct Bucket {
    capacity: f64,
    per_second: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(capacity: u64, period: Duration, now: Instant) -> Self {
        let capacity = capacity as f64;
        Self { capacity, per_second: capacity / period.as_secs_f64(), level: capacity, at: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.per_second).min(self.capacity);
        self.at = now;
    }

    /// How long until the bucket holds `needed`; zero if it does now.
    fn wait_for(&self, needed: f64) -> Duration {
        if self.level >= needed || self.per_second <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((needed - self.level) / self.per_second)
    }
}

#[derive(Debug)]
struct KeyState {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// The buckets of the keys that have called, made on a key's first call.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: KeyLimits,
    state: Mutex<HashMap<String, KeyState>>,
}

/// Refused for now: how long until the key may try again, and which limit it hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    pub retry_after: Duration,
    pub limit: &'static str,
}

impl Limiter {
    pub fn new(limits: KeyLimits) -> Self {
        Self { limits, state: Mutex::default() }
    }

    fn with_state<T>(&self, key: &str, now: Instant, work: impl FnOnce(&mut KeyState) -> T) -> T {
        let mut states = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = states.entry(key.to_string()).or_insert_with(|| {
            let allowance = self.limits.of(key);
            KeyState {
                requests: allowance
                    .requests_per_minute
                    .map(|n| Bucket::new(u64::from(n.get()), Duration::from_secs(60), now)),
                tokens: allowance.tokens_per_day.map(|n| Bucket::new(n.get(), Duration::from_secs(86_400), now)),
            }
        });
        work(state)
    }

    /// Lets a request of `key` in, taking one from its requests, or says how long it waits.
    pub fn admit(&self, key: &str, now: Instant) -> Result<(), Exceeded> {
        self.with_state(key, now, |state| {
            for bucket in state.requests.iter_mut().chain(state.tokens.iter_mut()) {
                bucket.refill(now);
            }
            if let Some(tokens) = &state.tokens {
                // Any token left lets a request start; what it uses is taken when it ends.
                let wait = tokens.wait_for(f64::MIN_POSITIVE);
                if !wait.is_zero() {
                    return Err(Exceeded { retry_after: wait, limit: "tokens per day" });
                }
            }
            if let Some(requests) = &mut state.requests {
                let wait = requests.wait_for(1.0);
                if !wait.is_zero() {
                    return Err(Exceeded { retry_after: wait, limit: "requests per minute" });
                }
                requests.level -= 1.0;
            }
            Ok(())
        })
    }

    /// Takes the tokens a request of `key` used from its day's allowance.
    pub fn charge(&self, key: &str, tokens: u64, now: Instant) {
        self.with_state(key, now, |state| {
            if let Some(bucket) = &mut state.tokens {
                bucket.refill(now);
                bucket.level -= tokens as f64;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rpm: Option<u32>, tpd: Option<u64>) -> KeyLimits {
        KeyLimits {
            requests_per_minute: rpm.and_then(NonZeroU32::new),
            tokens_per_day: tpd.and_then(NonZeroU64::new),
            keys: BTreeMap::new(),
        }
    }

    #[test]
    fn requests_past_the_minute_s_allowance_wait_for_the_refill() {
        let limiter = Limiter::new(limits(Some(2), None));
        let start = Instant::now();
        limiter.admit("a", start).unwrap();
        limiter.admit("a", start).unwrap();
        let refused = limiter.admit("a", start).unwrap_err();
        assert_eq!(refused.limit, "requests per minute");
        assert!((refused.retry_after.as_secs_f64() - 30.0).abs() < 0.01, "{refused:?}");
        // Another key has its own bucket.
        limiter.admit("b", start).unwrap();
        // Half a minute refills one request.
        limiter.admit("a", start + Duration::from_secs(30)).unwrap();
        assert!(limiter.admit("a", start + Duration::from_secs(30)).is_err());
    }

    #[test]
    fn a_day_s_tokens_spent_hold_the_key_until_they_refill() {
        let limiter = Limiter::new(limits(None, Some(86_400)));
        let start = Instant::now();
        limiter.admit("a", start).unwrap();
        limiter.charge("a", 86_400 + 10, start);
        let refused = limiter.admit("a", start).unwrap_err();
        assert_eq!(refused.limit, "tokens per day");
        assert!((refused.retry_after.as_secs_f64() - 10.0).abs() < 0.01, "{refused:?}");
        limiter.admit("a", start + Duration::from_secs(11)).unwrap();
    }

    #[test]
    fn a_key_s_own_allowance_overrides_the_general_one_field_by_field() {
        let mut limits = limits(Some(1), Some(1000));
        let rpm = NonZeroU32::new(100);
        limits.keys.insert("batch".into(), Allowance { requests_per_minute: rpm, tokens_per_day: None });
        assert_eq!(limits.of("batch"), Allowance { requests_per_minute: rpm, tokens_per_day: NonZeroU64::new(1000) });
        let general = Allowance { requests_per_minute: NonZeroU32::new(1), tokens_per_day: NonZeroU64::new(1000) };
        assert_eq!(limits.of("other"), general);
        let unlimited = Limiter::new(KeyLimits::default());
        let now = Instant::now();
        for _ in 0..1000 {
            unlimited.admit("a", now).unwrap();
        }
    }
}
