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
    /// Keys changed since the last capture (repeats allowed: a mark is a
    /// push).
    dirty: Vec<[u8; 32]>,
    /// The last capture: changed keys in key order and their leaves.
    captured: Captured,
    /// The root of a capture that a later capture applied before its
    /// `captured_root` was asked.
    early: Option<Hash>,
    /// Scratch of `sort_dedup`.
    scratch: SortScratch,
    /// Scratch of `apply`: the indices of the nodes to rehash.
    touched: Vec<usize>,
    /// See [`AccountRoot::set_threads`].
    threads: usize,
}

/// See [`AccountRoot::capture`].
#[derive(Debug, Clone, Default)]
struct Captured {
    leaves: Vec<([u8; 32], Option<Hash>)>,
    pending: bool,
}

/// Buffers of [`sort_dedup`], kept from block to block.
#[derive(Debug, Clone, Default)]
struct SortScratch {
    keys: Vec<[u8; 32]>,
    starts: Vec<u32>,
    next: Vec<u32>,
}

/// Sorts `keys` into key order and drops repeats. Marks come in the order
/// accounts changed, a few times each: a counting sort by bucket (the
/// first two bytes; one pass to count, one to place) and then a sort of
/// each bucket's few keys take 0.36-0.44 of the time of one comparison
/// sort of them all (18 432 marks of 4 096 keys: 0.32 against 0.73-0.91
/// ms, one run).
fn sort_dedup(keys: &mut Vec<[u8; 32]>, scratch: &mut SortScratch) {
    if keys.len() < 256 {
        keys.sort_unstable_by(key_order);
        keys.dedup();
        return;
    }
    let SortScratch { keys: placed, starts, next } = scratch;
    starts.clear();
    starts.resize(BUCKETS + 1, 0);
    for k in keys.iter() {
        if let Some(c) = starts.get_mut(bucket_of(k) + 1) {
            *c += 1;
        }
    }
    for i in 1..starts.len() {
        let before = starts.get(i - 1).copied().unwrap_or(0);
        if let Some(c) = starts.get_mut(i) {
            *c += before;
        }
    }
    placed.clear();
    placed.resize(keys.len(), [0; 32]);
    next.clone_from(starts);
    for k in keys.iter() {
        let Some(at) = next.get_mut(bucket_of(k)) else { continue };
        if let Some(slot) = placed.get_mut(*at as usize) {
            *slot = *k;
        }
        *at += 1;
    }
    keys.clear();
    for w in starts.windows(2) {
        let (a, b) = match w {
            [a, b] => (*a as usize, *b as usize),
            _ => continue,
        };
        let Some(group) = placed.get_mut(a..b) else { continue };
        if group.len() > 1 {
            group.sort_unstable_by(key_order);
        }
        let mut last: Option<&[u8; 32]> = None;
        for k in group.iter() {
            if last != Some(k) {
                keys.push(*k);
            }
            last = Some(k);
        }
    }
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
        AccountRoot {
            buckets: vec![Bucket::default(); BUCKETS],
            levels,
            dirty: Vec::new(),
            captured: Captured::default(),
            early: None,
            scratch: SortScratch::default(),
            touched: Vec::new(),
            threads: 1,
        }
    }

    /// Notes that `key`'s account changed (or came into being).
    pub fn mark(&mut self, key: [u8; 32]) {
        self.dirty.push(key);
    }

    /// Marks since the last [`root`](AccountRoot::root) or
    /// [`capture`](AccountRoot::capture) (an account marked twice counts
    /// twice).
    pub fn pending(&self) -> usize {
        self.dirty.len()
    }

    /// Brings the tree up to date and returns the root. `leaf(key)` gives
    /// a changed account's leaf hash (`None`: it no longer exists).
    pub fn root(&mut self, leaf: impl Fn(&[u8; 32]) -> Option<Hash> + Sync) -> Hash {
        self.capture(leaf);
        self.apply()
    }

    /// The first half of [`root`](AccountRoot::root): takes the leaves of
    /// the accounts changed since the last capture, as they are now, and
    /// leaves the tree as it was. The accounts may change again at once;
    /// [`captured_root`](AccountRoot::captured_root) later gives the root
    /// as of this capture. A capture still pending is applied first (its
    /// root kept for `captured_root`).
    ///
    /// This splits a block's state root in two: the part that must see
    /// the block's final state (a lookup and a leaf hash per changed
    /// account), and the part that need not (buckets and the tree above
    /// them), which can wait for a later moment.
    pub fn capture(&mut self, leaf: impl Fn(&[u8; 32]) -> Option<Hash> + Sync) {
        if self.captured.pending {
            self.early = Some(self.apply());
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        sort_dedup(&mut dirty, &mut self.scratch);
        let threads = self.threads_for(dirty.len());
        let c = &mut self.captured;
        c.leaves.clear();
        c.leaves.resize(dirty.len(), ([0; 32], None));
        let fill = |keys: &[[u8; 32]], out: &mut [([u8; 32], Option<Hash>)]| {
            for (k, o) in keys.iter().zip(out.iter_mut()) {
                *o = (*k, leaf(k));
            }
        };
        if threads > 1 {
            let per = dirty.len().div_ceil(threads);
            std::thread::scope(|s| {
                let mut parts = dirty.chunks(per).zip(c.leaves.chunks_mut(per));
                let first = parts.next();
                for (keys, out) in parts {
                    s.spawn(|| fill(keys, out));
                }
                if let Some((keys, out)) = first {
                    fill(keys, out);
                }
            });
        } else {
            fill(&dirty, &mut c.leaves);
        }
        c.pending = true;
        // Keep the buffer's memory for the next block's marks.
        dirty.clear();
        self.dirty = dirty;
    }

    /// The second half of [`root`](AccountRoot::root): the root as of the
    /// last [`capture`](AccountRoot::capture), whatever changed since.
    /// Applies that capture if it is still pending.
    pub fn captured_root(&mut self) -> Hash {
        let early = self.early.take();
        match early {
            Some(r) if !self.captured.pending => r,
            _ => self.apply(),
        }
    }

    /// Applies the pending capture (if any) to the buckets and the tree
    /// and returns the tree's root.
    fn apply(&mut self) -> Hash {
        let mut captured = std::mem::take(&mut self.captured.leaves);
        self.captured.pending = false;
        let mut touched: Vec<usize> = std::mem::take(&mut self.touched);
        touched.clear();
        let threads = self.threads_for(captured.len());
        if threads > 1 {
            // Parts that end at a bucket's end touch disjoint buckets.
            let per = captured.len().div_ceil(threads);
            let mut cuts = vec![0usize];
            while let Some(&at) = cuts.last() {
                let mut end = (at + per).min(captured.len());
                let last = captured.get(end.saturating_sub(1)).map(|(k, _)| bucket_of(k));
                while end < captured.len() && captured.get(end).map(|(k, _)| bucket_of(k)) == last {
                    end += 1;
                }
                cuts.push(end);
                if end == captured.len() {
                    break;
                }
            }
            let parts: Vec<(usize, usize)> = cuts.windows(2).filter_map(|w| Some((*w.first()?, *w.get(1)?))).collect();
            let mut results: Vec<Vec<(usize, Hash)>> = vec![Vec::new(); parts.len()];
            std::thread::scope(|s| {
                let mut rest: &mut [Bucket] = &mut self.buckets;
                let mut offset = 0usize;
                let mut first = None;
                for (&(a, b), out) in parts.iter().zip(results.iter_mut()) {
                    let Some(items) = captured.get(a..b) else { continue };
                    let Some(hi) = items.last().map(|(k, _)| bucket_of(k) + 1) else { continue };
                    let n = (hi - offset).min(rest.len());
                    let (mine, after) = std::mem::take(&mut rest).split_at_mut(n);
                    let base = offset;
                    rest = after;
                    offset = hi;
                    if first.is_none() {
                        first = Some((mine, base, items, out));
                    } else {
                        s.spawn(move || update_buckets(mine, base, items, out));
                    }
                }
                if let Some((mine, base, items, out)) = first {
                    update_buckets(mine, base, items, out);
                }
            });
            for (b, h) in results.into_iter().flatten() {
                if let Some(n) = self.levels.first_mut().and_then(|l| l.get_mut(b)) {
                    *n = h;
                }
                touched.push(b);
            }
        } else {
            let mut hashes = Vec::new();
            update_buckets(&mut self.buckets, 0, &captured, &mut hashes);
            for (b, h) in hashes {
                if let Some(n) = self.levels.first_mut().and_then(|l| l.get_mut(b)) {
                    *n = h;
                }
                touched.push(b);
            }
        }
        captured.clear();
        self.captured.leaves = captured;
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
        self.touched = touched;
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
        self.buckets.get(b).map_or([0; 32], Bucket::hash)
    }

    /// Threads for `n` changed accounts: more than one only when asked
    /// ([`set_threads`](AccountRoot::set_threads)) and the work is large
    /// enough to pay for starting them.
    fn threads_for(&self, n: usize) -> usize {
        if n < PARALLEL_MIN {
            1
        } else {
            self.threads.clamp(1, n / (PARALLEL_MIN / 2))
        }
    }

    /// Spreads the work of a large root over `n` threads (scoped, started
    /// per root; 1, the default, keeps it on the caller's thread). For
    /// replaying blocks at start-up, when nothing else runs; a running
    /// node's control thread keeps 1, its other CPUs being the data
    /// cores'. The root is the same whatever `n`.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }
}

