//! Per-core pipelines: rx burst → frame path → dedup → shard. Each data
//! core owns one backend queue, its own session table (keys expanded per
//! core, replay windows shared), its own id filter and burst buffers, and
//! one single-producer single-consumer ring to every shard. Nothing on the
//! per-packet path locks, allocates or makes a syscall: transactions are
//! copied into recycled [`ShardBatch`]es that travel to the shard's
//! consumer and come back empty on a return ring. A full ring never stalls
//! the core: the batch is held back, the next bursts' transactions for that
//! shard join it and the push is retried after every burst; only a held
//! batch that reaches [`HOLD_MAX_TXS`] transactions while its ring stays
//! full is dropped, counted as `ring_full`.
//!
//! Idle policy: with `busy_poll` the core spins (benchmarks, isolated
//! cores); otherwise after a short spin it yields, then blocks in the
//! backend's `wait` (poll or io_uring wait) for up to `idle_wait`, like
//! DPDK's l3fwd-power, so several pipelines share a small machine.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::backend::{NotAtt, Peer, RxQueue};
use crate::dedup::IdFilter;
use crate::path::{Burst, FramePath};
use crate::verdict::{Counters, TxDrop};
pub use attnet_core::batch::{BatchPolicy, Pending};
pub use attnet_core::command::{command_bus, Command, CommandBus, CommandRx};
pub use attnet_core::exception::{exception_link, Exception, ExceptionEnd, ExceptionKind, ExceptionLink};
pub use attnet_core::reply::{reply_link, Reply, ReplyConsumer, ReplyProducer};
pub use attnet_core::shard::{shard_link, Route, ShardBatch, ShardEnd, ShardLink, ShardTx, HOLD_MAX_TXS, NO_ROUTE};

/// How long a stopping core keeps retrying batches held back by full rings.
const HOLD_AT_EXIT: Duration = Duration::from_millis(500);

/// Which shard a sender's transactions go to. Keyed (the seed is per node)
/// so that nobody can grind keys onto one shard; every core uses the same
/// key, so all of an account's transactions meet on one shard.
#[derive(Clone, Debug)]
pub struct Sharder {
    hasher: std::collections::hash_map::RandomState,
    shards: usize,
}

impl Sharder {
    pub fn new(shards: usize) -> Self {
        Sharder { hasher: std::collections::hash_map::RandomState::new(), shards: shards.max(1) }
    }

    #[inline]
    pub fn shard(&self, from: &[u8]) -> usize {
        (self.hasher.hash_one(from) % self.shards as u64) as usize
    }

    pub fn shards(&self) -> usize {
        self.shards
    }
}

/// What one data core has done, summed by the reader.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreCounters {
    pub frames: Counters,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub bursts: u64,
    pub kernel_dropped: u64,
    pub not_att: [u64; NotAtt::COUNT],
    /// Packets the backend read (pcap counts non-ATT packets too).
    pub packets: u64,
    pub idle_waits: u64,
    /// Receive calls that failed (the socket's error, not a packet's).
    pub rx_errors: u64,
    /// The NIC's counters (DPDK), summed over the queues that report them.
    pub nic: Option<crate::backend::NicStats>,
    /// ARP replies the backend sent.
    pub arp_replies: u64,
    /// The control thread's replies the backend transmitted or dropped
    /// (DPDK).
    pub tx_replies: crate::backend::TxReplies,
    /// Handshake items (a HELLO, a COOKIE_ECHO with the HELLO after it, a
    /// lone or malformed COOKIE_ECHO) handed to the control plane, and
    /// those refused by its full ring (`handshake.overload`).
    pub hellos: u64,
    pub hello_overload: u64,
    /// QUERY frames handed to the control plane, and those refused by its
    /// full ring (`queries.overload`).
    pub queries: u64,
    pub query_overload: u64,
    /// Receive → verified and in its shard's batch, per transaction, in
    /// the metrics' buckets (the summary's percentiles come from the core's histogram).
    pub ingest: attnet_core::latency::LatencyBuckets,
    /// Signature batches verified, and the transactions they held
    /// (their ratio is the average batch).
    pub verify_batches: u64,
    pub verify_batch_txs: u64,
    /// Public keys of queued signatures found decompressed in the core's
    /// key cache, and keys decompressed (cache misses).
    pub verify_key_hits: u64,
    pub verify_key_misses: u64,
    /// Transactions waiting for their batch when the counters were
    /// published: counted in `txs_seen`, not yet accepted or dropped.
    pub pending_txs: u64,
}

