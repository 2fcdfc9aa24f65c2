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

/// Length of the share-data header.
pub const HEADER_LEN: usize = 18;
/// `pdu_type` of every ATT plaintext.
pub const PDU_TYPE: u16 = 0x0017;
/// `pdu_source` of every ATT plaintext.
pub const PDU_SOURCE: u16 = 0x03EA;
/// `share_id` of every ATT plaintext.
pub const SHARE_ID: u32 = 0x0001_03EA;
/// Largest body after decompression.
pub const MAX_BODY: usize = 16384;

/// Content kinds (`pdu_type2`).
pub mod kind {
    /// Transactions (channels 1004 and 1005, kind 0x64).
    pub const TX_BATCH: u8 = 0x40;
    /// Handshake opening (channel 1003, kind 0x64).
    pub const HELLO: u8 = 0x41;
    /// Handshake answer (channel 1003, kind 0x68).
    pub const WELCOME: u8 = 0x42;
    /// Ids of transactions included in a block (channels 1004 and 1005, kind 0x68).
    pub const RECEIPT: u8 = 0x43;
    /// A relay's answer to a HELLO under load (v1.1; channel 1003, kind 0x68).
    pub const COOKIE: u8 = 0x44;
    /// The cookie a client echoes before its HELLO (v1.1; channel 1003, kind 0x64).
    pub const COOKIE_ECHO: u8 = 0x45;
    /// A client's question about an account or a transaction (v1.1; channel 1005, kind 0x64).
    pub const QUERY: u8 = 0x48;
    /// A relay's answer to a QUERY (v1.1; channel 1005, kind 0x68).
    pub const ANSWER: u8 = 0x49;
    /// Consensus traffic (channel 1006; the project's own body).
    pub const CONSENSUS: u8 = 0x50;
}

/// `compressed_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain body (`compressed_type` 0x00).
    None,
    /// LZ4 block format, no size prefix.
    Lz4,
}

/// `compressed_type` of a plain body.
pub const COMPRESSED_NONE: u8 = 0x00;
/// `compressed_type` of an LZ4 block-format body.
pub const COMPRESSED_LZ4: u8 = 0x24;

/// A read-only or read/write view of a plaintext: share-data header and
/// wire body.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors return 0 on short input.
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

    /// `total_length`: 18 plus the wire body length.
    pub fn total_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::TOTAL_LENGTH.start)
    }
    /// `pdu_type`: [`PDU_TYPE`] in a valid plaintext.
    pub fn pdu_type(&self) -> u16 {
        le16(self.buffer.as_ref(), field::PDU_TYPE.start)
    }
    /// `pdu_source`: [`PDU_SOURCE`] in a valid plaintext.
    pub fn pdu_source(&self) -> u16 {
        le16(self.buffer.as_ref(), field::PDU_SOURCE.start)
    }
    /// `share_id`: [`SHARE_ID`] in a valid plaintext.
    pub fn share_id(&self) -> u32 {
        le32(self.buffer.as_ref(), field::SHARE_ID.start)
    }
    /// `stream_seq`: the sender's per-channel sequence number (informational).
    pub fn stream_seq(&self) -> u16 {
        le16(self.buffer.as_ref(), field::STREAM_SEQ.start)
    }
    /// `uncompressed_length`: the body's length in bytes after decompression.
    pub fn uncompressed_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::UNCOMPRESSED_LENGTH.start)
    }
    /// The content kind, `pdu_type2` (see [`kind`]).
    pub fn content_kind(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PDU_TYPE2)
    }
    /// `compressed_type`: [`COMPRESSED_NONE`] or [`COMPRESSED_LZ4`] in a valid plaintext.
    pub fn compressed_type(&self) -> u8 {
        byte(self.buffer.as_ref(), field::COMPRESSED_TYPE)
    }
    /// `compressed_length`: 0 for a plain body, else the wire body length.
    pub fn compressed_length(&self) -> u16 {
        le16(self.buffer.as_ref(), field::COMPRESSED_LENGTH.start)
    }
    /// The wire body (compressed or not).
    pub fn body(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// The wire body, writable.
    pub fn body_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut().get_mut(HEADER_LEN..).unwrap_or(&mut [])
    }
}

/// The share-data header as plain values. `body_len` is the wire body
/// (compressed_length when compressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The sender's per-channel sequence number (informational).
    pub stream_seq: u16,
    /// Body length in bytes after decompression, at most [`MAX_BODY`].
    pub uncompressed_length: u16,
    /// Content kind, `pdu_type2` (see [`kind`]).
    pub content_kind: u8,
    /// How the wire body is compressed.
    pub compression: Compression,
    /// Wire body length in bytes.
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

    /// Bytes of header and wire body: the `total_length`.
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
