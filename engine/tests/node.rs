//! `attnet node` and `attnet demo` end to end through the built binary:
//! live backends inside a network namespace of the test's own, the pcap
//! backend against `attnet decode`, and shutdown in the middle of traffic.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-node-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sum(v: &Value) -> u64 {
    v.as_object().unwrap().values().map(|x| x.as_u64().unwrap()).sum()
}

fn assert_balanced(s: &Value) {
    let f = &s["frames"];
    assert_eq!(f["received"].as_u64().unwrap(), f["accepted"].as_u64().unwrap() + sum(&f["dropped"]), "{s}");
    let t = &s["txs"];
    assert_eq!(t["seen"].as_u64().unwrap(), t["accepted"].as_u64().unwrap() + sum(&t["dropped"]), "{s}");
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
    let sessions: Vec<Value> = (0..16u16)
        .map(|s| serde_json::json!({"id": s, "c2r": hex::encode(testkit::c2r(s)), "r2c": hex::encode(testkit::r2c(s))}))
        .collect();
    let keys = d.join("keys.json");
    std::fs::write(&keys, serde_json::json!({ "sessions": sessions }).to_string()).unwrap();
    let accounts: Vec<Value> = [1u8, 2]
        .iter()
        .map(|i| {
            let vk: [u8; 32] = ed25519_zebra::VerificationKeyBytes::from(&testkit::signer(*i)).into();
            serde_json::json!({"key": hex::encode(vk), "balance": 1000})
        })
        .collect();
    let genesis = d.join("genesis.json");
    std::fs::write(&genesis, serde_json::json!({"network_id": 1, "accounts": accounts}).to_string()).unwrap();
    Golden { payloads, path, keys, genesis }
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
    assert!(s["blocks"].as_u64().unwrap() >= 1);
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
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["backend"], "pcap");
    assert_golden_counts(&s);
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
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["packets"]["received"], 0);
    assert_eq!(s["blocks"], 0, "no empty blocks by default");
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
    if !o.status.success()
        && err.contains("DPDK is not available in this build")
        && std::env::var_os("ATTNET_REQUIRE_DPDK").is_none()
    {
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
    if !ffi::AVAILABLE {
        assert!(std::env::var_os("ATTNET_REQUIRE_DPDK").is_none(), "ATTNET_REQUIRE_DPDK is set but ffi has no DPDK");
        eprintln!("skipped: this build has no DPDK: {:?}", ffi::unavailable_reason());
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
