//! The genesis file: the network id and the opening balances, from which
//! every node builds the same ledger and the same first parent hash.
//!
//! ```json
//! {"version": 1, "network_id": 1, "min_fee": 1, "unbonding_blocks": 100,
//!  "producer_bond": 1000, "accounts": [{"key": "<64 hex>", "balance": 1000000}]}
//! ```
//!
//! `version` is the file format ([`VERSION`]; a file without it is
//! version 1, and a version this build does not know is an error naming
//! it). `min_fee` is the least fee a transaction must pay and the least
//! credit that brings an account into being (default
//! [`DEFAULT_MIN_FEE`] when absent; at least 1, so that accounts are never
//! free). `unbonding_blocks` (default [`DEFAULT_UNBONDING_BLOCKS`]) is how
//! many blocks an unstaked amount waits before it is spendable again, and
//! `producer_bond` (default [`DEFAULT_PRODUCER_BOND`], at least 1) what
//! registering a block producer takes from its owner's balance. `key` is a 32-byte Ed25519 public key in hex (either case),
//! `balance` a JSON integer in `0..=u64::MAX`. Unknown fields, a missing
//! field, bad hex, a key given twice and balances whose sum overflows `u64`
//! are errors that name the problem and, for an account, its index
//! (`accounts[3]: ...`).
//! The sum bound is what lets the ledger promise that no balance and no fee
//! total can ever overflow.
//!
//! Version 2 adds `validators`, the seats of the consensus:
//! `[{"owner": "<64 hex account>", "node_key": "<64 hex>", "bond": 1000,
//! "address": "host:port"}]`: the owner account (a genesis account whose
//! balance covers the bond), the validator's node key (distinct across
//! seats), the bond (at least `producer_bond`) and the address its
//! validator links listen on. A genesis without validators (any version)
//! makes a node the only validator under its own node key, final at once.
//! With validators, an optional `election` object sets how the seats are
//! elected after the first epoch (`crate::election`): `{"seats": 21,
//! "epoch": 18000, "holding_cap": 432000, "work_cap": 10000,
//! "block_reward": 0, "issuance_cap": 0}`, each field optional (those are
//! the defaults); `seats` and `epoch` at least 1; a `block_reward` above 0
//! mints that much per final block until `issuance_cap` is minted.
//! The format is described for operators in `docs/GENESIS.md`.
#![deny(clippy::indexing_slicing)]

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::election::ElectionParams;

/// The newest genesis file format this build reads and writes (version 2:
/// validators). A file without a `version` field is version 1; a genesis
/// without validators is written as version 1, so that its file and hash
/// are what earlier builds made.
pub const VERSION: u64 = 2;

/// `min_fee` of a genesis file that does not give one.
pub const DEFAULT_MIN_FEE: u64 = 1;

/// `unbonding_blocks` of a genesis file that does not give one.
pub const DEFAULT_UNBONDING_BLOCKS: u64 = 100;

/// `producer_bond` of a genesis file that does not give one.
pub const DEFAULT_PRODUCER_BOND: u64 = 1000;

/// One opening balance. The key is the account's Ed25519 public key, the
/// same 32 bytes that transactions carry in `from` and `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenesisAccount {
    /// Ed25519 public key of the account.
    pub key: [u8; 32],
    /// Opening balance.
    pub balance: u64,
}

/// A seat of the consensus listed in the genesis (version 2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenesisValidator {
    /// The node key the validator signs votes and opens links with.
    pub node_key: [u8; 32],
    /// The account that bonds for the seat (and is voted for).
    pub owner: [u8; 32],
    /// The bond, at least the genesis' `producer_bond`.
    pub bond: u64,
    /// Where its validator links listen (`host:port`).
    pub address: std::net::SocketAddr,
}

/// A validated genesis: no duplicate keys, a balance sum that fits `u64`,
/// accounts sorted by key. Fields are private so that no unvalidated
/// genesis can reach the ledger; build one with [`Genesis::new`],
/// [`Genesis::parse`] or [`Genesis::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    network_id: u32,
    min_fee: u64,
    unbonding_blocks: u64,
    producer_bond: u64,
    accounts: Vec<GenesisAccount>,
    total: u64,
    /// Sorted by node key; empty: no validator list.
    validators: Vec<GenesisValidator>,
    /// How seats are elected (used only with validators).
    election: ElectionParams,
}

