//! Whole-frame emitters used by tests, pktgen and the handshake: they stack
//! the wire `Repr`s, compress, seal and sign exactly as the spec says.

use ed25519_zebra::SigningKey;

use crate::crypto::AeadKey;
use crate::lz4;
use crate::wire::mcs::{self, channel};
use crate::wire::security::{self, Protection, TAG_LEN};
use crate::wire::share::{self, Compression};
use crate::wire::tx::{self, signing_header, Kind, FIXED_LEN};
use crate::wire::{tpkt, x224};

/// What goes around a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpec {
    /// MCS kind: [`mcs::KIND_REQUEST`] or [`mcs::KIND_INDICATION`].
    pub kind: u8,
    /// MCS initiator: the session id.
    pub initiator: u16,
    /// MCS channel (see [`channel`]).
    pub channel: u16,
    /// MCS priority: [`mcs::PRIORITY_HIGH`] or [`mcs::PRIORITY_ALT`].
    pub priority: u8,
    /// Force the two-byte PER form.
    pub long_per: bool,
    /// Share-data `stream_seq` (informational).
    pub stream_seq: u16,
    /// Content kind, `pdu_type2` (see [`share::kind`]).
    pub content_kind: u8,
    /// Compress the body with LZ4 (block format).
    pub compress: bool,
}

impl FrameSpec {
    /// A client's TX_BATCH request on channel 1004.
    pub fn tx_batch(session: u16) -> Self {
        FrameSpec {
            kind: mcs::KIND_REQUEST,
            initiator: session,
            channel: channel::TRANSACTIONS,
            priority: mcs::PRIORITY_HIGH,
            long_per: false,
            stream_seq: 0,
            content_kind: share::kind::TX_BATCH,
            compress: false,
        }
    }

    /// A relay's RECEIPT indication (0x68, content kind 0x43) for `session`
    /// on `channel`, the channel its transactions came in on.
    pub fn receipt(session: u16, channel: u16) -> Self {
        FrameSpec {
            kind: mcs::KIND_INDICATION,
            initiator: session,
            channel,
            priority: mcs::PRIORITY_HIGH,
            long_per: false,
            stream_seq: 0,
            content_kind: share::kind::RECEIPT,
            compress: false,
        }
    }
}

/// Most ids one RECEIPT frame carries: the frame is then 1351 bytes, so a
/// datagram holding it stays under 1472 (a 1500-byte MTU less the IPv4 and
/// UDP headers).
pub const RECEIPT_MAX_IDS: usize = 40;

/// The most a sealed frame adds to its body: TPKT 4, X.224 3, MCS 6 with
/// a two-byte PER length, the security header 4, the counter 8, the GCM
/// tag 16 and the share-data header 18 (a body under about 80 bytes gets a
/// one-byte PER length: one less).
pub const SEALED_OVERHEAD: usize = 61;

/// The largest datagram a relay's reply fills: a 1500-byte MTU less the
/// IPv4 and UDP headers.
pub const REPLY_DATAGRAM_MAX: usize = 1472;

/// The largest body of a sealed reply (an ANSWER) to a session whose
/// negotiated `max_pdu_size` is `max_pdu`: the whole frame stays within
/// both that and [`REPLY_DATAGRAM_MAX`] (1411 bytes with the default
/// parameters, 963 with the least a relay accepts, 1024).
pub fn reply_body_limit(max_pdu: u16) -> usize {
    REPLY_DATAGRAM_MAX.min(usize::from(max_pdu)).saturating_sub(SEALED_OVERHEAD)
}

/// Appends a RECEIPT body (`u64 LE` height, `u16 LE` count, the ids) for
/// `ids` included in block `height`; returns its length.
pub fn emit_receipt_body(height: u64, ids: &[[u8; 32]], out: &mut Vec<u8>) -> Result<usize, EmitError> {
    if crate::wire::receipt::HEADER_LEN + ids.len() * crate::wire::receipt::ID_LEN > share::MAX_BODY {
        return Err(EmitError::BodyTooLarge);
    }
    crate::wire::receipt::emit(height, ids, out).map_err(|_| EmitError::BodyTooLarge)
}

/// The frame would not fit the wire's length fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// Body over 16384 bytes before compression.
    BodyTooLarge,
    /// User data over 0x3FFF bytes.
    FrameTooLarge,
}

