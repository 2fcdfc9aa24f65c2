//! Signature batches across bursts. Ed25519 batch verification gets
//! cheaper per signature as the batch grows (ed25519-zebra: about twice the
//! rate at 256 signatures as at 32), while a burst of single-transaction
//! frames brings 32 at most. So a data core judges bursts with
//! [`FramePath::judge_burst`](crate::FramePath::judge_burst), copies each
//! burst's transactions that wait for their signatures into [`Pending`],
//! and verifies them together with [`FramePath::settle`](crate::FramePath::settle)
//! when [`BatchPolicy::due`] says so: once `max_sigs` signatures wait, or
//! once the oldest has waited `budget_ns`.
//!
//! The plaintext of a waiting transaction lives in [`Pending`]'s own
//! arena, copied out of the burst (the datagram buffers go back to the
//! NIC or the kernel with every burst). It holds at most `max_sigs` plus
//! one burst of transactions ([`Pending::bound_bytes`]); it grows to that
//! high-water mark once and is reused.

use crate::path::{Burst, FrameRecord};
use crate::shard::Route;
use crate::wire::tx::MAX_TX_LEN;

/// When a core verifies what waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Signatures that make a batch: verified as soon as this many wait
    /// (after the burst that reached it, so a batch may hold one burst
    /// more).
    pub max_sigs: usize,
    /// Longest a transaction waits for its batch, in nanoseconds.
    pub budget_ns: u64,
}

impl BatchPolicy {
    /// Default batch: 256 signatures (measured: ed25519-zebra's rate per
    /// signature grows little past it, see `docs/NODE.md`).
    pub const DEFAULT_SIGS: usize = 256;
    /// Default budget: 500 µs.
    pub const DEFAULT_BUDGET_NS: u64 = 500_000;
    /// Largest batch a node accepts in its configuration.
    pub const MAX_SIGS: usize = 1024;
    /// Longest budget a node accepts in its configuration (100 ms).
    pub const MAX_BUDGET_NS: u64 = 100_000_000;

    /// One burst, one batch: every burst is verified as it comes (the
    /// frame path's behaviour without batching).
    pub const PER_BURST: BatchPolicy = BatchPolicy { max_sigs: 0, budget_ns: 0 };

    /// Whether the `queued` signatures waiting, the oldest received at
    /// `oldest_ns`, are to be verified now (`now_ns`).
    #[inline]
    pub fn due(&self, queued: usize, oldest_ns: Option<u64>, now_ns: u64) -> bool {
        match oldest_ns {
            None => false,
            Some(o) => queued >= self.max_sigs || now_ns.saturating_sub(o) >= self.budget_ns,
        }
    }

    /// How long an idle core may block waiting for packets: `idle_ns`, or
    /// less when a transaction waits and its budget ends sooner.
    #[inline]
    pub fn idle_wait_ns(&self, oldest_ns: Option<u64>, now_ns: u64, idle_ns: u64) -> u64 {
        match oldest_ns {
            None => idle_ns,
            Some(o) => idle_ns.min((o.saturating_add(self.budget_ns)).saturating_sub(now_ns)),
        }
    }
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy { max_sigs: Self::DEFAULT_SIGS, budget_ns: Self::DEFAULT_BUDGET_NS }
    }
}

/// A transaction waiting for its signature ([`Pending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingTx {
    at: u32,
    len: u32,
    /// SHA-256 of the bytes before the signature.
    pub id: [u8; 32],
    /// When its datagram was received (nanoseconds since the node's epoch).
    pub rx_ns: u64,
    /// Where its RECEIPT goes.
    pub route: Route,
}

/// Transactions judged in earlier bursts whose signatures are queued in the
/// frame path's verifier, in the order they were queued (so the verdicts
/// of [`FramePath::settle`](crate::FramePath::settle) line up with them).
#[derive(Debug, Default)]
pub struct Pending {
    bytes: Vec<u8>,
    txs: Vec<PendingTx>,
}

