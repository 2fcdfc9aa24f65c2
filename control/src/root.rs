//! The state root: one hash over every account, kept up to date at the
//! cost of the accounts that changed, not of all of them.
//!
//! Accounts fall into 65 536 buckets by the first two bytes of their key.
//! A bucket holds its accounts' leaf hashes in key order; its hash is
//! SHA-256 over `0x01 || leaf || leaf || ...` (the empty bucket hashes to
//! 32 zero bytes). Above the buckets, in bucket order, is a 16-ary Merkle
//! tree: each inner node is SHA-256 over `0x02 || its 16 children` (levels
//! of 4 096, 256 and 16 nodes, then the root). A leaf is SHA-256 over
//! `0x00 || key || the account's encoding` (the caller's, see
//! [`crate::state::leaf_hash`]).
//!
//! Changes are marked ([`AccountRoot::mark`]) as they happen;
//! [`AccountRoot::root`] then rehashes the marked leaves, their buckets, and
//! the tree paths above those buckets. With `n` accounts and `d` changed
//! since the last root, that is `d` leaf hashes, at most `d` bucket hashes
//! of `n / 65 536` leaves each, and at most 4 369 inner nodes of 513 bytes
//! (when most buckets changed, a quarter of the bytes a binary tree over
//! the same buckets would hash). A bucket that someone fills by grinding
//! keys costs its rehash only when one of its accounts changes, and every
//! account in it was paid for (`min_fee` at least).
#![deny(clippy::indexing_slicing)]

use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// log2 of the number of buckets.
const BUCKET_BITS: u32 = 16;
/// The number of buckets.
pub const BUCKETS: usize = 1 << BUCKET_BITS;

fn bucket_of(key: &[u8; 32]) -> usize {
    usize::from(u16::from_be_bytes([key[0], key[1]]))
}

/// One bucket: its keys in order and their leaves, side by side so that
/// the bucket's hash is one pass over contiguous leaves.
#[derive(Debug, Clone, Default)]
struct Bucket {
    keys: Vec<[u8; 32]>,
    leaves: Vec<Hash>,
}

/// The first 16 bytes of a key as a number: orders keys as their bytes do
/// for all but ties, which the full comparison breaks.
fn prefix(k: &[u8; 32]) -> u128 {
    let mut p = [0u8; 16];
    p.copy_from_slice(&k[..16]);
    u128::from_be_bytes(p)
}

fn key_order(a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
    prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b))
}

/// Children per inner node.
const FANOUT: usize = 16;

/// Leaf hashes by bucket and the tree above the buckets.
#[derive(Debug, Clone)]
pub struct AccountRoot {
    buckets: Vec<Bucket>,
    /// `levels[0]` the bucket hashes (65 536), each next level 16 times
    /// smaller, the last one the root alone.
    levels: Vec<Vec<Hash>>,
    /// Keys changed since the last root (repeats allowed: a mark is a push).
    dirty: Vec<[u8; 32]>,
}

impl Default for AccountRoot {
    fn default() -> Self {
        Self::new()
    }
}

impl AccountRoot {
    /// The root of no accounts; every node computed.
    pub fn new() -> AccountRoot {
        // Every node of a level of the empty tree is the same hash: one
        // per level, not one per node.
        let mut levels = vec![vec![[0u8; 32]; BUCKETS]];
        let mut below: Hash = [0; 32];
        let mut width = BUCKETS;
        while width > 1 {
            width /= FANOUT;
            below = inner(&[below; FANOUT]);
            levels.push(vec![below; width]);
        }
        AccountRoot { buckets: vec![Bucket::default(); BUCKETS], levels, dirty: Vec::new() }
    }

    /// Notes that `key`'s account changed (or came into being).
    pub fn mark(&mut self, key: [u8; 32]) {
        self.dirty.push(key);
    }

    /// Marks since the last [`root`](AccountRoot::root) (an account marked
    /// twice counts twice).
    pub fn pending(&self) -> usize {
        self.dirty.len()
    }

