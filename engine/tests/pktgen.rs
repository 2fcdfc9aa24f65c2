//! The traffic generator against the node: whatever mix it sends, the
//! node's counters equal the generator's expected counts reason by reason
//! (through a pcap replay, and live over loopback UDP in a private network
//! namespace, where receipts must come back for every accepted
//! transaction).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-pktgen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let o = cmd.output().expect("runs");
    assert!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `attnet node` replaying `pcap` with the keys and genesis: its summary,
/// and the generator's expected counts.
fn replay(pcap: &Path, keys: &Path, genesis: &Path, expect: &Path) -> (Value, Value) {
    let node = run(Command::new(BIN).args([
        "node",
        "--backend",
        "pcap",
        "--pcap",
        p(pcap),
        "--keys",
        p(keys),
        "--genesis",
        p(genesis),
    ]));
    let summary: Value = serde_json::from_slice(&node.stdout).unwrap();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(expect).unwrap()).unwrap();
    (summary, expected)
}

fn assert_checks(expected: &Value, summary: &Value, what: &str) {
    let checks = pktgen::check::compare(expected, summary);
    let failed: Vec<_> = checks.iter().filter(|c| !c.1).map(|c| &c.0).collect();
    assert!(failed.is_empty(), "{what}: {failed:?}\nexpected {expected}\nnode {summary}");
    // Exact, not only balanced: the per-reason comparisons ran.
    assert!(checks.len() > 10, "{what}: {checks:?}");
}

/// Several seeds and mixes through pcap files: every reason's count is
/// exactly what the generator says it sent.
#[test]
fn pcap_replay_counts_equal_expected_for_every_mix() {
    let d = tmpdir("pcap");
    let cache = d.join("cache");
    let mixes: [&[&str]; 4] = [
        &["--bad", "0", "--txs-per-frame", "1", "--lz4", "off"],
        &["--bad", "0.2", "--txs-per-frame", "1-3", "--frames-per-datagram", "2", "--lz4", "mix"],
        &["--bad", "0.5", "--txs-per-frame", "2-4", "--lz4", "on", "--kinds", "transfer,message", "--memo", "0-60"],
        &["--bad", "0.1", "--src-ip", "fd00::1", "--dst-ip", "fd00::2", "--vlan", "42", "--burst", "8", "--pps", "1e5"],
    ];
    for (seed, mix) in [11u64, 12, 13, 14].iter().zip(mixes) {
        let (keys, genesis, pcap, expect) =
            (d.join("keys.json"), d.join("genesis.json"), d.join("t.pcap"), d.join("expect.json"));
        run(Command::new(BIN)
            .args(["pktgen", "--quiet", "--seed", &seed.to_string(), "--sessions", "3", "--accounts", "24"])
            .args(["--count", "1500", "--pool-cache", p(&cache), "--keys-out", p(&keys), "--genesis-out", p(&genesis)])
            .args(["--out", &format!("pcap:{}", p(&pcap)), "--expect", p(&expect)])
            .args(mix));
        let (summary, expected) = replay(&pcap, &keys, &genesis, &expect);
        assert_eq!(expected["packets"]["received"], 1500, "{mix:?}");
        let bad = mix[1].parse::<f64>().unwrap();
        if bad > 0.0 {
            // Every drop reason is exercised, not only some.
            // (`throttled` is the node's own defence, which the mix stays under.)
            for (k, n) in expected["frames"]["dropped"].as_object().unwrap() {
                assert!(k == "throttled" || n.as_u64().unwrap() > 0, "{mix:?}: {expected}");
            }
        }
        assert_checks(&expected, &summary, &format!("seed {seed} {mix:?}"));
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The generator's pcap timestamps follow the asked rate exactly.
#[test]
fn pcap_timestamps_follow_the_rate() {
    let d = tmpdir("ts");
    let pcap = d.join("t.pcap");
    run(Command::new(BIN)
        .args(["pktgen", "--quiet", "--seed", "5", "--count", "100", "--pps", "2000", "--burst", "4"])
        .args(["--pool-cache", "off", "--out", &format!("pcap:{}", p(&pcap))]));
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&pcap).unwrap()).unwrap();
    let mut ts = Vec::new();
    while let Some(pkt) = r.next_packet() {
        ts.push(pkt.unwrap().timestamp);
    }
    assert_eq!(ts.len(), 100);
    for (i, t) in ts.iter().enumerate() {
        // Groups of 4 share the due time of their first: 4 / 2000 s apart.
        let due = std::time::Duration::from_micros((i as u64 / 4) * 2000);
        assert_eq!(*t - ts[0], due, "packet {i}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Live: the node on io_uring in a private network namespace, the
/// generator (two sending threads, hostile mix) over loopback UDP well
/// below capacity, with receipts. Counts equal the expected ones (unless
/// the kernel reports drops), and every accepted transaction is receipted.
#[test]
fn udp_loopback_counts_and_receipts() {
    let d = tmpdir("udp");
    let (keys, genesis) = (d.join("keys.json"), d.join("genesis.json"));
    let (expect, gen, node) = (d.join("expect.json"), d.join("pktgen.json"), d.join("node.json"));
    let common = format!("--seed 21 --sessions 4 --accounts 32 --pool-cache {}", p(&d.join("cache")));
    run(Command::new("sh").arg("-c").arg(format!(
        "{BIN} pktgen --quiet {common} --keys-out {} --genesis-out {}",
        p(&keys),
        p(&genesis)
    )));
    let script = format!(
        "ip link set lo up && \
         ({BIN} node --backend io_uring --listen 127.0.0.1:7100 --cores 1 --keys {k} --genesis {g} \
            --block-interval 50 --duration 5 > {node} 2> {d}/node.err &) && sleep 0.7 && \
         {BIN} pktgen --quiet {common} --out udp:127.0.0.1:7100 --pps 2000 --duration 2 --threads 2 \
            --bad 0.1 --receipts --receipt-wait 2 --expect {expect} --json {gen} && \
         while [ ! -s {node} ]; do sleep 0.2; done; sleep 0.3",
        k = p(&keys),
        g = p(&genesis),
        node = p(&node),
        d = p(&d),
        expect = p(&expect),
        gen = p(&gen),
    );
    let o =
        Command::new("timeout").args(["60", "unshare", "--net", "sh", "-c", &script]).output().expect("unshare runs");
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(d.join("node.err")).unwrap_or_default()
    );
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&node).unwrap()).unwrap();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&expect).unwrap()).unwrap();
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&gen).unwrap()).unwrap();
    let checks = pktgen::check::compare(&expected, &summary);
    assert!(pktgen::check::all_hold(&checks), "{checks:?}\n{summary}");
    let accepted = summary["txs"]["accepted"].as_u64().unwrap();
    assert!(accepted > 3000, "{summary}");
    let r = &g["receipts"];
    assert_eq!(r["matched"].as_u64().unwrap(), accepted, "{r}");
    assert_eq!(r["duplicate"], 0, "{r}");
    assert_eq!(r["unknown"], 0, "{r}");
    assert_eq!(r["bad_frames"], 0, "{r}");
    assert_eq!(r["stale_counter"], 0, "{r}");
    let p50 = r["latency_us"]["p50"].as_u64().unwrap();
    assert!(p50 > 0 && p50 <= r["latency_us"]["p99"].as_u64().unwrap(), "{r}");
    // The rate asked is the rate achieved (2 s at 2000/s).
    let achieved = g["rate"]["achieved_pps"].as_f64().unwrap();
    assert!((1800.0..=2200.0).contains(&achieved), "{}", g["rate"]);
    let _ = std::fs::remove_dir_all(&d);
}

