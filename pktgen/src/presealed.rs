//! Pre-sealed sending (`--presealed N`): each sending thread builds `N`
//! datagrams with its [`Generator`] before the clock starts, then hands
//! them to the sink over and over, in order, at the asked rate. This
//! measures an output alone, without the cost of sealing; a receiver sees
//! every round after the first as replays and duplicates, so a pre-sealed
//! run has no expected counts.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::drive::{virtual_elapsed, Limits, LiveCounters, PartReport, Sink};
use crate::sched::{wait_until, Pacer};
use crate::traffic::{Datagram, Generator};

/// Up to `n` datagrams from `g` (fewer when its share of the pool runs
/// out), with what each is.
pub fn build(g: &mut Generator<'_>, n: usize) -> (Vec<Vec<u8>>, Vec<Datagram>) {
    let mut bufs = Vec::with_capacity(n);
    let mut info = Vec::with_capacity(n);
    for _ in 0..n {
        let mut b = Vec::with_capacity(2048);
        match g.next(&mut b) {
            Some(d) => {
                bufs.push(b);
                info.push(d);
            }
            None => break,
        }
    }
    (bufs, info)
}

/// Sends `bufs` round and round until the limits or `stop` end it. The
/// report's `expected` stays empty.
pub fn drive_presealed(
    bufs: &[Vec<u8>],
    info: &[Datagram],
    sink: &mut dyn Sink,
    mut pacer: Pacer,
    lim: &Limits,
    stop: &AtomicBool,
    live: &LiveCounters,
) -> io::Result<PartReport> {
    let mut rep = PartReport::default();
    if bufs.is_empty() {
        rep.exhausted = true;
        return Ok(rep);
    }
    let batch = lim.batch.clamp(1, 1024);
    let mut due = vec![0u64; batch];
    let realtime = sink.realtime();
    let prepared = sink.prepare(bufs, info)?;
    let paced = !pacer.unlimited();
    let start = Instant::now();
    let mut pos = 0usize;
    // The due time of bufs[pos], when it was scheduled but not sent.
    let mut carry: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        if realtime && lim.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let left = lim.count.map_or(u64::MAX, |c| c.saturating_sub(rep.datagrams));
        let most = batch.min(bufs.len() - pos).min(usize::try_from(left).unwrap_or(usize::MAX));
        if most == 0 {
            break;
        }
        let mut n = 0;
        while n < most {
            let t = match carry.take() {
                Some(t) => t,
                None => pacer.next_due(bufs[pos + n].len(), lim.extra_wire),
            };
            if realtime && paced && n > 0 && start + Duration::from_nanos(t) > Instant::now() {
                carry = Some(t);
                break;
            }
            due[n] = t;
            n += 1;
        }
        if !realtime && lim.duration.is_some_and(|d| due[0] >= d.as_nanos() as u64) {
            break;
        }
        if realtime && paced {
            wait_until(start + Duration::from_nanos(due[0]));
        }
        let k = if prepared {
            sink.send_prepared(pos, n)?
        } else {
            sink.send(&bufs[pos..pos + n], &info[pos..pos + n], &due[..n])?
        }
        .min(n);
        rep.record_sent(live, &bufs[pos..pos + k], &info[pos..pos + k], lim.extra_wire);
        if k < n {
            rep.refused = true;
            break;
        }
        pos = (pos + n) % bufs.len();
    }
    rep.elapsed = if realtime { start.elapsed() } else { virtual_elapsed(&pacer, lim) };
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use crate::sched::Rate;
    use crate::traffic::TrafficConfig;

    struct Collect(Vec<Vec<u8>>);

    impl Sink for Collect {
        fn realtime(&self) -> bool {
            true
        }
        fn send(&mut self, batch: &[Vec<u8>], _: &[Datagram], _: &[u64]) -> io::Result<usize> {
            self.0.extend(batch.iter().cloned());
            Ok(batch.len())
        }
    }

    #[test]
    fn cycles_the_built_datagrams_in_order() {
        let plan = Plan::from_seed(3, 1, 2, 4, 1000);
        let pool = plan.pool(20);
        let mut g = Generator::new(&plan, &pool, &TrafficConfig::default(), 0, 1, 1 << 40);
        let (bufs, info) = build(&mut g, 7);
        assert_eq!((bufs.len(), info.len()), (7, 7));
        let lim = Limits { count: Some(25), duration: None, batch: 4, extra_wire: 0 };
        let mut sink = Collect(Vec::new());
        let stop = AtomicBool::new(false);
        let live = LiveCounters::default();
        let r = drive_presealed(&bufs, &info, &mut sink, Pacer::new(Rate::Unlimited, 1), &lim, &stop, &live).unwrap();
        assert_eq!(r.datagrams, 25);
        assert_eq!(sink.0.len(), 25);
        for (i, d) in sink.0.iter().enumerate() {
            assert_eq!(d, &bufs[i % 7], "datagram {i}");
        }
        assert_eq!(r.bytes, sink.0.iter().map(|d| d.len() as u64).sum::<u64>());
        assert_eq!(r.expected, Default::default());
        assert_eq!(live.datagrams.load(Ordering::Relaxed), 25);
    }
}
