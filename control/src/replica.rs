//! A validator of a network of several (`docs/CONSENSUS.md`, "A network of
//! validators"): the host side of the BFT engine of [`crate::bft`].
//!
//! - **Mempool.** Transactions the data plane accepted wait here, keyed by
//!   (sender, nonce), until a final block holds them or makes them
//!   impossible (their nonce is used), or until they are stale.
//! - **Proposing.** Asked for a block ([`Output::GetValue`]), the replica
//!   waits for the block interval since the previous block's timestamp (or
//!   a full block), then executes the mempool in (sender, nonce) order on
//!   the committed state inside a journal: the block carries the state
//!   root after its transactions, and the journal stays open (undoable)
//!   until the block is final or another is judged.
//! - **Judging.** A peer's block for the height being voted on is checked
//!   (parent, height, a timestamp within [`MAX_FUTURE_MS`] of this node's
//!   clock and not before its parent's, a producer holding a seat, the
//!   transaction root), executed the same way (its journal left open, so
//!   a decision on it costs no second execution), and its signatures are
//!   checked where this node did not verify the same bytes itself; the
//!   verdict goes to the engine, which pairs it with the signed proposal. Bytes of blocks judged or proposed are durable (the block
//!   spool) before the engine hears of them, since a replayed log may
//!   decide on them.
//! - **Deciding.** A decided block is committed (executed first unless it
//!   is the one left open), its
//!   transactions leave the mempool, and it is handed to the node (store,
//!   receipts). The next height starts once the node reports the block
//!   durable ([`Replica::durable`]), so the log of a height is truncated
//!   only after its block is on disk.
//! - **Forwarding.** This node's clients' transactions go to every peer
//!   (message `Txs`); peers' forwards are checked cheaply, then their
//!   signatures in batches, and wait in the mempool apart from this node's
//!   ledger counters.
//! - **Catch-up.** Every node says which height it votes on (`status`) when
//!   it starts a height and every [`STATUS_EVERY_MS`]; a peer that is
//!   behind gets the final blocks it lacks with their commit certificates
//!   (`decided`), checked against the seats before they are applied.
//!
//! Messages leave through [`Replica::take_outgoing`] and arrive through
//! [`Replica::receive`]; the transport is the node's (validator links over
//! TCP, `crate::bft::link`).
#![deny(clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_malachitebft_core_types::{LinearTimeouts, Round};
use attnet_core::verify::BatchVerifier;
use attnet_core::wire::tx::Transaction;
use rand::TryRng;

use crate::bft::wal::FileWal;
use crate::bft::{Address, BlockId, Config, Ctx, Engine, Height, Message, Output, Sig, ValidatorSet, Wal};
use crate::block::{Block, BlockConfig, Certificate, Extension, Stamp, MAX_EVIDENCE};
use crate::ledger::{LedgerCounters, Refusal};
use crate::merkle::Hash;
use crate::state::State;
use crate::store::tx_id;

/// How far ahead of this node's clock a block's timestamp may be.
pub const MAX_FUTURE_MS: u64 = 2_000;
/// How often a node says which height it votes on.
pub const STATUS_EVERY_MS: u64 = 1_000;
/// Final blocks kept, with their certificates, for peers catching up.
pub const RECENT_DECIDED: usize = 256;
/// Final heights a peer must be ahead by for this node to count itself
/// behind (and time its catch-up).
const BEHIND_BY: u64 = 4;
/// Catch-up blocks kept ahead of their turn: heights past the next one,
/// and bytes in all.
const AHEAD_HEIGHTS: u64 = 4 * CATCH_UP_BATCH;
const AHEAD_BYTES: usize = 64 << 20;
/// Final blocks sent to one peer per status it sends.
const CATCH_UP_BATCH: u64 = 16;
/// Messages of one height kept to send again to a peer that connects.
const MAX_SAID: usize = 64;
/// Blocks kept for heights not voted on yet, or proposals not yet decided.
const MAX_CACHED_BLOCKS: usize = 256;
/// Bytes of those blocks: 32 blocks of the largest size.
pub const MAX_CACHED_BYTES: usize = 32 * crate::bft::codec::MAX_BODY;
/// Blocks kept per sender and height: a proposer proposes once per round,
/// and a validator leads a round of a height once in every n rounds.
pub const MAX_BLOCKS_PER_SENDER: usize = 4;
/// A peer's `status` is answered at most this often per height it names.
pub const SERVE_EVERY_MS: u64 = 1_000;
/// Transactions forwarded in one `Txs` message at most; fewer go at each
/// tick.
pub const FORWARD_BATCH: usize = 1024;
/// `Txs` messages of waiting transactions sent again when a peer connects.
const MAX_MESSAGES_REFORWARDED: usize = 16;
/// Forwarded transactions whose signatures are checked together: a batch
/// this size, or what waits after `FORWARD_VERIFY_WAIT_MS`, or before
/// this node proposes.
pub const FORWARD_VERIFY_BATCH: usize = 256;
pub const FORWARD_VERIFY_WAIT_MS: u64 = 10;
/// Forged transactions a peer may forward within a second before its
/// forwards are refused, unchecked, for `FORGED_COOLDOWN_MS`.
pub const FORGED_PER_S: u32 = 16;
pub const FORGED_COOLDOWN_MS: u64 = 10_000;

/// A message to send: to every peer (`None`) or to one, and its bytes.
pub type Outgoing = (Option<[u8; 32]>, Arc<Vec<u8>>);

/// The transport between validators, as the control thread sees it
/// (validator links over TCP in a node: `crate::bft::link`).
pub trait Peers: Send {
    /// The next whole message received and its sender's node key, if any.
    fn try_recv(&mut self) -> Option<([u8; 32], Vec<u8>)>;
    /// Sends `msg` to peer `to`, or to every connected peer (`None`);
    /// never blocks.
    fn send(&mut self, to: Option<[u8; 32]>, msg: Arc<Vec<u8>>);
    /// Peers with an established link now.
    fn connected(&self) -> usize;
    /// The transport's counters, for the summary.
    fn to_json(&self) -> serde_json::Value;
}

/// How a replica is set up.
#[derive(Clone)]
pub struct ReplicaConfig {
    /// The genesis hash: the network every signature is bound to.
    pub genesis_hash: Hash,
    /// The network id transactions are signed for (a peer's block is
    /// checked with it).
    pub network_id: u32,
    /// This node's key seed (its node key signs votes and proposals).
    pub key: [u8; 32],
    /// The seats.
    pub validators: ValidatorSet,
    /// Block interval and size.
    pub block: BlockConfig,
    /// Most transactions waiting in the mempool (default 65 536).
    pub mempool_cap: usize,
    /// A waiting transaction is dropped after this long (default 30 s).
    pub stale_ms: u64,
    /// The consensus log and the block spool live here; `None` keeps them
    /// in memory (tests of one process only: a restart could equivocate).
    pub dir: Option<PathBuf>,
    /// The engine's timeouts.
    pub timeouts: LinearTimeouts,
    /// Most bytes of blocks kept for heights not final yet (default
    /// [`MAX_CACHED_BYTES`]).
    pub cache_bytes: usize,
}

impl ReplicaConfig {
    /// Defaults for everything but the network, the key and the seats.
    pub fn new(genesis_hash: Hash, network_id: u32, key: [u8; 32], validators: ValidatorSet) -> ReplicaConfig {
        ReplicaConfig {
            genesis_hash,
            network_id,
            key,
            validators,
            block: BlockConfig::default(),
            mempool_cap: 65_536,
            stale_ms: 30_000,
            dir: None,
            timeouts: LinearTimeouts::default(),
            cache_bytes: MAX_CACHED_BYTES,
        }
    }
}

