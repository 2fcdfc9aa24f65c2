//! Finality: the stage between sealing a block and treating it as part of
//! the chain for good.
//!
//! The node hands every sealed block to a [`Finalizer`] and acts (persists,
//! announces, pays rewards later) only on the blocks it returns. Today the
//! only finalizer is [`SingleNode`], for a one-node network; the
//! multi-node contribution-weighted consensus (PoC with PoR penalties) will
//! implement the same trait, returning blocks only once enough producers
//! have agreed, possibly several at once.
#![deny(clippy::indexing_slicing)]

use crate::block::Block;
use crate::merkle::Hash;

/// Decides which proposed blocks are final.
pub trait Finalizer {
    /// Offers a locally sealed block. Returns the blocks that became final
    /// as a result, in height order: none, this one, or (for a multi-node
    /// finalizer) several earlier ones too. `now_ms` drives timeouts; there
    /// is no clock inside.
    fn propose(&mut self, block: Block, now_ms: u64) -> Vec<Block>;
}

/// The finalizer of a one-node network: a block that extends the tip is
/// final at once. It still checks the link (height, parent, transaction
/// count; the transaction root too in debug builds), so a builder bug
/// cannot fork the chain silently.
#[derive(Debug, Clone)]
pub struct SingleNode {
    height: u64,
    last_hash: Hash,
    rejected: u64,
}

impl SingleNode {
    /// A chain at height 0 whose tip is the genesis hash.
    pub fn new(genesis_hash: Hash) -> SingleNode {
        SingleNode { height: 0, last_hash: genesis_hash, rejected: 0 }
    }

    /// Height of the last final block (0: only genesis).
    /// A finalizer whose tip is block `height` with hash `last_hash` (a
    /// node restarting from its data directory).
    pub fn resume(height: u64, last_hash: Hash) -> SingleNode {
        SingleNode { height, last_hash, rejected: 0 }
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
    fn propose(&mut self, block: Block, _now_ms: u64) -> Vec<Block> {
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
    fn rejects_what_does_not_extend_the_tip() {
        let mut f = SingleNode::new(G);
        assert!(f.propose(Block::new(2, G, 0, Stamp::default(), []).unwrap(), 0).is_empty());
        assert!(f.propose(Block::new(1, [0; 32], 0, Stamp::default(), []).unwrap(), 0).is_empty());
        assert_eq!((f.height(), f.rejected()), (0, 2));
    }
}
