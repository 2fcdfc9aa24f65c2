//! The datagram stream: valid TX_BATCH frames from the pool, and, at a
//! chosen fraction, hostile datagrams spread over every drop reason of the
//! spec's order of checks (plus duplicates and replays). Each datagram is
//! built into a caller-owned buffer and added to [`Expected`]: what a
//! correct receiver must count for it. Output-agnostic: UDP, pcap and DPDK
//! outputs all draw from here.
//!
//! Attack shapes ([`Attack`]) are the other kind of unwanted traffic: not
//! one datagram per drop reason, but a flood of one shape (or a few,
//! cycled) at a chosen share of the datagrams, each built to cost the
//! receiver as much work as its verdict allows, and each with a verdict
//! known in advance so that the expected counts stay exact.

use dataplane::backend::BUF_SIZE;
use dataplane::emit::FrameSpec;
use dataplane::session::Sealer;
use dataplane::verdict::{Counters, DropReason, TxDrop};
use dataplane::wire::handshake::{DomainParams, Hello};
use dataplane::wire::mcs::channel;
use dataplane::wire::security::FLAG_INFO;
use dataplane::wire::share;
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
    /// Attack shapes, cycled over the attack datagrams (none: no attack).
    pub attack: Vec<Attack>,
    /// Fraction of datagrams that are attack datagrams, in (0, 1).
    pub attack_share: f64,
    /// The receiver serves channel 1003 (a node with a node key): `hello`
    /// attack datagrams are accepted frames its handshake judges, not
    /// `unsupported_channel`.
    pub handshakes: bool,
    /// Slice `.0` of `.1`: only the transactions of accounts whose index
    /// is `.0` modulo `.1` (several generators sharing a plan's accounts,
    /// one per receiver, none sending another's).
    pub slice: (usize, usize),
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            txs_per_frame: (1, 3),
            frames_per_datagram: 1,
            lz4: Lz4::Mix,
            bad: 0.0,
            attack: Vec::new(),
            attack_share: 0.5,
            handshakes: false,
            slice: (0, 1),
        }
    }
}

/// An attack shape: one datagram of one frame (junk: of no frame), built
/// to cost the receiver work, with the verdict a correct receiver gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// 64 to 1200 random bytes whose first byte is not 3 (TPKT version):
    /// `bad_header`, the rest of the datagram unparsed.
    Junk,
    /// A well-formed sealed frame addressed to a session id (64000 to
    /// 64534) the receiver does not know: `unknown_session`.
    Unknown,
    /// A frame of a real session, with its next counter, carrying as many
    /// transactions as a valid frame at most does, uncompressed, with a
    /// corrupted GCM tag: `auth_failed` (after the whole ciphertext is
    /// authenticated; the replay window does not move).
    Auth,
    /// A validly sealed frame whose transactions are byte-identical copies
    /// of the last transaction sent, as many as fit (in the datagram, or
    /// with LZ4 in the 16384-byte body): every copy `duplicate`.
    Dup,
    /// Validly sealed frames, all from one session (the part's first, which
    /// then carries no valid traffic when the part has another), whose
    /// transactions (as many as a valid frame at most carries) are the last
    /// transaction sent with its amount changed to a value no other
    /// transaction has and its signature kept: each `bad_signature`, after
    /// a full signature check.
    BadSig,
    /// A HELLO-shaped INFO frame on channel 1003 (initiator 0, the spec's
    /// v1.1 handshake body with random keys and signature, the current
    /// time). A node without a node key serves no handshake:
    /// `unsupported_channel`; one with a node key accepts the frame and
    /// hands it to its handshake (`handshake.received`), which refuses it
    /// (`bad_signature`, or a COOKIE under load, or `overload` when the
    /// ring to the control thread is full): never a WELCOME.
    Hello,
}

impl Attack {
    pub const ALL: [Attack; 6] =
        [Attack::Junk, Attack::Unknown, Attack::Auth, Attack::Dup, Attack::BadSig, Attack::Hello];

