//! The datagram stream: valid TX_BATCH frames from the pool, and, at a
//! chosen fraction, hostile datagrams spread over every drop reason of the
//! spec's order of checks (plus duplicates and replays). Each datagram is
//! built into a caller-owned buffer and added to [`Expected`]: what a
//! correct receiver must count for it. Output-agnostic: UDP, pcap and DPDK
//! outputs all draw from here.

use dataplane::emit::FrameSpec;
use dataplane::session::Sealer;
use dataplane::verdict::{Counters, DropReason, TxDrop};
use dataplane::wire::mcs::channel;
use dataplane::wire::security::FLAG_INFO;
use dataplane::wire::tx::{self, emit_batch, Kind};
use serde_json::{json, Map, Value};

use crate::plan::{Plan, TxPool};

/// Whether frames are LZ4-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lz4 {
    Off,
    On,
    /// Every other frame.
    Mix,
}

/// The shape of the traffic.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    /// Transactions per valid frame, cycled from `.0` to `.1` inclusive.
    pub txs_per_frame: (usize, usize),
    pub frames_per_datagram: usize,
    pub lz4: Lz4,
    /// Fraction of datagrams that are hostile, 0..=1.
    pub bad: f64,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig { txs_per_frame: (1, 3), frames_per_datagram: 1, lz4: Lz4::Mix, bad: 0.0 }
    }
}

/// A hostile datagram, and the verdict a correct receiver gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// A frame cut in half: `truncated`.
    Truncated,
    /// TPKT version 4: `bad_header`.
    BadVersion,
    /// tpkt.length 13: `bad_length`.
    ShortLength,
    /// Channel 1007: `unsupported_channel`.
    Channel,
    /// INFO on the transaction channel: `bad_security`.
    Security,
    /// A session the receiver does not know: `unknown_session`.
    UnknownSession,
    /// The previous valid datagram again (from another source port where
    /// the output has one): `replay` for each of its frames.
    Replayed,
    /// A flipped tag byte: `auth_failed`.
    Tampered,
    /// An unknown compressed_type, sealed: `bad_compression`.
    Compression,
    /// A TX_BATCH whose count says one more than it holds: `bad_tx`.
    BadBatch,
    /// The next real transaction with a broken signature, in a valid frame
    /// before it: `bad_signature`, and the real one is still accepted.
    Forged,
    /// A valid frame re-carrying a sent transaction: `duplicate`.
    Duplicate,
}

impl Hostile {
    pub const ALL: [Hostile; 12] = [
        Hostile::Truncated,
        Hostile::BadVersion,
        Hostile::ShortLength,
        Hostile::Channel,
        Hostile::Security,
        Hostile::UnknownSession,
        Hostile::Replayed,
        Hostile::Tampered,
        Hostile::Compression,
        Hostile::BadBatch,
        Hostile::Forged,
        Hostile::Duplicate,
    ];

    /// The frame-level drop reason, if the frame is dropped whole.
    pub const fn frame_drop(self) -> Option<DropReason> {
        Some(match self {
            Hostile::Truncated => DropReason::Truncated,
            Hostile::BadVersion => DropReason::BadHeader,
            Hostile::ShortLength => DropReason::BadLength,
            Hostile::Channel => DropReason::UnsupportedChannel,
            Hostile::Security => DropReason::BadSecurity,
            Hostile::UnknownSession => DropReason::UnknownSession,
            Hostile::Replayed => DropReason::Replay,
            Hostile::Tampered => DropReason::AuthFailed,
            Hostile::Compression => DropReason::BadCompression,
            Hostile::BadBatch => DropReason::BadTx,
            Hostile::Forged | Hostile::Duplicate => return None,
        })
    }
}

/// What a correct receiver reports for everything generated so far, in
/// the node summary's shape (`packets`, `frames`, `txs`, `ledger`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    pub datagrams: u64,
    /// Frame and transaction counts, as a receiver's own counters.
    pub counts: Counters,
    /// Hostile datagrams by kind (index as [`Hostile::ALL`]).
    pub hostile: [u64; Hostile::ALL.len()],
}

