//! Copies of one transaction inside one signature batch (one burst, or
//! the bursts of a batch across bursts, [`crate::batch`]; "burst" below
//! means either). The id (SHA-256 of the
//! unsigned bytes) does not cover the signature, so copies of an id come in
//! two kinds:
//!
//! - byte-identical copies (same id, same signature) of a transaction
//!   already queued in the burst: their verdict is the first copy's, so
//!   they are `duplicate` before any signature work;
//! - copies with another signature: one of them may be the genuine
//!   transaction behind a forged first copy, so they are verified, but at
//!   most [`MAX_QUEUED`] per id and burst (the rest are `duplicate`), and of
//!   those that verify only the first stands ([`BurstCopies::accept`]).
//!
//! The table is an open-addressed index on the id's first bytes (ids are
//! SHA-256 outputs; a sender who grinds ids onto one slot lengthens probes
//! by at most [`MAX_IDS`] per lookup, little next to the signature checks
//! those distinct transactions cost anyway) into the burst's entries: the
//! id's first 8 bytes (equal prefixes of SHA-256 outputs stand for equal
//! ids) and a 64-bit multilinear hash of the first copy's signature under
//! keys drawn from the frame path's seed, so a sender who cannot see the
//! keys cannot make another signature hash like the genuine one. Allocated
//! once, cleared per burst; a burst with more distinct ids than
//! [`MAX_IDS`] is judged without the rule for the rest.

/// Copies of one id a burst verifies at most.
pub const MAX_QUEUED: u8 = 2;

/// Distinct ids a batch tracks: above the most a batch can carry, the
/// largest configurable batch ([`crate::batch::BatchPolicy::MAX_SIGS`])
/// plus one burst of 64 datagrams of 2048 bytes (13 transactions a
/// datagram, 832 a burst).
pub const MAX_IDS: usize = 2048;

/// Index slots (a power of two, at most half full).
const SLOTS: usize = MAX_IDS * 2;

/// One id of the burst.
#[derive(Clone, Copy)]
struct Entry {
    /// The id's first 8 bytes.
    id: u64,
    /// Keyed hash of the first copy's signature.
    sig: u64,
    /// Copies queued for verification.
    queued: u8,
    /// A copy verified and stands.
    accepted: bool,
}

/// What to do with a transaction whose id has been seen in this burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// The first copy, or another signature still worth verifying: queue it.
    Verify,
    /// A byte-identical copy, or one over [`MAX_QUEUED`]: `duplicate`.
    Duplicate,
}

/// The table (see the module docs): an index of 2-byte slots (8 KiB,
/// cleared per burst, so it stays in L1) into the burst's entries, which
/// are appended in arrival order.
pub struct BurstCopies {
    index: Vec<u16>,
    entries: Vec<Entry>,
    /// Keys of the signature hash: one per 8-byte word, then one odd
    /// multiplier per word.
    keys: [u64; 16],
    /// Distinct ids noted this burst (tracked or not).
    distinct: usize,
}

impl core::fmt::Debug for BurstCopies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BurstCopies").field("ids", &self.entries.len()).finish()
    }
}

#[inline(always)]
fn id_key(id: &[u8; 32]) -> u64 {
    let mut k = [0u8; 8];
    k.copy_from_slice(&id[..8]);
    u64::from_le_bytes(k)
}

impl BurstCopies {
    /// An empty table whose signature hash is keyed with `keys`.
    pub fn new(keys: [u64; 16]) -> Self {
        let mut keys = keys;
        for k in keys.iter_mut().skip(8) {
            *k |= 1;
        }
        BurstCopies { index: vec![0; SLOTS], entries: Vec::with_capacity(MAX_IDS), keys, distinct: 0 }
    }

    /// Forgets the last burst.
    pub fn start_burst(&mut self) {
        self.distinct = 0;
        if !self.entries.is_empty() {
            self.index.fill(0);
            self.entries.clear();
        }
    }

    /// Multilinear hash of a signature's eight words: independent products,
    /// no chain between them.
    #[inline(always)]
    fn sig_hash(&self, sig: &[u8]) -> u64 {
        let mut h = 0u64;
        for (i, c) in sig.chunks_exact(8).take(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            let (a, m) = (self.keys.get(i).copied().unwrap_or(0), self.keys.get(i + 8).copied().unwrap_or(1));
            h = h.wrapping_add(u64::from_le_bytes(w).wrapping_add(a).wrapping_mul(m));
        }
        h
    }

