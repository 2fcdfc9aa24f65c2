//! Blocks and the block builder: the applied transactions, cut into
//! blocks on a timer or at a size cap, each header committing to its
//! parent and to its transactions' Merkle root.
//!
//! A header has a fixed, versioned little-endian encoding (version 2,
//! 246 bytes) and its hash is the SHA-256 of those bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | version (u16 LE): 2 |
//! | 2 | 8 | height (u64 LE); block 1 is the first after genesis |
//! | 10 | 32 | parent: hash of block `height - 1`, the genesis hash for block 1 |
//! | 42 | 8 | timestamp_ms (u64 LE), Unix milliseconds when sealed |
//! | 50 | 32 | producer: the node key of the node that sealed it (zeros: none) |
//! | 82 | 4 | tx_count (u32 LE) |
//! | 86 | 32 | tx_root ([`crate::merkle::root`] over the transactions) |
//! | 118 | 32 | state_root: the accounts after this block ([`crate::root`]) |
//! | 150 | 32 | validator_set_hash: the seats voting on this block (`crate::bft::ValidatorSet::hash`; zeros without consensus) |
//! | 182 | 32 | prev_commit_hash: hash of the commit section (zeros: none) |
//! | 214 | 32 | evidence_root: hash of the evidence section (zeros: none) |
//!
//! A block of a network of validators may carry, after its transactions,
//! the previous block's commit certificate (which seats signed it: the
//! work the election counts) and equivocation evidence (what slashes a
//! producer); see [`Extension`]. Each section is present exactly when its
//! header hash is not zeros.
//!
//! Every block takes all the transactions applied since the last one, so
//! the state root is the ledger's state right after them and the block's
//! end (fees paid, unbonding released).
#![deny(clippy::indexing_slicing)]

use sha2::{Digest, Sha256};

use crate::merkle::{self, Hash};

/// Length of [`BlockHeader::encode`]'s output.
pub const HEADER_LEN: usize = 246;

/// The header encoding this build writes and reads.
pub const HEADER_VERSION: u16 = 2;

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
    /// The node key of the producer (all zeros: none).
    pub producer: [u8; 32],
    /// Number of transactions in the block.
    pub tx_count: u32,
    /// RFC 6962 Merkle root of the transactions' bytes.
    pub merkle_root: Hash,
    /// The state root after the block ([`crate::root`]).
    pub state_root: Hash,
    /// The hash of the seats that vote on this block (zeros without
    /// consensus).
    pub validator_set_hash: Hash,
    /// The hash of the commit section ([`Extension::commit`]); zeros: none.
    pub prev_commit_hash: Hash,
    /// The hash of the evidence section ([`Extension::evidence`]); zeros:
    /// none.
    pub evidence_root: Hash,
}

impl BlockHeader {
    /// The fixed encoding in the module docs: what is hashed, and what a
    /// later network or storage format carries.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let parts: [&[u8]; 11] = [
            &HEADER_VERSION.to_le_bytes(),
            &self.height.to_le_bytes(),
            &self.parent,
            &self.timestamp_ms.to_le_bytes(),
            &self.producer,
            &self.tx_count.to_le_bytes(),
            &self.merkle_root,
            &self.state_root,
            &self.validator_set_hash,
            &self.prev_commit_hash,
            &self.evidence_root,
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
    /// read back from storage or the network hashes identically. `None`
    /// for another length or version.
    pub fn decode(b: &[u8]) -> Option<BlockHeader> {
        if b.len() != HEADER_LEN || b.get(..2)? != HEADER_VERSION.to_le_bytes() {
            return None;
        }
        let a8 = |at: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)) };
        let a32 = |at: usize| -> Option<[u8; 32]> { b.get(at..at + 32)?.try_into().ok() };
        Some(BlockHeader {
            height: a8(2)?,
            parent: a32(10)?,
            timestamp_ms: a8(42)?,
            producer: a32(50)?,
            tx_count: u32::from_le_bytes(b.get(82..86)?.try_into().ok()?),
            merkle_root: a32(86)?,
            state_root: a32(118)?,
            validator_set_hash: a32(150)?,
            prev_commit_hash: a32(182)?,
            evidence_root: a32(214)?,
        })
    }

    /// SHA-256 of the encoding: the block's identity and its child's
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
    ext: Extension,
}

