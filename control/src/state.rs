//! The committed-state side of the ledger: accounts, stake, producers, the
//! records accounts address to one another (ATT's messaging), and what each
//! of the nine transaction kinds does to them ([`State::execute`]).
//!
//! [`crate::ledger::Ledger`] decides *whether* a transaction may run now
//! (fee, sender, nonce order, the gap queue); `State` runs it: every check
//! of the transaction's kind, then every change, or nothing at all. The
//! rules, their order and the refusals are written down in `docs/LEDGER.md`.
//!
//! # Supply
//!
//! Nothing is created or destroyed but by the consensus: `genesis total +
//! minted − slashed == Σ balance + Σ staked + Σ unbonding + Σ producer bonds
//! + fees not yet paid out + voters' rewards not yet paid out`
//! ([`State::supply`]; block rewards mint, equivocation slashes, both only
//! with a validator list, `docs/CONSENSUS.md`). Fees are paid to the producer of the block that holds the
//! transaction ([`State::end_block`]).
#![deny(clippy::indexing_slicing)]

use std::collections::{BTreeMap, HashMap, VecDeque};

use attnet_core::wire::tx::{Kind, Transaction};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::election::{ElectionParams, Seat};
use crate::genesis::Genesis;
use crate::ledger::Refusal;
use crate::merkle::Hash;
use crate::root::AccountRoot;

/// An account's state. `Copy`, so reading it never borrows the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Account {
    /// Spendable balance.
    pub balance: u64,
    /// Nonce of the last applied transaction from this account (0: none);
    /// the next one must carry `nonce + 1`.
    pub nonce: u64,
    /// Staked: counts for the producer this account votes for.
    pub staked: u64,
    /// Unstaked, waiting for [`Account::release_height`] to return to the
    /// balance.
    pub unbonding: u64,
    /// The height at whose end `unbonding` returns to the balance (0: none).
    pub release_height: u64,
    /// The producer (its owner account) this account's stake votes for.
    pub vote: Option<[u8; 32]>,
    /// The height since which `staked` has been above 0 without a break
    /// (0: nothing staked): what the consensus weighs as stake held over
    /// time.
    pub staked_since: u64,
    /// Blocks this account's producer proposed that became final.
    pub blocks_proposed: u64,
    /// Commit certificates this account's producer signed (with consensus).
    pub certificates_signed: u64,
}

/// A registered block producer, keyed by its owner account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    /// The producer's node key (the key its node signs WELCOMEs and blocks
    /// with).
    pub node_key: [u8; 32],
    /// Where its node listens: `HOST:PORT`.
    pub address: String,
    /// The bond taken from the owner at registration (a genesis parameter).
    pub bond: u64,
    /// Stake voting for it.
    pub votes: u64,
    /// The height of the block that registered it.
    pub since: u64,
}

/// A record one account addressed to another (message, connect-request,
/// connect-accept, endpoint-offer), kept in the recipient's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The transaction's kind.
    #[serde(with = "kind_byte")]
    pub kind: Kind,
    /// The sender.
    pub from: [u8; 32],
    /// The sender's nonce (with `from`, names the transaction).
    pub nonce: u64,
    /// The height of the block the transaction is in.
    pub height: u64,
    /// The memo: message text, connection reason, or a sealed endpoint.
    pub memo: Vec<u8>,
}

/// One account's inbox: the newest records addressed to it, and how many
/// it ever received (so a reader numbers records from the first ever and
/// sees how many were evicted).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Inbox {
    received: u64,
    records: VecDeque<Record>,
}

/// One account's connections and open requests, each a sorted list of
/// keys without repeats: membership by binary search, and a query's page
/// starts at its index in O(1) (a set would walk every entry before it, a
/// cost the asker, not the account, would choose). Adding or removing
/// moves the list's tail: bounded by the paid transactions that built it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Links {
    connected: Vec<[u8; 32]>,
    /// Accounts that asked this one to connect.
    incoming: Vec<[u8; 32]>,
    /// Accounts this one asked to connect.
    outgoing: Vec<[u8; 32]>,
}

fn has(list: &[[u8; 32]], k: &[u8; 32]) -> bool {
    list.binary_search(k).is_ok()
}

/// Adds `k`; whether it was missing.
fn add(list: &mut Vec<[u8; 32]>, k: [u8; 32]) -> bool {
    match list.binary_search(&k) {
        Err(at) => {
            list.insert(at, k);
            true
        }
        Ok(_) => false,
    }
}

/// Removes `k`; whether it was there.
fn drop_key(list: &mut Vec<[u8; 32]>, k: &[u8; 32]) -> bool {
    match list.binary_search(k) {
        Ok(at) => {
            list.remove(at);
            true
        }
        Err(_) => false,
    }
}

/// How an account relates to another in [`State::links`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// Connected (a request accepted, either way).
    Connected,
    /// The other asked this account to connect; not accepted yet.
    RequestIn,
    /// This account asked the other to connect; not accepted yet.
    RequestOut,
}

/// The parameters of execution, from the genesis and the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateConfig {
    /// The least fee, and the least credit that creates an account.
    pub min_fee: u64,
    /// Blocks an unstaked amount waits before it returns to the balance.
    pub unbonding_blocks: u64,
    /// What registering a producer bonds.
    pub producer_bond: u64,
    /// Records kept per inbox; the oldest goes when a new one arrives.
    pub inbox_capacity: usize,
}

/// Where the supply is: `total == balances + staked + unbonding + bonds +
/// fees_unpaid` at every moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Supply {
    /// The genesis total (plus minted minus slashed, 0 until consensus).
    pub total: u128,
    /// Σ balances.
    pub balances: u128,
    /// Σ staked.
    pub staked: u128,
    /// Σ unbonding.
    pub unbonding: u128,
    /// Σ producer bonds.
    pub bonds: u128,
    /// Fees of applied transactions not yet paid to a producer.
    pub fees_unpaid: u128,
    /// Voters' shares of block rewards not yet paid out.
    pub rewards_unpaid: u128,
}

impl Supply {
    /// Whether nothing was created or lost.
    pub fn holds(&self) -> bool {
        self.total == self.balances + self.staked + self.unbonding + self.bonds + self.fees_unpaid + self.rewards_unpaid
    }
}

