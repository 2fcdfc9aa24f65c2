//! TPKT header (RFC 1006), the first four bytes of every frame
//! (`att-wire.md`, "Frame", offsets 0..4).

use super::{be16, byte, put, DropReason, Result};

mod field {
    use core::ops::Range;
    pub const VERSION: usize = 0;
    pub const RESERVED: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
}

/// Length of the TPKT header.
pub const HEADER_LEN: usize = 4;
/// TPKT version for every ATT frame.
pub const VERSION: u8 = 3;
/// Smallest frame the spec accepts: TPKT + X.224 + MCS with a 1-byte PER
/// length and no user data.
pub const MIN_FRAME_LEN: usize = 14;

/// A read-only or read/write view of a TPKT header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors return 0 on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer and applies the spec's step 1 to it: at least 4 bytes,
    /// version 3, reserved 0, length within the buffer and at least 14.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        p.check()?;
        Ok(p)
    }

    /// Step 1 of "The order of checks".
    pub fn check(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        if self.version() != VERSION || self.reserved() != 0 {
            return Err(DropReason::BadHeader);
        }
        let len = self.length() as usize;
        if len > b.len() {
            return Err(DropReason::Truncated);
        }
        if len < MIN_FRAME_LEN {
            return Err(DropReason::BadLength);
        }
        Ok(())
    }

    /// `tpkt.version`: 3 in every ATT frame.
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VERSION)
    }
    /// `tpkt.reserved`: 0 in every ATT frame.
    pub fn reserved(&self) -> u8 {
        byte(self.buffer.as_ref(), field::RESERVED)
    }
    /// Whole frame length, these four bytes included.
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }
    /// Returns the wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes `tpkt.version`.
    pub fn set_version(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::VERSION, &[v]);
    }
    /// Writes `tpkt.reserved`.
    pub fn set_reserved(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::RESERVED, &[v]);
    }
    /// Writes `tpkt.length` (big-endian).
    pub fn set_length(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::LENGTH.start, &v.to_be_bytes());
    }
}

/// The TPKT header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Whole frame length.
    pub length: u16,
}

impl Repr {
    /// Reads a header that passes step 1 ([`Packet::check`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check()?;
        Ok(Repr { length: p.length() })
    }

    /// Bytes the header takes: always [`HEADER_LEN`].
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; `p` must hold at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version(VERSION);
        p.set_reserved(0);
        p.set_length(self.length);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 20];
        let r = Repr { length: 20 };
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..4], &[3, 0, 0, 20]);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&buf[..])), Ok(r));
    }

    #[test]
    fn step_one_order() {
        assert_eq!(Packet::new_checked(&[3u8, 0, 0][..]).err(), Some(DropReason::Truncated));
        assert_eq!(Packet::new_checked(&[4u8, 0, 0, 14][..]).err(), Some(DropReason::BadHeader));
        assert_eq!(Packet::new_checked(&[3u8, 1, 0, 14][..]).err(), Some(DropReason::BadHeader));
        assert_eq!(Packet::new_checked(&[3u8, 0, 0, 14][..]).err(), Some(DropReason::Truncated));
        assert_eq!(Packet::new_checked(&[3u8, 0, 0, 4][..]).err(), Some(DropReason::BadLength));
        let ok = [3u8, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(Packet::new_checked(&ok[..]).is_ok());
    }
}