impl Expected {
    pub fn add(&mut self, o: &Expected) {
        self.datagrams += o.datagrams;
        self.counts.add(&o.counts);
        for (a, b) in self.hostile.iter_mut().zip(o.hostile) {
            *a += b;
        }
    }

    fn drop_frames(&mut self, r: DropReason, n: u64) {
        self.counts.frames_received += n;
        self.counts.frame_drops[r as usize] += n;
    }

    /// A frame accepted with `txs` transactions, every one standing.
    fn accept(&mut self, frames: u64, txs: u64) {
        self.counts.frames_received += frames;
        self.counts.frames_accepted += frames;
        self.counts.txs_seen += txs;
        self.counts.txs_accepted += txs;
    }

    /// An accepted frame whose one transaction is dropped for `r`.
    fn accept_dropping(&mut self, r: TxDrop) {
        self.accept(1, 1);
        self.counts.reclassify(r, 1);
    }

    /// The counts as JSON in the shape of `attnet node`'s summary.
    pub fn to_json(&self) -> Value {
        let c = &self.counts;
        let fd: Map<String, Value> = c.frame_drops_named().map(|(k, n)| (k.into(), json!(n))).collect();
        let td: Map<String, Value> = c.tx_drops_named().map(|(k, n)| (k.into(), json!(n))).collect();
        json!({
            "packets": {"received": self.datagrams},
            "frames": {"received": c.frames_received, "accepted": c.frames_accepted, "dropped": fd},
            "txs": {"seen": c.txs_seen, "accepted": c.txs_accepted, "dropped": td},
            "ledger": {"applied": c.txs_accepted},
        })
    }
}

/// What the last generated datagram was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Frames in it.
    pub frames: u32,
    /// Valid transactions first sent in it (pool indices `first_tx..first_tx + txs`).
    pub first_tx: usize,
    pub txs: u32,
    /// Hostile kind, if it is one.
    pub hostile: Option<Hostile>,
    /// Session of its (first) frame.
    pub session: u16,
}

impl Datagram {
    /// Replays leave from a second socket where the output has one.
    pub fn is_replay(&self) -> bool {
        self.hostile == Some(Hostile::Replayed)
    }
}

/// Builds datagrams for a subset of the plan's sessions and accounts: the
/// part `part` of `parts` (one per sending thread), so every account's
/// transactions go through one thread, in nonce order.
pub struct Generator<'p> {
    pool: &'p TxPool,
    cfg: TrafficConfig,
    sessions: Vec<Sealer>,
    /// Pool indices this part sends, in order.
    txs: Vec<u32>,
    next_tx: usize,
    next_session: usize,
    frame_i: u64,
    valid_frames: u64,
    /// Bresenham accumulator spreading hostile datagrams evenly.
    bad_acc: f64,
    bad_i: usize,
    prev_valid: Vec<u8>,
    prev_frames: u32,
    body: Vec<u8>,
    scratch: Vec<u8>,
    pub expected: Expected,
}

/// The initiator of `unknown_session` frames: valid, never configured.
const UNKNOWN_SESSION: u16 = 64000;

/// Sealing counters of configured keys start at `unix_seconds << 32` (plus
/// the sub-second part: [`dataplane::host::configured_counter_start`]).
pub fn start_counter() -> u64 {
    dataplane::host::configured_counter_start()
}

