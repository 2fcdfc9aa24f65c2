//! The generator's DPDK output (`--out dpdk:...`) on virtual devices,
//! without hugepages: through `net_pcap` into a capture that `attnet node
//! --backend pcap` replays with every count as expected, reason by reason;
//! through `net_null` with two transmit queues, where the port counts every
//! packet the queues handed over. DPDK initialises once per process, so
//! these tests have their own binary and share one EAL with every device
//! declared up front.
//!
//! Without DPDK in the build the tests print why and pass, unless
//! `ATTNET_REQUIRE_DPDK` is set (then they fail).

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pktgen::dpdk::DpdkPorts;
use pktgen::{Out, Plan, Rate, RunConfig, TrafficConfig};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

struct Env {
    dir: PathBuf,
    eal: Vec<String>,
    capture: PathBuf,
}

/// The EAL arguments every test passes (the EAL starts on the first run).
fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        if ffi::skip_without_dpdk("the DPDK output tests") {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("attnet-pktgen-dpdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let capture = dir.join("tx.pcap");
        let eal = [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "-l",
            "0",
            &format!("--file-prefix=attnet-pktgen-test-{}", std::process::id()),
            "--log-level=*:error",
            &format!("--vdev=net_pcap0,tx_pcap={}", capture.display()),
            "--vdev=net_null0",
        ]
        .map(String::from)
        .to_vec();
        Some(Env { dir, eal, capture })
    })
    .as_ref()
}

macro_rules! dpdk {
    () => {
        match env() {
            Some(e) => e,
            None => return,
        }
    };
}

/// pktgen → net_pcap0 (tx_pcap) → `attnet node --backend pcap`: the node's
/// counters equal the expected counts reason by reason, and the port
/// counted exactly the datagrams sent.
#[test]
fn pcap_device_capture_replays_with_every_count_as_expected() {
    let env = dpdk!();
    let plan = Plan::from_seed(11, 1, 4, 64, 1_000_000_000_000);
    let pool = plan.pool(120);
    let keys = env.dir.join("keys.json");
    let genesis = env.dir.join("genesis.json");
    std::fs::write(&keys, plan.keys_json()).unwrap();
    std::fs::write(&genesis, plan.genesis().unwrap().to_json()).unwrap();
    let count = 3000;
    let ports = Arc::new(DpdkPorts::new());
    let cfg = RunConfig {
        out: Out::Dpdk("net_pcap0".into()),
        traffic: TrafficConfig { bad: 0.1, ..TrafficConfig::default() },
        rate: Rate::Unlimited,
        count: Some(count),
        eal_args: env.eal.clone(),
        dpdk: ports.clone(),
        ..RunConfig::default()
    };
    let r = pktgen::run(&plan, &pool, &cfg, &AtomicBool::new(false)).unwrap();
    let s = &r.summary;
    assert_eq!(s["ended"], "limit", "{s}");
    assert_eq!(s["sent"]["datagrams"], count);
    let d = &s["dpdk"];
    assert_eq!(d["driver"], "net_pcap", "{d}");
    assert_eq!((d["handed"].as_u64(), d["opackets"].as_u64()), (Some(count), Some(count)), "{d}");
    assert_eq!(d["drained"], true);
    assert_eq!(d["stalled"], false);
    // Closing the port completes the capture.
    ports.close("net_pcap0").unwrap();

    let frames = dataplane::testkit::read_pcap_frames(&env.capture).unwrap();
    assert_eq!(frames.len() as u64, count);
    let wire_bytes: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(Some(wire_bytes as u64), d["obytes"].as_u64());
    // The port's MAC is the source, the UDP payload what the generator built.
    let mac: Vec<u8> = d["mac"].as_str().unwrap().split(':').map(|x| u8::from_str_radix(x, 16).unwrap()).collect();
    assert!(frames.iter().all(|f| f[6..12] == mac[..]));
    let payload_bytes: usize = frames.iter().map(|f| f.len() - 42).sum();
    assert_eq!(Some(payload_bytes as u64), s["sent"]["bytes"].as_u64());

    let summary = env.dir.join("node.json");
    let o = Command::new(BIN)
        .args(["node", "--backend", "pcap", "--pcap"])
        .arg(&env.capture)
        .arg("--keys")
        .arg(&keys)
        .arg("--genesis")
        .arg(&genesis)
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .unwrap();
    assert!(o.status.success(), "attnet node: {}", String::from_utf8_lossy(&o.stderr));
    let node: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let checks = pktgen::check::compare(&s["expected"], &node);
    for (what, ok) in &checks {
        assert!(ok, "{what}\nexpected {}\nnode {node}", s["expected"]);
    }
    assert!(checks.len() > 20, "every reason compared: {checks:?}");
    // The hostile tenth reached most reasons.
    let dropped = s["expected"]["frames"]["dropped"].as_object().unwrap();
    assert!(dropped.values().filter(|v| v.as_u64() > Some(0)).count() >= 9, "{dropped:?}");
    assert!(node["frames"]["accepted"].as_u64().unwrap() > count / 2);
}

/// Two sending threads on net_null0, each on its own transmit queue: the
/// port counts what both handed over, run after run on the same port;
/// a pre-sealed run sends exactly its count.
#[test]
fn null_device_two_queues_count_every_packet() {
    let env = dpdk!();
    let plan = Plan::from_seed(12, 1, 4, 16, 1_000_000_000_000);
    let pool = plan.pool(200);
    // One registry for every run: the port stays open between them.
    let base = RunConfig {
        out: Out::Dpdk("net_null0".into()),
        threads: 2,
        duration: Some(Duration::from_millis(400)),
        eal_args: env.eal.clone(),
        dpdk: Arc::new(DpdkPorts::new()),
        ..RunConfig::default()
    };
    let stop = AtomicBool::new(false);
    for round in 0..2 {
        let r = pktgen::run(&plan, &pool, &base, &stop).unwrap();
        let (s, d) = (&r.summary, &r.summary["dpdk"]);
        let sent = s["sent"]["datagrams"].as_u64().unwrap();
        assert!(sent > 100, "round {round}: {s}");
        assert_eq!(d["tx_queues"], 2);
        assert_eq!(d["handed"].as_u64(), Some(sent), "round {round}: {d}");
        assert_eq!(d["opackets"].as_u64(), Some(sent), "round {round}: counts are per run: {d}");
        assert_eq!(d["drained"], true);
    }
    let pre = RunConfig { count: Some(5000), duration: None, presealed: 64, ..base.clone() };
    let r = pktgen::run(&plan, &pool, &pre, &stop).unwrap();
    assert_eq!(r.summary["sent"]["datagrams"], 5000);
    assert_eq!(r.summary["dpdk"]["opackets"], 5000);
    assert_eq!(r.summary["expected"], Value::Null);
    // A second output with more queues than the port was opened with.
    let more = RunConfig { threads: 4, ..base };
    let e = pktgen::run(&plan, &pool, &more, &stop).unwrap_err();
    assert!(e.contains("2 transmit queues"), "{e}");
}
