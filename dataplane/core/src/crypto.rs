//! AES-256-GCM with the spec's nonce (4 zero bytes, then the counter LE)
//! and associated data (the frame from offset 0 through the counter).
//!
//! The backend is chosen at build time: `aead-aws-lc` (default, fastest
//! measured here, see docs/PERFORMANCE.md), `aead-ring`, or
//! `aead-rustcrypto` (the `aes-gcm` crate). All three select AES-NI/CLMUL
//! (and VAES where present) at run time. The key schedule is expanded once,
//! when a session is installed, never per frame.

/// Key length of AES-256.
pub const KEY_LEN: usize = 32;

/// Where a sender of configured (not negotiated) keys starts its counters
/// when the time since the Unix epoch is `since_epoch` (`att-wire.md`,
/// "Counters": `unix_seconds << 32`), plus the sub-second nanoseconds / 4
/// in the low bits, so that a run restarted within the same second still
/// starts above every counter the previous run used (it would have had to
/// seal one frame per 4 ns to reach it). The host reads the clock.
pub fn counter_start(since_epoch: core::time::Duration) -> u64 {
    (since_epoch.as_secs() << 32) + u64::from(since_epoch.subsec_nanos() >> 2)
}

/// Length of an AES-256-GCM tag.
pub const TAG_LEN: usize = 16;

/// The spec's 12-byte nonce for a counter.
#[inline(always)]
pub fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    let c = counter.to_le_bytes();
    for (d, s) in n.iter_mut().skip(4).zip(c) {
        *d = s;
    }
    n
}

/// The tag did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthError;

/// Name of the backend compiled in, for logs and bench output.
pub const BACKEND: &str = backend::NAME;

/// An expanded AES-256-GCM key (both directions of use).
pub struct AeadKey(backend::Key);

impl AeadKey {
    /// Expands the key schedule of `key`.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        AeadKey(backend::Key::new(key))
    }

    /// Decrypts `ciphertext || tag` in place and returns the plaintext
    /// length. On failure the buffer's contents are unspecified.
    #[inline]
    pub fn open_in_place(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> Result<usize, AuthError> {
        if in_out.len() < TAG_LEN {
            return Err(AuthError);
        }
        self.0.open(&nonce(counter), aad, in_out)
    }

    /// Encrypts `in_out` in place and returns the tag.
    #[inline]
    pub fn seal_in_place(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        self.0.seal(&nonce(counter), aad, in_out)
    }
}

impl core::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AeadKey({})", BACKEND)
    }
}

#[cfg(feature = "aead-aws-lc")]
mod backend {
    use super::AuthError;
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

    pub const NAME: &str = "aws-lc-rs";

    pub struct Key(LessSafeKey);

    impl Key {
        pub fn new(k: &[u8; 32]) -> Self {
            // A 32-byte key is always valid for AES-256-GCM.
            match UnboundKey::new(&AES_256_GCM, k) {
                Ok(u) => Key(LessSafeKey::new(u)),
                Err(_) => unreachable!("AES-256-GCM accepts every 32-byte key"),
            }
        }
        #[inline]
        pub fn open(&self, n: &[u8; 12], aad: &[u8], io: &mut [u8]) -> Result<usize, AuthError> {
            self.0
                .open_in_place(Nonce::assume_unique_for_key(*n), Aad::from(aad), io)
                .map(|p| p.len())
                .map_err(|_| AuthError)
        }
        #[inline]
        pub fn seal(&self, n: &[u8; 12], aad: &[u8], io: &mut [u8]) -> [u8; 16] {
            let mut t = [0u8; 16];
            if let Ok(tag) = self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(*n), Aad::from(aad), io) {
                t.copy_from_slice(tag.as_ref());
            }
            t
        }
    }
}

#[cfg(all(feature = "aead-ring", not(feature = "aead-aws-lc")))]
mod backend {
    use super::AuthError;
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

    pub const NAME: &str = "ring";

    pub struct Key(LessSafeKey);

