//! The plain types that travel between a data core and the control
//! thread: batches of accepted transactions on single-producer
//! single-consumer rings (one per (core, shard) link, with a return ring
//! that recycles the batches) and where each transaction's RECEIPT goes.
//! The control plane's commands to the cores are in [`crate::command`].

use crate::peer::Peer;

/// Where a transaction's RECEIPT goes: the session and channel of its
/// frame and the source address of its datagram ([`Peer::NONE`] when the
/// backend reads none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Route {
    /// Session id (MCS initiator) of the transaction's frame.
    pub session: u16,
    /// MCS channel of the transaction's frame; the RECEIPT goes back on it.
    pub channel: u16,
    /// Source address of the transaction's datagram.
    pub peer: Peer,
    /// The session's generation ([`crate::session::RxKey::generation`]):
    /// an answer goes out only while the same holder has the id.
    pub generation: u32,
}

/// [`ShardTx::route`] of a transaction pushed without one.
pub const NO_ROUTE: u32 = u32::MAX;

/// Most transactions a batch collects while its shard's ring is full
/// before they are dropped as `ring_full`.
pub const HOLD_MAX_TXS: usize = 1024;

/// One accepted transaction inside a [`ShardBatch`].
#[derive(Debug, Clone, Copy)]
pub struct ShardTx {
    /// Offset of the transaction's bytes in [`ShardBatch::bytes`].
    pub off: u32,
    /// Length of the transaction in bytes.
    pub len: u32,
    /// Transaction id: SHA-256 of its bytes before the signature.
    pub id: [u8; 32],
    /// When its datagram's burst was received (ns since the node's epoch).
    pub rx_ns: u64,
    /// Index into the batch's routes ([`ShardBatch::route`]), or
    /// [`NO_ROUTE`]. The transactions of one datagram share one route, so a
    /// batch stores each route once per run of transactions, not per
    /// transaction.
    pub route: u32,
}

/// Transactions for one shard from one burst of one core; recycled.
#[derive(Debug, Default)]
pub struct ShardBatch {
    /// The transactions' bytes, back to back.
    pub bytes: Vec<u8>,
    /// One entry per transaction, in push order.
    pub txs: Vec<ShardTx>,
    /// The routes of the transactions, each run of equal routes stored once.
    pub routes: Vec<Route>,
}

impl ShardBatch {
    /// An empty batch with room for `txs` transactions (and `256 * txs` bytes
    /// of them) before it grows.
    pub fn with_capacity(txs: usize) -> Self {
        ShardBatch {
            bytes: Vec::with_capacity(txs * 256),
            txs: Vec::with_capacity(txs),
            routes: Vec::with_capacity(txs.min(crate::MAX_BURST)),
        }
    }

    /// Empties the batch, keeping its capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.txs.clear();
        self.routes.clear();
    }

    /// Number of transactions in the batch.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// The batch holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Appends a transaction without a route.
    pub fn push(&mut self, tx: &[u8], id: [u8; 32], rx_ns: u64) {
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(tx);
        self.txs.push(ShardTx { off, len: tx.len() as u32, id, rx_ns, route: NO_ROUTE });
    }

    /// Appends a transaction and where its receipt goes. A route equal to
    /// the previous transaction's is not stored again.
    pub fn push_routed(&mut self, tx: &[u8], id: [u8; 32], rx_ns: u64, route: Route) {
        if self.routes.last() != Some(&route) {
            self.routes.push(route);
        }
        let off = self.bytes.len() as u32;
        self.bytes.extend_from_slice(tx);
        let route = (self.routes.len() - 1) as u32;
        self.txs.push(ShardTx { off, len: tx.len() as u32, id, rx_ns, route });
    }

    /// The bytes of `t`, a transaction of this batch.
    pub fn tx(&self, t: &ShardTx) -> &[u8] {
        self.bytes.get(t.off as usize..(t.off + t.len) as usize).unwrap_or(&[])
    }

    /// Where `t`'s receipt goes, if it was pushed with a route.
    pub fn route(&self, t: &ShardTx) -> Option<Route> {
        self.routes.get(t.route as usize).copied()
    }
}

/// Both ends of one (data core, shard) link.
pub struct ShardLink {
    /// Core → shard.
    pub to_shard: rtrb::Producer<Box<ShardBatch>>,
    /// Shard → core: emptied batches coming back.
    pub returned: rtrb::Consumer<Box<ShardBatch>>,
}

/// The shard's end of the same link.
pub struct ShardEnd {
    /// Core → shard: batches of accepted transactions.
    pub from_core: rtrb::Consumer<Box<ShardBatch>>,
    /// Shard → core: batches emptied, back to the core's pool.
    pub give_back: rtrb::Producer<Box<ShardBatch>>,
}

/// Makes a link whose ring to the shard holds `depth` batches, with
/// `depth + 1` batches of `txs` transactions pre-allocated in the core's
/// pool: one more than the ring holds, so that the core can collect
/// transactions while the ring is full (and the return ring holds them all).
pub fn shard_link(depth: usize, txs: usize) -> (ShardLink, ShardEnd, Vec<Box<ShardBatch>>) {
    let (to_shard, from_core) = rtrb::RingBuffer::new(depth);
    let (give_back, returned) = rtrb::RingBuffer::new(depth + 1);
    let pool = (0..=depth).map(|_| Box::new(ShardBatch::with_capacity(txs))).collect();
    (ShardLink { to_shard, returned }, ShardEnd { from_core, give_back }, pool)
}
