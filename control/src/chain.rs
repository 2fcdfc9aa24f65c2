//! The control thread's one object: verified transactions in, final
//! blocks out.
//!
//! [`Chain`] strings together the [`Ledger`] (which applies transactions
//! the moment they arrive, in nonce order), the [`BlockBuilder`] (which
//! receives exactly the applied transactions, in application order) and a
//! [`Finalizer`]. The node calls [`Chain::submit`] for each transaction the
//! data plane accepted, [`Chain::poll`] on every tick, and [`Chain::finish`]
//! once at shutdown; all three take `now_ms` from the caller's clock.
#![deny(clippy::indexing_slicing)]

use std::ops::AddAssign;

use crate::block::{Block, BlockBuilder, BlockConfig, Cut, Stamp};
use crate::consensus::{Finalizer, SingleNode};
use crate::genesis::Genesis;
use crate::ledger::{Ledger, LedgerConfig, LedgerCounters, Refusal};
use crate::merkle::Hash;
use crate::replica::{Replica, ReplicaConfig};

/// Configuration of the ledger and the block builder together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainConfig {
    /// Nonce-gap queue limits.
    pub ledger: LedgerConfig,
    /// When blocks are cut.
    pub block: BlockConfig,
    /// The node key of this node, the producer its blocks pay their fees
    /// to; `None`: fees stay unpaid.
    pub producer: Option<[u8; 32]>,
}

/// Counters for the node's summary. Counters of several chains (or runs)
/// add up with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainCounters {
    /// What happened to submitted transactions.
    pub ledger: LedgerCounters,
    /// Final blocks.
    pub blocks: u64,
    /// Transactions in final blocks; equals `ledger.applied` after
    /// [`Chain::finish`].
    pub block_txs: u64,
    /// Records (messages, connection requests and acceptances, offers)
    /// dropped from full inboxes, oldest first, since the genesis (the
    /// ledger's `inbox_capacity` bounds each inbox).
    pub records_evicted: u64,
    /// Final blocks certified by the BFT engine (a listed validator; 0
    /// when blocks are final at once).
    pub certified: u64,
}

impl ChainCounters {
    /// The summary as JSON:
    /// `{"submitted", "applied", "queued", "dropped": {every
    /// [`Refusal`] by name}, "blocks", "block_txs"}`, where `submitted ==
    /// applied + queued + Σ dropped`.
    pub fn to_json(&self) -> serde_json::Value {
        let l = &self.ledger;
        serde_json::json!({
            "submitted": l.submitted,
            "applied": l.applied,
            "queued": l.queued,
            "dropped": l.refused_json(),
            "blocks": self.blocks,
            "block_txs": self.block_txs,
            "records_evicted": self.records_evicted,
            "certified": self.certified,
        })
    }
}

impl AddAssign for ChainCounters {
    fn add_assign(&mut self, o: ChainCounters) {
        self.ledger += o.ledger;
        self.blocks += o.blocks;
        self.block_txs += o.block_txs;
        self.records_evicted += o.records_evicted;
        self.certified += o.certified;
    }
}

/// Ledger, block builder and finalizer, driven by one thread.
#[derive(Debug)]
pub struct Chain<F: Finalizer = SingleNode> {
    ledger: Ledger,
    builder: BlockBuilder,
    finalizer: F,
    producer: Option<[u8; 32]>,
    /// Blocks sealed and not yet handed to the finalizer.
    sealed: Vec<Block>,
    /// A block cut whose state root is not finished yet, and the number of
    /// polls done when it was cut (see [`Chain::poll`]).
    cut: Option<(Cut, u64)>,
    /// Polls done.
    polls: u64,
    height: u64,
    last_hash: Hash,
    blocks: u64,
    block_txs: u64,
    /// A validator of a network of several: blocks come from the BFT
    /// engine and its peers, not from the builder.
    replica: Option<Box<Replica>>,
}

impl Chain<SingleNode> {
    /// A one-node chain from `genesis`: every sealed block is final at once.
    pub fn new(genesis: &Genesis, cfg: ChainConfig) -> Self {
        Chain::with_finalizer(genesis, cfg, SingleNode::new(genesis.hash()))
    }
}