impl CoreCounters {
    pub fn add(&mut self, o: &CoreCounters) {
        self.frames.add(&o.frames);
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.bursts += o.bursts;
        self.kernel_dropped += o.kernel_dropped;
        for (a, b) in self.not_att.iter_mut().zip(o.not_att) {
            *a += b;
        }
        self.packets += o.packets;
        self.idle_waits += o.idle_waits;
        self.rx_errors += o.rx_errors;
        self.arp_replies += o.arp_replies;
        self.tx_replies.add(&o.tx_replies);
        self.hellos += o.hellos;
        self.hello_overload += o.hello_overload;
        self.queries += o.queries;
        self.query_overload += o.query_overload;
        self.ingest.add(&o.ingest);
        self.verify_batches += o.verify_batches;
        self.verify_batch_txs += o.verify_batch_txs;
        self.verify_key_hits += o.verify_key_hits;
        self.verify_key_misses += o.verify_key_misses;
        self.pending_txs += o.pending_txs;
        if let Some(n) = &o.nic {
            self.nic.get_or_insert_with(Default::default).add(n);
        }
    }
}

/// Where a data core stops with each burst: `Rx` only receives and hands
/// the buffers back (the baseline against `dpdk-testpmd --forward-mode=
/// rxonly`); `Full` runs the whole pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopAfter {
    Rx,
    #[default]
    Full,
}

/// How a data core behaves.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub stop_after: StopAfter,
    /// CPU to pin to, if any.
    pub cpu: Option<usize>,
    pub busy_poll: bool,
    /// Longest block in the backend's wait when idle.
    pub idle_wait: Duration,
    /// log2 of the id filter's slots.
    pub filter_log2: u32,
    /// How often the published counters are refreshed.
    pub publish_every: Duration,
    /// Signature batches across bursts ([`BatchPolicy`]).
    pub batch: BatchPolicy,
    /// An offline source (pcap replay): a full shard ring makes the core
    /// wait for the control thread (it receives nothing while a batch is
    /// held back) instead of dropping as `ring_full`; only a stop request
    /// ends the wait.
    pub lossless: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            stop_after: StopAfter::Full,
            cpu: None,
            busy_poll: false,
            idle_wait: Duration::from_millis(5),
            filter_log2: 16,
            publish_every: Duration::from_millis(100),
            lossless: false,
            batch: BatchPolicy::default(),
        }
    }
}

/// Everything a data core is built from. `Q` is the queue type: the
/// node's [`Queue`](crate::backend::Queue) enum, or any [`RxQueue`] (tests
/// script their own).
pub struct CoreSetup<Q: RxQueue> {
    /// The frame path, with whatever sessions the core starts with (a node
    /// starts with none and installs them through `commands`).
    pub fp: FramePath,
    pub queue: Q,
    /// One link to every shard, with its pre-allocated batches
    /// ([`shard_link`]).
    #[allow(clippy::vec_box)]
    pub links: Vec<(ShardLink, Vec<Box<ShardBatch>>)>,
    /// This core's end of the control thread's command ring.
    pub commands: CommandRx,
    pub sharder: Sharder,
    pub cfg: CoreConfig,
    /// The node's epoch: receive times are nanoseconds since it.
    pub epoch: Instant,
    pub stop: Arc<AtomicBool>,
    /// Where the core publishes its counters every `cfg.publish_every`.
    pub published: Arc<Mutex<CoreCounters>>,
    /// Where accepted HELLOs and QUERYs go; without it they are counted
    /// as overload.
    pub exceptions: Option<ExceptionLink>,
}

/// One data core's pipeline.
pub struct DataCore<Q: RxQueue> {
    pub fp: FramePath,
    queue: Q,
    links: Vec<ShardLink>,
    // Boxed because the batches travel through the rings: a ring slot moves
    // a pointer, not a 48-byte struct with two vectors.
    #[allow(clippy::vec_box)]
    pools: Vec<Vec<Box<ShardBatch>>>,
    /// Per shard, the batch being filled (or held back by a full ring).
    held: Vec<Option<Box<ShardBatch>>>,
    commands: CommandRx,
    sharder: Sharder,
    cfg: CoreConfig,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    published: Arc<Mutex<CoreCounters>>,
    exceptions: Option<ExceptionLink>,
}

