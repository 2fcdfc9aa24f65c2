//! `dpdk-testpmd --forward-mode=rxonly` against `attnet node --backend
//! dpdk` on the same virtual device and cores, in one run, plus the full
//! path on unique ATT traffic (`net_pcap`), printed as a markdown table
//! with ratios. Rates are steady-state medians of the once-a-second
//! figures each program prints (testpmd's `Rx-pps`, attnet's live line).
//!
//! `cargo run --release -p bench --bin dpdk_vs_testpmd [-- SECONDS]`
//! (needs `cargo build --release -p engine` first, DPDK and dpdk-testpmd;
//! as root it reserves 512 2-MiB hugepages and mounts hugetlbfs if none
//! are, else it runs with --no-huge and says so).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Steady state: drop the first two readings (start-up), keep the rest.
fn steady(v: Vec<f64>) -> f64 {
    median(v.into_iter().skip(2).filter(|x| *x > 0.0).collect())
}

fn hugepages() -> Option<String> {
    let nr = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
    let have: u64 = std::fs::read_to_string(nr).ok()?.trim().parse().ok()?;
    if have < 512 {
        std::fs::write(nr, "512").ok()?;
    }
    let have: u64 = std::fs::read_to_string(nr).ok()?.trim().parse().ok()?;
    if have < 256 {
        return None;
    }
    let dir = "/dev/hugepages";
    let mounted =
        std::fs::read_to_string("/proc/mounts").ok()?.lines().any(|l| l.contains("hugetlbfs") && l.contains(dir));
    if !mounted {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount").args(["-t", "hugetlbfs", "nodev", dir]).status().ok()?.success();
        if !ok {
            return None;
        }
    }
    Some(dir.to_string())
}