impl core::fmt::Display for EmitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EmitError::BodyTooLarge => "body over 16384 bytes",
            EmitError::FrameTooLarge => "frame user data over 16383 bytes",
        })
    }
}

impl std::error::Error for EmitError {}

/// Appends one frame to `out`. With `seal = Some((key, counter))` the
/// share-data header and body are sealed (ENCRYPT); with `None` they go in
/// clear (INFO). Returns the frame's length.
pub fn emit_frame(
    spec: &FrameSpec,
    body: &[u8],
    seal: Option<(&AeadKey, u64)>,
    out: &mut Vec<u8>,
) -> Result<usize, EmitError> {
    emit_frame_with(spec, body, seal, out, &mut Vec::new())
}

/// As [`emit_frame`], compressing into `scratch` (cleared first), which a
/// sender keeps from frame to frame so that building a frame allocates
/// nothing once the buffers have grown.
pub fn emit_frame_with(
    spec: &FrameSpec,
    body: &[u8],
    seal: Option<(&AeadKey, u64)>,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<usize, EmitError> {
    if body.len() > share::MAX_BODY {
        return Err(EmitError::BodyTooLarge);
    }
    let start = out.len();
    let (compression, wire_body): (_, &[u8]) = if spec.compress {
        scratch.clear();
        lz4::compress_into(body, scratch);
        (Compression::Lz4, scratch)
    } else {
        (Compression::None, body)
    };
    let sd = share::Repr {
        stream_seq: spec.stream_seq,
        uncompressed_length: body.len() as u16,
        content_kind: spec.content_kind,
        compression,
        body_len: wire_body.len(),
    };
    let sec = security::Repr {
        protection: match seal {
            Some((_, c)) => Protection::Sealed { counter: c },
            None => Protection::Clear,
        },
    };
    let ud_len = sec.overhead() + sd.buffer_len();
    if ud_len > mcs::MAX_PER_LEN {
        return Err(EmitError::FrameTooLarge);
    }
    let m = mcs::Repr {
        kind: spec.kind,
        initiator: spec.initiator,
        channel: spec.channel,
        priority: spec.priority,
        user_data_len: ud_len,
        long_per: spec.long_per,
    };
    let total = tpkt::HEADER_LEN + x224::HEADER_LEN + m.buffer_len();
    out.resize(start + total, 0);
    let f = &mut out[start..];
    tpkt::Repr { length: total as u16 }.emit(&mut tpkt::Packet::new_unchecked(&mut f[..4]));
    x224::Repr.emit(&mut x224::Packet::new_unchecked(&mut f[4..7]));
    let mut mp = mcs::Packet::new_unchecked(&mut f[7..]);
    m.emit(&mut mp);
    let ud_at = 7 + m.header_len();
    sec.emit(&mut security::Packet::new_unchecked(&mut f[ud_at..]));
    let pt_at = ud_at + sec.header_len();
    sd.emit(&mut share::Packet::new_unchecked(&mut f[pt_at..]));
    let body_at = pt_at + share::HEADER_LEN;
    f[body_at..body_at + wire_body.len()].copy_from_slice(wire_body);
    if let Some((key, counter)) = seal {
        let pt_end = body_at + wire_body.len();
        let (aad, rest) = f.split_at_mut(pt_at);
        let tag = key.seal_in_place(counter, aad, &mut rest[..pt_end - pt_at]);
        f[pt_end..pt_end + TAG_LEN].copy_from_slice(&tag);
    }
    Ok(total)
}

/// Fields of a transaction before signing.
#[derive(Debug, Clone, Copy)]
pub struct TxFields<'a> {
    /// Transaction kind.
    pub kind: Kind,
    /// The receiving account (for vote, the producer voted for).
    pub to: [u8; 32],
    /// The sender's nonce for this transaction (per account, strictly
    /// increasing by 1).
    pub nonce: u64,
    /// Amount.
    pub amount: u64,
    /// Fee.
    pub fee: u64,
    /// Memo, at most 1024 bytes (the caller's contract).
    pub memo: &'a [u8],
}