    /// The shape's name on the command line and in the summary.
    pub const fn name(self) -> &'static str {
        match self {
            Attack::Junk => "junk",
            Attack::Unknown => "unknown",
            Attack::Auth => "auth",
            Attack::Dup => "dup",
            Attack::BadSig => "badsig",
            Attack::Hello => "hello",
        }
    }

    /// Where a correct receiver counts the shape: a frame drop reason or a
    /// transaction drop reason, or for `hello` at a receiver that serves
    /// handshakes (`handshakes`), its handshake items.
    pub const fn verdict(self, handshakes: bool) -> &'static str {
        match self {
            Attack::Hello if handshakes => "handshake.received",
            Attack::Junk => "frames.dropped.bad_header",
            Attack::Unknown => "frames.dropped.unknown_session",
            Attack::Auth => "frames.dropped.auth_failed",
            Attack::Dup => "txs.dropped.duplicate",
            Attack::BadSig => "txs.dropped.bad_signature",
            Attack::Hello => "frames.dropped.unsupported_channel",
        }
    }

    /// Shapes separated by commas or `+` (`junk,unknown`).
    pub fn parse_list(s: &str) -> Result<Vec<Attack>, String> {
        s.split([',', '+'])
            .map(|x| {
                let x = x.trim();
                Attack::ALL.into_iter().find(|a| a.name() == x).ok_or_else(|| {
                    format!("--attack {s}: unknown shape {x:?} (expected {})", Attack::ALL.map(Attack::name).join(", "))
                })
            })
            .collect()
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
    /// Attack datagrams by shape (index as [`Attack::ALL`]).
    pub attack: [u64; Attack::ALL.len()],
    /// Handshake items the receiver's data cores hand to its handshake (a
    /// HELLO, or a COOKIE_ECHO with its HELLO): `handshake.received`.
    pub hellos: u64,
    /// Of those, the ones answered with a WELCOME: `handshake.welcomed`.
    pub welcomed: u64,
}

impl Expected {
    pub fn add(&mut self, o: &Expected) {
        self.datagrams += o.datagrams;
        self.counts.add(&o.counts);
        for (a, b) in self.hostile.iter_mut().zip(o.hostile) {
            *a += b;
        }
        for (a, b) in self.attack.iter_mut().zip(o.attack) {
            *a += b;
        }
        self.hellos += o.hellos;
        self.welcomed += o.welcomed;
    }

    /// Handshake datagrams a client sent a receiver that serves handshakes:
    /// `hellos` HELLO datagrams (one frame each) and `echoes` COOKIE_ECHO
    /// datagrams (the echo and the HELLO again: two frames, one item), of
    /// which `welcomed` were answered with a WELCOME.
    pub fn add_handshakes(&mut self, hellos: u64, echoes: u64, welcomed: u64) {
        self.datagrams += hellos + echoes;
        self.accept(hellos + 2 * echoes, 0);
        self.hellos += hellos + echoes;
        self.welcomed += welcomed;
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
        self.accept_dropping_n(r, 1);
    }

