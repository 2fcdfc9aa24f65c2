//! Finality: the stage between sealing a block and treating it as part of
//! the chain for good.
//!
//! The node hands every sealed block to a [`Finalizer`] and acts (persists,
//! announces, pays rewards later) only on the blocks it returns. Today the
//! only finalizer is [`SingleNode`], for a network with one validator:
//! implicit (a genesis without a validator list: final at once) or listed
//! (a genesis naming this node as its only validator: every block goes
//! through the BFT engine of [`crate::bft`], which signs a proposal, a
//! prevote and a precommit and checks the commit certificate). A validator
//! of a network of several is a [`crate::replica::Replica`] instead.
#![deny(clippy::indexing_slicing)]

use crate::bft::{BlockId, Config, Engine, Height, Output, ValidatorSet, Wal};
use crate::block::Block;
use crate::merkle::Hash;
use arc_malachitebft_core_types::{LinearTimeouts, Round};

/// Decides which proposed blocks are final.
pub trait Finalizer {
    /// Offers a locally sealed block. Returns the blocks that became final
    /// as a result, in height order: none, this one, or (for a multi-node
    /// finalizer) several earlier ones too. `now_ms` drives timeouts; there
    /// is no clock inside.
    fn propose(&mut self, block: Block, now_ms: u64) -> Vec<Block>;

    /// Final blocks that carry a commit certificate from the BFT engine.
    fn certified(&self) -> u64 {
        0
    }
}

/// The finalizer of a one-node network: a block that extends the tip is
/// final at once. It still checks the link (height, parent, transaction
/// count; the transaction root too in debug builds), so a builder bug
/// cannot fork the chain silently.
pub struct SingleNode {
    height: u64,
    last_hash: Hash,
    rejected: u64,
    /// The BFT engine, when the genesis lists this node as its validator.
    bft: Option<Box<Lone>>,
}

impl std::fmt::Debug for SingleNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleNode")
            .field("height", &self.height)
            .field("rejected", &self.rejected)
            .field("certified", &self.certified())
            .finish()
    }
}

/// The engine of a lone listed validator, and the round it was asked to
/// propose in.
struct Lone {
    engine: Engine<NoLog>,
    asked: Option<(Height, Round)>,
    certified: u64,
}

/// A lone validator keeps no consensus log: nothing it signs leaves the
/// node, and a block is reported committed only once the store has it, so
/// after a crash no one holds a vote that a new proposal could contradict.
struct NoLog;

impl Wal for NoLog {
    fn append(
        &mut self,
        _: Height,
        _: &arc_malachitebft_core_consensus::Input<crate::bft::Ctx>,
    ) -> std::io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lone {
    fn take_ask(&mut self) {
        for o in self.engine.drain() {
            if let Output::GetValue { height, round } = o {
                self.asked = Some((height, round));
            }
        }
    }

    /// Runs block `h` (hash `id`) through the engine; true once decided
    /// with a certificate that verifies.
    fn certify(&mut self, h: u64, id: Hash, now_ms: u64) -> bool {
        let Some((height, round)) = self.asked.take().filter(|a| a.0 == Height(h)) else { return false };
        self.engine.propose(height, round, BlockId(id), now_ms);
        let decided = self.engine.drain().into_iter().any(|o| match o {
            Output::Decided { height: dh, round: r, value, signatures, .. } => {
                dh == height && value == BlockId(id) && self.engine.verify_commit(dh, r, value, &signatures)
            }
            _ => false,
        });
        if decided {
            self.certified += 1;
            self.engine.start_height(Height(h + 1), now_ms);
            self.take_ask();
        }
        decided
    }
}

impl SingleNode {
    /// A chain at height 0 whose tip is the genesis hash.
    pub fn new(genesis_hash: Hash) -> SingleNode {
        SingleNode { height: 0, last_hash: genesis_hash, rejected: 0, bft: None }
    }

    /// Height of the last final block (0: only genesis).
    /// A finalizer whose tip is block `height` with hash `last_hash` (a
    /// node restarting from its data directory).
    pub fn resume(height: u64, last_hash: Hash) -> SingleNode {
        SingleNode { height, last_hash, rejected: 0, bft: None }
    }

    /// From the next block on, finalizes through the BFT engine as the
    /// network's only validator: `key` is this node's key seed, `validators`
    /// the genesis' list (exactly this node's key), `genesis_hash` the
    /// network the signatures are bound to.
    pub fn certify_with(&mut self, genesis_hash: Hash, key: [u8; 32], validators: ValidatorSet) -> Result<(), String> {
        let public: [u8; 32] = ed25519_zebra::VerificationKey::from(&ed25519_zebra::SigningKey::from(key)).into();
        match validators.seats() {
            [v] if v.address.0 == public => {}
            [v] => {
                return Err(format!(
                    "this node's key {} is not the genesis validator {}",
                    hex::encode(public),
                    hex::encode(v.address.0)
                ))
            }
            seats => {
                return Err(format!(
                    "the genesis lists {} validators: a network of several validators is joined as a replica \
                     (Chain::join_network), not through this finalizer",
                    seats.len()
                ))
            }
        }
        let cfg = Config { chain: genesis_hash, key, validators, timeouts: LinearTimeouts::default() };
        let mut engine = Engine::new(cfg, NoLog);
        engine.start_height(Height(self.height + 1), 0);
        let mut lone = Lone { engine, asked: None, certified: 0 };
        lone.take_ask();
        self.bft = Some(Box::new(lone));
        Ok(())
    }

