//! Ed25519 transaction signatures exactly as `att-wire.md` ("Signature
//! verification is strict") says, batched across every transaction of a
//! burst.
//!
//! - `A` and `R` must be canonical (y < p) and not of small order: checked
//!   here on the encodings, before any curve arithmetic.
//! - `S` must be canonical (S < L).
//! - The equation is the cofactored one, which `ed25519-zebra` (ZIP-215)
//!   implements for both single and batch verification.
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
//! Allocation: `ed25519_zebra::batch::Verifier` builds a hash map and two
//! vectors per batch check; that is the one allocation per burst the
//! frame path makes (the library requires it). Our own buffers are reused.

use curve25519_dalek::scalar::Scalar;
use ed25519_zebra::batch::{Item, Verifier};
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::wire::tx::{signing_header, FIXED_LEN, MAX_TX_LEN, SIGNING_HEADER_LEN, SIG_LEN};

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

/// Verifies the signatures of one burst's transactions together.
pub struct BatchVerifier {
    header: [u8; SIGNING_HEADER_LEN],
    rng: StdRng,
    msg: Vec<u8>,
    /// Items that passed the encoding rules, with their queue index.
    items: Vec<(u32, Item)>,
    /// Verdict per queued transaction.
    ok: Vec<bool>,
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
        BatchVerifier {
            header: signing_header(network_id),
            rng: StdRng::from_seed(seed),
            msg: Vec::with_capacity(SIGNING_HEADER_LEN + MAX_TX_LEN),
            items: Vec::with_capacity(256),
            ok: Vec::with_capacity(256),
            batch_checks: 0,
            batch_items: 0,
            bisect_budget: FAILED_BATCHES,
        }
    }

    /// Forgets every queued transaction and verdict.
    pub fn clear(&mut self) {
        self.items.clear();
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

    /// Queues a structurally valid transaction; returns its index in the
    /// verdicts of [`verify`](Self::verify).
    pub fn queue(&mut self, tx: &[u8]) -> usize {
        let idx = self.ok.len();
        match parts(tx) {
            Some((a, sig, unsigned)) if encodings_ok(&a, &sig) => {
                self.msg.clear();
                self.msg.extend_from_slice(&self.header);
                self.msg.extend_from_slice(unsigned);
                let item = Item::from((VerificationKeyBytes::from(a), Signature::from_bytes(&sig), &self.msg[..]));
                self.items.push((idx as u32, item));
                self.ok.push(true);
            }
            _ => self.ok.push(false),
        }
        idx
    }

    /// Checks everything queued; returns one verdict per queued
    /// transaction. The queue stays until [`clear`](Self::clear).
    pub fn verify(&mut self) -> &[bool] {
        let items = core::mem::take(&mut self.items);
        self.bisect_budget = FAILED_BATCHES;
        self.check(&items);
        self.items = items;
        &self.ok
    }

    fn check(&mut self, items: &[(u32, Item)]) {
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
                let mut v = Verifier::new();
                for (_, item) in items {
                    v.queue(item.clone());
                }
                if v.verify(&mut self.rng).is_err() {
                    self.bisect_budget = self.bisect_budget.saturating_sub(1);
                    let (l, r) = items.split_at(items.len() / 2);
                    self.check(l);
                    self.check(r);
                }
            }
        }
    }

    fn check_single(&mut self, (i, item): &(u32, Item)) {
        self.batch_checks += 1;
        self.batch_items += 1;
        if item.clone().verify_single().is_err() {
            if let Some(v) = self.ok.get_mut(*i as usize) {
                *v = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::edwards::CompressedEdwardsY;

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