impl Genesis {
    /// Validates and sorts `accounts`. Errors name the offending index in
    /// the order given: `accounts[4]: duplicate key <hex> (also accounts[1])`
    /// or `accounts[7]: balance sum overflows u64`. This is also the
    /// constructor for tools that generate a genesis (then [`to_json`]).
    /// `min_fee` is [`DEFAULT_MIN_FEE`]; [`with_min_fee`] changes it.
    ///
    /// [`to_json`]: Genesis::to_json
    /// [`with_min_fee`]: Genesis::with_min_fee
    pub fn new(network_id: u32, accounts: impl IntoIterator<Item = GenesisAccount>) -> Result<Genesis, String> {
        let mut indexed: Vec<(usize, GenesisAccount)> = accounts.into_iter().enumerate().collect();
        let mut total = 0u64;
        for (i, a) in &indexed {
            total = total.checked_add(a.balance).ok_or_else(|| format!("accounts[{i}]: balance sum overflows u64"))?;
        }
        indexed.sort_by(|x, y| x.1.key.cmp(&y.1.key).then(x.0.cmp(&y.0)));
        if let Some(w) = indexed.windows(2).find(|w| w.first().map(|a| a.1.key) == w.get(1).map(|b| b.1.key)) {
            if let (Some((first, a)), Some((dup, _))) = (w.first(), w.get(1)) {
                return Err(format!("accounts[{dup}]: duplicate key {} (also accounts[{first}])", hex::encode(a.key)));
            }
        }
        Ok(Genesis {
            network_id,
            min_fee: DEFAULT_MIN_FEE,
            unbonding_blocks: DEFAULT_UNBONDING_BLOCKS,
            producer_bond: DEFAULT_PRODUCER_BOND,
            accounts: indexed.into_iter().map(|(_, a)| a).collect(),
            total,
            validators: Vec::new(),
            election: ElectionParams::default(),
        })
    }

    /// The same genesis with a validator list (version 2). Errors name the
    /// entry: `validators[2]: ...` for a node key given twice, an owner that
    /// is not a genesis account or whose balance does not cover the bond,
    /// or a bond below `producer_bond` (so set the staking parameters
    /// first).
    pub fn with_validators(mut self, validators: Vec<GenesisValidator>) -> Result<Genesis, String> {
        for (i, v) in validators.iter().enumerate() {
            if validators.iter().take(i).any(|w| w.node_key == v.node_key) {
                return Err(format!("validators[{i}]: node key {} is listed twice", hex::encode(v.node_key)));
            }
            if validators.iter().take(i).any(|w| w.owner == v.owner) {
                return Err(format!(
                    "validators[{i}]: owner {} already bonds another seat (one producer per account)",
                    hex::encode(v.owner)
                ));
            }
            let Some(owner) = self.accounts.iter().find(|a| a.key == v.owner) else {
                return Err(format!("validators[{i}]: owner {} is not a genesis account", hex::encode(v.owner)));
            };
            if v.bond < self.producer_bond {
                return Err(format!("validators[{i}]: bond {} is below producer_bond {}", v.bond, self.producer_bond));
            }
            if owner.balance < v.bond {
                return Err(format!(
                    "validators[{i}]: the owner's balance {} does not cover the bond {}",
                    owner.balance, v.bond
                ));
            }
        }
        let mut validators = validators;
        validators.sort();
        self.validators = validators;
        Ok(self)
    }

    /// The validator list, sorted by node key; empty when the genesis has
    /// none (then a node is the only validator, under its own node key).
    pub fn validators(&self) -> &[GenesisValidator] {
        &self.validators
    }

