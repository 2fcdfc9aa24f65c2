//! Latency counted into fixed buckets for the Prometheus endpoint: a
//! bucket search per recorded batch (17 bounds), so a data core can keep
//! it beside its hdrhistogram and publish it with its counters. The
//! bounds fit the node's latencies, from a burst's ingest (tens of
//! microseconds) to a block's inclusion and durability (seconds).

/// Upper bounds of the buckets, microseconds; a last bucket (`+Inf`)
/// takes the rest.
pub const BOUNDS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

/// Counts per bucket (not cumulative), their number and their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyBuckets {
    /// `counts[i]` values `<= BOUNDS_US[i]` (and above the bound before);
    /// the last one above every bound.
    pub counts: [u64; BOUNDS_US.len() + 1],
    /// Values recorded.
    pub count: u64,
    /// Their sum, microseconds.
    pub sum_us: u64,
}

impl LatencyBuckets {
    /// Records `n` values of `us`.
    #[inline]
    pub fn record_n(&mut self, us: u64, n: u64) {
        let i = BOUNDS_US.partition_point(|&b| b < us);
        if let Some(c) = self.counts.get_mut(i) {
            *c += n;
        }
        self.count += n;
        self.sum_us = self.sum_us.saturating_add(us.saturating_mul(n));
    }

    /// Adds `o`'s counts to these.
    pub fn add(&mut self, o: &LatencyBuckets) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
        self.count += o.count;
        self.sum_us = self.sum_us.saturating_add(o.sum_us);
    }

    /// Cumulative counts per bound (`le`), the Prometheus form; `+Inf`
    /// is [`Self::count`].
    pub fn cumulative(&self) -> [u64; BOUNDS_US.len()] {
        let mut out = [0; BOUNDS_US.len()];
        let mut run = 0;
        for (o, c) in out.iter_mut().zip(self.counts) {
            run += c;
            *o = run;
        }
        out
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1), the
    /// largest bound for values beyond it; 0 when empty. An estimate to
    /// bucket resolution, for live views (the summary's percentiles come
    /// from the full histogram).
    pub fn quantile_bound(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut run = 0;
        for (i, c) in self.counts.iter().enumerate() {
            run += c;
            if run >= rank {
                return BOUNDS_US.get(i).copied().unwrap_or(BOUNDS_US[BOUNDS_US.len() - 1]);
            }
        }
        BOUNDS_US[BOUNDS_US.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them() {
        let mut b = LatencyBuckets::default();
        b.record_n(50, 2); // on the bound: le=50
        b.record_n(51, 1); // le=100
        b.record_n(20_000_000, 3); // +Inf
        assert_eq!(b.counts[0], 2);
        assert_eq!(b.counts[1], 1);
        assert_eq!(b.counts[BOUNDS_US.len()], 3);
        assert_eq!(b.count, 6);
        assert_eq!(b.sum_us, 100 + 51 + 60_000_000);
        let c = b.cumulative();
        assert_eq!((c[0], c[1], c[BOUNDS_US.len() - 1]), (2, 3, 3));
        assert_eq!(b.quantile_bound(0.5), 100);
        assert_eq!(b.quantile_bound(0.3), 50);
        assert_eq!(b.quantile_bound(1.0), 10_000_000);
        let mut t = LatencyBuckets::default();
        t.add(&b);
        t.add(&b);
        assert_eq!((t.count, t.counts[0]), (12, 4));
        assert_eq!(LatencyBuckets::default().quantile_bound(0.99), 0);
    }
}
