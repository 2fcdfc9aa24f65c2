//! `attnet node` and `attnet demo` end to end through the built binary:
//! live backends inside a network namespace of the test's own, the pcap
//! backend against `attnet decode`, and shutdown in the middle of traffic.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod summary_common;
use summary_common::{assert_balanced, sum};

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-node-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `attnet demo` inside a fresh network namespace (no other traffic
/// touches its kernel counters): it exits non-zero unless sent ==
/// received + kernel_dropped and, without kernel drops, every malformed
/// datagram got exactly its verdict.
fn demo_in_netns(backend: &str, cores: usize) {
    let script =
        format!("ip link set lo up && exec {BIN} demo --backend {backend} --cores {cores} --duration 1.5 --rate 1500");
    let o = Command::new("unshare").args(["--net", "sh", "-c", &script]).output().expect("unshare runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo {backend}/{cores} failed:\n{err}");
    assert!(!err.contains("FAILED"), "{err}");
    assert!(
        err.contains("check ok    : txs.dropped.duplicate expected") || err.contains("exact per-reason checks skipped"),
        "{err}"
    );
    let s: Value = serde_json::from_slice(&o.stdout).expect("summary JSON on stdout");
    assert_eq!(s["backend"], backend, "no silent fallback: {err}");
    assert_eq!(s["cores"], cores);
    assert_balanced(&s);
    assert!(s["blocks"].as_u64().unwrap() >= 1);
    assert_eq!(s["ledger"]["applied"], s["txs"]["accepted"], "every accepted transaction applies: {s}");
}

#[test]
fn demo_io_uring_one_core() {
    demo_in_netns("io_uring", 1);
}

#[test]
fn demo_io_uring_two_cores() {
    demo_in_netns("io_uring", 2);
}

#[test]
fn demo_recvmmsg_one_core() {
    demo_in_netns("recvmmsg", 1);
}

#[test]
fn demo_recvmmsg_two_cores() {
    demo_in_netns("recvmmsg", 2);
}

/// io_uring refused: the node falls back to recvmmsg, says why, and the
/// demo's checks still hold.
#[test]
fn io_uring_refused_falls_back_to_recvmmsg() {
    let script = format!("ip link set lo up && exec {BIN} demo --backend io_uring --cores 1 --duration 1 --rate 1000");
    let o = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .env("ATTNET_DISABLE_IO_URING", "1")
        .output()
        .expect("unshare runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("io_uring unavailable (disabled by ATTNET_DISABLE_IO_URING); falling back to recvmmsg"),
        "{err}"
    );
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["backend"], "recvmmsg");
    assert_balanced(&s);
}

/// The golden capture: known good and bad frames written by the
/// project's own emitter, with the keys and genesis to judge them.
struct Golden {
    payloads: Vec<Vec<u8>>,
    path: std::path::PathBuf,
    keys: std::path::PathBuf,
    genesis: std::path::PathBuf,
}

fn golden(d: &std::path::Path) -> Golden {
    use dataplane::testkit;
    let (a, _) = testkit::txs(1, 3, 5, 1);
    let (b, _) = testkit::txs(2, 2, 5, 1);
    let f1 = testkit::frame(3, 1, &a[..2], false);
    let f2 = testkit::frame(3, 2, &[a[2].clone(), b[0].clone()], true);
    let f3 = testkit::frame(4, 1, &[a[0].clone(), b[1].clone()], false); // a[0] again
    let mut tampered = testkit::frame(4, 2, &b[..1], false);
    let l = tampered.len();
    tampered[l - 1] ^= 1;
    let mut two = f2.clone(); // replay of f2 plus a fresh frame in one datagram
    two.extend_from_slice(&testkit::frame(5, 9, &b[..1], true));
    let payloads: Vec<Vec<u8>> = vec![f1, f2, f3, tampered, two, b"garbage!".to_vec()];
    let path = d.join("golden.pcap");
    testkit::write_udp_pcap(&path, &payloads).unwrap();
    let (keys, genesis) = write_keys_and_genesis(d, 0..16, 1000);
    Golden { payloads, path, keys, genesis }
}