    /// An accepted frame whose `n` transactions are all dropped for `r`.
    fn accept_dropping_n(&mut self, r: TxDrop, n: u64) {
        self.accept(1, n);
        self.counts.reclassify(r, n);
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
            "handshake": {"received": self.hellos, "welcomed": self.welcomed},
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
    /// Attack shape, if it is one.
    pub attack: Option<Attack>,
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
    /// Bresenham accumulator spreading attack datagrams evenly.
    attack_acc: f64,
    attack_i: usize,
    /// Attack transactions with a bad signature so far (each gets its own
    /// amount, so its own id).
    forged: u64,
    /// Valid traffic leaves from sessions `first_valid..` (1 when the
    /// first session is the bad-signature attacker).
    first_valid: usize,
    /// xorshift64 state for junk and HELLO bytes.
    rng: u64,
    body: Vec<u8>,
    scratch: Vec<u8>,
    pub expected: Expected,
}

/// The initiator of `unknown_session` frames: valid, never configured.
pub const UNKNOWN_SESSION: u16 = 64000;

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
        let sessions: Vec<Sealer> = plan
            .sessions
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parts == part)
            // The client end's sending half: this part is the only sealer of
            // its sessions' client-to-relay keys. The first frame takes
            // counter0 + 1.
            .map(|(_, s)| Sealer::new(s.id, &s.c2r, counter0 + 1))
            .collect();
        let (slice, slices) = (cfg.slice.0, cfg.slice.1.max(1));
        let txs = (0..pool.len())
            .filter(|j| {
                let a = j % n;
                a % slices == slice && (a / slices) % parts == part
            })
            .map(|j| j as u32)
            .collect();
        // All hostile would never end: at least one datagram in a thousand is valid.
        let cfg = TrafficConfig {
            bad: cfg.bad.clamp(0.0, 0.999),
            attack_share: if cfg.attack_share.is_finite() { cfg.attack_share.clamp(0.0, 0.999) } else { 0.0 },
            ..cfg.clone()
        };
        let first_valid = usize::from(cfg.attack.contains(&Attack::BadSig) && sessions.len() > 1);
        let rng = (plan.seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(part as u64 * 2 + 1) | 1;
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
            attack_acc: 0.0,
            attack_i: 0,
            forged: 0,
            first_valid,
            rng,
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
        // Attack datagrams start once a valid transaction has been sent
        // (duplicates and forgeries are made from it).
        if !self.cfg.attack.is_empty() && self.next_tx > 0 {
            self.attack_acc += self.cfg.attack_share;
            if self.attack_acc >= 1.0 {
                self.attack_acc -= 1.0;
                let a = self.cfg.attack[self.attack_i % self.cfg.attack.len()];
                self.attack_i += 1;
                return Some(self.attack(a, out));
            }
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
        let s = self.take_session();
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
        Some(Datagram { frames, first_tx, txs, hostile: None, attack: None, session: self.sessions[s].id() })
    }

    /// The next session of the valid rotation.
    fn take_session(&mut self) -> usize {
        let n = self.sessions.len();
        let s = self.next_session.max(self.first_valid.min(n - 1));
        self.next_session = if s + 1 >= n { self.first_valid.min(n - 1) } else { s + 1 };
        s
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn fill_random(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let r = self.random().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }

    /// Builds attack datagram `a` into `out` (empty) and counts it.
    fn attack(&mut self, a: Attack, out: &mut Vec<u8>) -> Datagram {
        self.expected.datagrams += 1;
        self.expected.attack[a as usize] += 1;
        let s = if a == Attack::BadSig { 0 } else { self.take_session() };
        // The last valid transaction sent (there is one: see `next`).
        let last = self.pool.tx(self.txs[self.next_tx - 1] as usize);
        let most = self.cfg.txs_per_frame.0.max(self.cfg.txs_per_frame.1).max(1);
        self.body.clear();
        match a {
            Attack::Junk => {
                let len = 64 + (self.random() % 1137) as usize;
                out.resize(len, 0);
                self.fill_random(out);
                if out[0] == 3 {
                    out[0] = 0x17;
                }
                self.expected.drop_frames(DropReason::BadHeader, 1);
            }
            Attack::Unknown => {
                emit_batch([last], &mut self.body);
                let spec = self.spec(s, channel::TRANSACTIONS);
                self.seal_spec(s, &spec, out);
                // Sealed with a real session's next counter, then addressed
                // to a session the receiver does not know.
                let id = UNKNOWN_SESSION + (self.random() % 535) as u16;
                out[8..10].copy_from_slice(&id.to_be_bytes());
                self.expected.drop_frames(DropReason::UnknownSession, 1);
            }
            Attack::Auth => {
                emit_batch(std::iter::repeat_n(last, most), &mut self.body);
                let spec = FrameSpec { compress: false, ..self.spec(s, channel::TRANSACTIONS) };
                self.seal_spec(s, &spec, out);
                let l = out.len();
                out[l - 1 - (self.random() % 16) as usize] ^= 0x01 << (self.random() % 8);
                self.expected.drop_frames(DropReason::AuthFailed, 1);
            }
            Attack::Dup => {
                let spec = self.spec(s, channel::TRANSACTIONS);
                // 63 bytes of a frame are not body: headers 45, count 2, tag 16.
                let fit = |limit: usize| ((limit.saturating_sub(2)) / last.len()).max(1);
                let mut n = if spec.compress { fit(share::MAX_BODY) } else { fit(BUF_SIZE - 61) };
                emit_batch(std::iter::repeat_n(last, n), &mut self.body);
                self.seal_spec(s, &spec, out);
                if out.len() > BUF_SIZE {
                    // Did not compress enough (never with equal copies):
                    // what fits uncompressed, under a fresh counter.
                    out.clear();
                    n = fit(BUF_SIZE - 61);
                    self.body.clear();
                    emit_batch(std::iter::repeat_n(last, n), &mut self.body);
                    let spec = FrameSpec { compress: false, ..spec };
                    self.seal_spec(s, &spec, out);
                }
                self.expected.accept_dropping_n(TxDrop::Duplicate, n as u64);
            }
            Attack::BadSig => {
                self.scratch.clear();
                self.scratch.extend_from_slice(last);
                let mut forged = std::mem::take(&mut self.scratch);
                self.body.extend_from_slice(&(most as u16).to_le_bytes());
                for _ in 0..most {
                    self.forged += 1;
                    // An amount no pool transaction has: a new id, and the
                    // kept signature no longer matches its message.
                    forged[tx::field::AMOUNT].copy_from_slice(&((1u64 << 63) | self.forged).to_le_bytes());
                    self.body.extend_from_slice(&forged);
                }
                forged.clear();
                self.scratch = forged;
                let spec = self.spec(s, channel::TRANSACTIONS);
                self.seal_spec(s, &spec, out);
                self.expected.accept_dropping_n(TxDrop::BadSignature, most as u64);
            }
            Attack::Hello => {
                let mut keys = [0u8; 128];
                self.fill_random(&mut keys);
                let k = |i: usize| -> [u8; 32] { keys[i * 32..i * 32 + 32].try_into().unwrap_or([0; 32]) };
                let (account, ephemeral) = (k(0), k(1));
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&k(2));
                signature[32..].copy_from_slice(&k(3));
                let timestamp_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let h = Hello { params: DomainParams::default(), account, ephemeral, timestamp_ms, signature };
                self.body.resize(Hello::LEN, 0);
                let _ = h.emit(&mut self.body);
                let spec = FrameSpec {
                    initiator: 0,
                    channel: channel::CONTROL,
                    content_kind: share::kind::HELLO,
                    compress: false,
                    ..FrameSpec::tx_batch(0)
                };
                let _ = dataplane::emit::emit_frame_with(&spec, &self.body, None, out, &mut self.scratch);
                if self.cfg.handshakes {
                    self.expected.accept(1, 0);
                    self.expected.hellos += 1;
                } else {
                    self.expected.drop_frames(DropReason::UnsupportedChannel, 1);
                }
            }
        }
        // Junk is one dropped frame too (the rest of the datagram unparsed).
        Datagram {
            frames: 1,
            first_tx: self.next_tx,
            txs: 0,
            hostile: None,
            attack: Some(a),
            session: self.sessions[s].id(),
        }
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
        self.seal_spec(s, &spec, out)
    }

    /// Seals `self.body` under `spec` as one frame of session `s` appended
    /// to `out`; returns the frame's offset.
    fn seal_spec(&mut self, s: usize, spec: &FrameSpec, out: &mut Vec<u8>) -> usize {
        self.frame_i += 1;
        let at = out.len();
        // The body is at most 16384 bytes by construction (the
        // configuration is checked against the datagram size).
        let _ = self.sessions[s].seal_frame(spec, &self.body, out, &mut self.scratch);
        at
    }

    fn hostile(&mut self, kind: Hostile, out: &mut Vec<u8>) -> Datagram {
        let s = self.take_session();
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
        Datagram {
            frames,
            first_tx: self.next_tx,
            txs: 0,
            hostile: Some(kind),
            attack: None,
            session: self.sessions[s].id(),
        }
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

    /// Every datagram the generator makes, in order.
    fn drain(g: &mut Generator<'_>) -> Vec<Vec<u8>> {
        let (mut all, mut d) = (Vec::new(), Vec::new());
        while g.next(&mut d).is_some() {
            all.push(d.clone());
        }
        all
    }

    /// The frame path's counts for `datagrams`, the duplicates among the
    /// transactions it passed, and the HELLO frames it handed on (with
    /// `handshakes`, channel 1003 served).
    fn judge_with(plan: &Plan, datagrams: &[Vec<u8>], handshakes: bool) -> (dataplane::verdict::Counters, u64, u64) {
        let mut fp = dataplane::host::frame_path(plan.network_id);
        fp.set_handshakes(handshakes);
        for s in &plan.sessions {
            fp.sessions.install(u32::from(s.id), &s.c2r, &s.r2c).unwrap();
        }
        let mut burst = dataplane::Burst::with_capacity(64, 64, 64);
        let mut dups = std::collections::HashSet::new();
        let (mut dup, mut hellos) = (0, 0);
        for d in datagrams {
            let mut b = d.clone();
            let mut bufs = [&mut b[..]];
            fp.process(&mut bufs, &mut burst);
            for t in &burst.txs {
                if !dups.insert(t.id) {
                    dup += 1;
                }
            }
            hellos += burst.control.iter().filter(|c| c.content_kind == share::kind::HELLO).count() as u64;
        }
        (burst.counters, dup, hellos)
    }

    fn judge(plan: &Plan, datagrams: &[Vec<u8>]) -> (dataplane::verdict::Counters, u64) {
        let (c, dup, _) = judge_with(plan, datagrams, false);
        (c, dup)
    }

    /// One key, every hostile kind: no counter is sealed twice (a replay
    /// resends the same bytes, it does not seal again).
    /// Slices of one plan, each split over threads, cover every pool
    /// transaction exactly once, and each account lies in one slice.
    #[test]
    fn slices_share_the_accounts_without_overlap() {
        let plan = Plan::from_seed(8, 4, 1, 12, 1000);
        let pool = plan.pool(5);
        let n = plan.accounts.len();
        let mut seen = vec![0u32; pool.len()];
        for slice in 0..3 {
            let cfg = TrafficConfig { slice: (slice, 3), ..TrafficConfig::default() };
            for part in 0..2 {
                let g = Generator::new(&plan, &pool, &cfg, part, 2, 1 << 40);
                for i in 0..g.remaining() {
                    let j = g.pool_index(i);
                    assert_eq!((j % n) % 3, slice);
                    seen[j] += 1;
                }
            }
        }
        assert!(seen.iter().all(|c| *c == 1), "{seen:?}");
    }

    #[test]
    fn no_counter_is_sealed_twice_under_one_key() {
        let plan = Plan::from_seed(8, 1, 1, 4, 1000);
        let pool = plan.pool(40);
        let cfg = TrafficConfig {
            bad: 0.5,
            txs_per_frame: (1, 2),
            frames_per_datagram: 3,
            lz4: Lz4::Mix,
            ..TrafficConfig::default()
        };
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
        let cfg = TrafficConfig {
            bad: 0.5,
            txs_per_frame: (1, 3),
            frames_per_datagram: 2,
            lz4: Lz4::Mix,
            ..TrafficConfig::default()
        };
        let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, start_counter());
        let all = drain(&mut g);
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

    /// Every attack shape, alone and cycled with others, at several
    /// shares: the frame path's counts equal the expected ones exactly,
    /// each shape lands on its named reason, and the share holds.
    #[test]
    fn every_attack_shape_gets_its_verdict() {
        let plan = Plan::from_seed(5, 1, 3, 6, 1000);
        let pool = plan.pool(40);
        let mut mixes: Vec<Vec<Attack>> = Attack::ALL.iter().map(|a| vec![*a]).collect();
        mixes.push(Attack::ALL.to_vec());
        for (m, attack) in mixes.into_iter().enumerate() {
            for (share, lz4) in [(0.5, Lz4::Mix), (0.2, Lz4::Off), (0.9, Lz4::On)] {
                let cfg = TrafficConfig {
                    txs_per_frame: (1, 3),
                    frames_per_datagram: 1 + m % 2,
                    lz4,
                    attack: attack.clone(),
                    attack_share: share,
                    ..TrafficConfig::default()
                };
                let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, start_counter());
                let (mut all, mut attacks) = (Vec::new(), 0u64);
                let mut d = Vec::new();
                while let Some(info) = g.next(&mut d) {
                    assert!(d.len() <= BUF_SIZE, "{attack:?}: {} bytes", d.len());
                    if let Some(a) = info.attack {
                        attacks += 1;
                        assert!(attack.contains(&a));
                        if a == Attack::BadSig {
                            assert_eq!(info.session, plan.sessions[0].id);
                        }
                    } else if attack.contains(&Attack::BadSig) {
                        // Valid traffic leaves the attacker's session alone.
                        assert_ne!(info.session, plan.sessions[0].id);
                    }
                    all.push(d.clone());
                }
                let e = g.expected;
                let what = format!("{attack:?} share {share}");
                assert_eq!(e.attack.iter().sum::<u64>(), attacks, "{what}");
                let got = attacks as f64 / all.len() as f64;
                assert!((got - share).abs() < 0.02, "{what}: {got}");
                for a in &attack {
                    assert!(e.attack[*a as usize] > 0, "{what}");
                }
                let (mut c, dup) = judge(&plan, &all);
                c.reclassify(TxDrop::Duplicate, dup);
                assert_eq!(c, e.counts, "{what}");
                assert!(c.balanced());
                assert_eq!(e.counts.txs_accepted, pool.len() as u64, "{what}");
                // Each shape's reason carries exactly its datagrams (or, for
                // the transaction shapes, at least one per datagram).
                let n = |a: Attack| e.attack[a as usize];
                let fd = |r: DropReason| c.frame_drops[r as usize];
                assert_eq!(fd(DropReason::BadHeader), n(Attack::Junk), "{what}");
                assert_eq!(fd(DropReason::UnknownSession), n(Attack::Unknown), "{what}");
                assert_eq!(fd(DropReason::AuthFailed), n(Attack::Auth), "{what}");
                assert_eq!(fd(DropReason::UnsupportedChannel), n(Attack::Hello), "{what}");
                assert!(c.tx_drop(TxDrop::Duplicate) >= n(Attack::Dup) * 11, "{what}");
                assert!(c.tx_drop(TxDrop::BadSignature) >= n(Attack::BadSig) * 3, "{what}");
            }
        }
    }

    /// Forged HELLOs at a receiver that serves handshakes: accepted frames,
    /// each one handshake item, none dropped; at one that does not, every
    /// one `unsupported_channel`.
    #[test]
    fn hello_floods_are_handshake_items_where_handshakes_are_served() {
        let plan = Plan::from_seed(6, 1, 2, 4, 1000);
        let pool = plan.pool(30);
        for served in [true, false] {
            let cfg = TrafficConfig {
                attack: vec![Attack::Hello],
                attack_share: 0.8,
                handshakes: served,
                ..TrafficConfig::default()
            };
            let mut g = Generator::new(&plan, &pool, &cfg, 0, 1, start_counter());
            let all = drain(&mut g);
            let e = g.expected;
            let (c, dup, hellos) = judge_with(&plan, &all, served);
            assert_eq!(dup, 0);
            assert_eq!(c, e.counts, "served {served}");
            assert!(c.balanced());
            let sent = e.attack[Attack::Hello as usize];
            assert!(sent > 200, "{sent}");
            let unsupported = c.frame_drops[DropReason::UnsupportedChannel as usize];
            if served {
                assert_eq!((e.hellos, hellos, unsupported), (sent, sent, 0));
                assert_eq!(c.frames_accepted, c.frames_received);
            } else {
                assert_eq!((e.hellos, hellos, unsupported), (0, 0, sent));
            }
            assert_eq!(e.to_json()["handshake"]["received"], e.hellos);
            assert_eq!(e.to_json()["handshake"]["welcomed"], 0);
        }
    }

    #[test]
    fn attack_lists_parse_and_refuse_unknown_shapes() {
        assert_eq!(Attack::parse_list("junk,unknown").unwrap(), vec![Attack::Junk, Attack::Unknown]);
        assert_eq!(Attack::parse_list("dup+badsig").unwrap(), vec![Attack::Dup, Attack::BadSig]);
        for a in Attack::ALL {
            assert_eq!(Attack::parse_list(a.name()).unwrap(), vec![a]);
        }
        let e = Attack::parse_list("junk,flood").unwrap_err();
        assert!(e.contains("\"flood\"") && e.contains("badsig"), "{e}");
        assert!(Attack::parse_list("").is_err());
    }
}
