//! The relay's side of the handshake (`att-wire.md`, "Handshake" and
//! "Under load: cookies"), on the control thread: the data cores hand it
//! HELLOs (with an echoed cookie) over their exception rings; it judges
//! each cheapest first, allocates a session id, derives the keys, installs
//! the session on every data core through the command ring, and sends the
//! WELCOME only once every core has acknowledged the install, so the
//! client's first data frame never meets `unknown_session`.
//!
//! Every item is counted once: `received == welcomed + cookies_sent +
//! Σ refusals` (the cores' `overload` items are added by the node).
//!
//! Lifecycle: sessions end when idle for `idle_ms`, after 24 hours, or
//! after 2^32 frames in either direction; an id is reused only after every
//! core acknowledged its removal, and each holder of an id has its own
//! generation, which answers carry ([`attnet_core::shard::Route`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use attnet_core::command::CommandBus;
use attnet_core::exception::{Exception, ExceptionKind};
use attnet_core::handshake::{self as hs, HandshakeError};
use attnet_core::replay::ReplayWindow;
use attnet_core::session::{Role, Session};
use attnet_core::wire::handshake::{Cookie, DomainParams, Hello};
use attnet_core::wire::mcs::{self, MAX_SESSION_ID};
use attnet_core::wire::share;
use attnet_core::Peer;
use rand::rngs::StdRng;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::receipts::ReceiptSender;

/// Why a handshake item got no WELCOME and no COOKIE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HsRefusal {
    /// The HELLO body's version is not 1.
    BadVersion,
    /// Domain parameters the relay does not accept.
    BadParams,
    /// The HELLO's clock is more than 30 s from the relay's.
    StaleTimestamp,
    /// This HELLO was answered with a WELCOME less than 60 s ago.
    ReplayedHello,
    /// Under load, the echoed cookie is not valid for the source and HELLO.
    BadCookie,
    /// Under load, the source (IPv6: its /64) sent more HELLOs this second
    /// than `source_rate`.
    RateLimited,
    /// The HELLO's signature fails the strict rules.
    BadSignature,
    /// The X25519 exchange gave the all-zero value.
    ZeroSharedSecret,
    /// No session id is free, or the source holds `sessions_per_source`.
    TableFull,
    /// A data core's exception ring or the command ring was full.
    Overload,
    /// Not a HELLO body (length), or a COOKIE_ECHO without its HELLO.
    Malformed,
}

impl HsRefusal {
    /// Number of reasons.
    pub const COUNT: usize = 11;
    /// Every reason, in counter order.
    pub const ALL: [HsRefusal; Self::COUNT] = [
        HsRefusal::BadVersion,
        HsRefusal::BadParams,
        HsRefusal::StaleTimestamp,
        HsRefusal::ReplayedHello,
        HsRefusal::BadCookie,
        HsRefusal::RateLimited,
        HsRefusal::BadSignature,
        HsRefusal::ZeroSharedSecret,
        HsRefusal::TableFull,
        HsRefusal::Overload,
        HsRefusal::Malformed,
    ];

    /// The counter's name.
    pub fn name(self) -> &'static str {
        match self {
            HsRefusal::BadVersion => "bad_version",
            HsRefusal::BadParams => "bad_params",
            HsRefusal::StaleTimestamp => "stale_timestamp",
            HsRefusal::ReplayedHello => "replayed_hello",
            HsRefusal::BadCookie => "bad_cookie",
            HsRefusal::RateLimited => "rate_limited",
            HsRefusal::BadSignature => "bad_signature",
            HsRefusal::ZeroSharedSecret => "zero_shared_secret",
            HsRefusal::TableFull => "table_full",
            HsRefusal::Overload => "overload",
            HsRefusal::Malformed => "malformed",
        }
    }

    fn from_error(e: HandshakeError) -> HsRefusal {
        match e {
            HandshakeError::BadVersion => HsRefusal::BadVersion,
            HandshakeError::BadParams => HsRefusal::BadParams,
            HandshakeError::BadSignature => HsRefusal::BadSignature,
            HandshakeError::ZeroSharedSecret => HsRefusal::ZeroSharedSecret,
            HandshakeError::BadCookie => HsRefusal::BadCookie,
            _ => HsRefusal::Malformed,
        }
    }
}

/// What the handshake did, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeCounters {
    /// Items taken off the cores' exception rings.
    pub received: u64,
    /// HELLOs answered with a WELCOME (sent once every core installed the
    /// session).
    pub welcomed: u64,
    /// HELLOs answered with a COOKIE.
    pub cookies_sent: u64,
    /// The rest, by [`HsRefusal`].
    pub refusals: [u64; HsRefusal::COUNT],
    /// Negotiated sessions live now.
    pub live: u64,
    /// Sessions ended: idle, 24 hours old, 2^32 frames in a direction.
    pub ended_idle: u64,
    pub ended_age: u64,
    pub ended_frames: u64,
    /// Removals every core acknowledged (their ids are free again).
    pub ids_freed: u64,
    /// WELCOMEs and COOKIEs that could not leave (no source address, no
    /// socket, or the socket refused).
    pub unsent: u64,
}