/// Appends a transaction signed by `sk` for `network_id`; returns its id.
pub fn emit_signed_tx(sk: &SigningKey, network_id: u32, t: &TxFields<'_>, out: &mut Vec<u8>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let r = tx::Repr {
        kind: t.kind,
        from: ed25519_zebra::VerificationKeyBytes::from(sk).into(),
        to: t.to,
        nonce: t.nonce,
        amount: t.amount,
        fee: t.fee,
        memo: t.memo,
        signature: [0; 64],
    };
    let start = out.len();
    out.resize(start + r.buffer_len(), 0);
    // emit cannot fail: the buffer has exactly buffer_len bytes; memo
    // length is the caller's contract (<= 1024).
    let _ = r.emit(&mut out[start..]);
    let unsigned_end = start + FIXED_LEN + t.memo.len();
    let mut msg = signing_header(network_id).to_vec();
    msg.extend_from_slice(&out[start..unsigned_end]);
    let sig = sk.sign(&msg);
    out[unsigned_end..unsigned_end + 64].copy_from_slice(&sig.to_bytes());
    Sha256::digest(&out[start..unsigned_end]).into()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::wire::receipt::Receipt;

    /// A sealed frame is its body plus at most [`SEALED_OVERHEAD`] bytes,
    /// so a body of [`reply_body_limit`] fills the limit and no more.
    #[test]
    fn sealed_overhead_bounds_every_reply() {
        let key = AeadKey::new(&testkit::r2c(7));
        for len in [0usize, 10, 79, 80, 81, 200, 963, 1411] {
            let mut frame = Vec::new();
            let spec = FrameSpec { content_kind: share::kind::ANSWER, ..FrameSpec::receipt(7, 1005) };
            let n = emit_frame(&spec, &vec![0; len], Some((&key, 1)), &mut frame).unwrap();
            assert!(n <= len + SEALED_OVERHEAD, "{len}: {n}");
            assert!(n >= len + SEALED_OVERHEAD - 1, "{len}: {n}");
        }
        assert_eq!(reply_body_limit(u16::MAX), 1411);
        assert_eq!(reply_body_limit(1024), 963);
        assert_eq!(reply_body_limit(0), 0);
        let mut frame = Vec::new();
        let spec = FrameSpec { content_kind: share::kind::ANSWER, ..FrameSpec::receipt(7, 1005) };
        emit_frame(&spec, &[0; 963], Some((&key, 1)), &mut frame).unwrap();
        assert!(frame.len() <= 1024);
    }

    /// A receipt sealed for a session opens with its relay-to-client key
    /// (and only with it), is a 0x68 indication with content kind 0x43 on
    /// the given channel, and its body parses back to the same height and ids.
    #[test]
    fn receipt_round_trip() {
        let ids: Vec<[u8; 32]> = (0..RECEIPT_MAX_IDS as u8).map(|i| [i; 32]).collect();
        let mut body = Vec::new();
        assert_eq!(emit_receipt_body(42, &ids, &mut body), Ok(10 + 32 * RECEIPT_MAX_IDS));
        let key = AeadKey::new(&testkit::r2c(7));
        let mut frame = Vec::new();
        let counter = (1_700_000_000u64 << 32) + 3;
        let n = emit_frame(&FrameSpec::receipt(7, mcs::channel::MESSAGES), &body, Some((&key, counter)), &mut frame)
            .unwrap();
        assert_eq!(n, frame.len());
        assert!(frame.len() < 1472, "{} bytes", frame.len());
        let o = testkit::open_frame(&frame, &testkit::r2c(7)).unwrap();
        assert_eq!((o.kind, o.session, o.channel, o.counter), (mcs::KIND_INDICATION, 7, 1005, counter));
        assert_eq!(o.content_kind, share::kind::RECEIPT);
        let r = Receipt::new_checked(&o.body).unwrap();
        assert_eq!((r.height(), r.count()), (42, RECEIPT_MAX_IDS as u16));
        assert_eq!(r.ids().collect::<Vec<_>>(), ids);
        // The client-to-relay key, another session's key, or one flipped bit: no.
        assert!(testkit::open_frame(&frame, &testkit::c2r(7)).is_none());
        assert!(testkit::open_frame(&frame, &testkit::r2c(8)).is_none());
        let mut bad = frame.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(testkit::open_frame(&bad, &testkit::r2c(7)).is_none());
        // Too many ids for a body.
        let many = vec![[0u8; 32]; 600];
        assert_eq!(emit_receipt_body(1, &many, &mut Vec::new()), Err(EmitError::BodyTooLarge));
    }
}
