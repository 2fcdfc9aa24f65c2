//! The Merkle tree hash that commits a block header to its transactions
//! (RFC 6962, section 2.1).
//!
//! - leaf: `SHA-256(0x00 || tx bytes)`;
//! - node: `SHA-256(0x01 || left || right)`;
//! - zero leaves: `SHA-256("")`.
//!
//! The tree is computed level by level; an odd last node is promoted to the
//! next level unchanged, never paired with a copy of itself. Duplicating it
//! (as Bitcoin does) would give `[a, b, c]` and `[a, b, c, c]` the same root,
//! so two different blocks would share a header (CVE-2012-2459). Promotion
//! gives exactly RFC 6962's recursive `MTH` (split at the largest power of
//! two smaller than n); the tests check that for every n up to 70. The
//! distinct leaf and node prefixes keep a leaf from posing as an inner node.
#![deny(clippy::indexing_slicing)]

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 output.
pub type Hash = [u8; 32];

/// The hash of one leaf, `SHA-256(0x00 || tx)`: exposed so that inclusion
/// proofs (later) and tests hash leaves exactly as the root does.
pub fn leaf_hash(tx: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(tx);
    h.finalize().into()
}

/// The hash of an inner node, `SHA-256(0x01 || left || right)`: exposed for
/// the same reason as [`leaf_hash`].
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of zero leaves, `SHA-256("")`: what an empty block commits to.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// The Merkle root of `leaves` (each a transaction's bytes, in block
/// order). Allocates one `Vec` of `leaves.len()` hashes and nothing per
/// leaf; use [`root_with`] to reuse that buffer across blocks.
pub fn root<'a>(leaves: impl ExactSizeIterator<Item = &'a [u8]>) -> Hash {
    let mut scratch = Vec::new();
    root_with(&mut scratch, leaves)
}

/// [`root`] with a caller-owned scratch buffer, so that a block builder
/// that seals many blocks allocates only when a block is larger than any
/// before it. The buffer's contents on return are unspecified.
pub fn root_with<'a>(scratch: &mut Vec<Hash>, leaves: impl ExactSizeIterator<Item = &'a [u8]>) -> Hash {
    scratch.clear();
    scratch.reserve(leaves.len());
    scratch.extend(leaves.map(leaf_hash));
    reduce(scratch)
}

/// The root of a level of leaf hashes ([`leaf_hash`] of each transaction,
/// in block order), folded in place: what a block builder that hashed each
/// transaction as it arrived computes at the seal.
pub fn root_of_leaves(leaves: &mut Vec<Hash>) -> Hash {
    reduce(leaves)
}

/// Folds one level of hashes into the root, in place: node `i` of the next
/// level overwrites slot `i`, which has already been read (it reads slots
/// `2i` and `2i + 1`).
fn reduce(level: &mut Vec<Hash>) -> Hash {
    let mut n = level.len();
    if n == 0 {
        return empty_root();
    }
    while n > 1 {
        let pairs = n / 2;
        for i in 0..pairs {
            let (Some(l), Some(r)) = (level.get(2 * i), level.get(2 * i + 1)) else { break };
            let h = node_hash(l, r);
            if let Some(slot) = level.get_mut(i) {
                *slot = h;
            }
        }
        if n % 2 == 1 {
            // Promote the odd last node unchanged.
            if let Some(last) = level.get(n - 1).copied() {
                if let Some(slot) = level.get_mut(pairs) {
                    *slot = last;
                }
            }
        }
        n = pairs + n % 2;
        level.truncate(n);
    }
    level.first().copied().unwrap_or_else(empty_root)
}

/// The same root built as leaves arrive, for a block builder: each
/// [`push`](Streaming::push) folds every complete subtree it finishes (one
/// node hash per leaf, amortised), so that the root at a seal costs at most
/// one node hash per level, not a block's worth of hashing at once. Keeps
/// the roots of the complete subtrees, largest first (at most one per bit
/// of the leaf count); folded right to left they give RFC 6962's `MTH`,
/// whose split at the largest power of two below n is exactly where these
/// subtrees meet.
#[derive(Debug, Clone, Default)]
pub struct Streaming {
    /// (subtree root, log2 of its leaves), heights strictly decreasing.
    stack: Vec<(Hash, u32)>,
}