    /// The same genesis with other election parameters (they matter only
    /// with validators). `seats` and `epoch` must be at least 1.
    pub fn with_election(mut self, p: ElectionParams) -> Result<Genesis, String> {
        if p.seats == 0 {
            return Err("election.seats must be at least 1".into());
        }
        if p.epoch == 0 {
            return Err("election.epoch must be at least 1".into());
        }
        // Every balance stays within u64: the genesis total plus all that
        // can ever be minted.
        if self.total.checked_add(p.issuance_cap).is_none() {
            return Err("election.issuance_cap with the genesis balances overflows u64".into());
        }
        self.election = p;
        Ok(self)
    }

    /// How the seats are elected at each epoch boundary.
    pub fn election(&self) -> ElectionParams {
        self.election
    }

    /// The same genesis with another minimum fee. 0 is an error: with it a
    /// transaction from a fresh key, or a credit of nothing, would create
    /// accounts for free.
    pub fn with_min_fee(mut self, min_fee: u64) -> Result<Genesis, String> {
        if min_fee == 0 {
            return Err("min_fee must be at least 1".into());
        }
        self.min_fee = min_fee;
        Ok(self)
    }

    /// The same genesis with other staking parameters: the blocks an
    /// unstaked amount waits (`unbonding_blocks`) and what registering a
    /// producer bonds (`producer_bond`, at least 1).
    pub fn with_staking(mut self, unbonding_blocks: u64, producer_bond: u64) -> Result<Genesis, String> {
        if producer_bond == 0 {
            return Err("producer_bond must be at least 1".into());
        }
        self.unbonding_blocks = unbonding_blocks;
        self.producer_bond = producer_bond;
        Ok(self)
    }

    /// Parses the JSON text of a genesis file (see the module docs).
    pub fn parse(json: &str) -> Result<Genesis, String> {
        // The version first, so that a file of a newer format is refused
        // for its version rather than for a field this build does not know.
        let probe: VersionProbe = serde_json::from_str(json).map_err(|e| e.to_string())?;
        match probe.version {
            None | Some(1) | Some(VERSION) => {}
            Some(v) => {
                return Err(format!("version {v} is not known to this build (it reads versions 1 to {VERSION})"))
            }
        }
        let raw: RawGenesis = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut accounts = Vec::with_capacity(raw.accounts.0.len());
        for (i, a) in raw.accounts.0.iter().enumerate() {
            let mut key = [0u8; 32];
            hex::decode_to_slice(&a.key, &mut key)
                .map_err(|e| format!("accounts[{i}]: key must be 64 hex digits ({e}): {:?}", a.key))?;
            accounts.push(GenesisAccount { key, balance: a.balance });
        }
        let g = Genesis::new(raw.network_id, accounts)?
            .with_min_fee(raw.min_fee.unwrap_or(DEFAULT_MIN_FEE))?
            .with_staking(
                raw.unbonding_blocks.unwrap_or(DEFAULT_UNBONDING_BLOCKS),
                raw.producer_bond.unwrap_or(DEFAULT_PRODUCER_BOND),
            )?;
        let Some(list) = raw.validators else {
            if raw.election.is_some() {
                return Err("election needs validators".into());
            }
            return Ok(g);
        };
        if probe.version != Some(VERSION) {
            return Err(format!("validators need version {VERSION}"));
        }
        let mut validators = Vec::with_capacity(list.len());
        for (i, v) in list.iter().enumerate() {
            let mut node_key = [0u8; 32];
            hex::decode_to_slice(&v.node_key, &mut node_key)
                .map_err(|e| format!("validators[{i}]: node_key must be 64 hex digits ({e}): {:?}", v.node_key))?;
            let mut owner = [0u8; 32];
            hex::decode_to_slice(&v.owner, &mut owner)
                .map_err(|e| format!("validators[{i}]: owner must be 64 hex digits ({e}): {:?}", v.owner))?;
            let address = v.address.parse().map_err(|e| {
                format!("validators[{i}]: address must be host:port with a numeric host ({e}): {:?}", v.address)
            })?;
            validators.push(GenesisValidator { node_key, owner, bond: v.bond, address });
        }
        let d = ElectionParams::default();
        let e = raw.election.unwrap_or(RawElection {
            seats: None,
            epoch: None,
            holding_cap: None,
            work_cap: None,
            block_reward: None,
            issuance_cap: None,
        });
        g.with_validators(validators)?.with_election(ElectionParams {
            seats: e.seats.unwrap_or(d.seats),
            epoch: e.epoch.unwrap_or(d.epoch),
            holding_cap: e.holding_cap.unwrap_or(d.holding_cap),
            work_cap: e.work_cap.unwrap_or(d.work_cap),
            block_reward: e.block_reward.unwrap_or(d.block_reward),
            issuance_cap: e.issuance_cap.unwrap_or(d.issuance_cap),
        })
    }