impl HandshakeCounters {
    /// Items accounted for: welcomed, cookies sent and every refusal.
    pub fn settled(&self) -> u64 {
        self.welcomed + self.cookies_sent + self.refusals.iter().sum::<u64>()
    }

    /// The count of one refusal.
    pub fn refusal(&self, r: HsRefusal) -> u64 {
        self.refusals[r as usize]
    }

    /// The summary's `handshake` object, with the cores' overload items
    /// (`core_items` handed over, `core_overload` refused by a full ring)
    /// added: `received == welcomed + cookies_sent + Σ refusals`.
    pub fn to_json(&self, core_items: u64, core_overload: u64) -> serde_json::Value {
        let mut refusals = serde_json::Map::new();
        for r in HsRefusal::ALL {
            let extra = if r == HsRefusal::Overload { core_overload } else { 0 };
            refusals.insert(r.name().into(), (self.refusal(r) + extra).into());
        }
        serde_json::json!({
            "received": core_items,
            "welcomed": self.welcomed,
            "cookies_sent": self.cookies_sent,
            "refused": refusals,
            "live_sessions": self.live,
            "ended": {"idle": self.ended_idle, "age": self.ended_age, "frames": self.ended_frames},
            "ids_freed": self.ids_freed,
            "unsent": self.unsent,
        })
    }
}

/// How the relay answers HELLOs.
#[derive(Clone)]
pub struct HandshakeConfig {
    pub network_id: u32,
    /// The node key's Ed25519 seed.
    pub node_secret: [u8; 32],
    /// HELLOs per second above which a HELLO needs a valid cookie (0:
    /// always).
    pub cookie_threshold: u32,
    /// Once cookies are demanded: HELLOs per second per source address
    /// (IPv6: per /64).
    pub source_rate: u32,
    /// Live negotiated sessions per source address (IPv6: per /64).
    pub sessions_per_source: u32,
    /// A session with no transaction or query for this long ends.
    pub idle_ms: u64,
    /// Session ids kept for the accounts in `validators`.
    pub validator_slots: u16,
    /// Accounts that may take the reserved ids.
    pub validators: Vec<[u8; 32]>,
    /// A session ends after this long whatever it does (24 h).
    pub max_age_ms: u64,
    /// ... or once either direction's counter reaches this (2^32).
    pub max_frames: u64,
}

impl core::fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("network_id", &self.network_id)
            .field("cookie_threshold", &self.cookie_threshold)
            .field("source_rate", &self.source_rate)
            .field("sessions_per_source", &self.sessions_per_source)
            .field("idle_ms", &self.idle_ms)
            .field("validator_slots", &self.validator_slots)
            .finish_non_exhaustive()
    }
}

impl HandshakeConfig {
    /// The defaults of the node's configuration for `node_secret`.
    pub fn new(network_id: u32, node_secret: [u8; 32]) -> Self {
        HandshakeConfig {
            network_id,
            node_secret,
            cookie_threshold: 1000,
            source_rate: 20,
            sessions_per_source: 64,
            idle_ms: 300_000,
            validator_slots: 64,
            validators: Vec::new(),
            max_age_ms: 24 * 3600 * 1000,
            max_frames: 1 << 32,
        }
    }
}

/// A HELLO's timestamp may be this far from the relay's clock.
pub const TIMESTAMP_SLACK_MS: u64 = 30_000;
/// A HELLO answered with a WELCOME is not answered again for this long.
pub const REPLAY_TTL_MS: u64 = 60_000;
/// The cookie secret is replaced this often (the previous one stays valid).
pub const COOKIE_ROTATE_MS: u64 = 120_000;
/// Most HELLO hashes remembered (answered HELLOs are bounded by the session
/// table and the WELCOME rate; the oldest go first beyond this).
const REPLAY_CAP: usize = 1 << 17;
/// Most sources whose HELLO rate is tracked in one second.
const SOURCES_CAP: usize = 1 << 16;

/// A source as the limits see it: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Source([u8; 8], u8);

fn source_of(p: &Peer) -> Source {
    let ip = p.ip_bytes();
    let mut k = [0u8; 8];
    // IPv4: the address; IPv6: its first 64 bits.
    for (d, s) in k.iter_mut().zip(ip) {
        *d = *s;
    }
    Source(k, ip.len() as u8)
}

/// A negotiated session as the control thread keeps it.
#[derive(Debug)]
struct Live {
    generation: u32,
    source: Source,
    since_ms: u64,
    active_ms: u64,
    window: Arc<ReplayWindow>,
    reserved: bool,
}

