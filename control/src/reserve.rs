//! Reserved sending counters (`att-wire.md`, "Counters"): a node that keeps
//! state on disk seals its configured sessions' RECEIPTs (and other
//! replies) under counters it reserved ahead, in blocks, in
//! `D/counters.reserve`. A block is written and fsynced before its first
//! counter is used, and a run starts at the larger of `unix_seconds << 32`
//! and the last reservation's end, so a clock that stepped back never makes
//! a restarted node seal a counter twice.
//!
//! One reservation covers every configured session: they all start a run
//! at the same counter, and the file records the end below which every
//! session's counters of this run stay. A new block is reserved when a
//! session reaches the end (every 2^20 frames of the busiest session): a
//! synchronous write and fsync on the sending thread, never one per frame.
#![deny(clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

/// Counters reserved at a time.
pub const RESERVE_BLOCK: u64 = 1 << 20;

/// The file's name in the data directory.
pub const RESERVE_FILE: &str = "counters.reserve";

/// What the file holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Saved {
    /// Every counter sealed under a configured key is below this.
    below: u64,
}

/// The counters reserved in a data directory, and the next block's size.
#[derive(Debug)]
pub struct CounterReservation {
    dir: PathBuf,
    path: PathBuf,
    below: u64,
    block: u64,
    /// Reservations written by this run.
    writes: u64,
}

impl CounterReservation {
    /// Opens the reservation of data directory `dir` (locked by the
    /// caller) for a run whose clock says counters start at `now_start`
    /// ([`crate::receipts::ReceiptSender::counter_start_now`]): the run
    /// starts at `max(now_start, last reservation's end)`, and its first
    /// block of `block` counters is reserved (written, fsynced) before this
    /// returns. Returns the reservation and the run's first counter.
    pub fn open(dir: &Path, now_start: u64, block: u64) -> Result<(CounterReservation, u64), String> {
        let path = dir.join(RESERVE_FILE);
        let last = match fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str::<Saved>(&text)
                    .map_err(|e| {
                        format!(
                            "{}: {e}: not a counter reservation (it is written whole or not at all: remove it only \
                             if the clock is known to be past every counter this node sealed)",
                            path.display()
                        )
                    })?
                    .below
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let start = now_start.max(last);
        let mut r = CounterReservation { dir: dir.to_path_buf(), path, below: start, block: block.max(1), writes: 0 };
        r.reserve(start)?;
        Ok((r, start))
    }

    /// Every counter below this is reserved.
    pub fn below(&self) -> u64 {
        self.below
    }

    /// Reservations written by this run (the first one included).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Makes sure `counter` is reserved before it is used: below the
    /// reservation's end nothing happens; at or past it a new block from
    /// `counter` on is written and fsynced first. An error leaves the
    /// counter unreserved: the caller must not seal under it.
    #[inline]
    pub fn ensure(&mut self, counter: u64) -> Result<(), String> {
        if counter < self.below {
            return Ok(());
        }
        self.reserve(counter)
    }

    fn reserve(&mut self, from: u64) -> Result<(), String> {
        let below = from.saturating_add(self.block);
        let text = serde_json::to_string(&Saved { below }).map_err(|e| e.to_string())?;
        crate::store::write_aside(&self.dir, &self.path, text.as_bytes())?;
        self.below = below;
        self.writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("attnet-reserve-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn on_disk(d: &Path) -> u64 {
        serde_json::from_str::<Saved>(&fs::read_to_string(d.join(RESERVE_FILE)).unwrap()).unwrap().below
    }

    /// A run reserves before it uses; a restart whose clock went back
    /// starts above everything the last run could have used.
    #[test]
    fn a_restart_with_a_clock_that_went_back_starts_above_the_last_reservation() {
        let d = tmp("clock");
        let t1 = 1_790_000_000u64 << 32;
        let (mut r, start) = CounterReservation::open(&d, t1, 100).unwrap();
        assert_eq!(start, t1, "no reservation yet: the clock's start");
        assert_eq!(on_disk(&d), t1 + 100, "the first block is on disk before any counter is used");
        let mut last = start;
        for c in start..start + 350 {
            r.ensure(c).unwrap();
            assert!(on_disk(&d) > c, "counter {c} is used only once reserved on disk");
            last = c;
        }
        assert_eq!(r.writes(), 4, "one write per block, not per counter");
        drop(r);
        // The clock stepped back an hour.
        let (r, start) = CounterReservation::open(&d, t1 - (3600 << 32), 100).unwrap();
        assert!(start > last, "{start} > {last}");
        assert_eq!(start, t1 + 400);
        assert_eq!((r.below(), on_disk(&d)), (t1 + 500, t1 + 500));
        // A clock ahead of the reservation wins.
        let (_, start) = CounterReservation::open(&d, t1 + (10 << 32), 100).unwrap();
        assert_eq!(start, t1 + (10 << 32));
        // A damaged file is an error, not a silent restart from the clock.
        fs::write(d.join(RESERVE_FILE), b"{\"bel").unwrap();
        assert!(CounterReservation::open(&d, t1, 100).unwrap_err().contains("not a counter reservation"));
        fs::remove_dir_all(&d).unwrap();
    }
}