    /// Brings the tree up to date and returns the root. `leaf(key)` gives
    /// a changed account's leaf hash (`None`: it no longer exists).
    pub fn root(&mut self, leaf: impl Fn(&[u8; 32]) -> Option<Hash>) -> Hash {
        // Sorted, the changed keys come bucket by bucket (the bucket is the
        // first two bytes) and in each bucket's own order.
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable_by(key_order);
        dirty.dedup();
        let mut touched: Vec<usize> = Vec::new();
        for key in &dirty {
            let b = bucket_of(key);
            let Some(bucket) = self.buckets.get_mut(b) else { continue };
            let at = bucket.keys.binary_search_by(|k| key_order(k, key));
            match (at, leaf(key)) {
                (Ok(i), Some(h)) => {
                    if let Some(e) = bucket.leaves.get_mut(i) {
                        *e = h;
                    }
                }
                (Err(i), Some(h)) => {
                    bucket.keys.insert(i, *key);
                    bucket.leaves.insert(i, h);
                }
                (Ok(i), None) => {
                    bucket.keys.remove(i);
                    bucket.leaves.remove(i);
                }
                (Err(_), None) => continue,
            }
            if touched.last() != Some(&b) {
                touched.push(b);
            }
        }
        // Keep the buffer's memory for the next block's marks.
        dirty.clear();
        self.dirty = dirty;
        for &b in &touched {
            let h = self.bucket_hash(b);
            if let Some(n) = self.levels.first_mut().and_then(|l| l.get_mut(b)) {
                *n = h;
            }
        }
        // Parents level by level; `touched` holds each level's indices.
        for up in 1..self.levels.len() {
            touched.iter_mut().for_each(|i| *i /= FANOUT);
            touched.dedup();
            for &i in &touched {
                let h = match self.levels.get(up - 1).and_then(|l| l.get(i * FANOUT..(i + 1) * FANOUT)) {
                    Some(children) => inner(children),
                    None => continue,
                };
                if let Some(n) = self.levels.get_mut(up).and_then(|l| l.get_mut(i)) {
                    *n = h;
                }
            }
        }
        self.levels.last().and_then(|l| l.first()).copied().unwrap_or_default()
    }

    /// The tree over `leaves` (key and leaf hash, distinct keys) with
    /// every node computed: what marking each key and one
    /// [`root`](AccountRoot::root) give, but the caller computes the
    /// leaves in whatever order suits it (a snapshot's loader: the account
    /// map's own order, where key order would miss the cache on nearly
    /// every account of a large map).
    pub fn from_leaves(mut leaves: Vec<([u8; 32], Hash)>) -> AccountRoot {
        leaves.sort_unstable_by(|a, b| key_order(&a.0, &b.0));
        let mut r = AccountRoot::new();
        for (k, h) in leaves {
            if let Some(bucket) = r.buckets.get_mut(bucket_of(&k)) {
                bucket.keys.push(k);
                bucket.leaves.push(h);
            }
        }
        for b in 0..BUCKETS {
            let h = r.bucket_hash(b);
            if let Some(n) = r.levels.first_mut().and_then(|l| l.get_mut(b)) {
                *n = h;
            }
        }
        for up in 1..r.levels.len() {
            let width = r.levels.get(up).map_or(0, Vec::len);
            for i in 0..width {
                let h = match r.levels.get(up - 1).and_then(|l| l.get(i * FANOUT..(i + 1) * FANOUT)) {
                    Some(children) => inner(children),
                    None => continue,
                };
                if let Some(n) = r.levels.get_mut(up).and_then(|l| l.get_mut(i)) {
                    *n = h;
                }
            }
        }
        r
    }

    fn bucket_hash(&self, b: usize) -> Hash {
        match self.buckets.get(b) {
            Some(v) if !v.leaves.is_empty() => {
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(v.leaves.as_flattened());
                h.finalize().into()
            }
            _ => [0; 32],
        }
    }
}

/// An inner node: SHA-256 over `0x02 || children`.
fn inner(children: &[Hash]) -> Hash {
    Sha256::new().chain_update([2u8]).chain_update(children.as_flattened()).finalize().into()
}