impl Streaming {
    /// Appends the next leaf hash ([`leaf_hash`] of the transaction).
    pub fn push(&mut self, leaf: Hash) {
        let (mut node, mut height) = (leaf, 0u32);
        while let Some(&(left, h)) = self.stack.last() {
            if h != height {
                break;
            }
            self.stack.pop();
            node = node_hash(&left, &node);
            height += 1;
        }
        self.stack.push((node, height));
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.stack.iter().rev();
        let Some(&(mut acc, _)) = subtrees.next() else { return empty_root() };
        for (left, _) in subtrees {
            acc = node_hash(left, &acc);
        }
        acc
    }

    /// Starts over with no leaves (keeps the memory).
    pub fn clear(&mut self) {
        self.stack.clear();
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// RFC 6962's MTH, written as the RFC states it.
    fn mth(d: &[Vec<u8>]) -> Hash {
        match d.len() {
            0 => Sha256::digest(b"").into(),
            1 => {
                let mut v = vec![0u8];
                v.extend_from_slice(&d[0]);
                Sha256::digest(&v).into()
            }
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                let mut v = vec![1u8];
                v.extend_from_slice(&mth(&d[..k]));
                v.extend_from_slice(&mth(&d[k..]));
                Sha256::digest(&v).into()
            }
        }
    }

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        // Distinct leaves of varied length, one empty.
        (0..n).map(|i| (0..(i % 7) * 13).map(|j| (i * 31 + j) as u8).collect()).collect()
    }

    #[test]
    fn matches_rfc6962_recursion() {
        let mut scratch = Vec::new();
        for n in 0..=70 {
            let d = leaves(n);
            let want = mth(&d);
            assert_eq!(root(d.iter().map(|v| &v[..])), want, "n = {n}");
            assert_eq!(root_with(&mut scratch, d.iter().map(|v| &v[..])), want, "n = {n} (reused scratch)");
            let mut s = Streaming::default();
            for v in &d {
                s.push(leaf_hash(v));
            }
            assert_eq!(s.root(), want, "n = {n} (streamed)");
        }
        // Larger counts, streamed against the level-by-level fold.
        let mut s = Streaming::default();
        let mut level = Vec::new();
        for i in 0..5_000u32 {
            let l = leaf_hash(&i.to_le_bytes());
            s.push(l);
            level.push(l);
            if i % 997 == 0 || i == 4_095 || i == 4_096 {
                assert_eq!(s.root(), root_of_leaves(&mut level.clone()), "{} leaves", i + 1);
            }
        }
        s.clear();
        assert_eq!(s.root(), empty_root());
    }

    #[test]
    fn known_answers() {
        let empty: [&[u8]; 0] = [];
        let e: Hash = Sha256::digest(b"").into();
        assert_eq!(root(empty.into_iter()), e);
        assert_eq!(hex::encode(e), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

        let a: &[u8] = b"tx-a";
        let b: &[u8] = b"tx-b";
        let la: Hash = Sha256::digest(b"\x00tx-a").into();
        let lb: Hash = Sha256::digest(b"\x00tx-b").into();
        assert_eq!(root([a].into_iter()), la);
        let mut node = vec![1u8];
        node.extend_from_slice(&la);
        node.extend_from_slice(&lb);
        let ab: Hash = Sha256::digest(&node).into();
        assert_eq!(root([a, b].into_iter()), ab);
        assert_ne!(root([b, a].into_iter()), ab);
    }

    #[test]
    fn odd_last_not_duplicated() {
        let (a, b, c): (&[u8], &[u8], &[u8]) = (b"a", b"b", b"c");
        assert_ne!(root([a, b, c].into_iter()), root([a, b, c, c].into_iter()));
        // Promotion: root(a, b, c) = node(node(a, b), leaf(c)).
        let want = node_hash(&node_hash(&leaf_hash(a), &leaf_hash(b)), &leaf_hash(c));
        assert_eq!(root([a, b, c].into_iter()), want);
    }
}
