//! The live handshake through the built binary on loopback: a node with a
//! node key answers HELLOs (with cookies under load), installs sessions on
//! every data core before WELCOME, answers QUERYs in the session, sends
//! RECEIPTs, counts every handshake item once, and forgets its sessions
//! when it restarts. Every node is killed after a bounded time.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use dataplane::client::unix_ms;
use dataplane::handshake::{parse_info_frames, ClientHandshake};
use dataplane::wire::handshake::Cookie;
use dataplane::wire::query::{AnswerBody, QueryWhat};
use dataplane::wire::share::kind;

mod session_common;
use session_common::*;

#[test]
fn a_session_negotiated_live_carries_a_transfer_its_receipt_and_queries() {
    let d = tmpdir("live");
    let (key, genesis) = files(&d, 2);
    for backend in ["io_uring", "recvmmsg"] {
        let node = start(backend, "1", &key, &genesis, &[]);
        let (mut c, _) = connect(node.addr(), account(0));
        let me = pk(&account(0));
        let to = pk(&account(1));
        let a = query(&mut c, QueryWhat::Account(me));
        let AnswerBody::Account { next_nonce, balance, .. } = a.body else { panic!("{a:?}") };
        assert_eq!((next_nonce, balance), (1, 1_000_000), "{backend}");
        let id = transfer(&mut c, to, next_nonce, 5000);
        // The RECEIPT names the transaction.
        let until = Instant::now() + Duration::from_secs(10);
        let height = c.wait_receipt(&id, until).unwrap().unwrap_or_else(|| panic!("{backend}: no RECEIPT"));
        assert!(height >= 1);
        let t = query(&mut c, QueryWhat::Transaction(id));
        assert_eq!(t.body, AnswerBody::Transaction { state: 2, height, reason: 0 }, "{backend}");
        let b = query(&mut c, QueryWhat::Account(to));
        let AnswerBody::Account { balance, .. } = b.body else { panic!("{b:?}") };
        assert_eq!(balance, 1_005_000, "{backend}");
        // An account nobody holds: status 1.
        assert_eq!(query(&mut c, QueryWhat::Account([9; 32])).status, 1);
        let s = node.stop();
        handshake_adds_up(&s);
        assert_eq!(n(&s["handshake"]["welcomed"]), 1, "{backend}: {}", s["handshake"]);
        assert_eq!(n(&s["queries"]["answered"]), 4);
        assert_eq!(n(&s["frames"]["dropped"]["unknown_session"]), 0);
        assert_eq!(n(&s["txs"]["accepted"]), 1);
    }
}

