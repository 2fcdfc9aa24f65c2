//! The genesis file: the network id and the opening balances, from which
//! every node builds the same ledger and the same first parent hash.
//!
//! ```json
//! {"network_id": 1, "accounts": [{"key": "<64 hex>", "balance": 1000000}]}
//! ```
//!
//! `key` is a 32-byte Ed25519 public key in hex (either case), `balance` a
//! JSON integer in `0..=u64::MAX`. Unknown fields, a missing field, bad hex,
//! a key given twice and balances whose sum overflows `u64` are errors that
//! name the problem and, for an account, its index (`accounts[3]: ...`).
//! The sum bound is what lets the ledger promise that no balance and no fee
//! total can ever overflow. The format is described for operators in
//! `docs/GENESIS.md`.
#![deny(clippy::indexing_slicing)]

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// One opening balance. The key is the account's Ed25519 public key, the
/// same 32 bytes that transactions carry in `from` and `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GenesisAccount {
    /// Ed25519 public key of the account.
    pub key: [u8; 32],
    /// Opening balance.
    pub balance: u64,
}

/// A validated genesis: no duplicate keys, a balance sum that fits `u64`,
/// accounts sorted by key. Fields are private so that no unvalidated
/// genesis can reach the ledger; build one with [`Genesis::new`],
/// [`Genesis::parse`] or [`Genesis::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    network_id: u32,
    accounts: Vec<GenesisAccount>,
    total: u64,
}

impl Genesis {
    /// Validates and sorts `accounts`. Errors name the offending index in
    /// the order given: `accounts[4]: duplicate key <hex> (also accounts[1])`
    /// or `accounts[7]: balance sum overflows u64`. This is also the
    /// constructor for tools that generate a genesis (then [`to_json`]).
    ///
    /// [`to_json`]: Genesis::to_json
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
        Ok(Genesis { network_id, accounts: indexed.into_iter().map(|(_, a)| a).collect(), total })
    }

    /// Parses the JSON text of a genesis file (see the module docs).
    pub fn parse(json: &str) -> Result<Genesis, String> {
        let raw: RawGenesis = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut accounts = Vec::with_capacity(raw.accounts.0.len());
        for (i, a) in raw.accounts.0.iter().enumerate() {
            let mut key = [0u8; 32];
            hex::decode_to_slice(&a.key, &mut key)
                .map_err(|e| format!("accounts[{i}]: key must be 64 hex digits ({e}): {:?}", a.key))?;
            accounts.push(GenesisAccount { key, balance: a.balance });
        }
        Genesis::new(raw.network_id, accounts)
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

    /// The opening accounts, sorted by key.
    pub fn accounts(&self) -> &[GenesisAccount] {
        &self.accounts
    }

    /// Sum of the opening balances: the ledger conserves `balances + fees
    /// collected` equal to this.
    pub fn total_supply(&self) -> u64 {
        self.total
    }

    /// SHA-256 of the canonical encoding: `network_id` as `u32 LE`, then for
    /// each account in ascending key order `key (32) || balance (u64 LE)`.
    /// It is the parent of block 1, so nodes with different genesis files
    /// build chains that cannot be mistaken for one another. The encoding
    /// does not depend on the file's formatting or account order.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.network_id.to_le_bytes());
        for a in &self.accounts {
            h.update(a.key);
            h.update(a.balance.to_le_bytes());
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
        let v = serde_json::json!({"network_id": self.network_id, "accounts": accounts});
        // Serializing a `Value` cannot fail.
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenesis {
    network_id: u32,
    accounts: RawAccounts,
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
        enc.extend_from_slice(&[1; 32]);
        enc.extend_from_slice(&10u64.to_le_bytes());
        enc.extend_from_slice(&[2; 32]);
        enc.extend_from_slice(&20u64.to_le_bytes());
        assert_eq!(g1.hash(), <[u8; 32]>::from(Sha256::digest(&enc)));
        assert_ne!(Genesis::new(2, [a, b]).unwrap().hash(), g1.hash());
        assert_ne!(Genesis::new(1, [a]).unwrap().hash(), g1.hash());
        assert_eq!(Genesis::new(1, []).unwrap().hash(), <[u8; 32]>::from(Sha256::digest(1u32.to_le_bytes())));
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
}
