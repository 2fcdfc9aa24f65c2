//! Share-data header and body, the (decrypted) plaintext of a frame
//! (`att-wire.md`, "Share-data header and body (plaintext)"). Little-endian.

use super::{byte, le16, le32, put, DropReason, Result};

mod field {
    use core::ops::Range;
    pub const TOTAL_LENGTH: Range<usize> = 0..2;
    pub const PDU_TYPE: Range<usize> = 2..4;
    pub const PDU_SOURCE: Range<usize> = 4..6;
    pub const SHARE_ID: Range<usize> = 6..10;
    pub const STREAM_SEQ: Range<usize> = 10..12;
    pub const UNCOMPRESSED_LENGTH: Range<usize> = 12..14;
    pub const PDU_TYPE2: usize = 14;
    pub const COMPRESSED_TYPE: usize = 15;
    pub const COMPRESSED_LENGTH: Range<usize> = 16..18;
}

pub const HEADER_LEN: usize = 18;
pub const PDU_TYPE: u16 = 0x0017;
pub const PDU_SOURCE: u16 = 0x03EA;
pub const SHARE_ID: u32 = 0x0001_03EA;
/// Largest body after decompression.
pub const MAX_BODY: usize = 16384;

/// Content kinds (`pdu_type2`).
pub mod kind {
    pub const TX_BATCH: u8 = 0x40;
    pub const HELLO: u8 = 0x41;
    pub const WELCOME: u8 = 0x42;
    pub const RECEIPT: u8 = 0x43;
    pub const CONSENSUS: u8 = 0x50;
}

/// `compressed_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// LZ4 block format, no size prefix.
    Lz4,
}

pub const COMPRESSED_NONE: u8 = 0x00;
pub const COMPRESSED_LZ4: u8 = 0x24;

#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Step 9's length rules (`bad_compression`): at least 18 bytes,
    /// total_length equal to the plaintext, a known compressed_type whose
    /// compressed_length agrees, a plain body of exactly
    /// uncompressed_length bytes, uncompressed_length <= 16384. Returns the
    /// compression in use.
    pub fn check_lengths(&self) -> Result<Compression> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || self.total_length() as usize != len {
            return Err(DropReason::BadCompression);
        }
        let body = len - HEADER_LEN;
        let ulen = self.uncompressed_length() as usize;
        if ulen > MAX_BODY {
            return Err(DropReason::BadCompression);
        }
        match self.compressed_type() {
            COMPRESSED_NONE if self.compressed_length() == 0 && body == ulen => Ok(Compression::None),
            COMPRESSED_LZ4 if self.compressed_length() as usize == body => Ok(Compression::Lz4),
            _ => Err(DropReason::BadCompression),
        }
    }

    /// Step 9's constants (`bad_header`); the content kind is checked by the
    /// caller against the channel.
    pub fn check_constants(&self) -> Result<()> {
        if self.pdu_type() != PDU_TYPE || self.pdu_source() != PDU_SOURCE || self.share_id() != SHARE_ID {
            return Err(DropReason::BadHeader);
        }
        Ok(())
    }

    pub fn total_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::TOTAL_LENGTH.start)
    }
    pub fn pdu_type(&self) -> u16 {
        le16(self.buffer.as_ref(), field::PDU_TYPE.start)
    }
    pub fn pdu_source(&self) -> u16 {
        le16(self.buffer.as_ref(), field::PDU_SOURCE.start)
    }
    pub fn share_id(&self) -> u32 {
        le32(self.buffer.as_ref(), field::SHARE_ID.start)
    }
    pub fn stream_seq(&self) -> u16 {
        le16(self.buffer.as_ref(), field::STREAM_SEQ.start)
    }
    pub fn uncompressed_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::UNCOMPRESSED_LENGTH.start)
    }
    pub fn content_kind(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PDU_TYPE2)
    }
    pub fn compressed_type(&self) -> u8 {
        byte(self.buffer.as_ref(), field::COMPRESSED_TYPE)
    }
    pub fn compressed_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::COMPRESSED_LENGTH.start)
    }
    /// The wire body (compressed or not).
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn body_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut().get_mut(HEADER_LEN..).unwrap_or(&mut [])
    }
}