/// Counters an operator reads (`consensus` in the node's summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaCounters {
    /// Blocks this node proposed.
    pub proposed: u64,
    /// Peers' blocks judged valid / invalid.
    pub judged_valid: u64,
    pub judged_invalid: u64,
    /// Blocks final through the engine here.
    pub decided: u64,
    /// Blocks applied from peers' certificates (catch-up).
    pub caught_up: u64,
    /// Final blocks sent to peers behind: from memory, and read back from
    /// the block log (heights older than the last `RECENT_DECIDED`).
    pub served: u64,
    pub served_from_log: u64,
    /// Catch-ups from behind the peers to their height: how many, and the
    /// time the last one took (from the first peer status that showed this
    /// node behind to the final block at that status' height or later).
    pub catch_ups: u64,
    pub last_catch_up_ms: u64,
    /// Messages from peers that did not decode.
    pub bad_messages: u64,
    /// Catch-up blocks whose certificate or execution failed.
    pub bad_decided: u64,
    /// Rounds beyond 0 in which heights were decided (a measure of trouble).
    pub late_rounds: u64,
    /// The highest height a peer said it votes on.
    pub peer_height: u64,
    /// Peers' blocks not kept: beyond a sender's share of a height, or
    /// beyond the cache's bytes with nearer heights holding them.
    pub blocks_refused: u64,
    /// Peers' `status` not answered: the same height asked again within
    /// `SERVE_EVERY_MS`.
    pub status_ignored: u64,
    /// This node's clients' transactions forwarded to the peers, and the
    /// `Txs` messages that carried them.
    pub forwarded_sent: u64,
    pub forward_messages: u64,
    /// Transactions peers forwarded here: `forwarded_received ==
    /// forwarded_admitted + forwarded_known + forwarded_refused +
    /// forwarded_bad_signature + forwarded_blocked`.
    pub forwarded_received: u64,
    /// Admitted to the mempool (signature checked here once).
    pub forwarded_admitted: u64,
    /// Already waiting here, or their nonce already used (final before
    /// the forward arrived): no signature work.
    pub forwarded_known: u64,
    /// Malformed, fee below the minimum, unknown sender, or the mempool
    /// full.
    pub forwarded_refused: u64,
    /// Signatures that failed: the peer forwarded a forgery.
    pub forwarded_bad_signature: u64,
    /// Forwarded by a peer while its forwards were refused (it forwarded
    /// more than `FORGED_PER_S` forgeries within a second), unchecked;
    /// and how many times a peer's forwards were refused so.
    pub forwarded_blocked: u64,
    pub forward_peers_blocked: u64,
    /// Epoch boundaries after which the seats changed.
    pub seat_changes: u64,
    /// Equivocation pairs this node's engine found (kept to be put in a
    /// block), and pairs final blocks carried (each slashed a producer).
    pub evidence_found: u64,
    pub evidence_final: u64,
}

impl ReplicaCounters {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "proposed": self.proposed,
            "judged_valid": self.judged_valid,
            "judged_invalid": self.judged_invalid,
            "decided": self.decided,
            "caught_up": self.caught_up,
            "served": self.served,
            "served_from_log": self.served_from_log,
            "catch_ups": self.catch_ups,
            "last_catch_up_ms": self.last_catch_up_ms,
            "bad_messages": self.bad_messages,
            "bad_decided": self.bad_decided,
            "late_rounds": self.late_rounds,
            "peer_height": self.peer_height,
            "blocks_refused": self.blocks_refused,
            "status_ignored": self.status_ignored,
            "forwarded_sent": self.forwarded_sent,
            "forward_messages": self.forward_messages,
            "forwarded_received": self.forwarded_received,
            "forwarded_admitted": self.forwarded_admitted,
            "forwarded_known": self.forwarded_known,
            "forwarded_refused": self.forwarded_refused,
            "forwarded_bad_signature": self.forwarded_bad_signature,
            "forwarded_blocked": self.forwarded_blocked,
            "forward_peers_blocked": self.forward_peers_blocked,
            "seat_changes": self.seat_changes,
            "evidence_found": self.evidence_found,
            "evidence_final": self.evidence_final,
        })
    }
}

/// The engine's log: a file in the data directory, or nothing.
enum Log {
    File(FileWal),
    Memory,
}

impl Wal for Log {
    fn append(&mut self, height: Height, entry: &arc_malachitebft_core_consensus::Input<Ctx>) -> std::io::Result<()> {
        match self {
            Log::File(f) => f.append(height, entry),
            Log::Memory => Ok(()),
        }
    }
    fn sync(&mut self) -> std::io::Result<()> {
        match self {
            Log::File(f) => f.sync(),
            Log::Memory => Ok(()),
        }
    }
}

/// A waiting transaction's place: (sender, nonce).
type TxKey = ([u8; 32], u64);

struct Entry {
    id: [u8; 32],
    bytes: Vec<u8>,
    since_ms: u64,
    /// A client of this node sent it (counted in the ledger counters,
    /// its id forgotten by the data cores when dropped); else a peer
    /// forwarded it.
    local: bool,
}

/// Transactions waiting for a block, by (sender, nonce).
#[derive(Default)]
struct Mempool {
    by_nonce: BTreeMap<TxKey, Entry>,
    ids: HashSet<[u8; 32]>,
    /// Entries with `local` set.
    local: u64,
}

/// A block at hand for a height not final yet, and who sent it.
struct Cached {
    block: Block,
    from: [u8; 32],
    size: usize,
}

/// A catch-up block kept before its turn: its round, encoding and
/// certificate.
type Ahead = (Round, Vec<u8>, Vec<(Address, Sig)>);

/// A final block with its certificate, for peers catching up.
struct Decided {
    block: Arc<Vec<u8>>,
    round: Round,
    signatures: Vec<(Address, Sig)>,
}