/// What a data core returns when it stops.
pub struct CoreReport {
    pub counters: CoreCounters,
    /// Receive → handed to the shard ring, in microseconds.
    pub ingest_us: Histogram<u64>,
}

impl<Q: RxQueue> DataCore<Q> {
    pub fn new(setup: CoreSetup<Q>) -> Self {
        let CoreSetup { fp, queue, links, commands, sharder, cfg, epoch, stop, published, exceptions } = setup;
        let (links, pools): (Vec<_>, Vec<_>) = links.into_iter().unzip();
        let held = (0..links.len()).map(|_| None).collect();
        DataCore { fp, queue, links, pools, held, commands, sharder, cfg, epoch, stop, published, exceptions }
    }

    /// Runs until the stop flag is set or a finite source is exhausted,
    /// then flushes and returns the core's report.
    pub fn run(mut self) -> CoreReport {
        if let Some(cpu) = self.cfg.cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        }
        let mut ingest_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
        let mut counters = CoreCounters::default();
        let mut burst = Burst::with_capacity(crate::backend::MAX_BURST * 4, 1024, crate::backend::MAX_BURST);
        let mut filter = IdFilter::new(self.cfg.filter_log2);
        let mut pending = Pending::with_capacity(self.cfg.batch.max_sigs + crate::backend::MAX_BURST);
        let mut idle = 0u32;
        let mut last_publish = Instant::now();
        loop {
            // Commands wait at most one burst (or one idle wait).
            let mut budget = None;
            self.commands.apply(&mut self.fp.sessions, &mut filter, &mut budget);
            if let Some(b) = budget {
                self.fp.set_budget(b);
            }
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let rx_at = Instant::now();
            let rx_ns = rx_at.duration_since(self.epoch).as_nanos() as u64;
            self.fp.set_now_ms(rx_ns / 1_000_000);
            let fp = &mut self.fp;
            let exceptions = &mut self.exceptions;
            let rx_only = self.cfg.stop_after == StopAfter::Rx;
            // Lossless: nothing more is received while a batch waits for room.
            let waiting = self.cfg.lossless && self.held.iter().any(Option::is_some);
            let got = if waiting {
                Ok(0)
            } else {
                self.queue.rx_burst_peers(&mut |bufs: &mut [&mut [u8]], peers: &[Peer]| {
                    counters.rx_packets += bufs.len() as u64;
                    counters.rx_bytes += bufs.iter().map(|b| b.len() as u64).sum::<u64>();
                    counters.bursts += 1;
                    if rx_only {
                        return;
                    }
                    fp.judge_burst(bufs, &mut burst, &filter);
                    if !burst.control.is_empty() {
                        hand_over(&burst, bufs, peers, rx_ns, exceptions.as_mut(), &mut counters);
                    }
                    // An accepted transaction's frame record is always there
                    // (a broken invariant gets the default route, no panic).
                    pending.take_burst(&burst, bufs, rx_ns, |f| Route {
                        session: f.session,
                        channel: f.channel,
                        peer: peers.get(f.datagram as usize).copied().unwrap_or(Peer::NONE),
                        generation: f.generation,
                    });
                })
            };
            let n = match got {
                Ok(n) => n,
                Err(_) => {
                    // Counted, then treated as an idle poll so a failing
                    // socket backs off instead of spinning.
                    counters.rx_errors += 1;
                    0
                }
            };
            // Verify what waits when the batch is full or its budget is
            // spent, then hand the shards' batches over.
            let now_ns = self.epoch.elapsed().as_nanos() as u64;
            if self.cfg.batch.due(pending.len(), pending.oldest_ns(), now_ns) {
                self.settle(&mut pending, &mut filter, &mut burst, &mut counters, &mut ingest_us, now_ns);
            }
            for (s, slot) in self.held.iter_mut().enumerate() {
                if let Some(mut b) = slot.take() {
                    let len = b.len() as u64;
                    let Some(link) = self.links.get_mut(s) else { continue };
                    match link.to_shard.push(b) {
                        Ok(()) => {}
                        // A full ring holds the batch back: the next bursts'
                        // transactions for this shard join it and the push is
                        // retried after every burst (and when idle), so a
                        // control thread that was descheduled for a moment
                        // loses nothing. Only a batch that grew to
                        // HOLD_MAX_TXS while the ring stayed full is dropped.
                        Err(rtrb::PushError::Full(back)) if self.cfg.lossless || back.len() < HOLD_MAX_TXS => {
                            *slot = Some(back)
                        }
                        Err(rtrb::PushError::Full(back)) => {
                            burst.counters.reclassify(TxDrop::RingFull, len);
                            for t in &back.txs {
                                filter.forget_prefix(IdFilter::prefix(&t.id));
                            }
                            b = back;
                            b.clear();
                            if let Some(p) = self.pools.get_mut(s) {
                                p.push(b);
                            }
                        }
                    }
                }
            }
            if waiting {
                // Not idle: waiting for the control thread to make room.
                std::thread::sleep(Duration::from_micros(50));
            } else if n == 0 {
                idle = idle.saturating_add(1);
                // Only when idle (stats may make a syscall): every 64th
                // empty poll while busy-polling, every one once backing off.
                let check = if self.cfg.busy_poll { idle.is_multiple_of(64) } else { idle >= 16 };
                if check && self.queue.stats().finished {
                    break;
                }
                if self.cfg.busy_poll || idle < 16 {
                    std::hint::spin_loop();
                } else if idle < 32 {
                    std::thread::yield_now();
                } else {
                    // A waiting transaction bounds the wait by its budget.
                    let idle_ns = self.cfg.idle_wait.as_nanos() as u64;
                    let wait = self.cfg.batch.idle_wait_ns(pending.oldest_ns(), now_ns, idle_ns);
                    if wait > 0 {
                        counters.idle_waits += 1;
                        let _ = self.queue.wait(Duration::from_nanos(wait));
                    }
                }
            } else {
                idle = 0;
            }
            if last_publish.elapsed() >= self.cfg.publish_every {
                last_publish = Instant::now();
                self.fill(&mut counters, &burst, &pending);
                if let Ok(mut p) = self.published.lock() {
                    *p = counters;
                }
            }
        }
        // The last batch is verified; batches still held back get a last
        // chance while the control thread drains (it runs until every core
        // has stopped), then count as ring_full.
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        self.settle(&mut pending, &mut filter, &mut burst, &mut counters, &mut ingest_us, now_ns);
        let until = Instant::now() + HOLD_AT_EXIT;
        for (s, slot) in self.held.iter_mut().enumerate() {
            while let Some(b) = slot.take() {
                let Some(link) = self.links.get_mut(s) else { break };
                match link.to_shard.push(b) {
                    Ok(()) => {}
                    Err(rtrb::PushError::Full(back))
                        if Instant::now() < until || (self.cfg.lossless && !self.stop.load(Ordering::Relaxed)) =>
                    {
                        *slot = Some(back);
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(rtrb::PushError::Full(back)) => burst.counters.reclassify(TxDrop::RingFull, back.len() as u64),
                }
            }
        }
        self.fill(&mut counters, &burst, &pending);
        if let Ok(mut p) = self.published.lock() {
            *p = counters;
        }
        CoreReport { counters, ingest_us }
    }

