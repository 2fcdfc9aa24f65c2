//! The ledger: account balances and nonces, changed by verified
//! transactions in nonce order.
//!
//! Accounts are keyed by the 32-byte Ed25519 public key that transactions
//! carry in `from` and `to`. An account's `nonce` is the nonce of its last
//! applied transaction (0 for an account that has sent nothing), so its next
//! transaction must carry `nonce + 1`.
//!
//! # Rules
//!
//! The data plane has already checked each transaction's form and
//! signature; the ledger does not verify signatures. `min_fee` comes from
//! the genesis ([`Genesis::min_fee`], at least 1). A submitted transaction
//! from `from` with nonce `n` is judged by these checks, cheapest first;
//! the first that fails names the refusal:
//!
//! 1. the bytes are one well-formed transaction, else `malformed` (a field
//!    read; the data plane never passes such bytes);
//! 2. `fee >= min_fee`, else `fee_too_low` (a field compare, before any
//!    lookup);
//! 3. `from` exists, else `no_account` (one hash lookup, which also gives
//!    `last`, `from`'s nonce);
//! 4. `n > last`, and no other transaction already waits with nonce `n`
//!    (first come, first served), else `bad_nonce`;
//! 5. `n > last + 1`: the transaction waits (see below); the remaining
//!    checks run when its turn comes, against the state at that moment;
//! 6. `n == last + 1`: `from`'s balance covers `amount + fee` (transfers)
//!    or `fee` (other kinds), else `insufficient_funds` (arithmetic on the
//!    account already read; the nonce does not advance);
//! 7. the recipient (a second lookup, only for kinds that have one, see
//!    below) exists, or the transfer creates it, else `no_account`.
//!
//! After a transaction applies, waiting successors `n + 1, n + 2, ...`
//! apply in order, each under checks 6 and 7 (1 to 4 held when it was
//! submitted and still hold: accounts are never deleted and fees do not
//! change), until one is missing or refused.
//!
//! # Accounts
//!
//! An account comes into being only by a transfer to it of at least
//! `min_fee` (or in the genesis). A transfer of less to a key that has no
//! account is refused `no_account`, and so is a transaction from a key
//! that has no account: a fresh key cannot apply anything, not even a
//! free transaction, so the account table grows only as fast as someone
//! pays for it. So a new account can send once the credit that creates it
//! has applied; before that its transactions are refused, not held.
//!
//! An account is never deleted, even at balance 0: deleting it would reset
//! its nonce to 0, and every transaction it ever sent would apply again if
//! replayed.
//!
//! # Waiting for a nonce gap
//!
//! A transaction with `n > last + 1` waits in `from`'s queue (bytes copied)
//! until the gap fills. It is dropped as `nonce_gap` at once if the queue
//! already holds [`LedgerConfig::queue_capacity`] transactions or the whole
//! ledger holds [`LedgerConfig::max_queued_total`] (the new one is
//! dropped), and later once it has waited more than
//! [`LedgerConfig::stale_ms`]. Staleness is judged on every
//! [`Ledger::submit`] and [`Ledger::expire`] against the latest `now_ms`
//! seen (the ledger's clock never goes back, so a caller clock that steps
//! back drops nothing early).
//!
//! A waiting transaction that is dropped (stale, refused when its turn
//! comes, or at [`Ledger::drop_all_queued`]) had been accepted (`submit`
//! returned `Ok`); its id is reported by [`Ledger::take_dropped`] so the
//! caller can forget it and the client can send it again.
//!
//! ## Stranding is bounded
//!
//! A dropped transaction leaves its nonce unused, so `from`'s later nonces
//! cannot apply until the client sends that nonce again. They are not held
//! for ever: each waiting transaction is dropped at most `stale_ms` after
//! it started waiting (plus the caller's polling interval, as staleness is
//! judged when [`Ledger::expire`] or [`Ledger::submit`] runs), whatever
//! happened to its predecessors; at most `queue_capacity` of one account's
//! transactions wait at a time (the rest are `nonce_gap` at once), and at
//! most `max_queued_total` across all accounts. With the defaults (16,
//! 2000 ms, 65 536) a client's later transactions wait at most about 2 s
//! and at most 16 of them are stranded; each one shows up as one
//! `nonce_gap` when it goes, the transaction that caused the gap as its
//! own reason (`insufficient_funds`, `no_account`) if it was refused on its
//! turn, and `queued` falls back to 0. A client that resends the missing
//! nonce within that time gets the waiting successors applied at once.
//!
//! # What a transaction does, by kind
//!
//! Once a transaction may run (checks 1 to 5), [`State::execute`] runs it:
//! the sender's funds, the recipient where the kind has one, then the
//! kind's own rule (connections, stake, votes, producers), each with a
//! named refusal; `docs/LEDGER.md` has every rule in order. A refused
//! transaction changes nothing and does not advance the nonce.
//!
//! # Accounting
//!
//! Every submitted transaction ends as exactly one of: applied, one
//! [`Refusal`], or still waiting, so `submitted == applied + Σ refused +
//! queued` holds after every call; and the supply is conserved
//! ([`State::supply`]).
#![deny(clippy::indexing_slicing)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::AddAssign;

use attnet_core::wire::tx::{unsigned_part, Transaction};
use sha2::{Digest, Sha256};

use crate::genesis::Genesis;

pub use crate::state::{Account, Producer, Record, State, Supply};

/// Why the ledger refused a transaction; each has a counter of the same
/// name in [`LedgerCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The nonce was already used, or a waiting transaction holds it.
    BadNonce,
    /// The balance does not cover the cost, or the arithmetic overflows.
    InsufficientFunds,
    /// Ahead of the sender's next nonce and no room to wait (queue full).
    /// Transactions that wait and go stale are counted the same way but
    /// are not returned by any call.
    NonceGap,
    /// The bytes are not one well-formed transaction. The data plane never
    /// passes such bytes; this exists so the ledger cannot panic on them.
    Malformed,
    /// The fee is below the genesis `min_fee`.
    FeeTooLow,
    /// The sender has no account, or the recipient has none and the
    /// transaction does not create it (a transfer of less than `min_fee`,
    /// or a kind addressed to an account).
    NoAccount,
    /// A connection request to oneself.
    SelfAddressed,
    /// A connection request between accounts already connected.
    AlreadyConnected,
    /// A connect-accept without a connection request from `to`.
    NoRequest,
    /// An endpoint offer between accounts that are not connected.
    NotConnected,
    /// A stake or unstake of 0.
    ZeroAmount,
    /// An unstake of more than is staked.
    InsufficientStake,
    /// A vote from an account with nothing staked.
    NoStake,
    /// A vote for an account that registered no producer.
    NotAProducer,
    /// A second producer registration from the same owner.
    AlreadyProducer,
    /// A producer registration for a node key another producer has.
    NodeKeyTaken,
    /// A producer registration whose memo is not `HOST:PORT`.
    BadAddress,
}

impl Refusal {
    /// Number of refusals.
    pub const COUNT: usize = 17;
    /// Every refusal, in declaration order (the index of
    /// [`LedgerCounters::refused`]).
    pub const ALL: [Refusal; Self::COUNT] = [
        Refusal::BadNonce,
        Refusal::InsufficientFunds,
        Refusal::NonceGap,
        Refusal::Malformed,
        Refusal::FeeTooLow,
        Refusal::NoAccount,
        Refusal::SelfAddressed,
        Refusal::AlreadyConnected,
        Refusal::NoRequest,
        Refusal::NotConnected,
        Refusal::ZeroAmount,
        Refusal::InsufficientStake,
        Refusal::NoStake,
        Refusal::NotAProducer,
        Refusal::AlreadyProducer,
        Refusal::NodeKeyTaken,
        Refusal::BadAddress,
    ];

    /// The counter and JSON name (`bad_nonce`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Refusal::BadNonce => "bad_nonce",
            Refusal::InsufficientFunds => "insufficient_funds",
            Refusal::NonceGap => "nonce_gap",
            Refusal::Malformed => "malformed",
            Refusal::FeeTooLow => "fee_too_low",
            Refusal::NoAccount => "no_account",
            Refusal::SelfAddressed => "self_addressed",
            Refusal::AlreadyConnected => "already_connected",
            Refusal::NoRequest => "no_request",
            Refusal::NotConnected => "not_connected",
            Refusal::ZeroAmount => "zero_amount",
            Refusal::InsufficientStake => "insufficient_stake",
            Refusal::NoStake => "no_stake",
            Refusal::NotAProducer => "not_a_producer",
            Refusal::AlreadyProducer => "already_producer",
            Refusal::NodeKeyTaken => "node_key_taken",
            Refusal::BadAddress => "bad_address",
        }
    }

    /// The index of `self` in [`Refusal::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Refusal {}

/// Limits on transactions that wait for a nonce gap to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Most transactions one account may have waiting. Default 16.
    pub queue_capacity: usize,
    /// A waiting transaction is dropped once it has waited more than this.
    /// Default 2000 ms.
    pub stale_ms: u64,
    /// Most transactions waiting across all accounts, so that many
    /// accounts each sending gapped nonces cannot grow memory without
    /// bound. Default 65 536. Also the most ids of dropped waiting
    /// transactions kept for [`Ledger::take_dropped`] between two calls.
    pub max_queued_total: usize,
    /// Records (messages, connection requests and acceptances, offers)
    /// kept per inbox; the oldest goes when a new one arrives. Default 256.
    pub inbox_capacity: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig { queue_capacity: 16, stale_ms: 2000, max_queued_total: 65_536, inbox_capacity: 256 }
    }
}

