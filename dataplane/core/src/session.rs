//! Sessions (`att-wire.md`, "User data: security header" and "Handshake"): one [`Session`] holds both
//! directions of one end (relay, client, traffic generator) and splits
//! into the halves that live in different threads:
//!
//! - the receive half, [`RxKey`] (the raw key and the shared replay window),
//!   travels to every data core on the command ring and is expanded there
//!   into the core's [`SessionTable`]; a data core never holds a sending key;
//! - the sending half, [`Sealer`] (the expanded key and the next counter),
//!   is not `Clone`: exactly one owner seals under a key (the control thread
//!   for a relay's RECEIPTs, one sender thread of the generator), so no
//!   counter is ever sealed twice.
//!
//! The session table is a fixed array indexed by session id (0..=64534, the
//! MCS initiator): lookup is an index, not a hash.

use std::sync::Arc;

use crate::budget::Budget;
use crate::crypto::AeadKey;
use crate::emit::{emit_frame_with, EmitError, FrameSpec};
use crate::replay::ReplayWindow;
use crate::wire::mcs::MAX_SESSION_ID;

/// Number of session slots.
pub const SLOTS: usize = MAX_SESSION_ID as usize + 1;

/// Which end of a session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives client-to-relay frames, sends relay-to-client.
    Relay,
    /// Receives relay-to-client frames, sends client-to-relay.
    Client,
}

impl Role {
    /// The (receive, send) keys of this end among a session's two
    /// directional keys.
    pub fn keys<'a>(self, c2r: &'a [u8; 32], r2c: &'a [u8; 32]) -> (&'a [u8; 32], &'a [u8; 32]) {
        match self {
            Role::Relay => (c2r, r2c),
            Role::Client => (r2c, c2r),
        }
    }
}

/// The id is above 64534.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSessionId(pub u32);

impl core::fmt::Display for BadSessionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "session id {} is out of range 0..={}", self.0, MAX_SESSION_ID)
    }
}

impl std::error::Error for BadSessionId {}

/// A pair of directional keys no session may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeakKeys {
    /// The client-to-relay key is all zero.
    ZeroC2r,
    /// The relay-to-client key is all zero.
    ZeroR2c,
    /// Both directions share one key: a frame sealed in one direction
    /// would open in the other, so a relay's own frames could be replayed
    /// back to it as a client's.
    SameKey,
}

impl core::fmt::Display for WeakKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WeakKeys::ZeroC2r => "the c2r key is all zero",
            WeakKeys::ZeroR2c => "the r2c key is all zero",
            WeakKeys::SameKey => "c2r and r2c are the same key (each direction needs its own)",
        })
    }
}

impl std::error::Error for WeakKeys {}

/// Refuses configured keys that are all zero or equal to each other
/// (checked where keys come from outside: keys files and the like).
pub fn check_keys(c2r: &[u8; 32], r2c: &[u8; 32]) -> Result<(), WeakKeys> {
    if c2r.iter().all(|b| *b == 0) {
        Err(WeakKeys::ZeroC2r)
    } else if r2c.iter().all(|b| *b == 0) {
        Err(WeakKeys::ZeroR2c)
    } else if c2r == r2c {
        Err(WeakKeys::SameKey)
    } else {
        Ok(())
    }
}

fn check_id(id: u32) -> Result<u16, BadSessionId> {
    if id <= u32::from(MAX_SESSION_ID) {
        Ok(id as u16)
    } else {
        Err(BadSessionId(id))
    }
}

/// One end of a session, both directions.
#[derive(Debug)]
pub struct Session {
    /// Session id (MCS initiator), 0..=64534.
    pub id: u16,
    /// Which end this is.
    pub role: Role,
    /// What the receiving side needs.
    pub rx: RxKey,
    /// The sending side.
    pub tx: Sealer,
}

impl Session {
    /// One end of session `id` from its two directional keys, with a fresh
    /// receive window; sending starts at counter `tx_start` (0 after a
    /// handshake, [`crate::crypto::counter_start`] for configured keys).
    pub fn new(role: Role, id: u32, c2r: &[u8; 32], r2c: &[u8; 32], tx_start: u64) -> Result<Self, BadSessionId> {
        let id = check_id(id)?;
        let (rx, tx) = role.keys(c2r, r2c);
        Ok(Session {
            id,
            role,
            rx: RxKey { id, key: *rx, window: Arc::new(ReplayWindow::new()), generation: 0 },
            tx: Sealer::new(id, tx, tx_start),
        })
    }

    /// The receive half (for the data cores' tables) and the one sealer.
    pub fn split(self) -> (RxKey, Sealer) {
        (self.rx, self.tx)
    }
}

