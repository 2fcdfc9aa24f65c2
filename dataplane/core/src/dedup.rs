//! A per-core filter of recently accepted transaction ids: a direct-mapped
//! table (the id's first 8 bytes pick the slot, the whole id must match),
//! so lookups and inserts are one cache line and never allocate. It
//! forgets on collision, so it is a cheap filter in front of the
//! authoritative shard-side deduplication, not the final word.

use crate::path::TxFilter;

/// The filter (see the module docs): `2^log2_slots` slots ([`IdFilter::new`])
/// of one 32-byte id each.
pub struct IdFilter {
    slots: Vec<[u8; 32]>,
    mask: usize,
}

impl core::fmt::Debug for IdFilter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IdFilter").field("slots", &self.slots.len()).finish()
    }
}

const EMPTY: [u8; 32] = [0; 32];

impl IdFilter {
    /// A table of `2^log2_slots` ids (32 bytes each).
    pub fn new(log2_slots: u32) -> Self {
        let n = 1usize << log2_slots;
        IdFilter { slots: vec![EMPTY; n], mask: n - 1 }
    }

    #[inline(always)]
    fn index(&self, id: &[u8; 32]) -> usize {
        let mut k = [0u8; 8];
        k.copy_from_slice(&id[..8]);
        u64::from_le_bytes(k) as usize & self.mask
    }

    /// Remembers `id`; false if it was already there (a duplicate).
    #[inline]
    pub fn insert(&mut self, id: &[u8; 32]) -> bool {
        let i = self.index(id);
        match self.slots.get_mut(i) {
            Some(s) if s == id => false,
            Some(s) => {
                *s = *id;
                true
            }
            None => true,
        }
    }

    /// Forgets the id in the slot that `prefix` (an id's first 8 bytes,
    /// little-endian) picks, if its prefix matches: the control thread tells
    /// the cores to forget ids the ledger dropped so that a resend is
    /// verified again instead of being a `duplicate`. Forgetting an id that
    /// shares the prefix costs only a verification of its next copy.
    pub fn forget_prefix(&mut self, prefix: u64) {
        let i = prefix as usize & self.mask;
        if let Some(s) = self.slots.get_mut(i) {
            if s[..8] == prefix.to_le_bytes() {
                *s = EMPTY;
            }
        }
    }

    /// An id's key for [`forget_prefix`](Self::forget_prefix).
    pub fn prefix(id: &[u8; 32]) -> u64 {
        let mut k = [0u8; 8];
        k.copy_from_slice(&id[..8]);
        u64::from_le_bytes(k)
    }

    /// Memory used, for the docs and logs.
    pub fn bytes(&self) -> usize {
        self.slots.len() * 32
    }
}

impl TxFilter for IdFilter {
    #[inline]
    fn seen(&self, id: &[u8; 32]) -> bool {
        // The all-zero id is SHA-256 of nothing we can receive; an empty
        // slot never matches a real id.
        self.slots.get(self.index(id)).is_some_and(|s| s == id && *s != EMPTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_seen() {
        let mut f = IdFilter::new(4);
        let a = [1u8; 32];
        assert!(!f.seen(&a));
        assert!(f.insert(&a));
        assert!(f.seen(&a));
        assert!(!f.insert(&a));
        // Same slot (first 8 bytes equal modulo 16), different id: evicts.
        let mut b = a;
        b[31] = 2;
        assert!(!f.seen(&b));
        assert!(f.insert(&b));
        assert!(!f.seen(&a));
        assert_eq!(f.bytes(), 16 * 32);
    }
}
