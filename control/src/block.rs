//! Blocks and the block builder: the applied transactions, cut into
//! blocks on a timer or at a size cap, each header committing to its
//! parent and to its transactions' Merkle root.
//!
//! A header has a fixed 84-byte little-endian encoding and its hash is the
//! SHA-256 of those bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | height (u64 LE); block 1 is the first after genesis |
//! | 8 | 32 | parent: hash of block `height - 1`, the genesis hash for block 1 |
//! | 40 | 8 | timestamp_ms (u64 LE), Unix milliseconds when sealed |
//! | 48 | 4 | tx_count (u32 LE) |
//! | 52 | 32 | merkle_root ([`crate::merkle::root`] over the transactions) |
#![deny(clippy::indexing_slicing)]

use sha2::{Digest, Sha256};

use crate::merkle::{self, Hash};

/// Length of [`BlockHeader::encode`]'s output.
pub const HEADER_LEN: usize = 84;

/// What a block commits to. Its hash is the next block's `parent`, so a
/// block's hash pins the whole chain before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockHeader {
    /// 1 for the first block after genesis, then +1 per block.
    pub height: u64,
    /// Hash of the previous block's header (the genesis hash for height 1).
    pub parent: Hash,
    /// When the block was sealed, Unix milliseconds; never decreases along
    /// a chain built by one [`BlockBuilder`].
    pub timestamp_ms: u64,
    /// Number of transactions in the block.
    pub tx_count: u32,
    /// RFC 6962 Merkle root of the transactions' bytes.
    pub merkle_root: Hash,
}

impl BlockHeader {
    /// The fixed encoding in the module docs: what is hashed, and what a
    /// later network or storage format carries.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let parts: [&[u8]; 5] = [
            &self.height.to_le_bytes(),
            &self.parent,
            &self.timestamp_ms.to_le_bytes(),
            &self.tx_count.to_le_bytes(),
            &self.merkle_root,
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = b.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        b
    }

    /// The inverse of [`encode`](BlockHeader::encode), so that a header
    /// read back from storage or the network hashes identically.
    pub fn decode(b: &[u8; HEADER_LEN]) -> BlockHeader {
        let a8 = |at: usize| -> [u8; 8] { b.get(at..at + 8).and_then(|s| s.try_into().ok()).unwrap_or([0; 8]) };
        let a32 = |at: usize| -> [u8; 32] { b.get(at..at + 32).and_then(|s| s.try_into().ok()).unwrap_or([0; 32]) };
        let a4: [u8; 4] = b.get(48..52).and_then(|s| s.try_into().ok()).unwrap_or([0; 4]);
        BlockHeader {
            height: u64::from_le_bytes(a8(0)),
            parent: a32(8),
            timestamp_ms: u64::from_le_bytes(a8(40)),
            tx_count: u32::from_le_bytes(a4),
            merkle_root: a32(52),
        }
    }

    /// SHA-256 of the 84-byte encoding: the block's identity and its child's
    /// `parent`.
    pub fn hash(&self) -> Hash {
        Sha256::digest(self.encode()).into()
    }
}