/// The root of `leaves` (key, leaf hash) computed from scratch, the
/// definition [`AccountRoot`] maintains incrementally.
pub fn root_of(leaves: impl IntoIterator<Item = ([u8; 32], Hash)>) -> Hash {
    let mut r = AccountRoot::new();
    let all: Vec<([u8; 32], Hash)> = leaves.into_iter().collect();
    for (k, _) in &all {
        r.mark(*k);
    }
    let map: std::collections::HashMap<[u8; 32], Hash> = all.into_iter().collect();
    r.root(|k| map.get(k).copied())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key(i: u32) -> [u8; 32] {
        Sha256::digest(i.to_le_bytes()).into()
    }

    #[test]
    fn incremental_updates_equal_a_rebuild_from_scratch() {
        let mut leaves: HashMap<[u8; 32], Hash> = HashMap::new();
        let mut r = AccountRoot::new();
        let empty = r.root(|_| None);
        // Empty: every bucket is zeros.
        assert_eq!(empty, root_of([]));
        let mut roots = std::collections::HashSet::new();
        for round in 0..20u32 {
            for i in 0..(round * 37 % 500) {
                let k = key(i * 7 + round);
                let h: Hash = Sha256::digest([round as u8, i as u8]).into();
                leaves.insert(k, h);
                r.mark(k);
            }
            let got = r.root(|k| leaves.get(k).copied());
            assert_eq!(got, root_of(leaves.iter().map(|(k, h)| (*k, *h))), "round {round}");
            assert_eq!(r.pending(), 0);
            roots.insert(got);
        }
        assert!(roots.len() > 15, "the root follows the accounts");
        // A removed leaf, and keys that share a bucket.
        let k = *leaves.keys().next().unwrap();
        leaves.remove(&k);
        r.mark(k);
        let mut twin = k;
        twin[31] ^= 1;
        leaves.insert(twin, [5; 32]);
        r.mark(twin);
        assert_eq!(r.root(|k| leaves.get(k).copied()), root_of(leaves.iter().map(|(k, h)| (*k, *h))));
    }

    #[test]
    fn the_empty_tree_is_built_level_by_level() {
        let r = AccountRoot::new();
        assert_eq!(r.levels.iter().map(Vec::len).collect::<Vec<_>>(), [65_536, 4096, 256, 16, 1]);
        // Each level's nodes hash their 16 children.
        for up in 1..r.levels.len() {
            for (i, n) in r.levels[up].iter().enumerate() {
                assert_eq!(*n, inner(&r.levels[up - 1][i * 16..(i + 1) * 16]));
            }
        }
    }

    #[test]
    fn a_tree_built_from_leaves_equals_the_incremental_one() {
        assert_eq!(AccountRoot::from_leaves(Vec::new()).root(|_| None), root_of([]));
        for n in [1u32, 2, 100, 5_000] {
            let leaves: Vec<([u8; 32], Hash)> =
                (0..n).map(|i| (key(i), Sha256::digest([i as u8, (i >> 8) as u8]).into())).collect();
            let mut built = AccountRoot::from_leaves(leaves.clone());
            let want = root_of(leaves.iter().copied());
            assert_eq!(built.root(|_| None), want, "{n} leaves");
            // It goes on incrementally like any other.
            let changed: Hash = [9; 32];
            built.mark(key(0));
            let mut all: HashMap<[u8; 32], Hash> = leaves.into_iter().collect();
            all.insert(key(0), changed);
            assert_eq!(built.root(|k| all.get(k).copied()), root_of(all.iter().map(|(k, h)| (*k, *h))));
        }
    }

    #[test]
    fn the_root_depends_on_every_leaf_and_key() {
        let a = root_of([([1; 32], [9; 32]), ([2; 32], [8; 32])]);
        assert_ne!(a, root_of([([1; 32], [9; 32]), ([2; 32], [7; 32])]));
        assert_ne!(a, root_of([([1; 32], [9; 32]), ([3; 32], [8; 32])]));
        assert_ne!(a, root_of([([1; 32], [9; 32])]));
        // The order leaves are given in does not matter.
        assert_eq!(a, root_of([([2; 32], [8; 32]), ([1; 32], [9; 32])]));
    }
}