    /// Verifies the batch waiting in `pending` and puts its accepted
    /// transactions in their shards' batches (pushed by the caller): each
    /// id is recorded in `filter` now, after verification (a copy another
    /// bursts' batch already recorded is a `duplicate`); a shard without a
    /// free batch drops it as `ring_full` and forgets the id, so a resend
    /// is not a duplicate. Ingest latency (receive → in its shard's batch)
    /// is recorded per transaction.
    fn settle(
        &mut self,
        pending: &mut Pending,
        filter: &mut IdFilter,
        burst: &mut Burst,
        counters: &mut CoreCounters,
        ingest_us: &mut Histogram<u64>,
        now_ns: u64,
    ) {
        if pending.is_empty() {
            return;
        }
        counters.verify_batches += 1;
        counters.verify_batch_txs += pending.len() as u64;
        self.fp.settle(pending, &mut burst.counters);
        let (mut dup, mut full) = (0u64, 0u64);
        for t in pending.txs() {
            if !filter.insert(&t.id) {
                dup += 1;
                continue;
            }
            let bytes = pending.tx_bytes(t);
            let s = self.sharder.shard(crate::wire::tx::from_part(bytes));
            let (Some(slot), Some(pool), Some(link)) =
                (self.held.get_mut(s), self.pools.get_mut(s), self.links.get_mut(s))
            else {
                full += 1;
                continue;
            };
            if slot.is_none() {
                while let Ok(b) = link.returned.pop() {
                    pool.push(b);
                }
                *slot = pool.pop();
            }
            match slot {
                Some(b) => {
                    b.push_routed(bytes, t.id, t.rx_ns, t.route);
                    let lat_us = (now_ns.saturating_sub(t.rx_ns) / 1_000).max(1);
                    ingest_us.saturating_record(lat_us);
                    counters.ingest.record_n(lat_us, 1);
                }
                // Never reached the ledger: a resend is not a duplicate.
                None => {
                    full += 1;
                    filter.forget_prefix(IdFilter::prefix(&t.id));
                }
            }
        }
        burst.counters.reclassify(TxDrop::Duplicate, dup);
        burst.counters.reclassify(TxDrop::RingFull, full);
        pending.clear();
    }

