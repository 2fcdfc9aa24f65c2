//! Sealed endpoint offers: the memo of an endpoint-offer transaction (kind
//! 4), readable only by the account it is addressed to.
//!
//! The recipient is known by its Ed25519 account key only, so the offer is
//! sealed to the X25519 key that account key converts to (the Edwards point
//! mapped to Montgomery form, as RFC 7748 and libsodium's
//! `crypto_sign_ed25519_pk_to_curve25519` do); the recipient's X25519 secret
//! is the clamped first half of SHA-512 of its Ed25519 seed, the scalar its
//! Ed25519 key already uses. The sender makes a fresh X25519 key pair per
//! offer:
//!
//! ```text
//! memo = version (1 byte, 1) || ephemeral public (32) || ciphertext || tag (16)
//! shared = X25519(ephemeral secret, recipient X25519 public)   (all-zero: refused)
//! key    = HKDF-SHA256(salt = "ATT-OFFER-v1", ikm = shared,
//!                      info = ephemeral public || recipient X25519 public)
//! AES-256-GCM, nonce counter 0 (the key is used once), associated data =
//!   version || sender account key || recipient account key
//! ```
//!
//! The associated data binds the offer to its transaction's `from` and
//! `to`: a memo copied into another account's transaction does not open.
//! Only the recipient can read the endpoint; the sender's Ed25519
//! signature over the whole transaction (memo included) says who sent it.

use curve25519_dalek::edwards::CompressedEdwardsY;
use hkdf::Hkdf;
use sha2::{Digest, Sha256, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::crypto::{AeadKey, TAG_LEN};

/// The version byte of a sealed offer.
pub const VERSION: u8 = 1;
/// HKDF salt of the offer key.
pub const SALT: &[u8] = b"ATT-OFFER-v1";
/// Bytes a sealed offer adds to its endpoint.
pub const OVERHEAD: usize = 1 + 32 + TAG_LEN;
/// The longest endpoint that fits a memo (1024 bytes).
pub const MAX_ENDPOINT: usize = 1024 - OVERHEAD;

/// Why an offer was not sealed or not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferError {
    /// The recipient's account key is not a point of the curve, or has
    /// small order.
    BadRecipientKey,
    /// The endpoint is longer than [`MAX_ENDPOINT`].
    TooLong,
    /// Shorter than [`OVERHEAD`], or another version.
    Malformed,
    /// The X25519 exchange gave the all-zero secret.
    ZeroSharedSecret,
    /// The tag does not verify: not sealed to this key, or for another
    /// sender or recipient, or altered.
    NotForUs,
}

impl core::fmt::Display for OfferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            OfferError::BadRecipientKey => "the recipient's account key is not a usable curve point",
            OfferError::TooLong => "the endpoint is longer than 975 bytes",
            OfferError::Malformed => "not a sealed offer (too short or another version)",
            OfferError::ZeroSharedSecret => "the key exchange gave the all-zero secret",
            OfferError::NotForUs => "the offer does not open with this account key",
        })
    }
}

impl std::error::Error for OfferError {}

/// The X25519 public key an Ed25519 account key converts to.
pub fn x25519_public(account: &[u8; 32]) -> Result<[u8; 32], OfferError> {
    let p = CompressedEdwardsY(*account).decompress().ok_or(OfferError::BadRecipientKey)?;
    if p.is_small_order() {
        return Err(OfferError::BadRecipientKey);
    }
    Ok(p.to_montgomery().to_bytes())
}

/// The X25519 secret of an Ed25519 seed (clamped by X25519 itself).
pub fn x25519_secret(seed: &[u8; 32]) -> [u8; 32] {
    let h = Sha512::digest(seed);
    let mut s = [0u8; 32];
    s.copy_from_slice(&h[..32]);
    s
}

fn key(shared: &[u8; 32], eph_public: &[u8; 32], recipient_x: &[u8; 32]) -> AeadKey {
    let mut info = [0u8; 64];
    info[..32].copy_from_slice(eph_public);
    info[32..].copy_from_slice(recipient_x);
    let mut k = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(SALT), shared).expand(&info, &mut k);
    AeadKey::new(&k)
}

fn aad(sender: &[u8; 32], recipient: &[u8; 32]) -> [u8; 65] {
    let mut a = [0u8; 65];
    a[0] = VERSION;
    a[1..33].copy_from_slice(sender);
    a[33..].copy_from_slice(recipient);
    a
}

/// X25519 as the handshake does it; the all-zero result refused.
fn exchange(secret: [u8; 32], public: [u8; 32]) -> Result<[u8; 32], OfferError> {
    crate::handshake::x25519(secret, public).map_err(|_| OfferError::ZeroSharedSecret)
}