#[derive(Debug)]
enum Slot {
    /// Not negotiable: a configured session's id.
    Configured,
    Free,
    Live(Live),
    /// Removed; free once every core applied the removal
    /// ([`HandshakeServer::removing`]).
    Removing,
}

/// A WELCOME waiting for every core to install its session.
#[derive(Debug)]
struct PendingWelcome {
    seq: u64,
    peer: Peer,
    frame: Vec<u8>,
}

/// The relay's handshake state.
pub struct HandshakeServer {
    cfg: HandshakeConfig,
    node_key: ed25519_zebra::SigningKey,
    node_public: [u8; 32],
    params: DomainParams,
    rng: StdRng,
    /// Current and previous cookie secrets, and when the current one began.
    secrets: [[u8; 32]; 2],
    rotated_ms: u64,
    /// Answered HELLOs' hashes and when each expires, oldest first.
    replay: HashMap<[u8; 32], u64>,
    replay_order: VecDeque<([u8; 32], u64)>,
    /// HELLOs this second, overall and per source.
    second: u64,
    this_second: u32,
    per_source: HashMap<Source, u32>,
    sessions_by_source: HashMap<Source, u32>,
    slots: Vec<Slot>,
    free: VecDeque<u16>,
    reserve: VecDeque<u16>,
    generation: u32,
    welcomes: VecDeque<PendingWelcome>,
    /// Ids removed, with the removal's command and whether the id is a
    /// reserved one, in command order.
    removing: VecDeque<(u16, u64, bool)>,
    last_sweep_ms: u64,
    counters: HandshakeCounters,
    frame: Vec<u8>,
}

impl core::fmt::Debug for HandshakeServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeServer").field("cfg", &self.cfg).field("counters", &self.counters).finish()
    }
}

impl HandshakeServer {
    /// A relay whose configured sessions hold `configured` ids; every other
    /// id can be negotiated, the highest `validator_slots` of them only by
    /// validators.
    pub fn new(cfg: HandshakeConfig, configured: &[u16], mut rng: StdRng) -> Self {
        let node_key = ed25519_zebra::SigningKey::from(cfg.node_secret);
        let node_public: [u8; 32] = ed25519_zebra::VerificationKey::from(&node_key).into();
        let mut slots: Vec<Slot> = (0..=MAX_SESSION_ID).map(|_| Slot::Free).collect();
        for id in configured {
            if let Some(s) = slots.get_mut(usize::from(*id)) {
                *s = Slot::Configured;
            }
        }
        let open: Vec<u16> =
            (0..=MAX_SESSION_ID).filter(|i| matches!(slots.get(usize::from(*i)), Some(Slot::Free))).collect();
        let keep = usize::from(cfg.validator_slots).min(open.len());
        let (general, reserved) = open.split_at(open.len() - keep);
        let mut secrets = [[0u8; 32]; 2];
        rng.fill_bytes(&mut secrets[0]);
        rng.fill_bytes(&mut secrets[1]);
        HandshakeServer {
            node_key,
            node_public,
            params: DomainParams::default(),
            rng,
            secrets,
            rotated_ms: 0,
            replay: HashMap::with_capacity(1024),
            replay_order: VecDeque::with_capacity(1024),
            second: 0,
            this_second: 0,
            per_source: HashMap::new(),
            sessions_by_source: HashMap::new(),
            slots,
            free: general.iter().copied().collect(),
            reserve: reserved.iter().copied().collect(),
            generation: 0,
            welcomes: VecDeque::new(),
            removing: VecDeque::new(),
            last_sweep_ms: 0,
            counters: HandshakeCounters::default(),
            frame: Vec::with_capacity(256),
            cfg,
        }
    }

    /// Takes `id` for a configured session a reload added; false when a
    /// negotiated session holds it (live, or its removal still under way).
    pub fn claim_configured(&mut self, id: u16) -> bool {
        match self.slots.get_mut(usize::from(id)) {
            Some(Slot::Configured) => true,
            Some(s @ Slot::Free) => {
                *s = Slot::Configured;
                self.free.retain(|x| *x != id);
                self.reserve.retain(|x| *x != id);
                true
            }
            _ => false,
        }
    }

    /// Gives a configured session's id (a reload removed it) back to
    /// negotiation; the cores' removal was queued first, so a session
    /// negotiated on it later is installed after it on every core.
    pub fn release_configured(&mut self, id: u16) {
        if let Some(s @ Slot::Configured) = self.slots.get_mut(usize::from(id)) {
            *s = Slot::Free;
            self.free.push_back(id);
        }
    }

