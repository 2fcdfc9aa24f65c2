//! Ed25519 transaction signatures exactly as `att-wire.md` ("Signature
//! verification is strict") says, batched across every transaction of a
//! burst.
//!
//! - `A` and `R` must be canonical (y < p) and not of small order: checked
//!   here on the encodings, before any curve arithmetic.
//! - `S` must be canonical (S < L).
//! - The equation is the cofactored one, `ed25519-zebra`'s (ZIP-215) for
//!   single and batch verification. [`verify_single`] is zebra's; the batch
//!   writes zebra's batch equation out over curve25519-dalek so that public
//!   keys come decompressed from a per-verifier cache (see [`BatchVerifier`]),
//!   and a property test holds its verdicts to zebra's.
//!
//! So single and batch verification give the same answer. The batch
//! coefficients are 128-bit values from a ChaCha CSPRNG seeded by the host
//! (from the OS) once per verifier. A failed batch is bisected: one forged signature in
//! a batch of n costs about 2·log2(n) extra batch checks. Bisection is
//! bounded: after [`FAILED_BATCHES`] failed multi-signature checks in one
//! burst, every signature of a sub-batch still to check is verified alone,
//! so a burst of nothing but bad signatures costs a few times an all-good
//! burst of the same size (about n·log2(n) batch work unbounded), and every
//! verdict stays exact.
//!
//! Allocation: curve25519-dalek's multiscalar multiplication builds its
//! tables in vectors per batch check; that is the one allocation per batch
//! the frame path makes (the library requires it). Our own buffers,
//! including the key cache, are allocated once and reused.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sha2::{Digest, Sha512};

use crate::wire::tx::{signing_header, FIXED_LEN, SIGNING_HEADER_LEN, SIG_LEN};

/// Encodings with y < p of the eight points of small order, including the
/// two (x = 0) whose sign bit is set. A test derives them from the curve.
pub const SMALL_ORDER_ENCODINGS: [[u8; 32]; 10] = {
    const fn enc(lo: [u8; 2], hi_last: u8, fill: u8, mid: Option<[u8; 30]>) -> [u8; 32] {
        let mut e = [fill; 32];
        e[0] = lo[0];
        if let Some(m) = mid {
            let mut i = 0;
            while i < 30 {
                e[i + 1] = m[i];
                i += 1;
            }
        } else {
            e[1] = lo[1];
        }
        e[31] = hi_last;
        e
    }
    const O8A: [u8; 30] = [
        0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53,
        0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03,
    ];
    const O8B: [u8; 30] = [
        0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac,
        0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc,
    ];
    [
        enc([0x01, 0x00], 0x00, 0x00, None), // identity
        enc([0x01, 0x00], 0x80, 0x00, None), // identity, sign bit set
        enc([0xec, 0xff], 0x7f, 0xff, None), // order 2 (y = -1)
        enc([0xec, 0xff], 0xff, 0xff, None), // order 2, sign bit set
        enc([0x00, 0x00], 0x00, 0x00, None), // order 4 (y = 0)
        enc([0x00, 0x00], 0x80, 0x00, None), // order 4, other x
        enc([0xc7, 0], 0x7a, 0, Some(O8A)),  // order 8
        enc([0xc7, 0], 0xfa, 0, Some(O8A)),  // order 8, other x
        enc([0x26, 0], 0x05, 0, Some(O8B)),  // order 8
        enc([0x26, 0], 0x85, 0, Some(O8B)),  // order 8, other x
    ]
};

/// Is the encoded y (sign bit ignored) below p = 2^255 - 19?
#[inline]
pub fn is_canonical_y(e: &[u8; 32]) -> bool {
    // y >= p only if bytes 1..31 are all 0xff, byte 31 is 0x7f (masked) and
    // byte 0 >= 0xed.
    let top = e[31] & 0x7f;
    !(top == 0x7f && e[1..31].iter().all(|&b| b == 0xff) && e[0] >= 0xed)
}

/// The spec's encoding rules for `A` and `R`.
#[inline]
pub fn is_acceptable_point(e: &[u8; 32]) -> bool {
    is_canonical_y(e) && !SMALL_ORDER_ENCODINGS.contains(e)
}

/// The spec's rule for `S`.
#[inline]
pub fn is_canonical_s(s: &[u8; 32]) -> bool {
    bool::from(Scalar::from_canonical_bytes(*s).is_some())
}

fn split_sig(sig: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    s.copy_from_slice(&sig[32..]);
    (r, s)
}

