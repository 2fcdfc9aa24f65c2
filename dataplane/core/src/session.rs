//! The session table: a fixed array indexed by session id (0..=64534, the
//! MCS initiator) holding each session's expanded keys and replay windows.
//! Lookup is an index, not a hash.

use std::sync::Arc;

use crate::crypto::AeadKey;
use crate::replay::ReplayWindow;
use crate::wire::mcs::MAX_SESSION_ID;

/// Number of session slots.
pub const SLOTS: usize = MAX_SESSION_ID as usize + 1;

/// Which end of a session this table belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives client-to-relay frames, sends relay-to-client.
    Relay,
    /// Receives relay-to-client frames, sends client-to-relay.
    Client,
}

/// One session's state for one end.
#[derive(Debug)]
pub struct Session {
    pub id: u16,
    /// Key for frames this end receives.
    pub rx_key: AeadKey,
    /// Replay window of the receive direction, shared by every core's
    /// table that holds this session.
    pub rx_window: Arc<ReplayWindow>,
    /// Key for frames this end sends.
    pub tx_key: AeadKey,
    /// Next counter to seal with.
    pub tx_counter: u64,
}

/// The table. Slots hold boxed sessions so an empty table costs 512 KiB of
/// pointers, and a lookup touches one pointer and one session.
pub struct SessionTable {
    role: Role,
    slots: Vec<Option<Box<Session>>>,
    len: usize,
}

impl core::fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionTable").field("role", &self.role).field("len", &self.len).finish()
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

impl SessionTable {
    pub fn new(role: Role) -> Self {
        let mut slots = Vec::with_capacity(SLOTS);
        slots.resize_with(SLOTS, || None);
        SessionTable { role, slots, len: 0 }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Installs (or replaces) a session from its two directional keys,
    /// expanding both key schedules now. `tx_counter` is where this end's
    /// sending starts (0 after a handshake; `unix_seconds << 32` for
    /// configured keys).
    pub fn install(&mut self, id: u32, c2r: &[u8; 32], r2c: &[u8; 32], tx_counter: u64) -> Result<(), BadSessionId> {
        self.install_shared(id, c2r, r2c, tx_counter, Arc::new(ReplayWindow::new()))
    }

    /// As [`install`](Self::install), with a receive window shared with the
    /// other cores' tables (each core expands its own key schedules).
    pub fn install_shared(
        &mut self,
        id: u32,
        c2r: &[u8; 32],
        r2c: &[u8; 32],
        tx_counter: u64,
        rx_window: Arc<ReplayWindow>,
    ) -> Result<(), BadSessionId> {
        let slot = self.slots.get_mut(id as usize).ok_or(BadSessionId(id))?;
        let (rx, tx) = match self.role {
            Role::Relay => (c2r, r2c),
            Role::Client => (r2c, c2r),
        };
        if slot.is_none() {
            self.len += 1;
        }
        *slot = Some(Box::new(Session {
            id: id as u16,
            rx_key: AeadKey::new(rx),
            rx_window,
            tx_key: AeadKey::new(tx),
            tx_counter,
        }));
        Ok(())
    }

    pub fn remove(&mut self, id: u16) -> Option<Box<Session>> {
        let s = self.slots.get_mut(id as usize)?.take();
        if s.is_some() {
            self.len -= 1;
        }
        s
    }

    #[inline(always)]
    pub fn get(&self, id: u16) -> Option<&Session> {
        self.slots.get(id as usize)?.as_deref()
    }

    #[inline(always)]
    pub fn get_mut(&mut self, id: u16) -> Option<&mut Session> {
        self.slots.get_mut(id as usize)?.as_deref_mut()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_lookup_remove() {
        let mut t = SessionTable::new(Role::Relay);
        assert!(t.get(3).is_none());
        t.install(3, &[1; 32], &[2; 32], 0).unwrap();
        t.install(64534, &[1; 32], &[2; 32], 0).unwrap();
        assert_eq!(t.install(64535, &[1; 32], &[2; 32], 0), Err(BadSessionId(64535)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(3).map(|s| s.id), Some(3));
        assert!(t.get(65535).is_none());
        assert!(t.remove(3).is_some());
        assert!(t.get(3).is_none());
        assert_eq!(t.len(), 1);
    }
}