fn testpmd(eal: &[String], secs: u64) -> f64 {
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg("dpdk-testpmd")
        .args(eal)
        .args([
            "--",
            "--forward-mode=rxonly",
            "--auto-start",
            "--stats-period=1",
            "--nb-cores=1",
            "--total-num-mbufs=16384",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("dpdk-testpmd runs (package dpdk-dev)");
    let text = String::from_utf8_lossy(&out.stdout);
    let pps: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    steady(pps)
}

/// Runs the node and returns (Mpps readings, frames/s readings, summary).
fn attnet(
    bin: &Path,
    eal: &[String],
    port: &str,
    secs: u64,
    extra: &[&str],
) -> (Vec<f64>, Vec<f64>, serde_json::Value) {
    let out = Command::new(bin)
        .args(["node", "--backend", "dpdk", "--dpdk-port", port, "--live", "true", "--busy-poll", "true"])
        .arg(format!("--dpdk-eal={}", eal.join(" ")))
        .args(["--duration", &secs.to_string()])
        .args(extra)
        .output()
        .expect("attnet runs");
    let err = String::from_utf8_lossy(&out.stderr);
    let mut mpps = Vec::new();
    let mut fps = Vec::new();
    for l in err.lines().filter(|l| l.contains(" Mpps ")) {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let Some(x) = w.get(1).and_then(|x| x.parse().ok()) {
            mpps.push(x);
        }
        if let Some(i) = w.iter().position(|x| *x == "frames/s") {
            if let Some(x) = w.get(i - 1).and_then(|x| x.parse().ok()) {
                fps.push(x);
            }
        }
    }
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("attnet failed: {err}"));
    (mpps, fps, summary)
}

fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("target/release/attnet");
    assert!(bin.exists(), "build the node first: cargo build --release -p engine");
    let huge = hugepages();
    let mem: Vec<String> = match &huge {
        Some(dir) => vec!["--huge-dir".into(), dir.clone(), "-m".into(), "512".into()],
        None => vec!["--no-huge".into(), "-m".into(), "1024".into()],
    };
    let eal = |prefix: &str, vdev: &str| -> Vec<String> {
        let mut a: Vec<String> = vec!["-l".into(), "0-1".into()];
        a.extend(mem.iter().cloned());
        a.extend(
            [
                "--no-pci",
                "--no-shconf",
                "--log-level=*:error",
                &format!("--file-prefix={prefix}"),
                &format!("--vdev={vdev}"),
            ]
            .map(String::from),
        );
        a
    };
    println!(
        "Memory: {}; lcores 0-1 (testpmd forwards on lcore 1; attnet's data core pinned to CPU 1); {secs} s per run, steady-state medians.\n",
        huge.as_deref().map_or("--no-huge (no hugepages could be reserved)".to_string(), |d| format!("2 MiB hugepages on {d}"))
    );
    let tp = testpmd(&eal("bench-tp", "net_null0"), secs);
    let (rx, _, s_rx) = attnet(&bin, &eal("bench-rx", "net_null0"), "net_null0", secs, &["--stop-after", "rx"]);
    let (full_null, _, _) = attnet(&bin, &eal("bench-fn", "net_null0"), "net_null0", secs, &[]);
    let rx = steady(rx) * 1e6;
    let full_null = steady(full_null) * 1e6;
    println!("| run on net_null0 (64-byte frames, not ATT) | Mpps | vs testpmd rxonly |");
    println!("|---|---|---|");
    println!("| dpdk-testpmd --forward-mode=rxonly | {:.2} | 1.00 |", tp / 1e6);
    println!(
        "| attnet --stop-after rx (receive, classify, free) | {:.2} | **{:.2}** (goal >= 0.50) |",
        rx / 1e6,
        rx / tp
    );
    println!(
        "| attnet full pipeline (every packet dropped as not_ip) | {:.2} | {:.2} |",
        full_null / 1e6,
        full_null / tp
    );
    assert_eq!(s_rx["packets"]["nic"]["ipackets"], s_rx["packets"]["received"]);

    // Full path on unique traffic: every frame a fresh counter, every
    // transaction new (signing is the slow part of building the file).
    let n = 60_000usize;
    let dir = std::env::temp_dir().join(format!("attnet-dpdk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("unique.pcap");
    let frames = bench::unique_frames(n);
    dataplane::testkit::write_udp_pcap(&pcap, &frames).unwrap();
    // The foundation's single-core frame path on the same frames, in memory.
    let in_memory = {
        let mut fp = dataplane::testkit::relay(1);
        let mut burst = dataplane::Burst::default();
        let mut ds = frames.clone();
        let t = std::time::Instant::now();
        for chunk in ds.chunks_mut(32) {
            fp.process(chunk, &mut burst);
        }
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(burst.counters.txs_accepted as usize, n);
        n as f64 / dt
    };
    let keys = dir.join("keys.json");
    std::fs::write(
        &keys,
        format!(
            r#"{{"sessions": [{{"id": 1, "c2r": "{}", "r2c": "{}"}}]}}"#,
            hex(&dataplane::testkit::c2r(1)),
            hex(&dataplane::testkit::r2c(1))
        ),
    )
    .unwrap();
    let vdev = format!("net_pcap0,rx_pcap={}", pcap.display());
    let run_secs = (n as u64 / 30_000).max(2) + 3;
    let (_, fps, s) = attnet(&bin, &eal("bench-fp", &vdev), "net_pcap0", run_secs, &["--keys", keys.to_str().unwrap()]);
    let busy: Vec<f64> = fps.into_iter().filter(|x| *x > 1000.0).collect();
    let full = median(busy.clone());
    assert_eq!(s["frames"]["accepted"].as_u64().unwrap() as usize, n, "{s}");
    println!("\n| {n} unique single-transaction frames | k frames/s per core | vs frame path in memory |");
    println!("|---|---|---|");
    println!("| frame path alone, bursts of 32 in memory | {:.1} | 1.00 |", in_memory / 1e3);
    println!(
        "| attnet --backend dpdk on net_pcap0, full pipeline (median of {} busy seconds) | {:.1} | **{:.2}** |",
        busy.len(),
        full / 1e3,
        full / in_memory
    );

    // The same unique frames from a DPDK sender in this process (memif
    // server) to the node (memif client), as fast as the ring takes them.
    let sock = dir.join("memif.sock");
    let mut margs: Vec<String> = vec!["attnet-bench".into(), "-l".into(), "0".into()];
    margs.extend(mem.iter().cloned());
    margs.extend([
        "--no-pci".to_string(),
        "--no-shconf".to_string(),
        "--log-level=*:error".to_string(),
        "--file-prefix=bench-ms".to_string(),
        format!("--vdev=net_memif0,role=server,socket={},socket-abstract=no", sock.display()),
    ]);
    let margs_ref: Vec<&str> = margs.iter().map(|s| s.as_str()).collect();
    let eal_s = ffi::Eal::init(&margs_ref).expect("sender EAL");
    let pool = ffi::Mempool::new("bench_tx", 8191, 256, ffi::DEFAULT_DATA_ROOM, None).expect("sender pool");
    let pcfg = ffi::PortConfig { rx_queues: 1, tx_queues: 1, rss: false, ..ffi::PortConfig::default() };
    let port = ffi::Port::open(&eal_s, "net_memif0", &pcfg, &pool).expect("memif server port");
    let mut txq = port.tx_queue(0).expect("tx queue");
    let client = format!("net_memif0,role=client,socket={},socket-abstract=no", sock.display());
    let ethernet: Vec<Vec<u8>> = frames.iter().map(|f| dataplane::testkit::udp4_packet(7100, f)).collect();
    let node_eal = eal("bench-mc", &client);
    let sender = std::thread::spawn(move || {
        let _ = eal_s.register_thread();
        let mut sent = 0usize;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut b = ffi::MbufBurst::new();
        while sent < ethernet.len() && std::time::Instant::now() < deadline {
            while b.len() < 32 && sent + b.len() < ethernet.len() {
                let f = &ethernet[sent + b.len()];
                let Some(mut m) = pool.alloc() else { break };
                if let Some(d) = m.append(f.len()) {
                    d.copy_from_slice(f);
                }
                let _ = b.push(m);
            }
            // Unsent mbufs stay in the burst (link not up yet, ring full).
            let k = txq.try_send(&mut b);
            sent += k;
            if k == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        b.clear();
        // The port stays up until the node has drained the ring: closing
        // the server side would drop what is still in it.
        (sent, txq, port)
    });
    let (_, mfps, ms) = attnet(&bin, &node_eal, "net_memif0", run_secs + 2, &["--keys", keys.to_str().unwrap()]);
    let (sent, txq, port) = sender.join().unwrap();
    let mbusy: Vec<f64> = mfps.into_iter().filter(|x| *x > 1000.0).collect();
    let memif = median(mbusy.clone());
    assert_eq!(ms["packets"]["nic"]["ipackets"].as_u64().unwrap() as usize, sent, "{ms}");
    println!(
        "| attnet --backend dpdk on net_memif0 from a DPDK sender ({sent} sent, {} accepted; median of {} busy seconds) | {:.1} | **{:.2}** |",
        ms["frames"]["accepted"],
        mbusy.len(),
        memif / 1e3,
        memif / in_memory
    );
    drop(txq);
    drop(port);
    let _ = std::fs::remove_dir_all(&dir);
    std::thread::sleep(Duration::from_millis(10));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