impl<'p> Generator<'p> {
    /// `parts` must not exceed the plan's sessions (each part needs one).
    pub fn new(plan: &Plan, pool: &'p TxPool, cfg: &TrafficConfig, part: usize, parts: usize, counter0: u64) -> Self {
        let parts = parts.max(1);
        let n = plan.accounts.len().max(1);
        let sessions = plan
            .sessions
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parts == part)
            // The client end's sending half: this part is the only sealer of
            // its sessions' client-to-relay keys. The first frame takes
            // counter0 + 1.
            .map(|(_, s)| Sealer::new(s.id, &s.c2r, counter0 + 1))
            .collect();
        let txs = (0..pool.len()).filter(|j| (j % n) % parts == part).map(|j| j as u32).collect();
        // All hostile would never end: at least one datagram in a thousand is valid.
        let cfg = TrafficConfig { bad: cfg.bad.clamp(0.0, 0.999), ..cfg.clone() };
        Generator {
            pool,
            cfg,
            sessions,
            txs,
            next_tx: 0,
            next_session: 0,
            frame_i: 0,
            valid_frames: 0,
            bad_acc: 0.0,
            bad_i: 0,
            prev_valid: Vec::new(),
            prev_frames: 0,
            body: Vec::with_capacity(16384),
            scratch: Vec::with_capacity(16384),
            expected: Expected::default(),
        }
    }

    /// Valid transactions not yet sent.
    pub fn remaining(&self) -> usize {
        self.txs.len() - self.next_tx
    }

    /// Pool index of this part's `i`-th transaction.
    pub fn pool_index(&self, i: usize) -> usize {
        self.txs[i] as usize
    }

    /// Builds the next datagram into `out` (cleared first). `None` when the
    /// pool is used up or the part has no session.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Option<Datagram> {
        out.clear();
        if self.sessions.is_empty() || self.next_tx >= self.txs.len() {
            return None;
        }
        if self.cfg.bad > 0.0 && !self.prev_valid.is_empty() {
            self.bad_acc += self.cfg.bad.min(1.0);
            if self.bad_acc >= 1.0 {
                self.bad_acc -= 1.0;
                let kind = Hostile::ALL[self.bad_i % Hostile::ALL.len()];
                self.bad_i += 1;
                // Forged needs a next real transaction to stand beside.
                if kind != Hostile::Forged || self.next_tx < self.txs.len() {
                    return Some(self.hostile(kind, out));
                }
            }
        }
        let s = self.next_session;
        self.next_session = (self.next_session + 1) % self.sessions.len();
        let first_tx = self.next_tx;
        let mut frames = 0u32;
        for _ in 0..self.cfg.frames_per_datagram.max(1) {
            if self.next_tx >= self.txs.len() {
                break;
            }
            let k = self.frame_txs();
            self.valid_frames += 1;
            let end = (self.next_tx + k).min(self.txs.len());
            self.body.clear();
            let pool = self.pool;
            emit_batch(self.txs[self.next_tx..end].iter().map(|j| pool.tx(*j as usize)), &mut self.body);
            let first_kind = pool.tx(self.txs[self.next_tx] as usize).get(1).copied();
            let ch = if first_kind == Some(Kind::Message as u8) { channel::MESSAGES } else { channel::TRANSACTIONS };
            self.expected.accept(0, (end - self.next_tx) as u64);
            self.next_tx = end;
            self.seal_body(s, ch, out);
            frames += 1;
        }
        self.expected.datagrams += 1;
        self.expected.accept(u64::from(frames), 0);
        if self.cfg.bad > 0.0 {
            // Kept for the next replay.
            self.prev_valid.clear();
            self.prev_valid.extend_from_slice(out);
            self.prev_frames = frames;
        }
        let txs = (self.next_tx - first_tx) as u32;
        Some(Datagram { frames, first_tx, txs, hostile: None, session: self.sessions[s].id() })
    }

    fn frame_txs(&self) -> usize {
        let (a, b) = (self.cfg.txs_per_frame.0.max(1), self.cfg.txs_per_frame.1.max(1));
        if b <= a {
            a
        } else {
            // Cycled over valid frames only, so that hostile frames in
            // between never bias the sizes (the pool is sized by the mean).
            a + (self.valid_frames % (b - a + 1) as u64) as usize
        }
    }

    fn spec(&self, s: usize, ch: u16) -> FrameSpec {
        let compress = match self.cfg.lz4 {
            Lz4::Off => false,
            Lz4::On => true,
            Lz4::Mix => self.frame_i % 2 == 1,
        };
        FrameSpec {
            compress,
            channel: ch,
            stream_seq: self.frame_i as u16,
            ..FrameSpec::tx_batch(self.sessions[s].id())
        }
    }

    /// Seals `self.body` as one frame of session `s` appended to `out`;
    /// returns the frame's offset.
    fn seal_body(&mut self, s: usize, ch: u16, out: &mut Vec<u8>) -> usize {
        let spec = self.spec(s, ch);
        self.frame_i += 1;
        let at = out.len();
        // The body is at most 16384 bytes by construction (the
        // configuration is checked against the datagram size).
        let _ = self.sessions[s].seal_frame(&spec, &self.body, out, &mut self.scratch);
        at
    }

    fn hostile(&mut self, kind: Hostile, out: &mut Vec<u8>) -> Datagram {
        let s = self.next_session;
        self.next_session = (self.next_session + 1) % self.sessions.len();
        let e = &mut self.expected;
        e.datagrams += 1;
        e.hostile[Hostile::ALL.iter().position(|h| *h == kind).unwrap_or(0)] += 1;
        let sent = self.txs[self.next_tx.saturating_sub(1)] as usize;
        let mut frames = 1;
        self.body.clear();
        match kind {
            Hostile::Replayed => {
                out.extend_from_slice(&self.prev_valid);
                frames = self.prev_frames;
                self.expected.drop_frames(DropReason::Replay, u64::from(frames));
            }
            Hostile::Forged => {
                let mut forged = self.pool.tx(self.txs[self.next_tx] as usize).to_vec();
                // The last byte of the signature's R.
                let r_end = tx::signature_range(forged.len()).start + 31;
                forged[r_end] ^= 0x01;
                emit_batch([&forged[..]], &mut self.body);
                self.seal_body(s, channel::TRANSACTIONS, out);
                self.expected.accept_dropping(TxDrop::BadSignature);
            }
            Hostile::Duplicate => {
                emit_batch([self.pool.tx(sent)], &mut self.body);
                self.seal_body(s, channel::TRANSACTIONS, out);
                self.expected.accept_dropping(TxDrop::Duplicate);
            }
            Hostile::BadBatch => {
                // Count 2, one transaction.
                self.body.extend_from_slice(&2u16.to_le_bytes());
                self.body.extend_from_slice(self.pool.tx(sent));
                self.seal_body(s, channel::TRANSACTIONS, out);
                self.expected.drop_frames(DropReason::BadTx, 1);
            }
            _ => {
                emit_batch([self.pool.tx(sent)], &mut self.body);
                let ch = if kind == Hostile::Channel { channel::CONSENSUS + 1 } else { channel::TRANSACTIONS };
                self.seal_body(s, ch, out);
                if kind == Hostile::UnknownSession {
                    // Sealed with a real session's next counter (never one
                    // used before), then addressed to a session the
                    // receiver does not know.
                    out[8..10].copy_from_slice(&UNKNOWN_SESSION.to_be_bytes());
                }
                // Offsets inside the frame: the user data starts after the
                // 1- or 2-byte PER length at offset 13.
                let ud = if out.get(13).is_some_and(|b| b & 0x80 != 0) { 15 } else { 14 };
                let l = out.len();
                match kind {
                    Hostile::Truncated => out.truncate(l / 2),
                    Hostile::BadVersion => out[0] = 4,
                    Hostile::ShortLength => out[2..4].copy_from_slice(&13u16.to_be_bytes()),
                    Hostile::Security => out[ud..ud + 2].copy_from_slice(&FLAG_INFO.to_le_bytes()),
                    Hostile::Tampered => out[l - 1] ^= 0x80,
                    Hostile::Compression => self.reseal_unknown_compression(s, ud, out),
                    _ => {}
                }
                if let Some(r) = kind.frame_drop() {
                    self.expected.drop_frames(r, 1);
                }
            }
        }
        Datagram { frames, first_tx: self.next_tx, txs: 0, hostile: Some(kind), session: self.sessions[s].id() }
    }

    /// Opens the sealed frame in `out`, sets an unknown compressed_type,
    /// and seals it again under the same counter.
    fn reseal_unknown_compression(&mut self, s: usize, ud: usize, out: &mut [u8]) {
        let sess = &self.sessions[s];
        // The counter the frame in `out` was just sealed with.
        let counter = sess.next_counter() - 1;
        let pt_at = ud + 12;
        let (aad, rest) = out.split_at_mut(pt_at);
        if let Ok(n) = sess.key().open_in_place(counter, aad, rest) {
            // compressed_type is byte 15 of the share-data header.
            if let Some(b) = rest.get_mut(15) {
                *b = 0x30;
            }
            self.scratch.clear();
            self.scratch.extend_from_slice(&rest[..n]);
            let tag = sess.key().seal_in_place(counter, aad, &mut self.scratch);
            rest[..n].copy_from_slice(&self.scratch);
            rest[n..n + 16].copy_from_slice(&tag);
        }
    }
}

