//! Receipts: the node answers included transactions with RECEIPT
//! indications (`att-wire.md`, "RECEIPT body": kind 0x68, content kind
//! 0x43, sealed with the session's relay-to-client key). The tracker
//! stamps every valid transaction when it is sent, opens receipts as they
//! arrive, and records submit → inclusion latency in an HdrHistogram.
//! In the manner of TRex's flow statistics it also counts transactions
//! never receipted (`lost`), receipted twice (`duplicate`), included in an
//! earlier block than a transaction submitted before them
//! (`out_of_order`), and receipt ids it never sent (`unknown`).
// Everything here reads bytes from the network: frame-path views and
// checked gets, never an index that can panic.
#![deny(clippy::indexing_slicing)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use dataplane::path::{open_indication, Refused};
use dataplane::session::{Role, SessionTable};
use dataplane::verdict::DropReason;
use dataplane::wire::receipt::Receipt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::plan::{Plan, TxPool};

/// RECEIPT's content kind.
pub const CONTENT_RECEIPT: u8 = 0x43;

/// Counts of receipt frames and ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptCounts {
    /// Receipt frames opened.
    pub frames: u64,
    /// Transaction ids they carried.
    pub ids: u64,
    /// Ids of transactions this run sent, first receipt.
    pub matched: u64,
    /// Ids receipted again.
    pub duplicate: u64,
    /// Ids this run never sent.
    pub unknown: u64,
    /// Frames that did not open or parse as a receipt.
    pub bad_frames: u64,
    /// Receipt frames whose counter did not increase for their session.
    pub stale_counter: u64,
}

struct Inner {
    counts: ReceiptCounts,
    latency_us: Histogram<u64>,
    /// Last relay-to-client counter per session.
    last_counter: HashMap<u16, u64>,
    /// Decompressed bodies.
    scratch: Vec<u8>,
}

/// Shared by the senders (stamps) and the receivers (receipts).
pub struct Tracker {
    epoch: Instant,
    index: HashMap<[u8; 32], u32>,
    /// ns since `epoch` + 1 when sent; 0 = not sent.
    submitted: Vec<AtomicU64>,
    /// Block height + 1 of the first receipt; 0 = none.
    included: Vec<AtomicU64>,
    /// The client end's receive halves: the plan's relay-to-client keys
    /// and replay windows.
    sessions: SessionTable,
    inner: Mutex<Inner>,
}

impl Tracker {
    pub fn new(plan: &Plan, pool: &TxPool) -> Tracker {
        Tracker {
            epoch: Instant::now(),
            index: pool.ids().iter().enumerate().map(|(j, id)| (*id, j as u32)).collect(),
            submitted: (0..pool.len()).map(|_| AtomicU64::new(0)).collect(),
            included: (0..pool.len()).map(|_| AtomicU64::new(0)).collect(),
            sessions: {
                let mut t = SessionTable::new(Role::Client);
                for s in &plan.sessions {
                    // Plan session ids are below 65535 by construction.
                    let _ = t.install(u32::from(s.id), &s.c2r, &s.r2c);
                }
                t
            },
            inner: Mutex::new(Inner {
                counts: ReceiptCounts::default(),
                latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                    .unwrap_or_else(|_| Histogram::new(3).unwrap()),
                last_counter: HashMap::new(),
                scratch: Vec::new(),
            }),
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    /// Stamps pool transactions as sent now.
    pub fn stamp(&self, pool_indices: impl Iterator<Item = usize>) {
        let now = self.now_ns();
        for j in pool_indices {
            if let Some(s) = self.submitted.get(j) {
                s.store(now, Ordering::Relaxed);
            }
        }
    }

    /// Handles one received datagram: every frame in it that is a sealed
    /// RECEIPT from one of the plan's sessions, opened in place by the
    /// frame path's client opener.
    pub fn on_datagram(&self, d: &mut [u8]) {
        let now = self.now_ns();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Inner { counts, latency_us, last_counter, scratch } = &mut *guard;
        let mut off = 0;
        while off < d.len() {
            let Some(rest) = d.get_mut(off..) else { break };
            let o = match open_indication(&self.sessions, rest, scratch) {
                Ok(o) => o,
                Err(Refused { reason, len: Some(len) }) => {
                    off += len;
                    match reason {
                        // A counter seen before: the same receipt again.
                        DropReason::Replay => counts.stale_counter += 1,
                        _ => counts.bad_frames += 1,
                    }
                    continue;
                }
                Err(Refused { len: None, .. }) => {
                    counts.bad_frames += 1;
                    return;
                }
            };
            off += o.len;
            // A session's first receipt may carry counter 0 (a negotiated
            // session's counters start at 0).
            if let Some(last) = last_counter.insert(o.session, o.counter) {
                if o.counter <= last {
                    counts.stale_counter += 1;
                    last_counter.insert(o.session, last);
                }
            }
            let receipt = (o.content_kind == CONTENT_RECEIPT).then(|| Receipt::new_checked(o.body).ok()).flatten();
            let Some(r) = receipt else {
                counts.bad_frames += 1;
                continue;
            };
            counts.frames += 1;
            let height = r.height();
            for id in r.ids() {
                counts.ids += 1;
                let Some(j) = self.index.get(&id).map(|j| *j as usize) else {
                    counts.unknown += 1;
                    continue;
                };
                let (Some(included), Some(submitted)) = (self.included.get(j), self.submitted.get(j)) else {
                    counts.unknown += 1;
                    continue;
                };
                if included.compare_exchange(0, height + 1, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                    counts.duplicate += 1;
                    continue;
                }
                counts.matched += 1;
                let sent = submitted.load(Ordering::Relaxed);
                if sent != 0 {
                    let us = now.saturating_sub(sent) / 1000;
                    let _ = latency_us.record(us.max(1));
                }
            }
        }
    }

    pub fn counts(&self) -> ReceiptCounts {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).counts
    }

    /// (p50, p99) in µs so far.
    pub fn p50_p99(&self) -> (u64, u64) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (g.latency_us.value_at_quantile(0.5), g.latency_us.value_at_quantile(0.99))
    }

