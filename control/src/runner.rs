//! The control-plane thread: drains every (data core, shard) ring, drops
//! transactions already accepted (the authoritative deduplication: all
//! copies of a transaction share its `from`, hence its shard, and meet
//! here whichever core saw them), applies the rest to the ledger, seals
//! blocks and hands them to the consensus stage. Emptied batches go back
//! to their data core. With a [`ReceiptSender`] it remembers where each
//! pending transaction came from and, when a block is sealed, sends its
//! clients RECEIPT indications ([`crate::receipts`]).
//!
//! Idle policy: when every ring is empty it sleeps briefly (1 ms) instead
//! of spinning, so it shares a small machine with the data cores.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attnet_core::budget::{Budget, BudgetConfig};
use attnet_core::command::{Command, CommandBus, FORGET_MAX};
use attnet_core::shard::ShardEnd;
use hdrhistogram::Histogram;

use crate::chain::Chain;
use crate::handshake::{HandshakeCounters, HandshakeServer};
use crate::ledger::Refusal;
use crate::queries::{answer, CommittedIds, QueryCounters, TxState, QUERY_CHUNK};
use crate::receipts::{Pending, ReceiptCounters, ReceiptSender, ReplyCounters, RouteTable};
use crate::store::{Store, StoreReport};
use attnet_core::exception::ExceptionEnd;
use attnet_core::wire::query::Query;
use attnet_core::wire::share;

/// How the control thread behaves.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub cpu: Option<usize>,
    /// How many recently accepted ids the authoritative dedup remembers
    /// (32 bytes plus hash-set overhead, about 80 bytes, each).
    pub recent_ids: usize,
    /// Write each accepted (post-dedup) id here, one hex id a line.
    pub accepted_ids: Option<PathBuf>,
    pub idle_sleep: Duration,
    /// Pending transactions whose receive time and route are remembered
    /// until their block is sealed: the last `max_pending` (at least half
    /// as many) the ledger took, about 130 bytes each (RECEIPTs and
    /// inclusion times of older ones are lost: `receipts.no_address`).
    pub max_pending: usize,
    /// log2 of the negative cache's slots (40 bytes each).
    pub negative_log2: u32,
    /// Sessions' budgets for ledger refusals (`None`: never throttled).
    pub budget: Option<BudgetConfig>,
    /// Sealed transaction ids remembered with their heights, for
    /// transaction-state queries (about 80 bytes each).
    pub committed_ids: usize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            cpu: None,
            recent_ids: 1 << 20,
            accepted_ids: None,
            idle_sleep: Duration::from_millis(1),
            max_pending: 1 << 18,
            negative_log2: 14,
            budget: Some(BudgetConfig::default()),
            committed_ids: 1 << 18,
        }
    }
}

/// Figures the live line and the summary read while the node runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    /// Transactions taken off the shard rings.
    pub txs_in: u64,
    /// Of those, dropped here as duplicates of an id another core accepted.
    pub late_duplicates: u64,
    pub blocks: u64,
    pub height: u64,
    pub inclusion_p99_us: u64,
    /// Of `txs_in`, refused without asking the ledger: the id was refused
    /// less than [`NEGATIVE_TTL_MS`] ago.
    pub recently_refused: u64,
    /// Sessions sent to a cool-down for ledger refusals, and cool-downs
    /// lost to a full command ring.
    pub throttles: u64,
    pub throttles_lost: u64,
    /// Ids the cores were told to forget, and those lost to a full ring.
    pub forgets_sent: u64,
    pub forgets_lost: u64,
    /// The longest control-loop iteration that did work, microseconds.
    pub loop_max_us: u64,
    /// Handshake items judged, WELCOMEs, COOKIEs, refusals, and the
    /// negotiated sessions live now.
    pub hs_received: u64,
    pub hs_welcomed: u64,
    pub hs_cookies: u64,
    pub hs_refused: u64,
    pub hs_live: u64,
    /// A validator of a network of several: the height being voted on
    /// (`height` is the final, durable one) and the validators linked now.
    pub round_height: u64,
    pub peers: u32,
}

/// What the control thread publishes every 100 ms (and at its end) for
/// the live line, the metrics endpoint and the admin socket's `stats`:
/// its counters as they stand, copied under the mutex in one go.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub live: Live,
    /// The chain's tip (sealed, possibly not yet durable); `live.height`
    /// is the committed (final and durable) height.
    pub sealed_height: u64,
    pub chain: crate::chain::ChainCounters,
    pub receipts: ReceiptCounters,
    pub replies: ReplyCounters,
    pub handshake: HandshakeCounters,
    pub queries: QueryCounters,
    /// Receive → sealed in a block, in the metrics' buckets.
    pub inclusion: attnet_core::latency::LatencyBuckets,
    /// Sealed → committed (final, and durable with a data directory), per
    /// block; one validator makes a block final when it seals it, so this
    /// is the wait for the disk.
    pub finality: attnet_core::latency::LatencyBuckets,
    /// Inclusion p50, p90, p99, p999 and max from the full histogram,
    /// microseconds.
    pub inclusion_pct: [u64; 5],
    /// Each shard ring's fill (batches waiting over its capacity), in the
    /// order of the setup's `ends`: data core `i`'s rings are
    /// `i * shards .. (i + 1) * shards`.
    pub ring_fill: Vec<f32>,
}

/// The calling thread's CPU time, microseconds (a clock read per control
/// loop iteration, not per transaction).
fn thread_cpu_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec.max(0) as u64) * 1_000_000 + (t.tv_nsec.max(0) as u64) / 1_000
}

/// Where the slowest control-loop iteration spent its time, microseconds
/// per phase (the summary's `control.slowest`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slowest {
    pub total_us: u64,
    /// The control thread's CPU time in it (`CLOCK_THREAD_CPUTIME_ID`):
    /// the rest of `total_us` it was off the CPU (preempted or waiting for
    /// one).
    pub cpu_us: u64,
    /// HELLOs and the handshake's timers.
    pub handshakes_us: u64,
    /// QUERY answers.
    pub queries_us: u64,
    /// Draining the shard rings: dedup, the ledger's admission and
    /// execution of each transaction.
    pub ingest_us: u64,
    /// Sealing: the block's end, its state root and transaction root.
    pub seal_us: u64,
    /// Forgets, dropped waiting ids, handing final blocks to the store.
    pub commit_us: u64,
    /// RECEIPTs of durable blocks.
    pub receipts_us: u64,
    /// Transactions taken from the rings in that iteration.
    pub txs: u64,
    /// Blocks sealed in that iteration.
    pub blocks: u64,
}

