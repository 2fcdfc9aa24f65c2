//! The command ring: how the control thread changes what the data cores
//! hold while they run (sessions installed after a handshake, removed when
//! they end).
//!
//! The control thread owns the [`CommandBus`], the one producer of a
//! single-producer single-consumer ring to every data core. Every command
//! goes to every core under one sequence number; a core applies the
//! commands waiting on its ring between bursts ([`CommandRx::apply`]) and
//! then publishes the last sequence number it applied, so the control
//! thread knows when a session is live on every core
//! ([`CommandBus::applied_by_all`]) and can, say, answer a handshake only
//! then. Nothing here blocks: a full ring refuses the command on every core
//! (none gets it) and the caller retries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::session::{RxKey, SessionTable};

/// A control-plane instruction to a data core, applied between bursts.
#[derive(Debug, Clone)]
pub enum Command {
    /// Install (or replace) a session's receive half; the core expands its
    /// own key schedule, the replay window is shared by every core.
    Install(RxKey),
    /// Remove a session: its frames are dropped as `unknown_session` from
    /// the core's next burst on.
    Remove {
        /// The session id.
        id: u16,
    },
}

/// A command could not be queued: some core's ring is full (that core is
/// not applying commands, or the control thread sends faster than cores
/// apply). No core got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull {
    /// The first core whose ring was full.
    pub core: usize,
}

impl core::fmt::Display for RingFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "the command ring of data core {} is full", self.core)
    }
}

impl std::error::Error for RingFull {}

/// The control thread's end: one ring per data core.
pub struct CommandBus {
    rings: Vec<rtrb::Producer<(u64, Command)>>,
    applied: Vec<Arc<AtomicU64>>,
    seq: u64,
}

impl core::fmt::Debug for CommandBus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CommandBus").field("cores", &self.rings.len()).field("seq", &self.seq).finish()
    }
}

/// A data core's end.
pub struct CommandRx {
    ring: rtrb::Consumer<(u64, Command)>,
    applied: Arc<AtomicU64>,
}

impl core::fmt::Debug for CommandRx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CommandRx").field("applied", &self.applied.load(Ordering::Relaxed)).finish()
    }
}

/// A bus to `cores` data cores whose rings hold `depth` commands each.
pub fn command_bus(cores: usize, depth: usize) -> (CommandBus, Vec<CommandRx>) {
    let mut rings = Vec::with_capacity(cores);
    let mut ends = Vec::with_capacity(cores);
    let mut applied = Vec::with_capacity(cores);
    for _ in 0..cores {
        let (p, c) = rtrb::RingBuffer::new(depth.max(1));
        let a = Arc::new(AtomicU64::new(0));
        rings.push(p);
        applied.push(a.clone());
        ends.push(CommandRx { ring: c, applied: a });
    }
    (CommandBus { rings, applied, seq: 0 }, ends)
}

impl CommandBus {
    /// Queues `cmd` to every core; returns its sequence number (from 1).
    pub fn send(&mut self, cmd: Command) -> Result<u64, RingFull> {
        if let Some(core) = self.rings.iter().position(|r| r.slots() == 0) {
            return Err(RingFull { core });
        }
        self.seq += 1;
        for r in &mut self.rings {
            // A free slot was checked above and this is the one producer.
            let _ = r.push((self.seq, cmd.clone()));
        }
        Ok(self.seq)
    }

    /// Installs a session's receive half on every core.
    pub fn install(&mut self, rx: &RxKey) -> Result<u64, RingFull> {
        self.send(Command::Install(rx.clone()))
    }

    /// Removes a session from every core.
    pub fn remove(&mut self, id: u16) -> Result<u64, RingFull> {
        self.send(Command::Remove { id })
    }

    /// The last sequence number queued.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of data cores (one ring each).
    pub fn cores(&self) -> usize {
        self.rings.len()
    }

    /// The last sequence number core `core` applied.
    pub fn applied(&self, core: usize) -> u64 {
        self.applied.get(core).map_or(0, |a| a.load(Ordering::Acquire))
    }

    /// Every core has applied every command up to `seq`.
    pub fn applied_by_all(&self, seq: u64) -> bool {
        self.applied.iter().all(|a| a.load(Ordering::Acquire) >= seq)
    }
}

impl CommandRx {
    /// Applies every command waiting to `table`, then publishes the last
    /// sequence number applied; returns how many were applied.
    pub fn apply(&mut self, table: &mut SessionTable) -> usize {
        let mut n = 0;
        let mut last = None;
        while let Ok((seq, cmd)) = self.ring.pop() {
            match cmd {
                Command::Install(rx) => table.install_rx(&rx),
                Command::Remove { id } => {
                    table.remove(id);
                }
            }
            last = Some(seq);
            n += 1;
        }
        if let Some(seq) = last {
            self.applied.store(seq, Ordering::Release);
        }
        n
    }

    /// The last sequence number this core applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Role, Session};

    #[test]
    fn commands_reach_every_core_in_order_and_acks_follow() {
        let (mut bus, mut ends) = command_bus(2, 2);
        let s = Session::new(Role::Relay, 4, &[1; 32], &[2; 32], 0).unwrap();
        let mut tables = [SessionTable::new(Role::Relay), SessionTable::new(Role::Relay)];
        let a = bus.install(&s.rx).unwrap();
        let b = bus.remove(4).unwrap();
        assert_eq!((a, b), (1, 2));
        // Both rings are full now: a third command reaches no core.
        assert_eq!(bus.install(&s.rx), Err(RingFull { core: 0 }));
        assert_eq!(bus.seq(), 2);
        assert!(!bus.applied_by_all(1));
        assert_eq!(ends[0].apply(&mut tables[0]), 2);
        assert!(tables[0].get(4).is_none());
        assert_eq!(bus.applied(0), 2);
        assert!(!bus.applied_by_all(1), "core 1 has applied nothing");
        // Core 0 has room again but core 1 has not: still refused.
        assert_eq!(bus.install(&s.rx), Err(RingFull { core: 1 }));
        assert_eq!(ends[1].apply(&mut tables[1]), 2);
        assert!(bus.applied_by_all(2));
        let c = bus.install(&s.rx).unwrap();
        for (e, t) in ends.iter_mut().zip(&mut tables) {
            assert_eq!(e.apply(t), 1);
            assert_eq!(e.applied(), c);
            assert!(t.get(4).is_some());
        }
        // Both cores' entries share the one window.
        tables[0].get(4).unwrap().window.update(9).unwrap();
        assert!(tables[1].get(4).unwrap().window.check(9).is_err());
    }
}