    /// Reads and parses a genesis file; every error starts with the path,
    /// so a node that fails at start-up says which file is wrong.
    pub fn load(path: impl AsRef<Path>) -> Result<Genesis, String> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| format!("genesis {}: {e}", path.display()))?;
        Genesis::parse(&text).map_err(|e| format!("genesis {}: {e}", path.display()))
    }

    /// The network id that transactions are signed for (`ATT-TX-v1` signing
    /// message); the data plane must verify with this same id.
    pub fn network_id(&self) -> u32 {
        self.network_id
    }

    /// The least fee a transaction must pay, and the least credit that
    /// creates an account; always at least 1.
    pub fn min_fee(&self) -> u64 {
        self.min_fee
    }

    /// Blocks an unstaked amount waits before it returns to the balance.
    pub fn unbonding_blocks(&self) -> u64 {
        self.unbonding_blocks
    }

    /// What registering a producer bonds; at least 1.
    pub fn producer_bond(&self) -> u64 {
        self.producer_bond
    }

    /// The opening accounts, sorted by key.
    pub fn accounts(&self) -> &[GenesisAccount] {
        &self.accounts
    }

    /// Sum of the opening balances: the ledger conserves `balances + fees
    /// collected` equal to this.
    pub fn total_supply(&self) -> u64 {
        self.total
    }

    /// SHA-256 of the canonical encoding: `network_id` as `u32 LE`,
    /// `min_fee`, `unbonding_blocks` and `producer_bond` as `u64 LE`, then
    /// for each account in ascending key order `key (32) || balance (u64
    /// LE)`; with validators, then `"validators"` and for each in ascending
    /// node-key order `node_key || owner || bond (u64 LE) || address length
    /// (u32 LE) || address`, then `"election"` and the six election
    /// parameters (`seats`, `epoch`, `holding_cap`, `work_cap`,
    /// `block_reward`, `issuance_cap`, each u64 LE) (a genesis without
    /// validators hashes as version 1 did). The three parameters are rules of the ledger, so two files
    /// that differ only in one describe different chains.
    /// It is the parent of block 1, so nodes with different genesis files
    /// build chains that cannot be mistaken for one another. The encoding
    /// does not depend on the file's formatting or account order.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.network_id.to_le_bytes());
        h.update(self.min_fee.to_le_bytes());
        h.update(self.unbonding_blocks.to_le_bytes());
        h.update(self.producer_bond.to_le_bytes());
        for a in &self.accounts {
            h.update(a.key);
            h.update(a.balance.to_le_bytes());
        }
        // A genesis without validators hashes as version 1 did.
        if !self.validators.is_empty() {
            h.update(b"validators");
            for v in &self.validators {
                h.update(v.node_key);
                h.update(v.owner);
                h.update(v.bond.to_le_bytes());
                let addr = v.address.to_string();
                h.update((addr.len() as u32).to_le_bytes());
                h.update(addr.as_bytes());
            }
            let p = &self.election;
            h.update(b"election");
            for x in [p.seats as u64, p.epoch, p.holding_cap, p.work_cap, p.block_reward, p.issuance_cap] {
                h.update(x.to_le_bytes());
            }
        }
        h.finalize().into()
    }

    /// The genesis as JSON in the file format, accounts sorted by key and
    /// keys in lower-case hex; `parse(to_json())` gives the same genesis.
    pub fn to_json(&self) -> String {
        let accounts: Vec<serde_json::Value> = self
            .accounts
            .iter()
            .map(|a| serde_json::json!({"key": hex::encode(a.key), "balance": a.balance}))
            .collect();
        let mut v = serde_json::json!({
            "version": if self.validators.is_empty() { 1 } else { VERSION },
            "network_id": self.network_id,
            "min_fee": self.min_fee,
            "unbonding_blocks": self.unbonding_blocks,
            "producer_bond": self.producer_bond,
            "accounts": accounts,
        });
        if !self.validators.is_empty() {
            let list: Vec<serde_json::Value> = self
                .validators
                .iter()
                .map(|x| {
                    serde_json::json!({"owner": hex::encode(x.owner), "node_key": hex::encode(x.node_key), "bond": x.bond, "address": x.address.to_string()})
                })
                .collect();
            let p = &self.election;
            if let Some(o) = v.as_object_mut() {
                o.insert("validators".into(), serde_json::Value::Array(list));
                o.insert(
                    "election".into(),
                    serde_json::json!({
                        "seats": p.seats, "epoch": p.epoch, "holding_cap": p.holding_cap, "work_cap": p.work_cap,
                        "block_reward": p.block_reward, "issuance_cap": p.issuance_cap,
                    }),
                );
            }
        }
        // Serializing a `Value` cannot fail.
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// Reads only `version`, whatever else the file holds.
#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    version: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenesis {
    // Checked by `VersionProbe`; named here so that it is not unknown.
    #[serde(default, rename = "version")]
    _version: Option<u64>,
    network_id: u32,
    #[serde(default)]
    min_fee: Option<u64>,
    #[serde(default)]
    unbonding_blocks: Option<u64>,
    #[serde(default)]
    producer_bond: Option<u64>,
    accounts: RawAccounts,
    #[serde(default)]
    validators: Option<Vec<RawValidator>>,
    #[serde(default)]
    election: Option<RawElection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawElection {
    #[serde(default)]
    seats: Option<usize>,
    #[serde(default)]
    epoch: Option<u64>,
    #[serde(default)]
    holding_cap: Option<u64>,
    #[serde(default)]
    work_cap: Option<u64>,
    #[serde(default)]
    block_reward: Option<u64>,
    #[serde(default)]
    issuance_cap: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidator {
    owner: String,
    node_key: String,
    bond: u64,
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    key: String,
    balance: u64,
}

/// The accounts array, deserialized element by element so that an error
/// inside an entry (unknown field, wrong type) names the entry's index.
struct RawAccounts(Vec<RawAccount>);

impl<'de> Deserialize<'de> for RawAccounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAccounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of {\"key\", \"balance\"} objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawAccounts, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                loop {
                    match seq.next_element::<RawAccount>() {
                        Ok(Some(a)) => out.push(a),
                        Ok(None) => return Ok(RawAccounts(out)),
                        Err(e) => return Err(de::Error::custom(format_args!("accounts[{}]: {e}", out.len()))),
                    }
                }
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const K1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const K2: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    fn err(json: &str) -> String {
        Genesis::parse(json).unwrap_err()
    }

    #[test]
    fn parses_and_sorts() {
        let g = Genesis::parse(&format!(
            r#"{{"network_id": 7, "accounts": [{{"key": "{K2}", "balance": 5}}, {{"key": "{}", "balance": 18446744073709551610}}]}}"#,
            K1.to_uppercase()
        ))
        .unwrap();
        assert_eq!(g.network_id(), 7);
        assert_eq!(
            g.accounts(),
            &[GenesisAccount { key: [1; 32], balance: u64::MAX - 5 }, GenesisAccount { key: [2; 32], balance: 5 }]
        );
        assert_eq!(g.total_supply(), u64::MAX);
        assert_eq!(Genesis::parse(&g.to_json()).unwrap(), g);
    }

    #[test]
    fn hash_is_canonical() {
        let a = GenesisAccount { key: [1; 32], balance: 10 };
        let b = GenesisAccount { key: [2; 32], balance: 20 };
        let g1 = Genesis::new(1, [a, b]).unwrap();
        let g2 = Genesis::new(1, [b, a]).unwrap();
        assert_eq!(g1.hash(), g2.hash());
        let mut enc = 1u32.to_le_bytes().to_vec();
        enc.extend_from_slice(&DEFAULT_MIN_FEE.to_le_bytes());
        enc.extend_from_slice(&DEFAULT_UNBONDING_BLOCKS.to_le_bytes());
        enc.extend_from_slice(&DEFAULT_PRODUCER_BOND.to_le_bytes());
        enc.extend_from_slice(&[1; 32]);
        enc.extend_from_slice(&10u64.to_le_bytes());
        enc.extend_from_slice(&[2; 32]);
        enc.extend_from_slice(&20u64.to_le_bytes());
        assert_eq!(g1.hash(), <[u8; 32]>::from(Sha256::digest(&enc)));
        assert_ne!(Genesis::new(2, [a, b]).unwrap().hash(), g1.hash());
        assert_ne!(Genesis::new(1, [a]).unwrap().hash(), g1.hash());
        let empty = [1u32.to_le_bytes().as_slice(), &1u64.to_le_bytes(), &100u64.to_le_bytes(), &1000u64.to_le_bytes()]
            .concat();
        assert_eq!(Genesis::new(1, []).unwrap().hash(), <[u8; 32]>::from(Sha256::digest(&empty)));
        // The staking parameters are rules of the chain too.
        let staking = Genesis::new(1, [a, b]).unwrap().with_staking(100, 999).unwrap();
        assert_ne!(staking.hash(), g1.hash());
        let back = Genesis::parse(&staking.to_json()).unwrap();
        assert_eq!((back.unbonding_blocks(), back.producer_bond(), back.hash()), (100, 999, staking.hash()));
        assert!(Genesis::new(1, [a]).unwrap().with_staking(1, 0).is_err(), "a bond of 0");
        // The minimum fee is a rule of the chain: it changes the hash.
        let g5 = Genesis::new(1, [a, b]).unwrap().with_min_fee(5).unwrap();
        assert_ne!(g5.hash(), g1.hash());
        enc[4..12].copy_from_slice(&5u64.to_le_bytes());
        assert_eq!(g5.hash(), <[u8; 32]>::from(Sha256::digest(&enc)));
    }

    #[test]
    fn version_and_min_fee() {
        let acc = format!(r#"[{{"key": "{K1}", "balance": 10}}]"#);
        // Today's files have neither field: version 1, min_fee 1.
        let old = Genesis::parse(&format!(r#"{{"network_id": 1, "accounts": {acc}}}"#)).unwrap();
        assert_eq!(old.min_fee(), DEFAULT_MIN_FEE);
        assert_eq!(DEFAULT_MIN_FEE, 1);
        let v1 = Genesis::parse(&format!(r#"{{"version": 1, "network_id": 1, "min_fee": 1, "accounts": {acc}}}"#));
        assert_eq!(v1.unwrap(), old);
        let g = Genesis::parse(&format!(r#"{{"network_id": 1, "min_fee": 250, "accounts": {acc}}}"#)).unwrap();
        assert_eq!(g.min_fee(), 250);
        assert_eq!(Genesis::parse(&g.to_json()).unwrap(), g);
        assert!(g.to_json().contains(r#""version": 1"#), "{}", g.to_json());
        // A newer format is refused for its version, even with fields this
        // build does not know.
        let e = err(&format!(r#"{{"version": 3, "network_id": 1, "seats": [], "accounts": {acc}}}"#));
        assert_eq!(e, "version 3 is not known to this build (it reads versions 1 to 2)");
        let e = err(&format!(r#"{{"version": 0, "network_id": 1, "accounts": {acc}}}"#));
        assert!(e.starts_with("version 0 is not known"), "{e}");
        let e = err(&format!(r#"{{"version": "1", "network_id": 1, "accounts": {acc}}}"#));
        assert!(e.contains("invalid type"), "{e}");
        let e = err(&format!(r#"{{"network_id": 1, "min_fee": 0, "accounts": {acc}}}"#));
        assert_eq!(e, "min_fee must be at least 1");
        let e = err(&format!(r#"{{"network_id": 1, "min_fee": -1, "accounts": {acc}}}"#));
        assert!(e.contains("invalid value"), "{e}");
        assert!(Genesis::new(1, []).unwrap().with_min_fee(0).is_err());
    }

    #[test]
    fn errors_name_problem_and_index() {
        let e = err(&format!(
            r#"{{"network_id": 1, "accounts": [{{"key": "{K1}", "balance": 1}}, {{"key": "zz", "balance": 1}}]}}"#
        ));
        assert!(e.starts_with("accounts[1]: key must be 64 hex digits"), "{e}");
        let e = err(&format!(r#"{{"network_id": 1, "accounts": [{{"key": "{}", "balance": 1}}]}}"#, &K1[..62]));
        assert!(e.starts_with("accounts[0]: key must be 64 hex digits"), "{e}");
        let e = err(&format!(
            r#"{{"network_id": 1, "accounts": [{{"key": "{K1}", "balance": 1}}, {{"key": "{K2}", "balance": 1}}, {{"key": "{K1}", "balance": 2}}]}}"#
        ));
        assert_eq!(e, format!("accounts[2]: duplicate key {K1} (also accounts[0])"));
        let e = err(&format!(
            r#"{{"network_id": 1, "accounts": [{{"key": "{K1}", "balance": 18446744073709551615}}, {{"key": "{K2}", "balance": 1}}]}}"#
        ));
        assert_eq!(e, "accounts[1]: balance sum overflows u64");
        let e = err(&format!(r#"{{"network_id": 1, "accounts": [{{"key": "{K1}", "balance": 1, "stake": 3}}]}}"#));
        assert!(e.starts_with("accounts[0]: unknown field `stake`"), "{e}");
        let e = err(&format!(r#"{{"network_id": 1, "accounts": [{{"key": "{K1}", "balance": -1}}]}}"#));
        assert!(e.starts_with("accounts[0]: invalid value"), "{e}");
        let e = err(&format!(r#"{{"network_id": 1, "accounts": [{{"key": "{K1}"}}]}}"#));
        assert!(e.starts_with("accounts[0]: missing field `balance`"), "{e}");
        let e = err(r#"{"network_id": 1, "accounts": [], "extra": true}"#);
        assert!(e.starts_with("unknown field `extra`"), "{e}");
        let e = err(r#"{"accounts": []}"#);
        assert!(e.starts_with("missing field `network_id`"), "{e}");
        let e = err(r#"{"network_id": 4294967296, "accounts": []}"#);
        assert!(e.contains("invalid value"), "{e}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("control-genesis-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("genesis.json");
        let g = Genesis::new(1, [GenesisAccount { key: [9; 32], balance: 1_000_000 }]).unwrap();
        std::fs::write(&p, g.to_json()).unwrap();
        assert_eq!(Genesis::load(&p).unwrap(), g);
        std::fs::write(&p, "{").unwrap();
        let e = Genesis::load(&p).unwrap_err();
        assert!(e.starts_with(&format!("genesis {}: ", p.display())), "{e}");
        let e = Genesis::load(dir.join("missing.json")).unwrap_err();
        assert!(e.contains("missing.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn validators_need_version_2_and_are_checked_against_the_accounts() {
        let k5 = "05".repeat(32);
        let acc = format!(
            r#"[{{"key": "{K1}", "balance": 5000}}, {{"key": "{K2}", "balance": 10}}, {{"key": "{k5}", "balance": 3000}}]"#
        );
        let seat = |owner: &str, node: &str, bond: u64| {
            format!(r#"{{"owner": "{owner}", "node_key": "{node}", "bond": {bond}, "address": "127.0.0.1:7001"}}"#)
        };
        let doc = |v: u64, seats: &str| {
            format!(r#"{{"version": {v}, "network_id": 1, "accounts": {acc}, "validators": [{seats}]}}"#)
        };
        let k3 = "03".repeat(32);
        let k4 = "04".repeat(32);
        let g = Genesis::parse(&doc(2, &format!("{},{}", seat(K1, &k4, 1000), seat(&k5, &k3, 2000)))).unwrap();
        assert_eq!(g.validators().len(), 2);
        assert_eq!(g.validators()[0].node_key, [3; 32], "sorted by node key");
        assert_eq!(g.validators()[1].address, "127.0.0.1:7001".parse().unwrap());
        assert_eq!(Genesis::parse(&g.to_json()).unwrap(), g);
        assert!(g.to_json().contains(r#""version": 2"#));
        // The list is part of the chain's identity; without one, the hash
        // is what version 1 gave.
        let plain = Genesis::parse(&format!(r#"{{"network_id": 1, "accounts": {acc}}}"#)).unwrap();
        assert_ne!(g.hash(), plain.hash());
        assert_eq!(Genesis::parse(&doc(2, "")).unwrap().hash(), plain.hash());
        let moved = Genesis::parse(&doc(2, &seat(K1, &k3, 1000).replace("7001", "7002"))).unwrap();
        assert_ne!(moved.hash(), Genesis::parse(&doc(2, &seat(K1, &k3, 1000))).unwrap().hash());

        assert_eq!(err(&doc(1, &seat(K1, &k3, 1000))), "validators need version 2");
        assert_eq!(
            err(&format!(r#"{{"network_id": 1, "accounts": {acc}, "validators": []}}"#)),
            "validators need version 2"
        );
        let twice = err(&doc(2, &format!("{},{}", seat(K1, &k3, 1000), seat(K2, &k3, 1000))));
        assert!(twice.starts_with("validators[1]: node key 0303"), "{twice}");
        let one_owner = err(&doc(2, &format!("{},{}", seat(K1, &k3, 1000), seat(K1, &k4, 1000))));
        assert!(one_owner.starts_with("validators[1]: owner 0101"), "{one_owner}");
        assert!(one_owner.contains("one producer per account"), "{one_owner}");
        // Election parameters: defaults, given ones part of the hash,
        // zeros refused, and none without validators.
        let one = doc(2, &seat(K1, &k3, 1000));
        assert_eq!(Genesis::parse(&one).unwrap().election(), ElectionParams::default());
        let with = |e: &str| one.replacen('{', &format!(r#"{{"election": {e}, "#), 1);
        let g7 = Genesis::parse(&with(r#"{"seats": 7, "epoch": 50}"#)).unwrap();
        assert_eq!((g7.election().seats, g7.election().epoch), (7, 50));
        assert_eq!(g7.election().work_cap, ElectionParams::default().work_cap);
        assert_ne!(g7.hash(), Genesis::parse(&one).unwrap().hash());
        assert_eq!(Genesis::parse(&g7.to_json()).unwrap(), g7);
        assert_eq!(err(&with(r#"{"seats": 0}"#)), "election.seats must be at least 1");
        assert_eq!(err(&with(r#"{"epoch": 0}"#)), "election.epoch must be at least 1");
        assert!(err(&with(r#"{"term": 3}"#)).contains("unknown field"));
        let no_seats = format!(r#"{{"version": 2, "network_id": 1, "accounts": {acc}, "election": {{}}}}"#);
        assert_eq!(err(&no_seats), "election needs validators");
        assert!(err(&doc(2, &seat(&k4, &k3, 1000))).starts_with("validators[0]: owner 0404"));
        assert_eq!(err(&doc(2, &seat(K1, &k3, 999))), "validators[0]: bond 999 is below producer_bond 1000");
        assert_eq!(
            err(&doc(2, &seat(K2, &k3, 1000))),
            "validators[0]: the owner's balance 10 does not cover the bond 1000"
        );
        let e = err(&doc(2, &seat(K1, &k3, 1000).replace("127.0.0.1:7001", "localhost")));
        assert!(e.starts_with("validators[0]: address must be host:port"), "{e}");
        let e = err(&doc(2, &seat(K1, "zz", 1000)));
        assert!(e.starts_with("validators[0]: node_key must be 64 hex digits"), "{e}");
    }
}
