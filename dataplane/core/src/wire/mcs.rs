//! T.125 MCS send-data PDU header (`att-wire.md`, "Frame", offsets 7..):
//! kind, initiator (session id), channel, priority and the PER-encoded
//! user-data length. The view covers the frame from offset 7 to its end, so
//! "the PER length exactly fills the frame" is a property of the view.

use super::{be16, byte, put, DropReason, Result};

mod field {
    use core::ops::Range;
    pub const KIND: usize = 0;
    pub const INITIATOR: Range<usize> = 1..3;
    pub const CHANNEL: Range<usize> = 3..5;
    pub const PRIORITY: usize = 5;
    pub const PER: usize = 6;
}

/// Fixed bytes before the PER length.
pub const FIXED_LEN: usize = 6;
/// Send-data request: client toward relay.
pub const KIND_REQUEST: u8 = 0x64;
/// Send-data indication: relay toward client.
pub const KIND_INDICATION: u8 = 0x68;
/// Both priorities mean "one whole PDU" (segmentation begin|end bits).
pub const PRIORITY_HIGH: u8 = 0x70;
/// The other accepted priority; also one whole PDU.
pub const PRIORITY_ALT: u8 = 0xF0;
/// Largest length the two-byte PER form carries.
pub const MAX_PER_LEN: usize = 0x3FFF;
/// Largest session id (user id 65535 minus 1001).
pub const MAX_SESSION_ID: u16 = 64534;

/// Channel numbers (the paper's virtual channels).
pub mod channel {
    /// Control (0x03EB): the handshake's INFO frames.
    pub const CONTROL: u16 = 1003;
    /// Transactions (0x03EC): TX_BATCH requests and their RECEIPTs.
    pub const TRANSACTIONS: u16 = 1004;
    /// Messages (0x03ED): TX_BATCH requests and their RECEIPTs, and (v1.1) QUERY and ANSWER.
    pub const MESSAGES: u16 = 1005;
    /// Consensus (0x03EE): CONSENSUS bodies (the project's own format).
    pub const CONSENSUS: u16 = 1006;
}

/// A read-only or read/write view of an MCS send-data header and the user
/// data after it (the frame from offset 7 to its end).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors return 0 on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Steps 2 (kind, priority: `bad_header`) and 3 (PER length exactly
    /// filling the buffer, no 0x4000 bit: `bad_length`).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        p.check_header()?;
        p.check_len()?;
        Ok(p)
    }

    /// Step 2 for the MCS bytes.
    pub fn check_header(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FIXED_LEN {
            return Err(DropReason::Truncated);
        }
        let k = self.kind();
        let pr = self.priority();
        if (k != KIND_REQUEST && k != KIND_INDICATION) || (pr != PRIORITY_HIGH && pr != PRIORITY_ALT) {
            return Err(DropReason::BadHeader);
        }
        Ok(())
    }

    /// Step 3: the PER length must exactly fill the buffer.
    pub fn check_len(&self) -> Result<()> {
        let (per_len, data_len) = self.per().ok_or(DropReason::BadLength)?;
        if FIXED_LEN + per_len + data_len != self.buffer.as_ref().len() {
            return Err(DropReason::BadLength);
        }
        Ok(())
    }

    /// `(bytes of the PER field, user-data length)`, or `None` when the
    /// field is cut off or uses the reserved 0x4000 bit.
    pub fn per(&self) -> Option<(usize, usize)> {
        let b = self.buffer.as_ref();
        let b0 = *b.get(field::PER)?;
        if b0 & 0x80 == 0 {
            return Some((1, b0 as usize));
        }
        if b0 & 0x40 != 0 {
            return None;
        }
        let b1 = *b.get(field::PER + 1)?;
        Some((2, ((b0 as usize & 0x3F) << 8) | b1 as usize))
    }

    /// `mcs.kind`: [`KIND_REQUEST`] or [`KIND_INDICATION`] in a valid frame.
    pub fn kind(&self) -> u8 {
        byte(self.buffer.as_ref(), field::KIND)
    }
    /// The session id.
    pub fn initiator(&self) -> u16 {
        be16(self.buffer.as_ref(), field::INITIATOR.start)
    }
    /// `mcs.channel` (see [`channel`]).
    pub fn channel(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHANNEL.start)
    }
    /// `mcs.priority`: [`PRIORITY_HIGH`] or [`PRIORITY_ALT`] in a valid frame.
    pub fn priority(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PRIORITY)
    }
    /// Offset of the user data within this view.
    pub fn data_offset(&self) -> usize {
        FIXED_LEN + self.per().map_or(1, |p| p.0)
    }
    /// The user data (empty if the view was not checked).
    pub fn user_data(&self) -> &[u8] {
        self.buffer.as_ref().get(self.data_offset()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes `mcs.kind`.
    pub fn set_kind(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::KIND, &[v]);
    }
    /// Writes `mcs.initiator`, the session id (big-endian).
    pub fn set_initiator(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::INITIATOR.start, &v.to_be_bytes());
    }
    /// Writes `mcs.channel` (big-endian).
    pub fn set_channel(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::CHANNEL.start, &v.to_be_bytes());
    }
    /// Writes `mcs.priority`.
    pub fn set_priority(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::PRIORITY, &[v]);
    }
    /// Writes the PER length in one byte, or two if `long` or `len >= 0x80`.
    pub fn set_per(&mut self, len: usize, long: bool) {
        if len < 0x80 && !long {
            put(self.buffer.as_mut(), field::PER, &[len as u8]);
        } else {
            put(self.buffer.as_mut(), field::PER, &(0x8000u16 | len as u16).to_be_bytes());
        }
    }
    /// The user data, writable; its offset follows the PER field, so write
    /// that first ([`set_per`](Self::set_per)).
    pub fn user_data_mut(&mut self) -> &mut [u8] {
        let off = self.data_offset();
        self.buffer.as_mut().get_mut(off..).unwrap_or(&mut [])
    }
}