    fn fill(&self, c: &mut CoreCounters, burst: &Burst, pending: &Pending) {
        let q = self.queue.stats();
        c.frames = burst.counters;
        c.pending_txs = pending.len() as u64;
        (c.verify_key_hits, c.verify_key_misses) = self.fp.key_cache();
        c.kernel_dropped = q.kernel_dropped;
        c.not_att = q.not_att;
        c.packets = q.packets;
        c.nic = q.nic;
        c.arp_replies = q.replies;
        c.tx_replies = q.tx_replies;
    }
}

/// Copies a burst's accepted HELLO, COOKIE_ECHO and QUERY frames onto the
/// exception rings: a COOKIE_ECHO and the HELLO right after it in the same
/// datagram make one item; a COOKIE_ECHO without one, or whose body is not
/// a COOKIE_ECHO body, is a malformed item. A full ring (or none) counts
/// the item as overload.
fn hand_over(
    burst: &Burst,
    bufs: &[&mut [u8]],
    peers: &[Peer],
    rx_ns: u64,
    mut link: Option<&mut ExceptionLink>,
    c: &mut CoreCounters,
) {
    use attnet_core::wire::share::kind;
    let mut items = burst.control.iter().peekable();
    while let Some(cf) = items.next() {
        let Some(f) = burst.frames.get(cf.frame as usize) else { continue };
        let peer = peers.get(f.datagram as usize).copied().unwrap_or(Peer::NONE);
        let body = burst.control_body(bufs, cf);
        let mut e = match cf.content_kind {
            kind::QUERY => {
                let mut e = Exception::new(ExceptionKind::Query, f.session, f.channel, peer, body);
                e.generation = f.generation;
                e
            }
            kind::COOKIE_ECHO => {
                // The HELLO it precedes: the next frame of the same datagram.
                let next = items.peek().filter(|n| {
                    n.content_kind == kind::HELLO
                        && n.frame == cf.frame + 1
                        && burst.frames.get(n.frame as usize).is_some_and(|nf| nf.datagram == f.datagram)
                });
                let cookie = match body {
                    [1, rest @ ..] => <[u8; 16]>::try_from(rest).ok(),
                    _ => None,
                };
                match (next.copied(), cookie) {
                    (Some(h), Some(cookie)) => {
                        items.next();
                        let mut e = Exception::new(
                            ExceptionKind::Hello,
                            f.session,
                            f.channel,
                            peer,
                            burst.control_body(bufs, h),
                        );
                        e.cookie = Some(cookie);
                        e
                    }
                    (h, _) => {
                        if h.is_some() {
                            items.next();
                        }
                        Exception::new(ExceptionKind::Malformed, f.session, f.channel, peer, &[])
                    }
                }
            }
            _ => Exception::new(ExceptionKind::Hello, f.session, f.channel, peer, body),
        };
        e.rx_ns = rx_ns;
        let query = e.kind == ExceptionKind::Query;
        let ring = link.as_deref_mut().map(|l| if query { &mut l.queries } else { &mut l.hellos });
        let ok = ring.is_some_and(|r| r.push(e).is_ok());
        match (query, ok) {
            (true, true) => c.queries += 1,
            (true, false) => {
                c.queries += 1;
                c.query_overload += 1;
            }
            (false, true) => c.hellos += 1,
            (false, false) => {
                c.hellos += 1;
                c.hello_overload += 1;
            }
        }
    }
}