/// The receive half of a session as it travels to the data cores: each
/// core expands its own key schedule from `key`; the replay window is
/// shared by every core.
#[derive(Clone)]
pub struct RxKey {
    /// Session id (MCS initiator).
    pub id: u16,
    /// The raw receive key: client-to-relay at a relay, relay-to-client at a client.
    pub key: [u8; 32],
    /// The replay window, shared by every core that holds the session.
    pub window: Arc<ReplayWindow>,
    /// Which holder of the id this is: 0 for configured sessions, counted
    /// up by the relay for negotiated ones (answers are routed by it).
    pub generation: u32,
}

impl core::fmt::Debug for RxKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RxKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The sending half of a session: the expanded key and the next counter.
/// Not `Clone` (one sealer per key):
///
/// ```compile_fail
/// let s = attnet_core::session::Sealer::new(1, &[7; 32], 0);
/// let t = s.clone();
/// ```
pub struct Sealer {
    id: u16,
    key: AeadKey,
    next: u64,
    start: u64,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer").field("id", &self.id).field("next", &self.next).finish_non_exhaustive()
    }
}

impl Sealer {
    /// Seals for session `id` with `key`, starting at counter `start`.
    pub fn new(id: u16, key: &[u8; 32], start: u64) -> Self {
        Sealer { id, key: AeadKey::new(key), next: start, start }
    }

    /// The session id this sealer seals for.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The counter the next frame gets.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// Frames sealed so far (counters taken).
    pub fn sealed(&self) -> u64 {
        self.next - self.start
    }

    /// Takes the next counter; it is never handed out again.
    pub fn take_counter(&mut self) -> u64 {
        let c = self.next;
        self.next += 1;
        c
    }

    /// The expanded key, for re-sealing a frame under a counter already
    /// taken (the generator's hostile frames).
    pub fn key(&self) -> &AeadKey {
        &self.key
    }

    /// Builds one frame of `spec` around `body`, sealed under the next
    /// counter, appended to `out` (`scratch` as in [`emit_frame_with`]);
    /// returns the counter. A frame that cannot be built takes no counter.
    pub fn seal_frame(
        &mut self,
        spec: &FrameSpec,
        body: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<u64, EmitError> {
        let c = self.next;
        emit_frame_with(spec, body, Some((&self.key, c)), out, scratch)?;
        self.next += 1;
        Ok(c)
    }
}

/// A data core's entry for one session: the expanded receive key and the
/// shared replay window, nothing to send with.
#[derive(Debug)]
pub struct RxSession {
    /// Session id (MCS initiator).
    pub id: u16,
    /// The expanded receive key.
    pub key: AeadKey,
    /// The replay window, shared with every other core that holds the session.
    pub window: Arc<ReplayWindow>,
    /// This core's failure budget for the session ([`crate::budget`]).
    pub budget: Budget,
    /// [`RxKey::generation`].
    pub generation: u32,
}

/// The table. Slots hold boxed sessions so an empty table costs 512 KiB of
/// pointers, and a lookup touches one pointer and one session.
pub struct SessionTable {
    role: Role,
    slots: Vec<Option<Box<RxSession>>>,
    len: usize,
}

impl core::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionTable").field("role", &self.role).field("len", &self.len).finish()
    }
}

impl SessionTable {
    /// An empty table for end `role`, which picks the receive key in
    /// [`install`](Self::install).
    pub fn new(role: Role) -> Self {
        let mut slots = Vec::with_capacity(SLOTS);
        slots.resize_with(SLOTS, || None);
        SessionTable { role, slots, len: 0 }
    }

    /// The end whose receive keys the table holds.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Installs (or replaces) session `id` from its two directional keys
    /// with a fresh replay window; the table's role picks the receive key.
    pub fn install(&mut self, id: u32, c2r: &[u8; 32], r2c: &[u8; 32]) -> Result<(), BadSessionId> {
        let id = check_id(id)?;
        let (rx, _) = self.role.keys(c2r, r2c);
        self.install_rx(&RxKey { id, key: *rx, window: Arc::new(ReplayWindow::new()), generation: 0 });
        Ok(())
    }

    /// Installs (or replaces) a receive half, expanding its key schedule
    /// now; the window stays shared with every other holder.
    pub fn install_rx(&mut self, rx: &RxKey) {
        let Some(slot) = self.slots.get_mut(usize::from(rx.id)) else { return };
        if slot.is_none() {
            self.len += 1;
        }
        *slot = Some(Box::new(RxSession {
            id: rx.id,
            key: AeadKey::new(&rx.key),
            window: rx.window.clone(),
            budget: Budget::default(),
            generation: rx.generation,
        }));
    }

