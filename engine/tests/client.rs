//! `attnet client` against a live relay on loopback, through the built
//! binary: keys from `attnet keygen`, a transfer and a message with their
//! RECEIPTs, account and transaction queries, a refusal named, the relay
//! key pinned, a lost WELCOME and lost RECEIPTs recovered, the exit codes.
//! Every node is killed after a bounded time.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod session_common;
use session_common::{handshake_adds_up, n, start, Node, BIN};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-client-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `attnet keygen --out FILE`: the public key it prints.
fn keygen(path: &Path) -> String {
    let o = Command::new(BIN).arg("keygen").arg("--out").arg(path).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

struct Net {
    dir: PathBuf,
    node_key: PathBuf,
    relay_key: String,
    genesis: PathBuf,
    alice: String,
    bob: String,
}

/// A node key, two accounts (alice 1 000 000, bob 1 000) and their genesis.
fn net(name: &str) -> Net {
    let dir = tmpdir(name);
    let relay_key = keygen(&dir.join("node.key"));
    let alice = keygen(&dir.join("alice.key"));
    let bob = keygen(&dir.join("bob.key"));
    let genesis = dir.join("genesis.json");
    let g = serde_json::json!({"network_id": 1, "min_fee": 1, "accounts": [
        {"key": alice, "balance": 1_000_000}, {"key": bob, "balance": 1000}]});
    std::fs::write(&genesis, g.to_string()).unwrap();
    Net { node_key: dir.join("node.key"), dir, relay_key, genesis, alice, bob }
}

impl Net {
    fn node(&self, backend: &str, extra: &[&str]) -> Node {
        start(backend, "1", &self.node_key, &self.genesis, extra)
    }

    /// `attnet client --json` as `who` (a key file in the directory).
    fn client(&self, relay: SocketAddr, relay_key: &str, who: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["client", "--relay", &relay.to_string(), "--relay-key", relay_key, "--json", "--timeout", "10"])
            .arg("--account-key")
            .arg(self.dir.join(format!("{who}.key")))
            .args(args)
            .output()
            .unwrap()
    }
}

fn json(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: stdout {text:?} stderr {}", String::from_utf8_lossy(&o.stderr)))
}

