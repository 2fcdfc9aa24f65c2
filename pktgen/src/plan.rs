//! What a run sends: sessions with their keys, accounts with their signing
//! keys, the genesis that funds them, and the pre-signed transaction pool.
//! Everything derives from one seed, so a node configured from one run's
//! keys and genesis accepts another run's traffic from the same seed.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use control::genesis::{Genesis, GenesisAccount};
use dataplane::emit::{emit_signed_tx, TxFields};
use dataplane::wire::tx::Kind;
use ed25519_zebra::SigningKey;
use sha2::{Digest, Sha256};

/// One session's configured keys.
#[derive(Debug, Clone, Copy)]
pub struct SessionKeys {
    pub id: u16,
    pub c2r: [u8; 32],
    pub r2c: [u8; 32],
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    sessions: Vec<KeysFileSession>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFileSession {
    id: u32,
    c2r: String,
    r2c: String,
}

fn key(hex_str: &str, what: &str, id: u32) -> Result<[u8; 32], String> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex_str.trim(), &mut k)
        .map_err(|e| format!("session {id}: {what} must be 64 hex digits ({e})"))?;
    Ok(k)
}

/// Reads and checks a keys file (the format of [`Plan::keys_json`], which
/// `attnet node --keys`, `attnet decode --keys` and `attnet-pktgen --keys`
/// read): every id at most 64534 and listed once, every key 64 hex digits,
/// the two keys of a session different and not all zero. Errors name the
/// file and the entry.
pub fn read_keys(path: &Path) -> Result<Vec<SessionKeys>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("keys file {}: {e}", path.display()))?;
    let file: KeysFile = serde_json::from_str(&text).map_err(|e| format!("keys file {}: {e}", path.display()))?;
    let mut out = Vec::with_capacity(file.sessions.len());
    let mut seen = std::collections::HashSet::new();
    for (i, s) in file.sessions.iter().enumerate() {
        let err = |e: String| format!("keys file {}: sessions[{i}]: {e}", path.display());
        if !seen.insert(s.id) {
            return Err(err(format!("session {} listed twice", s.id)));
        }
        let c2r = key(&s.c2r, "c2r", s.id).map_err(err)?;
        let r2c = key(&s.r2c, "r2c", s.id).map_err(err)?;
        let id = u16::try_from(s.id)
            .ok()
            .filter(|id| *id <= dataplane::wire::mcs::MAX_SESSION_ID)
            .ok_or_else(|| err(dataplane::session::BadSessionId(s.id).to_string()))?;
        dataplane::session::check_keys(&c2r, &r2c).map_err(|e| err(format!("session {}: {e}", s.id)))?;
        out.push(SessionKeys { id, c2r, r2c });
    }
    Ok(out)
}

/// Sessions, accounts and genesis of a run, all derived from one seed.
pub struct Plan {
    pub seed: u64,
    pub network_id: u32,
    pub sessions: Vec<SessionKeys>,
    pub accounts: Vec<SigningKey>,
    pub balance: u64,
}

fn derive(seed: u64, what: &str, i: usize) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"attnet-pktgen-v1");
    h.update(seed.to_le_bytes());
    h.update(what.as_bytes());
    h.update((i as u64).to_le_bytes());
    h.finalize().into()
}

impl Plan {
    /// A plan from a fresh random seed.
    pub fn random(network_id: u32, sessions: usize, accounts: usize, balance: u64) -> Plan {
        Plan::from_seed(random_seed(), network_id, sessions, accounts, balance)
    }

    pub fn from_seed(seed: u64, network_id: u32, sessions: usize, accounts: usize, balance: u64) -> Plan {
        Plan {
            seed,
            network_id,
            sessions: (0..sessions.min(usize::from(u16::MAX)))
                .map(|i| SessionKeys { id: i as u16, c2r: derive(seed, "c2r", i), r2c: derive(seed, "r2c", i) })
                .collect(),
            accounts: (0..accounts.max(1)).map(|i| SigningKey::from(derive(seed, "account", i))).collect(),
            balance,
        }
    }