/// A sealed block: its header and its transactions in order. The
/// transactions are kept in one buffer with end offsets rather than one
/// `Vec` each, so a 10 000-transaction block is two allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    header: BlockHeader,
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Block {
    /// Builds a block over `txs`, computing `tx_count` and the Merkle root,
    /// for callers other than [`BlockBuilder`] (a finalizer re-forming a
    /// block, tests). Returns `None` if there are more than `u32::MAX`
    /// transactions, which a header cannot count.
    pub fn new<'a>(
        height: u64,
        parent: Hash,
        timestamp_ms: u64,
        txs: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Block> {
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for t in txs {
            data.extend_from_slice(t);
            ends.push(data.len());
        }
        Block::seal(height, parent, timestamp_ms, data, ends, None)
    }

    /// A block of `data` cut at `ends`, committing to `root` if the caller
    /// computed it from the leaf hashes, else to the root computed here.
    fn seal(
        height: u64,
        parent: Hash,
        timestamp_ms: u64,
        data: Vec<u8>,
        ends: Vec<usize>,
        root: Option<Hash>,
    ) -> Option<Block> {
        let tx_count = u32::try_from(ends.len()).ok()?;
        let mut b =
            Block { header: BlockHeader { height, parent, timestamp_ms, tx_count, merkle_root: [0; 32] }, data, ends };
        b.header.merkle_root = match root {
            Some(r) => r,
            None => merkle::root_with(&mut Vec::new(), b.txs()),
        };
        Some(b)
    }

    /// The block's buffers, emptied, for [`BlockBuilder::recycle`].
    pub fn into_buffers(self) -> (Vec<u8>, Vec<usize>) {
        let (mut data, mut ends) = (self.data, self.ends);
        data.clear();
        ends.clear();
        (data, ends)
    }

    /// The header (read-only: it must keep matching the transactions).
    pub fn header(&self) -> &BlockHeader {
        &self.header
    }

    /// The header's hash.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the block is empty (only with `empty_blocks`).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Transaction `i`'s bytes.
    pub fn tx(&self, i: usize) -> Option<&[u8]> {
        let start = if i == 0 { 0 } else { *self.ends.get(i - 1)? };
        self.data.get(start..*self.ends.get(i)?)
    }

    /// The transactions in block order; an `ExactSizeIterator`, so it feeds
    /// [`merkle::root`] directly.
    pub fn txs(&self) -> Txs<'_> {
        Txs { block: self, next: 0 }
    }

    /// Total bytes of the transactions.
    pub fn tx_bytes(&self) -> usize {
        self.data.len()
    }

    /// Whether `tx_count` and `merkle_root` match the transactions: what a
    /// node checks on a block it did not build.
    pub fn is_consistent(&self) -> bool {
        self.header.tx_count as usize == self.ends.len() && merkle::root(self.txs()) == self.header.merkle_root
    }
}

/// Iterator over a block's transactions, from [`Block::txs`].
#[derive(Debug, Clone)]
pub struct Txs<'a> {
    block: &'a Block,
    next: usize,
}

impl<'a> Iterator for Txs<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let t = self.block.tx(self.next)?;
        self.next += 1;
        Some(t)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.block.ends.len().saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Txs<'_> {}

/// When blocks are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    /// A block is sealed once this long has passed since the previous seal
    /// (and there is something to seal). Default 200 ms.
    pub interval_ms: u64,
    /// A block is sealed at once when this many transactions wait, without
    /// waiting for the interval; larger backlogs become several blocks.
    /// Default 10 000; 0 is treated as 1.
    pub max_txs: u32,
    /// Whether an interval with no transactions still produces a (empty)
    /// block, as a liveness heartbeat. Default false.
    pub empty_blocks: bool,
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig { interval_ms: 200, max_txs: 10_000, empty_blocks: false }
    }
}

/// Collects applied transactions and seals them into blocks that chain
/// from the genesis hash. It has no clock: the caller passes `now_ms` to
/// [`poll`](BlockBuilder::poll), and the first interval runs from the first
/// `poll` or [`start`](BlockBuilder::start).
#[derive(Debug)]
pub struct BlockBuilder {
    cfg: BlockConfig,
    next_height: u64,
    parent: Hash,
    last_seal_ms: Option<u64>,
    last_timestamp_ms: u64,
    data: Vec<u8>,
    ends: Vec<usize>,
    /// The leaf hash of each waiting transaction, computed as it arrives so
    /// that a seal only folds the tree.
    leaves: Vec<Hash>,
    /// Buffers of blocks the caller is done with, for the next blocks.
    spare: Vec<(Vec<u8>, Vec<usize>)>,
}