/// One validator's host side of the engine.
pub struct Replica {
    cfg: ReplicaConfig,
    me: [u8; 32],
    engine: Engine<Log>,
    /// Last final block.
    height: u64,
    last_hash: Hash,
    last_ts: u64,
    /// When the last block became final here (this node's clock).
    final_at_ms: u64,
    /// Decided here, waiting to be durable before the next height starts.
    awaiting_durable: Option<u64>,
    /// The engine asked this node to propose.
    asked: Option<(Height, Round)>,
    mempool: Mempool,
    /// Blocks by (height, hash): proposals seen or made, bounded by
    /// count, bytes and per sender.
    blocks: BTreeMap<(u64, Hash), Cached>,
    cached_bytes: usize,
    /// When each peer was last served, and the height it named.
    served_at: HashMap<[u8; 32], (u64, u64)>,
    recent: VecDeque<(u64, Decided)>,
    outgoing: Vec<Outgoing>,
    /// What this node broadcast for the height being voted on (its
    /// proposal, block and votes), sent again to a peer that connects.
    said: Vec<Arc<Vec<u8>>>,
    finals: Vec<Block>,
    dropped_ids: Vec<[u8; 32]>,
    last_status_ms: u64,
    counters: ReplicaCounters,
    ledger: LedgerCounters,
    halted: Option<String>,
    /// Checks the signatures of a peer's block that this node has not
    /// verified itself.
    verifier: BatchVerifier,
    /// The block of the height being voted on that is executed on the
    /// state and not final (this node's proposal or the last block it
    /// judged valid): committed as it is if decided, else rolled back.
    applied: Option<Hash>,
    /// This node's clients' transactions not yet forwarded to the peers.
    forward: Vec<TxKey>,
    /// Transactions peers forwarded, waiting for their signature batch,
    /// their keys, and since when the oldest waits.
    fwd_pending: Vec<(Vec<u8>, TxKey, [u8; 32])>,
    fwd_keys: HashSet<TxKey>,
    /// Forgeries each peer forwarded: (since, count in the second from
    /// `since`, its forwards refused until).
    forgeries: HashMap<[u8; 32], (u64, u32, u64)>,
    fwd_since: u64,
    /// The seats voting on the height after the last final block, and on
    /// the last final block (from the state: they differ right after an
    /// epoch boundary).
    seats: ValidatorSet,
    voted: ValidatorSet,
    /// The last final block's certificate: the next block this node
    /// proposes carries it (the signers' work).
    last_commit: Option<(Round, Vec<(Address, Sig)>)>,
    /// Equivocation pairs found and not yet in a final block, by signer.
    evidence: BTreeMap<[u8; 32], (Vec<u8>, Vec<u8>)>,
    /// Final blocks' certificates for the block log.
    certificates: Vec<Certificate>,
    /// Heights peers asked for that are no longer in `recent`: (peer,
    /// first, last), for the block log's reader.
    from_log: Vec<([u8; 32], u64, u64)>,
    /// Behind the peers since (this node's clock), up to which height.
    behind: Option<(u64, u64)>,
    /// Catch-up blocks that arrived before their turn (a later height, or
    /// while the last one is written): by height, their round, encoding
    /// and certificate, checked when their turn comes.
    ahead: BTreeMap<u64, Ahead>,
    ahead_bytes: usize,
    /// Transactions that arrived since this node last proposed: a full
    /// block's worth makes a proposal due before the interval. (Not the
    /// mempool's size: transactions waiting behind a nonce gap would make
    /// every proposal due at once, and blocks tiny.)
    arrived: usize,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("height", &self.height)
            .field("round_height", &self.round_height())
            .field("mempool", &self.mempool.by_nonce.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// A replica whose last final block is `height` (hash `last_hash`,
    /// timestamp `last_ts`; height 0: the genesis). With a directory the
    /// consensus log is opened and replayed, and spooled blocks are read
    /// back.
    pub fn new(
        cfg: ReplicaConfig,
        state: &mut State,
        height: u64,
        last_hash: Hash,
        last_ts: u64,
        now_ms: u64,
    ) -> Result<Replica, String> {
        let me: [u8; 32] = ed25519_zebra::VerificationKey::from(&ed25519_zebra::SigningKey::from(cfg.key)).into();
        // The seats come from the state (the genesis validators, then each
        // epoch's election); a state without seats (a genesis without a
        // validator list, in tests) votes with the configured ones. A node
        // that holds no seat follows: it judges and applies blocks and
        // votes again once elected.
        let seats = seat_set(state.seats()).unwrap_or_else(|| cfg.validators.clone());
        let voted = seat_set(state.voted()).unwrap_or_else(|| seats.clone());
        let (log, recovered) = match &cfg.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir.join("blocks"))
                    .map_err(|e| format!("consensus directory {}: {e}", dir.display()))?;
                let path = dir.join("consensus.wal");
                let (wal, rec) = FileWal::open(&path).map_err(|e| format!("consensus log {}: {e}", path.display()))?;
                (Log::File(wal), Some(rec))
            }
            None => (Log::Memory, None),
        };
        let engine = Engine::new(
            Config { chain: cfg.genesis_hash, key: cfg.key, validators: seats.clone(), timeouts: cfg.timeouts },
            log,
        );
        let mut r = Replica {
            me,
            engine,
            height,
            last_hash,
            last_ts,
            final_at_ms: now_ms,
            awaiting_durable: None,
            asked: None,
            mempool: Mempool::default(),
            blocks: BTreeMap::new(),
            cached_bytes: 0,
            served_at: HashMap::new(),
            recent: VecDeque::new(),
            outgoing: Vec::new(),
            said: Vec::new(),
            finals: Vec::new(),
            dropped_ids: Vec::new(),
            last_status_ms: 0,
            counters: ReplicaCounters::default(),
            ledger: LedgerCounters::default(),
            halted: None,
            verifier: BatchVerifier::new(cfg.network_id, seed()?),
            applied: None,
            forward: Vec::new(),
            fwd_pending: Vec::new(),
            fwd_keys: HashSet::new(),
            forgeries: HashMap::new(),
            fwd_since: 0,
            seats,
            voted,
            last_commit: None,
            evidence: BTreeMap::new(),
            certificates: Vec::new(),
            from_log: Vec::new(),
            behind: None,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            arrived: 0,
            cfg,
        };
        if let Some(dir) = r.cfg.dir.clone() {
            r.read_spool(&dir.join("blocks"));
        }
        let next = Height(height + 1);
        match recovered {
            Some(rec) if rec.height == next => r.engine.recover(next, &rec.entries, now_ms),
            _ => r.engine.start_height(next, now_ms),
        }
        r.judge_cached(state, now_ms);
        r.status(now_ms);
        r.after_event(state, now_ms);
        Ok(r)
    }

    /// This node's public node key.
    pub fn node_key(&self) -> [u8; 32] {
        self.me
    }

    /// The height being voted on.
    pub fn round_height(&self) -> u64 {
        self.engine.height().0
    }

    pub fn counters(&self) -> ReplicaCounters {
        self.counters
    }

    /// The mempool as ledger counters: `submitted == applied + queued + Σ
    /// dropped`, where `applied` counts this node's transactions that a
    /// final block (any proposer's) holds.
    pub fn ledger_counters(&self) -> LedgerCounters {
        let mut c = self.ledger;
        c.queued = self.mempool.local;
        c
    }

    /// Why the replica stopped, if it did (a log or spool error, a decided
    /// block this node cannot execute).
    pub fn halted(&self) -> Option<&str> {
        self.halted.as_deref().or(self.engine.halted())
    }

    /// The engine's counters.
    pub fn engine_stats(&self) -> crate::bft::Stats {
        self.engine.stats()
    }

    /// A transaction the data plane accepted (signature verified): it waits
    /// for a block. Refused: a copy already waiting or another transaction
    /// with its (sender, nonce) (`bad_nonce`), a malformed one, a fee below
    /// the minimum, a full mempool (`nonce_gap`, as a full gap queue).
    pub fn submit(&mut self, state: &State, min_fee: u64, tx: &[u8], now_ms: u64) -> Result<(), Refusal> {
        self.ledger.submitted += 1;
        let refuse = |c: &mut LedgerCounters, r: Refusal| {
            c.count(r);
            Err(r)
        };
        let Ok(t) = Transaction::new_checked(tx) else { return refuse(&mut self.ledger, Refusal::Malformed) };
        if t.fee() < min_fee {
            return refuse(&mut self.ledger, Refusal::FeeTooLow);
        }
        let Some(acct) = state.account(&t.from()) else { return refuse(&mut self.ledger, Refusal::NoAccount) };
        let key = (t.from(), t.nonce());
        if t.nonce() <= acct.nonce {
            return refuse(&mut self.ledger, Refusal::BadNonce);
        }
        if let Some(e) = self.mempool.by_nonce.get_mut(&key) {
            // A peer forwarded this very transaction first: it is this
            // node's client's now too (its RECEIPT goes out when final).
            if !e.local && e.bytes == tx {
                e.local = true;
                self.mempool.local += 1;
                return Ok(());
            }
            return refuse(&mut self.ledger, Refusal::BadNonce);
        }
        if self.mempool.by_nonce.len() >= self.cfg.mempool_cap {
            return refuse(&mut self.ledger, Refusal::NonceGap);
        }
        let id = tx_id(tx);
        self.mempool.ids.insert(id);
        self.mempool.by_nonce.insert(key, Entry { id, bytes: tx.to_vec(), since_ms: now_ms, local: true });
        self.mempool.local += 1;
        self.arrived += 1;
        self.forward.push(key);
        if self.forward.len() >= FORWARD_BATCH {
            self.flush_forward();
        }
        Ok(())
    }

    /// Sends this node's clients' new transactions to every peer, in
    /// messages of at most `FORWARD_BATCH`.
    fn flush_forward(&mut self) {
        for chunk in self.forward.chunks(FORWARD_BATCH) {
            let txs = chunk.iter().filter_map(|k| self.mempool.by_nonce.get(k)).map(|e| e.bytes.as_slice());
            let (bytes, n) = crate::bft::codec::encode_txs(txs);
            if n > 0 {
                self.counters.forwarded_sent += n as u64;
                self.counters.forward_messages += 1;
                self.outgoing.push((None, Arc::new(bytes)));
            }
        }
        self.forward.clear();
    }

    /// Transactions a peer forwarded: those new here are checked (fee,
    /// account, nonce, then their signatures in one batch) and wait for a
    /// block like this node's own, without counting in its ledger
    /// counters; they are not forwarded again.
    fn on_txs(&mut self, state: &State, from: [u8; 32], txs: Vec<Vec<u8>>, now_ms: u64) {
        let c = &mut self.counters;
        c.forwarded_received += txs.len() as u64;
        if self.forgeries.get(&from).is_some_and(|f| now_ms < f.2) {
            c.forwarded_blocked += txs.len() as u64;
            return;
        }
        let min_fee = state.config().min_fee;
        for tx in txs {
            let Ok(t) = Transaction::new_checked(&tx) else {
                c.forwarded_refused += 1;
                continue;
            };
            let key = (t.from(), t.nonce());
            let acct = state.account(&t.from());
            let known = self.mempool.by_nonce.contains_key(&key)
                || self.fwd_keys.contains(&key)
                || acct.is_some_and(|a| t.nonce() <= a.nonce);
            if known {
                c.forwarded_known += 1;
            } else if t.fee() < min_fee
                || acct.is_none()
                || self.mempool.by_nonce.len() + self.fwd_pending.len() >= self.cfg.mempool_cap
            {
                c.forwarded_refused += 1;
            } else {
                if self.fwd_pending.is_empty() {
                    self.fwd_since = now_ms;
                }
                self.fwd_keys.insert(key);
                self.fwd_pending.push((tx, key, from));
            }
        }
        if self.fwd_pending.len() >= FORWARD_VERIFY_BATCH {
            self.verify_forwarded(state, now_ms);
        }
    }

    /// Checks the signatures of the forwarded transactions waiting for
    /// them, in one batch, and admits the good ones that are still new.
    fn verify_forwarded(&mut self, state: &State, now_ms: u64) {
        if self.fwd_pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.fwd_pending);
        self.fwd_keys.clear();
        self.verifier.clear();
        for (tx, _, _) in &pending {
            self.verifier.queue(tx);
        }
        let ok = self.verifier.verify().to_vec();
        for ((tx, key, from), good) in pending.into_iter().zip(ok) {
            let used = state.account(&key.0).is_some_and(|a| key.1 <= a.nonce);
            if !good {
                self.counters.forwarded_bad_signature += 1;
                self.forged_by(from, now_ms);
            } else if used || self.mempool.by_nonce.contains_key(&key) {
                self.counters.forwarded_known += 1;
            } else if self.mempool.by_nonce.len() >= self.cfg.mempool_cap {
                self.counters.forwarded_refused += 1;
            } else {
                let id = tx_id(&tx);
                self.mempool.ids.insert(id);
                self.mempool.by_nonce.insert(key, Entry { id, bytes: tx, since_ms: now_ms, local: false });
                self.counters.forwarded_admitted += 1;
                self.arrived += 1;
            }
        }
    }

    /// Peer `from` forwarded a forgery (an honest validator forwards only
    /// what its own data plane verified): past `FORGED_PER_S` within a
    /// second, its forwards are refused unchecked for `FORGED_COOLDOWN_MS`.
    fn forged_by(&mut self, from: [u8; 32], now_ms: u64) {
        let f = self.forgeries.entry(from).or_insert((now_ms, 0, 0));
        if now_ms.saturating_sub(f.0) >= 1_000 {
            *f = (now_ms, 0, f.2);
        }
        f.1 += 1;
        if f.1 > FORGED_PER_S && now_ms >= f.2 {
            f.2 = now_ms + FORGED_COOLDOWN_MS;
            self.counters.forward_peers_blocked += 1;
            tracing::warn!(
                "validator {} forwarded more than {FORGED_PER_S} forged transactions in a second: its forwards are \
                 refused for {} s",
                hex::encode(from),
                FORGED_COOLDOWN_MS / 1000
            );
        }
    }

    /// Ids of waiting transactions dropped since the last call (stale,
    /// refused when a block was built, or made impossible by a final block),
    /// so the node can forget them.
    pub fn take_dropped(&mut self, out: &mut Vec<[u8; 32]>) {
        out.append(&mut self.dropped_ids);
    }

    /// Drops every waiting transaction (shutdown), counted as `nonce_gap`.
    pub fn drop_all(&mut self) {
        for (_, e) in std::mem::take(&mut self.mempool.by_nonce) {
            if e.local {
                self.ledger.count(Refusal::NonceGap);
                self.dropped_ids.push(e.id);
            }
        }
        self.mempool.ids.clear();
        self.mempool.local = 0;
        self.counters.forwarded_refused += self.fwd_pending.len() as u64;
        self.fwd_pending.clear();
        self.fwd_keys.clear();
    }

    /// The node's store has every block up to `height` on disk (or keeps
    /// none: `u64::MAX`).
    pub fn durable(&mut self, state: &mut State, height: u64, now_ms: u64) {
        if self.awaiting_durable.is_some_and(|h| h <= height) {
            self.awaiting_durable = None;
            self.engine.start_height(Height(self.height + 1), now_ms);
            self.judge_cached(state, now_ms);
            // A catch-up block already here goes next; the status asking
            // for more waits until those at hand are used.
            let next = self.height + 1;
            while let Some((h, (_, body, _))) = self.ahead.first_key_value() {
                if *h >= next {
                    break;
                }
                self.ahead_bytes -= body.len();
                self.ahead.pop_first();
            }
            if let Some((round, body, signatures)) = self.ahead.remove(&next) {
                self.ahead_bytes -= body.len();
                self.on_decided(state, next, round, &body, signatures, now_ms);
            }
            if self.awaiting_durable.is_none() {
                self.status(now_ms);
            }
            self.after_event(state, now_ms);
        }
    }

    /// Judges the blocks already at hand for the height being voted on.
    fn judge_cached(&mut self, state: &mut State, now_ms: u64) {
        let next = self.height + 1;
        let keys: Vec<_> = self.blocks.range((next, [0; 32])..=(next, [0xff; 32])).map(|(k, _)| *k).collect();
        for k in keys {
            self.judge(state, k, now_ms);
        }
    }

    /// A message from peer `from` (its node key, authenticated by the link).
    pub fn receive(&mut self, state: &mut State, from: [u8; 32], bytes: &[u8], now_ms: u64) {
        if self.halted().is_some() {
            return;
        }
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.counters.bad_messages += 1;
                return;
            }
        };
        match msg {
            Message::Block { height, body } => self.on_block(state, from, height.0, &body, now_ms),
            Message::Status { height } => self.on_status(from, height.0, now_ms),
            Message::Txs { txs } => self.on_txs(state, from, txs, now_ms),
            Message::Decided { height, round, body, signatures } => {
                self.on_decided(state, height.0, round, &body, signatures, now_ms)
            }
            m => self.engine.receive(m, now_ms),
        }
        self.after_event(state, now_ms);
    }

    /// Time passed: timers, the block interval, stale transactions, status.
    pub fn tick(&mut self, state: &mut State, now_ms: u64) {
        if self.halted().is_some() {
            return;
        }
        self.expire(now_ms);
        self.flush_forward();
        if now_ms.saturating_sub(self.fwd_since) >= FORWARD_VERIFY_WAIT_MS {
            self.verify_forwarded(state, now_ms);
        }
        self.engine.tick(now_ms);
        if now_ms.saturating_sub(self.last_status_ms) >= STATUS_EVERY_MS {
            self.status(now_ms);
        }
        self.after_event(state, now_ms);
    }

    /// Messages to send: to every peer (`None`) or to one.
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outgoing)
    }

    /// Blocks that became final (executed and committed on `state`), in
    /// height order.
    pub fn take_finals(&mut self) -> Vec<Block> {
        std::mem::take(&mut self.finals)
    }

    fn after_event(&mut self, state: &mut State, now_ms: u64) {
        self.handle_outputs(state, now_ms);
        self.maybe_propose(state, now_ms);
    }

    fn handle_outputs(&mut self, state: &mut State, now_ms: u64) {
        loop {
            let outs = self.engine.drain();
            if outs.is_empty() {
                break;
            }
            for o in outs {
                match o {
                    Output::Broadcast(m) => self.send(None, &m),
                    Output::GetValue { height, round } => self.asked = Some((height, round)),
                    Output::Restream { height, value, .. } => {
                        if let Some(Cached { block: b, .. }) = self.blocks.get(&(height.0, value.0)) {
                            let m = block_message(b);
                            self.send(None, &m);
                        }
                    }
                    Output::Decided { height, round, value, signatures, evidence, .. } => {
                        for (a, b) in evidence {
                            let Some(signer) = crate::bft::codec::signer(&a) else { continue };
                            if self.evidence.len() < 64 && !self.evidence.contains_key(&signer) {
                                self.counters.evidence_found += 1;
                                self.evidence.insert(signer, (a, b));
                            }
                        }
                        match self.blocks.get(&(height.0, value.0)).map(|c| c.block.clone()) {
                            Some(b) => self.commit(state, b, round, signatures, now_ms, false),
                            // The block never arrived: ask for it (peers
                            // answer a lower status with decided blocks).
                            None => self.status(now_ms),
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, to: Option<[u8; 32]>, m: &Message) {
        let bytes = Arc::new(m.encode());
        let this_height = matches!(m, Message::Proposal(..) | Message::Vote(..) | Message::Block { .. });
        if to.is_none() && this_height && self.said.len() < MAX_SAID {
            self.said.push(bytes.clone());
        }
        self.outgoing.push((to, bytes));
    }

    /// A peer connected (or reconnected): what this node said for the
    /// height being voted on goes out again, and its status, so that a
    /// message sent before the link was up is not lost for the round.
    pub fn peer_connected(&mut self, now_ms: u64) {
        for m in &self.said {
            self.outgoing.push((None, m.clone()));
        }
        // This node's clients' waiting transactions go out again too (a
        // forward sent while the link was down was dropped); peers that
        // have them count them as known.
        self.forward.clear();
        let local = self.mempool.by_nonce.iter().filter(|(_, e)| e.local).map(|(k, _)| *k);
        self.forward.extend(local.take(MAX_MESSAGES_REFORWARDED * FORWARD_BATCH));
        self.flush_forward();
        self.status(now_ms);
    }

    fn status(&mut self, now_ms: u64) {
        self.last_status_ms = now_ms;
        let h = if self.awaiting_durable.is_some() { self.height } else { self.height + 1 };
        self.send(None, &Message::Status { height: Height(h) });
    }

    fn expire(&mut self, now_ms: u64) {
        let stale = self.cfg.stale_ms;
        let old: Vec<_> = self
            .mempool
            .by_nonce
            .iter()
            .filter(|(_, e)| now_ms.saturating_sub(e.since_ms) > stale)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            self.drop_entry(&k, Refusal::NonceGap);
        }
    }

    fn drop_entry(&mut self, key: &TxKey, why: Refusal) {
        if let Some(e) = self.mempool.by_nonce.remove(key) {
            self.mempool.ids.remove(&e.id);
            if e.local {
                self.mempool.local -= 1;
                self.ledger.count(why);
                self.dropped_ids.push(e.id);
            }
        }
    }

    /// Proposes when asked, once the interval since the last final block
    /// has passed or a block's worth of transactions waits.
    fn maybe_propose(&mut self, state: &mut State, now_ms: u64) {
        let Some((height, round)) = self.asked else { return };
        if height != self.engine.height() || height.0 != self.height + 1 {
            self.asked = None;
            return;
        }
        // The interval counts from the previous block's timestamp (its
        // proposal), so that a height's voting overlaps the next block's
        // filling; this node's own clock bounds a proposer's that runs ahead.
        let since = self.final_at_ms.min(self.last_ts);
        let due = now_ms >= since.saturating_add(self.cfg.block.interval_ms)
            || self.arrived >= self.cfg.block.max_txs.max(1) as usize;
        if !due {
            return;
        }
        self.asked = None;
        self.arrived = 0;
        self.verify_forwarded(state, now_ms);
        let Some(block) = self.build(state, now_ms) else { return };
        let id = block.hash();
        if let Err(e) = self.spool(&block) {
            self.halted = Some(format!("block spool: {e}"));
            return;
        }
        let m = block_message(&block);
        self.send(None, &m);
        self.remember_block(block, self.me);
        self.counters.proposed += 1;
        self.engine.propose(height, round, BlockId(id), now_ms);
        self.handle_outputs(state, now_ms);
    }

    /// Executes waiting transactions in (sender, nonce) order on `state`
    /// inside a journal left open (rolled back if another block is judged
    /// or decided): the block and its state root.
    fn build(&mut self, state: &mut State, now_ms: u64) -> Option<Block> {
        self.unapply(state);
        let height = self.height + 1;
        let max = self.cfg.block.max_txs.max(1) as usize;
        let min_fee = state.config().min_fee;
        let mut chosen: Vec<([u8; 32], u64)> = Vec::new();
        let mut refused: Vec<(([u8; 32], u64), Refusal)> = Vec::new();
        let mut fees = 0u64;
        state.begin();
        let mut skip: Option<[u8; 32]> = None;
        for (key, e) in &self.mempool.by_nonce {
            if chosen.len() >= max {
                break;
            }
            if skip == Some(key.0) {
                continue;
            }
            let Ok(t) = Transaction::new_checked(e.bytes.as_slice()) else {
                refused.push((*key, Refusal::Malformed));
                continue;
            };
            let next = state.account(&key.0).map_or(0, |a| a.nonce) + 1;
            if key.1 < next {
                refused.push((*key, Refusal::BadNonce));
                continue;
            }
            if key.1 > next {
                // A gap: this sender's later transactions wait.
                skip = Some(key.0);
                continue;
            }
            if t.fee() < min_fee {
                refused.push((*key, Refusal::FeeTooLow));
                skip = Some(key.0);
                continue;
            }
            match state.execute(&t) {
                Ok(()) => {
                    fees = fees.saturating_add(t.fee());
                    chosen.push(*key);
                }
                Err(r) => {
                    refused.push((*key, r));
                    skip = Some(key.0);
                }
            }
        }
        let ext = self.extension(state);
        state.apply_extension(&ext);
        state.end_block(height, Some(self.me), fees);
        let state_root = state.root();
        for (k, r) in refused {
            self.drop_entry(&k, r);
        }
        let txs = chosen.iter().filter_map(|k| self.mempool.by_nonce.get(k)).map(|e| e.bytes.as_slice());
        let ts = now_ms.max(self.last_ts);
        let b = Block::new(height, self.last_hash, ts, Stamp { producer: self.me, state_root }, txs)
            .and_then(|b| b.with_consensus(self.seats.hash(), ext));
        match &b {
            Some(b) => self.applied = Some(b.hash()),
            None => {
                state.rollback();
            }
        }
        b
    }

    /// What this node's next block carries for the consensus: the last
    /// final block's certificate, and the equivocation found whose signer
    /// is still a producer.
    fn extension(&self, state: &State) -> Extension {
        let commit = self.last_commit.as_ref().and_then(|(round, sigs)| {
            let r = round.as_u32()?;
            Some((r, sigs.iter().map(|(a, s)| (a.0, s.0)).collect()))
        });
        let evidence = self
            .evidence
            .iter()
            .filter(|(signer, _)| state.producer_of(signer).is_some())
            .take(MAX_EVIDENCE)
            .map(|(_, pair)| pair.clone())
            .collect();
        Extension { commit, evidence }
    }

    /// Whether what block `b` carries for the consensus holds: the commit
    /// of the last final block, if carried, is a certificate of the seats
    /// that voted on it; each evidence pair proves a distinct producer
    /// equivocated at a height not above `b`'s.
    fn extension_holds(&self, state: &State, b: &Block) -> bool {
        let ext = b.extension();
        if let Some((round, sigs)) = &ext.commit {
            let sigs: Vec<(Address, Sig)> = sigs.iter().map(|(a, s)| (Address(*a), Sig(*s))).collect();
            let ok = self.height > 0
                && self.engine.verify_commit_of(
                    &self.voted,
                    Height(self.height),
                    Round::new(*round),
                    BlockId(self.last_hash),
                    &sigs,
                );
            if !ok {
                return false;
            }
        }
        let mut signers = HashSet::new();
        ext.evidence.iter().all(|(a, x)| {
            crate::bft::equivocation(&self.cfg.genesis_hash, a, x).is_some_and(|(who, h)| {
                h.0 <= b.header().height && state.producer_of(&who.0).is_some() && signers.insert(who.0)
            })
        })
    }

    /// Undoes the block left executed on the state, if any.
    fn unapply(&mut self, state: &mut State) {
        if self.applied.take().is_some() {
            state.rollback();
        }
    }

    /// Keeps block `b` from `from` (this node for its own) unless that
    /// sender has its share of the height already, or the cache is full of
    /// blocks no farther than it: the farthest heights give way first.
    fn remember_block(&mut self, b: Block, from: [u8; 32]) {
        let height = b.header().height;
        let key = (height, b.hash());
        if self.blocks.contains_key(&key) {
            return;
        }
        let of_sender = self.blocks.range((height, [0; 32])..=(height, [0xff; 32])).filter(|(_, c)| c.from == from);
        if of_sender.count() >= MAX_BLOCKS_PER_SENDER {
            self.counters.blocks_refused += 1;
            return;
        }
        let size = b.mem_size();
        while self.blocks.len() >= MAX_CACHED_BLOCKS || self.cached_bytes + size > self.cfg.cache_bytes {
            match self.blocks.keys().next_back().copied().filter(|far| far.0 > height) {
                Some(far) => self.forget_block(&far),
                None => {
                    self.counters.blocks_refused += 1;
                    return;
                }
            }
        }
        self.cached_bytes += size;
        self.blocks.insert(key, Cached { block: b, from, size });
    }

    fn forget_block(&mut self, key: &(u64, Hash)) {
        if let Some(c) = self.blocks.remove(key) {
            self.cached_bytes -= c.size;
        }
    }

    fn on_block(&mut self, state: &mut State, from: [u8; 32], height: u64, body: &[u8], now_ms: u64) {
        if height <= self.height || height > self.height + 3 {
            return;
        }
        let Some(b) = Block::decode(body) else {
            self.counters.bad_messages += 1;
            return;
        };
        if b.header().height != height {
            self.counters.bad_messages += 1;
            return;
        }
        let key = (height, b.hash());
        if self.blocks.contains_key(&key) {
            return;
        }
        self.remember_block(b, from);
        if height == self.height + 1 && self.awaiting_durable.is_none() {
            self.judge(state, key, now_ms);
        }
    }

    /// Whether every transaction of `b` has a valid signature: those this
    /// node's data plane verified (the same bytes wait in its mempool) are
    /// not checked again, the others in one batch.
    fn signatures_hold(&mut self, b: &Block) -> bool {
        self.verifier.clear();
        for tx in b.txs() {
            let known = Transaction::new_checked(tx)
                .ok()
                .and_then(|t| self.mempool.by_nonce.get(&(t.from(), t.nonce())))
                .is_some_and(|e| e.bytes == tx);
            if !known {
                self.verifier.queue(tx);
            }
        }
        self.verifier.is_empty() || self.verifier.verify().iter().all(|ok| *ok)
    }

    /// Judges block `key` of the height being voted on and tells the engine.
    fn judge(&mut self, state: &mut State, key: (u64, Hash), now_ms: u64) {
        if self.engine.has_verdict(Height(key.0), BlockId(key.1)) {
            return;
        }
        let Some(b) = self.blocks.get(&key).map(|c| c.block.clone()) else { return };
        let mut valid = self.check(&b, now_ms) && self.extension_holds(state, &b);
        if valid {
            // Executed on the state and left there until another block is
            // judged or one is decided: the decision then costs no second
            // execution.
            self.unapply(state);
            valid = state.apply_block(&b).is_ok();
            if valid && !self.signatures_hold(&b) {
                state.rollback();
                valid = false;
            }
            if valid {
                self.applied = Some(b.hash());
            }
        }
        if valid {
            if let Err(e) = self.spool(&b) {
                self.halted = Some(format!("block spool: {e}"));
                return;
            }
            self.counters.judged_valid += 1;
        } else {
            self.counters.judged_invalid += 1;
        }
        self.engine.block_judged(Height(key.0), BlockId(key.1), valid, now_ms);
    }

    /// Whether `b` may follow the last final block: its links, clock
    /// bounds, producer and transaction root (its execution and signatures
    /// are checked by the caller).
    fn check(&self, b: &Block, now_ms: u64) -> bool {
        let h = b.header();
        if h.height != self.height + 1
            || h.parent != self.last_hash
            || h.timestamp_ms < self.last_ts
            || h.timestamp_ms > now_ms.saturating_add(MAX_FUTURE_MS)
            || self.seats.get(&Address(h.producer)).is_none()
            || h.validator_set_hash != self.seats.hash()
            || !b.is_consistent()
        {
            return false;
        }
        true
    }

    /// Makes `b` final: executes and commits it, updates the mempool, and
    /// waits for it to be durable before the next height.
    fn commit(
        &mut self,
        state: &mut State,
        b: Block,
        round: Round,
        signatures: Vec<(Address, Sig)>,
        now_ms: u64,
        caught_up: bool,
    ) {
        let h = b.header().height;
        if h != self.height + 1 {
            return;
        }
        if self.applied == Some(b.hash()) {
            self.applied = None;
        } else {
            self.unapply(state);
            if let Err(e) = state.apply_block(&b) {
                self.halted = Some(format!("final block {h} does not execute here: {e:?}"));
                return;
            }
        }
        state.commit_oldest();
        if let Some(r) = round.as_u32() {
            let signatures = signatures.iter().map(|(a, s)| (a.0, s.0)).collect();
            self.certificates.push(Certificate { height: h, round: r, signatures });
        }
        if let Some((since, target)) = self.behind {
            if h >= target {
                self.behind = None;
                self.counters.catch_ups += 1;
                self.counters.last_catch_up_ms = now_ms.saturating_sub(since);
            }
        }
        self.last_commit = Some((round, signatures.clone()));
        self.counters.evidence_final += b.extension().evidence.len() as u64;
        self.evidence.retain(|signer, _| state.producer_of(signer).is_some());
        if let Some(voted) = seat_set(state.voted()) {
            self.voted = voted;
        }
        if let Some(next) = seat_set(state.seats()) {
            if next.hash() != self.seats.hash() {
                self.counters.seat_changes += 1;
                self.engine.set_validators(next.clone());
                self.seats = next;
            }
        }
        for tx in b.txs() {
            let Ok(t) = Transaction::new_checked(tx) else { continue };
            let key = (t.from(), t.nonce());
            if let Some(e) = self.mempool.by_nonce.remove(&key) {
                self.mempool.ids.remove(&e.id);
                if !e.local {
                    continue;
                }
                self.mempool.local -= 1;
                if e.id == tx_id(tx) {
                    self.ledger.applied += 1;
                } else {
                    self.ledger.count(Refusal::BadNonce);
                    self.dropped_ids.push(e.id);
                }
            }
        }
        if caught_up {
            self.counters.caught_up += 1;
        } else {
            self.counters.decided += 1;
            if round.as_u32().is_some_and(|r| r > 0) {
                self.counters.late_rounds += 1;
            }
        }
        self.height = h;
        self.last_hash = b.hash();
        self.last_ts = b.header().timestamp_ms;
        self.final_at_ms = now_ms;
        self.asked = None;
        self.said.clear();
        self.blocks.retain(|k, _| k.0 > h);
        self.cached_bytes = self.blocks.values().map(|c| c.size).sum();
        self.unspool_below(h + 1);
        let mut bytes = Vec::new();
        b.encode_into(&mut bytes);
        self.recent.push_back((h, Decided { block: Arc::new(bytes), round, signatures }));
        while self.recent.len() > RECENT_DECIDED {
            self.recent.pop_front();
        }
        self.finals.push(b);
        self.awaiting_durable = Some(h);
    }

    fn on_status(&mut self, from: [u8; 32], theirs: u64, now_ms: u64) {
        self.counters.peer_height = self.counters.peer_height.max(theirs);
        // The peer votes on `theirs`: everything below it is final there.
        // A height or two behind is the ordinary lag of a node waiting for
        // its disk; more is a catch-up, timed.
        if theirs > self.height + 1 + BEHIND_BY {
            let target = theirs - 1;
            let since = self.behind.map_or(now_ms, |(s, _)| s);
            let was = self.behind.map_or(0, |(_, t)| t);
            self.behind = Some((since, target.max(was)));
        }
        if theirs == 0 || theirs > self.height {
            return;
        }
        // Once per peer and height a second: a peer repeating its status
        // gets no more than one answer for it.
        if let Some(&(h, at)) = self.served_at.get(&from) {
            if h == theirs && now_ms.saturating_sub(at) < SERVE_EVERY_MS {
                self.counters.status_ignored += 1;
                return;
            }
        }
        self.served_at.insert(from, (theirs, now_ms));
        let end = theirs.saturating_add(CATCH_UP_BATCH).min(self.height + 1);
        // Heights older than those kept in memory come from the block log.
        let oldest = self.recent.front().map_or(end, |(h, _)| *h).min(end);
        if theirs < oldest {
            self.from_log.push((from, theirs, oldest - 1));
        }
        for h in theirs.max(oldest)..end {
            let Some((_, d)) = self.recent.iter().find(|(x, _)| *x == h) else { continue };
            let m = Message::Decided {
                height: Height(h),
                round: d.round,
                body: d.block.to_vec(),
                signatures: d.signatures.clone(),
            };
            self.send(Some(from), &m);
            self.counters.served += 1;
        }
    }

    /// Final blocks' certificates since the last call, in height order,
    /// for the block log (after their blocks).
    pub fn take_certificates(&mut self) -> Vec<Certificate> {
        std::mem::take(&mut self.certificates)
    }

    /// Heights peers asked for that only the block log holds: (peer,
    /// first, last).
    pub fn take_from_log(&mut self) -> Vec<([u8; 32], u64, u64)> {
        std::mem::take(&mut self.from_log)
    }

    /// Sends `peer` final blocks read back from the block log, with their
    /// certificates.
    pub fn serve_from_log(&mut self, peer: [u8; 32], blocks: Vec<(Vec<u8>, Certificate)>) {
        for (body, c) in blocks {
            let m = Message::Decided {
                height: Height(c.height),
                round: Round::new(c.round),
                body,
                signatures: c.signatures.into_iter().map(|(a, s)| (Address(a), Sig(s))).collect(),
            };
            self.send(Some(peer), &m);
            self.counters.served += 1;
            self.counters.served_from_log += 1;
        }
    }

    fn on_decided(
        &mut self,
        state: &mut State,
        height: u64,
        round: Round,
        body: &[u8],
        signatures: Vec<(Address, Sig)>,
        now_ms: u64,
    ) {
        let next = self.height + 1;
        if height < next || height > next + AHEAD_HEIGHTS {
            return;
        }
        if height > next || self.awaiting_durable.is_some() {
            if !self.ahead.contains_key(&height) && self.ahead_bytes + body.len() <= AHEAD_BYTES {
                self.ahead_bytes += body.len();
                self.ahead.insert(height, (round, body.to_vec(), signatures));
            }
            return;
        }
        let Some(b) = Block::decode(body) else {
            self.counters.bad_decided += 1;
            return;
        };
        let id = BlockId(b.hash());
        if b.header().height != height
            || b.header().parent != self.last_hash
            || !b.is_consistent()
            || !self.engine.verify_commit(Height(height), round, id, &signatures)
        {
            self.counters.bad_decided += 1;
            return;
        }
        self.commit(state, b, round, signatures, now_ms, true);
    }

    /// Writes `b` to the block spool and makes it durable.
    fn spool(&self, b: &Block) -> std::io::Result<()> {
        let Some(dir) = &self.cfg.dir else { return Ok(()) };
        let dir = dir.join("blocks");
        let name = format!("{:020}-{}.blk", b.header().height, hex::encode(b.hash()));
        let path = dir.join(&name);
        if path.exists() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        b.encode_into(&mut bytes);
        let tmp = dir.join(format!("{name}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()
    }

    fn unspool_below(&self, height: u64) {
        let Some(dir) = &self.cfg.dir else { return };
        let Ok(rd) = std::fs::read_dir(dir.join("blocks")) else { return };
        for e in rd.flatten() {
            let name = e.file_name();
            let h = name.to_str().and_then(|n| n.get(..20)).and_then(|n| n.parse::<u64>().ok());
            if h.is_some_and(|h| h < height) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    fn read_spool(&mut self, dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else { continue };
            // A torn write (a `.tmp` left by a crash) does not decode or is
            // not named as a block: either way it is not used.
            if e.path().extension().and_then(|x| x.to_str()) != Some("blk") {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            match Block::decode(&bytes) {
                Some(b) if b.header().height > self.height && b.is_consistent() => self.remember_block(b, self.me),
                _ => {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Batch coefficients must be unpredictable to a proposer: a seed from
/// the operating system.
fn seed() -> Result<[u8; 32], String> {
    let mut s = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut s).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(s)
}

/// The engine's seats for a list of elected ones (one vote each); `None`
/// for an empty list.
fn seat_set(seats: &[crate::election::Seat]) -> Option<ValidatorSet> {
    ValidatorSet::new(seats.iter().map(|s| crate::bft::Validator::seat(s.node_key)).collect())
}

fn block_message(b: &Block) -> Message {
    let mut body = Vec::new();
    b.encode_into(&mut body);
    Message::Block { height: Height(b.header().height), body }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bft::Validator;
    use crate::genesis::{Genesis, GenesisAccount};
    use attnet_core::emit::{emit_signed_tx, TxFields};
    use attnet_core::wire::tx::Kind;

    fn public(seed: [u8; 32]) -> [u8; 32] {
        ed25519_zebra::VerificationKey::from(&ed25519_zebra::SigningKey::from(seed)).into()
    }

    /// A proposer's block whose transaction carries a forged signature is
    /// judged invalid even though it executes; the same block with the
    /// real signature is valid.
    #[test]
    fn a_peers_block_with_a_forged_signature_is_judged_invalid() {
        let seeds: Vec<[u8; 32]> = (1..=4).map(|i| [i; 32]).collect();
        let set = ValidatorSet::new(seeds.iter().map(|s| Validator::seat(public(*s))).collect()).unwrap();
        let alice = [0xa1; 32];
        let g = Genesis::new(9, [GenesisAccount { key: public(alice), balance: 1_000 }]).unwrap();
        let mut state = State::new(&g, 16);
        let seats_hash = set.hash();
        let mut r =
            Replica::new(ReplicaConfig::new(g.hash(), 9, seeds[0], set), &mut state, 0, g.hash(), 0, 1_000).unwrap();
        let producer = public(seeds[1]);
        let block_with = |state: &mut State, tx: &[u8]| {
            let t = Transaction::new_checked(tx).unwrap();
            state.begin();
            state.execute(&t).unwrap();
            state.end_block(1, Some(producer), t.fee());
            let root = state.root();
            state.rollback();
            let b = Block::new(1, g.hash(), 1_000, Stamp { producer, state_root: root }, [tx]).unwrap();
            b.with_consensus(seats_hash, Extension::default()).unwrap()
        };
        let mut tx = Vec::new();
        let fields = TxFields { kind: Kind::Transfer, to: public([0xb2; 32]), nonce: 1, amount: 5, fee: 1, memo: b"" };
        emit_signed_tx(&ed25519_zebra::SigningKey::from(alice), 9, &fields, &mut tx);
        let mut forged = tx.clone();
        let last = forged.len() - 1;
        forged[last] ^= 0x01;

        let bad = block_with(&mut state, &forged);
        r.receive(&mut state, producer, &block_message(&bad).encode(), 1_001);
        assert_eq!((r.counters().judged_valid, r.counters().judged_invalid), (0, 1));
        assert_eq!((state.open_blocks(), state.account(&public(alice)).unwrap().nonce), (0, 0));
        let good = block_with(&mut state, &tx);
        r.receive(&mut state, producer, &block_message(&good).encode(), 1_002);
        assert_eq!((r.counters().judged_valid, r.counters().judged_invalid), (1, 1));
        // The valid block stays executed on an open journal, undoable until
        // it is final; the forged one left nothing.
        assert_eq!(state.open_blocks(), 1);
        assert_eq!(state.account(&public(alice)).unwrap().nonce, 1);
        assert!(state.rollback());
        assert_eq!(state.account(&public(alice)).unwrap().nonce, 0);
    }

    fn four_seats() -> (Vec<[u8; 32]>, ValidatorSet) {
        let seeds: Vec<[u8; 32]> = (1..=4).map(|i| [i; 32]).collect();
        let set = ValidatorSet::new(seeds.iter().map(|s| Validator::seat(public(*s))).collect()).unwrap();
        (seeds, set)
    }

    /// A validator sending many distinct blocks cannot fill the node's
    /// memory: each sender keeps at most `MAX_BLOCKS_PER_SENDER` per
    /// height, the cache stays within its bytes, and a nearer height's
    /// block displaces a farther one.
    #[test]
    fn peers_blocks_are_bounded_per_sender_and_in_bytes() {
        let (seeds, set) = four_seats();
        let g = Genesis::new(9, [GenesisAccount { key: public([0xa1; 32]), balance: 1_000 }]).unwrap();
        let mut state = State::new(&g, 16);
        let mut cfg = ReplicaConfig::new(g.hash(), 9, seeds[0], set);
        cfg.cache_bytes = 768 << 10;
        let mut r = Replica::new(cfg, &mut state, 0, g.hash(), 0, 1_000).unwrap();
        let blob = vec![0x5a; 60 << 10];
        let block = |height: u64, ts: u64, producer: [u8; 32]| {
            Block::new(height, [height as u8; 32], ts, Stamp { producer, state_root: [0; 32] }, [blob.as_slice()])
                .unwrap()
        };
        let (p1, p2, p3) = (public(seeds[1]), public(seeds[2]), public(seeds[3]));
        for ts in 0..10 {
            r.receive(&mut state, p1, &block_message(&block(1, 1_000 + ts, p1)).encode(), 1_001);
        }
        let cached = |r: &Replica, h: u64| r.blocks.iter().filter(|(k, c)| k.0 == h && c.from != r.me).count();
        assert_eq!((cached(&r, 1), r.counters().blocks_refused), (MAX_BLOCKS_PER_SENDER, 6));
        // Farther heights fill the bytes, from several senders.
        for (i, p) in [p2, p3, p1, p2, p3, p1, p2, p3, p1, p2, p3, p1].into_iter().enumerate() {
            r.receive(&mut state, p, &block_message(&block(3, 2_000 + i as u64, p)).encode(), 1_002);
            assert!(r.cached_bytes <= 768 << 10, "{} bytes", r.cached_bytes);
        }
        let at3 = cached(&r, 3);
        assert!(at3 > 0 && at3 < 12, "height 3 holds {at3}");
        assert_eq!(r.cached_bytes, r.blocks.values().map(|c| c.size).sum::<usize>());
        // A block of height 2 takes the place of one of height 3; one of
        // height 4 finds no farther block to displace.
        let refused = r.counters().blocks_refused;
        r.receive(&mut state, p2, &block_message(&block(2, 3_000, p2)).encode(), 1_003);
        assert_eq!((cached(&r, 2), cached(&r, 3), r.counters().blocks_refused), (1, at3 - 1, refused));
        r.receive(&mut state, p2, &block_message(&block(3, 3_001, p2)).encode(), 1_003);
        assert_eq!(r.counters().blocks_refused, refused + 1);
        assert!(r.cached_bytes <= 768 << 10);
    }

    /// A validator repeating `status` for one height is answered once per
    /// `SERVE_EVERY_MS`; a new height is answered at once.
    #[test]
    fn a_repeated_status_is_answered_once_a_second() {
        let (seeds, set) = four_seats();
        let g = Genesis::new(9, [GenesisAccount { key: public([0xa1; 32]), balance: 1_000 }]).unwrap();
        let mut state = State::new(&g, 16);
        let mut r =
            Replica::new(ReplicaConfig::new(g.hash(), 9, seeds[0], set), &mut state, 5, g.hash(), 0, 1_000).unwrap();
        let peer = public(seeds[1]);
        let status = |h: u64| Message::Status { height: Height(h) }.encode();
        r.receive(&mut state, peer, &status(2), 1_000);
        r.receive(&mut state, peer, &status(2), 1_500);
        assert_eq!(r.counters().status_ignored, 1);
        r.receive(&mut state, peer, &status(3), 1_600);
        r.receive(&mut state, public(seeds[2]), &status(3), 1_600);
        assert_eq!(r.counters().status_ignored, 1, "a new height, another peer: answered");
        r.receive(&mut state, peer, &status(3), 2_599);
        assert_eq!(r.counters().status_ignored, 2);
        r.receive(&mut state, peer, &status(3), 2_600);
        assert_eq!(r.counters().status_ignored, 2, "a second later: answered again");
    }
}