/// What happened to submitted transactions. Counters of several ledgers
/// (or runs) add up with `+=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCounters {
    /// Calls of [`Ledger::submit`].
    pub submitted: u64,
    /// Transactions applied (directly or after waiting).
    pub applied: u64,
    /// Refused or dropped, by [`Refusal::index`]. `nonce_gap` counts those
    /// dropped while ahead of the next nonce: queue full, stale, or left
    /// waiting at [`Ledger::drop_all_queued`].
    pub refused: [u64; Refusal::COUNT],
    /// Waiting now (a gauge, not a running total).
    pub queued: u64,
}

impl LedgerCounters {
    /// Transactions refused or dropped, all reasons.
    pub fn dropped(&self) -> u64 {
        self.refused.iter().sum()
    }

    /// The count of one refusal.
    pub fn get(&self, r: Refusal) -> u64 {
        self.refused.get(r.index()).copied().unwrap_or(0)
    }

    pub(crate) fn count(&mut self, r: Refusal) {
        if let Some(c) = self.refused.get_mut(r.index()) {
            *c += 1;
        }
    }

    /// `{"bad_nonce": n, ...}`: every refusal by name, in [`Refusal::ALL`]
    /// order.
    pub fn refused_json(&self) -> serde_json::Value {
        Refusal::ALL.iter().map(|r| (r.name().to_owned(), serde_json::Value::from(self.get(*r)))).collect()
    }
}

impl AddAssign for LedgerCounters {
    fn add_assign(&mut self, o: LedgerCounters) {
        self.submitted += o.submitted;
        self.applied += o.applied;
        for (a, b) in self.refused.iter_mut().zip(o.refused) {
            *a += b;
        }
        self.queued += o.queued;
    }
}

/// A transaction waiting for its sender's nonce gap to fill.
#[derive(Debug)]
struct Pending {
    nonce: u64,
    seq: u64,
    bytes: Vec<u8>,
}

/// Insertion record for staleness: waiting transactions in the order they
/// started waiting, so expiry pops from the front. Entries of transactions
/// that applied meanwhile are skipped when they reach the front.
#[derive(Debug)]
struct Waiting {
    since_ms: u64,
    key: [u8; 32],
    seq: u64,
}

/// Spare buffers kept for reuse, so a steady flow of gapped transactions
/// does not allocate per transaction.
const SPARES: usize = 64;

/// The account state and the per-account queues of waiting transactions.
/// Single-threaded and clock-free: the caller passes `now_ms`.
#[derive(Debug)]
pub struct Ledger {
    cfg: LedgerConfig,
    min_fee: u64,
    state: State,
    /// Per-account waiting transactions, sorted by nonce; never empty.
    queues: HashMap<[u8; 32], Vec<Pending>>,
    timeline: VecDeque<Waiting>,
    clock_ms: u64,
    next_seq: u64,
    counters: LedgerCounters,
    spare_bytes: Vec<Vec<u8>>,
    spare_queues: Vec<Vec<Pending>>,
    /// Ids of accepted waiting transactions dropped since the last
    /// [`Ledger::take_dropped`]; at most `max_queued_total`.
    dropped_ids: Vec<[u8; 32]>,
    /// Ids not kept because `dropped_ids` was full.
    dropped_ids_lost: u64,
    /// A block's journal is open in `state` ([`Ledger::open_block`]).
    block_open: bool,
}

impl Ledger {
    /// A ledger holding the genesis balances, every nonce 0.
    pub fn new(genesis: &Genesis, cfg: LedgerConfig) -> Ledger {
        Ledger::from_state(genesis, cfg, State::new(genesis, cfg.inbox_capacity))
    }

    /// A ledger over `state` (recovered from a data directory; it came from
    /// `genesis`), nothing waiting and every counter at 0.
    pub fn from_state(genesis: &Genesis, cfg: LedgerConfig, state: State) -> Ledger {
        Ledger {
            cfg,
            min_fee: genesis.min_fee(),
            state,
            queues: HashMap::new(),
            timeline: VecDeque::new(),
            clock_ms: 0,
            next_seq: 0,
            counters: LedgerCounters::default(),
            spare_bytes: Vec::new(),
            spare_queues: Vec::new(),
            dropped_ids: Vec::new(),
            dropped_ids_lost: 0,
            block_open: false,
        }
    }

    /// Submits one verified transaction (the spec's bytes, signature
    /// included). First drops stale waiting transactions (as
    /// [`expire`](Ledger::expire) does). Every transaction that applies as a
    /// result, this one and then any waiting successors, is passed to
    /// `applied` in application order, which is the order blocks must hold
    /// them in. Returns `Ok` when the transaction applied or now waits;
    /// `Err` names why it was refused (checks in the order of the module
    /// docs). A waiting successor that is refused when its turn comes is
    /// counted, and its id reported by [`take_dropped`](Ledger::take_dropped),
    /// but not reported here.
    pub fn submit(&mut self, tx: &[u8], now_ms: u64, applied: &mut dyn FnMut(&[u8])) -> Result<(), Refusal> {
        self.counters.submitted += 1;
        self.expire(now_ms);
        let Ok(t) = Transaction::new_checked(tx) else {
            self.counters.count(Refusal::Malformed);
            return Err(Refusal::Malformed);
        };
        if t.fee() < self.min_fee {
            self.counters.count(Refusal::FeeTooLow);
            return Err(Refusal::FeeTooLow);
        }
        let from = t.from();
        let nonce = t.nonce();
        let Some(last) = self.state.account(&from).map(|a| a.nonce) else {
            self.counters.count(Refusal::NoAccount);
            return Err(Refusal::NoAccount);
        };
        if nonce <= last {
            self.counters.count(Refusal::BadNonce);
            return Err(Refusal::BadNonce);
        }
        if nonce - last > 1 {
            return self.enqueue(from, nonce, tx);
        }
        self.apply(&t)?;
        applied(tx);
        self.apply_waiting(from, applied);
        Ok(())
    }

