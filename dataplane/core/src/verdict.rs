//! Drop reasons and the per-core counters that always add up
//! (`frames_received == frames_accepted + Σ frame drops`,
//! `txs_seen == txs_accepted + Σ tx drops`).

use core::fmt;

/// Why a frame was dropped (`att-wire.md`, "The order of checks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Step 1: fewer than 4 bytes, or a `tpkt.length` beyond the datagram. The
    /// rest of the datagram is not parsed.
    Truncated = 0,
    /// Steps 1, 2, 4 and 9: TPKT version not 3 or reserved byte not 0; X.224
    /// bytes, MCS kind or priority not as the spec says; a kind not accepted on
    /// the channel (an indication on 1004 or 1005); wrong share-data constants,
    /// or a content kind not valid on the channel.
    BadHeader,
    /// Steps 1, 3 and 5: `tpkt.length` below 14; a PER length that does not
    /// exactly fill the frame or has bit 0x4000 set; user data too short for
    /// its security header, counter and tag (28 bytes with ENCRYPT).
    BadLength,
    /// Step 4: a channel this receiver does not serve (the transaction path
    /// serves 1004 and 1005).
    UnsupportedChannel,
    /// Step 6: the initiator is not a known session.
    UnknownSession,
    /// Step 8: the GCM tag does not verify.
    AuthFailed,
    /// Step 7: the counter is below the window or already seen.
    Replay,
    /// Step 5: security flags and suite not as the table says for the channel
    /// (INFO outside 1003, ENCRYPT on 1003, both bits or neither, another bit,
    /// a wrong suite).
    BadSecurity,
    /// Step 9: a plaintext shorter than 18 bytes, lengths that disagree,
    /// `uncompressed_length` over 16384, an unknown `compressed_type`, or a
    /// body that does not decompress to exactly `uncompressed_length` bytes.
    BadCompression,
    /// Step 10, whole frame (`att-wire.md`, "TX_BATCH body"): a body shorter
    /// than its count says, a transaction with an unknown version or kind, a
    /// `memo_len` over 1024, or bytes left over after the last transaction.
    BadTx,
    /// Not in the spec's list: the node's own defence. The frame passed
    /// steps 1-8, but its session is in a cool-down for having cost the
    /// node too many failed signatures or ledger refusals
    /// ([`crate::budget`]); dropped before decompression and signatures.
    /// `attnet decode` never throttles.
    Throttled,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 11;
    /// Every reason, in the spec's order (which is also the discriminant
    /// order), then the node's own (`throttled`).
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::BadHeader,
        DropReason::BadLength,
        DropReason::UnsupportedChannel,
        DropReason::UnknownSession,
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::BadSecurity,
        DropReason::BadCompression,
        DropReason::BadTx,
        DropReason::Throttled,
    ];

    /// The spec's name, as printed by `attnet decode` and the summaries.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadHeader => "bad_header",
            DropReason::BadLength => "bad_length",
            DropReason::UnsupportedChannel => "unsupported_channel",
            DropReason::UnknownSession => "unknown_session",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replay => "replay",
            DropReason::BadSecurity => "bad_security",
            DropReason::BadCompression => "bad_compression",
            DropReason::BadTx => "bad_tx",
            DropReason::Throttled => "throttled",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one transaction of an accepted frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TxDrop {
    /// Step 10: the transaction's signature breaks the strict rules
    /// (`att-wire.md`, "TX_BATCH body"); that transaction alone is dropped.
    BadSignature = 0,
    /// Counted where transactions are deduplicated (`decode --pcap`, the
    /// node): before verification by the caller's filter, or after.
    Duplicate,
    /// The node's ring to the transaction's shard stayed full while the
    /// data core held the batch back and it grew to `HOLD_MAX_TXS`
    /// transactions (or the core stopped with it still held): dropped rather
    /// than stall the data core.
    RingFull,
}

impl TxDrop {
    /// Number of reasons.
    pub const COUNT: usize = 3;
    /// Every reason, in discriminant order.
    pub const ALL: [TxDrop; Self::COUNT] = [TxDrop::BadSignature, TxDrop::Duplicate, TxDrop::RingFull];

    /// The reason's name (`bad_signature`, `duplicate`, `ring_full`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TxDrop::BadSignature => "bad_signature",
            TxDrop::Duplicate => "duplicate",
            TxDrop::RingFull => "ring_full",
        }
    }
}

/// What happened to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted, every transaction verified.
    Ok,
    /// Accepted as a frame, but this many transactions failed their
    /// signatures (the others stand).
    BadSignature(u16),
    /// Dropped whole.
    Dropped(DropReason),
    /// Accepted as a frame, every signature checked was good, but this many
    /// transactions were copies of ones already accepted or queued (dropped
    /// as `duplicate`, the others stand).
    Duplicate(u16),
}