/// Attack shapes through a pcap replay: every shape alone and all of them
/// cycled, and the node counts each exactly where the generator says.
#[test]
fn pcap_replay_counts_attack_shapes_exactly() {
    let d = tmpdir("attack-pcap");
    let cache = d.join("cache");
    let (keys, genesis, pcap, expect, gen) =
        (d.join("keys.json"), d.join("genesis.json"), d.join("t.pcap"), d.join("expect.json"), d.join("gen.json"));
    for attack in ["junk", "unknown", "auth", "dup", "badsig", "hello", "junk,unknown,auth,dup,badsig,hello"] {
        run(Command::new(BIN)
            .args(["pktgen", "--quiet", "--seed", "31", "--sessions", "3", "--accounts", "24"])
            .args(["--count", "1200", "--pool-cache", p(&cache), "--keys-out", p(&keys), "--genesis-out", p(&genesis)])
            .args(["--out", &format!("pcap:{}", p(&pcap)), "--expect", p(&expect), "--json", p(&gen)])
            .args(["--attack", attack, "--attack-share", "0.4"]));
        let (summary, expected) = replay(&pcap, &keys, &genesis, &expect);
        let g: Value = serde_json::from_str(&std::fs::read_to_string(&gen).unwrap()).unwrap();
        assert_checks(&expected, &summary, attack);
        // Every shape asked for was sent, and its reason is not empty.
        for shape in attack.split(',') {
            assert!(g["attack"]["sent"][shape].as_u64().unwrap() > 0, "{attack}: {}", g["attack"]);
            let (group, reason) = g["attack"]["counted_as"][shape].as_str().unwrap().split_once(".dropped.").unwrap();
            assert!(summary[group]["dropped"][reason].as_u64().unwrap() > 0, "{attack}: {summary}");
        }
        let sent: u64 = g["attack"]["sent"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert!((430..=490).contains(&sent), "{attack}: {sent} of 1200 at 0.4");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Live: `--attack auth` and `--attack junk` over loopback UDP (a private
/// network namespace, 2000 datagrams/s for 1.5 s) into the node on
/// io_uring: its summary equals the generator's expected counts exactly.
#[test]
fn udp_loopback_attack_counts_are_exact() {
    let d = tmpdir("attack-udp");
    let (keys, genesis) = (d.join("keys.json"), d.join("genesis.json"));
    let common = format!("--seed 32 --sessions 2 --accounts 16 --pool-cache {}", p(&d.join("cache")));
    run(Command::new("sh").arg("-c").arg(format!(
        "{BIN} pktgen --quiet {common} --keys-out {} --genesis-out {}",
        p(&keys),
        p(&genesis)
    )));
    for attack in ["auth", "junk"] {
        let (expect, node) = (d.join(format!("expect-{attack}.json")), d.join(format!("node-{attack}.json")));
        let script = format!(
            "ip link set lo up && \
             ({BIN} node --backend io_uring --listen 127.0.0.1:7100 --cores 1 --keys {k} --genesis {g} \
                --block-interval 50 --duration 4 > {node} 2> {d}/node.err &) && sleep 0.7 && \
             {BIN} pktgen --quiet {common} --out udp:127.0.0.1:7100 --pps 2000 --duration 1.5 \
                --attack {attack} --attack-share 0.5 --expect {expect} && \
             while [ ! -s {node} ]; do sleep 0.2; done; sleep 0.3",
            k = p(&keys),
            g = p(&genesis),
            node = p(&node),
            d = p(&d),
            expect = p(&expect),
        );
        let o = Command::new("timeout")
            .args(["60", "unshare", "--net", "sh", "-c", &script])
            .output()
            .expect("unshare runs");
        assert!(
            o.status.success(),
            "{attack}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            std::fs::read_to_string(d.join("node.err")).unwrap_or_default()
        );
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(&node).unwrap()).unwrap();
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(&expect).unwrap()).unwrap();
        assert_eq!(summary["packets"]["kernel_dropped"], 0, "{attack}: {summary}");
        assert_checks(&expected, &summary, attack);
        let reason = if attack == "auth" { "auth_failed" } else { "bad_header" };
        let n = expected["frames"]["dropped"][reason].as_u64().unwrap();
        assert!((1300..=1700).contains(&n), "{attack}: {n} {reason} of 3000 datagrams at 0.5");
        assert_eq!(summary["frames"]["dropped"][reason].as_u64().unwrap(), n);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `--keys FILE`: the sessions of a keys file written from one seed carry
/// another seed's traffic, and the node configured from the file counts it
/// exactly; a missing file, or `--keys` with `--sessions`, is refused.
#[test]
fn keys_file_sessions_carry_another_seeds_traffic() {
    let d = tmpdir("keys-file");
    let cache = d.join("cache");
    let (keys, genesis, pcap, expect) =
        (d.join("keys.json"), d.join("genesis.json"), d.join("t.pcap"), d.join("expect.json"));
    run(Command::new(BIN)
        .args(["pktgen", "--quiet", "--seed", "71", "--sessions", "3", "--txs", "8", "--pool-cache", "off"])
        .args(["--keys-out", p(&keys)]));
    run(Command::new(BIN)
        .args(["pktgen", "--quiet", "--seed", "72", "--accounts", "24", "--keys", p(&keys), "--count", "900"])
        .args(["--bad", "0.2", "--pool-cache", p(&cache), "--genesis-out", p(&genesis)])
        .args(["--out", &format!("pcap:{}", p(&pcap)), "--expect", p(&expect)]));
    let (summary, expected) = replay(&pcap, &keys, &genesis, &expect);
    assert_checks(&expected, &summary, "--keys");
    assert!(summary["txs"]["accepted"].as_u64().unwrap() > 600, "{summary}");
    // Seed 72's own sessions are not the file's: the frames would all be
    // auth_failed had the generator sealed under them.
    assert_eq!(summary["frames"]["dropped"]["auth_failed"], expected["frames"]["dropped"]["auth_failed"]);
    let missing = d.join("none.json");
    for (args, why) in [
        (vec!["--keys", p(&missing)], format!("keys file {}", p(&missing))),
        (vec!["--keys", p(&keys), "--sessions", "2"], "cannot be used with".to_string()),
    ] {
        let o = Command::new(BIN)
            .args(["pktgen", "--quiet", "--seed", "72", "--pool-cache", "off", "--txs", "8"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&why), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