/// Changed accounts below which a root stays on one thread.
const PARALLEL_MIN: usize = 8192;

/// Applies `items` (key order) to `buckets`, which are the buckets from
/// number `base` on, and appends each changed bucket's number and new hash
/// to `out`, in order.
fn update_buckets(
    buckets: &mut [Bucket],
    base: usize,
    items: &[([u8; 32], Option<Hash>)],
    out: &mut Vec<(usize, Hash)>,
) {
    let mut last: Option<usize> = None;
    for (key, h) in items {
        let b = bucket_of(key);
        let Some(bucket) = b.checked_sub(base).and_then(|i| buckets.get_mut(i)) else { continue };
        let at = bucket.keys.binary_search_by(|k| key_order(k, key));
        match (at, h) {
            (Ok(i), Some(h)) => {
                if let Some(e) = bucket.leaves.get_mut(i) {
                    *e = *h;
                }
            }
            (Err(i), Some(h)) => {
                bucket.keys.insert(i, *key);
                bucket.leaves.insert(i, *h);
            }
            (Ok(i), None) => {
                bucket.keys.remove(i);
                bucket.leaves.remove(i);
            }
            (Err(_), None) => continue,
        }
        if last != Some(b) {
            if let Some(p) = last {
                out.push((p, buckets.get(p - base).map_or([0; 32], Bucket::hash)));
            }
            last = Some(b);
        }
    }
    if let Some(p) = last {
        out.push((p, buckets.get(p - base).map_or([0; 32], Bucket::hash)));
    }
}

