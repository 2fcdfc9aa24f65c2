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

use crate::dedup::IdFilter;
use crate::session::{RxKey, SessionTable};

/// Most ids one [`Command::Forget`] carries.
pub const FORGET_MAX: usize = 8;

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
    /// Drop the session's frames as `throttled` until `until_ms` (the
    /// node's clock, milliseconds since its epoch): it went over its failure
    /// budget in the ledger ([`crate::budget`]).
    Throttle {
        /// The session id.
        id: u16,
        /// End of the cool-down.
        until_ms: u64,
    },
    /// Forget these ids in the core's duplicate filter (each an id's first 8
    /// bytes, [`IdFilter::prefix`]): the ledger dropped their transactions,
    /// which may be sent again.
    Forget {
        /// How many of `ids` are used.
        n: u8,
        /// The id prefixes.
        ids: [u64; FORGET_MAX],
    },
    /// New failure budgets for every session (`None`: off), from a
    /// configuration reload.
    Budget(Option<crate::budget::BudgetConfig>),
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
    /// Applies every command waiting to `table` and `filter`, then
    /// publishes the last sequence number applied; returns how many were
    /// applied.
    /// A [`Command::Budget`] is left in `budget` for the caller, whose
    /// frame path holds the limits.
    pub fn apply(
        &mut self,
        table: &mut SessionTable,
        filter: &mut IdFilter,
        budget: &mut Option<Option<crate::budget::BudgetConfig>>,
    ) -> usize {
        let mut n = 0;
        let mut last = None;
        while let Ok((seq, cmd)) = self.ring.pop() {
            match cmd {
                Command::Install(rx) => table.install_rx(&rx),
                Command::Remove { id } => {
                    table.remove(id);
                }
                Command::Throttle { id, until_ms } => {
                    if let Some(s) = table.get_mut(id) {
                        s.budget.throttle_until(until_ms);
                    }
                }
                Command::Forget { n, ids } => {
                    for p in ids.iter().take(usize::from(n)) {
                        filter.forget_prefix(*p);
                    }
                }
                Command::Budget(b) => *budget = Some(b),
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
        let mut filters = [IdFilter::new(4), IdFilter::new(4)];
        let a = bus.install(&s.rx).unwrap();
        let b = bus.remove(4).unwrap();
        assert_eq!((a, b), (1, 2));
        // Both rings are full now: a third command reaches no core.
        assert_eq!(bus.install(&s.rx), Err(RingFull { core: 0 }));
        assert_eq!(bus.seq(), 2);
        assert!(!bus.applied_by_all(1));
        assert_eq!(ends[0].apply(&mut tables[0], &mut filters[0], &mut None), 2);
        assert!(tables[0].get(4).is_none());
        assert_eq!(bus.applied(0), 2);
        assert!(!bus.applied_by_all(1), "core 1 has applied nothing");
        // Core 0 has room again but core 1 has not: still refused.
        assert_eq!(bus.install(&s.rx), Err(RingFull { core: 1 }));
        assert_eq!(ends[1].apply(&mut tables[1], &mut filters[1], &mut None), 2);
        assert!(bus.applied_by_all(2));
        let c = bus.install(&s.rx).unwrap();
        for ((e, t), f) in ends.iter_mut().zip(&mut tables).zip(&mut filters) {
            assert_eq!(e.apply(t, f, &mut None), 1);
            assert_eq!(e.applied(), c);
            assert!(t.get(4).is_some());
        }
        // Both cores' entries share the one window.
        tables[0].get(4).unwrap().window.update(9).unwrap();
        assert!(tables[1].get(4).unwrap().window.check(9).is_err());
    }

    #[test]
    fn throttle_and_forget_reach_the_session_and_the_filter() {
        let (mut bus, mut ends) = command_bus(1, 4);
        let s = Session::new(Role::Relay, 4, &[1; 32], &[2; 32], 0).unwrap();
        let mut table = SessionTable::new(Role::Relay);
        let mut filter = IdFilter::new(8);
        let (a, b) = ([7u8; 32], [9u8; 32]);
        assert!(filter.insert(&a) && filter.insert(&b));
        bus.install(&s.rx).unwrap();
        bus.send(Command::Throttle { id: 4, until_ms: 1500 }).unwrap();
        // A session not installed: nothing happens.
        bus.send(Command::Throttle { id: 5, until_ms: 1500 }).unwrap();
        let mut ids = [0u64; FORGET_MAX];
        ids[0] = IdFilter::prefix(&a);
        ids[1] = IdFilter::prefix(&b);
        bus.send(Command::Forget { n: 1, ids }).unwrap();
        let mut budget = None;
        assert_eq!(ends[0].apply(&mut table, &mut filter, &mut budget), 4);
        assert_eq!(budget, None, "no budget command");
        let limits = crate::budget::BudgetConfig { per_s: 5, burst: 6, cooldown_ms: 7 };
        bus.send(Command::Budget(Some(limits))).unwrap();
        assert_eq!(ends[0].apply(&mut table, &mut filter, &mut budget), 1);
        assert_eq!(budget, Some(Some(limits)), "the budget is left for the frame path");
        let e = table.get(4).unwrap();
        assert!(e.budget.throttled(1499) && !e.budget.throttled(1500));
        // Only the first `n` ids are forgotten.
        assert!(filter.insert(&a), "a was forgotten");
        assert!(!filter.insert(&b), "b is still known");
    }
}