#[test]
fn a_thousand_handshakes_across_two_cores_meet_no_unknown_session() {
    let d = tmpdir("thousand");
    let (key, genesis) = files(&d, 1);
    let node = start(
        "io_uring",
        "2",
        &key,
        &genesis,
        &["--sessions-per-source", "2000", "--hello-source-rate", "100000", "--hello-cookie-threshold", "100000"],
    );
    let addr = node.addr();
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..250u32 {
                    // Each session has its own socket (source port), so
                    // SO_REUSEPORT spreads them over both cores.
                    let (mut c, _) = connect(addr, account(1000 + t * 250 + i));
                    // The first data frame right after WELCOME.
                    let a = query(&mut c, QueryWhat::Account([0; 32]));
                    assert_eq!(a.status, 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = node.stop();
    handshake_adds_up(&s);
    assert_eq!(n(&s["handshake"]["welcomed"]), 1000, "{}", s["handshake"]);
    assert_eq!(n(&s["frames"]["dropped"]["unknown_session"]), 0);
    assert_eq!(n(&s["queries"]["answered"]), 1000);
}

#[test]
fn cookies_under_forced_load_and_every_refusal_is_counted() {
    let d = tmpdir("cookies");
    let (key, genesis) = files(&d, 1);
    let node = start("recvmmsg", "1", &key, &genesis, &["--hello-cookie-threshold", "0"]);
    let (mut c, cookies) = connect(node.addr(), account(0));
    assert_eq!(cookies, 1, "under load the first answer is a COOKIE");
    let a = query(&mut c, QueryWhat::Account(pk(&account(0))));
    assert_eq!(a.status, 0);
    // Hostile HELLOs from one socket: a stale one, a forged one, a
    // malformed echo, and a replay of a HELLO already answered.
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(node.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let stale = ClientHandshake::new(&account(5), [1; 32], unix_ms() - 60_000, 1);
    s.send(&stale.hello_frame()).unwrap();
    let forged = ClientHandshake::new(&account(6), [2; 32], unix_ms(), 1);
    // A cookie for the forged HELLO, then the HELLO with a flipped
    // signature byte (its hash changes, so the cookie is bad too) and
    // with the right cookie but a bad signature.
    s.send(&forged.hello_frame()).unwrap();
    let mut buf = [0u8; 2048];
    let k = s.recv(&mut buf).unwrap();
    let cookie = Cookie::parse(parse_info_frames(&buf[..k]).unwrap()[0].body).unwrap();
    let mut bad = forged.echo_datagram(&cookie.cookie);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    s.send(&bad).unwrap();
    // A COOKIE_ECHO alone.
    let echo = forged.echo_datagram(&cookie.cookie);
    let echo_len = u16::from_be_bytes([echo[2], echo[3]]) as usize;
    s.send(&echo[..echo_len]).unwrap();
    let replay = ClientHandshake::new(&account(7), [3; 32], unix_ms(), 1);
    s.send(&replay.hello_frame()).unwrap();
    let k = s.recv(&mut buf).unwrap();
    let ck = Cookie::parse(parse_info_frames(&buf[..k]).unwrap()[0].body).unwrap();
    s.send(&replay.echo_datagram(&ck.cookie)).unwrap();
    let k = s.recv(&mut buf).unwrap();
    assert_eq!(parse_info_frames(&buf[..k]).unwrap()[0].content_kind, kind::WELCOME);
    s.send(&replay.echo_datagram(&ck.cookie)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sum = node.stop();
    handshake_adds_up(&sum);
    let h = &sum["handshake"];
    assert_eq!(n(&h["welcomed"]), 2, "{h}");
    // The stale one and the forged one drew no cookie: the timestamp comes
    // first; the first HELLO of each client did.
    assert_eq!(n(&h["cookies_sent"]), 3, "{h}");
    for (reason, count) in
        [("stale_timestamp", 1), ("bad_cookie", 1), ("malformed", 1), ("replayed_hello", 1), ("bad_signature", 0)]
    {
        assert_eq!(n(&h["refused"][reason]), count, "{reason}: {h}");
    }
}

#[test]
fn a_session_capture_replayed_after_a_restart_is_not_accepted() {
    let d = tmpdir("restart");
    let (key, genesis) = files(&d, 2);
    let node = start("recvmmsg", "1", &key, &genesis, &[]);
    let (mut c, _) = connect(node.addr(), account(0));
    let id = transfer(&mut c, pk(&account(1)), 1, 10);
    let until = Instant::now() + Duration::from_secs(10);
    assert!(c.wait_receipt(&id, until).unwrap().is_some(), "no RECEIPT");
    let s = node.stop();
    assert_eq!(n(&s["txs"]["accepted"]), 1, "{}", s["txs"]);
    // The same node key and genesis, a new process: the capture replayed
    // from the same address finds no session.
    let node = start("recvmmsg", "1", &key, &genesis, &[]);
    let replayed = c.sent().len() as u64;
    c.socket().connect(node.addr()).unwrap();
    for f in c.sent() {
        c.socket().send(f).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = node.stop();
    assert_eq!(n(&s["frames"]["received"]), replayed);
    assert_eq!(n(&s["frames"]["accepted"]), 0, "{}", s["frames"]);
    assert_eq!(n(&s["frames"]["dropped"]["unknown_session"]), replayed);
    assert_eq!(n(&s["txs"]["accepted"]), 0);
}

/// `attnet pktgen --handshake`: the generator opens its sessions by real
/// handshakes (its accounts sign the HELLOs), sends on them from two
/// threads with receipts, and the node's counts equal the expected ones,
/// the handshakes' datagrams included.
#[test]
fn pktgen_opens_its_sessions_by_handshakes_and_sends_on_them() {
    let d = tmpdir("pktgen");
    let (genesis, expect, gen) = (d.join("genesis.json"), d.join("expect.json"), d.join("pktgen.json"));
    let common = ["--quiet", "--seed", "81", "--sessions", "4", "--accounts", "32", "--txs", "6000"];
    let cache = d.join("cache");
    let o = Command::new(BIN)
        .arg("pktgen")
        .args(common)
        .arg("--pool-cache")
        .arg(&cache)
        .arg("--genesis-out")
        .arg(&genesis)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let node = start("io_uring", "1", &node_key_file(&d), &genesis, &[]);
    let o = Command::new(BIN)
        .arg("pktgen")
        .args(common)
        .arg("--pool-cache")
        .arg(&cache)
        .args(["--handshake", "--relay-key", &hex::encode(node_pk())])
        .args(["--out", &format!("udp:{}", node.addr()), "--pps", "2000", "--duration", "1", "--threads", "2"])
        .args(["--bad", "0.05", "--receipts", "--receipt-wait", "3"])
        .arg("--expect")
        .arg(&expect)
        .arg("--json")
        .arg(&gen)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(200));
    let s = node.stop();
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&gen).unwrap()).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&expect).unwrap()).unwrap();
    let h = &g["handshake"];
    assert_eq!((n(&h["asked"]), n(&h["opened"])), (4, 4), "{h}");
    assert!(h["failed"].as_object().unwrap().is_empty(), "{h}");
    assert!(h["per_s"].as_f64().unwrap() > 0.0 && n(&h["hellos"]) >= 4, "{h}");
    assert_eq!(n(&s["handshake"]["welcomed"]), 4, "{}", s["handshake"]);
    assert_eq!(n(&s["frames"]["dropped"]["unknown_session"]), n(&expected["frames"]["dropped"]["unknown_session"]));
    let checks = pktgen::check::compare(&expected, &s);
    assert!(pktgen::check::all_hold(&checks), "{checks:?}\nexpected {expected}\nnode {s}");
    let accepted = n(&s["txs"]["accepted"]);
    assert!(accepted > 2500, "{}", s["txs"]);
    // Receipts come back sealed under the negotiated keys.
    let r = &g["receipts"];
    assert_eq!(n(&r["matched"]), accepted, "{r}");
    assert_eq!((n(&r["unknown"]), n(&r["bad_frames"]), n(&r["stale_counter"])), (0, 0, 0), "{r}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `attnet pktgen --handshake` with another node key than the node's: the
/// WELCOME is refused (`wrong_node_key`), the rest are not tried, and the
/// run is refused without sending.
#[test]
fn pktgen_refuses_a_welcome_of_another_node_key() {
    let d = tmpdir("pktgen-wrong-key");
    let (key, genesis) = files(&d, 1);
    let node = start("recvmmsg", "1", &key, &genesis, &[]);
    let o = Command::new(BIN)
        .args(["pktgen", "--seed", "82", "--txs", "8", "--pool-cache", "off"])
        .args(["--handshake", "--relay-key", &"11".repeat(32), "--out", &format!("udp:{}", node.addr())])
        .args(["--count", "10"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0 of 4 handshakes succeeded") && err.contains("\"wrong_node_key\": 1"), "{err}");
    let s = node.stop();
    // The node welcomed the one HELLO; nothing else arrived.
    assert_eq!(n(&s["handshake"]["welcomed"]), 1, "{}", s["handshake"]);
    assert_eq!(n(&s["frames"]["received"]), 1, "{}", s["frames"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// A node listening on every address answers from the address each client
/// sent to: a client of 127.0.0.2 (its socket connected there, so it takes
/// nothing from elsewhere) completes its handshake and queries, on both
/// socket backends.
#[test]
fn replies_leave_from_the_address_the_client_sent_to() {
    let d = tmpdir("wildcard");
    let (key, genesis) = files(&d, 1);
    for backend in ["io_uring", "recvmmsg"] {
        let node = Node::spawn(
            Command::new(BIN)
                .args(["node", "--backend", backend, "--listen", "0.0.0.0:0", "--cores", "1"])
                .args(["--block-interval", "50", "--node-key"])
                .arg(&key)
                .arg("--genesis")
                .arg(&genesis),
        );
        let port = node.addr().port();
        for local in ["127.0.0.2", "127.0.0.1"] {
            let relay: std::net::SocketAddr = format!("{local}:{port}").parse().unwrap();
            let (mut c, _) = connect(relay, account(0));
            let a = query(&mut c, QueryWhat::Account(pk(&account(0))));
            assert_eq!(a.status, 0, "{backend} via {local}");
        }
        let s = node.stop();
        assert_eq!(n(&s["handshake"]["welcomed"]), 2, "{backend}: {}", s["handshake"]);
    }
}