impl BlockBuilder {
    /// A builder whose first block is height 1 with parent `genesis_hash`
    /// ([`crate::genesis::Genesis::hash`]).
    pub fn new(cfg: BlockConfig, genesis_hash: Hash) -> BlockBuilder {
        BlockBuilder {
            cfg,
            next_height: 1,
            parent: genesis_hash,
            last_seal_ms: None,
            last_timestamp_ms: 0,
            data: Vec::new(),
            ends: Vec::new(),
            leaves: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Takes back a sealed block's buffers (kept for the next blocks, at
    /// most a few): memory already touched, so filling the next block
    /// costs no page faults. Optional.
    pub fn recycle(&mut self, buffers: (Vec<u8>, Vec<usize>)) {
        if self.spare.len() < 4 {
            self.spare.push(buffers);
        }
    }

    /// Adds one applied transaction to the next block. The ledger's order
    /// of application is the block order.
    pub fn push(&mut self, tx: &[u8]) {
        self.data.extend_from_slice(tx);
        self.ends.push(self.data.len());
        self.leaves.push(merkle::leaf_hash(tx));
    }

    /// Transactions waiting for the next seal.
    pub fn pending(&self) -> usize {
        self.ends.len()
    }

    /// Starts the interval clock at `now_ms` if it is not running yet, so
    /// that the first block is timed from the first transaction rather than
    /// the first poll.
    pub fn start(&mut self, now_ms: u64) {
        self.last_seal_ms.get_or_insert(now_ms);
    }

    /// Seals a block if one is due: at once if `max_txs` transactions wait
    /// (the block takes the first `max_txs`), otherwise when `interval_ms`
    /// has passed since the last seal and there is a transaction (or
    /// `empty_blocks` is on). To drain a backlog of more than `max_txs`,
    /// call again while [`is_full`](BlockBuilder::is_full).
    pub fn poll(&mut self, now_ms: u64) -> Option<Block> {
        let since = *self.last_seal_ms.get_or_insert(now_ms);
        let cap = self.cap();
        if self.ends.len() >= cap {
            return self.seal(cap, now_ms);
        }
        let due = now_ms.saturating_sub(since) >= self.cfg.interval_ms;
        if due && (!self.ends.is_empty() || self.cfg.empty_blocks) {
            return self.seal(self.ends.len(), now_ms);
        }
        None
    }

    /// Seals whatever waits (up to `max_txs`), regardless of the interval:
    /// for shutdown, so that no applied transaction is left out of a block.
    /// Never seals an empty block. Call again while it returns `Some`.
    pub fn seal_now(&mut self, now_ms: u64) -> Option<Block> {
        if self.ends.is_empty() {
            return None;
        }
        let n = self.ends.len().min(self.cap());
        self.seal(n, now_ms)
    }

    /// Whether `max_txs` transactions wait, so that [`poll`] would seal at
    /// once: a caller draining a backlog loops while this holds (looping on
    /// `poll` alone would not end with `interval_ms == 0` and
    /// `empty_blocks`).
    ///
    /// [`poll`]: BlockBuilder::poll
    pub fn is_full(&self) -> bool {
        self.ends.len() >= self.cap()
    }

    /// Height of the next block to be sealed.
    pub fn next_height(&self) -> u64 {
        self.next_height
    }

    /// Parent hash of the next block to be sealed (the last sealed block's
    /// hash, or the genesis hash).
    pub fn parent(&self) -> Hash {
        self.parent
    }

    fn cap(&self) -> usize {
        self.cfg.max_txs.max(1) as usize
    }

    /// Seals the first `n` pending transactions (`n <= pending()`).
    fn seal(&mut self, n: usize, now_ms: u64) -> Option<Block> {
        let (data, ends) = if n >= self.ends.len() {
            // The next block starts with room for as much as this one: a
            // buffer that grew by doubling copied a megabyte into fresh,
            // unfaulted memory in the middle of a burst.
            let (dc, ec) = (self.data.len(), self.ends.len());
            let (mut data, mut ends) = self.spare.pop().unwrap_or_default();
            data.reserve(dc);
            ends.reserve(ec);
            (std::mem::replace(&mut self.data, data), std::mem::replace(&mut self.ends, ends))
        } else {
            let cut = n.checked_sub(1).and_then(|i| self.ends.get(i)).copied().unwrap_or(0);
            let rest_data = self.data.split_off(cut);
            let mut rest_ends = self.ends.split_off(n);
            for e in &mut rest_ends {
                *e -= cut;
            }
            (std::mem::replace(&mut self.data, rest_data), std::mem::replace(&mut self.ends, rest_ends))
        };
        let mut rest = self.leaves.split_off(n.min(self.leaves.len()));
        rest.reserve(n);
        let mut leaves = std::mem::replace(&mut self.leaves, rest);
        let root = merkle::root_of_leaves(&mut leaves);
        let timestamp = now_ms.max(self.last_timestamp_ms);
        let block = Block::seal(self.next_height, self.parent, timestamp, data, ends, Some(root))?;
        self.last_seal_ms = Some(now_ms);
        self.last_timestamp_ms = timestamp;
        self.next_height += 1;
        self.parent = block.hash();
        Some(block)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const G: Hash = [7; 32];

    fn cfg(interval_ms: u64, max_txs: u32, empty_blocks: bool) -> BlockConfig {
        BlockConfig { interval_ms, max_txs, empty_blocks }
    }

    fn tx(i: u32) -> Vec<u8> {
        // Different lengths, so offsets matter.
        let mut v = i.to_le_bytes().to_vec();
        v.resize(4 + (i as usize % 5), 0xAB);
        v
    }

    #[test]
    fn header_encoding() {
        let h = BlockHeader {
            height: 0x0102030405060708,
            parent: [0xAA; 32],
            timestamp_ms: 0x1112131415161718,
            tx_count: 0x21222324,
            merkle_root: [0xBB; 32],
        };
        let e = h.encode();
        assert_eq!(e.len(), 84);
        assert_eq!(&e[0..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&e[8..40], &[0xAA; 32]);
        assert_eq!(&e[40..48], &[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        assert_eq!(&e[48..52], &[0x24, 0x23, 0x22, 0x21]);
        assert_eq!(&e[52..84], &[0xBB; 32]);
        assert_eq!(BlockHeader::decode(&e), h);
        assert_eq!(h.hash(), <[u8; 32]>::from(Sha256::digest(e)));
    }

    #[test]
    fn heights_and_parents_chain() {
        let mut b = BlockBuilder::new(cfg(100, 1000, false), G);
        let mut blocks = Vec::new();
        let mut t = 1_000;
        for i in 0..5u32 {
            b.push(&tx(i));
            b.push(&tx(i + 100));
            assert!(b.poll(t).is_none());
            t += 100;
            blocks.push(b.poll(t).expect("interval passed"));
        }
        assert_eq!(blocks[0].header().height, 1);
        assert_eq!(blocks[0].header().parent, G);
        for w in blocks.windows(2) {
            assert_eq!(w[1].header().height, w[0].header().height + 1);
            assert_eq!(w[1].header().parent, w[0].hash());
            assert!(w[1].header().timestamp_ms >= w[0].header().timestamp_ms);
        }
        for (i, blk) in blocks.iter().enumerate() {
            assert_eq!(blk.len(), 2);
            assert_eq!(blk.tx(0), Some(&tx(i as u32)[..]));
            assert_eq!(blk.tx(1), Some(&tx(i as u32 + 100)[..]));
            assert!(blk.is_consistent());
        }
        assert_eq!(b.next_height(), 6);
        assert_eq!(b.parent(), blocks[4].hash());
    }

    #[test]
    fn interval_rule() {
        let mut b = BlockBuilder::new(cfg(200, 1000, false), G);
        assert!(b.poll(0).is_none()); // starts the clock at 0
        b.push(&tx(1));
        assert!(b.poll(199).is_none());
        let blk = b.poll(200).unwrap();
        assert_eq!((blk.header().timestamp_ms, blk.len()), (200, 1));
        // Next interval runs from the last seal (200).
        b.push(&tx(2));
        assert!(b.poll(399).is_none());
        assert!(b.poll(400).is_some());
        // Nothing waiting: no block, and the clock does not move, so a late
        // transaction is sealed at the next poll.
        assert!(b.poll(1000).is_none());
        b.push(&tx(3));
        assert_eq!(b.poll(1001).unwrap().header().timestamp_ms, 1001);
    }

    #[test]
    fn start_times_the_first_block() {
        let mut b = BlockBuilder::new(cfg(200, 1000, false), G);
        b.start(50);
        b.start(120); // already running
        b.push(&tx(1));
        assert!(b.poll(249).is_none());
        assert!(b.poll(250).is_some());
    }

    #[test]
    fn cap_seals_at_once_and_splits_backlog() {
        let mut b = BlockBuilder::new(cfg(1_000_000, 3, false), G);
        assert!(b.poll(0).is_none());
        for i in 0..8 {
            b.push(&tx(i));
        }
        let b1 = b.poll(5).unwrap();
        let b2 = b.poll(5).unwrap();
        assert!(b.poll(5).is_none(), "2 left, interval not passed");
        assert_eq!(b.pending(), 2);
        let b3 = b.seal_now(6).unwrap();
        assert!(b.seal_now(6).is_none());
        let all: Vec<&[u8]> = [&b1, &b2, &b3].iter().flat_map(|blk| blk.txs()).collect();
        let want: Vec<Vec<u8>> = (0..8).map(tx).collect();
        assert_eq!(all, want.iter().map(|v| &v[..]).collect::<Vec<_>>());
        assert_eq!([b1.len(), b2.len(), b3.len()], [3, 3, 2]);
        for blk in [&b1, &b2, &b3] {
            assert!(blk.is_consistent());
            assert_eq!(blk.header().tx_count as usize, blk.len());
        }
        assert_eq!(b3.header().parent, b2.hash());
    }

    #[test]
    fn empty_block_rule() {
        let mut off = BlockBuilder::new(cfg(100, 10, false), G);
        let mut on = BlockBuilder::new(cfg(100, 10, true), G);
        assert!(off.poll(0).is_none() && on.poll(0).is_none());
        assert!(off.poll(100).is_none());
        let e = on.poll(100).unwrap();
        assert!(e.is_empty());
        assert_eq!(e.header().tx_count, 0);
        assert_eq!(e.header().merkle_root, merkle::empty_root());
        assert!(on.poll(150).is_none());
        assert!(on.poll(200).is_some());
        // seal_now never makes an empty block, even with empty_blocks.
        assert!(on.seal_now(10_000).is_none());
    }

    #[test]
    fn root_matches_merkle_and_timestamps_never_decrease() {
        let mut b = BlockBuilder::new(cfg(10, 100, false), G);
        assert!(b.poll(1000).is_none());
        for i in 0..37 {
            b.push(&tx(i));
        }
        let blk = b.poll(1010).unwrap();
        let want: Vec<Vec<u8>> = (0..37).map(tx).collect();
        assert_eq!(blk.header().merkle_root, merkle::root(want.iter().map(|v| &v[..])));
        assert_eq!(blk.tx_bytes(), want.iter().map(Vec::len).sum::<usize>());
        // A clock that steps back does not produce an older timestamp.
        b.push(&tx(99));
        let late = b.seal_now(500).unwrap();
        assert_eq!(late.header().timestamp_ms, 1010);
        let same = Block::new(1, G, 1010, want.iter().map(|v| &v[..])).unwrap();
        assert_eq!(same, blk);
    }
}