    /// The index slot of `id`: its entry's, or the empty one where it would
    /// go.
    #[inline(always)]
    fn slot(&self, id: u64) -> usize {
        let mut i = (id as usize) & (SLOTS - 1);
        // At most half full: an empty slot is always found.
        loop {
            match self.index.get(i).copied() {
                Some(0) | None => return i,
                Some(e) if self.entries.get(usize::from(e) - 1).is_some_and(|x| x.id == id) => return i,
                Some(_) => i = (i + 1) & (SLOTS - 1),
            }
        }
    }

    /// Notes a transaction of this burst with `id` and signature `sig`
    /// before verification.
    #[inline]
    pub fn note(&mut self, id: &[u8; 32], sig: &[u8]) -> Copy {
        let id = id_key(id);
        let i = self.slot(id);
        match self.index.get(i).copied() {
            Some(e) if e != 0 => {
                let sig = self.sig_hash(sig);
                let Some(x) = self.entries.get_mut(usize::from(e) - 1) else { return Copy::Verify };
                if x.sig == sig || x.queued >= MAX_QUEUED {
                    return Copy::Duplicate;
                }
                x.queued += 1;
                Copy::Verify
            }
            _ => {
                self.distinct += 1;
                if self.entries.len() < MAX_IDS {
                    let sig = self.sig_hash(sig);
                    self.entries.push(Entry { id, sig, queued: 1, accepted: false });
                    if let Some(s) = self.index.get_mut(i) {
                        *s = self.entries.len() as u16;
                    }
                }
                Copy::Verify
            }
        }
    }

    /// Distinct ids noted since the burst started (those past [`MAX_IDS`]
    /// each count as new).
    pub fn distinct(&self) -> usize {
        self.distinct
    }

    /// Whether a copy of `id` verified in this burst and stands.
    #[inline]
    pub fn accepted(&self, id: &[u8; 32]) -> bool {
        let i = self.slot(id_key(id));
        match self.index.get(i).copied() {
            Some(e) if e != 0 => self.entries.get(usize::from(e) - 1).is_some_and(|x| x.accepted),
            _ => false,
        }
    }

    /// A verified transaction of this burst with `id`: true if it stands,
    /// false if another copy of its id already did (it is a `duplicate`).
    #[inline]
    pub fn accept(&mut self, id: &[u8; 32]) -> bool {
        let i = self.slot(id_key(id));
        match self.index.get(i).copied() {
            Some(e) if e != 0 => match self.entries.get_mut(usize::from(e) - 1) {
                Some(x) => !core::mem::replace(&mut x.accepted, true),
                None => true,
            },
            // Not tracked (the table was full): nothing to compare with.
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_copies_and_extra_signatures_are_duplicates() {
        let mut c = BurstCopies::new([0x1234_5678_9abc_def1; 16]);
        c.start_burst();
        let (id, other) = ([7u8; 32], [8u8; 32]);
        assert_eq!(c.note(&id, &[1; 64]), Copy::Verify);
        assert_eq!(c.note(&id, &[1; 64]), Copy::Duplicate, "byte-identical");
        assert_eq!(c.note(&id, &[2; 64]), Copy::Verify, "another signature: maybe the genuine one");
        assert_eq!(c.note(&id, &[3; 64]), Copy::Duplicate, "over MAX_QUEUED");
        assert_eq!(c.note(&other, &[1; 64]), Copy::Verify);
        assert!(c.accept(&id));
        assert!(!c.accept(&id), "a second verified copy is a duplicate");
        assert!(c.accept(&other));
        // The next burst starts empty.
        c.start_burst();
        assert_eq!(c.note(&id, &[1; 64]), Copy::Verify);
        assert!(c.accept(&id));
    }

    #[test]
    fn ids_ground_onto_one_slot_still_resolve_and_a_full_table_falls_back() {
        let mut c = BurstCopies::new([99; 16]);
        c.start_burst();
        // Ids ground to one home slot (equal low bits of the first 8 bytes).
        let ids: Vec<[u8; 32]> = (0..MAX_IDS + 10)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&((i as u64 + 1) << 20).to_le_bytes());
                id
            })
            .collect();
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        for id in &ids[..MAX_IDS] {
            assert_eq!(c.note(id, &[0; 64]), Copy::Verify);
        }
        for id in &ids[..MAX_IDS] {
            assert_eq!(c.note(id, &[0; 64]), Copy::Duplicate);
        }
        // Past MAX_IDS distinct ids: no rule, every copy is verified.
        assert_eq!(c.note(&ids[MAX_IDS], &[0; 64]), Copy::Verify);
        assert_eq!(c.note(&ids[MAX_IDS], &[0; 64]), Copy::Verify);
        assert!(c.accept(&ids[MAX_IDS]));
    }
}