    /// Removes session `id`; returns its entry if there was one.
    pub fn remove(&mut self, id: u16) -> Option<Box<RxSession>> {
        let s = self.slots.get_mut(id as usize)?.take();
        if s.is_some() {
            self.len -= 1;
        }
        s
    }

    /// The entry of session `id`, if installed.
    #[inline(always)]
    pub fn get(&self, id: u16) -> Option<&RxSession> {
        self.slots.get(id as usize)?.as_deref()
    }

    /// The entry of session `id`, if installed, to change its budget.
    #[inline]
    pub fn get_mut(&mut self, id: u16) -> Option<&mut RxSession> {
        self.slots.get_mut(id as usize)?.as_deref_mut()
    }

    /// Number of sessions installed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No session is installed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_keys_refused() {
        assert_eq!(check_keys(&[1; 32], &[2; 32]), Ok(()));
        assert_eq!(check_keys(&[0; 32], &[2; 32]), Err(WeakKeys::ZeroC2r));
        assert_eq!(check_keys(&[1; 32], &[0; 32]), Err(WeakKeys::ZeroR2c));
        assert_eq!(check_keys(&[7; 32], &[7; 32]), Err(WeakKeys::SameKey));
        let mut one_bit = [0u8; 32];
        one_bit[31] = 1;
        assert_eq!(check_keys(&one_bit, &[7; 32]), Ok(()), "only an all-zero key is zero");
    }

    #[test]
    fn install_lookup_remove() {
        let mut t = SessionTable::new(Role::Relay);
        assert!(t.get(3).is_none());
        t.install(3, &[1; 32], &[2; 32]).unwrap();
        t.install(64534, &[1; 32], &[2; 32]).unwrap();
        assert_eq!(t.install(64535, &[1; 32], &[2; 32]), Err(BadSessionId(64535)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(3).map(|s| s.id), Some(3));
        assert!(t.get(65535).is_none());
        assert!(t.remove(3).is_some());
        assert!(t.get(3).is_none());
        assert_eq!(t.len(), 1);
    }

    /// A relay's sealer uses r2c and its receive half c2r; a client's the
    /// other way round: what one end seals, the other end's table opens.
    #[test]
    fn the_two_ends_meet_and_counters_are_never_reused() {
        let (c2r, r2c) = ([1u8; 32], [2u8; 32]);
        assert_eq!(Session::new(Role::Relay, 64535, &c2r, &r2c, 0).err(), Some(BadSessionId(64535)));
        let relay = Session::new(Role::Relay, 9, &c2r, &r2c, 100).unwrap();
        let client = Session::new(Role::Client, 9, &c2r, &r2c, 0).unwrap();
        assert_eq!((relay.rx.key, client.rx.key), (c2r, r2c));
        let (relay_rx, mut relay_tx) = relay.split();
        let (client_rx, _client_tx) = client.split();
        let mut table = SessionTable::new(Role::Client);
        table.install_rx(&client_rx);
        let mut seen = std::collections::HashSet::new();
        let (mut frame, mut scratch) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            frame.clear();
            let c = relay_tx.seal_frame(&FrameSpec::receipt(9, 1), b"body", &mut frame, &mut scratch).unwrap();
            assert!(seen.insert(c), "counter {c} sealed twice");
            // The client's table holds the relay's sending key.
            let Some(entry) = table.get(9) else { panic!("installed") };
            // The user data starts after the 1- or 2-byte PER length at
            // offset 13; the 12-byte security header is the AAD's tail.
            let mut ct = frame.clone();
            let ud_at = if ct[13] & 0x80 != 0 { 15 } else { 14 };
            let (aad, sealed) = ct.split_at_mut(ud_at + 12);
            assert!(entry.key.open_in_place(c, aad, sealed).is_ok());
            assert!(entry.key.open_in_place(c + 1, aad, sealed).is_err());
        }
        assert_eq!(relay_tx.sealed(), 5);
        assert_eq!(relay_tx.next_counter(), 105);
        // The relay's own receive half shares its window with every core.
        let mut core_a = SessionTable::new(Role::Relay);
        let mut core_b = SessionTable::new(Role::Relay);
        core_a.install_rx(&relay_rx);
        core_b.install_rx(&relay_rx);
        core_a.get(9).unwrap().window.update(7).unwrap();
        assert!(core_b.get(9).unwrap().window.check(7).is_err());
        // An oversized body takes no counter.
        let big = vec![0u8; 20_000];
        assert!(relay_tx.seal_frame(&FrameSpec::receipt(9, 1), &big, &mut frame, &mut scratch).is_err());
        assert_eq!(relay_tx.next_counter(), 105);
    }
}