/// Most signatures a commit section holds (more than any seat count).
pub const MAX_COMMIT_SIGNATURES: usize = 1024;
/// Most evidence pairs one block carries.
pub const MAX_EVIDENCE: usize = 16;
/// Most bytes of one signed consensus message in evidence.
pub const MAX_EVIDENCE_MESSAGE: usize = 1024;

/// The signers of a commit and their signatures: (node key, signature).
pub type CommitSignatures = Vec<([u8; 32], [u8; 64])>;

/// The commit certificate of a final block, as the block log keeps it and
/// as it is served to validators catching up: `height (u64 LE) || round
/// (u32 LE) || count (u16 LE) || count × (node key (32) || signature
/// (64))`. Whether it holds is the consensus' check (`crate::replica`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub height: u64,
    pub round: u32,
    pub signatures: CommitSignatures,
}

impl Certificate {
    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(14 + 96 * self.signatures.len());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.round.to_le_bytes());
        // At most MAX_COMMIT_SIGNATURES (decode refuses more).
        out.extend_from_slice(&(self.signatures.len().min(MAX_COMMIT_SIGNATURES) as u16).to_le_bytes());
        for (k, sig) in self.signatures.iter().take(MAX_COMMIT_SIGNATURES) {
            out.extend_from_slice(k);
            out.extend_from_slice(sig);
        }
    }

    /// Reads what [`encode_into`](Certificate::encode_into) wrote, which
    /// must fill `b` exactly.
    pub fn decode(b: &[u8]) -> Option<Certificate> {
        let height = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let round = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
        let n = u16::from_le_bytes(b.get(12..14)?.try_into().ok()?) as usize;
        let rest = b.get(14..)?;
        if n > MAX_COMMIT_SIGNATURES || rest.len() != 96 * n {
            return None;
        }
        let signatures = rest
            .chunks_exact(96)
            .map(|c| {
                let (k, s) = c.split_at(32);
                Some((k.try_into().ok()?, s.try_into().ok()?))
            })
            .collect::<Option<CommitSignatures>>()?;
        Some(Certificate { height, round, signatures })
    }
}