fn committed(o: &Output) -> (String, u64) {
    let v = json(o);
    assert_eq!(o.status.code(), Some(0), "{v} {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(v["status"], "committed", "{v}");
    assert!(v["reason"].is_null(), "{v}");
    (v["tx_id"].as_str().unwrap().to_owned(), n(&v["height"]))
}

#[test]
fn a_relay_and_two_clients_send_a_transfer_and_a_message_with_receipts() {
    let net = net("two");
    for backend in ["io_uring", "recvmmsg"] {
        let node = net.node(backend, &[]);
        let r = node.addr();
        let (sent, h1) =
            committed(&net.client(r, &net.relay_key, "alice", &["send", "--to", &net.bob, "--amount", "500"]));
        assert!(h1 >= 1);
        let (_, h2) = committed(&net.client(r, &net.relay_key, "bob", &["message", "--to", &net.alice, "hello alice"]));
        assert!(h2 >= 1);
        // Bob's balance: 1000 + 500 - the message's minimum fee (1).
        let o = net.client(r, &net.relay_key, "bob", &["account"]);
        assert_eq!(o.status.code(), Some(0));
        let v = json(&o);
        assert_eq!((n(&v["balance"]), n(&v["next_nonce"]), n(&v["min_fee"])), (1499, 2, 1), "{backend}: {v}");
        // The transfer by id.
        let o = net.client(r, &net.relay_key, "bob", &["tx", &sent]);
        assert_eq!(json(&o)["height"], h1, "{backend}");
        assert_eq!(o.status.code(), Some(0));
        // More than alice holds: refused, the reason named, exit 1.
        let o = net.client(r, &net.relay_key, "alice", &["send", "--to", &net.bob, "--amount", "99000000"]);
        let v = json(&o);
        assert_eq!(
            (o.status.code(), v["status"].as_str(), v["reason"].as_str()),
            (Some(1), Some("refused"), Some("insufficient_funds")),
            "{v}"
        );
        // A connection request, its acceptance, and a sealed offer.
        committed(&net.client(r, &net.relay_key, "alice", &["connect", "--to", &net.bob, "--reason", "work"]));
        committed(&net.client(r, &net.relay_key, "bob", &["accept", "--to", &net.alice]));
        committed(&net.client(r, &net.relay_key, "alice", &["offer", "--to", &net.bob, "udp://192.0.2.7:7100"]));
        let s = node.stop();
        handshake_adds_up(&s);
        assert_eq!(n(&s["handshake"]["welcomed"]), 8, "{backend}: {}", s["handshake"]);
        assert_eq!(n(&s["txs"]["accepted"]), 6, "{backend}: {}", s["txs"]);
        assert_eq!(n(&s["frames"]["dropped"]["unknown_session"]), 0);
    }
}

#[test]
fn the_relay_key_is_pinned_and_exit_codes_name_the_outcome() {
    let net = net("pinned");
    let node = net.node("recvmmsg", &[]);
    // A WELCOME signed by the relay, pinned to another key: refused.
    let o = net.client(node.addr(), &net.alice, "alice", &["account"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("another node key"), "{err}");
    // Usage: a key that is not hex, a missing key file.
    let o = net.client(node.addr(), "zz", "alice", &["account"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--relay-key"));
    let o = net.client(node.addr(), &net.relay_key, "nobody", &["account"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("account key file"));
    // An account the relay does not know: answered, exit 1.
    let o = net.client(node.addr(), &net.relay_key, "alice", &["account", &"ab".repeat(32)]);
    assert_eq!((o.status.code(), json(&o)["status"].as_str()), (Some(1), Some("unknown")));
    drop(node);
    // Nobody answers: exit 3 within the timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = Instant::now();
    let o = Command::new(BIN)
        .args(["client", "--relay", &silent.local_addr().unwrap().to_string(), "--relay-key", &net.relay_key])
        .args(["--timeout", "2", "--account-key"])
        .arg(net.dir.join("alice.key"))
        .args(["send", "--to", &net.bob, "--amount", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.elapsed() < Duration::from_secs(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("WELCOME"));
}

/// A UDP relay between one client and the node that drops the node's
/// first `drop_first` datagrams (bounded: it stops after `for_ms`).
fn lossy_proxy(node: SocketAddr, drop_first: usize, for_ms: u64) -> SocketAddr {
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(node).unwrap();
    let addr = front.local_addr().unwrap();
    front.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    back.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_millis(for_ms);
        let (mut client, mut dropped, mut buf) = (None, 0, [0u8; 2048]);
        while Instant::now() < until {
            if let Ok((k, from)) = front.recv_from(&mut buf) {
                client = Some(from);
                let _ = back.send(&buf[..k]);
            }
            if let Ok(k) = back.recv(&mut buf) {
                if dropped < drop_first {
                    dropped += 1;
                } else if let Some(c) = client {
                    let _ = front.send_to(&buf[..k], c);
                }
            }
        }
    });
    addr
}

#[test]
fn a_lost_welcome_brings_a_new_hello_and_lost_receipts_a_state_query() {
    let net = net("lossy");
    // No RECEIPT is ever sent: the client learns the height by asking.
    let node = net.node("recvmmsg", &["--receipts", "false"]);
    let proxy = lossy_proxy(node.addr(), 1, 8000);
    let o = net.client(proxy, &net.relay_key, "alice", &["send", "--to", &net.bob, "--amount", "7"]);
    let (_, h) = committed(&o);
    assert!(h >= 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("(2 HELLO, 0 cookie)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = node.stop();
    handshake_adds_up(&s);
    assert_eq!(n(&s["handshake"]["welcomed"]), 2, "{}", s["handshake"]);
    // Sent once: no copy reached the ledger as a duplicate.
    assert_eq!(n(&s["txs"]["accepted"]), 1, "{}", s["txs"]);
    assert_eq!(n(&s["txs"]["dropped"]["duplicate"]), 0, "{}", s["txs"]);
}

#[test]
fn a_cookie_round_trip_under_forced_load() {
    let net = net("cookie");
    let node = net.node("io_uring", &["--hello-cookie-threshold", "0"]);
    let o = net.client(node.addr(), &net.relay_key, "alice", &["send", "--to", &net.bob, "--amount", "3"]);
    committed(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("(1 HELLO, 1 cookie)"));
    let s = node.stop();
    assert_eq!((n(&s["handshake"]["cookies_sent"]), n(&s["handshake"]["welcomed"])), (1, 1));
}

fn refused(o: &Output, reason: &str) {
    let v = json(o);
    assert_eq!(
        (o.status.code(), v["status"].as_str(), v["reason"].as_str()),
        (Some(1), Some("refused"), Some(reason)),
        "{v}"
    );
}

#[test]
fn stake_votes_and_a_producer_through_the_relay() {
    let net = net("stake");
    let node = net.node("recvmmsg", &[]);
    let r = node.addr();
    let key = net.relay_key.clone();
    let register = ["register-producer", "--node-key-pub", &key, "--address", "127.0.0.1:7100"];
    committed(&net.client(r, &key, "alice", &register));
    refused(&net.client(r, &key, "alice", &register), "already_producer");
    refused(&net.client(r, &key, "bob", &["vote", &net.alice]), "no_stake");
    committed(&net.client(r, &key, "bob", &["stake", "300"]));
    committed(&net.client(r, &key, "bob", &["vote", &net.alice]));
    refused(&net.client(r, &key, "bob", &["vote", &net.bob]), "not_a_producer");
    refused(&net.client(r, &key, "bob", &["unstake", "301"]), "insufficient_stake");
    let v = json(&net.client(r, &key, "bob", &["account"]));
    assert_eq!((n(&v["staked"]), n(&v["balance"])), (300, 1000 - 300 - 2), "{v}");
    // A bad address never leaves the client.
    let o = net.client(r, &key, "alice", &["register-producer", "--node-key-pub", &key, "--address", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    let s = node.stop();
    assert_eq!(n(&s["ledger"]["dropped"]["not_a_producer"]), 1, "{}", s["ledger"]);
    assert_eq!(n(&s["ledger"]["dropped"]["insufficient_stake"]), 1);
}
