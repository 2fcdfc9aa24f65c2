//! The sending loop every output shares: build datagrams from a
//! [`Generator`], schedule each with the [`Pacer`], hand them to a
//! [`Sink`] in batches of everything that is due, stamp the valid
//! transactions for receipt matching, and keep the expected counts of
//! exactly what the sink took.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::receipts::Tracker;
use crate::sched::{wait_until, wire_bits, Pacer};
use crate::traffic::{Datagram, Expected, Generator};

/// Where datagrams go.
pub trait Sink {
    /// True if datagrams leave at their due time (sockets, NICs); false if
    /// the due time is only written down (pcap timestamps).
    fn realtime(&self) -> bool;

    /// Sends `batch` in order; `due_ns[i]` is datagram i's due time after
    /// the start. Returns how many were taken; fewer than asked ends the
    /// run (the receiver went away).
    fn send(&mut self, batch: &[Vec<u8>], info: &[Datagram], due_ns: &[u64]) -> io::Result<usize>;

    /// Flushes what is buffered (files) or waits for the device to send
    /// what it holds; called once at the end.
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Pre-sealed runs send the same datagrams round and round: a sink may
    /// prepare them once (whole Ethernet frames, checksums included) and
    /// return true; [`Sink::send_prepared`] then replaces [`Sink::send`].
    fn prepare(&mut self, _bufs: &[Vec<u8>], _info: &[Datagram]) -> io::Result<bool> {
        Ok(false)
    }

    /// Sends prepared datagrams `first..first + n` (indices into what
    /// [`Sink::prepare`] saw), as [`Sink::send`] would.
    fn send_prepared(&mut self, _first: usize, _n: usize) -> io::Result<usize> {
        Err(io::Error::other("this output prepares nothing"))
    }
}

/// When a part stops.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Datagrams, this part's share.
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub batch: usize,
    /// Wire bytes each datagram adds besides UDP/IPv4/Ethernet.
    pub extra_wire: u64,
}

/// Running figures, read once a second by the live line.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub datagrams: AtomicU64,
    pub bytes: AtomicU64,
    pub wire_bits: AtomicU64,
    pub txs: AtomicU64,
}

/// What one part sent.
#[derive(Debug, Clone, Default)]
pub struct PartReport {
    pub datagrams: u64,
    pub frames: u64,
    /// Valid transactions, each sent once.
    pub txs: u64,
    /// UDP payload bytes.
    pub bytes: u64,
    pub wire_bits: u64,
    /// Datagrams that left more than 1 ms after their due time.
    pub late: u64,
    pub late_max_us: u64,
    pub expected: Expected,
    pub elapsed: Duration,
    /// The receiver refused (ICMP port unreachable) and the part stopped.
    pub refused: bool,
    /// Every transaction of the part's share of the pool was sent.
    pub exhausted: bool,
}

impl PartReport {
    pub fn add(&mut self, o: &PartReport) {
        self.datagrams += o.datagrams;
        self.frames += o.frames;
        self.txs += o.txs;
        self.bytes += o.bytes;
        self.wire_bits += o.wire_bits;
        self.late += o.late;
        self.late_max_us = self.late_max_us.max(o.late_max_us);
        self.expected.add(&o.expected);
        self.elapsed = self.elapsed.max(o.elapsed);
        self.refused |= o.refused;
        self.exhausted |= o.exhausted;
    }

    /// Counts datagrams a sink took, here and on the live line.
    pub fn record_sent(&mut self, live: &LiveCounters, bufs: &[Vec<u8>], info: &[Datagram], extra_wire: u64) {
        let (mut bytes, mut bits, mut txs) = (0u64, 0u64, 0u64);
        for (b, d) in bufs.iter().zip(info) {
            bytes += b.len() as u64;
            bits += wire_bits(b.len(), extra_wire);
            txs += u64::from(d.txs);
            self.frames += u64::from(d.frames);
        }
        let k = bufs.len() as u64;
        self.datagrams += k;
        self.bytes += bytes;
        self.wire_bits += bits;
        self.txs += txs;
        live.datagrams.fetch_add(k, Ordering::Relaxed);
        live.bytes.fetch_add(bytes, Ordering::Relaxed);
        live.wire_bits.fetch_add(bits, Ordering::Relaxed);
        live.txs.fetch_add(txs, Ordering::Relaxed);
    }
}

/// A run's length in virtual time (pcap): to the end of the last
/// datagram's interval, not past the duration asked.
pub fn virtual_elapsed(pacer: &Pacer, lim: &Limits) -> Duration {
    Duration::from_nanos(pacer.span_ns().min(lim.duration.map_or(u64::MAX, |d| d.as_nanos() as u64)))
}