/// What a block of a network of validators carries for the consensus
/// besides its transactions, after them in the block's encoding:
///
/// - commit section: `round (u32 LE) || count (u16 LE) || count × (node
///   key (32) || signature (64))`, the precommits of the previous block's
///   certificate; its header hash is SHA-256 of `"attnet/commit/v1"` and
///   the section;
/// - evidence section: `count (u16 LE) || count × (len (u32 LE) || message
///   || len (u32 LE) || message)`, each pair two signed consensus messages
///   of one seat that conflict (`docs/PROTOCOL.md`, 0x01 and 0x02 bodies);
///   its header hash is SHA-256 of `"attnet/evidence/v1"` and the section.
///
/// Whether the signatures hold is the consensus' check
/// (`crate::replica`); the block only binds the sections to its hash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extension {
    /// The previous block's commit: its round and who signed it.
    pub commit: Option<(u32, CommitSignatures)>,
    /// Conflicting pairs of signed messages.
    pub evidence: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Extension {
    fn commit_bytes(&self) -> Option<Vec<u8>> {
        let (round, sigs) = self.commit.as_ref()?;
        let mut out = Vec::with_capacity(6 + 96 * sigs.len());
        out.extend_from_slice(&round.to_le_bytes());
        out.extend_from_slice(&(sigs.len() as u16).to_le_bytes());
        for (k, sig) in sigs {
            out.extend_from_slice(k);
            out.extend_from_slice(sig);
        }
        Some(out)
    }

    fn evidence_bytes(&self) -> Option<Vec<u8>> {
        if self.evidence.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        out.extend_from_slice(&(self.evidence.len() as u16).to_le_bytes());
        for (a, b) in &self.evidence {
            for m in [a, b] {
                out.extend_from_slice(&(m.len() as u32).to_le_bytes());
                out.extend_from_slice(m);
            }
        }
        Some(out)
    }

    /// Whether the sections are within their bounds.
    fn is_bounded(&self) -> bool {
        self.commit.as_ref().is_none_or(|(_, s)| s.len() <= MAX_COMMIT_SIGNATURES)
            && self.evidence.len() <= MAX_EVIDENCE
            && self.evidence.iter().all(|(a, b)| a.len() <= MAX_EVIDENCE_MESSAGE && b.len() <= MAX_EVIDENCE_MESSAGE)
    }

    fn hashes(&self) -> (Hash, Hash) {
        let h = |domain: &[u8], b: Option<Vec<u8>>| -> Hash {
            b.map_or([0; 32], |b| Sha256::new().chain_update(domain).chain_update(b).finalize().into())
        };
        (h(b"attnet/commit/v1", self.commit_bytes()), h(b"attnet/evidence/v1", self.evidence_bytes()))
    }

    fn len(&self) -> usize {
        self.commit.as_ref().map_or(0, |(_, s)| 6 + 96 * s.len())
            + self.evidence.iter().map(|(a, b)| 8 + a.len() + b.len()).sum::<usize>()
    }

    /// Reads the sections the header says are there from `rest`, which
    /// they must fill exactly.
    fn decode(h: &BlockHeader, mut rest: &[u8]) -> Option<Extension> {
        let mut take = |n: usize| -> Option<&[u8]> {
            let (a, b) = (rest.get(..n)?, rest.get(n..)?);
            rest = b;
            Some(a)
        };
        let mut ext = Extension::default();
        if h.prev_commit_hash != [0; 32] {
            let round = u32::from_le_bytes(take(4)?.try_into().ok()?);
            let n = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
            if n > MAX_COMMIT_SIGNATURES {
                return None;
            }
            let mut sigs = Vec::with_capacity(n);
            for _ in 0..n {
                let k: [u8; 32] = take(32)?.try_into().ok()?;
                let s: [u8; 64] = take(64)?.try_into().ok()?;
                sigs.push((k, s));
            }
            ext.commit = Some((round, sigs));
        }
        if h.evidence_root != [0; 32] {
            let n = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
            if n == 0 || n > MAX_EVIDENCE {
                return None;
            }
            for _ in 0..n {
                let mut pair = [Vec::new(), Vec::new()];
                for m in &mut pair {
                    let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
                    if len > MAX_EVIDENCE_MESSAGE {
                        return None;
                    }
                    *m = take(len)?.to_vec();
                }
                let [a, b] = pair;
                ext.evidence.push((a, b));
            }
        }
        rest.is_empty().then_some(ext)
    }
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
        stamp: Stamp,
        txs: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<Block> {
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for t in txs {
            data.extend_from_slice(t);
            ends.push(data.len());
        }
        Block::seal(height, parent, timestamp_ms, stamp, data, ends, None)
    }

    /// A block of `data` cut at `ends`, committing to `root` if the caller
    /// computed it from the leaf hashes, else to the root computed here.
    fn seal(
        height: u64,
        parent: Hash,
        timestamp_ms: u64,
        stamp: Stamp,
        data: Vec<u8>,
        ends: Vec<usize>,
        root: Option<Hash>,
    ) -> Option<Block> {
        let tx_count = u32::try_from(ends.len()).ok()?;
        let header = BlockHeader {
            height,
            parent,
            timestamp_ms,
            producer: stamp.producer,
            tx_count,
            merkle_root: [0; 32],
            state_root: stamp.state_root,
            validator_set_hash: [0; 32],
            prev_commit_hash: [0; 32],
            evidence_root: [0; 32],
        };
        let mut b = Block { header, data, ends, ext: Extension::default() };
        b.header.merkle_root = match root {
            Some(r) => r,
            None => merkle::root_with(&mut Vec::new(), b.txs()),
        };
        Some(b)
    }

    /// The same block committing to the seats that vote on it
    /// (`validator_set_hash`) and carrying `ext` (its header hashes set);
    /// `None` if a section is beyond its bounds.
    pub fn with_consensus(mut self, validator_set_hash: Hash, ext: Extension) -> Option<Block> {
        if !ext.is_bounded() {
            return None;
        }
        self.header.validator_set_hash = validator_set_hash;
        (self.header.prev_commit_hash, self.header.evidence_root) = ext.hashes();
        self.ext = ext;
        Some(self)
    }

    /// What the block carries for the consensus.
    pub fn extension(&self) -> &Extension {
        &self.ext
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

    /// Bytes the block holds in memory (header, transactions, their ends).
    pub fn mem_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.data.len() + self.ends.len() * std::mem::size_of::<usize>() + self.ext.len()
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

    /// Appends the block as the block log stores it: the header's 246
    /// bytes, then each transaction as a `u32 LE` length and its bytes,
    /// then the [`Extension`]'s sections the header names.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN + self.data.len() + 4 * self.ends.len() + self.ext.len());
        out.extend_from_slice(&self.header.encode());
        for t in self.txs() {
            // A transaction is far shorter than 4 GiB (it fits a datagram).
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t);
        }
        for section in [self.ext.commit_bytes(), self.ext.evidence_bytes()].into_iter().flatten() {
            out.extend_from_slice(&section);
        }
    }

    /// Reads what [`encode_into`](Block::encode_into) wrote: `None` unless
    /// the header decodes and exactly `tx_count` transactions fill the rest.
    /// The transaction root is not recomputed ([`Block::is_consistent`]
    /// does that).
    pub fn decode(b: &[u8]) -> Option<Block> {
        let header = BlockHeader::decode(b.get(..HEADER_LEN)?)?;
        let mut rest = b.get(HEADER_LEN..)?;
        let n = header.tx_count as usize;
        let mut data = Vec::with_capacity(rest.len().saturating_sub(4 * n));
        let mut ends = Vec::with_capacity(n.min(rest.len() / 4));
        for _ in 0..n {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            data.extend_from_slice(rest.get(4..4 + len)?);
            ends.push(data.len());
            rest = rest.get(4 + len..)?;
        }
        let ext = Extension::decode(&header, rest)?;
        Some(Block { header, data, ends, ext })
    }

    /// Whether `tx_count`, `merkle_root` and the extension's hashes match
    /// what the block holds: what a node checks on a block it did not
    /// build.
    pub fn is_consistent(&self) -> bool {
        self.header.tx_count as usize == self.ends.len()
            && merkle::root(self.txs()) == self.header.merkle_root
            && self.ext.is_bounded()
            && self.ext.hashes() == (self.header.prev_commit_hash, self.header.evidence_root)
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

/// What a block commits to beyond its transactions, given by the caller
/// when the block is sealed: its producer and the state after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// The producer's node key (zeros: none).
    pub producer: [u8; 32],
    /// The state root after the block.
    pub state_root: Hash,
}