/// Accounts, producers, connections and inboxes. It serializes (with
/// `serde`) to what a snapshot holds: everything but the state root's
/// tree, which [`State::with_root_rebuilt`] recomputes after loading.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    cfg: StateConfig,
    #[serde(deserialize_with = "accounts_presized")]
    accounts: HashMap<[u8; 32], Account>,
    producers: HashMap<[u8; 32], Producer>,
    /// Producer node key → owner account.
    node_keys: HashMap<[u8; 32], [u8; 32]>,
    /// Per account: connected peers, open requests in and out (each
    /// relation is held at both ends).
    links: HashMap<[u8; 32], Links>,
    inboxes: HashMap<[u8; 32], Inbox>,
    /// Release height → accounts whose unbonding may end then.
    releases: BTreeMap<u64, Vec<[u8; 32]>>,
    /// Height of the last final block.
    height: u64,
    fees_collected: u64,
    fees_paid: u64,
    total: u64,
    records_evicted: u64,
    /// How seats are elected; `None`: no elections (a network without a
    /// validator list, final at once).
    election: Option<ElectionParams>,
    /// The seats that vote on the next block: the genesis validators,
    /// then the last epoch boundary's election (`crate::election`).
    seats: Vec<Seat>,
    /// The seats that voted on the last block ended.
    voted: Vec<Seat>,
    /// Bonds taken by slashing, out of the supply.
    slashed: u64,
    /// Issued as block rewards, into the supply.
    minted: u64,
    /// Voters' share of block rewards, per producer (owner), paid out at
    /// the next epoch boundary.
    pools: BTreeMap<[u8; 32], u64>,
    /// Node keys and owner accounts of producers slashed for
    /// equivocation: the key never holds a seat again, the owner never
    /// registers another producer.
    banned: std::collections::BTreeSet<[u8; 32]>,
    /// The state root over every account (and its producer record).
    #[serde(skip, default = "AccountRoot::new")]
    root: AccountRoot,
    /// The changes of the blocks not yet final, to undo them (empty when
    /// no block is open: replay and the store's replica keep none).
    #[serde(skip)]
    journal: Journal,
}

/// Decodes the account map into a map sized for it at once: serde's own
/// reserves at most a megabyte's worth and then grows by doubling, which
/// for a snapshot of a million accounts rehashed the map several times
/// (a fifth of loading it). The size the encoding announces is trusted up
/// to 4 M accounts (a snapshot is checksummed and local); a larger map
/// grows from there.
fn accounts_presized<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HashMap<[u8; 32], Account>, D::Error> {
    struct Sized;
    impl<'de> serde::de::Visitor<'de> for Sized {
        type Value = HashMap<[u8; 32], Account>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of accounts")
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
            let mut out = HashMap::with_capacity(m.size_hint().unwrap_or(0).min(1 << 22));
            while let Some((k, v)) = m.next_entry()? {
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Sized)
}

/// Which of an account's link lists a [`Undo::Link`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkList {
    Connected,
    Incoming,
    Outgoing,
}

impl Links {
    fn list(&mut self, which: LinkList) -> &mut Vec<[u8; 32]> {
        match which {
            LinkList::Connected => &mut self.connected,
            LinkList::Incoming => &mut self.incoming,
            LinkList::Outgoing => &mut self.outgoing,
        }
    }
}

/// One change a block made, with what it replaced; undone newest first.
#[derive(Debug, Clone)]
enum Undo {
    /// An account was written; it held this before (`None`: it did not
    /// exist).
    Account([u8; 32], Option<Account>),
    /// A producer's votes changed from this.
    Votes([u8; 32], u64),
    /// A producer was registered: owner, node key.
    ProducerAdded([u8; 32], [u8; 32]),
    /// `other` was added to (or removed from) one of `key`'s link lists.
    Link { key: [u8; 32], list: LinkList, other: [u8; 32], added: bool },
    /// `key`'s link lists came into being.
    LinksCreated([u8; 32]),
    /// A record was addressed to `to`: whether it was kept (capacity above
    /// 0), the record it evicted, and whether the inbox came into being.
    Record { to: [u8; 32], kept: bool, evicted: Option<Record>, created: bool },
    /// An account was added to the releases of this height.
    ReleaseAdded(u64),
    /// The releases of this height were taken by [`State::end_block`].
    Released(u64, Vec<[u8; 32]>),
    /// An election replaced these seats.
    Seats(Vec<Seat>),
    /// The seats that voted on the last block were these.
    Voted(Vec<Seat>),
    /// A producer was slashed: its owner and its record as it was.
    Slashed([u8; 32], Producer),
    /// This much was minted.
    Minted(u64),
    /// A producer's voter pool held this (`None`: no entry).
    Pool([u8; 32], Option<u64>),
}

/// Where an open block's changes start in the journal, and the counters
/// as they were then.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: usize,
    height: u64,
    fees_collected: u64,
    fees_paid: u64,
    records_evicted: u64,
}

/// The undo log of the blocks not yet final, oldest first.
#[derive(Debug, Clone, Default)]
struct Journal {
    undo: Vec<Undo>,
    marks: Vec<Mark>,
}

/// Why [`State::apply_block`] refused a block; the state is as before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRefusal {
    /// The block's height is not the state's next.
    Height { expected: u64, got: u64 },
    /// Transaction `index` is malformed, out of nonce order, below the
    /// fee, or refused by its kind's rule.
    Transaction { index: usize, reason: Refusal },
    /// Every transaction ran but the state after them is not the one the
    /// header commits to.
    StateRoot { computed: Hash },
}

impl std::fmt::Display for BlockRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockRefusal::Height { expected, got } => write!(f, "block {got} where block {expected} was due"),
            BlockRefusal::Transaction { index, reason } => write!(f, "transaction {index} does not apply ({reason})"),
            BlockRefusal::StateRoot { computed } => {
                write!(f, "the state after it hashes to {}, not to its header's state root", hex::encode(computed))
            }
        }
    }
}

/// A [`Kind`] as its byte, for serialization.
mod kind_byte {
    use attnet_core::wire::tx::Kind;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &Kind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(*k as u8)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Kind, D::Error> {
        let b = u8::deserialize(d)?;
        Kind::ALL.get(usize::from(b)).copied().ok_or_else(|| D::Error::custom("unknown transaction kind"))
    }
}