/// Checks a transaction's signature alone (the reference the batch path
/// must agree with). `tx` must be a structurally valid transaction.
pub fn verify_single(network_id: u32, tx: &[u8]) -> bool {
    let Some((a, sig, unsigned)) = parts(tx) else { return false };
    if !encodings_ok(&a, &sig) {
        return false;
    }
    let mut msg = Vec::with_capacity(SIGNING_HEADER_LEN + unsigned.len());
    msg.extend_from_slice(&signing_header(network_id));
    msg.extend_from_slice(unsigned);
    VerificationKey::try_from(VerificationKeyBytes::from(a))
        .and_then(|vk| vk.verify(&Signature::from_bytes(&sig), &msg))
        .is_ok()
}

fn parts(tx: &[u8]) -> Option<([u8; 32], [u8; 64], &[u8])> {
    if tx.len() < FIXED_LEN + SIG_LEN {
        return None;
    }
    let a: [u8; 32] = crate::wire::tx::from_part(tx).try_into().ok()?;
    let sig: [u8; 64] = crate::wire::tx::signature_part(tx).try_into().ok()?;
    Some((a, sig, crate::wire::tx::unsigned_part(tx)))
}

fn encodings_ok(a: &[u8; 32], sig: &[u8; 64]) -> bool {
    let (r, s) = split_sig(sig);
    is_acceptable_point(a) && is_acceptable_point(&r) && is_canonical_s(&s)
}

/// Failed multi-signature batch checks per burst before the rest of the
/// burst's failed sub-batches are checked one signature at a time. Eight
/// lets one bad signature among up to 128 be found by bisection alone.
pub const FAILED_BATCHES: u32 = 8;

/// Sets of the per-verifier cache of decompressed public keys, two keys per
/// set: 8192 keys of 208 bytes, about 1.6 MiB per data core, allocated once.
pub const KEY_CACHE_SETS: usize = 4096;

/// One cached key: its encoding and the point it decompresses to.
#[derive(Clone, Copy)]
struct CachedKey {
    /// All zero when empty: that encoding is of small order, so no
    /// acceptable key has it.
    enc: [u8; 32],
    point: EdwardsPoint,
    /// The queue generation in which this key last got an entry in
    /// [`BatchVerifier::keys`], and that entry.
    queue: u64,
    index: u32,
}

/// Decompressed public keys by encoding, two-way set associative, the
/// older of a set's two entries replaced on a miss. Decompressing a point
/// (a square root in the field, a large share of a batch's per-signature
/// work) is the one step of the batch equation that depends on the key
/// alone; a sender's key is decompressed once while it stays cached. An
/// entry is only ever filled from the decompression of its own encoding,
/// so a sender who makes keys collide gets no worse than no cache.
struct KeyCache {
    sets: Box<[[CachedKey; 2]]>,
    /// Which way of each set was filled last.
    newer: Box<[u8]>,
    hits: u64,
    misses: u64,
}

impl KeyCache {
    fn new(sets: usize) -> Self {
        let empty = CachedKey { enc: [0; 32], point: EdwardsPoint::default(), queue: 0, index: 0 };
        KeyCache {
            sets: vec![[empty; 2]; sets].into_boxed_slice(),
            newer: vec![0; sets].into_boxed_slice(),
            hits: 0,
            misses: 0,
        }
    }

    /// The entry for `enc`, decompressing it on a miss; `None` if it is not
    /// on the curve. `enc` must have passed [`is_acceptable_point`] (so it
    /// is not all zero).
    fn entry(&mut self, enc: &[u8; 32]) -> Option<&mut CachedKey> {
        let set = u32::from_le_bytes([enc[0], enc[1], enc[2], enc[3]]) as usize % self.sets.len();
        if let Some(way) = (0..2).find(|&w| self.sets[set][w].enc == *enc) {
            self.hits += 1;
            return Some(&mut self.sets[set][way]);
        }
        self.misses += 1;
        let point = CompressedEdwardsY(*enc).decompress()?;
        let way = usize::from(self.newer[set] ^ 1);
        self.newer[set] = way as u8;
        self.sets[set][way] = CachedKey { enc: *enc, point, queue: 0, index: 0 };
        Some(&mut self.sets[set][way])
    }
}

/// A queued signature whose encodings passed the spec's rules and whose
/// points decompressed: everything the equation needs.
#[derive(Clone, Copy)]
struct Queued {
    /// Index of its verdict.
    idx: u32,
    /// Index of its key in [`BatchVerifier::keys`].
    key: u32,
    r: EdwardsPoint,
    s: Scalar,
    /// k = SHA-512(R || A || signing message) mod L.
    k: Scalar,
}

