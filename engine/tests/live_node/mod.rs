//! Helpers of the live tests that run `attnet node` with a node key on
//! loopback and open sessions with the shared client: the node key and
//! genesis files, the node process (killed after a bounded time), and the
//! handshake identity of its summary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataplane::client::{ClientConfig, Connection};
use ed25519_zebra::{SigningKey, VerificationKey};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_attnet");
pub const NODE_SEED: [u8; 32] = [0x4e; 32];

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-live-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn pk(sk: &SigningKey) -> [u8; 32] {
    VerificationKey::from(sk).into()
}

/// The node key's public half.
pub fn node_public() -> [u8; 32] {
    pk(&SigningKey::from(NODE_SEED))
}

/// Test account `i`.
pub fn account(i: u32) -> SigningKey {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s[31] = 0xac;
    SigningKey::from(s)
}

/// The node key file (mode 0600) of [`NODE_SEED`].
pub fn node_key_file(d: &Path) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let key = d.join("node.key");
    let _ = std::fs::remove_file(&key);
    let public = hex::encode(node_public());
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key).unwrap();
    std::io::Write::write_all(
        &mut f,
        format!("{{\"secret\": \"{}\", \"public\": \"{public}\"}}\n", hex::encode(NODE_SEED)).as_bytes(),
    )
    .unwrap();
    key
}

/// A genesis (network 1) funding each account key with 1 000 000.
pub fn genesis_file(d: &Path, keys: &[[u8; 32]]) -> PathBuf {
    let accounts: Vec<Value> =
        keys.iter().map(|k| serde_json::json!({"key": hex::encode(k), "balance": 1_000_000})).collect();
    let genesis = d.join("genesis.json");
    std::fs::write(&genesis, serde_json::json!({"network_id": 1, "min_fee": 1, "accounts": accounts}).to_string())
        .unwrap();
    genesis
}

/// A node key file and a genesis funding accounts 0..n.
pub fn files(d: &Path, n: u32) -> (PathBuf, PathBuf) {
    let keys: Vec<[u8; 32]> = (0..n).map(|i| pk(&account(i))).collect();
    (node_key_file(d), genesis_file(d, &keys))
}

/// A node process, killed when dropped.
pub struct Node {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Node {
    pub fn start(backend: &str, cores: &str, key: &Path, genesis: &Path, extra: &[&str]) -> Node {
        let mut c = Command::new(BIN)
            .args(["node", "--backend", backend, "--listen", "127.0.0.1:0", "--cores", cores])
            .args(["--block-interval", "50", "--receipts", "true"])
            .arg("--node-key")
            .arg(key)
            .arg("--genesis")
            .arg(genesis)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(c.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "node exited early");
            if let Some((_, a)) = line.trim().rsplit_once("listening on ") {
                break a.parse().unwrap();
            }
        };
        // Then until every table is built and the control thread runs.
        while !line.contains("attnet: ready") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "node exited early");
        }
        // Keep draining stderr so the node never blocks on it.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = err.read_to_string(&mut sink);
        });
        Node { child: Some(c), addr }
    }

    /// SIGTERM, then the summary it prints (bounded).
    pub fn stop(mut self) -> Value {
        let mut c = self.child.take().unwrap();
        assert!(Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap().success());
        let until = Instant::now() + Duration::from_secs(20);
        while c.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "node did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(c.wait().unwrap().success());
        serde_json::from_str(&out).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Opens a session with the shared client (cookie round trip, late
/// WELCOMEs, the node key pinned, up to 10 HELLOs), recording what it
/// sends; the client and the COOKIEs it answered.
pub fn connect(relay: SocketAddr, sk: SigningKey) -> (Connection, u32) {
    let mut cfg = ClientConfig::new(relay, node_public(), 1);
    cfg.hellos = 10;
    let mut c = Connection::connect(&cfg, sk).unwrap();
    c.record();
    let cookies = c.stats.cookies;
    (c, cookies)
}

pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `received == welcomed + cookies_sent + Σ refusals`.
pub fn handshake_adds_up(s: &Value) {
    let h = &s["handshake"];
    let refused: u64 = h["refused"].as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&h["received"]), n(&h["welcomed"]) + n(&h["cookies_sent"]) + refused, "{h}");
}