/// The share-data header as plain values. `body_len` is the wire body
/// (compressed_length when compressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub stream_seq: u16,
    pub uncompressed_length: u16,
    pub content_kind: u8,
    pub compression: Compression,
    pub body_len: usize,
}

impl Repr {
    /// Parses with the spec's order: lengths (`bad_compression`) before
    /// constants (`bad_header`).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        let compression = p.check_lengths()?;
        p.check_constants()?;
        Ok(Repr {
            stream_seq: p.stream_seq(),
            uncompressed_length: p.uncompressed_length(),
            content_kind: p.content_kind(),
            compression,
            body_len: p.body().len(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body_len
    }

    /// Writes the header; the caller writes the body after it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        put(b, field::TOTAL_LENGTH.start, &(self.buffer_len() as u16).to_le_bytes());
        put(b, field::PDU_TYPE.start, &PDU_TYPE.to_le_bytes());
        put(b, field::PDU_SOURCE.start, &PDU_SOURCE.to_le_bytes());
        put(b, field::SHARE_ID.start, &SHARE_ID.to_le_bytes());
        put(b, field::STREAM_SEQ.start, &self.stream_seq.to_le_bytes());
        put(b, field::UNCOMPRESSED_LENGTH.start, &self.uncompressed_length.to_le_bytes());
        let (ct, cl) = match self.compression {
            Compression::None => (COMPRESSED_NONE, 0u16),
            Compression::Lz4 => (COMPRESSED_LZ4, self.body_len as u16),
        };
        put(b, field::PDU_TYPE2, &[self.content_kind]);
        put(b, field::COMPRESSED_TYPE, &[ct]);
        put(b, field::COMPRESSED_LENGTH.start, &cl.to_le_bytes());
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
    fn round_trip() {
        for (c, body, ulen) in [(Compression::None, 10, 10), (Compression::Lz4, 7, 300)] {
            let r = Repr {
                stream_seq: 9,
                uncompressed_length: ulen,
                content_kind: kind::TX_BATCH,
                compression: c,
                body_len: body,
            };
            let b = emit(&r);
            assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])), Ok(r));
        }
    }

    #[test]
    fn length_rules_before_constants() {
        let r = Repr {
            stream_seq: 0,
            uncompressed_length: 4,
            content_kind: kind::TX_BATCH,
            compression: Compression::None,
            body_len: 4,
        };
        let good = emit(&r);
        let p = |b: &[u8]| Repr::parse(&Packet::new_unchecked(b));
        assert_eq!(p(&good[..17]), Err(DropReason::BadCompression));
        let mut b = good.clone();
        b[0] += 1; // total_length lies
        assert_eq!(p(&b), Err(DropReason::BadCompression));
        let mut b = good.clone();
        b[15] = 0x25; // unknown compressed_type
        assert_eq!(p(&b), Err(DropReason::BadCompression));
        let mut b = good.clone();
        b[16] = 1; // compressed_length with no compression
        assert_eq!(p(&b), Err(DropReason::BadCompression));
        let mut b = good.clone();
        b[12] = 5; // plain body shorter than uncompressed_length
        assert_eq!(p(&b), Err(DropReason::BadCompression));
        let mut b = good.clone();
        b[2] = 0x18; // pdu_type
        assert_eq!(p(&b), Err(DropReason::BadHeader));
        b[0] += 1; // and a length lie: lengths are judged first
        assert_eq!(p(&b), Err(DropReason::BadCompression));
        let r = Repr { uncompressed_length: 16385, compression: Compression::Lz4, ..r };
        assert_eq!(p(&emit(&r)), Err(DropReason::BadCompression));
    }
}
