//! Helpers of the live session tests (`handshake.rs` over kernel sockets,
//! `dpdk_sessions.rs` over a DPDK port): the node key and genesis files,
//! funded accounts, and a client session through the shared client API.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::client::{ClientConfig, Connection};
use dataplane::emit::TxFields;
use dataplane::wire::query::{Answer, QueryWhat};
use dataplane::wire::tx::Kind;
use ed25519_zebra::{SigningKey, VerificationKey};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_attnet");
pub const NODE_SEED: [u8; 32] = [0x4e; 32];

/// A fresh directory for one test's files.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-sessions-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn pk(sk: &SigningKey) -> [u8; 32] {
    VerificationKey::from(sk).into()
}

/// The node's public key (what clients pin).
pub fn node_pk() -> [u8; 32] {
    pk(&SigningKey::from(NODE_SEED))
}

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
    let public = hex::encode(node_pk());
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

/// A node key file and a genesis funding accounts 0..n with 1 000 000 each.
pub fn files(d: &Path, n: u32) -> (PathBuf, PathBuf) {
    let keys: Vec<[u8; 32]> = (0..n).map(|i| pk(&account(i))).collect();
    (node_key_file(d), genesis_file(d, &keys))
}

/// `attnet node` on `backend` listening on loopback, with the node key,
/// 50 ms blocks and RECEIPTs (unless `extra` gives `--receipts`).
pub fn start(backend: &str, cores: &str, key: &Path, genesis: &Path, extra: &[&str]) -> Node {
    let receipts: &[&str] = if extra.contains(&"--receipts") { &[] } else { &["--receipts", "true"] };
    Node::spawn(
        Command::new(BIN)
            .args(["node", "--backend", backend, "--listen", "127.0.0.1:0", "--cores", cores])
            .args(["--block-interval", "50"])
            .args(receipts)
            .arg("--node-key")
            .arg(key)
            .arg("--genesis")
            .arg(genesis)
            .args(extra),
    )
}

/// Opens a session with the shared client (cookie round trip, late
/// WELCOMEs, the node key pinned); the client and the COOKIEs it answered.
pub fn connect(relay: SocketAddr, sk: SigningKey) -> (Connection, u32) {
    let mut cfg = ClientConfig::new(relay, node_pk(), 1);
    cfg.hellos = 10;
    let mut c = Connection::connect(&cfg, sk).unwrap();
    c.record();
    let cookies = c.stats.cookies;
    (c, cookies)
}

pub fn query(c: &mut Connection, what: QueryWhat) -> Answer {
    c.query(what, 3).unwrap()
}

/// A transfer in one TX_BATCH frame; its id.
pub fn transfer(c: &mut Connection, to: [u8; 32], nonce: u64, amount: u64) -> [u8; 32] {
    c.submit(&TxFields { kind: Kind::Transfer, to, nonce, amount, fee: 1, memo: &[] }).unwrap()
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

/// A node process, killed when dropped (so a failed assertion never leaves
/// it running).
pub struct Node {
    child: Option<Child>,
    addr: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
}

impl Node {
    /// Starts `cmd` (an `attnet node` command line) and waits until the
    /// node is ready (every table built, the control thread running);
    /// remembers the address it listens on, if it says one.
    pub fn spawn(cmd: &mut Command) -> Node {
        let mut c = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut err = BufReader::new(c.stderr.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        let mut addr = None;
        while !line.contains("attnet: ready") {
            line.clear();
            if err.read_line(&mut line).unwrap() == 0 {
                let _ = c.kill();
                panic!("node exited early:\n{seen}");
            }
            seen.push_str(&line);
            if let Some((_, a)) = line.trim().rsplit_once("listening on ") {
                addr = Some(a.parse().unwrap());
            }
        }
        // Keep draining stderr so the node never blocks on it.
        let stderr = Arc::new(Mutex::new(seen));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            sink.lock().unwrap().push_str(&rest);
        });
        Node { child: Some(c), addr, stderr }
    }

    /// The address the node listens on (socket backends).
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the node said no listening address")
    }

    /// What the node wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
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
        assert!(c.wait().unwrap().success(), "{}", self.stderr());
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
