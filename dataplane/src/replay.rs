//! Anti-replay sliding window of the last 2048 counters (RFC 6479 bitmap),
//! one per session and direction (`att-wire.md`, "Anti-replay").
//!
//! `check` is the cheap test before the AEAD; `update` marks a counter and
//! moves the window, and is called only after the tag verified, so forged
//! frames can neither burn counters nor drag the window forward.

/// Counters at or below `top - WINDOW` are too old.
pub const WINDOW: u64 = 2048;
const WORD_BITS: u64 = 64;
/// Ring of bitmap words: a power of two larger than WINDOW / 64 + 1, so a
/// word is never reused while a counter it holds is still in the window.
const WORDS: usize = 64;
const WORD_MASK: u64 = WORDS as u64 - 1;

/// Why a counter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Below the window.
    TooOld,
    /// Already marked.
    Seen,
}

#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest counter marked so far (meaningful once `any` is true).
    top: u64,
    any: bool,
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow { top: 0, any: false, bitmap: [0; WORDS] }
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("top", &self.top).field("any", &self.any).finish()
    }
}

#[inline(always)]
fn slot(c: u64) -> (usize, u64) {
    (((c / WORD_BITS) & WORD_MASK) as usize, 1u64 << (c % WORD_BITS))
}

impl ReplayWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Would `c` be accepted? Does not change the window.
    #[inline]
    pub fn check(&self, c: u64) -> Result<(), Refused> {
        if !self.any || c > self.top {
            return Ok(());
        }
        if self.top - c >= WINDOW {
            return Err(Refused::TooOld);
        }
        let (w, bit) = slot(c);
        match self.bitmap.get(w) {
            Some(word) if word & bit != 0 => Err(Refused::Seen),
            _ => Ok(()),
        }
    }

    /// Checks and marks `c`; call only after the frame authenticated.
    #[inline]
    pub fn update(&mut self, c: u64) -> Result<(), Refused> {
        self.check(c)?;
        if !self.any {
            self.any = true;
            self.top = c;
            self.bitmap = [0; WORDS];
        } else if c > self.top {
            // Clear the words between the old top's word and the new one.
            let old_block = self.top / WORD_BITS;
            let new_block = c / WORD_BITS;
            let steps = (new_block - old_block).min(WORDS as u64);
            for i in 1..=steps {
                let idx = ((old_block + i) & WORD_MASK) as usize;
                if let Some(w) = self.bitmap.get_mut(idx) {
                    *w = 0;
                }
            }
            self.top = c;
        }
        let (w, bit) = slot(c);
        if let Some(word) = self.bitmap.get_mut(w) {
            *word |= bit;
        }
        Ok(())
    }

    /// Highest counter accepted, if any.
    pub fn top(&self) -> Option<u64> {
        self.any.then_some(self.top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn basics() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.update(0), Ok(()));
        assert_eq!(w.update(0), Err(Refused::Seen));
        assert_eq!(w.update(5), Ok(()));
        assert_eq!(w.update(3), Ok(()));
        assert_eq!(w.check(3), Err(Refused::Seen));
        assert_eq!(w.update(2048 + 5), Ok(()));
        // 5 + 2048 - 2048 = 5 is now exactly WINDOW behind: too old.
        assert_eq!(w.check(5), Err(Refused::TooOld));
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(w.update(u64::MAX), Ok(()));
        assert_eq!(w.check(u64::MAX), Err(Refused::Seen));
        assert_eq!(w.check(u64::MAX - 2047), Ok(()));
        assert_eq!(w.check(u64::MAX - 2048), Err(Refused::TooOld));
    }

    #[test]
    fn large_jump_starts_fresh() {
        let mut w = ReplayWindow::new();
        let start = 1_790_000_000u64 << 32;
        for c in 0..100 {
            w.update(c).unwrap();
        }
        w.update(start).unwrap();
        assert_eq!(w.check(start + 1), Ok(()));
        assert_eq!(w.check(start - 1), Ok(()));
    }

    proptest! {
        /// Against a model that remembers every counter: accept iff unseen
        /// and within WINDOW of the highest accepted.
        #[test]
        fn matches_model(ops in prop::collection::vec(0u64..6000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            let mut top: Option<u64> = None;
            for c in ops {
                let want = match top {
                    None => true,
                    Some(t) => !seen.contains(&c) && (c > t || t - c < WINDOW),
                };
                prop_assert_eq!(w.update(c).is_ok(), want);
                if want {
                    seen.insert(c);
                    top = Some(top.map_or(c, |t| t.max(c)));
                }
            }
        }
    }
}
