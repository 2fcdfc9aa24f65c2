//! What a run sends: sessions with their keys, accounts with their signing
//! keys, the genesis that funds them, and the pre-signed transaction pool.

use control::genesis::{Genesis, GenesisAccount};
use dataplane::emit::{emit_signed_tx, TxFields};
use dataplane::wire::tx::Kind;
use ed25519_zebra::SigningKey;
use rand::Rng;
use sha2::{Digest, Sha256};

/// One session's configured keys.
#[derive(Debug, Clone, Copy)]
pub struct SessionKeys {
    pub id: u16,
    pub c2r: [u8; 32],
    pub r2c: [u8; 32],
}

/// Sessions, accounts and genesis of a run, all derived from one seed.
pub struct Plan {
    pub network_id: u32,
    pub sessions: Vec<SessionKeys>,
    pub accounts: Vec<SigningKey>,
    pub balance: u64,
}

fn derive(seed: &[u8; 32], what: &str, i: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(what.as_bytes());
    h.update((i as u64).to_le_bytes());
    h.finalize().into()
}

impl Plan {
    /// A plan from a fresh random seed.
    pub fn random(network_id: u32, sessions: usize, accounts: usize, balance: u64) -> Plan {
        let mut seed = [0u8; 32];
        rand::make_rng::<rand::rngs::StdRng>().fill_bytes(&mut seed);
        Plan::from_seed(&seed, network_id, sessions, accounts, balance)
    }

    pub fn from_seed(seed: &[u8; 32], network_id: u32, sessions: usize, accounts: usize, balance: u64) -> Plan {
        Plan {
            network_id,
            sessions: (0..sessions)
                .map(|i| SessionKeys { id: i as u16, c2r: derive(seed, "c2r", i), r2c: derive(seed, "r2c", i) })
                .collect(),
            accounts: (0..accounts).map(|i| SigningKey::from(derive(seed, "account", i))).collect(),
            balance,
        }
    }

    /// The keys file `attnet node --keys` and `attnet decode --keys` read.
    pub fn keys_json(&self) -> String {
        let s: Vec<String> = self
            .sessions
            .iter()
            .map(|k| format!(r#"{{"id": {}, "c2r": "{}", "r2c": "{}"}}"#, k.id, hex(&k.c2r), hex(&k.r2c)))
            .collect();
        format!(r#"{{"sessions": [{}]}}"#, s.join(", "))
    }

    /// The genesis funding every account with `balance`.
    pub fn genesis(&self) -> Result<Genesis, String> {
        Genesis::new(
            self.network_id,
            self.accounts.iter().map(|sk| GenesisAccount {
                key: ed25519_zebra::VerificationKeyBytes::from(sk).into(),
                balance: self.balance,
            }),
        )
    }

    /// `per_account` transfers from every account, nonces 1.. in order,
    /// interleaved across accounts (tx j is account j % n's).
    pub fn pool(&self, per_account: usize) -> TxPool {
        let n = self.accounts.len().max(1);
        let mut txs = Vec::with_capacity(per_account * n);
        let memo = b"att pktgen transfer";
        for nonce in 1..=per_account as u64 {
            for (a, sk) in self.accounts.iter().enumerate() {
                let to: [u8; 32] = ed25519_zebra::VerificationKeyBytes::from(&self.accounts[(a + 1) % n]).into();
                let mut t = Vec::with_capacity(200);
                emit_signed_tx(
                    sk,
                    self.network_id,
                    &TxFields { kind: Kind::Transfer, to, nonce, amount: 1, fee: 1, memo },
                    &mut t,
                );
                txs.push(t);
            }
        }
        TxPool { txs }
    }
}

/// Pre-signed transactions, sent in order, each once.
pub struct TxPool {
    pub txs: Vec<Vec<u8>>,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