impl Verdict {
    /// The verdict's name: `ok`, `bad_signature`, or the drop reason's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::BadSignature(_) => TxDrop::BadSignature.as_str(),
            Verdict::Dropped(r) => r.as_str(),
            Verdict::Duplicate(_) => TxDrop::Duplicate.as_str(),
        }
    }
    /// Accepted with every transaction verified.
    pub const fn is_ok(self) -> bool {
        matches!(self, Verdict::Ok)
    }
}

/// Per-core counters: plain integers in one cache-line-aligned block,
/// summed by whoever reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Counters {
    /// Frames judged: accepted plus dropped.
    pub frames_received: u64,
    /// Frames accepted (some of their transactions may still be dropped).
    pub frames_accepted: u64,
    /// Frames dropped, per [`DropReason`] (indexed by its discriminant).
    pub frame_drops: [u64; DropReason::COUNT],
    /// Transactions in accepted frames.
    pub txs_seen: u64,
    /// Transactions accepted: verified, and not dropped by a later stage.
    pub txs_accepted: u64,
    /// Transactions dropped, per [`TxDrop`] (indexed by its discriminant).
    pub tx_drops: [u64; TxDrop::COUNT],
}

impl Counters {
    /// Counts a frame dropped for `r`.
    #[inline]
    pub fn drop_frame(&mut self, r: DropReason) {
        self.frames_received += 1;
        if let Some(c) = self.frame_drops.get_mut(r as usize) {
            *c += 1;
        }
    }

    /// Counts an accepted frame.
    #[inline]
    pub fn accept_frame(&mut self) {
        self.frames_received += 1;
        self.frames_accepted += 1;
    }

    /// Counts one transaction of an accepted frame dropped for `r`.
    #[inline]
    pub fn drop_tx(&mut self, r: TxDrop) {
        if let Some(c) = self.tx_drops.get_mut(r as usize) {
            *c += 1;
        }
    }

    /// Moves one accepted transaction to `duplicate` (the deduplicating
    /// stage runs after the frame path has accepted it).
    #[inline]
    pub fn reclassify_duplicate(&mut self) {
        self.reclassify(TxDrop::Duplicate, 1);
    }

    /// Moves `n` accepted transactions to drop reason `r` (a later stage
    /// refused them).
    #[inline]
    pub fn reclassify(&mut self, r: TxDrop, n: u64) {
        self.txs_accepted -= n;
        if let Some(c) = self.tx_drops.get_mut(r as usize) {
            *c += n;
        }
    }

    /// Frames dropped for `r`.
    pub fn frame_drop(&self, r: DropReason) -> u64 {
        self.frame_drops.get(r as usize).copied().unwrap_or(0)
    }

    /// Transactions dropped for `r`.
    pub fn tx_drop(&self, r: TxDrop) -> u64 {
        self.tx_drops.get(r as usize).copied().unwrap_or(0)
    }

    /// Every frame drop reason's name and count, in the spec's order.
    pub fn frame_drops_named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL.into_iter().map(|r| (r.as_str(), self.frame_drop(r)))
    }

    /// Every transaction drop reason's name and count.
    pub fn tx_drops_named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        TxDrop::ALL.into_iter().map(|r| (r.as_str(), self.tx_drop(r)))
    }

    /// Frames dropped, all reasons.
    pub fn frames_dropped(&self) -> u64 {
        self.frame_drops.iter().sum()
    }

    /// Transactions dropped, all reasons.
    pub fn txs_dropped(&self) -> u64 {
        self.tx_drops.iter().sum()
    }

    /// The two identities every reader may rely on.
    pub fn balanced(&self) -> bool {
        self.frames_received == self.frames_accepted + self.frames_dropped()
            && self.txs_seen == self.txs_accepted + self.txs_dropped()
    }

    /// Adds `o`'s counts to these (summing cores).
    pub fn add(&mut self, o: &Counters) {
        self.frames_received += o.frames_received;
        self.frames_accepted += o.frames_accepted;
        for (a, b) in self.frame_drops.iter_mut().zip(o.frame_drops) {
            *a += b;
        }
        self.txs_seen += o.txs_seen;
        self.txs_accepted += o.txs_accepted;
        for (a, b) in self.tx_drops.iter_mut().zip(o.tx_drops) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_specs() {
        let names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "truncated",
                "bad_header",
                "bad_length",
                "unsupported_channel",
                "unknown_session",
                "auth_failed",
                "replay",
                "bad_security",
                "bad_compression",
                "bad_tx",
                "throttled"
            ]
        );
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn counters_balance() {
        let mut c = Counters::default();
        c.accept_frame();
        c.drop_frame(DropReason::Replay);
        c.txs_seen += 3;
        c.txs_accepted += 2;
        c.drop_tx(TxDrop::BadSignature);
        assert!(c.balanced());
        c.reclassify_duplicate();
        assert!(c.balanced());
        assert_eq!(c.tx_drop(TxDrop::Duplicate), 1);
        assert_eq!(core::mem::align_of::<Counters>(), 64);
    }
}