impl Slowest {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "total_us": self.total_us,
            "cpu_us": self.cpu_us,
            "handshakes_us": self.handshakes_us,
            "queries_us": self.queries_us,
            "ingest_us": self.ingest_us,
            "seal_us": self.seal_us,
            "commit_us": self.commit_us,
            "receipts_us": self.receipts_us,
            "other_us": self.total_us.saturating_sub(
                self.handshakes_us + self.queries_us + self.ingest_us + self.seal_us + self.commit_us + self.receipts_us
            ),
            "txs": self.txs,
            "blocks": self.blocks,
        })
    }
}

/// What the control thread hands back when it ends.
pub struct ControlReport {
    pub live: Live,
    pub chain: crate::chain::ChainCounters,
    /// Receive → sealed in a block, microseconds.
    pub inclusion_us: Histogram<u64>,
    /// Control-loop iterations that did work, microseconds each.
    pub loop_us: Histogram<u64>,
    /// The same iterations' CPU time (the thread's own clock), so that an
    /// iteration made long by the thread waiting for a CPU tells apart
    /// from one made long by its work.
    pub loop_cpu_us: Histogram<u64>,
    /// The slowest of those iterations, phase by phase.
    pub slowest: Slowest,
    /// The calls that sealed blocks (their ends, state roots, transaction
    /// roots), microseconds each.
    pub seal_us: Histogram<u64>,
    /// RECEIPT indications (all zero without a sender).
    pub receipts: ReceiptCounters,
    /// Replies through a data core's reply ring (DPDK).
    pub replies: ReplyCounters,
    /// Pending entries evicted unclaimed with their generation.
    pub pending_swept: u64,
    /// Handshakes (all zero without a node key).
    pub handshake: HandshakeCounters,
    pub queries: QueryCounters,
    /// The store thread's figures (a node with a data directory).
    pub storage: Option<StoreReport>,
    /// A validator of a network of several: the replica's and the links'
    /// counters (`null` otherwise).
    pub network: serde_json::Value,
}

/// Ids of transactions the ledger took (applied or waiting), in two
/// generations of fixed capacity: inserts go to the young one; when
/// `cap / 2` ids were inserted into it the old one is emptied and the two
/// swap (counting inserts, not ids held: removals leave tombstones, and a
/// table whose free slots run out rehashes in place, milliseconds). Both are
/// sized at start, so no insert ever rehashes a whole table (a rehash of a
/// million ids stalled the loop for most of a second); clearing a
/// generation touches only its control bytes. Between `cap / 2` and `cap`
/// ids are remembered.
struct RecentIds {
    young: HashSet<[u8; 32]>,
    old: HashSet<[u8; 32]>,
    half: usize,
    /// Inserts into `young` since it was last emptied.
    inserted: usize,
}

impl RecentIds {
    fn new(cap: usize) -> Self {
        let half = (cap / 2).max(1);
        RecentIds { young: HashSet::with_capacity(half), old: HashSet::with_capacity(half), half, inserted: 0 }
    }

    fn contains(&self, id: &[u8; 32]) -> bool {
        self.young.contains(id) || self.old.contains(id)
    }

    /// Records `id` (the caller checked it is not known).
    fn insert(&mut self, id: [u8; 32]) {
        if self.inserted >= self.half {
            self.old.clear();
            std::mem::swap(&mut self.young, &mut self.old);
            self.inserted = 0;
        }
        self.inserted += 1;
        self.young.insert(id);
    }

    /// Forgets `id`: its transaction was dropped and may be sent again.
    fn remove(&mut self, id: &[u8; 32]) {
        if !self.young.remove(id) {
            self.old.remove(id);
        }
    }
}

/// Ids the ledger refused recently, for [`NEGATIVE_TTL_MS`]: a direct-mapped
/// table (the id's first bytes pick the slot), fixed at start. A resend of
/// a refused transaction is refused here as `recently_refused` and charged
/// to its session's budget like any refusal.
struct NegativeCache {
    /// (id, when refused, the refusal's code).
    slots: Vec<([u8; 32], u64, u8)>,
    mask: usize,
}

/// Sealed transactions whose receipts one loop iteration handles.
const RECEIPT_CHUNK: usize = 2048;

/// Shard batches (of up to 256 transactions) one loop iteration takes.
const BATCH_CHUNK: usize = 8;
/// Receipts of copies of final transactions kept between two iterations.
const LATE_RECEIPTS_MAX: usize = 4096;
/// How long such a copy waits for its block to be durable.
const LATE_RECEIPT_WAIT_MS: u64 = 5_000;
/// Consensus messages taken from the validator links an iteration.
const PEER_CHUNK: usize = 256;

/// How long a refused id stays in the negative cache.
pub const NEGATIVE_TTL_MS: u64 = 2000;

impl NegativeCache {
    fn new(log2: u32) -> Self {
        let n = 1usize << log2;
        NegativeCache { slots: vec![([0; 32], 0, 0); n], mask: n - 1 }
    }

    fn slot(&self, id: &[u8; 32]) -> usize {
        attnet_core::dedup::IdFilter::prefix(id) as usize & self.mask
    }

    fn insert(&mut self, id: [u8; 32], now_ms: u64, code: u8) {
        let i = self.slot(&id);
        if let Some(s) = self.slots.get_mut(i) {
            *s = (id, now_ms, code);
        }
    }

    /// The refusal's code if `id` was refused less than the TTL ago.
    fn reason(&self, id: &[u8; 32], now_ms: u64) -> Option<u8> {
        self.slots
            .get(self.slot(id))
            .filter(|(k, at, _)| k == id && *at != 0 && now_ms.saturating_sub(*at) < NEGATIVE_TTL_MS)
            .map(|e| e.2)
    }

    fn hit(&self, id: &[u8; 32], now_ms: u64) -> bool {
        self.reason(id, now_ms).is_some()
    }
}

fn now_ms(epoch: Instant) -> u64 {
    // From 1, so that 0 can mean "never" in the tables.
    epoch.elapsed().as_millis() as u64 + 1
}

/// A transaction's id: SHA-256 of its bytes before the signature.
use crate::store::tx_id;

/// Id prefixes waiting to go to the cores in one [`Command::Forget`].
#[derive(Default)]
struct Forgets {
    n: usize,
    ids: [u64; FORGET_MAX],
    /// Prefixes sent, and lost to a full command ring.
    sent: u64,
    lost: u64,
}

