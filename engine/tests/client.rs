//! `attnet client` against a live relay on loopback, through the built
//! binary: keys from `attnet keygen`, a transfer and a message with their
//! RECEIPTs, account and transaction queries, a refusal named, the relay
//! key pinned, a lost WELCOME and lost RECEIPTs recovered, the exit codes,
//! inboxes and connections read page by page.
//! Every node is killed after a bounded time.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dataplane::client::{ClientConfig, Connection};
use dataplane::wire::query::{inbox_records, AnswerBody, Query, QueryWhat};
use dataplane::wire::share::kind;
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

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}")).iter().map(|x| x.as_str().unwrap()).collect()
}

#[test]
fn inboxes_and_connections_are_read_through_the_relay_page_by_page() {
    let net = net("inbox");
    let node = net.node("recvmmsg", &[]);
    let (r, key) = (node.addr(), net.relay_key.clone());
    let (alice, bob) = (net.alice.as_str(), net.bob.as_str());
    committed(&net.client(r, &key, "alice", &["message", "--to", bob, "hi bob, from alice"]));
    committed(&net.client(r, &key, "alice", &["connect", "--to", bob, "--reason", "lunch?"]));
    // Open: bob sees the request in, alice the request out.
    let v = json(&net.client(r, &key, "bob", &["connections"]));
    assert_eq!(
        (strs(&v["connected"]), strs(&v["requests_in"]), strs(&v["requests_out"])),
        (vec![], vec![alice], vec![])
    );
    let v = json(&net.client(r, &key, "alice", &["connections"]));
    assert_eq!((strs(&v["connected"]), strs(&v["requests_out"])), (vec![], vec![bob]), "{v}");
    committed(&net.client(r, &key, "bob", &["accept", "--to", alice]));
    // Three long messages: with a 1000-byte memo a page holds one record.
    let long: Vec<String> = (0..3).map(|i| format!("{i}").repeat(1000)).collect();
    for m in &long {
        committed(&net.client(r, &key, "alice", &["message", "--to", bob, m]));
    }
    let o = net.client(r, &key, "bob", &["inbox"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json(&o);
    assert_eq!((v["account"].as_str(), n(&v["total"]), n(&v["first"])), (Some(bob), 5, 0), "{v}");
    let recs = v["records"].as_array().unwrap();
    let got: Vec<(u64, &str, &str, &str, u64)> = recs
        .iter()
        .map(|x| {
            (
                n(&x["index"]),
                x["kind"].as_str().unwrap(),
                x["from"].as_str().unwrap(),
                x["memo"].as_str().unwrap(),
                n(&x["nonce"]),
            )
        })
        .collect();
    let want: Vec<(u64, &str, &str, &str, u64)> = vec![
        (0, "message", alice, "hi bob, from alice", 1),
        (1, "connect-request", alice, "lunch?", 2),
        (2, "message", alice, &long[0], 3),
        (3, "message", alice, &long[1], 4),
        (4, "message", alice, &long[2], 5),
    ];
    assert_eq!(got, want);
    assert!(recs.windows(2).all(|w| n(&w[0]["height"]) < n(&w[1]["height"])), "one block each");
    assert!(recs.iter().all(|x| x["cut"] == false));
    // From index 3: the last two records only.
    let v = json(&net.client(r, &key, "bob", &["inbox", "--from", "3"]));
    let idx: Vec<u64> = v["records"].as_array().unwrap().iter().map(|x| n(&x["index"])).collect();
    assert_eq!(idx, [3, 4]);
    // Alice holds bob's acceptance and his endpoint offer, which her key
    // opens; read by bob, the offer stays sealed. Both are connected,
    // nothing open.
    committed(&net.client(r, &key, "bob", &["offer", "--to", alice, "udp://192.0.2.7:7100"]));
    let v = json(&net.client(r, &key, "alice", &["inbox"]));
    let recs = v["records"].as_array().unwrap();
    assert_eq!(
        (recs.len(), recs[0]["kind"].as_str(), recs[0]["from"].as_str()),
        (2, Some("connect-accept"), Some(bob))
    );
    assert_eq!(
        (recs[1]["kind"].as_str(), recs[1]["endpoint"].as_str()),
        (Some("endpoint-offer"), Some("udp://192.0.2.7:7100"))
    );
    assert!(recs[1]["memo"].is_null() && recs[1]["memo_hex"].as_str().is_some_and(|h| h.len() > 40), "{}", recs[1]);
    let v = json(&net.client(r, &key, "bob", &["inbox", alice]));
    assert!(v["records"][1].get("endpoint").is_none(), "{v}");
    for (who, peer) in [("alice", bob), ("bob", alice)] {
        let v = json(&net.client(r, &key, who, &["connections"]));
        assert_eq!(strs(&v["connected"]), [peer], "{who}: {v}");
        assert!(strs(&v["requests_in"]).is_empty() && strs(&v["requests_out"]).is_empty(), "{who}: {v}");
    }
    // Another account's inbox by key; an account the relay does not know.
    let v = json(&net.client(r, &key, "alice", &["inbox", bob]));
    assert_eq!(n(&v["total"]), 5);
    let o = net.client(r, &key, "alice", &["connections", &"ab".repeat(32)]);
    assert_eq!((o.status.code(), json(&o)["status"].as_str()), (Some(1), Some("unknown")));
    // A paged QUERY one byte short is bad_tx on the data core; the same
    // QUERY whole is answered.
    let mut relay_key = [0u8; 32];
    hex::decode_to_slice(&key, &mut relay_key).unwrap();
    let cfg = ClientConfig::new(r, relay_key, 1);
    let mut c = Connection::connect(&cfg, ed25519_zebra::SigningKey::from([7u8; 32])).unwrap();
    let mut bob_key = [0u8; 32];
    hex::decode_to_slice(bob, &mut bob_key).unwrap();
    let mut q = Vec::new();
    let what = QueryWhat::Inbox { account: bob_key, start: 4 };
    Query { request_id: 99, what }.emit(&mut q);
    c.send_frame(1005, kind::QUERY, &q[..45]).unwrap();
    let (a, body) = c.query_body(what, 3).unwrap();
    assert_eq!(a.body, AnswerBody::Inbox { total: 5, first: 0, at: 4, count: 1 }, "{a:?}");
    let rec = inbox_records(&body).next().unwrap();
    assert_eq!((rec.from, rec.memo), (hex::decode(alice).unwrap()[..].try_into().unwrap(), long[2].as_bytes()));
    let s = node.stop();
    assert_eq!(n(&s["frames"]["dropped"]["bad_tx"]), 1, "{}", s["frames"]);
    let q = &s["queries"];
    assert_eq!(n(&q["received"]), n(&q["answered"]), "{q}");
    assert_eq!((n(&q["malformed"]), n(&q["overload"]), n(&q["stale_session"])), (0, 0, 0), "{q}");
}
