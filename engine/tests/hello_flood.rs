//! A HELLO flood on loopback: a node with a node key (io_uring, one data
//! core) takes forged HELLOs from the traffic generator at 9 000 a second
//! (`--attack hello`, nine datagrams in ten, for 2.5 s, beside valid
//! traffic on the sessions of a keys file, `--keys`) while three clients
//! open sessions with real handshakes and each sends a transfer. The
//! clients connect (through the cookie round trip once the flood puts the
//! node under load), their transfers are receipted, and the node's
//! counters add up: frames received == accepted + Σ drops, handshake
//! received == welcomed + cookies_sent + Σ refusals, and, with the
//! clients' own datagrams added to the generator's expected counts, every
//! count equals the node's.

mod session_common;

use std::process::Command;
use std::time::{Duration, Instant};

use dataplane::emit::TxFields;
use dataplane::wire::tx::Kind;
use serde_json::Value;
use session_common::*;

const SEED: u64 = 61;
const ACCOUNTS: usize = 16;
const CLIENTS: u32 = 3;
/// Datagrams a second and the share of them that are forged HELLOs.
const PPS: f64 = 10_000.0;
const SHARE: f64 = 0.9;

/// What one legitimate client did.
struct Client {
    hellos: u64,
    cookies: u64,
    late: u64,
    receipted: bool,
}

/// Adds `by` to the number at `path` of `v`.
fn bump(v: &mut Value, path: &[&str], by: u64) {
    let x = path.iter().fold(&mut *v, |v, k| &mut v[*k]);
    *x = (x.as_u64().unwrap_or(0) + by).into();
}