    /// New HELLO limits from a reload: the cookie threshold, HELLOs a
    /// second per source, sessions per source, idle timeout (ms).
    pub fn set_limits(&mut self, cookie_threshold: u32, source_rate: u32, sessions_per_source: u32, idle_ms: u64) {
        self.cfg.cookie_threshold = cookie_threshold;
        self.cfg.source_rate = source_rate;
        self.cfg.sessions_per_source = sessions_per_source;
        self.cfg.idle_ms = idle_ms;
    }

    /// The relay's node key (Ed25519 public).
    pub fn node_key(&self) -> [u8; 32] {
        self.node_public
    }

    pub fn counters(&self) -> HandshakeCounters {
        self.counters
    }

    /// The generation of the session now holding `id`, if it is negotiated
    /// and live (configured sessions are generation 0).
    pub fn generation(&self, id: u16) -> Option<u32> {
        match self.slots.get(usize::from(id)) {
            Some(Slot::Live(l)) => Some(l.generation),
            Some(Slot::Configured) => Some(0),
            _ => None,
        }
    }

    /// The session did something (a transaction or a query): it is not
    /// idle.
    pub fn touch(&mut self, id: u16, generation: u32, now_ms: u64) {
        if let Some(Slot::Live(l)) = self.slots.get_mut(usize::from(id)) {
            if l.generation == generation {
                l.active_ms = now_ms;
            }
        }
    }

    fn refuse(&mut self, r: HsRefusal) {
        self.counters.refusals[r as usize] += 1;
    }

    /// Judges one item from a core's exception ring: a HELLO (perhaps with
    /// a cookie) or a malformed echo. `unix_ms` is the wall clock (for the
    /// HELLO's timestamp), `now_ms` the node's monotonic clock.
    pub fn on_item(&mut self, e: &Exception, unix_ms: u64, now_ms: u64, bus: &mut CommandBus, tx: &mut ReceiptSender) {
        self.counters.received += 1;
        if let Err(r) = self.judge(e, unix_ms, now_ms, bus, tx) {
            self.refuse(r);
        }
    }

    fn judge(
        &mut self,
        e: &Exception,
        unix_ms: u64,
        now_ms: u64,
        bus: &mut CommandBus,
        tx: &mut ReceiptSender,
    ) -> Result<(), HsRefusal> {
        if e.kind != ExceptionKind::Hello {
            return Err(HsRefusal::Malformed);
        }
        let body = e.body().filter(|b| b.len() == Hello::LEN).ok_or(HsRefusal::Malformed)?;
        // Cheapest first: version and parameters, the clock, the replay
        // cache, the cookie under load, then signature and X25519.
        let hello = hs::parse_hello(body).map_err(HsRefusal::from_error)?;
        if hello.timestamp_ms.abs_diff(unix_ms) > TIMESTAMP_SLACK_MS {
            return Err(HsRefusal::StaleTimestamp);
        }
        let hash: [u8; 32] = Sha256::digest(body).into();
        self.expire_replays(now_ms);
        if self.replay.contains_key(&hash) {
            return Err(HsRefusal::ReplayedHello);
        }
        self.rotate(now_ms);
        let second = now_ms / 1000;
        if second != self.second {
            self.second = second;
            self.this_second = 0;
            self.per_source.clear();
        }
        self.this_second = self.this_second.saturating_add(1);
        let under_load = self.this_second > self.cfg.cookie_threshold;
        let source = source_of(&e.peer);
        if under_load {
            let Some(echoed) = e.cookie else {
                let c = hs::cookie(&self.secrets[0], &e.peer, &hash);
                let mut b = [0u8; Cookie::LEN];
                let _ = Cookie { hello_hash: hash, cookie: c }.emit(&mut b);
                self.frame.clear();
                hs::info_frame(mcs::KIND_INDICATION, 0, share::kind::COOKIE, &b, &mut self.frame);
                if !tx.send_clear(&self.frame, &e.peer) {
                    self.counters.unsent += 1;
                }
                self.counters.cookies_sent += 1;
                return Ok(());
            };
            let valid = self.secrets.iter().any(|s| hs::cookie(s, &e.peer, &hash) == echoed);
            if !valid {
                return Err(HsRefusal::BadCookie);
            }
            if !self.per_source.contains_key(&source) && self.per_source.len() >= SOURCES_CAP {
                return Err(HsRefusal::RateLimited);
            }
            let n = self.per_source.entry(source).or_insert(0);
            *n += 1;
            if *n > self.cfg.source_rate {
                return Err(HsRefusal::RateLimited);
            }
        }
        if !hs::check_hello_signature(self.cfg.network_id, body) {
            return Err(HsRefusal::BadSignature);
        }
        if self.sessions_by_source.get(&source).copied().unwrap_or(0) >= self.cfg.sessions_per_source {
            return Err(HsRefusal::TableFull);
        }
        let validator = self.cfg.validators.contains(&hello.account);
        let (id, reserved) = match self.free.pop_front() {
            Some(id) => (id, false),
            None if validator => (self.reserve.pop_front().ok_or(HsRefusal::TableFull)?, true),
            None => return Err(HsRefusal::TableFull),
        };
        let give_back = |s: &mut Self| {
            if reserved {
                s.reserve.push_front(id);
            } else {
                s.free.push_front(id);
            }
        };
        let mut eph = [0u8; 32];
        self.rng.fill_bytes(&mut eph);
        let (welcome, keys) =
            match hs::relay_welcome(&self.node_key, eph, &hello, body, id, &self.params, self.cfg.network_id) {
                Ok(x) => x,
                Err(err) => {
                    give_back(self);
                    return Err(HsRefusal::from_error(err));
                }
            };
        self.generation = self.generation.wrapping_add(1).max(1);
        let generation = self.generation;
        let session = match Session::new(Role::Relay, u32::from(id), &keys.c2r, &keys.r2c, 0) {
            Ok(s) => s,
            Err(_) => {
                give_back(self);
                return Err(HsRefusal::TableFull);
            }
        };
        let (mut rx, sealer) = session.split();
        rx.generation = generation;
        let window = rx.window.clone();
        let seq = match bus.install(&rx) {
            Ok(seq) => seq,
            Err(_) => {
                give_back(self);
                return Err(HsRefusal::Overload);
            }
        };
        tx.install(generation, sealer, self.params.negotiate(&hello.params).max_pdu_size);
        if let Some(s) = self.slots.get_mut(usize::from(id)) {
            *s = Slot::Live(Live { generation, source, since_ms: now_ms, active_ms: now_ms, window, reserved });
        }
        *self.sessions_by_source.entry(source).or_insert(0) += 1;
        self.counters.live += 1;
        self.remember(hash, now_ms);
        let mut frame = Vec::with_capacity(256);
        hs::info_frame(mcs::KIND_INDICATION, id, share::kind::WELCOME, &welcome, &mut frame);
        self.welcomes.push_back(PendingWelcome { seq, peer: e.peer, frame });
        self.counters.welcomed += 1;
        Ok(())
    }

