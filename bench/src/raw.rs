//! The raw library operations the frame path is measured against, on a
//! [`Workload`]'s bytes: AES-256-GCM open in place (aws-lc-rs, ring and
//! the RustCrypto `aes-gcm` crate), LZ4 block decompression, SHA-256 of the
//! transaction ids, and Ed25519 verification one by one and in a batch
//! (`ed25519-zebra`). Shared by the criterion benchmarks and `attnet-bench`.

use crate::Workload;
use ed25519_zebra::{Signature, VerificationKeyBytes};

/// An AES-256-GCM library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesLib {
    AwsLc,
    Ring,
    RustCrypto,
}

impl AesLib {
    pub const ALL: [AesLib; 3] = [AesLib::AwsLc, AesLib::Ring, AesLib::RustCrypto];

    /// The crate's name.
    pub fn label(self) -> &'static str {
        match self {
            AesLib::AwsLc => "aws-lc-rs",
            AesLib::Ring => "ring",
            AesLib::RustCrypto => "aes-gcm",
        }
    }

    /// The criterion benchmark name (`names::AES`).
    pub fn bench_name(self) -> &'static str {
        match self {
            AesLib::AwsLc => crate::names::AES[0].0,
            AesLib::Ring => crate::names::AES[1].0,
            AesLib::RustCrypto => crate::names::AES[2].0,
        }
    }
}

/// A key expanded by one library.
pub enum AesOpener {
    AwsLc(aws_lc_rs::aead::LessSafeKey),
    Ring(Box<ring::aead::LessSafeKey>),
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
}

impl AesOpener {
    pub fn new(lib: AesLib, key: &[u8; 32]) -> Self {
        match lib {
            AesLib::AwsLc => AesOpener::AwsLc(aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key).expect("32-byte key"),
            )),
            AesLib::Ring => AesOpener::Ring(Box::new(ring::aead::LessSafeKey::new(
                ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key).expect("32-byte key"),
            ))),
            AesLib::RustCrypto => {
                use aes_gcm::aead::KeyInit;
                AesOpener::RustCrypto(Box::new(aes_gcm::Aes256Gcm::new(key.into())))
            }
        }
    }

    /// Opens a burst sealed by [`Workload::burst`]`(base)` in place; frame
    /// `i` has counter `base + i` and its sealed region at `sealed_at[i]`.
    pub fn open_burst(&self, base: u64, frames: &mut [Vec<u8>], sealed_at: &[usize]) {
        for (i, f) in frames.iter_mut().enumerate() {
            let (aad, io) = f.split_at_mut(sealed_at[i]);
            let nonce = dataplane::crypto::nonce(base + i as u64);
            match self {
                AesOpener::AwsLc(k) => {
                    let n = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce);
                    k.open_in_place(n, aws_lc_rs::aead::Aad::from(&*aad), io).expect("authentic");
                }
                AesOpener::Ring(k) => {
                    let n = ring::aead::Nonce::assume_unique_for_key(nonce);
                    k.open_in_place(n, ring::aead::Aad::from(&*aad), io).expect("authentic");
                }
                AesOpener::RustCrypto(k) => {
                    use aes_gcm::aead::AeadInOut;
                    let (ct, tag) = io.split_at_mut(io.len() - 16);
                    let tag = aes_gcm::Tag::try_from(&*tag).expect("16-byte tag");
                    let n = aes_gcm::Nonce::from(nonce);
                    k.decrypt_inout_detached(&n, aad, ct.into(), &tag).expect("authentic");
                }
            }
        }
    }
}

/// Decompresses every frame's wire body (LZ4 rows) into `scratch`
/// (at least as large as the largest body).
pub fn lz4_burst(w: &Workload, scratch: &mut [u8]) {
    for (wire, body) in w.wire_bodies.iter().zip(&w.bodies) {
        let n = lz4_flex::block::decompress_into(wire, &mut scratch[..body.len()]).expect("valid LZ4");
        assert_eq!(n, body.len());
    }
}

/// A scratch buffer large enough for [`lz4_burst`].
pub fn lz4_scratch() -> Vec<u8> {
    vec![0u8; 16384]
}

/// SHA-256 of every transaction's id region (the bytes before the
/// signature); returns a byte of the ids so the work is not optimised out.
pub fn sha_ids(w: &Workload) -> u8 {
    use sha2::Digest;
    let mut x = 0u8;
    for ts in &w.txs {
        for t in ts {
            let id: [u8; 32] = sha2::Sha256::digest(dataplane::wire::tx::unsigned_part(t)).into();
            x ^= id[0];
        }
    }
    x
}

/// Every transaction's public key and signature, in workload order (the
/// signing messages are `Workload::messages`).
pub type Sigs = Vec<(VerificationKeyBytes, Signature)>;

pub fn sigs(w: &Workload) -> Sigs {
    w.txs
        .iter()
        .flatten()
        .map(|t| {
            let a: [u8; 32] = dataplane::wire::tx::from_part(t).try_into().expect("from field");
            let s: [u8; 64] = dataplane::wire::tx::signature_part(t).try_into().expect("signature");
            (a.into(), ed25519_zebra::Signature::from_bytes(&s))
        })
        .collect()
}

/// Verifies every signature on its own.
pub fn verify_single(sigs: &Sigs, messages: &[Vec<u8>]) {
    for ((a, s), m) in sigs.iter().zip(messages) {
        ed25519_zebra::VerificationKey::try_from(*a).expect("valid key").verify(s, m).expect("valid signature");
    }
}

/// The CSPRNG the frame path uses for batch coefficients.
pub fn batch_rng() -> rand::rngs::StdRng {
    rand::make_rng()
}

/// Verifies every signature in one `ed25519-zebra` batch.
pub fn verify_batch(sigs: &[(VerificationKeyBytes, Signature)], messages: &[Vec<u8>], rng: &mut rand::rngs::StdRng) {
    let mut v = ed25519_zebra::batch::Verifier::new();
    for ((a, s), m) in sigs.iter().zip(messages) {
        v.queue((*a, *s, m));
    }
    v.verify(rng).expect("valid batch");
}

/// Verifies the signatures in `ed25519-zebra` batches of `n`.
pub fn verify_batches(sigs: &Sigs, messages: &[Vec<u8>], n: usize, rng: &mut rand::rngs::StdRng) {
    for (s, m) in sigs.chunks(n).zip(messages.chunks(n)) {
        verify_batch(s, m, rng);
    }
}
