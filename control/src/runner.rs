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

use attnet_core::command::CommandBus;
use attnet_core::shard::ShardEnd;
use hdrhistogram::Histogram;

use crate::chain::Chain;
use crate::receipts::{Pending, ReceiptCounters, ReceiptSender, RouteTable};

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
    /// Most pending transactions whose receive time and route are
    /// remembered until their block is sealed (about 100 bytes each).
    pub max_pending: usize,
    /// A pending entry older than this is forgotten (its transaction waited
    /// for a nonce gap and was dropped, or is otherwise never sealed).
    pub pending_max_age_ms: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            cpu: None,
            recent_ids: 1 << 20,
            accepted_ids: None,
            idle_sleep: Duration::from_millis(1),
            max_pending: 1 << 19,
            pending_max_age_ms: 10_000,
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
}

/// What the control thread hands back when it ends.
pub struct ControlReport {
    pub live: Live,
    pub chain: crate::chain::ChainCounters,
    /// Receive → sealed in a block, microseconds.
    pub inclusion_us: Histogram<u64>,
    /// RECEIPT indications (all zero without a sender).
    pub receipts: ReceiptCounters,
    /// Pending entries refused by the full table, and swept for age.
    pub pending_refused: u64,
    pub pending_swept: u64,
}

/// Ids accepted recently, oldest forgotten first.
struct RecentIds {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    cap: usize,
}

impl RecentIds {
    fn new(cap: usize) -> Self {
        RecentIds { set: HashSet::with_capacity(cap.min(1 << 16)), order: VecDeque::new(), cap: cap.max(1) }
    }

    /// False if `id` is already known.
    fn insert(&mut self, id: [u8; 32]) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A transaction's signature's first 32 bytes: unique per transaction, and
/// cheap to take from bytes the ledger hands back.
fn sig_key(tx: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 32];
    if let Some(r) = attnet_core::wire::tx::signature_part(tx).get(..32) {
        k.copy_from_slice(r);
    }
    k
}

/// What the control thread runs with.
pub struct ControlSetup {
    /// The shard side of every (data core, shard) link.
    pub ends: Vec<ShardEnd>,
    pub chain: Chain,
    pub cfg: RunnerConfig,
    /// The node's epoch (receive times are nanoseconds since it).
    pub epoch: Instant,
    /// Data cores still running; the thread ends after it reaches 0.
    pub cores_running: Arc<AtomicUsize>,
    pub live: Arc<Mutex<Live>>,
    /// The RECEIPT sender, owner of the relay's sealers.
    pub receipts: Option<ReceiptSender>,
    /// The one producer of every data core's command ring: sessions are
    /// installed and removed through it while the cores run.
    pub commands: CommandBus,
}

/// Runs until every data core has stopped (`cores_running` reaches 0) and
/// every ring is empty; then seals the last block and reports. With
/// `receipts`, every sealed block's transactions are receipted to their
/// clients.
pub fn run(setup: ControlSetup) -> Result<ControlReport, String> {
    let ControlSetup { mut ends, mut chain, cfg, epoch, cores_running, live, mut receipts, commands } = setup;
    // Held for the thread's life: the cores' command rings stay open (a
    // handshake stage installs the sessions it negotiates through it).
    let _commands = commands;
    if let Some(cpu) = cfg.cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut ids_out = match &cfg.accepted_ids {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("accepted ids {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut recent = RecentIds::new(cfg.recent_ids);
    let mut inclusion_us = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
    // Receive times, ids and routes of transactions applied but not yet
    // sealed, or waiting in the ledger's nonce queue.
    let mut pending = RouteTable::new(cfg.max_pending, cfg.pending_max_age_ms);
    let mut st = Live::default();
    let mut last_publish = Instant::now();
    loop {
        // Read the flag before draining: if it is 0 here, every core has
        // pushed its last batch, so one more empty sweep means done.
        let all_stopped = cores_running.load(Ordering::Acquire) == 0;
        let mut moved = 0usize;
        for end in ends.iter_mut() {
            while let Ok(mut batch) = end.from_core.pop() {
                moved += batch.len();
                let now = now_ms();
                for t in &batch.txs {
                    st.txs_in += 1;
                    if !recent.insert(t.id) {
                        st.late_duplicates += 1;
                        continue;
                    }
                    if let Some(w) = ids_out.as_mut() {
                        let mut hex = [0u8; 65];
                        for (i, b) in t.id.iter().enumerate() {
                            hex[2 * i] = b"0123456789abcdef"[(b >> 4) as usize];
                            hex[2 * i + 1] = b"0123456789abcdef"[(b & 15) as usize];
                        }
                        hex[64] = b'\n';
                        w.write_all(&hex).map_err(|e| format!("accepted ids: {e}"))?;
                    }
                    let bytes = batch.tx(t);
                    if chain.submit(bytes, now).is_ok() {
                        // Applied or waiting for a nonce gap: remember when
                        // it arrived and where from until it is sealed. A
                        // refused transaction is never entered.
                        let route = batch.route(t).unwrap_or_default();
                        pending.insert(sig_key(bytes), Pending { rx_ns: t.rx_ns, id: t.id, route, since_ms: now });
                    }
                }
                batch.clear();
                // The core's pool is as deep as the ring: this never fails.
                let _ = end.give_back.push(batch);
            }
        }
        let now = now_ms();
        let blocks = if all_stopped && moved == 0 { chain.finish(now) } else { chain.poll(now) };
        if !blocks.is_empty() {
            let sealed_ns = epoch.elapsed().as_nanos() as u64;
            for b in &blocks {
                for (at, tx) in b.txs().enumerate() {
                    let p = pending.take(&sig_key(tx));
                    if let Some(p) = &p {
                        inclusion_us.saturating_record((sealed_ns.saturating_sub(p.rx_ns) / 1000).max(1));
                    }
                    if let Some(r) = receipts.as_mut() {
                        match p {
                            Some(p) => r.add(Some(p.route), at as u32, p.id),
                            None => r.add(None, at as u32, [0; 32]),
                        }
                    }
                }
                if let Some(r) = receipts.as_mut() {
                    r.flush(b.header().height);
                }
            }
            st.blocks += blocks.len() as u64;
            st.height = chain.height();
        }
        // Entries of transactions the ledger later dropped as nonce gaps are
        // never claimed; they age out.
        pending.sweep(now);
        if last_publish.elapsed() >= Duration::from_millis(100) {
            last_publish = Instant::now();
            st.inclusion_p99_us = inclusion_us.value_at_quantile(0.99);
            if let Ok(mut l) = live.lock() {
                *l = st;
            }
        }
        if all_stopped && moved == 0 {
            break;
        }
        if moved == 0 {
            std::thread::sleep(cfg.idle_sleep);
        }
    }
    if let Some(mut w) = ids_out {
        w.flush().map_err(|e| format!("accepted ids: {e}"))?;
    }
    st.inclusion_p99_us = inclusion_us.value_at_quantile(0.99);
    if let Ok(mut l) = live.lock() {
        *l = st;
    }
    Ok(ControlReport {
        live: st,
        chain: chain.counters(),
        inclusion_us,
        receipts: receipts.map(|r| r.counters()).unwrap_or_default(),
        pending_refused: pending.refused,
        pending_swept: pending.swept,
    })
}
