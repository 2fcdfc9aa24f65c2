//! Anti-replay sliding window of the last 2048 counters (RFC 6479 style),
//! one per session and direction (`att-wire.md`, "User data: security header", anti-replay), shared by
//! every core that receives the session's frames: RSS and `SO_REUSEPORT`
//! hash addresses, so a replay sent from another source port lands on
//! another core, and the spec wants each counter accepted at most once.
//!
//! `check` is the cheap test before the AEAD; `update` marks a counter and
//! moves the window, and is called only after the tag verified, so forged
//! frames can neither burn counters nor drag the window forward.
//!
//! Lock-free layout: a ring of 64 slots, each one 128-bit atomic word
//! holding a block number (which 64 counters the slot holds, plus one; 0 =
//! empty) and that block's 64-bit bitmap. Marking a counter is one
//! compare-and-swap (`cmpxchg16b`, part of the x86-64-v3 baseline) on its
//! slot: if the slot holds the counter's block the bit is set (exactly one
//! of several racing cores wins it); if it holds an older block the slot is
//! recycled for this one; if it holds a newer block the counter is too old.
//! 64 slots of 64 counters keep 4096 counters of history, more than the
//! 2048-counter window plus a partial block, so a slot is never recycled
//! while one of its counters is inside the window. Block numbers are kept
//! whole, so no jump of the counter (a restarted sender moves to
//! `unix_seconds << 32`) can alias an old slot.
//!
//! The window's top is kept as the highest block that holds an accepted
//! counter, which moves once per 64 counters of in-order traffic: marking
//! a counter is then one atomic read-modify-write, not two. The exact top
//! (its highest bit in that block's slot) is read only when a counter's
//! block is exactly 32 blocks below it, the one distance at which block
//! granularity cannot tell `top - c >= WINDOW`.

use portable_atomic::AtomicU128;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters with `top - c >= WINDOW` are too old.
pub const WINDOW: u64 = 2048;
const BLOCK_BITS: u64 = 64;
const SLOTS: u64 = 64;

/// Why a counter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Below the window.
    TooOld,
    /// Already marked.
    Seen,
}

/// One session's window for one direction, shared by every core that
/// receives the session's frames (layout in the module docs).
pub struct ReplayWindow {
    /// Block number of the highest counter accepted, plus one; 0 = none
    /// yet. Published after the slot that holds the counter.
    top_block1: AtomicU64,
    slots: [AtomicU128; SLOTS as usize],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow { top_block1: AtomicU64::new(0), slots: std::array::from_fn(|_| AtomicU128::new(0)) }
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("top", &self.top()).finish()
    }
}

/// The slot word's block field for counter `c`: its block number plus one.
#[inline(always)]
fn block1(c: u64) -> u128 {
    (c / BLOCK_BITS) as u128 + 1
}

/// Blocks between a counter's block and the top block below which the
/// counter is inside the window whatever the two offsets in their blocks
/// (`64 * 31 + 63 < WINDOW`); above it, it is outside (`64 * 33 - 63 >=
/// WINDOW`). At exactly this distance the exact top decides.
const EDGE_BLOCKS: u64 = WINDOW / BLOCK_BITS;

enum Slot {
    /// The counter's block is in the slot with this bit clear.
    Free,
    Seen,
    TooOld,
}

impl ReplayWindow {
    /// An empty window: every counter is acceptable.
    pub fn new() -> Self {
        Self::default()
    }

    #[inline(always)]
    fn slot(&self, c: u64) -> &AtomicU128 {
        // SLOTS is a power of two; the index is always in range.
        &self.slots[((c / BLOCK_BITS) % SLOTS) as usize]
    }

    #[inline(always)]
    fn too_old(&self, c: u64) -> bool {
        let tb1 = self.top_block1.load(Ordering::Acquire);
        let cb = c / BLOCK_BITS;
        if tb1 == 0 || cb + 1 >= tb1 {
            return false;
        }
        match (tb1 - 1) - cb {
            d if d < EDGE_BLOCKS => false,
            d if d > EDGE_BLOCKS => true,
            _ => self.top_in(tb1 - 1).is_some_and(|t| t - c >= WINDOW),
        }
    }

    /// The highest counter marked in block `b`'s slot, or in the newer
    /// block a racing core put there; `None` if the slot holds an older
    /// block (only while a core that moved the top races with this read).
    #[inline]
    fn top_in(&self, b: u64) -> Option<u64> {
        let w = self.slots[(b % SLOTS) as usize].load(Ordering::Acquire);
        let held = (w >> 64) as u64;
        let bits = w as u64;
        if held <= b || bits == 0 {
            return None;
        }
        Some((held - 1) * BLOCK_BITS + (BLOCK_BITS - 1 - u64::from(bits.leading_zeros())))
    }