    impl Key {
        pub fn new(k: &[u8; 32]) -> Self {
            match UnboundKey::new(&AES_256_GCM, k) {
                Ok(u) => Key(LessSafeKey::new(u)),
                Err(_) => unreachable!("AES-256-GCM accepts every 32-byte key"),
            }
        }
        #[inline]
        pub fn open(&self, n: &[u8; 12], aad: &[u8], io: &mut [u8]) -> Result<usize, AuthError> {
            self.0
                .open_in_place(Nonce::assume_unique_for_key(*n), Aad::from(aad), io)
                .map(|p| p.len())
                .map_err(|_| AuthError)
        }
        #[inline]
        pub fn seal(&self, n: &[u8; 12], aad: &[u8], io: &mut [u8]) -> [u8; 16] {
            let mut t = [0u8; 16];
            if let Ok(tag) = self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(*n), Aad::from(aad), io) {
                t.copy_from_slice(tag.as_ref());
            }
            t
        }
    }
}

#[cfg(all(feature = "aead-rustcrypto", not(feature = "aead-aws-lc"), not(feature = "aead-ring")))]
mod backend {
    use super::AuthError;
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    pub const NAME: &str = "aes-gcm";

    pub struct Key(Aes256Gcm);

    impl Key {
        pub fn new(k: &[u8; 32]) -> Self {
            Key(Aes256Gcm::new(k.into()))
        }
        #[inline]
        pub fn open(&self, n: &[u8; 12], aad: &[u8], io: &mut [u8]) -> Result<usize, AuthError> {
            let (ct, tag) = io.split_at_mut(io.len() - 16);
            let tag = Tag::try_from(&*tag).map_err(|_| AuthError)?;
            self.0
                .decrypt_inout_detached(&Nonce::from(*n), aad, ct.into(), &tag)
                .map(|_| ct.len())
                .map_err(|_| AuthError)
        }
        #[inline]
        pub fn seal(&self, n: &[u8; 12], aad: &[u8], io: &mut [u8]) -> [u8; 16] {
            self.0.encrypt_inout_detached(&Nonce::from(*n), aad, io.into()).map(|t| t.into()).unwrap_or([0; 16])
        }
    }
}

#[cfg(not(any(feature = "aead-aws-lc", feature = "aead-ring", feature = "aead-rustcrypto")))]
compile_error!("enable one AES-GCM backend: aead-aws-lc (default), aead-ring or aead-rustcrypto");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_starts_move_forward_within_a_second() {
        use core::time::Duration;
        let t = Duration::new(1_700_000_000, 999_980_000);
        let a = counter_start(t);
        // The seconds are the high half; 50 µs later is at least 12 500
        // counters further (one frame per 4 ns), in the same second or not.
        assert_eq!(a >> 32, 1_700_000_000);
        assert!(a & 0xffff_ffff < 1 << 28);
        let b = counter_start(t + Duration::from_micros(50));
        assert_eq!(b >> 32, 1_700_000_001);
        assert!(b >= a + 12_500, "{a:#x} {b:#x}");
        let c = counter_start(Duration::new(1_700_000_000, 50_000));
        assert_eq!(c - counter_start(Duration::new(1_700_000_000, 0)), 12_500);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = AeadKey::new(&[7; 32]);
        let aad = b"header";
        let mut buf = b"attack at dawn".to_vec();
        let tag = k.seal_in_place(42, aad, &mut buf);
        buf.extend_from_slice(&tag);
        let mut c = buf.clone();
        assert_eq!(k.open_in_place(42, aad, &mut c), Ok(14));
        assert_eq!(&c[..14], b"attack at dawn");
        let mut c = buf.clone();
        assert_eq!(k.open_in_place(43, aad, &mut c), Err(AuthError));
        let mut c = buf.clone();
        assert_eq!(k.open_in_place(42, b"headex", &mut c), Err(AuthError));
        let mut c = buf.clone();
        c[0] ^= 1;
        assert_eq!(k.open_in_place(42, aad, &mut c), Err(AuthError));
        assert_eq!(k.open_in_place(42, aad, &mut [0u8; 15]), Err(AuthError));
    }

    #[test]
    fn nonce_layout() {
        assert_eq!(nonce(0x0102), [0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]);
    }
}