/// Verifies the signatures of one burst's transactions together.
///
/// The equation is ed25519-zebra's batch equation (ZIP-215), the
/// cofactored `[8](Σ z_i R_i + Σ (Σ z_i k_i) A - (Σ z_i s_i) B) = 0` with
/// 128-bit random `z_i`, the coefficients of one key summed, one
/// `vartime_multiscalar_mul` of curve25519-dalek; it is written out here
/// only so that keys come decompressed from the [`KeyCache`] (zebra's batch
/// takes key encodings and decompresses each one per check). A test holds
/// it to zebra's verdicts, single and batched, on random batches with
/// forged, mixed-order and non-curve inputs.
pub struct BatchVerifier {
    header: [u8; SIGNING_HEADER_LEN],
    rng: StdRng,
    cache: KeyCache,
    /// Distinct keys of the queued signatures (a key repeated in the queue
    /// is one entry while its cache entry stays), with the check in which
    /// each last got a coefficient and that coefficient's index.
    keys: Vec<(EdwardsPoint, u64, u32)>,
    /// Generation of the queue, one per [`clear`](Self::clear); never wraps.
    queue_gen: u64,
    queued: Vec<Queued>,
    /// Verdict per queued transaction.
    ok: Vec<bool>,
    /// Scratch of one check: coefficients and points.
    scalars: Vec<Scalar>,
    points: Vec<EdwardsPoint>,
    /// Per key of one check: index in `keys` and its summed coefficient.
    key_coeffs: Vec<(u32, Scalar)>,
    /// Checks so far; never wraps, starts at 1 so a new key's 0 is stale.
    epoch: u64,
    /// Batch equations checked (for benchmarks and tests of bisection).
    pub batch_checks: u64,
    /// Signatures put through those checks, summed (the work: a batch of
    /// n counts n, a single check 1).
    pub batch_items: u64,
    /// Failed multi-signature checks this burst may still bisect.
    bisect_budget: u32,
}

impl core::fmt::Debug for BatchVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BatchVerifier").field("queued", &self.ok.len()).finish()
    }
}

impl BatchVerifier {
    /// A verifier for `network_id` whose batch coefficients come from a
    /// ChaCha generator seeded with `seed`. The host draws the seed from
    /// the OS (the coefficients must be unpredictable to a sender); tests
    /// and simulations may pass a fixed one.
    pub fn new(network_id: u32, seed: [u8; 32]) -> Self {
        Self::with_key_cache(network_id, seed, KEY_CACHE_SETS)
    }

    /// As [`new`](Self::new), with a key cache of `sets` two-way sets
    /// (at least one).
    pub fn with_key_cache(network_id: u32, seed: [u8; 32], sets: usize) -> Self {
        let sets = sets.max(1);
        BatchVerifier {
            header: signing_header(network_id),
            rng: StdRng::from_seed(seed),
            cache: KeyCache::new(sets),
            keys: Vec::with_capacity(256),
            queue_gen: 1,
            queued: Vec::with_capacity(256),
            ok: Vec::with_capacity(256),
            scalars: Vec::with_capacity(2 * 256 + 1),
            points: Vec::with_capacity(2 * 256 + 1),
            key_coeffs: Vec::with_capacity(256),
            epoch: 0,
            batch_checks: 0,
            batch_items: 0,
            bisect_budget: FAILED_BATCHES,
        }
    }