/// A producer's network address: `HOST:PORT`, UTF-8, at most 255 bytes, a
/// non-empty host without whitespace or control characters, a port
/// 1..=65535.
pub fn valid_address(memo: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(memo) else { return false };
    let Some((host, port)) = s.rsplit_once(':') else { return false };
    s.len() <= 255
        && !host.is_empty()
        && !host.chars().any(|c| c.is_whitespace() || c.is_control())
        && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// An account's leaf in the state root: SHA-256 over `0x00 || key ||
/// balance || nonce || staked || unbonding || release_height ||
/// staked_since || blocks_proposed || certificates_signed` (each `u64 LE`),
/// then `vote` (a 0 byte, or 1 and the producer's owner key), then its
/// producer record (a 0 byte, or 1, node key, bond, votes, since (`u64
/// LE`), the address length (`u16 LE`) and bytes).
pub fn leaf_hash(
    key: &[u8; 32],
    accounts: &HashMap<[u8; 32], Account>,
    producers: &HashMap<[u8; 32], Producer>,
) -> Option<Hash> {
    use std::io::Write;
    let a = accounts.get(key)?;
    // The account's part in one buffer and one `update`: a dozen small
    // updates cost about as much as the compression itself (recovery
    // rehashes every account of a snapshot, and each block's changed ones).
    let mut buf = [0u8; 1 + 32 + 8 * 8 + 1 + 32];
    let mut w = &mut buf[..];
    // Writes into the array cannot fail: it is sized for the most there is.
    let _ = w.write_all(&[0u8]).and_then(|_| w.write_all(key));
    for v in [
        a.balance,
        a.nonce,
        a.staked,
        a.unbonding,
        a.release_height,
        a.staked_since,
        a.blocks_proposed,
        a.certificates_signed,
    ] {
        let _ = w.write_all(&v.to_le_bytes());
    }
    let _ = match a.vote {
        Some(v) => w.write_all(&[1u8]).and_then(|_| w.write_all(&v)),
        None => w.write_all(&[0u8]),
    };
    let rest = w.len();
    let used = buf.len() - rest;
    let mut h = Sha256::new();
    h.update(buf.get(..used).unwrap_or_default());
    match producers.get(key) {
        Some(p) => {
            h.update([1u8]);
            h.update(p.node_key);
            for v in [p.bond, p.votes, p.since] {
                h.update(v.to_le_bytes());
            }
            // Addresses are at most 255 bytes (`valid_address`).
            h.update((p.address.len() as u16).to_le_bytes());
            h.update(p.address.as_bytes());
        }
        None => h.update([0u8]),
    }
    Some(h.finalize().into())
}

/// Every change one transaction makes, computed before any is made.
struct Changes {
    from: Account,
    to: Option<([u8; 32], Account)>,
    fees: u64,
}

impl State {
    /// The genesis state: its balances, nothing staked; the genesis
    /// validators are registered producers (their bonds taken from their
    /// owners' balances) and hold the seats until the first election.
    pub fn new(genesis: &Genesis, inbox_capacity: usize) -> State {
        let mut accounts: HashMap<[u8; 32], Account> =
            genesis.accounts().iter().map(|a| (a.key, Account { balance: a.balance, ..Account::default() })).collect();
        let mut producers = HashMap::new();
        let mut node_keys = HashMap::new();
        let mut seats = Vec::new();
        for v in genesis.validators() {
            // The genesis checked that the owner exists, covers the bond and
            // bonds no other seat.
            if let Some(a) = accounts.get_mut(&v.owner) {
                a.balance = a.balance.saturating_sub(v.bond);
            }
            let p = Producer { node_key: v.node_key, address: v.address.to_string(), bond: v.bond, votes: 0, since: 0 };
            producers.insert(v.owner, p);
            node_keys.insert(v.node_key, v.owner);
            seats.push(Seat { owner: v.owner, node_key: v.node_key, score: 0 });
        }
        let mut root = AccountRoot::new();
        for k in accounts.keys() {
            root.mark(*k);
        }
        State {
            root,
            cfg: StateConfig {
                min_fee: genesis.min_fee(),
                unbonding_blocks: genesis.unbonding_blocks(),
                producer_bond: genesis.producer_bond(),
                inbox_capacity,
            },
            accounts,
            producers,
            node_keys,
            links: HashMap::new(),
            inboxes: HashMap::new(),
            releases: BTreeMap::new(),
            height: 0,
            fees_collected: 0,
            fees_paid: 0,
            total: genesis.total_supply(),
            records_evicted: 0,
            election: (!genesis.validators().is_empty()).then(|| genesis.election()),
            voted: seats.clone(),
            seats,
            slashed: 0,
            minted: 0,
            pools: BTreeMap::new(),
            banned: Default::default(),
            journal: Journal::default(),
        }
    }

    /// The seats that vote on the block after the last one ended: the
    /// genesis validators until the first epoch boundary, then each
    /// boundary's election. Empty without a validator list.
    pub fn seats(&self) -> &[Seat] {
        &self.seats
    }

    /// The seats that voted on the last block ended (they differ from
    /// [`State::seats`] right after an epoch boundary).
    pub fn voted(&self) -> &[Seat] {
        &self.voted
    }

    /// Issued as block rewards so far.
    pub fn minted(&self) -> u64 {
        self.minted
    }

    /// Bonds taken by slashing so far.
    pub fn slashed(&self) -> u64 {
        self.slashed
    }

    /// Slashes the producer whose node key is `node_key` for equivocation
    /// (evidence of the engine, carried in a final block): its whole bond
    /// leaves the supply, the producer record goes (its voters' stake
    /// votes for no one until they vote again), the node key never holds
    /// a seat again and the owner never registers another producer. It keeps its seat until the next epoch
    /// boundary, as the engine's seats change only there. Returns the
    /// bond taken; 0 for a key that is no producer (slashed already).
    pub fn slash(&mut self, node_key: &[u8; 32]) -> u64 {
        let Some(owner) = self.node_keys.get(node_key).copied() else { return 0 };
        let Some(p) = self.producers.remove(&owner) else { return 0 };
        self.node_keys.remove(node_key);
        // Neither was banned: registration refuses banned keys.
        self.banned.insert(*node_key);
        self.banned.insert(owner);
        self.slashed = self.slashed.saturating_add(p.bond);
        self.total = self.total.saturating_sub(p.bond);
        self.root.mark(owner);
        let bond = p.bond;
        self.log(Undo::Slashed(owner, p));
        bond
    }

    /// Sets an account as is (tests that need states no transaction
    /// sequence reaches).
    #[cfg(test)]
    pub(crate) fn set_account(&mut self, key: [u8; 32], a: Account) {
        self.accounts.insert(key, a);
        self.root.mark(key);
    }

    /// A state loaded from a snapshot, its root's tree rebuilt from every
    /// account (each account's leaf hashed here) and its inboxes
    /// held to `inbox_capacity` (the configuration may have changed since
    /// the snapshot; the oldest records go, counted as evicted).
    pub fn with_root_rebuilt(mut self, inbox_capacity: usize) -> State {
        // Leaves in the map's order: each lookup is of the entry the
        // iteration is at, where key order would miss the cache on nearly
        // every account of a large map. A large map's leaves are hashed
        // on every CPU (a snapshot loads before anything else runs).
        let keys: Vec<[u8; 32]> = self.accounts.keys().copied().collect();
        let (accounts, producers) = (&self.accounts, &self.producers);
        let hash = |keys: &[[u8; 32]]| -> Vec<([u8; 32], Hash)> {
            keys.iter().filter_map(|k| leaf_hash(k, accounts, producers).map(|h| (*k, h))).collect()
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let leaves = if threads > 1 && keys.len() >= 65_536 {
            let per = keys.len().div_ceil(threads);
            std::thread::scope(|s| {
                let parts: Vec<_> = keys.chunks(per).skip(1).map(|c| s.spawn(move || hash(c))).collect();
                let mut all = hash(keys.get(..per.min(keys.len())).unwrap_or_default());
                for p in parts {
                    // A leaf hash does not panic; were a part lost, the
                    // root would not match and recovery would say so.
                    all.extend(p.join().unwrap_or_default());
                }
                all
            })
        } else {
            hash(&keys)
        };
        self.root = AccountRoot::from_leaves(leaves);
        self.cfg.inbox_capacity = inbox_capacity;
        for q in self.inboxes.values_mut() {
            while q.records.len() > inbox_capacity {
                q.records.pop_front();
                self.records_evicted += 1;
            }
        }
        self
    }

    /// The execution parameters.
    pub fn config(&self) -> StateConfig {
        self.cfg
    }

    /// An account's state.
    pub fn account(&self, key: &[u8; 32]) -> Option<Account> {
        self.accounts.get(key).copied()
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Every account, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = (&[u8; 32], &Account)> {
        self.accounts.iter()
    }

    /// The owner account of the producer whose node key is `node_key`.
    pub fn producer_of(&self, node_key: &[u8; 32]) -> Option<[u8; 32]> {
        self.node_keys.get(node_key).copied()
    }

    /// The producer `owner` registered, if any.
    pub fn producer(&self, owner: &[u8; 32]) -> Option<&Producer> {
        self.producers.get(owner)
    }

    /// Every producer with its owner, in no particular order.
    pub fn producers(&self) -> impl Iterator<Item = (&[u8; 32], &Producer)> {
        self.producers.iter()
    }

    /// The records addressed to `key` still held, oldest first.
    pub fn inbox(&self, key: &[u8; 32]) -> impl Iterator<Item = &Record> {
        self.inboxes.get(key).into_iter().flat_map(|i| i.records.iter())
    }

    /// Records `key` ever received, evicted ones included: the index the
    /// next one gets. The oldest record held has index `inbox_received -
    /// inbox(key).count()`.
    pub fn inbox_received(&self, key: &[u8; 32]) -> u64 {
        self.inboxes.get(key).map_or(0, |i| i.received)
    }

    /// Records held in `key`'s inbox.
    pub fn inbox_len(&self, key: &[u8; 32]) -> usize {
        self.inboxes.get(key).map_or(0, |i| i.records.len())
    }

    /// Whether `a` and `b` are connected (a request accepted).
    pub fn connected(&self, a: &[u8; 32], b: &[u8; 32]) -> bool {
        self.links.get(a).is_some_and(|l| has(&l.connected, b))
    }

    /// Whether `from` has asked `to` to connect and `to` has not accepted.
    pub fn requested(&self, from: &[u8; 32], to: &[u8; 32]) -> bool {
        self.links.get(from).is_some_and(|l| has(&l.outgoing, to))
    }

    /// `key`'s connected peers, then the accounts that asked it to connect,
    /// then those it asked, each sorted by key.
    pub fn links(&self, key: &[u8; 32]) -> impl Iterator<Item = (Link, &[u8; 32])> {
        self.links_from(key, 0)
    }

    /// [`State::links`] from entry `start` on, found without walking the
    /// entries before it.
    pub fn links_from(&self, key: &[u8; 32], start: usize) -> impl Iterator<Item = (Link, &[u8; 32])> {
        self.links.get(key).into_iter().flat_map(move |l| {
            let mut skip = start;
            [(Link::Connected, &l.connected), (Link::RequestIn, &l.incoming), (Link::RequestOut, &l.outgoing)]
                .into_iter()
                .flat_map(move |(link, list)| {
                    let from = skip.min(list.len());
                    skip -= from;
                    list.get(from..).unwrap_or(&[]).iter().map(move |k| (link, k))
                })
        })
    }

    /// How many entries [`State::links`] yields for `key`.
    pub fn link_count(&self, key: &[u8; 32]) -> usize {
        self.links.get(key).map_or(0, |l| l.connected.len() + l.incoming.len() + l.outgoing.len())
    }

    /// Records dropped from full inboxes.
    pub fn records_evicted(&self) -> u64 {
        self.records_evicted
    }

    /// All fees of applied transactions.
    pub fn fees_collected(&self) -> u64 {
        self.fees_collected
    }

    /// Fees paid to producers.
    pub fn fees_paid(&self) -> u64 {
        self.fees_paid
    }

    /// Height of the last block ended ([`State::end_block`]).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The genesis total.
    pub fn total_supply(&self) -> u64 {
        self.total
    }

    /// Where the supply is; [`Supply::holds`] is true at every moment.
    /// O(accounts + producers).
    pub fn supply(&self) -> Supply {
        let mut s = Supply {
            total: u128::from(self.total),
            fees_unpaid: u128::from(self.fees_collected - self.fees_paid),
            ..Supply::default()
        };
        for a in self.accounts.values() {
            s.balances += u128::from(a.balance);
            s.staked += u128::from(a.staked);
            s.unbonding += u128::from(a.unbonding);
        }
        s.bonds = self.producers.values().map(|p| u128::from(p.bond)).sum();
        s.rewards_unpaid = self.pools.values().map(|v| u128::from(*v)).sum();
        s
    }

    /// An account's leaf in the state root ([`leaf_hash`]); `None` if
    /// there is no such account.
    pub fn leaf(&self, key: &[u8; 32]) -> Option<Hash> {
        leaf_hash(key, &self.accounts, &self.producers)
    }

    /// The state root (`crate::root`) over every account as it is now:
    /// rehashes only what changed since the last call.
    pub fn root(&mut self) -> Hash {
        let (accounts, producers) = (&self.accounts, &self.producers);
        self.root.root(|k| leaf_hash(k, accounts, producers))
    }

    /// [`root`](State::root) in two halves ([`AccountRoot::capture`]):
    /// takes the changed accounts' leaves now; [`captured_root`] gives the
    /// root as of now later, after more changes if need be.
    ///
    /// [`captured_root`]: State::captured_root
    pub fn capture_root(&mut self) {
        let (accounts, producers) = (&self.accounts, &self.producers);
        self.root.capture(|k| leaf_hash(k, accounts, producers));
    }

    /// Spreads large state roots over `n` threads
    /// ([`AccountRoot::set_threads`]); 1 (the default) keeps them on the
    /// caller's.
    pub fn set_root_threads(&mut self, n: usize) {
        self.root.set_threads(n);
    }

    /// The state root as of the last [`capture_root`](State::capture_root).
    pub fn captured_root(&mut self) -> Hash {
        self.root.captured_root()
    }

    /// Runs `t`, whose sender exists, whose nonce is the sender's next and
    /// whose fee is at least `min_fee` (the ledger's admission checked
    /// these). Either every change is made and `Ok` returned, or none and
    /// the refusal named (the order of checks is `docs/LEDGER.md`'s).
    pub fn execute(&mut self, t: &Transaction<&[u8]>) -> Result<(), Refusal> {
        let Some(kind) = Kind::from_u8(t.kind_byte()) else { return Err(Refusal::Malformed) };
        let from = t.from();
        let to = t.to();
        let Some(src) = self.accounts.get(&from).copied() else { return Err(Refusal::NoAccount) };
        let c = self.plan(kind, t, from, to, src)?;
        // Nothing below fails.
        self.put(from, c.from);
        if let Some((k, a)) = c.to {
            self.put(k, a);
        }
        self.fees_collected = c.fees;
        let (amount, memo, nonce) = (t.amount(), t.memo(), t.nonce());
        match kind {
            Kind::Transfer => {}
            Kind::Message | Kind::EndpointOffer => self.record(kind, from, to, nonce, memo),
            Kind::ConnectRequest => {
                self.link(from, LinkList::Outgoing, to, true);
                self.link(to, LinkList::Incoming, from, true);
                self.record(kind, from, to, nonce, memo);
            }
            Kind::ConnectAccept => {
                // The request either way is closed; the pair is connected
                // at both ends.
                for (a, b) in [(from, to), (to, from)] {
                    self.link(a, LinkList::Outgoing, b, false);
                    self.link(a, LinkList::Incoming, b, false);
                    self.link(a, LinkList::Connected, b, true);
                }
                self.record(kind, from, to, nonce, memo);
            }
            Kind::Stake => self.move_votes(None, src.vote, amount),
            Kind::Unstake => {
                self.move_votes(src.vote, None, amount);
                self.releases.entry(c.from.release_height).or_default().push(from);
                self.log(Undo::ReleaseAdded(c.from.release_height));
            }
            Kind::Vote => self.move_votes(src.vote, Some(to), src.staked),
            Kind::RegisterProducer => {
                self.root.mark(from);
                let address = String::from_utf8_lossy(memo).into_owned();
                let p =
                    Producer { node_key: to, address, bond: self.cfg.producer_bond, votes: 0, since: self.height + 1 };
                self.producers.insert(from, p);
                self.node_keys.insert(to, from);
                self.log(Undo::ProducerAdded(from, to));
            }
        }
        Ok(())
    }

    /// The checks of `kind` and the new sender (and recipient) state.
    fn plan(
        &self,
        kind: Kind,
        t: &Transaction<&[u8]>,
        from: [u8; 32],
        to: [u8; 32],
        src: Account,
    ) -> Result<Changes, Refusal> {
        let (fee, amount) = (t.fee(), t.amount());
        let mut a = src;
        a.nonce = t.nonce();
        // What leaves the balance: the fee, plus the amount (transfer,
        // stake) or the bond (register-producer).
        let spent = match kind {
            Kind::Transfer | Kind::Stake => amount.checked_add(fee),
            Kind::RegisterProducer => self.cfg.producer_bond.checked_add(fee),
            _ => Some(fee),
        };
        a.balance = spent.and_then(|s| a.balance.checked_sub(s)).ok_or(Refusal::InsufficientFunds)?;
        let fees = self.fees_collected.checked_add(fee).ok_or(Refusal::InsufficientFunds)?;
        let recipient = || self.accounts.get(&to).copied().ok_or(Refusal::NoAccount);
        let mut dst = None;
        match kind {
            Kind::Transfer if to == from => {
                a.balance = a.balance.checked_add(amount).ok_or(Refusal::InsufficientFunds)?;
            }
            Kind::Transfer => {
                let d = match self.accounts.get(&to) {
                    Some(d) => *d,
                    None if amount >= self.cfg.min_fee => Account::default(),
                    None => return Err(Refusal::NoAccount),
                };
                let balance = d.balance.checked_add(amount).ok_or(Refusal::InsufficientFunds)?;
                dst = Some((to, Account { balance, ..d }));
            }
            Kind::Message => {
                recipient()?;
            }
            Kind::ConnectRequest => {
                recipient()?;
                if to == from {
                    return Err(Refusal::SelfAddressed);
                }
                if self.connected(&from, &to) {
                    return Err(Refusal::AlreadyConnected);
                }
            }
            Kind::ConnectAccept => {
                recipient()?;
                if !self.requested(&to, &from) {
                    return Err(Refusal::NoRequest);
                }
            }
            Kind::EndpointOffer => {
                recipient()?;
                if !self.connected(&from, &to) {
                    return Err(Refusal::NotConnected);
                }
            }
            Kind::Stake => {
                if amount == 0 {
                    return Err(Refusal::ZeroAmount);
                }
                if a.staked == 0 {
                    a.staked_since = self.height + 1;
                }
                a.staked = a.staked.checked_add(amount).ok_or(Refusal::InsufficientFunds)?;
            }
            Kind::Unstake => {
                if amount == 0 {
                    return Err(Refusal::ZeroAmount);
                }
                a.staked = a.staked.checked_sub(amount).ok_or(Refusal::InsufficientStake)?;
                if a.staked == 0 {
                    a.staked_since = 0;
                }
                a.unbonding = a.unbonding.checked_add(amount).ok_or(Refusal::InsufficientFunds)?;
                // Unstaked again before the last release: all of it waits
                // for the later height.
                a.release_height = self.height + 1 + self.cfg.unbonding_blocks;
            }
            Kind::Vote => {
                if !self.producers.contains_key(&to) {
                    return Err(Refusal::NotAProducer);
                }
                if a.staked == 0 {
                    return Err(Refusal::NoStake);
                }
                a.vote = Some(to);
            }
            Kind::RegisterProducer => {
                // A slashed owner counts as a producer for good, and a
                // slashed node key as taken.
                if self.producers.contains_key(&from) || self.banned.contains(&from) {
                    return Err(Refusal::AlreadyProducer);
                }
                if self.node_keys.contains_key(&to) || self.banned.contains(&to) {
                    return Err(Refusal::NodeKeyTaken);
                }
                if !valid_address(t.memo()) {
                    return Err(Refusal::BadAddress);
                }
            }
        }
        Ok(Changes { from: a, to: dst, fees })
    }

    /// Moves `amount` of votes from producer `off` to producer `on`.
    fn move_votes(&mut self, off: Option<[u8; 32]>, on: Option<[u8; 32]>, amount: u64) {
        if let Some(k) = off {
            if let Some(p) = self.producers.get_mut(&k) {
                let was = p.votes;
                p.votes = was.saturating_sub(amount);
                self.root.mark(k);
                self.log(Undo::Votes(k, was));
            }
        }
        if let Some(k) = on {
            if let Some(p) = self.producers.get_mut(&k) {
                let was = p.votes;
                p.votes = was.saturating_add(amount);
                self.root.mark(k);
                self.log(Undo::Votes(k, was));
            }
        }
    }

    fn record(&mut self, kind: Kind, from: [u8; 32], to: [u8; 32], nonce: u64, memo: &[u8]) {
        let created = !self.inboxes.contains_key(&to);
        let inbox = self.inboxes.entry(to).or_default();
        inbox.received += 1;
        let mut evicted = None;
        let kept = self.cfg.inbox_capacity > 0;
        if !kept {
            self.records_evicted += 1;
        } else {
            if inbox.records.len() >= self.cfg.inbox_capacity {
                evicted = inbox.records.pop_front();
                self.records_evicted += 1;
            }
            inbox.records.push_back(Record { kind, from, nonce, height: self.height + 1, memo: memo.to_vec() });
        }
        self.log(Undo::Record { to, kept, evicted, created });
    }

    /// Adds `other` to (or removes it from) `key`'s list `which`,
    /// journaled.
    fn link(&mut self, key: [u8; 32], which: LinkList, other: [u8; 32], added: bool) {
        if let std::collections::hash_map::Entry::Vacant(e) = self.links.entry(key) {
            e.insert(Links::default());
            self.log(Undo::LinksCreated(key));
        }
        let Some(l) = self.links.get_mut(&key) else { return };
        let list = l.list(which);
        let changed = if added { add(list, other) } else { drop_key(list, &other) };
        if changed {
            self.log(Undo::Link { key, list: which, other, added });
        }
    }

    /// Writes an account, journaled, and marks it for the root.
    fn put(&mut self, key: [u8; 32], a: Account) {
        let old = self.accounts.insert(key, a);
        self.root.mark(key);
        self.log(Undo::Account(key, old));
    }

    /// What a block's [`Extension`](crate::block::Extension) does, after
    /// its transactions and before [`State::end_block`]: each seat that
    /// signed the previous block's certificate has it counted as work
    /// (`certificates_signed` of its owner), and each producer proven to
    /// have equivocated is slashed ([`State::slash`]). The consensus checked
    /// the signatures before the block became final; here only who signed
    /// is read.
    pub fn apply_extension(&mut self, ext: &crate::block::Extension) {
        if let Some((_, signers)) = &ext.commit {
            for (nk, _) in signers {
                let Some(owner) = self.node_keys.get(nk).copied() else { continue };
                if let Some(mut a) = self.accounts.get(&owner).copied() {
                    a.certificates_signed += 1;
                    self.put(owner, a);
                }
            }
        }
        for (a, _) in &ext.evidence {
            if let Some(signer) = crate::bft::codec::signer(a) {
                self.slash(&signer);
            }
        }
    }

    /// Journals `u` if a block is open.
    fn log(&mut self, u: Undo) {
        if !self.journal.marks.is_empty() {
            self.journal.undo.push(u);
        }
    }

    /// Ends block `height` (the next one): pays `fees` (the fees of its
    /// transactions) to `producer`, and returns to their balances the
    /// unbonding amounts released at this height. `producer` is a node key:
    /// the fees go to the owner account that registered it, else to the
    /// account of that key (created if needed); with no producer they stay
    /// unpaid. Returns the account paid.
    pub fn end_block(&mut self, height: u64, producer: Option<[u8; 32]>, fees: u64) -> Option<[u8; 32]> {
        self.height = height;
        let fees = fees.min(self.fees_collected - self.fees_paid);
        let paid = producer.map(|nk| self.node_keys.get(&nk).copied().unwrap_or(nk));
        if let Some(k) = paid {
            let mut a = self.accounts.get(&k).copied().unwrap_or_default();
            // Cannot overflow: every balance is part of the genesis total.
            a.balance = a.balance.saturating_add(fees);
            a.blocks_proposed += 1;
            self.put(k, a);
            self.fees_paid += fees;
        }
        while let Some(entry) = self.releases.first_entry() {
            if *entry.key() > height {
                break;
            }
            let (at, keys) = entry.remove_entry();
            for k in &keys {
                if let Some(mut a) = self.accounts.get(k).copied() {
                    if a.release_height != 0 && a.release_height <= height {
                        a.balance = a.balance.saturating_add(a.unbonding);
                        a.unbonding = 0;
                        a.release_height = 0;
                        self.put(*k, a);
                    }
                }
            }
            self.log(Undo::Released(at, keys));
        }
        if let Some(p) = self.election {
            self.reward(height, producer, &p);
            if self.voted != self.seats {
                let old = std::mem::replace(&mut self.voted, self.seats.clone());
                self.log(Undo::Voted(old));
            }
            if height.is_multiple_of(p.epoch.max(1)) {
                let banned = &self.banned;
                let mut elected = crate::election::scores(self, height, &p);
                elected.retain(|s| !banned.contains(&s.node_key));
                elected.truncate(p.seats);
                // No producer left (all slashed or gone): the seats stay,
                // since a network without seats could never decide again.
                if !elected.is_empty() && elected != self.seats {
                    let old = std::mem::replace(&mut self.seats, elected);
                    self.log(Undo::Seats(old));
                }
            }
        }
        paid
    }

    /// Block rewards at the end of block `height` produced by node key
    /// `producer`: `block_reward` is minted (until `issuance_cap`) when the
    /// producer is registered; the owner keeps the share its bond backs
    /// (`bond / (bond + votes)`, the remainder of the division included),
    /// the rest waits in the producer's voter pool. At an epoch boundary
    /// each pool goes to the accounts that vote for that producer then, in
    /// proportion to their stake (rounded down; what is left, or the whole
    /// pool when no one votes for it, to the owner).
    fn reward(&mut self, height: u64, producer: Option<[u8; 32]>, p: &ElectionParams) {
        let owner = producer.and_then(|nk| self.node_keys.get(&nk).copied());
        let r = p.block_reward.min(p.issuance_cap.saturating_sub(self.minted));
        if let (Some(owner), true) = (owner, r > 0) {
            let (bond, votes) = self.producers.get(&owner).map_or((1, 0), |pr| (pr.bond, pr.votes));
            let stake = u128::from(bond) + u128::from(votes);
            let to_voters = (u128::from(r) * u128::from(votes) / stake.max(1)) as u64;
            self.minted += r;
            self.total += r;
            self.log(Undo::Minted(r));
            self.credit(owner, r - to_voters);
            if to_voters > 0 {
                let old = self.pools.get(&owner).copied();
                self.pools.insert(owner, old.unwrap_or(0) + to_voters);
                self.log(Undo::Pool(owner, old));
            }
        }
        if !height.is_multiple_of(p.epoch.max(1)) || self.pools.is_empty() {
            return;
        }
        let mut voters: BTreeMap<[u8; 32], Vec<([u8; 32], u64)>> = BTreeMap::new();
        for (k, a) in &self.accounts {
            if let Some(t) = a.vote {
                if a.staked > 0 && self.pools.contains_key(&t) {
                    voters.entry(t).or_default().push((*k, a.staked));
                }
            }
        }
        let pools: Vec<([u8; 32], u64)> = self.pools.iter().map(|(k, v)| (*k, *v)).collect();
        for (owner, pool) in pools {
            let list = voters.remove(&owner).unwrap_or_default();
            let total: u128 = list.iter().map(|(_, s)| u128::from(*s)).sum();
            let mut paid = 0u64;
            for (k, staked) in list {
                // `total` is at least `staked` > 0 here, so the division is defined.
                let share = (u128::from(pool) * u128::from(staked)).checked_div(total).unwrap_or(0) as u64;
                self.credit(k, share);
                paid += share;
            }
            self.credit(owner, pool - paid);
            self.pools.remove(&owner);
            self.log(Undo::Pool(owner, Some(pool)));
        }
    }

    /// Adds `amount` to `key`'s balance (the account is created if needed).
    fn credit(&mut self, key: [u8; 32], amount: u64) {
        if amount == 0 {
            return;
        }
        let mut a = self.accounts.get(&key).copied().unwrap_or_default();
        // Cannot overflow: the genesis total plus the issuance cap fits u64.
        a.balance = a.balance.saturating_add(amount);
        self.put(key, a);
    }

    /// Opens a block: every change from here on is journaled until
    /// [`commit_oldest`](State::commit_oldest) makes the oldest open block
    /// final or [`rollback`](State::rollback) undoes the newest. Blocks
    /// nest in height order: a proposal can be opened on top of blocks
    /// not yet final.
    pub fn begin(&mut self) {
        self.journal.marks.push(Mark {
            at: self.journal.undo.len(),
            height: self.height,
            fees_collected: self.fees_collected,
            fees_paid: self.fees_paid,
            records_evicted: self.records_evicted,
        });
    }

    /// Makes room for `entries` journal entries (about two per transfer),
    /// so that a block's first burst does not grow the journal.
    pub fn reserve_journal(&mut self, entries: usize) {
        self.journal.undo.reserve(entries);
    }

    /// Blocks opened and neither committed nor rolled back.
    pub fn open_blocks(&self) -> usize {
        self.journal.marks.len()
    }

    /// Makes the oldest open block final: its undo entries go. Returns
    /// whether a block was open.
    pub fn commit_oldest(&mut self) -> bool {
        if self.journal.marks.is_empty() {
            return false;
        }
        self.journal.marks.remove(0);
        match self.journal.marks.first().map(|m| m.at) {
            None => self.journal.undo.clear(),
            Some(upto) => {
                self.journal.undo.drain(..upto);
                self.journal.marks.iter_mut().for_each(|m| m.at -= upto);
            }
        }
        true
    }

    /// Undoes the newest open block: the state (accounts, producers,
    /// links, inboxes, releases, counters, and the root once recomputed)
    /// is exactly what it was at its [`begin`](State::begin). Returns
    /// whether a block was open.
    pub fn rollback(&mut self) -> bool {
        let Some(m) = self.journal.marks.pop() else { return false };
        while self.journal.undo.len() > m.at {
            if let Some(u) = self.journal.undo.pop() {
                self.undo(u);
            }
        }
        self.height = m.height;
        self.fees_collected = m.fees_collected;
        self.fees_paid = m.fees_paid;
        self.records_evicted = m.records_evicted;
        true
    }

    fn undo(&mut self, u: Undo) {
        match u {
            Undo::Account(k, old) => {
                match old {
                    Some(a) => self.accounts.insert(k, a),
                    None => self.accounts.remove(&k),
                };
                self.root.mark(k);
            }
            Undo::Votes(k, votes) => {
                if let Some(p) = self.producers.get_mut(&k) {
                    p.votes = votes;
                    self.root.mark(k);
                }
            }
            Undo::Seats(old) => self.seats = old,
            Undo::Minted(r) => {
                self.minted -= r;
                self.total -= r;
            }
            Undo::Pool(owner, old) => {
                match old {
                    Some(v) => self.pools.insert(owner, v),
                    None => self.pools.remove(&owner),
                };
            }
            Undo::Voted(old) => self.voted = old,
            Undo::Slashed(owner, p) => {
                self.banned.remove(&p.node_key);
                self.banned.remove(&owner);
                self.slashed -= p.bond;
                self.total += p.bond;
                self.node_keys.insert(p.node_key, owner);
                self.producers.insert(owner, p);
                self.root.mark(owner);
            }
            Undo::ProducerAdded(owner, node_key) => {
                self.producers.remove(&owner);
                self.node_keys.remove(&node_key);
                self.root.mark(owner);
            }
            Undo::Link { key, list, other, added } => {
                if let Some(l) = self.links.get_mut(&key) {
                    let v = l.list(list);
                    if added {
                        drop_key(v, &other);
                    } else {
                        add(v, other);
                    }
                }
            }
            Undo::LinksCreated(k) => {
                self.links.remove(&k);
            }
            Undo::Record { to, kept, evicted, created } => {
                if let Some(i) = self.inboxes.get_mut(&to) {
                    i.received = i.received.saturating_sub(1);
                    if kept {
                        i.records.pop_back();
                    }
                    if let Some(r) = evicted {
                        i.records.push_front(r);
                    }
                }
                if created {
                    self.inboxes.remove(&to);
                }
            }
            Undo::ReleaseAdded(h) => {
                if let Some(v) = self.releases.get_mut(&h) {
                    v.pop();
                    if v.is_empty() {
                        self.releases.remove(&h);
                    }
                }
            }
            Undo::Released(h, keys) => {
                self.releases.insert(h, keys);
            }
        }
    }

    /// Executes a whole block against this state, as a node does with a
    /// block it did not build (a proposal, or the log at recovery): opens
    /// it ([`begin`](State::begin)), runs each transaction under the
    /// ledger's admission checks (well-formed, fee at least `min_fee`,
    /// the sender's next nonce) and its kind's rule, ends it (fees to the
    /// header's producer, releases), and compares the root with the
    /// header's. On any refusal the block is rolled back and the state is
    /// as before; on success the block stays open for the caller to
    /// [`commit_oldest`](State::commit_oldest) once it is final (or to
    /// [`rollback`](State::rollback) if it never is). Returns the fees the
    /// block paid.
    pub fn apply_block(&mut self, b: &crate::block::Block) -> Result<u64, BlockRefusal> {
        let h = b.header();
        if h.height != self.height + 1 {
            return Err(BlockRefusal::Height { expected: self.height + 1, got: h.height });
        }
        self.begin();
        let r = self.run_block(b);
        if r.is_err() {
            self.rollback();
        }
        r
    }

    fn run_block(&mut self, b: &crate::block::Block) -> Result<u64, BlockRefusal> {
        let h = b.header();
        let min_fee = self.cfg.min_fee;
        let mut fees = 0u64;
        for (index, tx) in b.txs().enumerate() {
            let refuse = |reason| BlockRefusal::Transaction { index, reason };
            let t = Transaction::new_checked(tx).map_err(|_| refuse(Refusal::Malformed))?;
            if t.fee() < min_fee {
                return Err(refuse(Refusal::FeeTooLow));
            }
            match self.account(&t.from()) {
                None => return Err(refuse(Refusal::NoAccount)),
                Some(a) if a.nonce.checked_add(1) != Some(t.nonce()) => return Err(refuse(Refusal::BadNonce)),
                Some(_) => {}
            }
            self.execute(&t).map_err(refuse)?;
            fees = fees.saturating_add(t.fee());
        }
        self.apply_extension(b.extension());
        let producer = (h.producer != [0; 32]).then_some(h.producer);
        self.end_block(h.height, producer, fees);
        let computed = self.root();
        if computed != h.state_root {
            return Err(BlockRefusal::StateRoot { computed });
        }
        Ok(fees)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::block::{Block, Stamp};
    use crate::genesis::GenesisAccount;
    use attnet_core::wire::tx::Repr;
    use proptest::prelude::*;

    const N: usize = 5;

    fn key(i: usize) -> [u8; 32] {
        [i as u8 + 1; 32]
    }

    /// Everything a state holds, in a fixed order (maps sorted by key).
    fn digest(s: &State) -> String {
        fn sorted<K: Ord + std::fmt::Debug, V: std::fmt::Debug>(m: &HashMap<K, V>) -> String {
            let mut v: Vec<_> = m.iter().collect();
            v.sort_by(|a, b| a.0.cmp(b.0));
            format!("{v:?}")
        }
        format!(
            "{} {} {} {} {} {:?} {} {} {} {} {} {:?} {:?} {} {} {:?} {:?}",
            sorted(&s.accounts),
            sorted(&s.producers),
            sorted(&s.node_keys),
            sorted(&s.links),
            sorted(&s.inboxes),
            s.releases,
            s.height,
            s.fees_collected,
            s.fees_paid,
            s.total,
            s.records_evicted,
            s.seats,
            s.voted,
            s.slashed,
            s.minted,
            s.pools,
            s.banned
        )
    }

    fn genesis() -> Genesis {
        let accounts = (0..N - 1).map(|i| GenesisAccount { key: key(i), balance: 5_000 });
        Genesis::new(1, accounts).unwrap().with_staking(2, 300).unwrap()
    }

    /// A transaction of `kind` from account `from` with its next nonce
    /// (so that most of them apply), `to` one of the keys (the last one
    /// has no account until a transfer creates it).
    fn tx(s: &State, kind: u8, from: usize, to: usize, amount: u64) -> Vec<u8> {
        let kind = Kind::from_u8(kind % 9).unwrap();
        let nonce = s.account(&key(from)).map_or(1, |a| a.nonce + 1);
        let to = if kind == Kind::RegisterProducer { [to as u8 + 0x80; 32] } else { key(to) };
        let memo: &[u8] = if kind == Kind::RegisterProducer { b"10.0.0.1:7100" } else { b"hi" };
        let r = Repr { kind, from: key(from), to, nonce, amount, fee: 1, memo, signature: [0; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        b
    }

    /// Runs `steps` as one block at `height` on `s` (already begun):
    /// what applies goes into the returned block, sealed with the root.
    fn build(s: &mut State, height: u64, parent: [u8; 32], steps: &[(u8, usize, usize, u64)]) -> Block {
        let mut txs = Vec::new();
        let mut fees = 0;
        for &(kind, from, to, amount) in steps {
            let t = tx(s, kind, from, to, amount);
            let parsed = Transaction::new_checked(&t[..]).unwrap();
            if s.account(&key(from)).is_some() && s.execute(&parsed).is_ok() {
                fees += 1;
                txs.push(t);
            }
        }
        s.end_block(height, Some(key(0)), fees);
        let stamp = Stamp { producer: key(0), state_root: s.root() };
        Block::new(height, parent, height * 100, stamp, txs.iter().map(|t| &t[..])).unwrap()
    }

    fn step() -> impl Strategy<Value = (u8, usize, usize, u64)> {
        (0u8..9, 0..N, 0..N, prop_oneof![0u64..=4, 1u64..=800])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A block rolled back leaves the state exactly as before it (every
        /// map, counter and the root); committed blocks are kept; nested
        /// open blocks undo newest first; and the blocks kept, executed by
        /// `apply_block` on a fresh state, give the same state.
        #[test]
        fn rollback_restores_and_apply_block_agrees(
            blocks in prop::collection::vec((prop::collection::vec(step(), 0..12), 0u8..3), 1..10),
        ) {
            let g = genesis();
            let mut s = State::new(&g, 3);
            let mut kept: Vec<Block> = Vec::new();
            let mut parent = g.hash();
            for (steps, fate) in &blocks {
                let before = digest(&s);
                let root_before = s.root();
                let height = s.height + 1;
                s.begin();
                let b = build(&mut s, height, parent, steps);
                match fate {
                    // Never final: undone.
                    0 => {
                        prop_assert!(s.rollback());
                        prop_assert_eq!(s.open_blocks(), 0);
                        prop_assert_eq!(digest(&s), before);
                        prop_assert_eq!(s.root(), root_before);
                    }
                    // A second block opened on top, undone, then this one
                    // made final.
                    1 => {
                        let mid = digest(&s);
                        let mid_root = s.root();
                        s.begin();
                        let _ = build(&mut s, height + 1, b.hash(), steps);
                        prop_assert_eq!(s.open_blocks(), 2);
                        prop_assert!(s.rollback());
                        prop_assert_eq!(digest(&s), mid);
                        prop_assert_eq!(s.root(), mid_root);
                        prop_assert!(s.commit_oldest());
                        parent = b.hash();
                        kept.push(b);
                    }
                    _ => {
                        prop_assert!(s.commit_oldest());
                        parent = b.hash();
                        kept.push(b);
                    }
                }
                prop_assert_eq!(s.open_blocks(), 0);
                prop_assert!(s.supply().holds());
            }
            let mut replay = State::new(&g, 3);
            for b in &kept {
                prop_assert_eq!(replay.apply_block(b).map(|_| ()), Ok(()));
                prop_assert!(replay.commit_oldest());
            }
            prop_assert_eq!(digest(&replay), digest(&s));
            prop_assert_eq!(replay.root(), s.root());
        }
    }

    #[test]
    fn a_block_that_does_not_apply_leaves_nothing() {
        let g = genesis();
        let mut s = State::new(&g, 3);
        s.begin();
        let b = build(&mut s, 1, g.hash(), &[(0, 0, 4, 700), (1, 4, 1, 0), (6, 1, 0, 0), (5, 2, 0, 50)]);
        assert!(s.commit_oldest());
        let good = digest(&s);
        // Block 2 with the right transactions but a wrong root, and with a
        // transaction replayed (its nonce is used).
        s.begin();
        let two = build(&mut s, 2, b.hash(), &[(0, 1, 2, 9), (1, 2, 4, 0)]);
        s.rollback();
        let mut fresh = State::new(&g, 3);
        fresh.apply_block(&b).unwrap();
        fresh.commit_oldest();
        let wrong_root =
            Block::new(2, b.hash(), 200, Stamp { producer: key(0), state_root: [7; 32] }, two.txs()).unwrap();
        assert!(matches!(fresh.apply_block(&wrong_root), Err(BlockRefusal::StateRoot { .. })));
        assert_eq!(digest(&fresh), good);
        let stamp = Stamp { producer: key(0), state_root: two.header().state_root };
        let replayed = Block::new(2, b.hash(), 200, stamp, b.txs()).unwrap();
        assert_eq!(
            fresh.apply_block(&replayed),
            Err(BlockRefusal::Transaction { index: 0, reason: Refusal::BadNonce })
        );
        assert_eq!(digest(&fresh), good);
        assert_eq!(fresh.apply_block(&b), Err(BlockRefusal::Height { expected: 2, got: 1 }));
        assert_eq!((fresh.apply_block(&two), fresh.open_blocks()), (Ok(2), 1));
    }
}

#[cfg(test)]
mod leaf_tests {
    use super::*;

    /// The leaf is SHA-256 over exactly the bytes the documentation lists,
    /// for an account with and without a vote and a producer record.
    #[test]
    fn an_account_leaf_hashes_its_documented_encoding() {
        let key = [3u8; 32];
        let a = Account {
            balance: 1,
            nonce: 2,
            staked: 3,
            unbonding: 4,
            release_height: 5,
            vote: Some([9u8; 32]),
            staked_since: 6,
            blocks_proposed: 7,
            certificates_signed: 8,
        };
        let p = Producer { node_key: [5u8; 32], address: "h:1".into(), bond: 10, votes: 11, since: 12 };
        let expect = |a: &Account, p: Option<&Producer>| -> Hash {
            let mut b = vec![0u8];
            b.extend_from_slice(&key);
            for v in [
                a.balance,
                a.nonce,
                a.staked,
                a.unbonding,
                a.release_height,
                a.staked_since,
                a.blocks_proposed,
                a.certificates_signed,
            ] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            match a.vote {
                Some(v) => {
                    b.push(1);
                    b.extend_from_slice(&v);
                }
                None => b.push(0),
            }
            match p {
                Some(p) => {
                    b.push(1);
                    b.extend_from_slice(&p.node_key);
                    for v in [p.bond, p.votes, p.since] {
                        b.extend_from_slice(&v.to_le_bytes());
                    }
                    b.extend_from_slice(&(p.address.len() as u16).to_le_bytes());
                    b.extend_from_slice(p.address.as_bytes());
                }
                None => b.push(0),
            }
            Sha256::digest(&b).into()
        };
        let accounts: HashMap<[u8; 32], Account> = [(key, a)].into();
        let none = HashMap::new();
        let producers: HashMap<[u8; 32], Producer> = [(key, p.clone())].into();
        assert_eq!(leaf_hash(&key, &accounts, &none), Some(expect(&a, None)));
        assert_eq!(leaf_hash(&key, &accounts, &producers), Some(expect(&a, Some(&p))));
        let plain = Account { vote: None, ..a };
        let accounts: HashMap<[u8; 32], Account> = [(key, plain)].into();
        assert_eq!(leaf_hash(&key, &accounts, &none), Some(expect(&plain, None)));
        assert_eq!(leaf_hash(&[4u8; 32], &accounts, &none), None);
    }
}
