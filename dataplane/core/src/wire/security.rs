//! Security header at the start of the MCS user data (`att-wire.md`, "User
//! data: security header"): flags and suite, then with ENCRYPT the 8-byte
//! counter, the ciphertext and the 16-byte GCM tag. Little-endian.

use super::{le16, le64, put, DropReason, Result};

mod field {
    use core::ops::Range;
    pub const FLAGS: Range<usize> = 0..2;
    pub const SUITE: Range<usize> = 2..4;
    pub const COUNTER: Range<usize> = 4..12;
}

/// `sec.flags` ENCRYPT: counter, ciphertext and tag follow.
pub const FLAG_ENCRYPT: u16 = 0x0008;
/// `sec.flags` INFO: the handshake in clear, valid on channel 1003 only.
pub const FLAG_INFO: u16 = 0x0040;
/// `sec.suite` with INFO.
pub const SUITE_NONE: u16 = 0x0000;
/// `sec.suite` with ENCRYPT: AES-256-GCM.
pub const SUITE_AES_256_GCM: u16 = 0x0001;
/// Flags and suite.
pub const BASE_LEN: usize = 4;
/// Flags, suite and counter: the end of the AEAD's associated data.
pub const ENCRYPTED_HEADER_LEN: usize = 12;
/// Length of the GCM tag that ends the user data.
pub const TAG_LEN: usize = 16;
/// Shortest user data with ENCRYPT: header, counter and tag.
pub const MIN_ENCRYPTED_LEN: usize = ENCRYPTED_HEADER_LEN + TAG_LEN;

/// What the security header says the rest of the user data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// ENCRYPT with AES-256-GCM and this counter.
    Sealed {
        /// The frame counter (`att-wire.md`, "Counters").
        counter: u64,
    },
    /// INFO: handshake in clear.
    Clear,
}

/// A read-only or read/write view of the MCS user data, from its security
/// header on.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors return 0 on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Step 5: `control` is true on channel 1003 (INFO only), false
    /// elsewhere (ENCRYPT only). Fewer than 4 bytes cannot carry the header
    /// at all and are `bad_length`.
    pub fn new_checked(buffer: T, control: bool) -> Result<Self> {
        let p = Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < BASE_LEN {
            return Err(DropReason::BadLength);
        }
        let want = if control { (FLAG_INFO, SUITE_NONE) } else { (FLAG_ENCRYPT, SUITE_AES_256_GCM) };
        if (p.flags(), p.suite()) != want {
            return Err(DropReason::BadSecurity);
        }
        if !control && len < MIN_ENCRYPTED_LEN {
            return Err(DropReason::BadLength);
        }
        Ok(p)
    }

    /// `sec.flags` (LE): [`FLAG_ENCRYPT`] or [`FLAG_INFO`] in a valid frame.
    pub fn flags(&self) -> u16 {
        le16(self.buffer.as_ref(), field::FLAGS.start)
    }
    /// `sec.suite` (LE): [`SUITE_AES_256_GCM`] with ENCRYPT, [`SUITE_NONE`] with INFO.
    pub fn suite(&self) -> u16 {
        le16(self.buffer.as_ref(), field::SUITE.start)
    }
    /// The frame counter (LE); present only with ENCRYPT.
    pub fn counter(&self) -> u64 {
        le64(self.buffer.as_ref(), field::COUNTER.start)
    }
    /// The clear payload after an INFO header.
    pub fn clear_payload(&self) -> &[u8] {
        self.buffer.as_ref().get(BASE_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes `sec.flags` (LE).
    pub fn set_flags(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::FLAGS.start, &v.to_le_bytes());
    }
    /// Writes `sec.suite` (LE).
    pub fn set_suite(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::SUITE.start, &v.to_le_bytes());
    }
    /// Writes the counter (LE).
    pub fn set_counter(&mut self, v: u64) {
        put(self.buffer.as_mut(), field::COUNTER.start, &v.to_le_bytes());
    }
}

/// The security header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// ENCRYPT with its counter, or INFO.
    pub protection: Protection,
}

impl Repr {
    /// Parses flags, suite and counter. Which protection is *allowed* on a
    /// channel is the caller's step-5 check ([`Packet::new_checked`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let len = p.buffer.as_ref().len();
        if len < BASE_LEN {
            return Err(DropReason::BadLength);
        }
        match (p.flags(), p.suite()) {
            (FLAG_ENCRYPT, SUITE_AES_256_GCM) if len >= MIN_ENCRYPTED_LEN => {
                Ok(Repr { protection: Protection::Sealed { counter: p.counter() } })
            }
            (FLAG_ENCRYPT, SUITE_AES_256_GCM) => Err(DropReason::BadLength),
            (FLAG_INFO, SUITE_NONE) => Ok(Repr { protection: Protection::Clear }),
            _ => Err(DropReason::BadSecurity),
        }
    }

    /// Header bytes before the (cipher or clear) payload.
    pub const fn header_len(&self) -> usize {
        match self.protection {
            Protection::Sealed { .. } => ENCRYPTED_HEADER_LEN,
            Protection::Clear => BASE_LEN,
        }
    }

    /// Header and trailer bytes around a payload.
    pub const fn overhead(&self) -> usize {
        match self.protection {
            Protection::Sealed { .. } => MIN_ENCRYPTED_LEN,
            Protection::Clear => BASE_LEN,
        }
    }

    /// Writes flags, suite and, with ENCRYPT, the counter; `p` must hold at
    /// least [`header_len`](Self::header_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        match self.protection {
            Protection::Sealed { counter } => {
                p.set_flags(FLAG_ENCRYPT);
                p.set_suite(SUITE_AES_256_GCM);
                p.set_counter(counter);
            }
            Protection::Clear => {
                p.set_flags(FLAG_INFO);
                p.set_suite(SUITE_NONE);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for prot in [Protection::Sealed { counter: 0x0102_0304_0506_0708 }, Protection::Clear] {
            let r = Repr { protection: prot };
            let mut b = vec![0u8; r.overhead()];
            r.emit(&mut Packet::new_unchecked(&mut b[..]));
            assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])), Ok(r));
        }
    }

    #[test]
    fn step_five() {
        let mut b = [0u8; 28];
        Repr { protection: Protection::Sealed { counter: 1 } }.emit(&mut Packet::new_unchecked(&mut b[..]));
        assert!(Packet::new_checked(&b[..], false).is_ok());
        assert_eq!(Packet::new_checked(&b[..], true).err(), Some(DropReason::BadSecurity));
        assert_eq!(Packet::new_checked(&b[..27], false).err(), Some(DropReason::BadLength));
        assert_eq!(Packet::new_checked(&b[..3], false).err(), Some(DropReason::BadLength));
        for flags in [0u16, FLAG_ENCRYPT | FLAG_INFO, FLAG_ENCRYPT | 1, FLAG_INFO] {
            let mut c = b;
            c[..2].copy_from_slice(&flags.to_le_bytes());
            assert_eq!(Packet::new_checked(&c[..], false).err(), Some(DropReason::BadSecurity));
        }
        let mut c = b;
        c[2] = 2; // wrong suite
        assert_eq!(Packet::new_checked(&c[..], false).err(), Some(DropReason::BadSecurity));
    }
}
