//! The failure budget of a session: what an authenticated client may cost
//! the node in work that yields nothing (transactions whose signatures
//! fail, transactions the ledger refuses) before its frames are dropped as
//! `throttled` for a cool-down.
//!
//! A leaky bucket per session and data core: every failure adds one to the
//! session's debt, which drains at [`BudgetConfig::per_s`] a second; a
//! failure that takes the debt over [`BudgetConfig::burst`] throttles the
//! session for [`BudgetConfig::cooldown_ms`]. While throttled, the
//! session's frames are dropped after authentication (steps 6-8, so a
//! forger cannot throttle someone else's session) and before any
//! decompression or signature work. The control thread charges ledger
//! refusals by sending [`crate::command::Command::Throttle`] to every core.
//!
//! Clock-free like the rest of the core: the host passes the time in
//! milliseconds ([`crate::path::FramePath::set_now_ms`]).

/// The budget's limits, the same for every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Failures a second a session may cause, sustained. Default 100.
    pub per_s: u32,
    /// Failures a session may cause at once, on top of the rate. Default 200.
    pub burst: u32,
    /// How long an over-budget session's frames are dropped. Default 1000 ms.
    pub cooldown_ms: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig { per_s: 100, burst: 200, cooldown_ms: 1000 }
    }
}

/// One session's state (see the module docs). Starts with no debt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Debt in thousandths of a failure, as of `at_ms`.
    debt_milli: u64,
    at_ms: u64,
    /// Frames are dropped before this time.
    until_ms: u64,
}

impl Budget {
    /// The session's frames are dropped at `now_ms`.
    #[inline(always)]
    pub fn throttled(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms
    }

    /// Counts `failures`; returns true if that throttled the session (it
    /// was not throttled before).
    pub fn charge(&mut self, failures: u32, now_ms: u64, cfg: &BudgetConfig) -> bool {
        let drained = now_ms.saturating_sub(self.at_ms).saturating_mul(u64::from(cfg.per_s));
        self.debt_milli = self.debt_milli.saturating_sub(drained);
        self.at_ms = self.at_ms.max(now_ms);
        self.debt_milli = self.debt_milli.saturating_add(u64::from(failures) * 1000);
        if self.debt_milli <= u64::from(cfg.burst) * 1000 {
            return false;
        }
        // Over budget: the cool-down starts now and the debt is forgiven,
        // so the session comes back with a full burst after it.
        self.debt_milli = 0;
        let was = self.throttled(now_ms);
        self.throttle_until(now_ms.saturating_add(u64::from(cfg.cooldown_ms)));
        !was
    }

    /// Drops the session's frames until `until_ms` (or longer, if already so).
    pub fn throttle_until(&mut self, until_ms: u64) {
        self.until_ms = self.until_ms.max(until_ms);
    }

    /// The time the current cool-down ends (0: never throttled).
    pub fn until_ms(&self) -> u64 {
        self.until_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_then_a_cooldown() {
        let cfg = BudgetConfig { per_s: 100, burst: 10, cooldown_ms: 500 };
        let mut b = Budget::default();
        // The burst is free.
        for _ in 0..10 {
            assert!(!b.charge(1, 1000, &cfg));
        }
        assert!(!b.throttled(1000));
        // 100 ms later 10 more have drained.
        assert!(!b.charge(10, 1100, &cfg));
        // One more at the same instant is over.
        assert!(b.charge(1, 1100, &cfg));
        assert!(b.throttled(1100) && b.throttled(1599));
        assert!(!b.throttled(1600));
        // Charged again while throttled: not newly throttled.
        assert!(!b.charge(11, 1200, &cfg));
        assert!(b.charge(11, 1700, &cfg));
    }

    #[test]
    fn a_clock_that_steps_back_neither_panics_nor_forgives() {
        let cfg = BudgetConfig { per_s: 1000, burst: 1000, cooldown_ms: 1000 };
        let mut b = Budget::default();
        assert!(!b.charge(1000, 5000, &cfg));
        assert!(b.charge(1, 10, &cfg));
        b.throttle_until(3);
        assert_eq!(b.until_ms(), 1010);
    }
}