    /// Drops waiting transactions that have waited more than `stale_ms`
    /// at `now_ms` (counted as `nonce_gap`, ids kept for
    /// [`take_dropped`](Ledger::take_dropped)); returns how many. The node
    /// calls it on its tick so that stale transactions go even when no new
    /// ones arrive.
    pub fn expire(&mut self, now_ms: u64) -> u64 {
        self.clock_ms = self.clock_ms.max(now_ms);
        let mut dropped = 0;
        while let Some(w) = self.timeline.front() {
            if self.clock_ms - w.since_ms <= self.cfg.stale_ms {
                break;
            }
            let (key, seq) = (w.key, w.seq);
            self.timeline.pop_front();
            if self.remove_waiting(&key, |p| p.seq == seq) {
                self.counters.count(Refusal::NonceGap);
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops every waiting transaction as `nonce_gap` (ids kept for
    /// [`take_dropped`](Ledger::take_dropped)) and returns how many: at
    /// shutdown their gaps can no longer fill, and the final counters then
    /// show every transaction as applied or dropped.
    pub fn drop_all_queued(&mut self) -> u64 {
        let mut dropped = 0;
        for (_, mut q) in self.queues.drain() {
            dropped += q.len() as u64;
            for p in q.drain(..) {
                note_dropped(&mut self.dropped_ids, &mut self.dropped_ids_lost, self.cfg.max_queued_total, &p.bytes);
                recycle(&mut self.spare_bytes, p.bytes);
            }
            recycle(&mut self.spare_queues, q);
        }
        self.timeline.clear();
        if let Some(c) = self.counters.refused.get_mut(Refusal::NonceGap.index()) {
            *c += dropped;
        }
        self.counters.queued -= dropped;
        dropped
    }

    /// Appends to `out` the ids (SHA-256 of the bytes before the
    /// signature, as the data plane computes them) of every transaction
    /// that had been accepted to wait (`submit` returned `Ok` and it did
    /// not apply at once) and was dropped since the last call: stale,
    /// refused when its turn came, or dropped by
    /// [`drop_all_queued`](Ledger::drop_all_queued). Each id is reported
    /// once; an applied transaction is never reported. Clears the internal
    /// list, keeping its memory, so a caller that passes the same `out`
    /// every time allocates nothing in steady state.
    ///
    /// The list holds at most `max_queued_total` ids (a bound on what one
    /// expiry can drop); the caller drains it on every tick. Ids dropped
    /// while it is full are not kept, only counted
    /// ([`dropped_ids_lost`](Ledger::dropped_ids_lost)).
    pub fn take_dropped(&mut self, out: &mut Vec<[u8; 32]>) {
        out.extend_from_slice(&self.dropped_ids);
        self.dropped_ids.clear();
    }

    /// Ids of dropped waiting transactions that
    /// [`take_dropped`](Ledger::take_dropped) could not report because its
    /// list was full (0 when the caller drains it on every tick).
    pub fn dropped_ids_lost(&self) -> u64 {
        self.dropped_ids_lost
    }

    /// The minimum fee of the genesis.
    pub fn min_fee(&self) -> u64 {
        self.min_fee
    }

    /// The counters, `queued` as of now.
    pub fn counters(&self) -> LedgerCounters {
        self.counters
    }

    /// An account's state, `None` if it has none (not in the genesis and
    /// never credited `min_fee` or more).
    pub fn account(&self, key: &[u8; 32]) -> Option<Account> {
        self.state.account(key)
    }

    /// The nonce `key`'s next transaction must carry to apply at once: what
    /// a wallet or traffic generator asks before signing.
    pub fn next_nonce(&self, key: &[u8; 32]) -> u64 {
        self.state.account(key).map_or(0, |a| a.nonce).saturating_add(1)
    }

    /// Number of accounts (genesis accounts plus those created since).
    pub fn account_count(&self) -> usize {
        self.state.account_count()
    }

    /// Sum of all fees paid by applied transactions.
    pub fn fees_collected(&self) -> u64 {
        self.state.fees_collected()
    }

    /// The genesis total, which the supply always adds up to
    /// ([`State::supply`]).
    pub fn total_supply(&self) -> u64 {
        self.state.total_supply()
    }

    /// The committed state: accounts, producers, connections, inboxes.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The committed state, for a validator of a network of several
    /// ([`crate::replica`]), which executes blocks on it directly.
    pub(crate) fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The genesis' least fee.
    pub fn min_fee_of(&self) -> u64 {
        self.min_fee
    }

    /// Ends block `height`: pays its transactions' `fees` to `producer`
    /// and releases unbonding stake due ([`State::end_block`]).
    pub fn end_block(&mut self, height: u64, producer: Option<[u8; 32]>, fees: u64) -> Option<[u8; 32]> {
        self.state.end_block(height, producer, fees)
    }

    /// Opens the next block's journal if it is not open yet: what applies
    /// from here on is the next block's, undoable until it is final.
    pub fn open_block(&mut self) {
        if !self.block_open {
            self.state.begin();
            self.block_open = true;
        }
    }

    /// Closes the open block (sealed: its root is taken); it stays
    /// undoable until [`final_block`](Ledger::final_block).
    pub fn seal_block(&mut self) {
        self.block_open = false;
    }

    /// The oldest sealed block became final: its journal goes.
    pub fn final_block(&mut self) {
        self.state.commit_oldest();
    }

    /// Blocks whose changes are still journaled (sealed but not final,
    /// and the open one).
    pub fn open_blocks(&self) -> usize {
        self.state.open_blocks()
    }

    /// The state root over every account and its producer record
    /// (`crate::root`, `docs/LEDGER.md`): rehashes only the accounts
    /// changed since the last call. Waiting transactions, connections and
    /// inboxes are not included.
    pub fn state_root(&mut self) -> [u8; 32] {
        self.state.root()
    }

    /// The first half of [`state_root`](Ledger::state_root)
    /// ([`State::capture_root`]): what must see the block's end.
    pub fn capture_root(&mut self) {
        self.state.capture_root()
    }

    /// The second half: the state root as of the last
    /// [`capture_root`](Ledger::capture_root).
    pub fn captured_root(&mut self) -> [u8; 32] {
        self.state.captured_root()
    }

    /// Runs `t` (its fee, sender and nonce already checked) and counts
    /// the outcome.
    fn apply(&mut self, t: &Transaction<&[u8]>) -> Result<(), Refusal> {
        match self.state.execute(t) {
            Ok(()) => {
                self.counters.applied += 1;
                Ok(())
            }
            Err(r) => self.refuse(r),
        }
    }

    /// Counts `r` and returns it.
    fn refuse(&mut self, r: Refusal) -> Result<(), Refusal> {
        self.counters.count(r);
        Err(r)
    }

    /// Applies `key`'s waiting transactions while the first one carries the
    /// next nonce.
    fn apply_waiting(&mut self, key: [u8; 32], applied: &mut dyn FnMut(&[u8])) {
        loop {
            let next = self.next_nonce(&key);
            let Some(q) = self.queues.get_mut(&key) else { return };
            if q.first().map(|p| p.nonce) != Some(next) {
                return;
            }
            let p = q.remove(0);
            if q.is_empty() {
                if let Some(q) = self.queues.remove(&key) {
                    recycle(&mut self.spare_queues, q);
                }
            }
            self.counters.queued -= 1;
            if self.apply(&Transaction::new_unchecked(&p.bytes[..])).is_ok() {
                applied(&p.bytes);
            } else {
                note_dropped(&mut self.dropped_ids, &mut self.dropped_ids_lost, self.cfg.max_queued_total, &p.bytes);
            }
            recycle(&mut self.spare_bytes, p.bytes);
        }
    }

    fn enqueue(&mut self, key: [u8; 32], nonce: u64, tx: &[u8]) -> Result<(), Refusal> {
        let q = self.queues.get(&key);
        let pos = match q.map_or(Err(0), |q| q.binary_search_by_key(&nonce, |p| p.nonce)) {
            Ok(_) => {
                self.counters.count(Refusal::BadNonce);
                return Err(Refusal::BadNonce);
            }
            Err(pos) => pos,
        };
        let full = q.is_some_and(|q| q.len() >= self.cfg.queue_capacity);
        if full || self.counters.queued >= self.cfg.max_queued_total as u64 || self.cfg.queue_capacity == 0 {
            self.counters.count(Refusal::NonceGap);
            return Err(Refusal::NonceGap);
        }
        let mut bytes = self.spare_bytes.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(tx);
        let seq = self.next_seq;
        self.next_seq += 1;
        let spare = &mut self.spare_queues;
        let q = self.queues.entry(key).or_insert_with(|| spare.pop().unwrap_or_default());
        q.insert(pos, Pending { nonce, seq, bytes });
        if self.timeline.len() >= 2 * self.counters.queued as usize + 64 {
            self.compact_timeline();
        }
        self.timeline.push_back(Waiting { since_ms: self.clock_ms, key, seq });
        self.counters.queued += 1;
        Ok(())
    }

    /// Forgets the timeline records of transactions that no longer wait
    /// (they applied, or were refused when their turn came). Without this,
    /// a steady flow of briefly gapped transactions would grow the timeline
    /// with `rate × stale_ms` dead records; run when at least half are dead,
    /// it keeps the timeline within `2 × queued + 64` at amortised O(1).
    fn compact_timeline(&mut self) {
        let queues = &self.queues;
        self.timeline.retain(|w| queues.get(&w.key).is_some_and(|q| q.iter().any(|p| p.seq == w.seq)));
    }

    /// Removes the first waiting transaction of `key` that matches, keeping
    /// its id for [`take_dropped`](Ledger::take_dropped); returns whether
    /// one was removed.
    fn remove_waiting(&mut self, key: &[u8; 32], matches: impl Fn(&Pending) -> bool) -> bool {
        let Some(q) = self.queues.get_mut(key) else { return false };
        let Some(i) = q.iter().position(matches) else { return false };
        let p = q.remove(i);
        if q.is_empty() {
            if let Some(q) = self.queues.remove(key) {
                recycle(&mut self.spare_queues, q);
            }
        }
        note_dropped(&mut self.dropped_ids, &mut self.dropped_ids_lost, self.cfg.max_queued_total, &p.bytes);
        recycle(&mut self.spare_bytes, p.bytes);
        self.counters.queued -= 1;
        true
    }
}

/// Keeps the id of a dropped waiting transaction, or counts it as lost
/// when `ids` already holds `cap`.
fn note_dropped(ids: &mut Vec<[u8; 32]>, lost: &mut u64, cap: usize, tx: &[u8]) {
    if ids.len() >= cap {
        *lost += 1;
        return;
    }
    ids.push(Sha256::digest(unsigned_part(tx)).into());
}

fn recycle<T>(spares: &mut Vec<Vec<T>>, mut v: Vec<T>) {
    if spares.len() < SPARES && v.capacity() > 0 {
        v.clear();
        spares.push(v);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::genesis::GenesisAccount;
    use crate::state::Link;
    use attnet_core::wire::tx::{Kind, Repr};
    use proptest::prelude::*;

    const A: [u8; 32] = [0xA; 32];
    const B: [u8; 32] = [0xB; 32];
    const C: [u8; 32] = [0xC; 32];

    fn tx_kind(kind: Kind, from: [u8; 32], to: [u8; 32], nonce: u64, amount: u64, fee: u64) -> Vec<u8> {
        // A producer's memo is its address.
        let memo: &[u8] = if kind == Kind::RegisterProducer { b"h:1" } else { b"m" };
        let r = Repr { kind, from, to, nonce, amount, fee, memo, signature: [0x55; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        b
    }

    fn tx(from: [u8; 32], to: [u8; 32], nonce: u64, amount: u64, fee: u64) -> Vec<u8> {
        tx_kind(Kind::Transfer, from, to, nonce, amount, fee)
    }

    fn genesis(accts: &[([u8; 32], u64)]) -> Genesis {
        Genesis::new(1, accts.iter().map(|&(key, balance)| GenesisAccount { key, balance })).unwrap()
    }

    fn acct(balance: u64, nonce: u64) -> Account {
        Account { balance, nonce, ..Account::default() }
    }

    fn ledger(accts: &[([u8; 32], u64)], cfg: LedgerConfig) -> Ledger {
        Ledger::new(&genesis(accts), cfg)
    }

    /// Submits and returns the nonces applied, in order, with the result.
    fn sub(l: &mut Ledger, t: &[u8], now: u64) -> (Result<(), Refusal>, Vec<u64>) {
        let mut out = Vec::new();
        let r = l.submit(t, now, &mut |b| out.push(Transaction::new_checked(b).unwrap().nonce()));
        (r, out)
    }

    fn bal(l: &Ledger, k: &[u8; 32]) -> u64 {
        l.account(k).map_or(0, |a| a.balance)
    }

    fn check_invariants(l: &Ledger) {
        let c = l.counters();
        assert_eq!(c.submitted, c.applied + c.dropped() + c.queued, "{c:?}");
        let supply = l.state().supply();
        assert!(supply.holds(), "{supply:?}");
        let waiting: usize = l.queues.values().map(Vec::len).sum();
        assert_eq!(waiting as u64, c.queued);
        for (k, q) in &l.queues {
            assert!(!q.is_empty() && q.len() <= l.cfg.queue_capacity);
            assert!(q.windows(2).all(|w| w[0].nonce < w[1].nonce));
            assert!(q[0].nonce > l.next_nonce(k), "a waiting tx could apply");
        }
    }

    #[test]
    fn transfer_moves_amount_and_fee() {
        let mut l = ledger(&[(A, 1000)], LedgerConfig::default());
        assert_eq!(l.next_nonce(&A), 1);
        assert_eq!(sub(&mut l, &tx(A, B, 1, 300, 7), 0), (Ok(()), vec![1]));
        assert_eq!(l.account(&A), Some(acct(693, 1)));
        assert_eq!(l.account(&B), Some(acct(300, 0)));
        assert_eq!(l.fees_collected(), 7);
        // Spending exactly the balance is fine.
        assert_eq!(sub(&mut l, &tx(A, B, 2, 690, 3), 0).0, Ok(()));
        assert_eq!(bal(&l, &A), 0);
        check_invariants(&l);
    }

    #[test]
    fn self_transfer_costs_only_the_fee() {
        let mut l = ledger(&[(A, 100)], LedgerConfig::default());
        assert_eq!(sub(&mut l, &tx(A, A, 1, 95, 5), 0).0, Ok(()));
        assert_eq!(l.account(&A), Some(acct(95, 1)));
        // The amount must still be covered.
        assert_eq!(sub(&mut l, &tx(A, A, 2, 95, 1), 0).0, Err(Refusal::InsufficientFunds));
        check_invariants(&l);
    }

    fn tx_memo(kind: Kind, from: [u8; 32], to: [u8; 32], nonce: u64, amount: u64, memo: &[u8]) -> Vec<u8> {
        let r = Repr { kind, from, to, nonce, amount, fee: 1, memo, signature: [0x55; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        b
    }

    /// Submits `t` from its sender's next nonce and returns the result.
    fn next(l: &mut Ledger, kind: Kind, from: [u8; 32], to: [u8; 32], amount: u64, memo: &[u8]) -> Result<(), Refusal> {
        let n = l.next_nonce(&from);
        sub(l, &tx_memo(kind, from, to, n, amount, memo), 0).0
    }

    #[test]
    fn messaging_kinds_keep_records_and_follow_the_connection_rules() {
        let mut l = ledger(&[(A, 100), (B, 100), (C, 100)], LedgerConfig::default());
        // A message: only the fee; the record in B's inbox.
        assert_eq!(next(&mut l, Kind::Message, A, B, 1_000_000, b"hi b"), Ok(()));
        assert_eq!(l.account(&A), Some(acct(99, 1)), "the amount is not moved");
        let inbox: Vec<_> = l.state().inbox(&B).collect();
        assert_eq!(
            (inbox.len(), inbox[0].kind, inbox[0].from, &inbox[0].memo[..]),
            (1, Kind::Message, A, &b"hi b"[..])
        );
        // An offer needs a connection; an accept needs a request from `to`.
        assert_eq!(next(&mut l, Kind::EndpointOffer, A, B, 0, b"sealed"), Err(Refusal::NotConnected));
        assert_eq!(next(&mut l, Kind::ConnectAccept, B, A, 0, b""), Err(Refusal::NoRequest));
        assert_eq!(next(&mut l, Kind::ConnectRequest, A, A, 0, b"me"), Err(Refusal::SelfAddressed));
        assert_eq!(next(&mut l, Kind::ConnectRequest, A, B, 0, b"work"), Ok(()));
        assert!(l.state().requested(&A, &B));
        assert_eq!(l.state().links(&A).collect::<Vec<_>>(), [(Link::RequestOut, &B)]);
        assert_eq!(l.state().links(&B).collect::<Vec<_>>(), [(Link::RequestIn, &A)]);
        // C asks B too: B lists both requests, sorted by key.
        assert_eq!(next(&mut l, Kind::ConnectRequest, C, B, 0, b"c"), Ok(()));
        assert_eq!(l.state().links(&B).collect::<Vec<_>>(), [(Link::RequestIn, &A), (Link::RequestIn, &C)]);
        // The requester cannot accept its own request.
        assert_eq!(next(&mut l, Kind::ConnectAccept, A, B, 0, b""), Err(Refusal::NoRequest));
        assert_eq!(next(&mut l, Kind::ConnectAccept, B, A, 0, b""), Ok(()));
        assert!(l.state().connected(&A, &B) && l.state().connected(&B, &A));
        assert!(!l.state().requested(&A, &B), "the request is used up");
        assert_eq!(l.state().links(&A).collect::<Vec<_>>(), [(Link::Connected, &B)]);
        assert_eq!(l.state().links(&B).collect::<Vec<_>>(), [(Link::Connected, &A), (Link::RequestIn, &C)]);
        assert_eq!((l.state().link_count(&B), l.state().link_count(&C)), (2, 1));
        assert_eq!(next(&mut l, Kind::ConnectRequest, B, A, 0, b"again"), Err(Refusal::AlreadyConnected));
        // Offers both ways once connected, not to a third account.
        assert_eq!(next(&mut l, Kind::EndpointOffer, A, B, 0, b"sealed-a"), Ok(()));
        assert_eq!(next(&mut l, Kind::EndpointOffer, B, A, 0, b"sealed-b"), Ok(()));
        assert_eq!(next(&mut l, Kind::EndpointOffer, A, C, 0, b"x"), Err(Refusal::NotConnected));
        let kinds: Vec<Kind> = l.state().inbox(&B).map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::Message, Kind::ConnectRequest, Kind::ConnectRequest, Kind::EndpointOffer]);
        assert_eq!(l.state().inbox_received(&B), 4);
        let kinds: Vec<Kind> = l.state().inbox(&A).map(|r| r.kind).collect();
        assert_eq!(kinds, [Kind::ConnectAccept, Kind::EndpointOffer]);
        // Refusals changed nothing: A paid 4 fees (message, request, two offers... one is B's).
        assert_eq!(l.account(&A).map(|a| (a.balance, a.nonce)), Some((97, 3)));
        let c = l.counters();
        for (r, n) in [
            (Refusal::NotConnected, 2),
            (Refusal::NoRequest, 2),
            (Refusal::SelfAddressed, 1),
            (Refusal::AlreadyConnected, 1),
        ] {
            assert_eq!(c.get(r), n, "{}", r.name());
        }
        check_invariants(&l);
    }

    #[test]
    fn addressed_kinds_need_an_existing_recipient() {
        for kind in [Kind::Message, Kind::ConnectRequest, Kind::ConnectAccept, Kind::EndpointOffer] {
            let mut l = ledger(&[(A, 50)], LedgerConfig::default());
            assert_eq!(next(&mut l, kind, A, C, 0, b""), Err(Refusal::NoAccount), "{kind:?}");
            assert_eq!(l.account(&A), Some(acct(50, 0)), "nothing paid");
            assert_eq!(l.account(&C), None, "{kind:?} created no account");
            check_invariants(&l);
        }
    }

    #[test]
    fn inboxes_keep_the_newest_records() {
        let cfg = LedgerConfig { inbox_capacity: 2, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 100), (B, 1)], cfg);
        for m in [&b"1"[..], b"2", b"3"] {
            assert_eq!(next(&mut l, Kind::Message, A, B, 0, m), Ok(()));
        }
        let memos: Vec<&[u8]> = l.state().inbox(&B).map(|r| &r.memo[..]).collect();
        assert_eq!(memos, [&b"2"[..], b"3"]);
        assert_eq!(l.state().records_evicted(), 1);
        // Numbered from the first ever: 3 received, 2 held (indexes 1 and 2).
        assert_eq!((l.state().inbox_received(&B), l.state().inbox_len(&B)), (3, 2));
        assert_eq!((l.state().inbox_received(&A), l.state().inbox_len(&A)), (0, 0));
    }

    #[test]
    fn stake_unstake_and_unbonding() {
        let g = genesis(&[(A, 1000)]).with_staking(3, 100).unwrap();
        let mut l = Ledger::new(&g, LedgerConfig::default());
        assert_eq!(next(&mut l, Kind::Stake, A, A, 0, b""), Err(Refusal::ZeroAmount));
        assert_eq!(next(&mut l, Kind::Stake, A, A, 1000, b""), Err(Refusal::InsufficientFunds), "plus the fee");
        assert_eq!(next(&mut l, Kind::Stake, A, C, 400, b""), Ok(()), "`to` means nothing");
        let a = l.account(&A).unwrap();
        assert_eq!((a.balance, a.staked, a.staked_since), (599, 400, 1));
        assert_eq!(next(&mut l, Kind::Unstake, A, A, 401, b""), Err(Refusal::InsufficientStake));
        assert_eq!(next(&mut l, Kind::Unstake, A, A, 150, b""), Ok(()));
        let a = l.account(&A).unwrap();
        // Unstaked at height 1 (the block after height 0), 3 blocks to wait.
        assert_eq!((a.balance, a.staked, a.unbonding, a.release_height), (598, 250, 150, 4));
        check_invariants(&l);
        for h in 1..=3 {
            l.end_block(h, None, 0);
            assert_eq!(l.account(&A).unwrap().unbonding, 150, "height {h}");
        }
        l.end_block(4, None, 0);
        let a = l.account(&A).unwrap();
        assert_eq!((a.balance, a.staked, a.unbonding, a.release_height), (748, 250, 0, 0));
        // Unstaking everything resets the holding time.
        assert_eq!(next(&mut l, Kind::Unstake, A, A, 250, b""), Ok(()));
        assert_eq!(l.account(&A).unwrap().staked_since, 0);
        check_invariants(&l);
    }

    #[test]
    fn producers_votes_and_fees() {
        const NK: [u8; 32] = [0x77; 32];
        let g = genesis(&[(A, 5000), (B, 1000), (C, 3000)]).with_staking(10, 2000).unwrap();
        let mut l = Ledger::new(&g, LedgerConfig::default());
        let addr = b"198.51.100.7:7100";
        assert_eq!(next(&mut l, Kind::RegisterProducer, B, NK, 0, addr), Err(Refusal::InsufficientFunds), "the bond");
        assert_eq!(next(&mut l, Kind::RegisterProducer, A, NK, 0, b"no port"), Err(Refusal::BadAddress));
        assert_eq!(next(&mut l, Kind::RegisterProducer, A, NK, 0, b"host:0"), Err(Refusal::BadAddress));
        assert_eq!(next(&mut l, Kind::RegisterProducer, A, NK, 0, addr), Ok(()));
        assert_eq!(l.account(&A).unwrap().balance, 5000 - 2000 - 1);
        let p = l.state().producer(&A).unwrap();
        assert_eq!((p.node_key, p.address.as_str(), p.bond, p.votes), (NK, "198.51.100.7:7100", 2000, 0));
        assert_eq!(next(&mut l, Kind::RegisterProducer, A, [0x78; 32], 0, addr), Err(Refusal::AlreadyProducer));
        assert_eq!(next(&mut l, Kind::RegisterProducer, C, NK, 0, addr), Err(Refusal::NodeKeyTaken));
        // Votes: for a producer, with stake; weight follows the stake.
        assert_eq!(next(&mut l, Kind::Vote, B, C, 0, b""), Err(Refusal::NotAProducer));
        assert_eq!(next(&mut l, Kind::Vote, B, A, 0, b""), Err(Refusal::NoStake));
        assert_eq!(next(&mut l, Kind::Stake, B, B, 300, b""), Ok(()));
        assert_eq!(next(&mut l, Kind::Vote, B, A, 0, b""), Ok(()));
        assert_eq!(l.state().producer(&A).unwrap().votes, 300);
        assert_eq!(next(&mut l, Kind::Stake, B, B, 50, b""), Ok(()));
        assert_eq!(next(&mut l, Kind::Unstake, B, B, 100, b""), Ok(()));
        assert_eq!(l.state().producer(&A).unwrap().votes, 250);
        assert_eq!(l.account(&B).unwrap().vote, Some(A));
        check_invariants(&l);
        // Fees go to the owner of the producing node key.
        let unpaid = l.fees_collected();
        let before = l.account(&A).unwrap().balance;
        assert_eq!(l.end_block(1, Some(NK), unpaid), Some(A));
        assert_eq!(l.account(&A).unwrap().balance, before + unpaid);
        assert_eq!(l.account(&A).unwrap().blocks_proposed, 1);
        assert_eq!(l.state().supply().fees_unpaid, 0);
        // An unregistered producer key is paid as an account of its own.
        assert_eq!(next(&mut l, Kind::Message, C, B, 0, b"x"), Ok(()));
        assert_eq!(l.end_block(2, Some([0x99; 32]), 1), Some([0x99; 32]));
        assert_eq!(l.account(&[0x99; 32]).unwrap().balance, 1);
        check_invariants(&l);
    }

    #[test]
    fn fee_below_min_fee_is_refused() {
        let g = genesis(&[(A, 1000)]).with_min_fee(5).unwrap();
        let mut l = Ledger::new(&g, LedgerConfig::default());
        assert_eq!(l.min_fee(), 5);
        assert_eq!(sub(&mut l, &tx(A, B, 1, 10, 4), 0).0, Err(Refusal::FeeTooLow));
        // Also for a transaction that would only wait.
        assert_eq!(sub(&mut l, &tx(A, B, 3, 10, 0), 0).0, Err(Refusal::FeeTooLow));
        assert_eq!(l.account(&A), Some(acct(1000, 0)));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 10, 5), 0).0, Ok(()));
        let c = l.counters();
        assert_eq!((c.get(Refusal::FeeTooLow), c.applied, c.queued), (2, 1, 0));
        // With the default genesis, a free transaction is refused.
        let mut l = ledger(&[(A, 1000)], LedgerConfig::default());
        assert_eq!(l.min_fee(), 1);
        assert_eq!(sub(&mut l, &tx(A, B, 1, 10, 0), 0).0, Err(Refusal::FeeTooLow));
        assert_eq!(sub(&mut l, &tx_kind(Kind::Message, A, A, 1, 0, 0), 0).0, Err(Refusal::FeeTooLow));
        assert_eq!(l.counters().get(Refusal::FeeTooLow), 2);
        check_invariants(&l);
    }

    #[test]
    fn fresh_keys_cannot_create_accounts_for_free() {
        let g = genesis(&[(A, 1000)]).with_min_fee(3).unwrap();
        let mut l = Ledger::new(&g, LedgerConfig::default());
        // A key without an account sends nothing, now or later.
        assert_eq!(sub(&mut l, &tx(C, B, 1, 0, 3), 0).0, Err(Refusal::NoAccount));
        assert_eq!(sub(&mut l, &tx(C, C, 1, 0, 3), 0).0, Err(Refusal::NoAccount));
        assert_eq!(sub(&mut l, &tx(C, B, 5, 0, 3), 0).0, Err(Refusal::NoAccount), "does not wait either");
        // A fee below the minimum is refused first (the cheaper check).
        assert_eq!(sub(&mut l, &tx(C, B, 1, 0, 0), 0).0, Err(Refusal::FeeTooLow));
        assert_eq!((l.account(&C), l.counters().queued), (None, 0));
        // Credits below min_fee to a key without an account: refused, and
        // the sender's nonce does not advance.
        assert_eq!(sub(&mut l, &tx(A, B, 1, 0, 3), 0).0, Err(Refusal::NoAccount));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 2, 3), 0).0, Err(Refusal::NoAccount));
        assert_eq!(l.account(&A), Some(acct(1000, 0)));
        assert_eq!(l.account_count(), 1);
        // A credit of min_fee creates the account, which can then pay.
        assert_eq!(sub(&mut l, &tx(A, B, 1, 3, 3), 0).0, Ok(()));
        assert_eq!(l.account(&B), Some(acct(3, 0)));
        assert_eq!(sub(&mut l, &tx(B, A, 1, 0, 3), 0).0, Ok(()));
        // At balance 0 it still exists, with its nonce: an old transaction
        // replayed is still a used nonce.
        assert_eq!(l.account(&B), Some(acct(0, 1)));
        assert_eq!(sub(&mut l, &tx(B, A, 1, 0, 3), 0).0, Err(Refusal::BadNonce));
        // Paying more than it holds is insufficient funds, not no_account.
        assert_eq!(sub(&mut l, &tx(B, A, 2, 0, 3), 0).0, Err(Refusal::InsufficientFunds));
        // Transfers of less than min_fee (even 0) to an existing account apply.
        assert_eq!(sub(&mut l, &tx(A, B, 2, 0, 3), 0).0, Ok(()));
        assert_eq!(sub(&mut l, &tx(A, B, 3, 1, 3), 0).0, Ok(()));
        assert_eq!(l.account(&B), Some(acct(1, 1)));
        assert_eq!(l.account_count(), 2);
        let c = l.counters();
        assert_eq!(
            (
                c.get(Refusal::NoAccount),
                c.get(Refusal::FeeTooLow),
                c.get(Refusal::BadNonce),
                c.get(Refusal::InsufficientFunds)
            ),
            (5, 1, 1, 1)
        );
        check_invariants(&l);
    }

    #[test]
    fn funds_are_checked_before_the_recipient() {
        let mut l = ledger(&[(A, 5)], LedgerConfig::default());
        assert_eq!(sub(&mut l, &tx(A, C, 1, 5, 1), 0).0, Err(Refusal::InsufficientFunds));
        assert_eq!(sub(&mut l, &tx_kind(Kind::Message, A, C, 1, 0, 6), 0).0, Err(Refusal::InsufficientFunds));
        assert_eq!(sub(&mut l, &tx_kind(Kind::Message, A, C, 1, 0, 5), 0).0, Err(Refusal::NoAccount));
        check_invariants(&l);
    }

    #[test]
    fn waiting_tx_sees_the_recipient_created_before_its_turn() {
        let mut l = ledger(&[(A, 1000)], LedgerConfig::default());
        // Nonce 2 messages C, which nonce 1 is about to create.
        assert_eq!(sub(&mut l, &tx_kind(Kind::Message, A, C, 2, 0, 1), 0), (Ok(()), vec![]));
        // Nonce 3 messages B, which never comes into being.
        assert_eq!(sub(&mut l, &tx_kind(Kind::Message, A, B, 3, 0, 1), 0), (Ok(()), vec![]));
        assert_eq!(sub(&mut l, &tx(A, C, 1, 1, 1), 0), (Ok(()), vec![1, 2]));
        let c = l.counters();
        assert_eq!((c.applied, c.get(Refusal::NoAccount), c.queued), (2, 1, 0));
        let mut ids = Vec::new();
        l.take_dropped(&mut ids);
        assert_eq!(ids, vec![id(&tx_kind(Kind::Message, A, B, 3, 0, 1))]);
        check_invariants(&l);
    }

    #[test]
    fn bad_nonce() {
        let mut l = ledger(&[(A, 1000)], LedgerConfig::default());
        assert_eq!(sub(&mut l, &tx(A, B, 0, 1, 1), 0).0, Err(Refusal::BadNonce));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 1, 1), 0).0, Ok(()));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 1, 1), 0).0, Err(Refusal::BadNonce));
        // A second transaction for a nonce that already waits.
        assert_eq!(sub(&mut l, &tx(A, B, 3, 1, 1), 0), (Ok(()), vec![]));
        assert_eq!(sub(&mut l, &tx(A, C, 3, 2, 2), 0).0, Err(Refusal::BadNonce));
        assert_eq!(l.counters().get(Refusal::BadNonce), 3);
        check_invariants(&l);
    }

    #[test]
    fn insufficient_funds_and_overflow() {
        let mut l = ledger(&[(A, 100), (B, 5)], LedgerConfig::default());
        assert_eq!(sub(&mut l, &tx(A, B, 1, 100, 1), 0).0, Err(Refusal::InsufficientFunds));
        assert_eq!(l.account(&A), Some(acct(100, 0)), "nonce did not advance");
        assert_eq!(sub(&mut l, &tx(A, B, 1, u64::MAX, 1), 0).0, Err(Refusal::InsufficientFunds));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 1, u64::MAX), 0).0, Err(Refusal::InsufficientFunds));
        // An account with balance 0 cannot pay the fee.
        assert_eq!(sub(&mut l, &tx(A, B, 1, 100, 0), 0).0, Err(Refusal::FeeTooLow));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 99, 1), 0).0, Ok(()));
        assert_eq!(sub(&mut l, &tx(A, B, 2, 0, 1), 0).0, Err(Refusal::InsufficientFunds));
        assert_eq!(l.account(&A), Some(acct(0, 1)));
        assert_eq!(l.counters().get(Refusal::InsufficientFunds), 4);
        check_invariants(&l);
    }

    #[test]
    fn credit_overflow_is_refused() {
        // Unreachable through a valid genesis; forced here to pin the rule.
        let mut l = ledger(&[(A, 10)], LedgerConfig::default());
        l.state.set_account(B, acct(u64::MAX, 0));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 1, 1), 0).0, Err(Refusal::InsufficientFunds));
        assert_eq!(sub(&mut l, &tx(A, B, 1, 0, 1), 0).0, Ok(()));
    }

    #[test]
    fn gap_waits_then_fills_in_order() {
        let mut l = ledger(&[(A, 1000)], LedgerConfig::default());
        assert_eq!(sub(&mut l, &tx(A, B, 4, 1, 1), 0), (Ok(()), vec![]));
        assert_eq!(sub(&mut l, &tx(A, B, 2, 1, 1), 10), (Ok(()), vec![]));
        assert_eq!(sub(&mut l, &tx(A, B, 3, 1, 1), 20), (Ok(()), vec![]));
        assert_eq!(l.counters().queued, 3);
        check_invariants(&l);
        assert_eq!(sub(&mut l, &tx(A, B, 1, 1, 1), 30), (Ok(()), vec![1, 2, 3, 4]));
        assert_eq!(l.counters().queued, 0);
        assert_eq!(l.account(&A), Some(acct(992, 4)));
        check_invariants(&l);
    }

    #[test]
    fn refused_successor_stops_the_chain() {
        let mut l = ledger(&[(A, 10)], LedgerConfig::default());
        sub(&mut l, &tx(A, B, 2, 100, 1), 0).0.unwrap(); // cannot pay
        sub(&mut l, &tx(A, B, 3, 1, 1), 0).0.unwrap();
        assert_eq!(sub(&mut l, &tx(A, B, 1, 1, 1), 0), (Ok(()), vec![1]));
        let c = l.counters();
        assert_eq!((c.applied, c.get(Refusal::InsufficientFunds), c.queued), (1, 1, 1));
        // Nonce 2 can be sent again; then 3 follows.
        assert_eq!(sub(&mut l, &tx(A, B, 2, 1, 1), 0), (Ok(()), vec![2, 3]));
        check_invariants(&l);
    }

    #[test]
    fn queue_full_drops_the_new_one() {
        let cfg = LedgerConfig { queue_capacity: 2, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 1000)], cfg);
        sub(&mut l, &tx(A, B, 5, 1, 1), 0).0.unwrap();
        sub(&mut l, &tx(A, B, 3, 1, 1), 0).0.unwrap();
        assert_eq!(sub(&mut l, &tx(A, B, 2, 1, 1), 0).0, Err(Refusal::NonceGap));
        assert_eq!(l.counters().get(Refusal::NonceGap), 1);
        // The waiting ones are unchanged; 1, then 2, fill the gap.
        sub(&mut l, &tx(A, B, 1, 1, 1), 0).0.unwrap();
        assert_eq!(sub(&mut l, &tx(A, B, 2, 1, 1), 0), (Ok(()), vec![2, 3]));
        assert_eq!(l.counters().queued, 1);
        check_invariants(&l);
    }

    #[test]
    fn global_queue_limit() {
        let cfg = LedgerConfig { max_queued_total: 2, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 1000), (B, 1000)], cfg);
        sub(&mut l, &tx(A, C, 2, 1, 1), 0).0.unwrap();
        sub(&mut l, &tx(B, C, 2, 1, 1), 0).0.unwrap();
        assert_eq!(sub(&mut l, &tx(A, C, 3, 1, 1), 0).0, Err(Refusal::NonceGap));
        check_invariants(&l);
        let cfg = LedgerConfig { queue_capacity: 0, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 1000)], cfg);
        assert_eq!(sub(&mut l, &tx(A, C, 2, 1, 1), 0).0, Err(Refusal::NonceGap));
        assert_eq!(sub(&mut l, &tx(A, C, 1, 1, 1), 0).0, Ok(()));
    }

    #[test]
    fn staleness() {
        let cfg = LedgerConfig { stale_ms: 2000, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 1000), (B, 1000)], cfg);
        sub(&mut l, &tx(A, C, 3, 1, 1), 1000).0.unwrap();
        sub(&mut l, &tx(B, C, 2, 1, 1), 1500).0.unwrap();
        assert_eq!(l.expire(3000), 0, "waited exactly 2000 ms: not more than the limit");
        assert_eq!(l.expire(3001), 1);
        assert_eq!((l.counters().get(Refusal::NonceGap), l.counters().queued), (1, 1));
        // A clock that steps back drops nothing and does not un-expire.
        assert_eq!(l.expire(100), 0);
        // Submit judges staleness too: B's waiting tx goes at 3501.
        assert_eq!(sub(&mut l, &tx(A, C, 1, 1, 1), 3501), (Ok(()), vec![1]));
        assert_eq!((l.counters().get(Refusal::NonceGap), l.counters().queued), (2, 0));
        // B's nonce 2 is gone; sending 1 does not bring it back.
        assert_eq!(sub(&mut l, &tx(B, C, 1, 1, 1), 3502), (Ok(()), vec![1]));
        check_invariants(&l);
    }

    #[test]
    fn applied_tx_leaves_no_stale_record() {
        let mut l = ledger(&[(A, 1000)], LedgerConfig::default());
        sub(&mut l, &tx(A, C, 2, 1, 1), 0).0.unwrap();
        sub(&mut l, &tx(A, C, 1, 1, 1), 10).0.unwrap();
        // Same key and nonce waits again later: the first record must not
        // expire it early.
        sub(&mut l, &tx(A, C, 4, 1, 1), 1500).0.unwrap();
        assert_eq!(l.expire(2500), 0);
        assert_eq!(l.counters().queued, 1);
        assert_eq!(l.expire(3501), 1);
        check_invariants(&l);
    }

    #[test]
    fn timeline_stays_bounded() {
        let mut l = ledger(&[(A, u64::MAX / 2), (B, u64::MAX / 2)], LedgerConfig::default());
        // A's nonce 2 waits for good (1 never comes): a live record.
        sub(&mut l, &tx(A, C, 2, 1, 1), 0).0.unwrap();
        // Each of B's transactions waits briefly, then applies: dead records.
        for n in (1..=20_000u64).step_by(2) {
            sub(&mut l, &tx(B, C, n + 1, 1, 1), 0).0.unwrap();
            sub(&mut l, &tx(B, C, n, 1, 1), 0).0.unwrap();
        }
        assert_eq!(l.counters().applied, 20_000);
        assert_eq!(l.counters().queued, 1);
        assert!(l.timeline.len() <= 2 + 64, "{}", l.timeline.len());
        // The live record survived compaction and still expires on time.
        assert_eq!(l.expire(2000), 0);
        assert_eq!(l.expire(2001), 1);
        check_invariants(&l);
    }

    #[test]
    fn drop_all_queued_and_malformed() {
        let mut l = ledger(&[(A, 1000)], LedgerConfig::default());
        sub(&mut l, &tx(A, C, 2, 1, 1), 0).0.unwrap();
        sub(&mut l, &tx(A, C, 3, 1, 1), 0).0.unwrap();
        assert_eq!(sub(&mut l, &[1, 2, 3], 0).0, Err(Refusal::Malformed));
        assert_eq!(l.drop_all_queued(), 2);
        let c = l.counters();
        assert_eq!((c.submitted, c.get(Refusal::NonceGap), c.get(Refusal::Malformed), c.queued), (3, 2, 1, 0));
        check_invariants(&l);
    }

    #[test]
    fn state_root_is_order_independent() {
        let mut l1 = ledger(&[(A, 1000), (B, 1000)], LedgerConfig::default());
        let mut l2 = ledger(&[(B, 1000), (A, 1000)], LedgerConfig::default());
        assert_eq!(l1.state_root(), l2.state_root());
        sub(&mut l1, &tx(A, C, 1, 5, 1), 0).0.unwrap();
        sub(&mut l1, &tx(B, C, 1, 7, 1), 0).0.unwrap();
        assert_ne!(l1.state_root(), l2.state_root());
        sub(&mut l2, &tx(B, C, 1, 7, 1), 0).0.unwrap();
        sub(&mut l2, &tx(A, C, 1, 5, 1), 0).0.unwrap();
        assert_eq!(l1.state_root(), l2.state_root());
    }

    #[test]
    fn counters_add() {
        let with = |submitted, applied, queued, refused: &[(Refusal, u64)]| {
            let mut c = LedgerCounters { submitted, applied, queued, ..Default::default() };
            for &(r, n) in refused {
                c.refused[r.index()] = n;
            }
            c
        };
        let mut a = with(3, 1, 1, &[(Refusal::BadNonce, 1)]);
        a += with(2, 0, 0, &[(Refusal::NonceGap, 1), (Refusal::Malformed, 1)]);
        assert_eq!(a.submitted, a.applied + a.dropped() + a.queued);
        a += with(3, 0, 0, &[(Refusal::FeeTooLow, 1), (Refusal::NoAccount, 2)]);
        assert_eq!((a.get(Refusal::FeeTooLow), a.get(Refusal::NoAccount), a.dropped()), (1, 2, 6));
        assert_eq!(a.submitted, a.applied + a.dropped() + a.queued);
    }

    #[test]
    fn refusal_names() {
        assert_eq!(Refusal::FeeTooLow.to_string(), "fee_too_low");
        assert_eq!(Refusal::NoAccount.name(), "no_account");
        // Every name is distinct and ALL is in index order.
        let names: std::collections::HashSet<_> = Refusal::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), Refusal::COUNT);
        assert!(Refusal::ALL.iter().enumerate().all(|(i, r)| r.index() == i));
    }

    fn id(t: &[u8]) -> [u8; 32] {
        Sha256::digest(unsigned_part(t)).into()
    }

    fn taken(l: &mut Ledger) -> Vec<[u8; 32]> {
        let mut out = Vec::new();
        l.take_dropped(&mut out);
        out
    }

    #[test]
    fn dropped_waiting_txs_are_reported_once() {
        let cfg = LedgerConfig { stale_ms: 2000, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 100), (B, 100)], cfg);
        // Stale: A's nonce 3 waits from t=1000 and goes after 3000.
        let a3 = tx(A, C, 3, 1, 1);
        assert_eq!(sub(&mut l, &a3, 1000), (Ok(()), vec![]));
        assert_eq!(l.expire(3000), 0);
        assert!(taken(&mut l).is_empty());
        assert_eq!(l.expire(3001), 1);
        assert_eq!(taken(&mut l), vec![id(&a3)]);
        assert!(taken(&mut l).is_empty(), "reported once");
        // Refused on its turn: B's nonce 2 cannot pay when 1 applies.
        let b2 = tx(B, C, 2, 1000, 1);
        let b1 = tx(B, C, 1, 1, 1);
        sub(&mut l, &b2, 3001).0.unwrap();
        assert_eq!(sub(&mut l, &b1, 3002), (Ok(()), vec![1]));
        assert_eq!(l.counters().get(Refusal::InsufficientFunds), 1);
        assert_eq!(taken(&mut l), vec![id(&b2)]);
        // Applied after waiting: never reported.
        let b3 = tx(B, C, 3, 1, 1);
        sub(&mut l, &b3, 3003).0.unwrap();
        assert_eq!(sub(&mut l, &tx(B, C, 2, 1, 1), 3003), (Ok(()), vec![2, 3]));
        assert!(taken(&mut l).is_empty());
        // Refused at submit (Err): never accepted, never reported.
        assert_eq!(sub(&mut l, &b3, 3003).0, Err(Refusal::BadNonce));
        assert_eq!(sub(&mut l, &tx(A, C, 5, 1, 0), 3003).0, Err(Refusal::FeeTooLow));
        assert!(taken(&mut l).is_empty());
        // Shutdown: what still waits is reported, into a caller's Vec that
        // already holds something (appended, not replaced).
        let a4 = tx(A, C, 4, 1, 1);
        let b6 = tx(B, C, 6, 1, 1);
        sub(&mut l, &a4, 3004).0.unwrap();
        sub(&mut l, &b6, 3004).0.unwrap();
        assert_eq!(l.drop_all_queued(), 2);
        let mut out = vec![[9; 32]];
        l.take_dropped(&mut out);
        out[1..].sort();
        let mut want = [id(&a4), id(&b6)];
        want.sort();
        assert_eq!(out[0], [9; 32]);
        assert_eq!(&out[1..], &want[..]);
        assert!(taken(&mut l).is_empty());
        assert_eq!(l.dropped_ids_lost(), 0);
        check_invariants(&l);
    }

    #[test]
    fn dropped_ids_are_bounded() {
        let cfg = LedgerConfig { max_queued_total: 3, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 100)], cfg);
        let mut out = Vec::new();
        for round in 0..2u64 {
            // Three wait, then all go stale: the list is full.
            for n in 2..=4 {
                sub(&mut l, &tx(A, C, n, round, 1), round * 10_000).0.unwrap();
            }
            assert_eq!(l.expire(round * 10_000 + 2001), 3);
        }
        assert_eq!(l.dropped_ids_lost(), 3, "the second round found the list full");
        l.take_dropped(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], id(&tx(A, C, 2, 0, 1)));
        // Drained: room again, the buffer kept.
        let cap = l.dropped_ids.capacity();
        sub(&mut l, &tx(A, C, 2, 5, 1), 30_000).0.unwrap();
        l.expire(40_000);
        assert_eq!(l.dropped_ids.capacity(), cap, "no new allocation");
        out.clear();
        l.take_dropped(&mut out);
        assert_eq!(out, vec![id(&tx(A, C, 2, 5, 1))]);
        assert_eq!(l.dropped_ids_lost(), 3);
    }

    #[test]
    fn stranded_successors_are_bounded_in_time() {
        let cfg = LedgerConfig { stale_ms: 2000, ..LedgerConfig::default() };
        let mut l = ledger(&[(A, 10)], cfg);
        let a2 = tx(A, C, 2, 100, 1); // cannot pay when its turn comes
        let a3 = tx(A, C, 3, 1, 1);
        sub(&mut l, &a2, 0).0.unwrap();
        sub(&mut l, &a3, 500).0.unwrap();
        assert_eq!(sub(&mut l, &tx(A, C, 1, 1, 1), 1000), (Ok(()), vec![1]));
        assert_eq!((l.counters().get(Refusal::InsufficientFunds), l.counters().queued), (1, 1));
        assert_eq!(taken(&mut l), vec![id(&a2)]);
        // 3 and 4 are stranded behind the refused 2, each only until its
        // own stale_ms is up, then counted as nonce_gap.
        sub(&mut l, &tx(A, C, 4, 1, 1), 1500).0.unwrap();
        assert_eq!(l.expire(2500), 0);
        assert_eq!(l.expire(2501), 1);
        assert_eq!(taken(&mut l), vec![id(&a3)]);
        assert_eq!(l.counters().queued, 1);
        // Resending 2, then 3, within 4's window applies 4 at once.
        assert_eq!(sub(&mut l, &tx(A, C, 2, 1, 1), 3000), (Ok(()), vec![2]));
        assert_eq!(sub(&mut l, &a3, 3000), (Ok(()), vec![3, 4]));
        let c = l.counters();
        assert_eq!((c.get(Refusal::NonceGap), c.queued, c.applied), (1, 0, 4));
        assert!(taken(&mut l).is_empty());
        check_invariants(&l);
    }

    /// One generated transaction before shuffling.
    #[derive(Debug, Clone)]
    struct Spec {
        from: usize,
        nonce: u64,
        to: usize,
        amount: u64,
        fee: u64,
        kind: u8,
        dt: u64,
        expire: bool,
    }

    fn key(i: usize) -> [u8; 32] {
        [i as u8 + 1; 32]
    }

    fn scenario() -> impl Strategy<Value = (Vec<u64>, LedgerConfig, Vec<Spec>)> {
        (2usize..=5, any::<bool>()).prop_flat_map(|(n, big)| {
            let balances = if big {
                // Near the top of u64 so overflow paths are exercised.
                prop::collection::vec(u64::MAX / 8..=u64::MAX / 5, n).boxed()
            } else {
                prop::collection::vec(0u64..=20_000, n).boxed()
            };
            let amount =
                prop_oneof![6 => 0u64..=6_000, 2 => 0u64..=3, 1 => any::<u64>(), 1 => u64::MAX / 16..=u64::MAX / 4];
            let fee = prop_oneof![8 => 0u64..=60, 1 => any::<u64>()];
            // `to == n` and `from == n` are an account not in genesis (it
            // exists once a large enough transfer credits it).
            let params = (0..=n, amount, fee, 0u8..=11, 0u64..=250, prop::bool::weighted(0.1));
            let per_sender = prop::collection::vec((0u64..=8, prop::collection::vec(1u64..=12, 0..=3)), n + 1);
            let cfg = (1usize..=6, 100u64..=4000, 4usize..=40).prop_map(|(c, s, t)| LedgerConfig {
                inbox_capacity: 256,
                queue_capacity: c,
                stale_ms: s,
                max_queued_total: t,
            });
            (balances, cfg, per_sender, prop::collection::vec(params, 64), any::<u64>()).prop_map(
                |(balances, cfg, per_sender, params, seed)| {
                    let mut specs = Vec::new();
                    for (from, (k, extra)) in per_sender.into_iter().enumerate() {
                        for nonce in (1..=k).chain(extra) {
                            let (to, amount, fee, kind, dt, expire) = params[specs.len() % params.len()];
                            let kind = if kind > 8 { 0 } else { kind };
                            specs.push(Spec { from, nonce, to, amount, fee, kind, dt, expire });
                        }
                    }
                    // Fisher-Yates with a SplitMix64 stream: shuffled nonces.
                    let mut s = seed;
                    for i in (1..specs.len()).rev() {
                        s = s.wrapping_add(0x9E3779B97F4A7C15);
                        let mut z = s;
                        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
                        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
                        z ^= z >> 31;
                        specs.swap(i, (z % (i as u64 + 1)) as usize);
                    }
                    (balances, cfg, specs)
                },
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_tx_accounted_and_money_conserved((balances, cfg, specs) in scenario(), min_fee in 1u64..=3) {
            let accts: Vec<([u8; 32], u64)> = balances.iter().enumerate().map(|(i, &b)| (key(i), b)).collect();
            let g = genesis(&accts).with_min_fee(min_fee).unwrap();
            let mut l = Ledger::new(&g, cfg);
            prop_assert_eq!(l.total_supply(), balances.iter().sum::<u64>());
            let mut applied: Vec<Vec<u8>> = Vec::new();
            let mut now = 0u64;
            let mut height = 0u64;
            // Blocks ended: (transactions applied before, height, fees).
            let mut ends: Vec<(usize, u64, u64)> = Vec::new();
            let mut ok = 0u64;
            // Per id: accepted (`Ok`), applied, reported dropped.
            let mut ids: HashMap<[u8; 32], (u64, u64, u64)> = HashMap::new();
            let mut reported = Vec::new();
            let mut take = |l: &mut Ledger, ids: &mut HashMap<[u8; 32], (u64, u64, u64)>| {
                reported.clear();
                l.take_dropped(&mut reported);
                for i in &reported {
                    ids.entry(*i).or_default().2 += 1;
                }
            };
            for s in &specs {
                now += s.dt;
                let kind = Kind::from_u8(s.kind).unwrap();
                let t = tx_kind(kind, key(s.from), key(s.to), s.nonce, s.amount, s.fee);
                let before = l.counters();
                let sender_existed = l.account(&key(s.from)).is_some();
                let r = l.submit(&t, now, &mut |b| applied.push(b.to_vec()));
                let after = l.counters();
                match r {
                    Ok(()) => {
                        ok += 1;
                        ids.entry(id(&t)).or_default().0 += 1;
                        prop_assert!(s.fee >= min_fee && sender_existed);
                    }
                    Err(Refusal::BadNonce) => prop_assert_eq!(after.get(Refusal::BadNonce), before.get(Refusal::BadNonce) + 1),
                    Err(Refusal::InsufficientFunds) => {
                        prop_assert_eq!(after.get(Refusal::InsufficientFunds), before.get(Refusal::InsufficientFunds) + 1)
                    }
                    Err(Refusal::NonceGap) => prop_assert!(after.get(Refusal::NonceGap) > before.get(Refusal::NonceGap)),
                    Err(Refusal::Malformed) => prop_assert!(false, "well-formed input"),
                    Err(Refusal::FeeTooLow) => {
                        prop_assert!(s.fee < min_fee);
                        prop_assert_eq!(after.get(Refusal::FeeTooLow), before.get(Refusal::FeeTooLow) + 1)
                    }
                    Err(Refusal::NoAccount) => prop_assert!(after.get(Refusal::NoAccount) > before.get(Refusal::NoAccount)),
                    // The kinds' own rules (connections, stake, producers).
                    Err(r) => prop_assert!(after.get(r) > before.get(r)),
                }
                if r != Err(Refusal::FeeTooLow) {
                    prop_assert!(s.fee >= min_fee, "a fee below min_fee is always refused as such");
                }
                if s.expire {
                    now += s.dt;
                    l.expire(now);
                    // A block ends: its fees to a genesis account's node
                    // key, unbonding released.
                    height += 1;
                    let unpaid = l.fees_collected() - l.state().fees_paid();
                    l.end_block(height, Some(key(0)), unpaid);
                    ends.push((applied.len(), height, unpaid));
                }
                take(&mut l, &mut ids);
                check_invariants(&l);
                prop_assert_eq!(applied.len() as u64, l.counters().applied);
            }
            // Every `Ok` applied or waited; refusals are at least the `Err`s.
            prop_assert!(l.counters().dropped() >= specs.len() as u64 - ok);
            l.drop_all_queued();
            take(&mut l, &mut ids);
            check_invariants(&l);
            let c = l.counters();
            prop_assert_eq!(c.queued, 0);
            prop_assert_eq!(c.submitted, specs.len() as u64);
            prop_assert_eq!(
                c.submitted,
                c.applied + c.dropped()
            );
            // Every accepted transaction was applied or reported dropped,
            // exactly once; nothing else was reported.
            prop_assert_eq!(l.dropped_ids_lost(), 0);
            for b in &applied {
                ids.entry(id(b)).or_default().1 += 1;
            }
            for (i, (accepted, done, dropped)) in &ids {
                prop_assert_eq!(*accepted, done + dropped, "{}", hex::encode(i));
            }
            // Accounts come only from the genesis or a credit of min_fee:
            // the first applied transaction from, to or addressed to a new
            // account is one (stake, unstake and register-producer ignore
            // their `to`).
            for (k, _) in l.state().accounts().filter(|(k, _)| !accts.iter().any(|a| a.0 == **k)) {
                let first = applied
                    .iter()
                    .map(|b| Transaction::new_checked(&b[..]).unwrap())
                    .find(|t| {
                        let kind = Kind::from_u8(t.kind_byte()).unwrap();
                        let addressed = !matches!(kind, Kind::Stake | Kind::Unstake | Kind::RegisterProducer);
                        t.from() == *k || (t.to() == *k && addressed)
                    })
                    .unwrap();
                prop_assert!(first.kind_byte() == 0 && first.from() != *k && first.amount() >= min_fee);
            }

            // Replaying the applied transactions in order, each is the
            // sender's next nonce and the final nonces match.
            let mut next: HashMap<[u8; 32], u64> = HashMap::new();
            for b in &applied {
                let t = Transaction::new_checked(&b[..]).unwrap();
                let n = next.entry(t.from()).or_insert(1);
                prop_assert_eq!(t.nonce(), *n);
                *n += 1;
            }
            for (k, n) in &next {
                prop_assert_eq!(l.account(k).unwrap().nonce, n - 1);
            }

            // A fresh ledger fed only the applied transactions, in order,
            // with the same block ends, applies them all and reaches the
            // same state.
            let mut replay = Ledger::new(&g, cfg);
            prop_assert_eq!(replay.min_fee(), min_fee);
            let mut e = ends.iter().peekable();
            for (i, b) in applied.iter().enumerate() {
                while let Some(&(_, h, fees)) = e.next_if(|x| x.0 == i) {
                    replay.end_block(h, Some(key(0)), fees);
                }
                prop_assert_eq!(replay.submit(b, 0, &mut |_| {}), Ok(()));
            }
            for &(_, h, fees) in e {
                replay.end_block(h, Some(key(0)), fees);
            }
            prop_assert_eq!(replay.counters().applied, applied.len() as u64);
            prop_assert_eq!(replay.state_root(), l.state_root());
            prop_assert_eq!(replay.fees_collected(), l.fees_collected());
        }
    }
}