impl Forgets {
    fn push(&mut self, id: &[u8; 32], bus: &mut CommandBus) {
        if let Some(s) = self.ids.get_mut(self.n) {
            *s = attnet_core::dedup::IdFilter::prefix(id);
            self.n += 1;
        }
        if self.n == FORGET_MAX {
            self.flush(bus);
        }
    }

    fn flush(&mut self, bus: &mut CommandBus) {
        if self.n == 0 {
            return;
        }
        let n = self.n as u64;
        match bus.send(Command::Forget { n: self.n as u8, ids: self.ids }) {
            Ok(_) => self.sent += n,
            // The cores keep the ids: a resend is `duplicate` until the
            // filter's slot is reused. Counted, never waited for.
            Err(_) => self.lost += n,
        }
        self.n = 0;
    }
}

/// The control thread's tables, all sized at start: the ids seen (two
/// generations), the negative cache, every session's budget, and the
/// routes of pending transactions (receive time and return address, by id).
pub struct ControlTables {
    recent: RecentIds,
    refused_recently: NegativeCache,
    budgets: Vec<Budget>,
    pending: RouteTable,
    committed: CommittedIds,
}

impl ControlTables {
    /// Allocates every table for `cfg` and touches its memory, so that the
    /// first transactions do not pay a page fault each (fresh memory is
    /// mapped lazily: on a virtual machine tens of thousands of first
    /// touches stalled the loop for hundreds of milliseconds). Build it
    /// before the data cores start (about 100 MB and 0.1 s with the
    /// defaults).
    pub fn new(cfg: &RunnerConfig) -> Self {
        let mut recent = RecentIds::new(cfg.recent_ids);
        let mut pending = RouteTable::new(cfg.max_pending);
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k[8] = 0xA5;
            k
        };
        for gen in [&mut recent.young, &mut recent.old] {
            for i in 0..recent.half {
                gen.insert(key(i));
            }
            gen.clear();
        }
        let half = pending.half();
        for gen in pending.generations() {
            for i in 0..half {
                gen.insert(key(i), Pending::default());
            }
            gen.clear();
        }
        ControlTables {
            recent,
            refused_recently: NegativeCache::new(cfg.negative_log2),
            budgets: vec![Budget::default(); 1 << 16],
            pending,
            committed: CommittedIds::new(cfg.committed_ids),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What the control thread runs with.
pub struct ControlSetup {
    /// The shard side of every (data core, shard) link.
    pub ends: Vec<ShardEnd>,
    pub chain: Chain,
    pub cfg: RunnerConfig,
    /// The thread's tables, built (and their memory touched) before the
    /// data cores start: [`ControlTables::new`].
    pub tables: ControlTables,
    /// The node's epoch (receive times are nanoseconds since it).
    pub epoch: Instant,
    /// Data cores still running; the thread ends after it reaches 0.
    pub cores_running: Arc<AtomicUsize>,
    pub live: Arc<Mutex<Published>>,
    /// The RECEIPT sender, owner of the relay's sealers.
    pub receipts: Option<ReceiptSender>,
    /// The one producer of every data core's command ring: sessions are
    /// installed and removed through it while the cores run.
    pub commands: CommandBus,
    /// Every data core's HELLO and QUERY rings.
    pub exceptions: Vec<ExceptionEnd>,
    /// The relay's handshake (a node with a node key).
    pub handshake: Option<HandshakeServer>,
    /// The store thread of the data directory (`None`: nothing persists).
    /// Final blocks go to it; a block counts as committed (receipts, the
    /// live height, transaction-state answers) only once it is durable.
    pub store: Option<Store>,
    /// Configuration reloads (SIGHUP), applied between iterations.
    pub reloads: Option<crossbeam_channel::Receiver<Reload>>,
    /// The links to the other validators (a validator of a network of
    /// several: the chain has joined it, [`Chain::join_network`]).
    pub peers: Option<Box<dyn crate::replica::Peers>>,
}

/// What a configuration reload changes in the control thread and, through
/// the command rings, in the data cores; nothing stops receiving.
pub struct Reload {
    /// Configured sessions to install (added, or with new keys): id,
    /// client-to-relay and relay-to-client keys. Their sealers start above
    /// every counter this node may have used (the reservation's end with a
    /// data directory, else the clock's counter start, which is above any
    /// earlier sealer's of this run).
    pub install: Vec<(u16, [u8; 32], [u8; 32])>,
    /// Configured sessions to remove.
    pub remove: Vec<u16>,
    /// Failure budgets, for the cores and for ledger refusals (`Some(None)`:
    /// off).
    pub budget: Option<Option<BudgetConfig>>,
    /// HELLO limits: cookie threshold, per-source rate, sessions per
    /// source, idle timeout (ms).
    pub hello: Option<(u32, u32, u32, u64)>,
    /// One line per change applied or refused.
    pub done: crossbeam_channel::Sender<Vec<String>>,
}

/// Applies `r` and answers with what happened, one line per change.
fn apply_reload(
    r: Reload,
    cfg: &mut RunnerConfig,
    bus: &mut CommandBus,
    mut receipts: Option<&mut ReceiptSender>,
    mut handshake: Option<&mut HandshakeServer>,
    store: Option<&Store>,
) {
    let Reload { install, remove, budget, hello, done } = r;
    let mut out = Vec::new();
    for id in &remove {
        match bus.remove(*id) {
            Ok(_) => {
                if let Some(t) = receipts.as_deref_mut() {
                    t.remove(*id);
                }
                if let Some(h) = handshake.as_deref_mut() {
                    h.release_configured(*id);
                }
                out.push(format!("session {id} removed"));
            }
            Err(e) => out.push(format!("session {id} not removed: {e}")),
        }
    }
    for (id, c2r, r2c) in install {
        let start = ReceiptSender::counter_start_now()
            .max(receipts.as_deref().and_then(|t| t.reservation()).map_or(0, |r| r.below()));
        let (rx, sealer) = match attnet_core::session::Session::new(
            attnet_core::session::Role::Relay,
            u32::from(id),
            &c2r,
            &r2c,
            start,
        ) {
            Ok(s) => s.split(),
            Err(e) => {
                out.push(format!("session {id} not installed: {e}"));
                continue;
            }
        };
        if !handshake.as_deref_mut().is_none_or(|h| h.claim_configured(id)) {
            out.push(format!("session {id} not installed: a negotiated session holds the id"));
            continue;
        }
        if let Some(s) = store {
            if let Err(e) = s.add_window(id, rx.window.clone()) {
                out.push(format!("session {id} not installed: {e}"));
                continue;
            }
        }
        match bus.install(&rx) {
            Ok(_) => {
                if let Some(t) = receipts.as_deref_mut() {
                    t.install(0, sealer, u16::MAX);
                }
                out.push(format!("session {id} installed"));
            }
            Err(e) => out.push(format!("session {id} not installed: {e}")),
        }
    }
    if let Some(b) = budget {
        match bus.send(Command::Budget(b)) {
            Ok(_) => {
                cfg.budget = b;
                out.push(match b {
                    Some(b) => {
                        format!("budgets {} a second, burst {}, cool-down {} ms", b.per_s, b.burst, b.cooldown_ms)
                    }
                    None => "budgets off".into(),
                });
            }
            Err(e) => out.push(format!("budgets not changed: {e}")),
        }
    }
    match (hello, handshake) {
        (Some((threshold, rate, per_source, idle_ms)), Some(h)) => {
            h.set_limits(threshold, rate, per_source, idle_ms);
            out.push(format!(
                "HELLO limits: cookies above {threshold}/s, {rate}/s per source, {per_source} sessions per source, \
                 idle {} s",
                idle_ms / 1000
            ));
        }
        (Some(_), None) => out.push("HELLO limits kept: this node negotiates no sessions (no node key)".into()),
        (None, _) => {}
    }
    let _ = done.send(out);
}

/// Runs until every data core has stopped (`cores_running` reaches 0) and
/// every ring is empty; then seals the last block and reports. With
/// `receipts`, every sealed block's transactions are receipted to their
/// clients.
///
/// Deduplication: an id is recorded as seen only once the ledger took its
/// transaction (applied it, or queued it behind a nonce gap). An id the
/// ledger refuses, or drops later from its queue, is not (or no longer)
/// seen: the cores are told to forget it too ([`Command::Forget`]), so the
/// same signed transaction can be sent again and apply once its turn comes.
/// A refused id (other than a nonce gap, which a resend may fill) is kept
/// in a negative cache for [`NEGATIVE_TTL_MS`]. Refusals are charged to the
/// session's budget; a session over budget is throttled on every core
/// ([`Command::Throttle`]).
pub fn run(setup: ControlSetup) -> Result<ControlReport, String> {
    let ControlSetup {
        mut ends,
        mut chain,
        cfg,
        tables,
        epoch,
        cores_running,
        live,
        mut receipts,
        mut commands,
        mut exceptions,
        mut handshake,
        mut store,
        reloads,
        mut peers,
    } = setup;
    let mut cfg = cfg;
    if let Some(cpu) = cfg.cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut ids_out = match &cfg.accepted_ids {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("accepted ids {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let ControlTables { mut recent, mut refused_recently, mut budgets, mut pending, mut committed } = tables;
    let mut queries = QueryCounters::default();
    let mut forgets = Forgets::default();
    let mut dropped_ids: Vec<[u8; 32]> = Vec::with_capacity(1024);
    let mut late_receipts: Vec<(attnet_core::shard::Route, [u8; 32], u64)> = Vec::with_capacity(LATE_RECEIPTS_MAX);
    let mut late_ready: Vec<(u64, attnet_core::shard::Route, [u8; 32])> = Vec::with_capacity(LATE_RECEIPTS_MAX);
    // Blocks sealed whose receipts are not all done: (block, next
    // transaction, when it was sealed).
    let mut sealed: VecDeque<(crate::block::Block, usize, u64)> = VecDeque::new();
    let mut inclusion_us = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
    let mut loop_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
    let mut loop_cpu_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
    let mut seal_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
    let mut inclusion = attnet_core::latency::LatencyBuckets::default();
    // Sealed → committed (final and durable), per block.
    let mut finality = attnet_core::latency::LatencyBuckets::default();
    let mut slowest = Slowest::default();
    let mut first_ring = 0usize;
    // The height resumes where the data directory left it.
    let mut st = Live { height: chain.height(), ..Live::default() };
    let mut last_publish = Instant::now();
    loop {
        if let Some(r) = reloads.as_ref().and_then(|r| r.try_recv().ok()) {
            apply_reload(r, &mut cfg, &mut commands, receipts.as_mut(), handshake.as_mut(), store.as_ref());
        }
        let started = Instant::now();
        let cpu_started = thread_cpu_us();
        // Read the flag before draining: if it is 0 here, every core has
        // pushed its last batch, so one more empty sweep means done.
        let all_stopped = cores_running.load(Ordering::Acquire) == 0;
        let mut moved = 0usize;
        let clock = now_ms(epoch);
        let txs_before = st.txs_in;
        // Handshakes first: WELCOMEs whose sessions are installed leave,
        // then new HELLOs (a bounded number: each costs a signature check
        // and an X25519 exchange).
        if let (Some(hs), Some(tx)) = (handshake.as_mut(), receipts.as_mut()) {
            hs.poll(clock, &mut commands, tx);
            let unix = unix_ms();
            let mut n = 0;
            'hellos: for ex in exceptions.iter_mut() {
                while n < HELLO_CHUNK {
                    let Ok(e) = ex.hellos.pop() else { continue 'hellos };
                    hs.on_item(&e, unix, clock, &mut commands, tx);
                    n += 1;
                }
            }
            moved += n;
        }
        let t_handshakes = Instant::now();
        moved += answer_queries(
            &mut exceptions,
            &chain,
            handshake.as_mut(),
            receipts.as_mut(),
            &mut queries,
            clock,
            &|id: &[u8; 32]| {
                if let Some(h) = committed.height(id) {
                    TxState::Committed(h)
                } else if recent.contains(id) {
                    TxState::Pending
                } else if let Some(code) = refused_recently.reason(id, clock) {
                    TxState::Refused(code)
                } else {
                    TxState::Unknown
                }
            },
        );
        let t_queries = Instant::now();
        // At most BATCH_CHUNK batches an iteration, taken from the rings in
        // turn starting after last iteration's: a full set of rings drained
        // at once held the loop for tens of milliseconds.
        let rings = ends.len();
        let mut taken = 0;
        for k in 0..rings {
            let Some(end) = ends.get_mut((first_ring + k) % rings) else { continue };
            while taken < BATCH_CHUNK {
                let Ok(mut batch) = end.from_core.pop() else { break };
                taken += 1;
                moved += batch.len();
                let now = unix_ms();
                for t in &batch.txs {
                    st.txs_in += 1;
                    if recent.contains(&t.id) {
                        st.late_duplicates += 1;
                        continue;
                    }
                    let route = batch.route(t).unwrap_or_default();
                    if let Some(hs) = handshake.as_mut() {
                        hs.touch(route.session, route.generation, clock);
                    }
                    let refusal = if refused_recently.hit(&t.id, clock) {
                        st.recently_refused += 1;
                        Some(None)
                    } else {
                        match chain.submit(batch.tx(t), now) {
                            Ok(()) => None,
                            Err(r) => Some(Some(r)),
                        }
                    };
                    let Some(refusal) = refusal else {
                        // Applied or waiting for a nonce gap: seen from now
                        // on; remember when it arrived and where from until
                        // it is sealed.
                        recent.insert(t.id);
                        if let Some(w) = ids_out.as_mut() {
                            write_hex_line(w, &t.id).map_err(|e| format!("accepted ids: {e}"))?;
                        }
                        pending.insert(t.id, Pending { rx_ns: t.rx_ns, id: t.id, route, since_ms: now });
                        continue;
                    };
                    // Refused: the cores forget the id unless it can never
                    // apply (its nonce is used), a later resend meets the
                    // negative cache, and the session pays.
                    match refusal {
                        // A copy of a transaction already final and
                        // durable (a resend, or the copy another validator
                        // put in a block first): its RECEIPT goes again.
                        Some(Refusal::BadNonce) => {
                            if late_receipts.len() < LATE_RECEIPTS_MAX {
                                late_receipts.push((route, t.id, clock));
                            } else {
                                charge(&mut budgets, &mut commands, &mut st, &cfg, route.session, clock);
                            }
                        }
                        // Refused again from the negative cache: the core
                        // that verified this copy forgets it too.
                        None | Some(Refusal::NonceGap) => forgets.push(&t.id, &mut commands),
                        Some(r) => {
                            refused_recently.insert(t.id, clock, r.code());
                            forgets.push(&t.id, &mut commands);
                        }
                    }
                    // A nonce gap is not charged: it follows from a
                    // transaction lost before the node (network, kernel,
                    // a full ring), which the session cannot prevent, and
                    // each one cost its sender a real signature.
                    // A used nonce is charged only if the transaction is
                    // not a copy of one that becomes final (below).
                    if !matches!(refusal, Some(Refusal::NonceGap) | Some(Refusal::BadNonce)) {
                        charge(&mut budgets, &mut commands, &mut st, &cfg, route.session, clock);
                    }
                }
                batch.clear();
                // The core's pool is as deep as the ring: this never fails.
                let _ = end.give_back.push(batch);
            }
        }
        first_ring = (first_ring + 1) % rings.max(1);
        // Consensus messages from the other validators, a bounded number
        // an iteration.
        if let Some(p) = peers.as_mut() {
            let mut n = 0;
            while n < PEER_CHUNK {
                let Some((from, bytes)) = p.try_recv() else { break };
                chain.receive(from, &bytes, unix_ms());
                n += 1;
            }
            moved += n;
        }
        let now = unix_ms();
        let seal_started = Instant::now();
        let blocks = if all_stopped && moved == 0 { chain.finish(now) } else { chain.poll(now) };
        let t_seal = Instant::now();
        let sealed_now = blocks.len() as u64;
        if !blocks.is_empty() {
            seal_us.saturating_record(t_seal.duration_since(seal_started).as_micros().max(1) as u64);
        }
        // Transactions that waited behind a nonce gap and were dropped: no
        // longer seen anywhere, so their clients may send them again.
        chain.take_dropped(&mut dropped_ids);
        for id in dropped_ids.drain(..) {
            recent.remove(&id);
            pending.take(&id);
            forgets.push(&id, &mut commands);
        }
        forgets.flush(&mut commands);
        if !blocks.is_empty() {
            let sealed_ns = epoch.elapsed().as_nanos() as u64;
            if let Some(s) = store.as_ref() {
                for b in &blocks {
                    // A refused block means the store thread stopped on an
                    // error (a full disk, a failed fsync): the loop ends
                    // below and `finish` returns that error, naming the file.
                    if s.append(b.clone()).is_err() {
                        break;
                    }
                }
            }
            sealed.extend(blocks.into_iter().map(|b| (b, 0usize, sealed_ns)));
        }
        // Certificates follow their blocks into the log; peers behind the
        // replica's memory are served from it.
        let certificates = chain.take_certificates();
        let from_log = chain.take_from_log();
        if let Some(s) = store.as_mut() {
            for c in certificates {
                if s.append_certificate(c).is_err() {
                    break;
                }
            }
            for (peer, first, last) in from_log {
                s.archive().request(peer, first, last);
            }
            for served in s.archive().take() {
                chain.serve_from_log(served.peer, served.blocks);
            }
        }
        if store.as_ref().is_some_and(Store::failed) {
            break;
        }
        // Only durable blocks are committed: without a store, every final
        // block is.
        let durable = store.as_ref().map_or(u64::MAX, Store::durable);
        chain.durable(durable, now);
        if let Some(p) = peers.as_mut() {
            for (to, m) in chain.take_outgoing() {
                p.send(to, m);
            }
            let peers_now = p.connected() as u32;
            if peers_now > st.peers {
                chain.peer_connected(now);
                for (to, m) in chain.take_outgoing() {
                    p.send(to, m);
                }
            }
            st.peers = peers_now;
            st.round_height = chain.replica().map_or(0, |r| r.round_height());
        }
        let t_commit = Instant::now();
        // Sealed blocks' receipts and inclusion times, at most
        // RECEIPT_CHUNK transactions an iteration (a block of ten thousand
        // at once held the loop for milliseconds); a block's RECEIPTs leave
        // when its last transaction is done.
        // Receipts of copies of final transactions, between two blocks'
        // receipts (the sender batches one block at a time).
        // A copy can arrive after its transaction executed and before its
        // block is durable: it waits up to LATE_RECEIPT_WAIT_MS for it.
        if sealed.front().is_none_or(|(_, next, _)| *next == 0) && !late_receipts.is_empty() {
            late_ready.clear();
            late_receipts.retain(|(route, id, since)| match committed.height(id) {
                Some(h) => {
                    late_ready.push((h, *route, *id));
                    false
                }
                None if clock.saturating_sub(*since) < LATE_RECEIPT_WAIT_MS => true,
                // Never final: a real reuse of a nonce, charged now.
                None => {
                    charge(&mut budgets, &mut commands, &mut st, &cfg, route.session, clock);
                    false
                }
            });
            // Per height, so that each frame carries up to 40 ids.
            late_ready.sort_unstable_by_key(|e| e.0);
            if let Some(r) = receipts.as_mut() {
                let mut i = 0;
                while let Some(&(h, _, _)) = late_ready.get(i) {
                    while let Some(&(_, route, id)) = late_ready.get(i).filter(|e| e.0 == h) {
                        r.add(Some(route), 0, id);
                        i += 1;
                    }
                    r.flush(h);
                }
            }
        }
        let mut budget = RECEIPT_CHUNK;
        while budget > 0 {
            let Some((b, next, sealed_ns)) = sealed.front_mut() else { break };
            let start = *next;
            let height = b.header().height;
            if height > durable {
                break;
            }
            if start == 0 {
                let now_ns = epoch.elapsed().as_nanos() as u64;
                finality.record_n((now_ns.saturating_sub(*sealed_ns) / 1000).max(1), 1);
            }
            for (at, tx) in b.txs().enumerate().skip(start).take(budget) {
                let id = tx_id(tx);
                committed.insert(id, height);
                let p = pending.take(&id);
                if let Some(p) = &p {
                    let us = (sealed_ns.saturating_sub(p.rx_ns) / 1000).max(1);
                    inclusion_us.saturating_record(us);
                    inclusion.record_n(us, 1);
                }
                if let Some(r) = receipts.as_mut() {
                    match p {
                        Some(p) => r.add(Some(p.route), at as u32, p.id),
                        None => r.add(None, at as u32, id),
                    }
                }
                *next += 1;
            }
            budget -= *next - start;
            if *next < b.header().tx_count as usize {
                break;
            }
            if let Some(r) = receipts.as_mut() {
                r.flush(b.header().height);
            }
            st.blocks += 1;
            st.height = height;
            if let Some((b, _, _)) = sealed.pop_front() {
                chain.recycle(b);
            }
        }
        let t_receipts = Instant::now();
        if last_publish.elapsed() >= Duration::from_millis(100) {
            last_publish = Instant::now();
            st.inclusion_p99_us = inclusion_us.value_at_quantile(0.99);
            st.loop_max_us = loop_us.max();
            st.forgets_sent = forgets.sent;
            st.forgets_lost = forgets.lost;
            if let Some(hs) = handshake.as_ref() {
                let c = hs.counters();
                st.hs_received = c.received;
                st.hs_welcomed = c.welcomed;
                st.hs_cookies = c.cookies_sent;
                st.hs_refused = c.refusals.iter().sum();
                st.hs_live = c.live;
            }
            let p = published(
                st,
                &chain,
                receipts.as_ref(),
                handshake.as_ref(),
                queries,
                (&inclusion, &inclusion_us, &finality),
                &ends,
            );
            if let Ok(mut l) = live.lock() {
                *l = p;
            }
        }
        // Only iterations that did work: an idle one is a sleep.
        if moved > 0 {
            let total = started.elapsed().as_micros().max(1) as u64;
            let cpu = thread_cpu_us().saturating_sub(cpu_started).max(1);
            loop_us.saturating_record(total);
            loop_cpu_us.saturating_record(cpu);
            if total > slowest.total_us {
                let us = |a: Instant, b: Instant| b.duration_since(a).as_micros() as u64;
                slowest = Slowest {
                    total_us: total,
                    cpu_us: cpu,
                    handshakes_us: us(started, t_handshakes),
                    queries_us: us(t_handshakes, t_queries),
                    ingest_us: us(t_queries, seal_started),
                    seal_us: us(seal_started, t_seal),
                    commit_us: us(t_seal, t_commit),
                    receipts_us: us(t_commit, t_receipts),
                    txs: st.txs_in - txs_before,
                    blocks: sealed_now,
                };
            }
        }
        if all_stopped && moved == 0 && sealed.is_empty() {
            break;
        }
        if moved == 0 && sealed.is_empty() {
            std::thread::sleep(cfg.idle_sleep);
        } else if moved == 0 && sealed.front().is_some_and(|(b, _, _)| b.header().height > durable) {
            // Waiting for the disk: a short sleep, not a spin.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // The block log's reader: requests refused (too many waiting) and
    // blocks read back for peers catching up.
    let log_reads = store.as_mut().map(|s| (s.archive().refused(), s.archive().served()));
    let storage = match store {
        Some(s) => Some(s.finish()?),
        None => None,
    };
    if let Some(mut w) = ids_out {
        w.flush().map_err(|e| format!("accepted ids: {e}"))?;
    }
    st.inclusion_p99_us = inclusion_us.value_at_quantile(0.99);
    st.loop_max_us = loop_us.max();
    st.forgets_sent = forgets.sent;
    st.forgets_lost = forgets.lost;
    let p = published(
        st,
        &chain,
        receipts.as_ref(),
        handshake.as_ref(),
        queries,
        (&inclusion, &inclusion_us, &finality),
        &ends,
    );
    if let Ok(mut l) = live.lock() {
        *l = p;
    }
    let network = match (chain.replica(), peers.as_ref()) {
        (Some(r), p) => serde_json::json!({
            "round_height": r.round_height(),
            "replica": r.counters().to_json(),
            "engine": {
                "bad_signatures": r.engine_stats().bad_signatures,
                "proposals": r.engine_stats().proposals,
                "decided": r.engine_stats().decided,
                "core_errors": r.engine_stats().core_errors,
                "verdicts_dropped": r.engine_stats().verdicts_dropped,
            },
            "halted": r.halted(),
            "links": p.map_or(serde_json::Value::Null, |p| p.to_json()),
            "seats": chain.ledger().state().seats().iter().map(|s| hex::encode(s.node_key)).collect::<Vec<_>>(),
            "minted": chain.ledger().state().minted(),
            "slashed": chain.ledger().state().slashed(),
            "log_reads": log_reads.map(|(refused, read)| serde_json::json!({"read": read, "refused": refused})),
        }),
        (None, _) => serde_json::Value::Null,
    };
    Ok(ControlReport {
        network,
        live: st,
        chain: chain.counters(),
        inclusion_us,
        loop_us,
        loop_cpu_us,
        slowest,
        seal_us,
        replies: receipts.as_ref().map(|r| r.reply_counters()).unwrap_or_default(),
        receipts: receipts.map(|r| r.counters()).unwrap_or_default(),
        pending_swept: pending.swept,
        handshake: handshake.map(|h| h.counters()).unwrap_or_default(),
        queries,
        storage,
    })
}

/// Charges one ledger refusal to `session`'s failure budget; a session
/// over budget is throttled on every core ([`Command::Throttle`]).
fn charge(
    budgets: &mut [Budget],
    commands: &mut CommandBus,
    st: &mut Live,
    cfg: &RunnerConfig,
    session: u16,
    clock: u64,
) {
    let (Some(bc), Some(b)) = (&cfg.budget, budgets.get_mut(usize::from(session))) else { return };
    if b.charge(1, clock, bc) {
        let until_ms = b.until_ms();
        match commands.send(Command::Throttle { id: session, until_ms }) {
            Ok(_) => st.throttles += 1,
            Err(_) => st.throttles_lost += 1,
        }
    }
}

/// The control thread's counters as [`Published`].
fn published(
    live: Live,
    chain: &Chain,
    receipts: Option<&ReceiptSender>,
    handshake: Option<&HandshakeServer>,
    queries: QueryCounters,
    (inclusion, inclusion_us, finality): (
        &attnet_core::latency::LatencyBuckets,
        &Histogram<u64>,
        &attnet_core::latency::LatencyBuckets,
    ),
    ends: &[ShardEnd],
) -> Published {
    Published {
        live,
        sealed_height: chain.height(),
        chain: chain.counters(),
        receipts: receipts.map(|r| r.counters()).unwrap_or_default(),
        replies: receipts.map(|r| r.reply_counters()).unwrap_or_default(),
        handshake: handshake.map(|h| h.counters()).unwrap_or_default(),
        queries,
        inclusion: *inclusion,
        finality: *finality,
        inclusion_pct: quantiles(inclusion_us),
        ring_fill: ends.iter().map(ring_fill).collect(),
    }
}

/// p50, p90, p99, p999 and max of `h` (zeros when empty).
fn quantiles(h: &Histogram<u64>) -> [u64; 5] {
    if h.is_empty() {
        return [0; 5];
    }
    [h.value_at_quantile(0.5), h.value_at_quantile(0.9), h.value_at_quantile(0.99), h.value_at_quantile(0.999), h.max()]
}

/// Batches waiting on a shard ring over what it holds.
fn ring_fill(e: &ShardEnd) -> f32 {
    e.from_core.slots() as f32 / e.from_core.buffer().capacity().max(1) as f32
}

/// HELLOs one loop iteration judges at most (each about 0.24 ms of
/// signature and key work: `cargo bench -p bench --bench handshake`).
const HELLO_CHUNK: usize = 16;

/// Answers up to [`QUERY_CHUNK`] queries from the cores' rings; returns
/// how many it took.
fn answer_queries(
    exceptions: &mut [ExceptionEnd],
    chain: &Chain,
    mut handshake: Option<&mut HandshakeServer>,
    tx: Option<&mut ReceiptSender>,
    c: &mut QueryCounters,
    clock: u64,
    tx_state: &dyn Fn(&[u8; 32]) -> TxState,
) -> usize {
    let Some(tx) = tx else {
        // No transmit half: nothing can be answered; the rings stay full and
        // the cores count the rest as overload.
        return 0;
    };
    let mut n = 0;
    let mut body = Vec::with_capacity(1500);
    for ex in exceptions.iter_mut() {
        while n < QUERY_CHUNK {
            let Ok(e) = ex.queries.pop() else { break };
            n += 1;
            c.received += 1;
            let Some(q) = e.body().and_then(|b| Query::parse(b).ok()) else {
                c.malformed += 1;
                continue;
            };
            body.clear();
            let limit = tx.reply_body_limit(e.session);
            answer(&q, chain.ledger(), chain.height(), tx_state, limit, &mut body);
            match tx.send_sealed(e.session, e.generation, e.channel, share::kind::ANSWER, &body, &e.peer) {
                Some(sent) => {
                    c.answered += 1;
                    c.sent += u64::from(sent);
                    if let Some(hs) = handshake.as_deref_mut() {
                        hs.touch(e.session, e.generation, clock);
                    }
                }
                None => c.stale_session += 1,
            }
        }
    }
    n
}

fn write_hex_line(w: &mut impl Write, id: &[u8; 32]) -> std::io::Result<()> {
    let mut hex = [0u8; 65];
    for (i, b) in id.iter().enumerate() {
        hex[2 * i] = b"0123456789abcdef"[(b >> 4) as usize];
        hex[2 * i + 1] = b"0123456789abcdef"[(b & 15) as usize];
    }
    hex[64] = b'\n';
    w.write_all(&hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainConfig;

    /// A validator's clients get their RECEIPTs across a finality stall as
    /// long as their transactions wait in the mempool (`stale_ms`, 30 s):
    /// while nothing is final, the route table's inserts are the distinct
    /// transactions the mempool took (copies of waiting ones are
    /// `late_duplicates`, not inserted), at most its cap before the first
    /// expires, and the table keeps at least `max_pending / 2` inserts.
    #[test]
    fn receipt_routes_outlive_a_finality_stall_as_long_as_the_mempool_keeps_transactions() {
        let runner = RunnerConfig::default();
        let replica = crate::replica::ReplicaConfig::new(
            [0; 32],
            1,
            [1; 32],
            crate::bft::ValidatorSet::new(vec![crate::bft::Validator::seat([2; 32])]).unwrap(),
        );
        let cap = replica.mempool_cap;
        assert!(runner.max_pending / 2 >= cap, "{} routes, a mempool of {cap}", runner.max_pending);
        let mut t = RouteTable::new(runner.max_pending);
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        let p = |i: usize| Pending { rx_ns: 0, id: key(i), route: Route::default(), since_ms: i as u64 };
        // Before the stall: a busy table, a generation about to turn.
        for i in 0..runner.max_pending / 2 - 1 {
            t.insert(key(usize::MAX - i), p(0));
        }
        // The stall: the first waiting transaction, then the mempool fills.
        for i in 0..cap {
            t.insert(key(i), p(i));
        }
        assert_eq!(t.take(&key(0)).map(|p| p.since_ms), Some(0), "the first waiting transaction's route");
        assert!(t.take(&key(cap - 1)).is_some());
    }
    use crate::genesis::{Genesis, GenesisAccount};
    use crate::ledger::LedgerConfig;
    use attnet_core::command::command_bus;
    use attnet_core::dedup::IdFilter;
    use attnet_core::session::{Role, Session, SessionTable};
    use attnet_core::shard::{shard_link, Route, ShardBatch};
    use attnet_core::wire::tx::{Kind, Repr};

    const A: [u8; 32] = [0xA; 32];
    const B: [u8; 32] = [0xB; 32];

    fn tx(from: [u8; 32], nonce: u64, amount: u64) -> Vec<u8> {
        let r = Repr { kind: Kind::Transfer, from, to: B, nonce, amount, fee: 1, memo: b"", signature: [3; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        b
    }

    /// Runs the control thread over one link; `feed` pushes batches (with
    /// the session id each is routed from) and sleeps between them.
    fn run_with(
        cfg: RunnerConfig,
        stale_ms: u64,
        steps: Vec<(u16, Vec<Vec<u8>>, u64)>,
    ) -> (ControlReport, Vec<attnet_core::command::CommandRx>) {
        let genesis =
            Genesis::new(1, [GenesisAccount { key: A, balance: 1000 }, GenesisAccount { key: B, balance: 10 }])
                .unwrap();
        let chain = Chain::new(
            &genesis,
            ChainConfig {
                ledger: LedgerConfig { stale_ms, ..LedgerConfig::default() },
                block: crate::block::BlockConfig { interval_ms: 20, ..Default::default() },
                producer: None,
            },
        );
        let (mut link, end, mut pool) = shard_link(8, 64);
        let (commands, rx) = command_bus(1, 64);
        let running = Arc::new(AtomicUsize::new(1));
        let setup = ControlSetup {
            ends: vec![end],
            chain,
            tables: ControlTables::new(&cfg),
            cfg,
            epoch: Instant::now(),
            cores_running: running.clone(),
            live: Arc::new(Mutex::new(Published::default())),
            receipts: None,
            commands,
            exceptions: Vec::new(),
            handshake: None,
            store: None,
            reloads: None,
            peers: None,
        };
        let h = std::thread::spawn(move || run(setup));
        for (session, txs, sleep_ms) in steps {
            let mut b: Box<ShardBatch> = pool.pop().or_else(|| link.returned.pop().ok()).expect("a free batch");
            for t in &txs {
                let id = tx_id(t);
                b.push_routed(t, id, 0, Route { session, ..Route::default() });
            }
            link.to_shard.push(b).unwrap();
            std::thread::sleep(Duration::from_millis(sleep_ms));
            while let Ok(b) = link.returned.pop() {
                pool.push(b);
            }
        }
        running.store(0, Ordering::Release);
        (h.join().unwrap().unwrap(), rx)
    }

    /// Nonce 2 arrives early and expires; nonce 1 arrives; nonce 2 is sent
    /// again and applies: the expired id was forgotten by the control
    /// thread and, through the command ring, by the cores' filters.
    #[test]
    fn a_resent_transaction_applies_after_its_first_copy_expired() {
        let (n1, n2) = (tx(A, 1, 5), tx(A, 2, 5));
        let id2: [u8; 32] = tx_id(&n2);
        let cfg = RunnerConfig { recent_ids: 1024, ..RunnerConfig::default() };
        let (r, mut rx) = run_with(cfg, 50, vec![(1, vec![n2.clone()], 200), (1, vec![n1], 50), (1, vec![n2], 50)]);
        assert_eq!(r.chain.ledger.applied, 2, "{:?}", r.chain.ledger);
        assert_eq!(r.chain.ledger.get(Refusal::NonceGap), 1);
        assert_eq!(r.live.late_duplicates, 0);
        assert!(r.live.forgets_sent >= 1 && r.live.forgets_lost == 0, "{:?}", r.live);
        // The slowest iteration is the histogram's maximum (to its 3
        // significant digits), its phases within it, and it took work.
        let w = r.slowest;
        let phases = w.handshakes_us + w.queries_us + w.ingest_us + w.seal_us + w.commit_us + w.receipts_us;
        assert!(w.total_us > 0 && phases <= w.total_us, "{w:?}");
        assert!(r.loop_us.equivalent(w.total_us, r.loop_us.max()), "{w:?} {}", r.loop_us.max());
        assert!(w.txs > 0, "only transactions move here: {w:?}");
        assert_eq!(w.to_json()["other_us"], w.total_us - phases);
        // Its CPU time is the thread's own clock: within its wall time (a
        // microsecond of rounding each way), and counted per iteration.
        assert!(w.cpu_us >= 1 && w.cpu_us <= w.total_us + 2, "{w:?}");
        assert_eq!(r.loop_cpu_us.len(), r.loop_us.len());
        // A core that had accepted id2 forgets it when it applies the ring.
        let mut filter = IdFilter::new(10);
        assert!(filter.insert(&id2));
        rx[0].apply(&mut SessionTable::new(Role::Relay), &mut filter, &mut None);
        assert!(filter.insert(&id2), "the core forgot the expired id");
    }

    /// Nonce gaps are not charged: an account stranded by one lost
    /// transaction (its later nonces all gapped, most refused at once as
    /// its queue is full) does not throttle the session that carries it.
    #[test]
    fn nonce_gaps_do_not_throttle_the_session() {
        let cfg = RunnerConfig {
            budget: Some(BudgetConfig { per_s: 1, burst: 5, cooldown_ms: 60_000 }),
            ..RunnerConfig::default()
        };
        let txs: Vec<Vec<u8>> = (100..140).map(|n| tx(A, n, 1)).collect();
        let (r, _rx) = run_with(cfg, 2000, vec![(9, txs, 20)]);
        assert!(r.chain.ledger.get(Refusal::NonceGap) >= 20, "{:?}", r.chain.ledger);
        assert_eq!((r.live.throttles, r.live.throttles_lost), (0, 0));
    }

    /// A session whose transactions the ledger keeps refusing goes over its
    /// budget: the cores are told to throttle it; a resend of a refused id
    /// meets the negative cache.
    #[test]
    fn ledger_refusals_throttle_the_session_and_resends_hit_the_negative_cache() {
        let cfg = RunnerConfig {
            budget: Some(BudgetConfig { per_s: 1, burst: 5, cooldown_ms: 60_000 }),
            ..RunnerConfig::default()
        };
        // Ten transactions from an account that does not exist, twice.
        let stranger = [0xEE; 32];
        let txs: Vec<Vec<u8>> = (1..=10).map(|n| tx(stranger, n, 1)).collect();
        let (r, mut rx) = run_with(cfg, 2000, vec![(9, txs.clone(), 20), (9, txs, 20)]);
        assert_eq!(r.chain.ledger.get(Refusal::NoAccount), 10);
        assert_eq!(r.live.recently_refused, 10);
        assert_eq!((r.live.throttles, r.live.throttles_lost), (1, 0));
        let s = Session::new(Role::Relay, 9, &[1; 32], &[2; 32], 0).unwrap();
        let mut table = SessionTable::new(Role::Relay);
        table.install_rx(&s.rx);
        rx[0].apply(&mut table, &mut IdFilter::new(4), &mut None);
        let until = table.get(9).unwrap().budget.until_ms();
        assert!(until > 50_000, "throttled for the cool-down: {until}");
    }
}