#[test]
fn legitimate_clients_connect_through_a_hello_flood_and_the_counters_add_up() {
    let d = tmpdir("hello-flood");
    let (keys, expect, gen, pktgen_genesis) =
        (d.join("keys.json"), d.join("expect.json"), d.join("pktgen.json"), d.join("pktgen-genesis.json"));
    let cache = d.join("cache");
    let common = ["--seed", &SEED.to_string(), "--accounts", &ACCOUNTS.to_string(), "--pool-cache"].map(String::from);
    // The generator's sessions and accounts; the clients' accounts beside them.
    let o = Command::new(BIN)
        .arg("pktgen")
        .args(&common)
        .arg(&cache)
        .args(["--quiet", "--sessions", "2", "--txs", "16", "--keys-out"])
        .arg(&keys)
        .arg("--genesis-out")
        .arg(&pktgen_genesis)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&pktgen_genesis).unwrap()).unwrap();
    let mut funded: Vec<[u8; 32]> = g["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| hex::decode(a["key"].as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    funded.extend((0..CLIENTS).map(|i| pk(&account(i))));
    let genesis = genesis_file(&d, &funded);
    let node_key = node_key_file(&d);
    let node = start("io_uring", "1", &node_key, &genesis, &["--keys", keys.to_str().unwrap()]);
    let addr = node.addr();
    let flood = std::thread::spawn({
        let (keys, expect, gen, cache) = (keys.clone(), expect.clone(), gen.clone(), cache.clone());
        move || {
            Command::new(BIN)
                .arg("pktgen")
                .args(&common)
                .arg(&cache)
                .arg("--keys")
                .arg(&keys)
                .args(["--quiet", "--out", &format!("udp:{addr}"), "--pps", &PPS.to_string(), "--duration", "2.5"])
                .args(["--attack", "hello", "--attack-share", &SHARE.to_string(), "--node-handshakes", "--txs", "8000"])
                .arg("--expect")
                .arg(&expect)
                .arg("--json")
                .arg(&gen)
                .output()
                .unwrap()
        }
    });
    // The clients start once the flood is under way.
    std::thread::sleep(Duration::from_millis(600));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let (mut c, _) = connect(addr, account(i));
                let to = pk(&account((i + 1) % CLIENTS));
                let id =
                    c.submit(&TxFields { kind: Kind::Transfer, to, nonce: 1, amount: 10, fee: 1, memo: &[] }).unwrap();
                let receipted = c.wait_receipt(&id, Instant::now() + Duration::from_secs(10)).unwrap().is_some();
                let s = c.stats;
                Client {
                    hellos: u64::from(s.hellos),
                    cookies: u64::from(s.cookies),
                    late: u64::from(s.late_welcomes),
                    receipted,
                }
            })
        })
        .collect();
    let clients: Vec<Client> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let o = flood.join().unwrap();
    assert!(o.status.success(), "pktgen: {}", String::from_utf8_lossy(&o.stderr));
    // Every datagram has been read before the node stops.
    std::thread::sleep(Duration::from_millis(300));
    let s = node.stop();
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&gen).unwrap()).unwrap();
    let mut expected: Value = serde_json::from_str(&std::fs::read_to_string(&expect).unwrap()).unwrap();

    eprintln!("generator {} {}\nnode handshake {}", g["attack"], g["rate"], s["handshake"]);
    // The flood: at most 10 000 datagrams a second, nine in ten HELLOs.
    let forged = n(&g["attack"]["sent"]["hello"]);
    let secs = g["duration_s"].as_f64().unwrap();
    assert!(forged as f64 / secs <= PPS, "{forged} HELLOs in {secs} s");
    assert!(forged >= 12_000, "{}", g["attack"]);
    assert_eq!(g["attack"]["counted_as"]["hello"], "handshake.received");
    // Every client connected and its transfer was accepted and receipted.
    assert!(clients.iter().all(|c| c.receipted), "a client's transfer was not receipted");
    // The flood put the node under load: past the first 1000 HELLOs of
    // each second, every HELLO without a cookie drew a COOKIE. (A client
    // whose HELLO came within a second's first 1000 was welcomed at once;
    // a client accepts either answer.)
    assert!(n(&s["handshake"]["cookies_sent"]) > forged / 2, "{}", s["handshake"]);
    assert!(n(&s["handshake"]["refused"]["bad_signature"]) > 0, "{}", s["handshake"]);
    assert_eq!(n(&s["handshake"]["welcomed"]), u64::from(CLIENTS) + clients.iter().map(|c| c.late).sum::<u64>());
    // The node's own identities.
    handshake_adds_up(&s);
    let dropped: u64 = s["frames"]["dropped"].as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&s["frames"]["received"]), n(&s["frames"]["accepted"]) + dropped, "{}", s["frames"]);
    // Every count: the generator's expected counts plus the clients' own
    // datagrams (HELLOs, COOKIE_ECHOs of two frames, one transfer each).
    // Should the kernel drop datagrams (a loaded machine), only what drops
    // cannot change is compared: received + kernel-dropped = sent, and the
    // identities.
    let kernel_dropped = n(&s["packets"]["kernel_dropped"]);
    for c in &clients {
        bump(&mut expected, &["packets", "received"], c.hellos + c.cookies + 1);
        for k in ["received", "accepted"] {
            bump(&mut expected, &["frames", k], c.hellos + 2 * c.cookies + 1);
        }
        bump(&mut expected, &["txs", "seen"], 1);
        bump(&mut expected, &["txs", "accepted"], 1);
        bump(&mut expected, &["ledger", "applied"], 1);
        bump(&mut expected, &["handshake", "received"], c.hellos + c.cookies);
        bump(&mut expected, &["handshake", "welcomed"], 1 + c.late);
    }
    let checks = pktgen::check::compare(&expected, &s);
    let failed: Vec<_> = checks.iter().filter(|c| !c.1).map(|c| &c.0).collect();
    assert!(failed.is_empty(), "{failed:?}\nexpected {expected}\nnode {s}");
    if kernel_dropped == 0 {
        assert!(checks.len() > 10 && checks.iter().any(|c| c.0.starts_with("handshake.received")), "{checks:?}");
    } else {
        eprintln!("the kernel dropped {kernel_dropped} datagrams: counts compared by identities only");
    }
    // The valid traffic beside the flood was all accepted.
    assert!(n(&s["txs"]["accepted"]) > 2000, "{}", s["txs"]);
    let _ = std::fs::remove_dir_all(&d);
}