    fn remember(&mut self, hash: [u8; 32], now_ms: u64) {
        if self.replay.len() >= REPLAY_CAP {
            if let Some((h, _)) = self.replay_order.pop_front() {
                self.replay.remove(&h);
            }
        }
        let until = now_ms + REPLAY_TTL_MS;
        self.replay.insert(hash, until);
        self.replay_order.push_back((hash, until));
    }

    fn expire_replays(&mut self, now_ms: u64) {
        while let Some(&(h, until)) = self.replay_order.front() {
            if until > now_ms {
                break;
            }
            self.replay_order.pop_front();
            self.replay.remove(&h);
        }
    }

    fn rotate(&mut self, now_ms: u64) {
        let since = now_ms.saturating_sub(self.rotated_ms);
        if since >= COOKIE_ROTATE_MS {
            self.rotated_ms = now_ms;
            if since >= 2 * COOKIE_ROTATE_MS {
                // Both secrets are too old.
                self.rng.fill_bytes(&mut self.secrets[1]);
            } else {
                self.secrets[1] = self.secrets[0];
            }
            self.rng.fill_bytes(&mut self.secrets[0]);
        }
    }

    /// Between items: sends the WELCOMEs whose sessions every core has
    /// installed, frees the ids of removals every core applied, and once a
    /// second ends idle, old and worn-out sessions.
    pub fn poll(&mut self, now_ms: u64, bus: &mut CommandBus, tx: &mut ReceiptSender) {
        while let Some(w) = self.welcomes.front() {
            if !bus.applied_by_all(w.seq) {
                break;
            }
            if let Some(w) = self.welcomes.pop_front() {
                if !tx.send_clear(&w.frame, &w.peer) {
                    self.counters.unsent += 1;
                }
            }
        }
        while let Some(&(id, seq, reserved)) = self.removing.front() {
            if !bus.applied_by_all(seq) {
                break;
            }
            self.removing.pop_front();
            if let Some(s) = self.slots.get_mut(usize::from(id)) {
                *s = Slot::Free;
            }
            self.counters.ids_freed += 1;
            if reserved {
                self.reserve.push_back(id);
            } else {
                self.free.push_back(id);
            }
        }
        if now_ms.saturating_sub(self.last_sweep_ms) < 1000 {
            return;
        }
        self.last_sweep_ms = now_ms;
        self.expire_replays(now_ms);
        for id in 0..self.slots.len() {
            let Some(Slot::Live(l)) = self.slots.get(id) else { continue };
            let worn = l.window.top().is_some_and(|t| t.saturating_add(1) >= self.cfg.max_frames)
                || tx.sealed(id as u16).is_some_and(|n| n >= self.cfg.max_frames);
            let why = if now_ms.saturating_sub(l.active_ms) >= self.cfg.idle_ms {
                Some(0)
            } else if now_ms.saturating_sub(l.since_ms) >= self.cfg.max_age_ms {
                Some(1)
            } else if worn {
                Some(2)
            } else {
                None
            };
            let Some(why) = why else { continue };
            // A full ring: tried again at the next sweep.
            let Ok(seq) = bus.remove(id as u16) else { break };
            let (source, reserved) = (l.source, l.reserved);
            match why {
                0 => self.counters.ended_idle += 1,
                1 => self.counters.ended_age += 1,
                _ => self.counters.ended_frames += 1,
            }
            tx.remove(id as u16);
            self.counters.live = self.counters.live.saturating_sub(1);
            if let Some(n) = self.sessions_by_source.get_mut(&source) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.sessions_by_source.remove(&source);
                }
            }
            if let Some(s) = self.slots.get_mut(id) {
                *s = Slot::Removing;
            }
            self.removing.push_back((id as u16, seq, reserved));
        }
    }

    /// WELCOMEs waiting for the cores.
    pub fn waiting(&self) -> usize {
        self.welcomes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attnet_core::command::{command_bus, CommandRx};
    use attnet_core::dedup::IdFilter;
    use attnet_core::handshake::{parse_info_frames, ClientHandshake};
    use attnet_core::session::SessionTable;
    use attnet_core::wire::handshake::Welcome;
    use rand::SeedableRng;
    use std::net::UdpSocket;
    use std::time::Duration;

    const NET: u32 = 1;
    const T0: u64 = 1_790_000_000_000;

    struct Rig {
        hs: HandshakeServer,
        bus: CommandBus,
        cores: Vec<(CommandRx, SessionTable, IdFilter)>,
        tx: ReceiptSender,
        client: UdpSocket,
    }

    fn rig(cfg: impl FnOnce(&mut HandshakeConfig)) -> Rig {
        let mut c = HandshakeConfig::new(NET, [7; 32]);
        cfg(&mut c);
        let (bus, ends) = command_bus(2, 64);
        let cores = ends.into_iter().map(|e| (e, SessionTable::new(Role::Relay), IdFilter::new(4))).collect();
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        Rig {
            hs: HandshakeServer::new(c, &[0, 1], StdRng::seed_from_u64(1)),
            bus,
            cores,
            tx: ReceiptSender::new(Some(relay), Vec::new()),
            client,
        }
    }

    impl Rig {
        fn peer(&self) -> Peer {
            Peer::from(self.client.local_addr().unwrap())
        }
        fn hello(&mut self, body: &[u8], cookie: Option<[u8; 16]>, now_ms: u64) {
            let mut e = Exception::new(ExceptionKind::Hello, 0, 1003, self.peer(), body);
            e.cookie = cookie;
            self.hs.on_item(&e, T0 + now_ms, now_ms, &mut self.bus, &mut self.tx);
        }
        fn apply(&mut self) {
            for (rx, t, f) in &mut self.cores {
                rx.apply(t, f, &mut None);
            }
        }
        /// The next datagram the client receives: its one info frame.
        fn recv(&self) -> (u8, u16, Vec<u8>) {
            let mut b = [0u8; 2048];
            let n = self.client.recv(&mut b).unwrap();
            let f = parse_info_frames(&b[..n]).unwrap();
            (f[0].content_kind, f[0].initiator, f[0].body.to_vec())
        }
        fn settled(&self) {
            let c = self.hs.counters();
            assert_eq!(c.received, c.settled(), "every item counted once: {c:?}");
        }
    }

    fn client(i: u8, ts: u64) -> ClientHandshake {
        ClientHandshake::new(&ed25519_zebra::SigningKey::from([i; 32]), [i.wrapping_add(100); 32], ts, NET)
    }

    #[test]
    fn a_hello_is_welcomed_once_every_core_installed_its_session() {
        let mut r = rig(|_| {});
        let c = client(1, T0);
        r.hello(c.hello_body(), None, 0);
        assert_eq!(r.hs.waiting(), 1);
        // No core has applied the install: nothing is sent yet.
        r.hs.poll(0, &mut r.bus, &mut r.tx);
        r.client.set_nonblocking(true).unwrap();
        assert!(r.client.recv(&mut [0u8; 64]).is_err(), "no WELCOME before the cores installed the session");
        r.client.set_nonblocking(false).unwrap();
        let (rx, t, f) = &mut r.cores[0];
        rx.apply(t, f, &mut None);
        r.hs.poll(0, &mut r.bus, &mut r.tx);
        assert_eq!(r.hs.waiting(), 1, "one core is not enough");
        r.apply();
        r.hs.poll(0, &mut r.bus, &mut r.tx);
        assert_eq!(r.hs.waiting(), 0);
        let (kind, id, body) = r.recv();
        assert_eq!(kind, share::kind::WELCOME);
        let est = c.finish(&body, &r.hs.node_key()).unwrap();
        assert_eq!(est.session_id, id);
        assert!(id >= 2, "configured ids 0 and 1 are never negotiated");
        // Replies to it are bounded by the parameters its WELCOME gave.
        assert_eq!(r.tx.reply_body_limit(id), attnet_core::emit::reply_body_limit(est.params.max_pdu_size));
        // Both cores hold the session under the client's c2r key.
        for (_, t, _) in &r.cores {
            let s = t.get(id).unwrap();
            assert_eq!(s.generation, r.hs.generation(id).unwrap());
        }
        // The same HELLO again: not answered twice.
        r.hello(c.hello_body(), None, 10);
        assert_eq!(r.hs.counters().refusal(HsRefusal::ReplayedHello), 1);
        // Past the timestamp's slack it is stale (the replay cache outlives
        // the slack, so a HELLO is never answered twice).
        r.hello(c.hello_body(), None, TIMESTAMP_SLACK_MS + 1);
        let h = r.hs.counters();
        assert_eq!((h.welcomed, h.received, h.refusal(HsRefusal::StaleTimestamp)), (1, 3, 1));
        r.settled();
        let _ = Welcome::LEN;
    }

    #[test]
    fn every_cheap_refusal_is_counted_by_name() {
        let mut r = rig(|_| {});
        let good = client(2, T0);
        // Stale: 31 s off.
        r.hello(client(3, T0 - 31_000).hello_body(), None, 0);
        // Bad signature: one signed byte flipped.
        let mut b = good.hello_body().to_vec();
        b[90] ^= 1;
        r.hello(&b, None, 0);
        // Another version.
        let mut v = good.hello_body().to_vec();
        v[0] = 2;
        r.hello(&v, None, 0);
        // Parameters the relay does not take (protocol version 1).
        let mut p = good.hello_body().to_vec();
        p[15] = 1;
        r.hello(&p, None, 0);
        // Not a HELLO body; a malformed echo item.
        r.hello(&good.hello_body()[..100], None, 0);
        let e = Exception::new(ExceptionKind::Malformed, 0, 1003, r.peer(), &[]);
        r.hs.on_item(&e, T0, 0, &mut r.bus, &mut r.tx);
        let c = r.hs.counters();
        for (reason, n) in [
            (HsRefusal::StaleTimestamp, 1),
            (HsRefusal::BadSignature, 1),
            (HsRefusal::BadVersion, 1),
            (HsRefusal::BadParams, 1),
            (HsRefusal::Malformed, 2),
        ] {
            assert_eq!(c.refusal(reason), n, "{}", reason.name());
        }
        assert_eq!(c.welcomed, 0);
        r.settled();
    }

    #[test]
    fn a_small_order_ephemeral_key_and_a_full_command_ring_are_refused_by_name() {
        use attnet_core::handshake::hello_signed_message;
        use attnet_core::wire::handshake::{DomainParams, Hello};
        let mut r = rig(|c| c.sessions_per_source = 1000);
        // A well-signed HELLO whose ephemeral key is the all-zero u
        // (small order): X25519 gives the all-zero secret.
        let sk = ed25519_zebra::SigningKey::from([9; 32]);
        let mut h = Hello {
            params: DomainParams::default(),
            account: ed25519_zebra::VerificationKeyBytes::from(&sk).into(),
            ephemeral: [0; 32],
            timestamp_ms: T0,
            signature: [0; 64],
        };
        let mut body = [0u8; Hello::LEN];
        h.emit(&mut body).unwrap();
        h.signature = sk.sign(&hello_signed_message(NET, &body)).to_bytes();
        h.emit(&mut body).unwrap();
        r.hello(&body, None, 0);
        assert_eq!(r.hs.counters().refusal(HsRefusal::ZeroSharedSecret), 1);
        // Cores that apply nothing: the command ring (64 slots) fills and
        // the next HELLO is `overload`, its id given back.
        for i in 10..100u8 {
            r.hello(client(i, T0).hello_body(), None, 0);
            if r.hs.counters().refusal(HsRefusal::Overload) > 0 {
                break;
            }
        }
        let c = r.hs.counters();
        assert_eq!(c.refusal(HsRefusal::Overload), 1, "{c:?}");
        assert_eq!(c.welcomed, 64, "one install per slot of the ring, then overload");
        r.settled();
    }

    #[test]
    fn under_load_a_hello_needs_a_cookie_and_sources_are_limited() {
        // Threshold 0: every HELLO is under load.
        let mut r = rig(|c| {
            c.cookie_threshold = 0;
            c.source_rate = 1;
        });
        let c = client(4, T0);
        r.hello(c.hello_body(), None, 0);
        let (kind, _, body) = r.recv();
        assert_eq!(kind, share::kind::COOKIE);
        let cookie = Cookie::parse(&body).unwrap();
        assert_eq!(cookie.hello_hash, c.hello_hash());
        // A wrong cookie costs no signature check and gets nothing.
        let mut wrong = cookie.cookie;
        wrong[0] ^= 1;
        r.hello(c.hello_body(), Some(wrong), 0);
        assert_eq!(r.hs.counters().refusal(HsRefusal::BadCookie), 1);
        // The right one: welcomed.
        r.hello(c.hello_body(), Some(cookie.cookie), 0);
        r.apply();
        r.hs.poll(0, &mut r.bus, &mut r.tx);
        let (kind, _, body) = r.recv();
        assert_eq!(kind, share::kind::WELCOME);
        c.finish(&body, &r.hs.node_key()).unwrap();
        // A second HELLO with a valid cookie from the same source in the
        // same second: over the source's rate.
        let d = client(5, T0);
        let ck = hs::cookie(&r.hs.secrets[0], &r.peer(), &d.hello_hash());
        r.hello(d.hello_body(), Some(ck), 0);
        assert_eq!(r.hs.counters().refusal(HsRefusal::RateLimited), 1);
        // The next second it passes.
        r.hello(d.hello_body(), Some(ck), 1000);
        assert_eq!(r.hs.counters().welcomed, 2);
        // A cookie of the previous secret is valid after one rotation...
        let e = client(6, T0 + COOKIE_ROTATE_MS);
        let old = hs::cookie(&r.hs.secrets[0], &r.peer(), &e.hello_hash());
        r.hello(e.hello_body(), Some(old), COOKIE_ROTATE_MS);
        assert_eq!(r.hs.counters().welcomed, 3);
        // ... not after two.
        let f = client(12, T0 + 3 * COOKIE_ROTATE_MS);
        let old = hs::cookie(&r.hs.secrets[0], &r.peer(), &f.hello_hash());
        r.hello(f.hello_body(), Some(old), 3 * COOKIE_ROTATE_MS);
        let h = r.hs.counters();
        assert_eq!((h.welcomed, h.cookies_sent, h.refusal(HsRefusal::BadCookie)), (3, 1, 2));
        r.settled();
    }

    #[test]
    fn sources_sessions_and_ids_are_capped_and_ids_reused_after_acknowledged_removal() {
        let mut r = rig(|c| {
            c.sessions_per_source = 1;
            c.idle_ms = 5_000;
            c.validator_slots = 64;
        });
        let a = client(7, T0);
        r.hello(a.hello_body(), None, 0);
        r.hello(client(8, T0).hello_body(), None, 0);
        assert_eq!(r.hs.counters().refusal(HsRefusal::TableFull), 1, "one session per source");
        r.apply();
        r.hs.poll(0, &mut r.bus, &mut r.tx);
        let (_, id, _) = r.recv();
        let gen = r.hs.generation(id).unwrap();
        // Active at 4 s: not idle at 6 s; idle at 9.5 s.
        r.hs.touch(id, gen, 4_000);
        r.hs.poll(6_000, &mut r.bus, &mut r.tx);
        assert_eq!(r.hs.counters().live, 1);
        r.hs.poll(9_500, &mut r.bus, &mut r.tx);
        let c = r.hs.counters();
        assert_eq!((c.live, c.ended_idle, c.ids_freed), (0, 1, 0), "removed, not yet free");
        assert!(r.tx.send_sealed(id, gen, 1004, share::kind::ANSWER, &[1], &r.peer()).is_none());
        r.apply();
        for (_, t, _) in &r.cores {
            assert!(t.get(id).is_none());
        }
        r.hs.poll(9_600, &mut r.bus, &mut r.tx);
        assert_eq!(r.hs.counters().ids_freed, 1);
        // The source may open a session again; its generation is new.
        r.hello(client(9, T0 + 10_000).hello_body(), None, 10_000);
        r.apply();
        r.hs.poll(10_000, &mut r.bus, &mut r.tx);
        let (_, id2, _) = r.recv();
        assert_ne!(r.hs.generation(id2), Some(gen));
        r.settled();
    }

    #[test]
    fn the_reserve_is_for_validators_only() {
        let v = ed25519_zebra::SigningKey::from([11; 32]);
        let vk: [u8; 32] = ed25519_zebra::VerificationKey::from(&v).into();
        let mut r = rig(|c| {
            c.validator_slots = 64533;
            c.validators = vec![vk];
        });
        // Ids 0 and 1 are configured, 64533 reserved: no general id is left.
        r.hello(client(10, T0).hello_body(), None, 0);
        assert_eq!(r.hs.counters().refusal(HsRefusal::TableFull), 1);
        r.hello(ClientHandshake::new(&v, [3; 32], T0, NET).hello_body(), None, 0);
        assert_eq!(r.hs.counters().welcomed, 1);
        r.settled();
    }
}