/// Keys of the vectors' sessions `sessions`, and a genesis funding test
/// signers 1 and 2 with `balance` and holding the account that
/// `testkit::txs`' messages are addressed to (key `[7; 32]`, balance 0: a
/// message to a key without an account is refused), written into `d`.
fn write_keys_and_genesis(
    d: &std::path::Path,
    sessions: impl Iterator<Item = u16>,
    balance: u64,
) -> (std::path::PathBuf, std::path::PathBuf) {
    use dataplane::testkit;
    let sessions: Vec<Value> = sessions
        .map(|s| serde_json::json!({"id": s, "c2r": hex::encode(testkit::c2r(s)), "r2c": hex::encode(testkit::r2c(s))}))
        .collect();
    let keys = d.join("keys.json");
    std::fs::write(&keys, serde_json::json!({ "sessions": sessions }).to_string()).unwrap();
    let mut accounts: Vec<Value> = [1u8, 2]
        .iter()
        .map(|i| {
            let vk: [u8; 32] = ed25519_zebra::VerificationKeyBytes::from(&testkit::signer(*i)).into();
            serde_json::json!({"key": hex::encode(vk), "balance": balance})
        })
        .collect();
    accounts.push(serde_json::json!({"key": hex::encode([7u8; 32]), "balance": 0}));
    let genesis = d.join("genesis.json");
    std::fs::write(&genesis, serde_json::json!({"network_id": 1, "accounts": accounts}).to_string()).unwrap();
    (keys, genesis)
}

/// The counts every receiver must report for the golden capture.
fn assert_golden_counts(s: &Value) {
    assert_balanced(s);
    assert_eq!(s["packets"]["received"], 6);
    assert_eq!(s["frames"]["received"], 7);
    assert_eq!(s["frames"]["accepted"], 4);
    assert_eq!(s["frames"]["dropped"]["auth_failed"], 1);
    assert_eq!(s["frames"]["dropped"]["replay"], 1);
    assert_eq!(s["frames"]["dropped"]["bad_header"], 1);
    assert_eq!(s["txs"]["seen"], 7);
    // f1: a0 a1; f2: a2 b0; f3: a0 again (duplicate), b1; the fresh frame
    // after the replayed f2 carries b0 again (duplicate).
    assert_eq!(s["txs"]["accepted"], 5);
    assert_eq!(s["txs"]["dropped"]["duplicate"], 2);
    assert_eq!(s["ledger"]["applied"], 5, "{s}");
    assert_ledger_balanced(s);
    assert!(s["blocks"].as_u64().unwrap() >= 1);
}

/// After a clean stop every transaction the ledger took is applied or
/// dropped for a listed reason, the new ones included.
fn assert_ledger_balanced(s: &Value) {
    let l = &s["ledger"];
    for r in ["bad_nonce", "insufficient_funds", "nonce_gap", "malformed", "fee_too_low", "no_account"] {
        assert!(l["dropped"][r].is_u64(), "{r} missing: {s}");
    }
    assert_eq!(l["submitted"].as_u64().unwrap(), l["applied"].as_u64().unwrap() + sum(&l["dropped"]), "{s}");
}