impl Bucket {
    /// SHA-256 over `0x01 || leaves` (32 zero bytes when empty).
    fn hash(&self) -> Hash {
        match self {
            v if !v.leaves.is_empty() => {
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
    fn marks_are_sorted_and_deduplicated_as_a_comparison_sort_would() {
        let mut scratch = SortScratch::default();
        for n in [0usize, 1, 5, 255, 256, 300, 5_000] {
            // Repeats, keys sharing a bucket, and keys sharing 16 bytes.
            let mut keys: Vec<[u8; 32]> = (0..n).map(|i| key((i % (n / 3 + 1)) as u32)).collect();
            for i in 0..n / 10 {
                let mut k = key(i as u32);
                k[31] ^= 0xFF;
                keys.push(k);
                k[2] ^= 1;
                keys.push(k);
            }
            let mut want = keys.clone();
            want.sort_unstable();
            want.dedup();
            sort_dedup(&mut keys, &mut scratch);
            assert_eq!(keys, want, "{n} marks");
        }
    }

    #[test]
    fn a_capture_is_the_root_of_the_accounts_as_they_were_when_it_was_taken() {
        let mut leaves: HashMap<[u8; 32], Hash> = HashMap::new();
        let mut r = AccountRoot::new();
        let mut check = AccountRoot::new();
        for round in 0..30u32 {
            for i in 0..(round * 53 % 700) {
                let k = key(i * 3 + round % 7);
                if i % 11 == 5 {
                    leaves.remove(&k);
                } else {
                    leaves.insert(k, Sha256::digest([round as u8, i as u8, 1]).into());
                }
                r.mark(k);
                check.mark(k);
            }
            let want = check.root(|k| leaves.get(k).copied());
            r.capture(|k| leaves.get(k).copied());
            // The accounts move on before the root is asked for.
            let later = key(10_000 + round);
            leaves.insert(later, [round as u8; 32]);
            r.mark(later);
            check.mark(later);
            if round % 3 == 0 {
                // Someone asks for the current root in between: the
                // capture's root is still the one of its moment.
                assert_eq!(r.root(|k| leaves.get(k).copied()), root_of(leaves.iter().map(|(k, h)| (*k, *h))));
            }
            assert_eq!(r.captured_root(), want, "round {round}");
        }
        assert_eq!(r.root(|k| leaves.get(k).copied()), root_of(leaves.iter().map(|(k, h)| (*k, *h))));
    }

    #[test]
    fn a_root_spread_over_threads_is_the_root_on_one() {
        let mut leaves: HashMap<[u8; 32], Hash> = HashMap::new();
        let mut one = AccountRoot::new();
        let mut many = [2usize, 3, 4].map(|n| {
            let mut r = AccountRoot::new();
            r.set_threads(n);
            r
        });
        for round in 0..4u32 {
            // Enough changes to go parallel: new accounts, changed ones,
            // removed ones, several in a bucket.
            for i in 0..(PARALLEL_MIN as u32 * 2 + round * 1_001) {
                let k = key(i % 20_000 + round * 3_000);
                if (i + round) % 13 == 0 {
                    leaves.remove(&k);
                } else {
                    leaves.insert(k, Sha256::digest([round as u8, i as u8, (i >> 8) as u8]).into());
                }
                one.mark(k);
                many.iter_mut().for_each(|r| r.mark(k));
            }
            let want = one.root(|k| leaves.get(k).copied());
            assert_eq!(want, root_of(leaves.iter().map(|(k, h)| (*k, *h))));
            for r in &mut many {
                assert_eq!(r.root(|k| leaves.get(k).copied()), want, "round {round}, {} threads", r.threads);
            }
        }
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
