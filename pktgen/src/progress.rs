//! Progress of long work (signing a transaction pool; the node's recovery
//! uses the same): on a terminal a bar with the count, the rate and the
//! time left (`indicatif`); otherwise, for logs and CI, a plain line every
//! few seconds, and none at all for work that ends sooner.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line is printed when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(3);

/// One piece of long work, `total` units (transactions, blocks, bytes).
pub struct Progress {
    label: String,
    total: u64,
    unit: &'static str,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Progress of `total` `unit`s of `label` on stderr: a bar when stderr
    /// is a terminal, plain lines otherwise.
    pub fn new(label: &str, total: u64, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            let style = ProgressStyle::with_template(&format!(
                "{label}: [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, {{eta}} left)"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            b
        });
        let now = Instant::now();
        Progress { label: label.to_string(), total, unit, started: now, last_line: now, bar }
    }

    /// `done` units are done.
    pub fn set(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        if self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            eprintln!("{}", self.line(done));
        }
    }

    /// The plain line for `done` units: count, rate, time left.
    pub fn line(&self, done: u64) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let left = if rate > 0.0 { (self.total.saturating_sub(done)) as f64 / rate } else { f64::INFINITY };
        format!("{}: {done}/{} {} ({:.0}/s, {:.0} s left)", self.label, self.total, self.unit, rate, left)
    }

    /// The work ended: the bar is cleared (the caller prints its own
    /// closing line).
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_has_count_rate_and_time_left() {
        let mut p = Progress::new("signing", 1000, "transactions");
        p.started = Instant::now() - Duration::from_secs(2);
        let l = p.line(500);
        assert!(l.starts_with("signing: 500/1000 transactions ("), "{l}");
        // 250/s for 2 s, so 2 s left (to rounding of the clock).
        let rate: f64 = l.split('(').nth(1).unwrap().split('/').next().unwrap().parse().unwrap();
        assert!((240.0..=251.0).contains(&rate), "{l}");
        assert!(l.ends_with(" s left)"), "{l}");
        p.finish();
    }
}