    /// The plan with `sessions` (from a keys file or from handshakes) in
    /// place of the seed's.
    pub fn with_sessions(mut self, sessions: Vec<SessionKeys>) -> Plan {
        self.sessions = sessions;
        self
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

    /// [`Plan::genesis`] listing `validators` (node key, link address),
    /// each bonding the genesis' `producer_bond` from an owner account of
    /// its own that holds exactly the bond (one producer per account; the
    /// traffic's accounts keep their balances). An owner's key is
    /// SHA-256 of `"attnet/validator-owner/v1"` and the node key: a
    /// placeholder no one can sign for, enough for a generated network
    /// whose owners never stake or vote. None: the plain genesis.
    pub fn genesis_with_validators(&self, validators: &[([u8; 32], std::net::SocketAddr)]) -> Result<Genesis, String> {
        if validators.is_empty() {
            return self.genesis();
        }
        let bond = self.genesis()?.producer_bond();
        let owner = |node_key: &[u8; 32]| -> [u8; 32] {
            use sha2::{Digest, Sha256};
            Sha256::new().chain_update(b"attnet/validator-owner/v1").chain_update(node_key).finalize().into()
        };
        let traffic = self.accounts.iter().map(|sk| GenesisAccount {
            key: ed25519_zebra::VerificationKeyBytes::from(sk).into(),
            balance: self.balance,
        });
        let owners = validators.iter().map(|(nk, _)| GenesisAccount { key: owner(nk), balance: bond });
        let g = Genesis::new(self.network_id, traffic.chain(owners))?;
        let list = validators
            .iter()
            .map(|(node_key, address)| control::GenesisValidator {
                node_key: *node_key,
                owner: owner(node_key),
                bond,
                address: *address,
            })
            .collect();
        g.with_validators(list)
    }

    /// `per_account` transfers of 1 (fee 1) from every account, signed on
    /// every CPU: see [`PoolSpec`].
    pub fn pool(&self, per_account: usize) -> TxPool {
        self.pool_with(&PoolSpec { per_account, ..PoolSpec::default() })
    }

    /// Signs the pool `spec` describes. Transaction `j` is account
    /// `j % accounts`'s, with nonce `j / accounts + 1`, so every account's
    /// nonces come in order whatever prefix of the pool is sent.
    pub fn pool_with(&self, spec: &PoolSpec) -> TxPool {
        self.pool_with_progress(spec, &mut |_, _| {})
    }

    /// [`Plan::pool_with`], calling `progress(signed, total)` about every
    /// 100 ms while the signing threads run.
    pub fn pool_with_progress(&self, spec: &PoolSpec, progress: &mut dyn FnMut(u64, u64)) -> TxPool {
        let n = self.accounts.len();
        let total = spec.per_account * n;
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get()).min(total.max(1));
        let chunk = total.div_ceil(threads.max(1)).max(1);
        let pubkeys: Vec<[u8; 32]> =
            self.accounts.iter().map(|sk| ed25519_zebra::VerificationKeyBytes::from(sk).into()).collect();
        let signed = std::sync::atomic::AtomicU64::new(0);
        let parts: Vec<(Vec<u8>, Vec<u64>)> = std::thread::scope(|s| {
            let signed = &signed;
            let handles: Vec<_> = (0..total)
                .step_by(chunk)
                .map(|from| {
                    let to = (from + chunk).min(total);
                    let pubkeys = &pubkeys;
                    s.spawn(move || {
                        let mut bytes = Vec::with_capacity((to - from) * (160 + spec.memo.1));
                        let mut ends = Vec::with_capacity(to - from);
                        let mut memo = vec![0u8; spec.memo.1];
                        for j in from..to {
                            let a = j % n;
                            let nonce = (j / n) as u64 + 1;
                            let kind = spec.kinds[j % spec.kinds.len().max(1)];
                            let mlen = spec.memo_len(j);
                            for (k, b) in memo.iter_mut().take(mlen).enumerate() {
                                *b = b"att pktgen "[k % 11];
                            }
                            let t = TxFields {
                                kind,
                                to: pubkeys[(a + 1) % n],
                                nonce,
                                amount: u64::from(kind == Kind::Transfer),
                                fee: 1,
                                memo: &memo[..mlen],
                            };
                            emit_signed_tx(&self.accounts[a], self.network_id, &t, &mut bytes);
                            ends.push(bytes.len() as u64);
                            if ends.len() % 1024 == 0 {
                                signed.fetch_add(1024, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        (bytes, ends)
                    })
                })
                .collect();
            while !handles.iter().all(|h| h.is_finished()) {
                progress(signed.load(std::sync::atomic::Ordering::Relaxed), total as u64);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        let mut pool = TxPool::default();
        for (bytes, ends) in parts {
            let base = pool.bytes.len() as u64;
            pool.bytes.extend_from_slice(&bytes);
            pool.ends.extend(ends.iter().map(|e| base + e));
        }
        pool.index();
        pool
    }

    /// [`Plan::pool_with`], cached in `dir` (a file named by everything
    /// the pool depends on). Returns the pool and whether it was signed now.
    pub fn cached_pool(&self, spec: &PoolSpec, dir: Option<&Path>) -> io::Result<(TxPool, bool)> {
        self.cached_pool_progress(spec, dir, &mut |_, _| {})
    }

    /// [`Plan::cached_pool`] with the signing's progress
    /// ([`Plan::pool_with_progress`]).
    pub fn cached_pool_progress(
        &self,
        spec: &PoolSpec,
        dir: Option<&Path>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> io::Result<(TxPool, bool)> {
        let Some(dir) = dir else { return Ok((self.pool_with_progress(spec, progress), true)) };
        let path = self.pool_path(spec, dir);
        if let Ok(pool) = TxPool::load(&path) {
            if pool.len() == spec.per_account * self.accounts.len() {
                // Marks it recently used, for the pruning below.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(std::time::SystemTime::now());
                }
                return Ok((pool, false));
            }
        }
        let pool = self.pool_with_progress(spec, progress);
        std::fs::create_dir_all(dir)?;
        // Written aside and renamed, so a concurrent run never reads half.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        pool.save(&tmp)?;
        std::fs::rename(&tmp, &path)?;
        prune_cache(dir, CACHE_MAX_BYTES);
        Ok((pool, true))
    }

    fn pool_path(&self, spec: &PoolSpec, dir: &Path) -> PathBuf {
        let mut h = Sha256::new();
        h.update(b"pool-v1");
        h.update(self.seed.to_le_bytes());
        h.update(self.network_id.to_le_bytes());
        h.update((self.accounts.len() as u64).to_le_bytes());
        h.update((spec.per_account as u64).to_le_bytes());
        h.update((spec.memo.0 as u64).to_le_bytes());
        h.update((spec.memo.1 as u64).to_le_bytes());
        h.update(spec.kinds.iter().map(|k| *k as u8).collect::<Vec<u8>>());
        let d: [u8; 32] = h.finalize().into();
        dir.join(format!("pool-{}.bin", hex(&d[..12])))
    }
}

/// The pool cache keeps at most this many bytes of pools (the newest
/// always), dropping the least recently used first.
pub const CACHE_MAX_BYTES: u64 = 1 << 30;

/// Removes the least recently used pool files of `dir` until the rest fit
/// in `max` bytes; the most recent one always stays.
pub fn prune_cache(dir: &Path, max: u64) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("pool-") && n.ends_with(".bin")))
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((m.modified().ok()?, m.len(), e.path()))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut total = 0u64;
    for (i, (_, len, path)) in files.iter().enumerate() {
        total += len;
        if i > 0 && total > max {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What the signed pool holds.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub per_account: usize,
    /// Kinds, cycled over the pool.
    pub kinds: Vec<Kind>,
    /// Memo lengths, cycled from `.0` to `.1` inclusive (at most 1024).
    pub memo: (usize, usize),
}

impl Default for PoolSpec {
    fn default() -> Self {
        PoolSpec { per_account: 1, kinds: vec![Kind::Transfer], memo: (19, 19) }
    }
}

impl PoolSpec {
    fn memo_len(&self, j: usize) -> usize {
        let (a, b) = (self.memo.0.min(1024), self.memo.1.min(1024));
        if b <= a {
            a
        } else {
            a + j % (b - a + 1)
        }
    }
}

/// Pre-signed transactions back to back, with their ids.
#[derive(Debug, Clone, Default)]
pub struct TxPool {
    bytes: Vec<u8>,
    /// End offset of each transaction in `bytes`.
    ends: Vec<u64>,
    ids: Vec<[u8; 32]>,
}

const POOL_MAGIC: &[u8; 8] = b"ATTPOOL2";

impl TxPool {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn tx(&self, j: usize) -> &[u8] {
        let start = if j == 0 { 0 } else { self.ends[j - 1] as usize };
        &self.bytes[start..self.ends[j] as usize]
    }

    /// The transaction's id: SHA-256 of its bytes before the signature.
    pub fn id(&self, j: usize) -> [u8; 32] {
        self.ids[j]
    }

    pub fn ids(&self) -> &[[u8; 32]] {
        &self.ids
    }

    fn index(&mut self) {
        self.ids = (0..self.len())
            .map(|j| {
                let t = self.tx(j);
                Sha256::digest(&t[..t.len().saturating_sub(64)]).into()
            })
            .collect();
    }

    /// The first `n` transactions (all of them if there are fewer): every
    /// account's first transactions, in nonce order.
    pub fn prefix(&self, n: usize) -> TxPool {
        let n = n.min(self.len());
        let end = if n == 0 { 0 } else { self.ends[n - 1] as usize };
        TxPool { bytes: self.bytes[..end].to_vec(), ends: self.ends[..n].to_vec(), ids: self.ids[..n].to_vec() }
    }

    /// Bytes of the longest transaction.
    pub fn max_tx_len(&self) -> usize {
        (0..self.len()).map(|j| self.tx(j).len()).max().unwrap_or(0)
    }

    /// Writes the pool: magic, count, end offsets, SHA-256 of the
    /// transactions' bytes, the bytes.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut w = io::BufWriter::new(std::fs::File::create(path)?);
        w.write_all(POOL_MAGIC)?;
        w.write_all(&(self.ends.len() as u64).to_le_bytes())?;
        for e in &self.ends {
            w.write_all(&e.to_le_bytes())?;
        }
        w.write_all(&Sha256::digest(&self.bytes))?;
        w.write_all(&self.bytes)?;
        w.flush()
    }

    /// Reads a pool written by [`TxPool::save`]; anything inconsistent (a
    /// length, or one bit of the transactions against the stored hash) is
    /// an error, and the caller signs afresh.
    pub fn load(path: &Path) -> io::Result<TxPool> {
        let mut data = Vec::new();
        std::fs::File::open(path)?.read_to_end(&mut data)?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a transaction pool");
        if data.get(..8) != Some(&POOL_MAGIC[..]) {
            return Err(bad());
        }
        let n = u64::from_le_bytes(data.get(8..16).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
        let n = usize::try_from(n).map_err(|_| bad())?;
        let ends_end = n.checked_mul(8).and_then(|x| x.checked_add(16)).ok_or_else(bad)?;
        let ends: Vec<u64> = data
            .get(16..ends_end)
            .ok_or_else(bad)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let hash = data.get(ends_end..ends_end + 32).ok_or_else(bad)?;
        let bytes = data.get(ends_end + 32..).ok_or_else(bad)?;
        let mut prev = 0u64;
        for e in &ends {
            // Every transaction is at least 156 bytes.
            if e.checked_sub(prev).is_none_or(|l| l < 156) {
                return Err(bad());
            }
            prev = *e;
        }
        if prev != bytes.len() as u64 || Sha256::digest(bytes)[..] != hash[..] {
            return Err(bad());
        }
        let mut pool = TxPool { bytes: bytes.to_vec(), ends, ids: Vec::new() };
        pool.index();
        Ok(pool)
    }
}

/// A seed from the operating system's generator.
pub fn random_seed() -> u64 {
    use rand::Rng;
    rand::make_rng::<rand::rngs::StdRng>().next_u64()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keys file written by one plan is read back whole; a broken one is
    /// refused with the file and the entry named.
    #[test]
    fn keys_files_round_trip_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("attnet-keys-file-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plan = Plan::from_seed(9, 1, 3, 2, 10);
        let p = dir.join("keys.json");
        std::fs::write(&p, plan.keys_json()).unwrap();
        let back = read_keys(&p).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in back.iter().zip(&plan.sessions) {
            assert_eq!((a.id, a.c2r, a.r2c), (b.id, b.c2r, b.r2c));
        }
        // Another seed's plan with these sessions seals under them.
        let other = Plan::from_seed(10, 1, 1, 2, 10).with_sessions(back);
        assert_eq!(other.sessions[2].c2r, plan.sessions[2].c2r);
        let (a, b) = ("11".repeat(32), "22".repeat(32));
        let entry = |id: u32, c2r: &str, r2c: &str| format!(r#"{{"id": {id}, "c2r": "{c2r}", "r2c": "{r2c}"}}"#);
        for (text, why) in [
            (
                format!(r#"{{"sessions": [{}, {}]}}"#, entry(4, &a, &b), entry(4, &b, &a)),
                "sessions[1]: session 4 listed twice",
            ),
            (
                format!(r#"{{"sessions": [{}]}}"#, entry(5, &a[2..], &b)),
                "sessions[0]: session 5: c2r must be 64 hex digits",
            ),
            (format!(r#"{{"sessions": [{}]}}"#, entry(64535, &a, &b)), "sessions[0]: session id 64535 is out of range"),
            (format!(r#"{{"sessions": [{}]}}"#, entry(6, &a, &a)), "sessions[0]: session 6:"),
            ("{".to_string(), "EOF"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_keys(&p).unwrap_err();
            assert!(e.starts_with(&format!("keys file {}: ", p.display())) && e.contains(why), "{e}");
        }
        let missing = dir.join("none.json");
        assert!(read_keys(&missing).unwrap_err().starts_with(&format!("keys file {}: ", missing.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pool_is_deterministic_ordered_and_cached() {
        let plan = Plan::from_seed(7, 1, 2, 3, 1000);
        let spec = PoolSpec { per_account: 4, kinds: vec![Kind::Transfer, Kind::Message], memo: (0, 40) };
        let a = plan.pool_with(&spec);
        let b = Plan::from_seed(7, 1, 2, 3, 1000).pool_with(&spec);
        assert_eq!(a.len(), 12);
        assert_eq!(a.bytes, b.bytes);
        for j in 0..a.len() {
            let t = dataplane::wire::tx::Transaction::new_checked(a.tx(j)).unwrap();
            assert_eq!(t.nonce(), (j / 3) as u64 + 1);
            let from: [u8; 32] = ed25519_zebra::VerificationKeyBytes::from(&plan.accounts[j % 3]).into();
            assert_eq!(t.from(), from);
            assert_eq!(t.memo_len() as usize, j % 41);
        }
        let dir = std::env::temp_dir().join(format!("attnet-pool-test-{}", std::process::id()));
        let (p1, fresh1) = plan.cached_pool(&spec, Some(&dir)).unwrap();
        let (p2, fresh2) = plan.cached_pool(&spec, Some(&dir)).unwrap();
        assert!(fresh1 && !fresh2);
        assert_eq!(p1.bytes, p2.bytes);
        assert_eq!(p1.ids, p2.ids);
        // A damaged cache (one bit inside a transaction, or a cut file) is
        // signed afresh, not trusted.
        let f = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        let good = std::fs::read(&f).unwrap();
        let mut d = good.clone();
        let l = d.len();
        d[l - 100] ^= 1;
        std::fs::write(&f, &d).unwrap();
        assert!(TxPool::load(&f).is_err());
        std::fs::write(&f, &good[..l - 1]).unwrap();
        assert!(TxPool::load(&f).is_err());
        let (p3, fresh3) = plan.cached_pool(&spec, Some(&dir)).unwrap();
        assert!(fresh3);
        assert_eq!(p3.ids, p1.ids);
        // Another pool beside it, then a cap below both: only the most
        // recently used stays.
        let spec2 = PoolSpec { per_account: 2, ..spec.clone() };
        plan.cached_pool(&spec2, Some(&dir)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (_, fresh) = plan.cached_pool(&spec, Some(&dir)).unwrap();
        assert!(!fresh);
        prune_cache(&dir, 1);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(left, vec![plan.pool_path(&spec, &dir)]);
        let head = p1.prefix(5);
        assert_eq!(head.len(), 5);
        assert!((0..5).all(|j| head.tx(j) == p1.tx(j) && head.id(j) == p1.id(j)));
        assert_eq!(p1.prefix(1000).len(), p1.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