/// The largest datagram `cfg` can produce from transactions of at most
/// `max_tx` bytes (LZ4 may grow incompressible input slightly).
pub fn max_datagram(cfg: &TrafficConfig, max_tx: usize) -> usize {
    let body = 2 + cfg.txs_per_frame.0.max(cfg.txs_per_frame.1).max(1) * max_tx;
    let wire_body = body + body / 255 + 16;
    // TPKT 4 + X.224 3 + MCS 8 + security 12 + share 18 + tag 16.
    (61 + wire_body) * cfg.frames_per_datagram.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(plan: &Plan, datagrams: &[Vec<u8>]) -> (dataplane::verdict::Counters, u64) {
        let mut fp = dataplane::host::frame_path(plan.network_id);
        for s in &plan.sessions {
            fp.sessions.install(u32::from(s.id), &s.c2r, &s.r2c).unwrap();
        }
        let mut burst = dataplane::Burst::with_capacity(64, 64, 64);
        let mut dups = std::collections::HashSet::new();
        let mut dup = 0;
        for d in datagrams {
            let mut b = d.clone();
            let mut bufs = [&mut b[..]];
            fp.process(&mut bufs, &mut burst);
            for t in &burst.txs {
                if !dups.insert(t.id) {
                    dup += 1;
                }
            }
        }
        (burst.counters, dup)
    }

    /// One key, every hostile kind: no counter is sealed twice (a replay
    /// resends the same bytes, it does not seal again).
    #[test]
    fn no_counter_is_sealed_twice_under_one_key() {
        let plan = Plan::from_seed(8, 1, 1, 4, 1000);
        let pool = plan.pool(40);
        let cfg = TrafficConfig { bad: 0.5, txs_per_frame: (1, 2), frames_per_datagram: 3, lz4: Lz4::Mix };
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, 1 << 40);
        let mut d = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut frames = 0;
        while let Some(info) = g.next(&mut d) {
            if info.is_replay() {
                continue;
            }
            let mut off = 0;
            for _ in 0..info.frames {
                let f = &d[off..];
                let ud = if f[13] & 0x80 != 0 { 15 } else { 14 };
                let counter = u64::from_le_bytes(f[ud + 4..ud + 12].try_into().unwrap());
                assert!(seen.insert(counter), "counter {counter:#x} sealed twice ({:?})", info.hostile);
                frames += 1;
                off += usize::from(u16::from_be_bytes([f[2], f[3]]));
            }
        }
        assert!(frames > 100 && g.expected.hostile.iter().all(|n| *n > 0));
    }

    #[test]
    fn every_hostile_kind_gets_its_verdict() {
        let plan = Plan::from_seed(3, 1, 2, 4, 1000);
        let pool = plan.pool(30);
        let cfg = TrafficConfig { bad: 0.5, txs_per_frame: (1, 3), frames_per_datagram: 2, lz4: Lz4::Mix };
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, start_counter());
        let mut all = Vec::new();
        let mut d = Vec::new();
        while g.next(&mut d).is_some() {
            all.push(d.clone());
        }
        let e = g.expected;
        assert!(e.hostile.iter().all(|n| *n > 0), "{:?}", e.hostile);
        let (mut c, dup) = judge(&plan, &all);
        // The relay path has no deduplication of its own: move what a
        // deduplicating receiver drops.
        c.reclassify(TxDrop::Duplicate, dup);
        assert_eq!(c, e.counts);
        assert!(c.balanced());
        assert_eq!(e.counts.txs_accepted, pool.len() as u64);
    }
}