/// Seals `endpoint` from account `sender` to account `recipient` with the
/// one-use X25519 secret `eph_secret` (fresh randomness from the caller).
pub fn seal(
    sender: &[u8; 32],
    recipient: &[u8; 32],
    endpoint: &[u8],
    eph_secret: [u8; 32],
) -> Result<Vec<u8>, OfferError> {
    if endpoint.len() > MAX_ENDPOINT {
        return Err(OfferError::TooLong);
    }
    let recipient_x = x25519_public(recipient)?;
    let eph_public = PublicKey::from(&StaticSecret::from(eph_secret)).to_bytes();
    let shared = exchange(eph_secret, recipient_x)?;
    let mut out = Vec::with_capacity(OVERHEAD + endpoint.len());
    out.push(VERSION);
    out.extend_from_slice(&eph_public);
    out.extend_from_slice(endpoint);
    let tag = key(&shared, &eph_public, &recipient_x).seal_in_place(0, &aad(sender, recipient), &mut out[33..]);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens an offer `memo` from account `sender` with the recipient's
/// Ed25519 seed; the endpoint.
pub fn open(recipient_seed: &[u8; 32], sender: &[u8; 32], memo: &[u8]) -> Result<Vec<u8>, OfferError> {
    if memo.len() < OVERHEAD || memo[0] != VERSION {
        return Err(OfferError::Malformed);
    }
    let recipient: [u8; 32] =
        ed25519_zebra::VerificationKeyBytes::from(&ed25519_zebra::SigningKey::from(*recipient_seed)).into();
    let recipient_x = x25519_public(&recipient)?;
    let mut eph_public = [0u8; 32];
    eph_public.copy_from_slice(&memo[1..33]);
    let shared = exchange(x25519_secret(recipient_seed), eph_public)?;
    let mut body = memo[33..].to_vec();
    let n = key(&shared, &eph_public, &recipient_x)
        .open_in_place(0, &aad(sender, &recipient), &mut body)
        .map_err(|_| OfferError::NotForUs)?;
    body.truncate(n);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(seed: [u8; 32]) -> [u8; 32] {
        ed25519_zebra::VerificationKeyBytes::from(&ed25519_zebra::SigningKey::from(seed)).into()
    }

    #[test]
    fn only_the_recipient_opens_an_offer_and_only_for_its_sender() {
        let (alice, bob, carol) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        let memo = seal(&pk(alice), &pk(bob), b"udp://198.51.100.7:7100", [9; 32]).unwrap();
        assert_eq!(memo.len(), OVERHEAD + 23);
        assert_eq!(open(&bob, &pk(alice), &memo).unwrap(), b"udp://198.51.100.7:7100");
        // Another account's key, or another claimed sender: not opened.
        assert_eq!(open(&carol, &pk(alice), &memo), Err(OfferError::NotForUs));
        assert_eq!(open(&bob, &pk(carol), &memo), Err(OfferError::NotForUs));
        // Any flipped byte: not opened, never a panic.
        for i in 0..memo.len() {
            let mut m = memo.clone();
            m[i] ^= 0x20;
            assert!(open(&bob, &pk(alice), &m).is_err(), "byte {i}");
        }
        assert_eq!(open(&bob, &pk(alice), &memo[..OVERHEAD - 1]), Err(OfferError::Malformed));
    }

    #[test]
    fn the_converted_keys_agree_with_the_ed25519_scalar() {
        // X25519(secret of seed, base point) is the converted public key.
        for seed in [[7u8; 32], [0x42; 32], [0xff; 32]] {
            let x = PublicKey::from(&StaticSecret::from(x25519_secret(&seed))).to_bytes();
            assert_eq!(x, x25519_public(&pk(seed)).unwrap());
        }
    }

    #[test]
    fn bad_recipient_keys_and_long_endpoints_are_refused() {
        // The identity point (small order) and a non-point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(seal(&[1; 32], &identity, b"x", [9; 32]), Err(OfferError::BadRecipientKey));
        let not_a_point = (0u8..=255).map(|b| [b; 32]).find(|k| CompressedEdwardsY(*k).decompress().is_none()).unwrap();
        assert_eq!(seal(&[1; 32], &not_a_point, b"x", [9; 32]), Err(OfferError::BadRecipientKey));
        let long = vec![b'a'; MAX_ENDPOINT + 1];
        assert_eq!(seal(&pk([1; 32]), &pk([2; 32]), &long, [9; 32]), Err(OfferError::TooLong));
        assert_eq!(seal(&pk([1; 32]), &pk([2; 32]), &long[1..], [9; 32]).unwrap().len(), 1024);
    }
}