impl Chain<SingleNode> {
    /// A one-node chain continuing from a recovered `state` whose last
    /// final block is `height` with hash `last_hash` and timestamp
    /// `timestamp_ms` (height 0: the genesis). Counters start at 0: they
    /// count this run.
    pub fn resume(
        genesis: &Genesis,
        cfg: ChainConfig,
        state: crate::state::State,
        height: u64,
        last_hash: Hash,
        timestamp_ms: u64,
    ) -> Self {
        let (builder, last_hash) = if height == 0 {
            (BlockBuilder::new(cfg.block, genesis.hash()), genesis.hash())
        } else {
            (BlockBuilder::resume(cfg.block, height, last_hash, timestamp_ms), last_hash)
        };
        Chain {
            ledger: Ledger::from_state(genesis, cfg.ledger, state),
            builder,
            finalizer: SingleNode::resume(height, last_hash),
            producer: cfg.producer,
            sealed: Vec::new(),
            cut: None,
            polls: 0,
            height,
            last_hash,
            blocks: 0,
            block_txs: 0,
            replica: None,
        }
    }
}

impl<F: Finalizer> Chain<F> {
    /// A chain with another finalizer (multi-node consensus, later; tests).
    pub fn with_finalizer(genesis: &Genesis, cfg: ChainConfig, finalizer: F) -> Self {
        let hash = genesis.hash();
        Chain {
            ledger: Ledger::new(genesis, cfg.ledger),
            builder: BlockBuilder::new(cfg.block, hash),
            finalizer,
            producer: cfg.producer,
            sealed: Vec::new(),
            cut: None,
            polls: 0,
            height: 0,
            last_hash: hash,
            blocks: 0,
            block_txs: 0,
            replica: None,
        }
    }

    /// Submits one transaction the data plane accepted (signature already
    /// verified). Whatever applies goes into the next block. The result is
    /// the ledger's ([`Ledger::submit`]): `Ok` if applied or waiting. The
    /// first call also starts the block interval clock. When `max_txs`
    /// transactions wait, the block is sealed here, so that its state root
    /// is the state after exactly its transactions; [`poll`](Chain::poll)
    /// returns it.
    pub fn submit(&mut self, tx: &[u8], now_ms: u64) -> Result<(), Refusal> {
        if let Some(r) = self.replica.as_mut() {
            let min_fee = self.ledger.min_fee_of();
            return r.submit(self.ledger.state(), min_fee, tx, now_ms);
        }
        self.builder.start(now_ms);
        self.ledger.open_block();
        let builder = &mut self.builder;
        let r = self.ledger.submit(tx, now_ms, &mut |t| builder.push(t));
        if self.builder.is_full() {
            self.cut(now_ms, false);
        }
        r
    }

    /// Cuts the waiting transactions (all of them) into the next block if
    /// one is due (or at once with `now`) and ends it in the ledger (fees,
    /// unbonding), then takes the first half of its state root: the
    /// changed accounts' leaves. A cut still pending is finished first.
    fn cut(&mut self, now_ms: u64, now: bool) {
        let Some(cut) = self.builder.cut(now_ms, now) else { return };
        self.finish_cut();
        // An empty block opens its journal here.
        self.ledger.open_block();
        self.ledger.end_block(cut.height(), self.producer, cut.fees());
        self.ledger.capture_root();
        self.ledger.seal_block();
        self.cut = Some((cut, self.polls));
    }

    /// The second half of a seal: the buckets and tree above the captured
    /// leaves give the state root, and the block is made.
    fn finish_cut(&mut self) {
        let Some((cut, _)) = self.cut.take() else { return };
        let state_root = self.ledger.captured_root();
        let stamp = Stamp { producer: self.producer.unwrap_or_default(), state_root };
        self.sealed.extend(self.builder.finish(cut, stamp));
    }

    /// The tick: drops stale waiting transactions, finishes the block cut
    /// before the previous poll, cuts the block that is due, and returns
    /// the blocks that became final, in height order.
    ///
    /// A seal is split across two polls so that no one call does all of
    /// it: the cut (the ledger's end of the block and the changed
    /// accounts' leaves, which must see the block's final state) and, at
    /// the next poll, the state root's buckets and tree and the block
    /// itself. A block is therefore returned one poll after it is cut; a
    /// cut is finished at once when the next one is due first.
    pub fn poll(&mut self, now_ms: u64) -> Vec<Block> {
        if let Some(r) = self.replica.as_mut() {
            r.tick(self.ledger.state_mut(), now_ms);
            let finals = r.take_finals();
            self.record(&finals);
            return finals;
        }
        self.ledger.expire(now_ms);
        if self.cut.as_ref().is_some_and(|(_, at)| *at < self.polls) {
            self.finish_cut();
        }
        self.cut(now_ms, false);
        self.polls += 1;
        let sealed = std::mem::take(&mut self.sealed);
        self.finalize(sealed, now_ms)
    }