    /// The final report: `sent` valid transactions were sent.
    pub fn report(&self, sent: u64) -> Value {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Out of order: by submission time, a transaction included in an
        // earlier block than one submitted before it.
        let mut by_submit: Vec<(u64, u64)> = self
            .submitted
            .iter()
            .zip(&self.included)
            .filter_map(|(s, h)| {
                let (s, h) = (s.load(Ordering::Relaxed), h.load(Ordering::Relaxed));
                (s != 0 && h != 0).then_some((s, h))
            })
            .collect();
        by_submit.sort_unstable();
        let mut max_h = 0;
        let mut ooo = 0u64;
        for (_, h) in by_submit {
            if h < max_h {
                ooo += 1;
            }
            max_h = max_h.max(h);
        }
        let c = g.counts;
        let h = &g.latency_us;
        let q = |x: f64| if h.is_empty() { 0 } else { h.value_at_quantile(x) };
        json!({
            "frames": c.frames,
            "ids": c.ids,
            "matched": c.matched,
            "lost": sent.saturating_sub(c.matched),
            "duplicate": c.duplicate,
            "out_of_order": ooo,
            "unknown": c.unknown,
            "bad_frames": c.bad_frames,
            "stale_counter": c.stale_counter,
            "latency_us": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999), "max": h.max()},
        })
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use dataplane::crypto::AeadKey;
    use dataplane::emit::{emit_frame, FrameSpec};
    use dataplane::wire::mcs::KIND_INDICATION;

    fn receipt(plan: &Plan, session: u16, counter: u64, height: u64, ids: &[[u8; 32]]) -> Vec<u8> {
        let mut body = height.to_le_bytes().to_vec();
        body.extend_from_slice(&(ids.len() as u16).to_le_bytes());
        for id in ids {
            body.extend_from_slice(id);
        }
        let spec = FrameSpec { kind: KIND_INDICATION, content_kind: CONTENT_RECEIPT, ..FrameSpec::tx_batch(session) };
        let key = AeadKey::new(&plan.sessions[session as usize].r2c);
        let mut out = Vec::new();
        emit_frame(&spec, &body, Some((&key, counter)), &mut out).unwrap();
        out
    }

    proptest::proptest! {
        /// Whatever arrives on the generator's sockets (the network is not
        /// trusted): no panic, and every id counted once in one class.
        #[test]
        fn hostile_datagrams_never_panic(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1600),
            flips in proptest::collection::vec((0usize..2000, proptest::prelude::any::<u8>()), 0..4),
            n_ids in 0usize..5,
        ) {
            let plan = Plan::from_seed(4, 1, 1, 2, 100);
            let pool = plan.pool(2);
            let t = Tracker::new(&plan, &pool);
            let mut d = raw.clone();
            t.on_datagram(&mut d);
            let ids: Vec<[u8; 32]> = (0..n_ids).map(|i| if i % 2 == 0 { pool.id(i % 4) } else { [i as u8; 32] }).collect();
            let mut d = receipt(&plan, 0, 1 << 40, 1, &ids);
            for (at, x) in &flips {
                let l = d.len();
                d[at % l] ^= x;
            }
            t.on_datagram(&mut d);
            let c = t.counts();
            proptest::prop_assert_eq!(c.ids, c.matched + c.duplicate + c.unknown);
            proptest::prop_assert!(c.matched <= pool.len() as u64);
        }
    }

    #[test]
    fn receipts_are_matched_and_classified() {
        let plan = Plan::from_seed(9, 1, 2, 2, 100);
        let pool = plan.pool(3);
        let t = Tracker::new(&plan, &pool);
        for j in 0..4 {
            t.stamp(j..j + 1);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Block 2 has txs 0 and 2; block 1 (arriving later) has tx 1: out of order.
        let mut d = receipt(&plan, 0, 10, 2, &[pool.id(0), pool.id(2)]);
        d.extend(receipt(&plan, 0, 11, 1, &[pool.id(1), [7; 32]]));
        t.on_datagram(&mut d);
        // Tx 0 again (duplicate), with a counter that went backwards.
        let mut d = receipt(&plan, 0, 5, 3, &[pool.id(0)]);
        t.on_datagram(&mut d);
        // A session's first receipt under counter 0 (a negotiated
        // session's first) is not stale.
        let mut d = receipt(&plan, 1, 0, 3, &[pool.id(3)]);
        t.on_datagram(&mut d);
        // Sealed with the wrong session's key: not opened.
        let mut d = receipt(&plan, 1, 1, 3, &[pool.id(3)]);
        d[9] = 0;
        t.on_datagram(&mut d);
        let c = t.counts();
        assert_eq!(
            c,
            ReceiptCounts { frames: 4, ids: 6, matched: 4, duplicate: 1, unknown: 1, bad_frames: 1, stale_counter: 1 }
        );
        let r = t.report(5);
        assert_eq!(r["lost"], 1);
        assert_eq!(r["out_of_order"], 1);
        assert!(r["latency_us"]["p50"].as_u64().unwrap() >= 2000);
    }

    /// Pending receipts are keyed by the transaction id (SHA-256 of the
    /// bytes before the signature, as the node reports it), not by anything
    /// taken from the signature: a receipt naming a transaction's R is
    /// unknown, one naming its id matches, and a copy of the transaction
    /// with another signature has the same id.
    #[test]
    fn receipts_are_keyed_by_transaction_id() {
        use sha2::{Digest, Sha256};
        let plan = Plan::from_seed(10, 1, 1, 2, 100);
        let pool = plan.pool(2);
        let t = Tracker::new(&plan, &pool);
        t.stamp(0..pool.len());
        let tx0 = pool.tx(0);
        let id: [u8; 32] = Sha256::digest(dataplane::wire::tx::unsigned_part(tx0)).into();
        assert_eq!(id, pool.id(0));
        let r: [u8; 32] = dataplane::wire::tx::signature_part(tx0)[..32].try_into().unwrap();
        let mut d = receipt(&plan, 0, 20, 1, &[r]);
        t.on_datagram(&mut d);
        assert_eq!((t.counts().matched, t.counts().unknown), (0, 1));
        let mut d = receipt(&plan, 0, 21, 1, &[id]);
        t.on_datagram(&mut d);
        assert_eq!((t.counts().matched, t.counts().unknown), (1, 1));
        // Re-signed bytes (another signature), same id: the same pending
        // entry, already receipted.
        let mut other = tx0.to_vec();
        let l = other.len();
        other[l - 1] ^= 1;
        let id2: [u8; 32] = Sha256::digest(dataplane::wire::tx::unsigned_part(&other)).into();
        let mut d = receipt(&plan, 0, 22, 1, &[id2]);
        t.on_datagram(&mut d);
        assert_eq!((t.counts().matched, t.counts().duplicate), (1, 1));
    }
}
