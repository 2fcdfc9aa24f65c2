//! In-process timed loops. A figure is a closure that does one iteration
//! of a fixed workload (its untimed setup included) and returns the time
//! of the timed part. [`interleave`] runs a group of figures round-robin,
//! each for a time budget per round, so that machine noise hits a figure
//! and its baseline alike, and reports each figure's median over rounds.

use std::time::{Duration, Instant};

/// How long each figure runs.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Wall time per figure and round (setup included).
    pub round: Duration,
    /// Rounds; the median is reported.
    pub rounds: usize,
}

impl Budget {
    /// `--quick`: 6 rounds of 50 ms, 0.3 s a figure.
    pub const QUICK: Budget = Budget { round: Duration::from_millis(50), rounds: 6 };
    /// Full run: 10 rounds of 200 ms, 2 s a figure.
    pub const FULL: Budget = Budget { round: Duration::from_millis(200), rounds: 10 };

    /// Total wall time of one figure.
    pub fn per_figure(&self) -> Duration {
        self.round * self.rounds as u32
    }
}

/// One iteration: does its setup, times its work, returns that time.
pub type Figure<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// The median of `v` (the upper middle for an even count); 0 when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Mean timed seconds per iteration over one round of `budget`.
fn round(f: &mut Figure<'_>, budget: Duration) -> f64 {
    let start = Instant::now();
    let mut timed = Duration::ZERO;
    let mut iters = 0u64;
    while iters == 0 || start.elapsed() < budget {
        timed += f();
        iters += 1;
    }
    timed.as_secs_f64() / iters as f64
}

/// Runs `figures` round-robin (one warm-up iteration each first) and
/// returns each one's median seconds per iteration.
pub fn interleave(budget: Budget, figures: &mut [Figure<'_>]) -> Vec<f64> {
    for f in figures.iter_mut() {
        f();
    }
    let mut samples = vec![Vec::with_capacity(budget.rounds); figures.len()];
    for _ in 0..budget.rounds.max(1) {
        for (f, s) in figures.iter_mut().zip(samples.iter_mut()) {
            s.push(round(f, budget.round));
        }
    }
    samples.into_iter().map(median).collect()
}

/// Times a closure that needs no setup.
pub fn timed(mut work: impl FnMut()) -> Duration {
    let t = Instant::now();
    work();
    t.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn interleave_reports_per_figure() {
        let b = Budget { round: Duration::from_millis(2), rounds: 3 };
        let mut figs: Vec<Figure<'_>> =
            vec![Box::new(|| Duration::from_micros(10)), Box::new(|| Duration::from_micros(30))];
        let r = interleave(b, &mut figs);
        assert!((r[0] - 10e-6).abs() < 1e-9 && (r[1] - 30e-6).abs() < 1e-9, "{r:?}");
    }
}