/// What [`BlockBuilder::poll`] asks when it seals block `height` whose
/// transactions paid `fees` in all: the block's [`Stamp`]. The caller ends
/// the block in its ledger (fees to the producer, unbonding released) and
/// returns the state root after that.
pub type StampFn<'a> = dyn FnMut(u64, u64) -> Stamp + 'a;

/// When blocks are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    /// A block is sealed once this long has passed since the previous seal
    /// (and there is something to seal). Default 200 ms.
    pub interval_ms: u64,
    /// A block is sealed at once when this many transactions wait, without
    /// waiting for the interval. It takes every waiting transaction (so the
    /// state root is the state after exactly its transactions): a block can
    /// exceed this by the transactions one submission applies at once (a
    /// nonce gap filled: at most the ledger's queue capacity). Default
    /// 10 000; 0 is treated as 1.
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
    /// The transaction tree of the waiting transactions, folded as they
    /// arrive so that a seal costs a few node hashes, not thousands.
    tree: merkle::Streaming,
    /// Fees of the waiting transactions.
    fees: u64,
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
            tree: merkle::Streaming::default(),
            fees: 0,
            spare: Vec::new(),
        }
    }

    /// A builder that continues a chain whose last block is `height` with
    /// hash `parent` and timestamp `timestamp_ms` (a node restarting from
    /// its data directory).
    pub fn resume(cfg: BlockConfig, height: u64, parent: Hash, timestamp_ms: u64) -> BlockBuilder {
        BlockBuilder { next_height: height + 1, last_timestamp_ms: timestamp_ms, ..BlockBuilder::new(cfg, parent) }
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
        // The ledger applied it, so it is well formed; anything else pays 0.
        let fee = attnet_core::wire::tx::Transaction::new_checked(tx).map_or(0, |t| t.fee());
        self.fees = self.fees.saturating_add(fee);
        self.data.extend_from_slice(tx);
        self.ends.push(self.data.len());
        self.tree.push(merkle::leaf_hash(tx));
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

    /// Seals a block if one is due: at once if `max_txs` transactions wait,
    /// otherwise when `interval_ms` has passed since the last seal and
    /// there is a transaction (or `empty_blocks` is on). The block takes
    /// every waiting transaction; `stamp` gives its producer and state
    /// root.
    pub fn poll(&mut self, now_ms: u64, stamp: &mut StampFn<'_>) -> Option<Block> {
        let cut = self.cut(now_ms, false)?;
        let st = stamp(cut.height, cut.fees);
        self.finish(cut, st)
    }

    /// Seals whatever waits, regardless of the interval: for shutdown, so
    /// that no applied transaction is left out of a block. Never seals an
    /// empty block.
    pub fn seal_now(&mut self, now_ms: u64, stamp: &mut StampFn<'_>) -> Option<Block> {
        let cut = self.cut(now_ms, true)?;
        let st = stamp(cut.height, cut.fees);
        self.finish(cut, st)
    }

    /// The first half of a seal: if a block is due (as [`poll`] decides,
    /// or with `now` whenever a transaction waits, as [`seal_now`]), takes
    /// every waiting transaction and gives them a height and a timestamp.
    /// The caller ends the block in its ledger and, whenever it suits it,
    /// passes the cut and the block's [`Stamp`] to [`finish`]. Cuts are
    /// finished in the order they were made; the next block's parent is
    /// known once the previous cut is finished.
    ///
    /// [`poll`]: BlockBuilder::poll
    /// [`seal_now`]: BlockBuilder::seal_now
    /// [`finish`]: BlockBuilder::finish
    pub fn cut(&mut self, now_ms: u64, now: bool) -> Option<Cut> {
        let since = *self.last_seal_ms.get_or_insert(now_ms);
        let due = now_ms.saturating_sub(since) >= self.cfg.interval_ms;
        let seal = if now {
            !self.ends.is_empty()
        } else {
            self.is_full() || (due && (!self.ends.is_empty() || self.cfg.empty_blocks))
        };
        if !seal {
            return None;
        }
        // The next block starts with room for as much as this one: a buffer
        // that grew by doubling copied a megabyte into fresh, unfaulted
        // memory in the middle of a burst.
        let (dc, ec) = (self.data.len(), self.ends.len());
        let (mut data, mut ends) = self.spare.pop().unwrap_or_default();
        data.reserve(dc);
        ends.reserve(ec);
        let (data, ends) = (std::mem::replace(&mut self.data, data), std::mem::replace(&mut self.ends, ends));
        let merkle_root = self.tree.root();
        self.tree.clear();
        let timestamp_ms = now_ms.max(self.last_timestamp_ms);
        let cut = Cut {
            height: self.next_height,
            timestamp_ms,
            fees: std::mem::take(&mut self.fees),
            data,
            ends,
            merkle_root,
        };
        self.last_seal_ms = Some(now_ms);
        self.last_timestamp_ms = timestamp_ms;
        self.next_height += 1;
        Some(cut)
    }

    /// The second half of a seal: the block of `cut` under `stamp`, its
    /// parent the block finished before it. `None` only for a block of
    /// more than `u32::MAX` transactions.
    pub fn finish(&mut self, cut: Cut, stamp: Stamp) -> Option<Block> {
        let Cut { height, timestamp_ms, data, ends, merkle_root, .. } = cut;
        let block = Block::seal(height, self.parent, timestamp_ms, stamp, data, ends, Some(merkle_root))?;
        self.parent = block.hash();
        Some(block)
    }

    /// Whether `max_txs` transactions wait, so that [`poll`] would seal at
    /// once.
    ///
    /// [`poll`]: BlockBuilder::poll
    pub fn is_full(&self) -> bool {
        self.ends.len() >= self.cap()
    }

    /// The timestamp of the last block sealed (or resumed from).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.last_timestamp_ms
    }

    /// The height of the next block sealed.
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
}