/// Runs one part until its limits, the pool or `stop` end it.
pub fn drive(
    g: &mut Generator<'_>,
    sink: &mut dyn Sink,
    mut pacer: Pacer,
    lim: &Limits,
    stop: &AtomicBool,
    live: &LiveCounters,
    tracker: Option<&Tracker>,
) -> io::Result<PartReport> {
    let batch = lim.batch.clamp(1, 1024);
    let mut bufs: Vec<Vec<u8>> = (0..batch + 1).map(|_| Vec::with_capacity(2048)).collect();
    let mut info =
        vec![Datagram { frames: 0, first_tx: 0, txs: 0, hostile: None, attack: None, session: 0 }; batch + 1];
    let mut due = vec![0u64; batch + 1];
    let mut snap = vec![Expected::default(); batch + 1];
    let mut rep = PartReport::default();
    let realtime = sink.realtime();
    let limit_ns = lim.duration.map(|d| d.as_nanos() as u64);
    let start = Instant::now();
    let mut carry = false;
    let mut done = false;
    while !done && !stop.load(Ordering::Relaxed) {
        if realtime && lim.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let mut n = usize::from(carry);
        carry = false;
        while n < batch {
            if lim.count.is_some_and(|c| rep.datagrams + n as u64 >= c) {
                done = true;
                break;
            }
            let Some(d) = g.next(&mut bufs[n]) else {
                rep.exhausted = true;
                done = true;
                break;
            };
            let t = pacer.next_due(bufs[n].len(), lim.extra_wire);
            if limit_ns.is_some_and(|l| t >= l && !pacer.unlimited()) {
                done = true;
                break;
            }
            info[n] = d;
            due[n] = t;
            snap[n] = g.expected;
            if realtime && n > 0 && start + Duration::from_nanos(t) > Instant::now() {
                // Not due yet: it opens the next batch.
                carry = true;
                break;
            }
            n += 1;
        }
        if n == 0 {
            break;
        }
        if realtime {
            wait_until(start + Duration::from_nanos(due[0]));
            let now = start.elapsed().as_nanos() as u64;
            for t in &due[..n] {
                let late_us = now.saturating_sub(*t) / 1000;
                if late_us > 1000 {
                    rep.late += 1;
                }
                rep.late_max_us = rep.late_max_us.max(late_us);
            }
        }
        if let Some(tr) = tracker {
            for d in &info[..n] {
                tr.stamp((d.first_tx..d.first_tx + d.txs as usize).map(|i| g.pool_index(i)));
            }
        }
        let k = sink.send(&bufs[..n], &info[..n], &due[..n])?.min(n);
        if k > 0 {
            rep.expected = snap[k - 1];
        }
        rep.record_sent(live, &bufs[..k], &info[..k], lim.extra_wire);
        if k < n {
            rep.refused = true;
            // What was built but not sent is not expected.
            rep.exhausted = false;
            break;
        }
        if carry {
            bufs.swap(0, n);
            info.swap(0, n);
            due.swap(0, n);
            snap.swap(0, n);
        }
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

    /// Takes at most `cap` datagrams in total, then refuses.
    struct Vec0 {
        got: Vec<Vec<u8>>,
        cap: usize,
    }

    impl Sink for Vec0 {
        fn realtime(&self) -> bool {
            false
        }
        fn send(&mut self, batch: &[Vec<u8>], _: &[Datagram], _: &[u64]) -> io::Result<usize> {
            let k = batch.len().min(self.cap - self.got.len());
            self.got.extend(batch[..k].iter().cloned());
            Ok(k)
        }
    }

    #[test]
    fn expected_counts_cover_exactly_what_the_sink_took() {
        let plan = Plan::from_seed(1, 1, 2, 4, 1000);
        let pool = plan.pool(50);
        let cfg = TrafficConfig { bad: 0.2, ..TrafficConfig::default() };
        let lim = Limits { count: None, duration: None, batch: 32, extra_wire: 0 };
        let live = LiveCounters::default();
        let stop = AtomicBool::new(false);
        // Everything, then the same run cut short by the sink.
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, 1 << 40);
        let mut all = Vec0 { got: Vec::new(), cap: usize::MAX };
        let full = drive(&mut g, &mut all, Pacer::new(Rate::Unlimited, 1), &lim, &stop, &live, None).unwrap();
        assert!(full.exhausted && !full.refused);
        assert_eq!(full.expected.counts.txs_accepted, 200);
        assert_eq!(full.datagrams, all.got.len() as u64);
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, 1 << 40);
        let mut cut = Vec0 { got: Vec::new(), cap: 45 };
        let part = drive(&mut g, &mut cut, Pacer::new(Rate::Unlimited, 1), &lim, &stop, &live, None).unwrap();
        assert!(part.refused && !part.exhausted);
        assert_eq!(part.datagrams, 45);
        assert_eq!(part.expected.datagrams, 45);
        assert_eq!(cut.got[..], all.got[..45]);
        // A count limit.
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, 1 << 40);
        let mut sink = Vec0 { got: Vec::new(), cap: usize::MAX };
        let lim10 = Limits { count: Some(10), ..lim };
        let r = drive(&mut g, &mut sink, Pacer::new(Rate::Unlimited, 1), &lim10, &stop, &live, None).unwrap();
        assert_eq!((r.datagrams, r.expected.datagrams, sink.got.len()), (10, 10, 10));
        // Virtual time (no real-time sink): 10 datagrams at 1000/s take
        // exactly 10 ms; a duration cuts at the duration.
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, 1 << 40);
        let mut sink = Vec0 { got: Vec::new(), cap: usize::MAX };
        let r = drive(&mut g, &mut sink, Pacer::new(Rate::Pps(1000.0), 1), &lim10, &stop, &live, None).unwrap();
        assert_eq!(r.elapsed, std::time::Duration::from_millis(10));
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, 1 << 40);
        let mut sink = Vec0 { got: Vec::new(), cap: usize::MAX };
        let lim_d = Limits { duration: Some(std::time::Duration::from_micros(7500)), ..lim };
        let r = drive(&mut g, &mut sink, Pacer::new(Rate::Pps(1000.0), 1), &lim_d, &stop, &live, None).unwrap();
        assert_eq!((r.datagrams, r.elapsed), (8, std::time::Duration::from_micros(7500)));
    }
}