impl Pending {
    /// Room for `txs` transactions of average size before growing.
    pub fn with_capacity(txs: usize) -> Self {
        Pending { bytes: Vec::with_capacity(txs * 256), txs: Vec::with_capacity(txs) }
    }

    /// The most bytes a core's pending arena holds with batches of
    /// `max_sigs`: `max_sigs` transactions plus one burst of
    /// `burst_txs` more, each at most [`MAX_TX_LEN`] bytes.
    pub fn bound_bytes(max_sigs: usize, burst_txs: usize) -> usize {
        (max_sigs + burst_txs) * MAX_TX_LEN
    }

    /// Copies the transactions of a judged burst (`out.txs`, whose bytes
    /// are in `datagrams` and the burst's arena) to the end of the queue,
    /// each with its receive time and the route `route` gives its frame.
    pub fn take_burst<D: AsRef<[u8]>>(
        &mut self,
        out: &Burst,
        datagrams: &[D],
        rx_ns: u64,
        mut route: impl FnMut(&FrameRecord) -> Route,
    ) {
        for t in &out.txs {
            let bytes = out.tx_bytes(datagrams, t);
            let r = out.frames.get(t.frame as usize).map(&mut route).unwrap_or_default();
            let at = self.bytes.len() as u32;
            self.bytes.extend_from_slice(bytes);
            self.txs.push(PendingTx { at, len: bytes.len() as u32, id: t.id, rx_ns, route: r });
        }
    }

    /// The waiting (after [`FramePath::settle`](crate::FramePath::settle):
    /// the verified) transactions, in order.
    pub fn txs(&self) -> &[PendingTx] {
        &self.txs
    }

    /// The bytes of `t`, one of [`txs`](Self::txs).
    pub fn tx_bytes(&self, t: &PendingTx) -> &[u8] {
        self.bytes.get(t.at as usize..(t.at + t.len) as usize).unwrap_or(&[])
    }

    /// Transactions waiting.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The receive time of the oldest waiting transaction.
    pub fn oldest_ns(&self) -> Option<u64> {
        self.txs.first().map(|t| t.rx_ns)
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Forgets everything (keeps the capacity).
    pub fn clear(&mut self) {
        self.txs.clear();
        self.bytes.clear();
    }

    /// Keeps the transactions for which `keep` says so, in order (their
    /// bytes stay where they are until [`clear`](Self::clear)).
    pub(crate) fn retain(&mut self, keep: impl FnMut(&PendingTx) -> bool) {
        self.txs.retain(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget on a fake clock: nothing waits, nothing is due and an
    /// idle core blocks its full idle wait; a lone transaction is due
    /// exactly when its budget ends and the idle wait never overshoots it;
    /// a full batch is due at once.
    #[test]
    fn a_lone_transaction_is_verified_within_the_budget() {
        let p = BatchPolicy { max_sigs: 256, budget_ns: 500_000 };
        let idle = 5_000_000;
        assert!(!p.due(0, None, 10));
        assert_eq!(p.idle_wait_ns(None, 10, idle), idle);

        let rx = 1_000_000_000;
        // Simulate an idle core: poll, nothing comes, block as allowed.
        let mut now = rx + 1_000;
        let mut waits = 0;
        while !p.due(1, Some(rx), now) {
            let w = p.idle_wait_ns(Some(rx), now, idle);
            assert!(w > 0 && now + w <= rx + p.budget_ns, "waits past the budget");
            now += w + 10; // the wake-up is a little late, as on a real machine
            waits += 1;
            assert!(waits < 4, "never due");
        }
        assert!(now - rx >= p.budget_ns && now - rx <= p.budget_ns + 10 + 1_000);
        assert_eq!(p.idle_wait_ns(Some(rx), rx + 600_000, idle), 0);

        assert!(p.due(256, Some(rx), rx));
        assert!(!p.due(255, Some(rx), rx + 499_999));
        assert!(BatchPolicy::PER_BURST.due(1, Some(rx), rx));
    }
}