    #[inline(always)]
    fn judge(word: u128, c: u64) -> Slot {
        let held = word >> 64;
        let bit = 1u128 << (c % BLOCK_BITS);
        if held == 0 || held < block1(c) {
            Slot::Free
        } else if held > block1(c) {
            Slot::TooOld
        } else if word & bit != 0 {
            Slot::Seen
        } else {
            Slot::Free
        }
    }

    /// Would `c` be accepted now? Does not change the window.
    #[inline]
    pub fn check(&self, c: u64) -> Result<(), Refused> {
        if self.too_old(c) {
            return Err(Refused::TooOld);
        }
        match Self::judge(self.slot(c).load(Ordering::Acquire), c) {
            Slot::Free => Ok(()),
            Slot::Seen => Err(Refused::Seen),
            Slot::TooOld => Err(Refused::TooOld),
        }
    }

    /// Marks `c` if it is still acceptable; call only after the frame
    /// authenticated. Of several cores marking the same counter at once,
    /// exactly one gets `Ok`.
    #[inline]
    pub fn update(&self, c: u64) -> Result<(), Refused> {
        if self.too_old(c) {
            return Err(Refused::TooOld);
        }
        let slot = self.slot(c);
        let bit = 1u128 << (c % BLOCK_BITS);
        let mut w = slot.load(Ordering::Acquire);
        loop {
            let new = match Self::judge(w, c) {
                Slot::Seen => return Err(Refused::Seen),
                Slot::TooOld => return Err(Refused::TooOld),
                Slot::Free if w >> 64 == block1(c) => w | bit,
                Slot::Free => (block1(c) << 64) | bit,
            };
            match slot.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => w = now,
            }
        }
        // The top block moves once per 64 counters of in-order traffic.
        let b1 = c / BLOCK_BITS + 1;
        if self.top_block1.load(Ordering::Relaxed) < b1 {
            self.top_block1.fetch_max(b1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Sets the window as if every counter up to `top` had been accepted:
    /// afterwards a counter `<= top` is refused (too old, or seen within
    /// the window), one above it is accepted. A receiver that keeps state
    /// on disk seeds a configured session's window with the top it
    /// persisted (`att-wire.md`, "Counters"), so a capture replayed after a
    /// restart is `replay`. Call before the window receives; a window whose
    /// top is already higher keeps it.
    pub fn seed(&self, top: u64) {
        let lowest = top.saturating_sub(WINDOW - 1);
        let mut b = top / BLOCK_BITS;
        loop {
            // The block of `top` up to its bit; every lower block whole.
            let bits = if b == top / BLOCK_BITS {
                let n = top % BLOCK_BITS + 1;
                if n == BLOCK_BITS {
                    u64::MAX
                } else {
                    (1u64 << n) - 1
                }
            } else {
                u64::MAX
            };
            let want = (((b as u128) + 1) << 64) | u128::from(bits);
            let slot = &self.slots[(b % SLOTS) as usize];
            let mut w = slot.load(Ordering::Acquire);
            loop {
                let held = w >> 64;
                let new = if held > b as u128 + 1 {
                    break;
                } else if held == b as u128 + 1 {
                    w | u128::from(bits)
                } else {
                    want
                };
                match slot.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => w = now,
                }
            }
            if b == 0 || b * BLOCK_BITS <= lowest {
                break;
            }
            b -= 1;
        }
        self.top_block1.fetch_max(top / BLOCK_BITS + 1, Ordering::AcqRel);
    }

    /// Highest counter accepted, if any.
    pub fn top(&self) -> Option<u64> {
        match self.top_block1.load(Ordering::Acquire) {
            0 => None,
            tb1 => self.top_in(tb1 - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    #[test]
    fn basics() {
        let w = ReplayWindow::new();
        assert_eq!(w.update(0), Ok(()));
        assert_eq!(w.update(0), Err(Refused::Seen));
        assert_eq!(w.update(5), Ok(()));
        assert_eq!(w.update(3), Ok(()));
        assert_eq!(w.check(3), Err(Refused::Seen));
        assert_eq!(w.update(2048 + 5), Ok(()));
        // 5 is now exactly WINDOW behind the top: too old.
        assert_eq!(w.check(5), Err(Refused::TooOld));
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(w.update(u64::MAX - 1), Ok(()));
        assert_eq!(w.check(u64::MAX - 1), Err(Refused::Seen));
        assert_eq!(w.check(u64::MAX - 2048), Ok(()));
        assert_eq!(w.check(u64::MAX - 2049), Err(Refused::TooOld));
        assert_eq!(w.top(), Some(u64::MAX - 1));
    }

    /// A seeded window refuses every counter up to the seed (in the window:
    /// seen; below it: too old) and accepts the ones above, once.
    #[test]
    fn a_seeded_window_refuses_every_counter_up_to_its_top() {
        for top in [0u64, 5, 63, 64, 2047, 2048, 100_000, 1_790_000_000u64 << 32, u64::MAX - 1] {
            let w = ReplayWindow::new();
            w.seed(top);
            assert_eq!(w.top(), Some(top));
            for c in [top, top.saturating_sub(1), top.saturating_sub(63), top.saturating_sub(64)] {
                assert_eq!(w.check(c), Err(Refused::Seen), "top {top}, counter {c}");
                assert_eq!(w.update(c), Err(Refused::Seen), "top {top}, counter {c}");
            }
            for c in top.saturating_sub(WINDOW - 1)..=top {
                assert!(w.check(c).is_err(), "top {top}, counter {c}");
            }
            if top >= WINDOW {
                assert_eq!(w.check(top - WINDOW), Err(Refused::TooOld));
                assert_eq!(w.check(0), Err(Refused::TooOld));
            }
            if top < u64::MAX - 1 {
                assert_eq!(w.update(top + 1), Ok(()));
                assert_eq!(w.update(top + 1), Err(Refused::Seen));
                assert_eq!(w.top(), Some(top + 1));
            }
        }
        // A window whose top is higher keeps it.
        let w = ReplayWindow::new();
        w.update(500).unwrap();
        w.seed(100);
        assert_eq!(w.top(), Some(500));
        assert_eq!(w.check(499), Ok(()));
        assert_eq!(w.check(100), Err(Refused::Seen));
    }

    /// The window's edge is exact at every offset of the top in its block
    /// and of the counter in its: `top - c >= WINDOW` is too old, one less
    /// is accepted (the block distances 31, 32 and 33 on either side).
    #[test]
    fn the_edge_is_exact_at_every_offset_in_a_block() {
        for top in [10_000u64, 10_001, 10_047, 10_048, 10_049, 10_111, 1_790_000_000u64 << 32] {
            let w = ReplayWindow::new();
            w.update(top).unwrap();
            assert_eq!(w.top(), Some(top));
            for c in top - WINDOW - 2 * BLOCK_BITS..top {
                let want = top - c < WINDOW;
                assert_eq!(w.check(c).is_ok(), want, "top {top}, counter {c}");
            }
            // Marking a lower counter in the top block keeps the top.
            w.update(top - 1).unwrap();
            assert_eq!(w.top(), Some(top));
        }
    }

    #[test]
    fn large_jump_starts_fresh() {
        let w = ReplayWindow::new();
        let start = 1_790_000_000u64 << 32;
        for c in 0..100 {
            w.update(c).unwrap();
        }
        w.update(start).unwrap();
        assert_eq!(w.check(start + 1), Ok(()));
        assert_eq!(w.check(start - 1), Ok(()));
        assert_eq!(w.check(50), Err(Refused::TooOld));
    }

    /// Cores racing on the same counters: each counter is accepted exactly
    /// once in total.
    #[test]
    fn racing_cores_accept_each_counter_once() {
        let w = Arc::new(ReplayWindow::new());
        let n = 20_000u64;
        let accepted: u64 = (0..4)
            .map(|k| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    for i in 0..n {
                        // Different orders per thread, same counter set.
                        let c = if k % 2 == 0 { i } else { n - 1 - i };
                        ok += w.update(c).is_ok() as u64;
                    }
                    ok
                })
            })
            .map(|h| h.join().unwrap())
            .sum();
        // Every counter within the final window was accepted exactly once;
        // counters that fell behind the window before a thread reached them
        // may have been refused by every thread, never accepted twice.
        assert!(accepted <= n, "{accepted} > {n}");
        assert!(accepted >= n / 2, "{accepted}");
        for c in n - WINDOW..n {
            assert_eq!(w.check(c), Err(Refused::Seen));
        }
    }

    proptest! {
        /// Against a model that remembers every counter: accept iff unseen
        /// and within WINDOW of the highest accepted.
        #[test]
        fn matches_model(ops in prop::collection::vec(0u64..9000, 1..400)) {
            let w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            let mut top: Option<u64> = None;
            for c in ops {
                let want = match top {
                    None => true,
                    Some(t) => !seen.contains(&c) && (c > t || t - c < WINDOW),
                };
                prop_assert_eq!(w.check(c).is_ok(), want);
                prop_assert_eq!(w.update(c).is_ok(), want);
                if want {
                    seen.insert(c);
                    top = Some(top.map_or(c, |t| t.max(c)));
                }
            }
        }
    }
}