    /// Whether blocks go through the BFT engine.
    pub fn is_validator(&self) -> bool {
        self.bft.is_some()
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    /// Hash of the last final block (the genesis hash at height 0).
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// Proposed blocks that did not extend the tip and were discarded;
    /// nonzero means a bug upstream.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

impl Finalizer for SingleNode {
    /// Blocks certified by the BFT engine (0 without a validator list).
    fn certified(&self) -> u64 {
        self.bft.as_ref().map_or(0, |b| b.certified)
    }

    fn propose(&mut self, block: Block, now_ms: u64) -> Vec<Block> {
        let h = block.header();
        // The transaction root was folded by the builder from leaf hashes
        // taken as each transaction arrived; recomputing it from the bytes
        // doubled the cost of a seal (milliseconds at 10 000 transactions),
        // so release builds check the count and debug builds the root.
        debug_assert!(block.is_consistent(), "the builder sealed a header that does not match its transactions");
        if h.height != self.height + 1 || h.parent != self.last_hash || h.tx_count as usize != block.len() {
            self.rejected += 1;
            return Vec::new();
        }
        if let Some(b) = self.bft.as_mut() {
            if !b.certify(h.height, block.hash(), now_ms) {
                self.rejected += 1;
                return Vec::new();
            }
        }
        self.height = h.height;
        self.last_hash = block.hash();
        vec![block]
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::block::Stamp;

    const G: Hash = [3; 32];

    #[test]
    fn finalizes_the_tip_at_once() {
        let mut f = SingleNode::new(G);
        assert_eq!((f.height(), f.last_hash()), (0, G));
        let b1 = Block::new(1, G, 10, Stamp::default(), [&b"a"[..]]).unwrap();
        let h1 = b1.hash();
        let out = f.propose(b1.clone(), 10);
        assert_eq!(out, vec![b1]);
        assert_eq!((f.height(), f.last_hash()), (1, h1));
        let b2 = Block::new(2, h1, 20, Stamp::default(), []).unwrap();
        assert_eq!(f.propose(b2, 20).len(), 1);
        assert_eq!(f.height(), 2);
    }

    #[test]
    fn a_listed_lone_validator_certifies_every_block_through_the_engine() {
        let key = [5; 32];
        let public: [u8; 32] = ed25519_zebra::VerificationKey::from(&ed25519_zebra::SigningKey::from(key)).into();
        let me = ValidatorSet::new(vec![crate::bft::Validator::seat(public)]).unwrap();
        let mut f = SingleNode::new(G);
        f.certify_with(G, key, me.clone()).unwrap();
        assert!(f.is_validator());
        let mut parent = G;
        for h in 1..=5 {
            let b = Block::new(h, parent, h * 10, Stamp::default(), [&b"tx"[..]]).unwrap();
            parent = b.hash();
            assert_eq!(f.propose(b, h * 10).len(), 1, "block {h}");
        }
        assert_eq!((f.height(), f.certified(), f.rejected()), (5, 5, 0));
        // A block that does not extend the tip never reaches the engine.
        assert!(f.propose(Block::new(9, parent, 0, Stamp::default(), []).unwrap(), 60).is_empty());
        assert_eq!(f.certified(), 5);

        let other = ValidatorSet::new(vec![crate::bft::Validator::seat([9; 32])]).unwrap();
        let e = SingleNode::new(G).certify_with(G, key, other).unwrap_err();
        assert!(e.starts_with("this node's key"), "{e}");
        let two =
            ValidatorSet::new(vec![crate::bft::Validator::seat(public), crate::bft::Validator::seat([9; 32])]).unwrap();
        let e = SingleNode::new(G).certify_with(G, key, two).unwrap_err();
        assert!(e.contains("joined as a replica"), "{e}");
    }

    #[test]
    fn rejects_what_does_not_extend_the_tip() {
        let mut f = SingleNode::new(G);
        assert!(f.propose(Block::new(2, G, 0, Stamp::default(), []).unwrap(), 0).is_empty());
        assert!(f.propose(Block::new(1, [0; 32], 0, Stamp::default(), []).unwrap(), 0).is_empty());
        assert_eq!((f.height(), f.rejected()), (0, 2));
    }
}