/// A block cut by [`BlockBuilder::cut`]: its transactions, height,
/// timestamp and transaction root, waiting for its [`Stamp`].
#[derive(Debug)]
pub struct Cut {
    height: u64,
    timestamp_ms: u64,
    fees: u64,
    data: Vec<u8>,
    ends: Vec<usize>,
    merkle_root: Hash,
}

impl Cut {
    /// The block's height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The fees its transactions paid, in all.
    pub fn fees(&self) -> u64 {
        self.fees
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const G: Hash = [7; 32];

    /// A stamp that commits to nothing.
    fn z(_: u64, _: u64) -> Stamp {
        Stamp::default()
    }

    #[test]
    fn a_certificate_round_trips_and_nothing_else_decodes_as_one() {
        let c = Certificate { height: 9, round: 2, signatures: vec![([1; 32], [2; 64]), ([3; 32], [4; 64])] };
        let mut b = Vec::new();
        c.encode_into(&mut b);
        assert_eq!(b.len(), 14 + 2 * 96);
        assert_eq!(Certificate::decode(&b), Some(c.clone()));
        // Short, long, or a count that does not match the bytes.
        assert_eq!(Certificate::decode(&b[..b.len() - 1]), None);
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Certificate::decode(&long), None);
        let mut miscount = b.clone();
        miscount[12] = 3;
        assert_eq!(Certificate::decode(&miscount), None);
        assert_eq!(Certificate::decode(&[]), None);
    }

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
            producer: [0xCC; 32],
            tx_count: 0x21222324,
            merkle_root: [0xBB; 32],
            state_root: [0xDD; 32],
            validator_set_hash: [1; 32],
            prev_commit_hash: [2; 32],
            evidence_root: [3; 32],
        };
        let e = h.encode();
        assert_eq!(e.len(), 246);
        assert_eq!(&e[0..2], &[2, 0], "version 2");
        assert_eq!(&e[2..10], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&e[10..42], &[0xAA; 32]);
        assert_eq!(&e[42..50], &[0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]);
        assert_eq!(&e[50..82], &[0xCC; 32]);
        assert_eq!(&e[82..86], &[0x24, 0x23, 0x22, 0x21]);
        assert_eq!(&e[86..118], &[0xBB; 32]);
        assert_eq!(&e[118..150], &[0xDD; 32]);
        assert_eq!((&e[150..182], &e[182..214], &e[214..246]), (&[1; 32][..], &[2; 32][..], &[3; 32][..]));
        assert_eq!(BlockHeader::decode(&e), Some(h));
        assert_eq!(h.hash(), <[u8; 32]>::from(Sha256::digest(e)));
        // Another version or length is not a header of this build.
        let mut v3 = e;
        v3[0] = 3;
        assert_eq!(BlockHeader::decode(&v3), None);
        assert_eq!(BlockHeader::decode(&e[..245]), None);
    }

    #[test]
    fn heights_and_parents_chain() {
        let mut b = BlockBuilder::new(cfg(100, 1000, false), G);
        let mut blocks = Vec::new();
        let mut t = 1_000;
        for i in 0..5u32 {
            b.push(&tx(i));
            b.push(&tx(i + 100));
            assert!(b.poll(t, &mut z).is_none());
            t += 100;
            blocks.push(b.poll(t, &mut z).expect("interval passed"));
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
        assert!(b.poll(0, &mut z).is_none()); // starts the clock at 0
        b.push(&tx(1));
        assert!(b.poll(199, &mut z).is_none());
        let blk = b.poll(200, &mut z).unwrap();
        assert_eq!((blk.header().timestamp_ms, blk.len()), (200, 1));
        // Next interval runs from the last seal (200).
        b.push(&tx(2));
        assert!(b.poll(399, &mut z).is_none());
        assert!(b.poll(400, &mut z).is_some());
        // Nothing waiting: no block, and the clock does not move, so a late
        // transaction is sealed at the next poll.
        assert!(b.poll(1000, &mut z).is_none());
        b.push(&tx(3));
        assert_eq!(b.poll(1001, &mut z).unwrap().header().timestamp_ms, 1001);
    }

    #[test]
    fn start_times_the_first_block() {
        let mut b = BlockBuilder::new(cfg(200, 1000, false), G);
        b.start(50);
        b.start(120); // already running
        b.push(&tx(1));
        assert!(b.poll(249, &mut z).is_none());
        assert!(b.poll(250, &mut z).is_some());
    }

    #[test]
    fn cap_seals_at_once_everything_waiting_and_stamps_each_block() {
        let mut b = BlockBuilder::new(cfg(1_000_000, 3, false), G);
        assert!(b.poll(0, &mut z).is_none());
        for i in 0..2 {
            b.push(&tx(i));
        }
        assert!(b.poll(5, &mut z).is_none(), "2 waiting, interval not passed");
        for i in 2..5 {
            b.push(&tx(i));
        }
        let mut asked = Vec::new();
        let mut stamp = |h: u64, fees: u64| {
            asked.push((h, fees));
            Stamp { producer: [h as u8; 32], state_root: [9; 32] }
        };
        let b1 = b.poll(5, &mut stamp).unwrap();
        assert_eq!(b1.len(), 5, "all of them: the state after the block is the state now");
        assert_eq!((b1.header().producer, b1.header().state_root), ([1; 32], [9; 32]));
        assert_eq!(b.pending(), 0);
        b.push(&tx(9));
        let b2 = b.seal_now(6, &mut stamp).unwrap();
        assert!(b.seal_now(6, &mut stamp).is_none());
        // The test transactions are not well formed: they pay no fee.
        assert_eq!(asked, [(1, 0), (2, 0)]);
        assert!(b1.is_consistent() && b2.is_consistent());
        assert_eq!(b2.header().parent, b1.hash());
    }

    #[test]
    fn empty_block_rule() {
        let mut off = BlockBuilder::new(cfg(100, 10, false), G);
        let mut on = BlockBuilder::new(cfg(100, 10, true), G);
        assert!(off.poll(0, &mut z).is_none() && on.poll(0, &mut z).is_none());
        assert!(off.poll(100, &mut z).is_none());
        let e = on.poll(100, &mut z).unwrap();
        assert!(e.is_empty());
        assert_eq!(e.header().tx_count, 0);
        assert_eq!(e.header().merkle_root, merkle::empty_root());
        assert!(on.poll(150, &mut z).is_none());
        assert!(on.poll(200, &mut z).is_some());
        // seal_now never makes an empty block, even with empty_blocks.
        assert!(on.seal_now(10_000, &mut z).is_none());
    }

    #[test]
    fn root_matches_merkle_and_timestamps_never_decrease() {
        let mut b = BlockBuilder::new(cfg(10, 100, false), G);
        assert!(b.poll(1000, &mut z).is_none());
        for i in 0..37 {
            b.push(&tx(i));
        }
        let blk = b.poll(1010, &mut z).unwrap();
        let want: Vec<Vec<u8>> = (0..37).map(tx).collect();
        assert_eq!(blk.header().merkle_root, merkle::root(want.iter().map(|v| &v[..])));
        assert_eq!(blk.tx_bytes(), want.iter().map(Vec::len).sum::<usize>());
        // A clock that steps back does not produce an older timestamp.
        b.push(&tx(99));
        let late = b.seal_now(500, &mut z).unwrap();
        assert_eq!(late.header().timestamp_ms, 1010);
        let same = Block::new(1, G, 1010, Stamp::default(), want.iter().map(|v| &v[..])).unwrap();
        assert_eq!(same, blk);
    }
}