    /// Shutdown: drops stale waiting transactions, then every remaining one
    /// (their gaps cannot fill any more; counted as `nonce_gap`), and seals
    /// the applied transactions not yet in a block. Returns the blocks that
    /// became final. Afterwards `counters()` has `queued == 0`, so
    /// `submitted == applied + Σ dropped`.
    pub fn finish(&mut self, now_ms: u64) -> Vec<Block> {
        if let Some(r) = self.replica.as_mut() {
            r.tick(self.ledger.state_mut(), now_ms);
            r.drop_all();
            let finals = r.take_finals();
            self.record(&finals);
            return finals;
        }
        self.ledger.expire(now_ms);
        self.ledger.drop_all_queued();
        self.cut(now_ms, true);
        self.finish_cut();
        let sealed = std::mem::take(&mut self.sealed);
        self.finalize(sealed, now_ms)
    }

    fn finalize(&mut self, sealed: Vec<Block>, now_ms: u64) -> Vec<Block> {
        let mut out = Vec::new();
        for b in sealed {
            let f = self.finalizer.propose(b, now_ms);
            for _ in &f {
                self.ledger.final_block();
            }
            self.record(&f);
            out.extend(f);
        }
        out
    }

    /// Appends the ids of transactions that [`submit`](Chain::submit)
    /// accepted to wait for a nonce gap and that the ledger has dropped
    /// since the last call (stale, refused when their turn came, or at
    /// [`finish`](Chain::finish)), so the caller can forget them and their
    /// clients can send them again; see [`Ledger::take_dropped`]. Call it
    /// after every [`poll`](Chain::poll) and after `finish`: at most
    /// `max_queued_total` ids are kept in between.
    pub fn take_dropped(&mut self, out: &mut Vec<[u8; 32]>) {
        if let Some(r) = self.replica.as_mut() {
            r.take_dropped(out);
        }
        self.ledger.take_dropped(out);
    }

    /// Makes this node a validator of a network of several
    /// ([`crate::replica`]) from the chain's current tip: from here on
    /// transactions wait in its mempool and blocks come from consensus.
    pub fn join_network(&mut self, cfg: ReplicaConfig, now_ms: u64) -> Result<(), String> {
        let ts = self.builder.last_timestamp_ms();
        let r = Replica::new(cfg, self.ledger.state_mut(), self.height, self.last_hash, ts, now_ms)?;
        self.replica = Some(Box::new(r));
        Ok(())
    }