/// The golden capture against genesis files whose rules refuse its
/// transactions: a minimum fee above theirs (`fee_too_low`), and no
/// account for the key their messages are addressed to (`no_account`).
#[test]
fn pcap_ledger_refusals_reach_the_summary() {
    let d = tmpdir("refusals");
    let Golden { path, keys, genesis, .. } = golden(&d);
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&genesis).unwrap()).unwrap();
    let mut fee2 = g.clone();
    fee2["version"] = 1.into();
    fee2["min_fee"] = 2.into();
    let mut no_recipient = g.clone();
    no_recipient["accounts"].as_array_mut().unwrap().retain(|a| a["key"] != hex::encode([7u8; 32]));
    assert_eq!(no_recipient["accounts"].as_array().unwrap().len(), 2);
    // With min_fee 2 all five are refused before any lookup. Without the
    // recipient, each signer's nonce 1 is refused and the later nonces
    // wait behind it until shutdown drops them as nonce_gap.
    let cases = [
        ("fee2", fee2, &[("fee_too_low", 5)][..]),
        ("no_recipient", no_recipient, &[("no_account", 2), ("nonce_gap", 3)]),
    ];
    let replay_with = |genesis: &std::path::Path| {
        Command::new(BIN)
            .args(["node", "--backend", "pcap", "--pcap"])
            .arg(&path)
            .arg("--keys")
            .arg(&keys)
            .arg("--genesis")
            .arg(genesis)
            .output()
            .unwrap()
    };
    for (name, file, want) in cases {
        let p = d.join(format!("{name}.json"));
        std::fs::write(&p, file.to_string()).unwrap();
        let o = replay_with(&p);
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let s: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(s["txs"]["accepted"], 5, "{s}");
        assert_eq!(s["ledger"]["applied"], 0, "{name}: {s}");
        for (reason, n) in want {
            assert_eq!(s["ledger"]["dropped"][reason], *n, "{name}: {s}");
        }
        assert_ledger_balanced(&s);
    }
    // A genesis of a format this build does not know stops the node, naming it.
    let p = d.join("v9.json");
    let mut v9 = g;
    v9["version"] = 9.into();
    std::fs::write(&p, v9.to_string()).unwrap();
    let o = replay_with(&p);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("version 9 is not known"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Golden: a capture written by the project's own emitter, known good and
/// bad frames → `attnet node --backend pcap` reports exactly the expected
/// counts and accepts the same transaction ids as `attnet decode`.
#[test]
fn pcap_backend_matches_decode() {
    let d = tmpdir("golden");
    let Golden { payloads, path, keys, genesis } = golden(&d);
    let ids_file = d.join("ids.txt");
    let o = Command::new(BIN)
        .args(["node", "--backend", "pcap", "--pcap"])
        .arg(&path)
        .arg("--keys")
        .arg(&keys)
        .arg("--genesis")
        .arg(&genesis)
        .arg("--accepted-ids")
        .arg(&ids_file)
        .args(["--receipts", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("receipts = true ignored: the pcap backend reads no source addresses"), "{err}");
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["backend"], "pcap");
    assert_golden_counts(&s);
    // A replay has no clients to answer: receipts are off, every count zero.
    assert_eq!(sum(&s["receipts"]), 0, "{s}");
    // The same datagrams through `attnet decode`: the same ids, as a set.
    let mut c = Command::new(BIN)
        .args(["decode", "--keys"])
        .arg(&keys)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = c.stdin.take().unwrap();
        for p in &payloads {
            writeln!(i, "{}", hex::encode(p)).unwrap();
        }
    }
    let out = c.wait_with_output().unwrap();
    let decoded: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["tx_ids"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect::<Vec<_>>()
        })
        .collect();
    let node_ids: BTreeSet<String> = std::fs::read_to_string(&ids_file).unwrap().lines().map(String::from).collect();
    assert_eq!(node_ids, decoded);
    assert_eq!(node_ids.len(), 5);
}

