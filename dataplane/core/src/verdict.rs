//! Drop reasons and the per-core counters that always add up
//! (`frames_received == frames_accepted + Σ frame drops`,
//! `txs_seen == txs_accepted + Σ tx drops`).

use core::fmt;

/// Why a frame was dropped (`att-wire.md`, "The order of checks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    Truncated = 0,
    BadHeader,
    BadLength,
    UnsupportedChannel,
    UnknownSession,
    AuthFailed,
    Replay,
    BadSecurity,
    BadCompression,
    BadTx,
}

impl DropReason {
    pub const COUNT: usize = 10;
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
    BadSignature = 0,
    /// Counted where transactions are deduplicated (`decode --pcap`, the
    /// node): before verification by the caller's filter, or after.
    Duplicate,
    /// The node's ring to the transaction's shard was full: the batch was
    /// dropped rather than stall the data core.
    RingFull,
}

impl TxDrop {
    pub const COUNT: usize = 3;
    pub const ALL: [TxDrop; Self::COUNT] = [TxDrop::BadSignature, TxDrop::Duplicate, TxDrop::RingFull];

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
}

impl Verdict {
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::BadSignature(_) => TxDrop::BadSignature.as_str(),
            Verdict::Dropped(r) => r.as_str(),
        }
    }
    pub const fn is_ok(self) -> bool {
        matches!(self, Verdict::Ok)
    }
}

/// Per-core counters: plain integers in one cache-line-aligned block,
/// summed by whoever reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Counters {
    pub frames_received: u64,
    pub frames_accepted: u64,
    pub frame_drops: [u64; DropReason::COUNT],
    pub txs_seen: u64,
    pub txs_accepted: u64,
    pub tx_drops: [u64; TxDrop::COUNT],
}

impl Counters {
    #[inline]
    pub fn drop_frame(&mut self, r: DropReason) {
        self.frames_received += 1;
        if let Some(c) = self.frame_drops.get_mut(r as usize) {
            *c += 1;
        }
    }

    #[inline]
    pub fn accept_frame(&mut self) {
        self.frames_received += 1;
        self.frames_accepted += 1;
    }

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

    pub fn frame_drop(&self, r: DropReason) -> u64 {
        self.frame_drops.get(r as usize).copied().unwrap_or(0)
    }

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

    pub fn frames_dropped(&self) -> u64 {
        self.frame_drops.iter().sum()
    }

    pub fn txs_dropped(&self) -> u64 {
        self.tx_drops.iter().sum()
    }

    /// The two identities every reader may rely on.
    pub fn balanced(&self) -> bool {
        self.frames_received == self.frames_accepted + self.frames_dropped()
            && self.txs_seen == self.txs_accepted + self.txs_dropped()
    }

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
                "bad_tx"
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
