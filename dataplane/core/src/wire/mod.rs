//! Zero-copy views and plain `Repr`s for every layer of an ATT v1 frame
//! (`att-wire.md`, "Frame" through "Handshake").
//!
//! Pattern (smoltcp `wire`): per layer a view `Thing<T: AsRef<[u8]>>` whose
//! `new_checked` validates the lengths it needs so that no accessor can panic
//! afterwards, field offsets in one `mod field`, and a separate `Repr` with
//! `parse` and `emit`. Parsing never copies payload; emitting writes into a
//! caller's buffer. Every error is one of the spec's drop reasons.
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

pub mod handshake;
pub mod mcs;
pub mod query;
pub mod receipt;
pub mod security;
pub mod share;
pub mod tpkt;
pub mod tx;
pub mod x224;

pub use crate::verdict::DropReason;

/// Result of a parse: the value, or the drop reason the spec assigns.
pub type Result<T> = core::result::Result<T, DropReason>;

#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

#[inline(always)]
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

#[inline(always)]
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

#[inline(always)]
pub(crate) fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn arr32(b: &[u8], at: usize) -> [u8; 32] {
    b.get(at..at + 32).and_then(|s| s.try_into().ok()).unwrap_or([0; 32])
}

/// Writes `v` at `at` if the buffer is long enough; emitters check the
/// total length first, so the fallbacks never trigger on their paths.
#[inline(always)]
pub(crate) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}