/// SIGTERM in the middle of traffic: the node stops receiving, drains its
/// rings, seals the last block, prints a balanced summary and exits 0.
#[test]
fn sigterm_mid_traffic_drains_and_reports() {
    let d = tmpdir("sigterm");
    let plan = pktgen::Plan::random(1, 2, 16, 1_000_000);
    let pool = plan.pool(200);
    std::fs::write(d.join("keys.json"), plan.keys_json()).unwrap();
    std::fs::write(d.join("genesis.json"), plan.genesis().unwrap().to_json()).unwrap();
    let mut node = Command::new(BIN)
        .args(["node", "--backend", "recvmmsg", "--listen", "127.0.0.1:0", "--cores", "1", "--block-interval", "50"])
        .arg("--keys")
        .arg(d.join("keys.json"))
        .arg("--genesis")
        .arg(d.join("genesis.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(node.stderr.take().unwrap());
    let mut line = String::new();
    let addr: std::net::SocketAddr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "node exited early");
        if let Some(a) = line.trim().rsplit("listening on ").next().filter(|_| line.contains("listening on")) {
            break a.parse().unwrap();
        }
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let sender = std::thread::spawn(move || {
        let cfg = pktgen::RunConfig {
            out: pktgen::Out::Udp(addr),
            rate: pktgen::Rate::Pps(1000.0),
            duration: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        pktgen::run(&plan, &pool, &cfg, &stop2).unwrap().sent
    });
    std::thread::sleep(Duration::from_millis(1200));
    let pid = node.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = node.wait_with_output().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_balanced(&s);
    let received = s["packets"]["received"].as_u64().unwrap();
    assert!(received > 100 && received <= sent.datagrams, "{received} of {}", sent.datagrams);
    assert!(s["blocks"].as_u64().unwrap() >= 1);
    // Nothing accepted is lost between the rings and the ledger.
    assert_eq!(s["ledger"]["submitted"], s["txs"]["accepted"], "{s}");
    // Receipts (on by default) add up: every sealed id was receipted or not
    // routable, every frame sent or refused.
    let r = &s["receipts"];
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(n(&r["ids"]) + n(&r["no_address"]), n(&s["ledger"]["applied"]), "{s}");
    assert_eq!(n(&r["frames"]), n(&r["datagrams"]) + n(&r["send_errors"]), "{s}");
    assert!(n(&r["datagrams"]) > 0, "{s}");
}

#[test]
fn shipped_example_config_is_valid() {
    // A pcap run so the example's listen address is never bound.
    let d = tmpdir("example");
    let empty = d.join("empty.pcap");
    {
        use pcap_file::pcap::{PcapHeader, PcapWriter};
        drop(PcapWriter::with_header(std::fs::File::create(&empty).unwrap(), PcapHeader::default()).unwrap());
    }
    let o = Command::new(BIN)
        .args(["node", "--config", concat!(env!("CARGO_MANIFEST_DIR"), "/../attnet.example.toml"), "--backend", "pcap"])
        .arg("--pcap")
        .arg(&empty)
        // The example persists to /var/lib/attnet; the test, to its own
        // directory.
        .arg("--data-dir")
        .arg(d.join("data"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["packets"]["received"], 0);
    assert_eq!(s["blocks"], 0, "no empty blocks by default");
    assert_eq!(s["persistent"], true, "the example sets data_dir");
}

#[test]
fn config_errors_name_the_key() {
    let d = tmpdir("config");
    let cfg = d.join("bad.toml");
    for (text, needle) in [
        ("cores = 0\n", "`cores`"),
        ("listen = \"nowhere\"\n", "`listen`"),
        ("backend = \"pcap\"\n", "`pcap`"),
        ("colour = \"red\"\n", "colour"),
        ("block_interval_ms = 0\n", "`block_interval_ms`"),
        ("receipts = \"yes\"\n", "receipts"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let o = Command::new(BIN).args(["node", "--config"]).arg(&cfg).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{text}: {err}");
    }
}

/// Runs `attnet node --backend dpdk` with `eal` and `args`; `None` (and a
/// printed reason) only when this build has no DPDK and
/// `ATTNET_REQUIRE_DPDK` is unset.
fn dpdk_node(eal: &str, args: &[&str]) -> Option<Value> {
    let o = Command::new(BIN)
        .args(["node", "--backend", "dpdk", "--pin", "false"])
        .args(args)
        .arg(format!("--dpdk-eal={eal}"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("DPDK is not available in this build") && !ffi::dpdk_required() {
        eprintln!("skipped: this build has no DPDK ({err}); ATTNET_REQUIRE_DPDK=1 makes that a failure");
        return None;
    }
    assert!(o.status.success(), "{err}");
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["backend"], "dpdk");
    Some(s)
}

/// The golden capture through DPDK (`net_pcap` virtual device, no
/// hugepages): the same counts as the pcap backend, and the NIC's packet
/// count equals the node's.
#[test]
fn dpdk_net_pcap_gives_the_golden_counts() {
    let d = tmpdir("dpdk-golden");
    let g = golden(&d);
    let eal = format!(
        "--no-huge -m 512 --no-pci --no-shconf --iova-mode=va --file-prefix=attnet-test-{} --log-level=*:error --vdev=net_pcap0,rx_pcap={}",
        std::process::id(),
        g.path.display()
    );
    let (k, g2) = (g.keys.to_str().unwrap(), g.genesis.to_str().unwrap());
    let Some(s) = dpdk_node(&eal, &["--dpdk-port", "net_pcap0", "--duration", "2", "--keys", k, "--genesis", g2])
    else {
        return;
    };
    assert_golden_counts(&s);
    assert_eq!(s["packets"]["nic"]["ipackets"], s["packets"]["received"], "{s}");
}

/// Two data cores on two receive queues of one DPDK port (`net_null`):
/// every packet the NIC counted is received and classified exactly once.
#[test]
fn dpdk_two_queues_count_every_packet_once() {
    let eal = format!(
        "--no-huge -m 512 --no-pci --no-shconf --iova-mode=va --file-prefix=attnet-test2-{} --log-level=*:error --vdev=net_null0",
        std::process::id()
    );
    let args = ["--dpdk-port", "net_null0", "--cores", "2", "--duration", "1", "--busy-poll", "false"];
    let Some(s) = dpdk_node(&eal, &args) else { return };
    assert_eq!(s["cores"], 2);
    // The topology the node ran: two data cores and the control tile, a
    // shard ring from each core per shard and a command ring to each core.
    let t = &s["topology"];
    assert_eq!(t["backend"], "dpdk", "{t}");
    let tiles = t["tiles"].as_array().unwrap();
    assert_eq!(tiles.len(), 3, "{t}");
    assert_eq!((tiles[0]["name"].as_str(), tiles[2]["kind"].as_str()), (Some("attnet-rx0"), Some("control")));
    let links = t["links"].as_array().unwrap();
    let commands = links.iter().filter(|l| l["kind"] == "command").count();
    assert_eq!(commands, 2, "{t}");
    assert!(links.len() > commands, "{t}");
    let received = s["packets"]["received"].as_u64().unwrap();
    assert!(received > 10_000, "{s}");
    assert_eq!(s["packets"]["nic"]["ipackets"].as_u64().unwrap(), received, "{s}");
    assert_eq!(s["packets"]["not_att"]["not_ip"].as_u64().unwrap(), received, "net_null sends zeroed frames: {s}");
    assert_balanced(&s);
}

/// ARP requests for the node's configured IPv4 address are answered on the
/// same port (so a real switch can deliver traffic); others are not, and
/// every ARP packet is still counted as `not_ip`.
#[test]
fn dpdk_answers_arp_for_its_address() {
    use etherparse::ArpOperation;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
    let d = tmpdir("dpdk-arp");
    let req = |target: [u8; 4]| dataplane::testkit::arp_packet(ArpOperation::REQUEST, target);
    let rx = d.join("rx.pcap");
    let tx = d.join("tx.pcap");
    {
        let mut w = PcapWriter::with_header(std::fs::File::create(&rx).unwrap(), PcapHeader::default()).unwrap();
        for p in [req([192, 0, 2, 10]), req([192, 0, 2, 77]), req([192, 0, 2, 10])] {
            w.write_packet(&PcapPacket::new(Duration::ZERO, p.len() as u32, &p)).unwrap();
        }
    }
    let eal = format!(
        "--no-huge -m 512 --no-pci --no-shconf --iova-mode=va --file-prefix=attnet-test3-{} --log-level=*:error --vdev=net_pcap0,rx_pcap={},tx_pcap={}",
        std::process::id(),
        rx.display(),
        tx.display()
    );
    let Some(s) = dpdk_node(
        &eal,
        &["--dpdk-port", "net_pcap0", "--dpdk-ipv4", "192.0.2.10", "--duration", "1", "--busy-poll", "false"],
    ) else {
        return;
    };
    assert_eq!(s["packets"]["received"], 3);
    assert_eq!(s["packets"]["not_att"]["not_ip"], 3);
    assert_eq!(s["packets"]["arp_replies"], 2, "{s}");
    let mut r = PcapReader::new(std::fs::File::open(&tx).unwrap()).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        let sl = etherparse::SlicedPacket::from_ethernet(&p.data).unwrap();
        let Some(etherparse::NetSlice::Arp(a)) = sl.net else { panic!("not ARP") };
        let a = a.to_packet().try_eth_ipv4().unwrap();
        assert_eq!(a.operation, ArpOperation::REPLY);
        assert_eq!((a.sender_ipv4, a.target_ipv4, a.target_mac), ([192, 0, 2, 10], [192, 0, 2, 9], [2, 0, 0, 0, 0, 9]));
        n += 1;
    }
    assert_eq!(n, 2);
}

/// Two processes over `net_memif`: this test is the DPDK sender (memif
/// server, in process), `attnet node` the receiver (memif client). Every
/// frame sent arrives (`nic.ipackets` == sent) and gets the golden verdicts.
#[test]
fn dpdk_memif_two_processes() {
    use ffi::{Eal, MbufBurst, Mempool, Port, PortConfig};
    if ffi::skip_without_dpdk("the memif test") {
        return;
    }
    let d = tmpdir("memif");
    let g = golden(&d);
    let sock = d.join("memif.sock");
    let pid = std::process::id();
    let prefix = format!("--file-prefix=attnet-memif-s-{pid}");
    let vdev = format!("--vdev=net_memif0,role=server,socket={},socket-abstract=no", sock.display());
    let args =
        ["attnet-test", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--iova-mode=va", "--log-level=*:error"];
    let mut args: Vec<&str> = args.to_vec();
    args.push(&prefix);
    args.push(&vdev);
    let eal = Eal::init(&args).expect("EAL for the sender");
    let pool = Mempool::new("memif_tx", 1023, 0, ffi::DEFAULT_DATA_ROOM, None).unwrap();
    let cfg = PortConfig { rx_queues: 1, tx_queues: 1, rss: false, ..PortConfig::default() };
    let port = Port::open(&eal, "net_memif0", &cfg, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let node = Command::new(BIN)
        .args(["node", "--backend", "dpdk", "--dpdk-port", "net_memif0", "--duration", "4", "--pin", "false"])
        .args(["--busy-poll", "false", "--keys", g.keys.to_str().unwrap(), "--genesis", g.genesis.to_str().unwrap()])
        .arg(format!(
            "--dpdk-eal=--no-huge -m 512 --no-pci --no-shconf --iova-mode=va --log-level=*:error \
             --file-prefix=attnet-memif-c-{pid} --vdev=net_memif0,role=client,socket={},socket-abstract=no",
            sock.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let frames: Vec<Vec<u8>> = g.payloads.iter().map(|p| dataplane::testkit::udp4_packet(7100, p)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut sent = 0u64;
    for f in &frames {
        loop {
            let mut m = pool.alloc().expect("mbuf");
            m.append(f.len()).expect("room").copy_from_slice(f);
            let mut b = MbufBurst::new();
            b.push(m).unwrap();
            // Until the node's client connects the link is down and nothing
            // leaves; the unsent mbuf stays in the burst and is freed.
            if txq.try_send(&mut b) == 1 {
                sent += 1;
                break;
            }
            b.clear();
            assert!(std::time::Instant::now() < deadline, "the node never connected to the memif socket");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let out = node.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sent, 6);
    assert_eq!(s["packets"]["nic"]["ipackets"].as_u64().unwrap(), sent, "{s}");
    assert_golden_counts(&s);
    drop(txq);
    drop(port);
}

/// Runs the ignored test `name` of this binary again, alone, inside a new
/// network namespace with `lo` up (`unshare --net`, as the demo tests do),
/// so that the node and the test's client sockets share a loopback that no
/// other traffic touches.
fn run_in_netns(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let o = Command::new("unshare")
        .args(["--net", "sh", "-c", "ip link set lo up && exec \"$0\" --exact \"$1\" --include-ignored --nocapture"])
        .arg(&exe)
        .arg(name)
        .output()
        .expect("unshare runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{name} in a network namespace failed:\n{out}\n{err}");
    assert!(out.contains("1 passed"), "{name} did not run:\n{out}\n{err}");
    print!("{out}");
}

/// A node process killed when dropped, so that a failed assertion does
/// not leave it running.
struct NodeGuard(Option<std::process::Child>);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A client of the receipt tests: its session, socket, and the channel
/// each of its transaction ids was sent on.
struct Client {
    session: u16,
    sock: std::net::UdpSocket,
    sent: std::collections::BTreeMap<[u8; 32], u16>,
}

/// What one client got back.
#[derive(Default)]
struct Got {
    ids: BTreeSet<[u8; 32]>,
    datagrams: u64,
    counters: Vec<u64>,
    heights: BTreeSet<u64>,
}

/// Receives, opens and checks RECEIPTs on `c` until `until` ids arrived or
/// `deadline` passes: each is one frame in one datagram, opens with the
/// session's relay-to-client key, is a 0x68 indication with content kind
/// 0x43 for the client's session, on the channel its ids were sent on; no
/// id arrives twice; counters strictly increase.
fn collect_receipts(c: &Client, got: &mut Got, until: usize, deadline: std::time::Instant) {
    use dataplane::wire::receipt::Receipt;
    let mut buf = [0u8; 2048];
    while got.ids.len() < until {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        c.sock.set_read_timeout(Some(left.min(Duration::from_millis(100)))).unwrap();
        let n = match c.sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("session {}: recv: {e}", c.session),
        };
        got.datagrams += 1;
        assert!(n < 1472, "a receipt datagram of {n} bytes");
        let o = dataplane::testkit::open_frame(&buf[..n], &dataplane::testkit::r2c(c.session))
            .unwrap_or_else(|| panic!("session {}: a datagram that does not open as one sealed frame", c.session));
        assert_eq!(o.kind, 0x68, "an indication");
        assert_eq!(o.content_kind, 0x43, "RECEIPT");
        assert_eq!(o.session, c.session, "initiator is the client's session");
        if let Some(&last) = got.counters.last() {
            assert!(o.counter > last, "session {}: counter {} after {last}", c.session, o.counter);
        }
        got.counters.push(o.counter);
        let r = Receipt::new_checked(&o.body).expect("a RECEIPT body");
        assert!(r.height() >= 1);
        got.heights.insert(r.height());
        assert!(r.count() >= 1 && r.count() <= 40, "{} ids in one frame", r.count());
        for id in r.ids() {
            let ch =
                c.sent.get(&id).unwrap_or_else(|| panic!("session {}: receipt for an id it never sent", c.session));
            assert_eq!(*ch, o.channel, "receipt on the channel the transaction came in");
            assert!(got.ids.insert(id), "session {}: id receipted twice", c.session);
        }
    }
}

/// Two clients (sessions 1 and 2, own UDP sockets connected to the node)
/// send valid frames (client 1 on channels 1004 and 1005, client 2 on
/// 1005), plus a duplicate, a tampered frame and a forged signature; then
/// `attnet node --backend BACKEND --receipts RECEIPTS` is stopped with
/// SIGTERM. With receipts, each client gets back exactly its accepted ids
/// and nothing of the other's; without, nothing at all.
fn receipt_scenario(backend: &str, receipts: bool) {
    use dataplane::testkit;
    let d = tmpdir(&format!("receipts-{backend}-{receipts}"));
    let (keys, genesis) = write_keys_and_genesis(&d, [1u16, 2].into_iter(), 1_000_000);
    let ids_file = d.join("ids.txt");
    let summary_file = d.join("summary.json");
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut node = NodeGuard(Some(
        Command::new(BIN)
            .args(["node", "--backend", backend, "--listen", "127.0.0.1:0", "--cores", "1", "--block-interval", "50"])
            .args(["--receipts", if receipts { "true" } else { "false" }])
            .arg("--keys")
            .arg(&keys)
            .arg("--genesis")
            .arg(&genesis)
            .arg("--accepted-ids")
            .arg(&ids_file)
            .arg("--summary-json")
            .arg(&summary_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let mut err = BufReader::new(node.0.as_mut().unwrap().stderr.take().unwrap());
    let mut line = String::new();
    let addr: std::net::SocketAddr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "node exited early");
        if let Some(a) = line.trim().rsplit("listening on ").next().filter(|_| line.contains("listening on")) {
            break a.parse().unwrap();
        }
    };
    if backend == "io_uring" {
        let mode = if receipts { "recvmsg with source addresses" } else { "plain recv" };
        assert!(line.contains(mode), "{line}");
    }
    let mut clients: Vec<Client> = [1u16, 2]
        .iter()
        .map(|&session| {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            // Connected: the socket takes datagrams from the node's listening address only.
            sock.connect(addr).unwrap();
            Client { session, sock, sent: Default::default() }
        })
        .collect();
    const FRAMES: usize = 30;
    const PER_FRAME: usize = 3;
    let pool: Vec<_> = clients.iter().map(|c| testkit::txs(c.session as u8, FRAMES * PER_FRAME + 4, 8, 1)).collect();
    // Two halves; the second is sent only once the first half's receipts
    // are back (without receipts: after several block intervals), so that
    // receipts come from more than one block however loaded the machine is.
    let mut got: Vec<Got> = clients.iter().map(|_| Got::default()).collect();
    for half in [0..FRAMES / 2, FRAMES / 2..FRAMES] {
        for (c, (txs, ids)) in clients.iter_mut().zip(&pool) {
            for f in half.clone() {
                let channel = if c.session == 1 && f % 2 == 0 { 1004 } else { 1005 };
                let r = f * PER_FRAME..(f + 1) * PER_FRAME;
                let counter = f as u64 + 1;
                c.sock.send(&testkit::frame_on(channel, c.session, counter, &txs[r.clone()], f % 3 == 0)).unwrap();
                for id in &ids[r] {
                    c.sent.insert(*id, channel);
                }
            }
        }
        if half.start == 0 && receipts {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            for (c, g) in clients.iter().zip(got.iter_mut()) {
                collect_receipts(c, g, half.len() * PER_FRAME, deadline);
            }
        } else if half.start == 0 {
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    for (c, (txs, ids)) in clients.iter_mut().zip(&pool) {
        let counter = FRAMES as u64 + 1;
        // Not accepted: a tampered frame, a forged signature. A duplicate of
        // the first transaction: accepted once, receipted once.
        let n = FRAMES * PER_FRAME;
        let mut tampered = testkit::frame_on(1005, c.session, counter, &txs[n..n + 2], false);
        let last = tampered.len() - 1;
        tampered[last] ^= 0x55;
        let mut forged = txs[n + 2].clone();
        let at = forged.len() - 10;
        forged[at] ^= 1;
        let extra = [
            tampered,
            testkit::frame_on(1005, c.session, counter + 1, &[forged], false),
            testkit::frame_on(1005, c.session, counter + 2, &txs[..1], false),
        ];
        for f in extra {
            c.sock.send(&f).unwrap();
        }
        for id in &ids[n..n + 3] {
            c.sent.insert(*id, 1005);
        }
    }
    let valid = FRAMES * PER_FRAME;
    let deadline = std::time::Instant::now() + Duration::from_secs(if receipts { 10 } else { 1 });
    for (c, g) in clients.iter().zip(got.iter_mut()) {
        collect_receipts(c, g, if receipts { valid } else { 1 }, deadline);
    }
    let pid = node.0.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = node.0.take().unwrap().wait_with_output().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert!(out.status.success(), "exit {:?}: {rest}", out.status);
    // Whatever the last block sent.
    for (c, g) in clients.iter().zip(got.iter_mut()) {
        collect_receipts(c, g, usize::MAX, std::time::Instant::now() + Duration::from_millis(200));
    }
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["backend"], backend, "no silent fallback: {rest}");
    assert_balanced(&s);
    let accepted: BTreeSet<[u8; 32]> = std::fs::read_to_string(&ids_file)
        .unwrap()
        .lines()
        .map(|l| {
            let mut id = [0u8; 32];
            hex::decode_to_slice(l, &mut id).unwrap();
            id
        })
        .collect();
    assert_eq!(accepted.len(), 2 * valid, "every valid transaction accepted once: {s}");
    assert_eq!(s["ledger"]["applied"].as_u64().unwrap(), 2 * valid as u64, "{s}");
    assert_eq!(s["frames"]["dropped"]["auth_failed"], 2, "{s}");
    assert_eq!(s["txs"]["dropped"]["bad_signature"], 2, "{s}");
    assert_eq!(s["txs"]["dropped"]["duplicate"], 2, "{s}");
    let r = &s["receipts"];
    println!("{backend}, receipts {receipts}: summary receipts {r}, blocks {}", s["blocks"]);
    if !receipts {
        for (c, g) in clients.iter().zip(&got) {
            assert_eq!(g.datagrams, 0, "session {}: a datagram came back with --receipts false", c.session);
        }
        for k in ["frames", "ids", "datagrams", "no_address", "send_errors"] {
            assert_eq!(r[k], 0, "{k}: {s}");
        }
        return;
    }
    let mut datagrams = 0;
    for (c, g) in clients.iter().zip(&got) {
        let want: BTreeSet<[u8; 32]> = c.sent.keys().filter(|id| accepted.contains(*id)).copied().collect();
        assert_eq!(want.len(), valid);
        assert_eq!(g.ids, want, "session {}: receipted ids != its accepted ids", c.session);
        // Configured keys: counters start at unix_seconds << 32 of the
        // node's start, plus at most 2^28 for the sub-second part.
        let first = g.counters[0];
        assert!(first >> 32 >= t0 && first >> 32 <= t0 + 60, "first counter {first:#x}");
        assert!(first & 0xffff_ffff < (1 << 28) + 1000, "first counter {first:#x}");
        assert!(g.heights.len() >= 2, "session {}: receipts from blocks {:?} only", c.session, g.heights);
        assert!(g.heights.iter().all(|h| *h <= s["height"].as_u64().unwrap()));
        datagrams += g.datagrams;
    }
    assert_eq!(r["datagrams"].as_u64().unwrap(), datagrams, "{s}");
    assert_eq!(r["frames"], r["datagrams"], "{s}");
    assert_eq!(r["ids"].as_u64().unwrap(), 2 * valid as u64, "{s}");
    assert_eq!(r["no_address"], 0, "{s}");
    assert_eq!(r["send_errors"], 0, "{s}");
}

#[test]
fn receipts_io_uring() {
    run_in_netns("receipts_io_uring_in_netns");
}

#[test]
#[ignore = "run inside a private network namespace by receipts_io_uring"]
fn receipts_io_uring_in_netns() {
    receipt_scenario("io_uring", true);
}

#[test]
fn receipts_recvmmsg() {
    run_in_netns("receipts_recvmmsg_in_netns");
}

#[test]
#[ignore = "run inside a private network namespace by receipts_recvmmsg"]
fn receipts_recvmmsg_in_netns() {
    receipt_scenario("recvmmsg", true);
}

#[test]
fn receipts_off_sends_nothing() {
    run_in_netns("receipts_off_in_netns");
}

#[test]
#[ignore = "run inside a private network namespace by receipts_off_sends_nothing"]
fn receipts_off_in_netns() {
    receipt_scenario("io_uring", false);
}