    /// The validator of a network of several, if this node is one.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_deref()
    }

    /// A consensus message from peer `from` (a validator link).
    pub fn receive(&mut self, from: [u8; 32], bytes: &[u8], now_ms: u64) {
        if let Some(r) = self.replica.as_mut() {
            r.receive(self.ledger.state_mut(), from, bytes, now_ms);
        }
    }

    /// A validator link came up: this node's messages of the height being
    /// voted on go out again.
    pub fn peer_connected(&mut self, now_ms: u64) {
        if let Some(r) = self.replica.as_mut() {
            r.peer_connected(now_ms);
        }
    }

    /// Final blocks' certificates since the last call, for the block log
    /// (none for a single node).
    pub fn take_certificates(&mut self) -> Vec<crate::block::Certificate> {
        self.replica.as_mut().map(|r| r.take_certificates()).unwrap_or_default()
    }

    /// Heights peers asked for that only the block log holds.
    pub fn take_from_log(&mut self) -> Vec<([u8; 32], u64, u64)> {
        self.replica.as_mut().map(|r| r.take_from_log()).unwrap_or_default()
    }

    /// Final blocks read back from the block log for `peer`.
    pub fn serve_from_log(&mut self, peer: [u8; 32], blocks: Vec<(Vec<u8>, crate::block::Certificate)>) {
        if let Some(r) = self.replica.as_mut() {
            r.serve_from_log(peer, blocks);
        }
    }

    /// Consensus messages to send: to every peer (`None`) or to one.
    pub fn take_outgoing(&mut self) -> Vec<crate::replica::Outgoing> {
        self.replica.as_mut().map(|r| r.take_outgoing()).unwrap_or_default()
    }

    /// The node's store holds every final block up to `height` (`u64::MAX`
    /// without a store): a validator starts the next height.
    pub fn durable(&mut self, height: u64, now_ms: u64) {
        if let Some(r) = self.replica.as_mut() {
            r.durable(self.ledger.state_mut(), height, now_ms);
        }
    }

    /// Height of the last final block (0: only genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Hash of the last final block (the genesis hash at height 0).
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// Number of final blocks so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The summary counters.
    pub fn counters(&self) -> ChainCounters {
        ChainCounters {
            ledger: self.replica.as_ref().map_or_else(|| self.ledger.counters(), |r| r.ledger_counters()),
            blocks: self.blocks,
            block_txs: self.block_txs,
            records_evicted: self.ledger.state().records_evicted(),
            certified: self
                .replica
                .as_ref()
                .map_or_else(|| self.finalizer.certified(), |r| r.counters().decided + r.counters().caught_up),
        }
    }

    /// The ledger, for balance and nonce queries.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The state root of the ledger as it is now (`Ledger::state_root`).
    /// A block cut and not finished is finished first (it is returned by
    /// the next poll).
    pub fn state_root(&mut self) -> Hash {
        self.finish_cut();
        self.ledger.state_root()
    }

    /// The finalizer, for its own state (e.g. [`SingleNode::rejected`]).
    pub fn finalizer(&self) -> &F {
        &self.finalizer
    }

    /// The finalizer, to set it up (e.g. [`SingleNode::certify_with`]).
    pub fn finalizer_mut(&mut self) -> &mut F {
        &mut self.finalizer
    }

    /// Gives a final block's buffers back to the block builder once the
    /// caller is done with it (optional: saves the next block fresh memory).
    pub fn recycle(&mut self, block: Block) {
        self.builder.recycle(block.into_buffers());
    }

    fn record(&mut self, finals: &[Block]) {
        for b in finals {
            self.height = b.header().height;
            self.last_hash = b.hash();
            self.blocks += 1;
            self.block_txs += b.len() as u64;
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::genesis::GenesisAccount;
    use attnet_core::wire::tx::{Kind, Repr, Transaction};
    use proptest::prelude::*;

    const A: [u8; 32] = [0xA; 32];
    const B: [u8; 32] = [0xB; 32];

    fn tx(nonce: u64, amount: u64) -> Vec<u8> {
        let r = Repr { kind: Kind::Transfer, from: A, to: B, nonce, amount, fee: 1, memo: b"", signature: [0; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        b
    }

    fn id(t: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(attnet_core::wire::tx::unsigned_part(t)).into()
    }

    #[test]
    fn new_refusals_in_the_summary() {
        let (_, mut c) = chain(BlockConfig::default());
        let free =
            Repr { kind: Kind::Transfer, from: A, to: B, nonce: 1, amount: 5, fee: 0, memo: b"", signature: [0; 64] };
        let mut b = vec![0u8; free.buffer_len()];
        free.emit(&mut b).unwrap();
        assert_eq!(c.submit(&b, 0), Err(Refusal::FeeTooLow));
        // B has no account yet: it cannot send.
        assert_eq!(c.submit(&tx_from(B, 1, 0), 0), Err(Refusal::NoAccount));
        let j = c.counters().to_json();
        assert_eq!((j["dropped"]["fee_too_low"].as_u64(), j["dropped"]["no_account"].as_u64()), (Some(1), Some(1)));
        assert_eq!(j["submitted"], 2);
    }

    #[test]
    fn evicted_records_in_the_summary() {
        let g = Genesis::new(1, [GenesisAccount { key: A, balance: 1000 }, GenesisAccount { key: B, balance: 10 }])
            .unwrap();
        let ledger = LedgerConfig { inbox_capacity: 2, ..LedgerConfig::default() };
        let mut c = Chain::new(&g, ChainConfig { ledger, block: BlockConfig::default(), producer: None });
        for nonce in 1..=3 {
            let r =
                Repr { kind: Kind::Message, from: A, to: B, nonce, amount: 0, fee: 1, memo: b"hi", signature: [0; 64] };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b).unwrap();
            c.submit(&b, 0).unwrap();
        }
        assert_eq!(c.finish(10).len(), 1);
        assert_eq!(c.counters().records_evicted, 1);
        assert_eq!(c.counters().to_json()["records_evicted"], 1);
        assert_eq!(c.ledger().state().inbox_len(&B), 2);
    }

    fn chain(block: BlockConfig) -> (Genesis, Chain) {
        let g = Genesis::new(1, [GenesisAccount { key: A, balance: 1000 }]).unwrap();
        let c = Chain::new(&g, ChainConfig { ledger: LedgerConfig::default(), block, producer: None });
        (g, c)
    }

    #[test]
    fn transactions_to_final_blocks() {
        let (g, mut c) = chain(BlockConfig { interval_ms: 200, max_txs: 3, empty_blocks: false });
        assert_eq!((c.height(), c.last_hash()), (0, g.hash()));
        c.submit(&tx(1, 10), 1000).unwrap();
        c.submit(&tx(3, 10), 1010).unwrap(); // waits for 2
        assert!(c.poll(1100).is_empty());
        // Cut at the interval, made at the next poll.
        assert!(c.poll(1200).is_empty());
        let blocks = c.poll(1201);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].header().parent, g.hash());
        assert_eq!(blocks[0].len(), 1);
        // 2 fills the gap: 2 and 3 apply; 4..=5 make a backlog over the cap.
        c.submit(&tx(2, 10), 1250).unwrap();
        c.submit(&tx(4, 10), 1260).unwrap();
        c.submit(&tx(5, 10), 1270).unwrap();
        assert_eq!(c.submit(&tx(5, 10), 1270), Err(Refusal::BadNonce));
        // The cap reached: cut before the interval, by `submit`; made at
        // the poll after the next one (that next poll follows the same
        // burst), so that no iteration of the caller does both halves.
        assert!(c.poll(1280).is_empty());
        let blocks = c.poll(1281);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].len(), 3);
        assert_eq!(c.height(), 2);
        c.submit(&tx(7, 10), 1300).unwrap(); // waits forever
        let mut dropped = Vec::new();
        c.take_dropped(&mut dropped);
        assert!(dropped.is_empty());
        let last = c.finish(1300);
        c.take_dropped(&mut dropped);
        assert_eq!(dropped, vec![id(&tx(7, 10))], "the one left waiting at shutdown");
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].header().height, 3);
        assert_eq!(last[0].header().parent, blocks[0].hash());
        assert_eq!((c.height(), c.blocks(), c.last_hash()), (3, 3, last[0].hash()));
        assert_eq!(c.finalizer().rejected(), 0);
        let k = c.counters();
        assert_eq!(k.ledger.applied, 5);
        assert_eq!(k.block_txs, 5);
        assert_eq!(c.ledger().account(&A).unwrap().nonce, 5);
        let j = k.to_json();
        assert_eq!(j["applied"], 5);
        assert_eq!(j["submitted"], 7);
        assert_eq!(j["queued"], 0);
        assert_eq!(j["dropped"]["bad_nonce"], 1);
        assert_eq!(j["dropped"]["nonce_gap"], 1);
        assert_eq!(j["dropped"]["insufficient_funds"], 0);
        assert_eq!(j["dropped"]["fee_too_low"], 0);
        assert_eq!(j["dropped"]["no_account"], 0);
        assert_eq!(j["blocks"], 3);
        assert!(c.finish(2000).is_empty());
    }

    #[test]
    fn stale_drop_on_poll_and_summed_counters() {
        let (_, mut c) = chain(BlockConfig::default());
        c.submit(&tx(2, 10), 0).unwrap();
        assert!(c.poll(2000).is_empty());
        assert_eq!(c.counters().ledger.queued, 1);
        let mut dropped = Vec::new();
        c.take_dropped(&mut dropped);
        assert!(dropped.is_empty());
        assert!(c.poll(2001).is_empty());
        assert_eq!(c.counters().ledger.get(Refusal::NonceGap), 1);
        c.take_dropped(&mut dropped);
        assert_eq!(dropped, vec![id(&tx(2, 10))]);
        let mut sum = c.counters();
        sum += c.counters();
        assert_eq!(sum.ledger.get(Refusal::NonceGap), 2);
        assert_eq!(sum.ledger.submitted, 2);
    }

    #[test]
    fn zero_interval_poll_ends() {
        let (_, mut c) = chain(BlockConfig { interval_ms: 0, max_txs: 2, empty_blocks: true });
        // An empty block cut, made at the next poll or when the next block
        // is cut, whichever comes first.
        assert!(c.poll(0).is_empty());
        for n in 1..=5 {
            c.submit(&tx(n, 1), 1).unwrap();
        }
        // 5 over a cap of 2: a block cut each time 2 wait (each cut makes
        // the one before it), then the rest cut at the poll (the interval
        // is 0), which makes the last block of 2.
        let b = c.poll(1);
        assert_eq!(b.iter().map(Block::len).collect::<Vec<_>>(), vec![0, 2, 2]);
        assert_eq!(c.poll(1).iter().map(Block::len).collect::<Vec<_>>(), vec![1]);
        assert_eq!(c.poll(1).iter().map(Block::len).collect::<Vec<_>>(), vec![0]);
        assert_eq!(c.height(), 5);
    }

    #[test]
    fn empty_blocks_when_asked() {
        let (_, mut c) = chain(BlockConfig { empty_blocks: true, ..BlockConfig::default() });
        assert!(c.poll(0).is_empty());
        assert!(c.poll(200).is_empty());
        assert_eq!(c.poll(201).len(), 1);
        assert!(c.poll(400).is_empty());
        // Shutdown makes the block cut and not yet made.
        assert_eq!(c.finish(450).len(), 1);
        assert_eq!(c.height(), 2);
        assert!(c.finish(450).is_empty());
    }

    fn tx_from(from: [u8; 32], nonce: u64, amount: u64) -> Vec<u8> {
        let r = Repr { kind: Kind::Transfer, from, to: B, nonce, amount, fee: 1, memo: b"", signature: [0; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// End to end: the final blocks chain from genesis, hold exactly the
        /// applied transactions, and replaying them on a fresh ledger gives
        /// the same state.
        #[test]
        fn blocks_replay_to_the_same_state(
            steps in prop::collection::vec((any::<bool>(), 1u64..=12, 0u64..=300, 0u64..=150, any::<bool>()), 0..120),
            interval_ms in 0u64..=400,
            max_txs in 1u32..=6,
            empty_blocks in any::<bool>(),
        ) {
            let g = Genesis::new(1, [GenesisAccount { key: A, balance: 2000 }, GenesisAccount { key: B, balance: 500 }])
                .unwrap();
            let block = BlockConfig { interval_ms, max_txs, empty_blocks };
            const P: [u8; 32] = [0x42; 32];
            let mut c = Chain::new(&g, ChainConfig { ledger: LedgerConfig::default(), block, producer: Some(P) });
            let mut blocks = Vec::new();
            let mut now = 1_000u64;
            for (from_a, nonce, amount, dt, poll) in steps {
                now += dt;
                let _ = c.submit(&tx_from(if from_a { A } else { B }, nonce, amount), now);
                if poll {
                    blocks.extend(c.poll(now));
                }
            }
            blocks.extend(c.finish(now + 5_000));
            let k = c.counters();
            prop_assert_eq!(k.ledger.queued, 0);
            prop_assert_eq!(k.ledger.submitted, k.ledger.applied + k.ledger.dropped());
            prop_assert_eq!(k.block_txs, k.ledger.applied);
            prop_assert_eq!(k.blocks, blocks.len() as u64);
            prop_assert_eq!(c.finalizer().rejected(), 0);
            // Final blocks leave no journal behind: at most the next
            // block is open (opened by a submission that was refused).
            prop_assert!(c.ledger().open_blocks() <= 1);
            let mut parent = g.hash();
            let mut replay = Ledger::new(&g, LedgerConfig::default());
            for (i, b) in blocks.iter().enumerate() {
                prop_assert_eq!(b.header().height, i as u64 + 1);
                prop_assert_eq!(b.header().parent, parent);
                prop_assert!(b.is_consistent());
                // At most the cap plus what one submission applies at once.
                prop_assert!(b.len() <= max_txs as usize + LedgerConfig::default().queue_capacity);
                prop_assert!(empty_blocks || !b.is_empty());
                prop_assert_eq!(b.header().producer, P);
                parent = b.hash();
                let mut fees = 0;
                for t in b.txs() {
                    prop_assert_eq!(replay.submit(t, 0, &mut |_| {}), Ok(()));
                    fees += Transaction::new_checked(t).unwrap().fee();
                }
                // The header commits to the state after exactly its
                // transactions and its end.
                replay.end_block(b.header().height, Some(P), fees);
                prop_assert_eq!(replay.state_root(), b.header().state_root, "block {}", b.header().height);
            }
            prop_assert_eq!((c.height(), c.last_hash()), (blocks.len() as u64, parent));
            prop_assert_eq!(replay.state_root(), c.state_root());
        }
    }
}