    /// Forgets every queued transaction and verdict.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.queue_gen += 1;
        self.queued.clear();
        self.ok.clear();
    }

    /// Number of transactions queued.
    pub fn len(&self) -> usize {
        self.ok.len()
    }

    /// No transaction is queued.
    pub fn is_empty(&self) -> bool {
        self.ok.is_empty()
    }

    /// Key cache hits and misses (decompressions) so far.
    pub fn key_cache(&self) -> (u64, u64) {
        (self.cache.hits, self.cache.misses)
    }

    /// Queues a structurally valid transaction; returns its index in the
    /// verdicts of [`verify`](Self::verify).
    pub fn queue(&mut self, tx: &[u8]) -> usize {
        let idx = self.ok.len();
        let q = parts(tx).filter(|(a, sig, _)| encodings_ok(a, sig)).and_then(|(a, sig, unsigned)| {
            let (r_enc, s_enc) = split_sig(&sig);
            let r = CompressedEdwardsY(r_enc).decompress()?;
            let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_enc))?;
            let key = self.key_index(&a)?;
            let k = Scalar::from_hash(
                Sha512::new().chain_update(r_enc).chain_update(a).chain_update(self.header).chain_update(unsigned),
            );
            Some(Queued { idx: idx as u32, key, r, s, k })
        });
        self.ok.push(q.is_some());
        if let Some(q) = q {
            self.queued.push(q);
        }
        idx
    }

    /// The index in `keys` of the key `a`, decompressing it on a cache
    /// miss; `None` if it is not on the curve.
    fn key_index(&mut self, a: &[u8; 32]) -> Option<u32> {
        let entry = self.cache.entry(a)?;
        if entry.queue != self.queue_gen {
            entry.queue = self.queue_gen;
            entry.index = self.keys.len() as u32;
            self.keys.push((entry.point, 0, 0));
        }
        Some(entry.index)
    }

    /// Checks everything queued; returns one verdict per queued
    /// transaction. The queue stays until [`clear`](Self::clear).
    pub fn verify(&mut self) -> &[bool] {
        let queued = core::mem::take(&mut self.queued);
        self.bisect_budget = FAILED_BATCHES;
        self.check(&queued);
        self.queued = queued;
        &self.ok
    }

    fn check(&mut self, items: &[Queued]) {
        match items {
            [] => {}
            [one] => self.check_single(one),
            _ if self.bisect_budget == 0 => {
                for one in items {
                    self.check_single(one);
                }
            }
            _ => {
                self.batch_checks += 1;
                self.batch_items += items.len() as u64;
                if !self.batch_equation(items) {
                    self.bisect_budget = self.bisect_budget.saturating_sub(1);
                    let (l, r) = items.split_at(items.len() / 2);
                    self.check(l);
                    self.check(r);
                }
            }
        }
    }

    /// The cofactored batch equation over `items`.
    fn batch_equation(&mut self, items: &[Queued]) -> bool {
        self.epoch += 1;
        self.key_coeffs.clear();
        self.scalars.clear();
        self.points.clear();
        let mut b_coeff = Scalar::ZERO;
        for q in items {
            let z = Scalar::from(self.rng.random::<u128>());
            b_coeff -= z * q.s;
            self.scalars.push(z);
            self.points.push(q.r);
            let key = &mut self.keys[q.key as usize];
            if key.1 != self.epoch {
                key.1 = self.epoch;
                key.2 = self.key_coeffs.len() as u32;
                self.key_coeffs.push((q.key, Scalar::ZERO));
            }
            self.key_coeffs[key.2 as usize].1 += z * q.k;
        }
        for (key, coeff) in &self.key_coeffs {
            self.scalars.push(*coeff);
            self.points.push(self.keys[*key as usize].0);
        }
        self.scalars.push(b_coeff);
        self.points.push(ED25519_BASEPOINT_POINT);
        EdwardsPoint::vartime_multiscalar_mul(&self.scalars, &self.points).mul_by_cofactor().is_identity()
    }

    fn check_single(&mut self, q: &Queued) {
        self.batch_checks += 1;
        self.batch_items += 1;
        // [8]([S]B - [k]A - R) = 0, as zebra's single verification.
        let minus_a = -self.keys[q.key as usize].0;
        let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&q.k, &minus_a, &q.s);
        if !(q.r - r_prime).mul_by_cofactor().is_identity() {
            if let Some(v) = self.ok.get_mut(q.idx as usize) {
                *v = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_list_is_the_torsion_subgroup() {
        let t8 = CompressedEdwardsY(SMALL_ORDER_ENCODINGS[6]).decompress().unwrap();
        let mut p = curve25519_dalek::edwards::EdwardsPoint::default();
        let mut found = std::collections::HashSet::new();
        for _ in 0..8 {
            let e = p.compress().to_bytes();
            assert!(SMALL_ORDER_ENCODINGS.contains(&e), "{:02x?}", e);
            found.insert(e);
            p += t8;
        }
        assert_eq!(found.len(), 8);
        for e in SMALL_ORDER_ENCODINGS {
            let pt = CompressedEdwardsY(e).decompress().unwrap();
            assert!(pt.is_small_order());
            assert!(is_canonical_y(&e));
        }
    }

    #[test]
    fn key_cache_size_is_as_documented() {
        // KEY_CACHE_SETS' doc and docs/NODE.md, docs/SECURITY.md.
        assert_eq!(core::mem::size_of::<CachedKey>(), 208);
        assert_eq!(KEY_CACHE_SETS * 2, 8192);
    }

    #[test]
    fn canonical_y_boundary() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!is_canonical_y(&p));
        p[0] = 0xec;
        assert!(is_canonical_y(&p));
        p[31] = 0xff; // sign bit does not matter
        assert!(is_canonical_y(&p));
        p[0] = 0xee;
        assert!(!is_canonical_y(&p));
    }
}
