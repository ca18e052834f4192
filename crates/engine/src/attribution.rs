//! Who pays for a step's joules: each decode step's energy is shared among the sequences in
//! it by the tokens each had in the batch, and the power drawn between requests is the idle
//! baseline reports are netted against.

use std::time::{Duration, Instant};

/// Shares `joules` in proportion to `tokens` (one entry per sequence in the step). The
/// shares add up to `joules`.
pub(crate) fn split(joules: f64, tokens: &[usize]) -> Vec<f64> {
    let total: usize = tokens.iter().sum();
    if total == 0 {
        return vec![0.0; tokens.len()];
    }
    tokens.iter().map(|&n| joules * n as f64 / total as f64).collect()
}

/// Power drawn while no request runs: the meter is read when the engine goes idle and when
/// work arrives again, and a gap of at least `IDLE_GAP` between them is idle time.
#[derive(Default)]
pub(crate) struct IdleBaseline {
    went_idle: Option<(Instant, f64)>,
    pub watts: Option<f64>,
}

const IDLE_GAP: Duration = Duration::from_millis(500);

impl IdleBaseline {
    pub fn busy(&mut self, now: Instant, joules: f64) {
        if let Some((since, joules_then)) = self.went_idle.take() {
            let gap = now.duration_since(since);
            if gap >= IDLE_GAP {
                self.watts = Some((joules - joules_then).max(0.0) / gap.as_secs_f64());
            }
        }
    }

    pub fn idle(&mut self, now: Instant, joules: f64) {
        self.went_idle = Some((now, joules));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_tokens_and_add_up_to_the_step() {
        let shares = split(12.0, &[1, 1, 510]);
        assert!((shares.iter().sum::<f64>() - 12.0).abs() < 1e-12);
        assert!((shares[0] - 12.0 / 512.0).abs() < 1e-12);
        assert_eq!(shares[0], shares[1]);
        assert!((shares[2] - 12.0 * 510.0 / 512.0).abs() < 1e-12);
        assert_eq!(split(5.0, &[]), Vec::<f64>::new());
        assert_eq!(split(5.0, &[0, 0]), [0.0, 0.0]);
    }

    #[test]
    fn idle_power_comes_from_gaps_between_requests() {
        let mut idle = IdleBaseline::default();
        let t0 = Instant::now();
        idle.busy(t0, 0.0);
        assert_eq!(idle.watts, None, "nothing measured before the first request");
        idle.idle(t0 + Duration::from_secs(1), 50.0);
        // 2 s idle, 6 J: 3 W.
        idle.busy(t0 + Duration::from_secs(3), 56.0);
        assert_eq!(idle.watts, Some(3.0));
        idle.idle(t0 + Duration::from_secs(4), 80.0);
        // A gap too short to measure keeps the last figure.
        idle.busy(t0 + Duration::from_millis(4100), 80.5);
        assert_eq!(idle.watts, Some(3.0));
    }
}