/// The MCS send-data header as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// `mcs.kind`: [`KIND_REQUEST`] or [`KIND_INDICATION`].
    pub kind: u8,
    /// `mcs.initiator`: the session id, 0..=[`MAX_SESSION_ID`].
    pub initiator: u16,
    /// `mcs.channel` (see [`channel`]).
    pub channel: u16,
    /// `mcs.priority`: [`PRIORITY_HIGH`] or [`PRIORITY_ALT`].
    pub priority: u8,
    /// User-data length in bytes, at most [`MAX_PER_LEN`].
    pub user_data_len: usize,
    /// Two-byte PER form even for a short length.
    pub long_per: bool,
}

impl Repr {
    /// Reads a header that passes steps 2 and 3 ([`Packet::new_checked`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_header()?;
        p.check_len()?;
        let (per_len, user_data_len) = p.per().ok_or(DropReason::BadLength)?;
        Ok(Repr {
            kind: p.kind(),
            initiator: p.initiator(),
            channel: p.channel(),
            priority: p.priority(),
            user_data_len,
            long_per: per_len == 2,
        })
    }

    /// Bytes of this header including the PER field, without user data.
    pub const fn header_len(&self) -> usize {
        FIXED_LEN + if self.long_per || self.user_data_len >= 0x80 { 2 } else { 1 }
    }

    /// Bytes of header plus user data.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.user_data_len
    }

    /// Writes the header; the caller writes the user data after it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_kind(self.kind);
        p.set_initiator(self.initiator);
        p.set_channel(self.channel);
        p.set_priority(self.priority);
        p.set_per(self.user_data_len, self.long_per);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn emit(r: &Repr) -> Vec<u8> {
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut b[..]));
        b
    }

    #[test]
    fn round_trip_short_long_and_forced_long() {
        for (len, long) in [(0, false), (5, false), (5, true), (0x7F, false), (0x80, false), (0x3FFF, false)] {
            let r = Repr {
                kind: KIND_REQUEST,
                initiator: 3,
                channel: channel::TRANSACTIONS,
                priority: PRIORITY_HIGH,
                user_data_len: len,
                long_per: long,
            };
            let b = emit(&r);
            let back = Repr::parse(&Packet::new_unchecked(&b[..])).unwrap();
            assert_eq!(back.user_data_len, len);
            assert_eq!(back.long_per, long || len >= 0x80);
            assert_eq!(back.initiator, 3);
        }
    }

    #[test]
    fn header_and_length_errors() {
        let r = Repr {
            kind: KIND_REQUEST,
            initiator: 1,
            channel: channel::MESSAGES,
            priority: PRIORITY_ALT,
            user_data_len: 3,
            long_per: false,
        };
        let b = emit(&r);
        let mut bad = b.clone();
        bad[0] = 0x65;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bad[..])), Err(DropReason::BadHeader));
        let mut bad = b.clone();
        bad[5] = 0x30;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bad[..])), Err(DropReason::BadHeader));
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..b.len() - 1])), Err(DropReason::BadLength));
        let mut bad = b.clone();
        bad[6] = 0xC0; // two-byte form with the reserved 0x4000 bit
        bad.push(0);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bad[..])), Err(DropReason::BadLength));
    }
}
