//! `attnet node` against operator mistakes, through the built binary:
//! measurement modes, a port used twice, an output file that cannot be
//! written, numeric options out of range, a network id that contradicts
//! the genesis file, an over-long `attnet decode` line. Every node runs on
//! loopback and is killed after a bounded time whatever happens.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-operator-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Waits for `c` to exit, killing it after `limit`; `None` if it had to be
/// killed.
fn wait_bounded(mut c: Child, limit: Duration) -> (Option<Output>, Child) {
    let until = Instant::now() + limit;
    loop {
        if c.try_wait().unwrap().is_some() {
            let mut out = String::new();
            let mut err = String::new();
            if let Some(mut s) = c.stdout.take() {
                s.read_to_string(&mut out).unwrap();
            }
            if let Some(mut s) = c.stderr.take() {
                s.read_to_string(&mut err).unwrap();
            }
            let status = c.wait().unwrap();
            return (Some(Output { status, stdout: out.into_bytes(), stderr: err.into_bytes() }), c);
        }
        if Instant::now() >= until {
            let _ = c.kill();
            let _ = c.wait();
            return (None, c);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `attnet ARGS`, killed after `limit` (a failure).
fn attnet(args: &[&str], limit: Duration) -> Output {
    let c = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (o, _) = wait_bounded(c, limit);
    o.unwrap_or_else(|| panic!("attnet {args:?} still running after {limit:?}"))
}

/// A node process killed when dropped.
struct NodeGuard(Option<Child>);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `attnet node ARGS` and returns it with the address it listens on
/// (from its "listening on" line) and the rest of its stderr.
fn start_node(args: &[&str]) -> (NodeGuard, std::net::SocketAddr, BufReader<std::process::ChildStderr>) {
    let mut c = Command::new(BIN).arg("node").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(c.stderr.take().unwrap());
    let g = NodeGuard(Some(c));
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "node exited early");
        if let Some((_, a)) = line.trim().rsplit_once("listening on ") {
            break a.parse().unwrap();
        }
    };
    (g, addr, err)
}

/// A UDP port on 127.0.0.1 nothing holds right now.
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn empty_pcap(d: &std::path::Path) -> std::path::PathBuf {
    use pcap_file::pcap::{PcapHeader, PcapWriter};
    let p = d.join("empty.pcap");
    drop(PcapWriter::with_header(std::fs::File::create(&p).unwrap(), PcapHeader::default()).unwrap());
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn stage_measurement_modes_are_refused() {
    let d = tmpdir("stop-after");
    let cfg = d.join("m.toml");
    let pcap = empty_pcap(&d);
    let pcap = pcap.to_str().unwrap();
    for mode in ["decode", "decrypt", "decompress"] {
        std::fs::write(&cfg, format!("stop_after = \"{mode}\"\n")).unwrap();
        let o = attnet(&["node", "--config", cfg.to_str().unwrap(), "--backend", "pcap", "--pcap", pcap], secs(10));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{mode}: {err}");
        assert!(err.contains("`stop_after`") && err.contains(mode) && err.contains("attnet-bench"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        let o = attnet(&["node", "--stop-after", mode, "--backend", "pcap", "--pcap", pcap], secs(10));
        assert_eq!(o.status.code(), Some(2), "--stop-after {mode}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "no summary: nothing ran");
    }
    // Full verification and the receive baseline stay.
    for mode in ["full", "verify", "rx"] {
        let o = attnet(&["node", "--stop-after", mode, "--backend", "pcap", "--pcap", pcap], secs(10));
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn second_node_on_the_same_port_is_refused() {
    for backend in ["io_uring", "recvmmsg"] {
        let listen = format!("127.0.0.1:{}", free_port());
        let args = ["--backend", backend, "--listen", &listen, "--cores", "2", "--pin", "false", "--duration", "30"];
        let (_first, addr, _err) = start_node(&args);
        assert_eq!(addr.to_string(), listen);
        let t = Instant::now();
        let mut second = vec!["node"];
        second.extend_from_slice(&args);
        let o = attnet(&second, secs(10));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{backend}: {err}");
        assert!(err.contains(&format!("UDP port {listen} is in use by another attnet process")), "{err}");
        assert!(t.elapsed() < secs(5), "refused after {:?}", t.elapsed());
    }
    // With port 0 the lock is taken on the port the kernel picked.
    let (_first, addr, _err) = start_node(&["--backend", "recvmmsg", "--listen", "127.0.0.1:0", "--pin", "false"]);
    let o = attnet(&["node", "--backend", "recvmmsg", "--listen", &addr.to_string(), "--pin", "false"], secs(10));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("in use by another attnet process"), "{}", stderr(&o));
}

/// Without `--backend` the node probes io_uring against recvmmsg, runs
/// the one it names in its log line, and the summary agrees; with
/// io_uring disabled it runs recvmmsg and says why.
#[test]
fn the_auto_backend_says_which_and_why() {
    let o = attnet(&["node", "--listen", "127.0.0.1:0", "--pin", "false", "--duration", "1"], secs(20));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let line = err.lines().find(|l| l.contains("backend auto: ")).unwrap_or_else(|| panic!("{err}"));
    let pick = line.split("backend auto: ").nth(1).unwrap().split(' ').next().unwrap();
    assert!(line.contains("of recvmmsg's rate, median of 41 rounds"), "{line}");
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["backend"].as_str(), Some(pick), "{line}");
    let o = Command::new(BIN)
        .args(["node", "--listen", "127.0.0.1:0", "--pin", "false", "--duration", "1"])
        .env("ATTNET_DISABLE_IO_URING", "1")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(err.contains("backend auto: recvmmsg (io_uring disabled by ATTNET_DISABLE_IO_URING)"), "{err}");
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["backend"], "recvmmsg");
}

#[test]
fn port_held_by_another_program_is_a_bind_error() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let listen = holder.local_addr().unwrap().to_string();
    for backend in ["io_uring", "recvmmsg"] {
        let o = attnet(&["node", "--backend", backend, "--listen", &listen, "--pin", "false"], secs(10));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{backend}: {err}");
        assert!(err.contains(&format!("UDP port {listen} is in use by another process (bind: EADDRINUSE")), "{err}");
        assert!(!err.contains("io_uring unavailable"), "a bind error is not io_uring's: {err}");
        assert!(!err.contains("falling back"), "{err}");
    }
}

#[test]
fn failed_control_thread_stops_the_node_with_a_summary() {
    let d = tmpdir("dev-full");
    let plan = pktgen::Plan::random(1, 2, 16, 1_000_000);
    let pool = plan.pool(400);
    std::fs::write(d.join("keys.json"), plan.keys_json()).unwrap();
    std::fs::write(d.join("genesis.json"), plan.genesis().unwrap().to_json()).unwrap();
    let (k, g) = (d.join("keys.json"), d.join("genesis.json"));
    let args = [
        "--backend",
        "recvmmsg",
        "--listen",
        "127.0.0.1:0",
        "--cores",
        "1",
        "--pin",
        "false",
        "--duration",
        "30",
        "--live",
        "true",
        "--accepted-ids",
        "/dev/full",
        "--keys",
        k.to_str().unwrap(),
        "--genesis",
        g.to_str().unwrap(),
    ];
    let (mut node, addr, mut err) = start_node(&args);
    let t = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // More ids than the control thread's write buffer holds (8 KiB, 65 bytes an id).
    let sender = std::thread::spawn(move || {
        let cfg = pktgen::RunConfig {
            out: pktgen::Out::Udp(addr),
            rate: pktgen::Rate::Pps(2000.0),
            duration: Some(Duration::from_secs(4)),
            ..Default::default()
        };
        pktgen::run(&plan, &pool, &cfg, &stop2).map(|r| r.sent.datagrams)
    });
    let (o, _) = wait_bounded(node.0.take().unwrap(), secs(20));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sender.join();
    let o = o.expect("the node stopped by itself once its control thread failed");
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert!(t.elapsed() < secs(15), "stopped after {:?}", t.elapsed());
    assert_eq!(o.status.code(), Some(2), "{rest}");
    let last = rest.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("attnet: thread attnet-control failed: accepted ids:"), "{rest}");
    let s: Value = serde_json::from_slice(&o.stdout).expect("the summary is still printed");
    assert!(s["error"].as_str().unwrap().contains("attnet-control"), "{s}");
    assert!(s["txs"]["accepted"].as_u64().unwrap() > 100, "{s}");
    for line in rest.lines().filter(|l| l.contains("tx/s")) {
        let tps: f64 = line.split(" tx/s").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(tps < 1e7, "{line}");
    }
}

#[test]
fn unwritable_outputs_are_refused_at_start() {
    let d = tmpdir("unwritable");
    let pcap = empty_pcap(&d);
    let pcap = pcap.to_str().unwrap();
    for (flag, needle) in [
        ("--accepted-ids", "accepted ids /nonexistent/dir/x"),
        ("--summary-json", "summary json /nonexistent/dir/x.tmp"),
    ] {
        // A socket node: refused before it listens.
        let args =
            ["node", "--backend", "recvmmsg", "--listen", "127.0.0.1:0", "--pin", "false", flag, "/nonexistent/dir/x"];
        let o = attnet(&args, secs(10));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(needle), "{err}");
        assert!(!err.contains("listening on"), "refused before listening: {err}");
        let o = attnet(&["node", "--backend", "pcap", "--pcap", pcap, flag, "/nonexistent/dir/x"], secs(10));
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
    }
    // A summary file is written whole at the end, nothing left beside it.
    let out = d.join("summary.json");
    let o = attnet(&["node", "--backend", "pcap", "--pcap", pcap, "--summary-json", out.to_str().unwrap()], secs(10));
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(printed["packets"], written["packets"]);
    assert!(!d.join("summary.json.tmp").exists());
}

#[test]
fn numeric_options_out_of_range_are_refused() {
    let d = tmpdir("numeric");
    let pcap = empty_pcap(&d);
    let pcap = pcap.to_str().unwrap();
    for (flag, value, key) in [
        ("--duration", "1e19", "`duration_s`"),
        ("--duration", "1e30", "`duration_s`"),
        ("--duration", "0", "`duration_s`"),
        ("--duration", "NaN", "`duration_s`"),
        ("--ring-depth", "1000000000000", "`ring_depth`"),
        ("--ring-depth", "0", "`ring_depth`"),
        ("--cores", "65", "`cores`"),
        ("--shards", "100000", "`shards`"),
        ("--block-interval", "0", "`block_interval_ms`"),
        ("--block-interval", "18446744073709551615", "`block_interval_ms`"),
        ("--block-max-txs", "4000000000", "`block_max_txs`"),
        ("--loop", "0", "`loop`"),
        ("--port", "0", "`port`"),
        ("--rcvbuf", "99999999999", "`rcvbuf`"),
        ("--uring-buffers", "3", "`uring_buffers`"),
    ] {
        let o = attnet(&["node", "--backend", "pcap", "--pcap", pcap, flag, value], secs(10));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        let range = err.contains("..=") || err.contains("in (0, 1000000000]");
        assert!(err.contains(key) && range, "{flag} {value}: the key and its range: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // The same keys in a file.
    let cfg = d.join("n.toml");
    for (text, key) in [
        ("duration_s = 1e19\n", "`duration_s`"),
        ("ring_depth = 100000\n", "`ring_depth`"),
        ("[dpdk]\nmbufs = 0\n", "`dpdk.mbufs`"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let o = attnet(&["node", "--config", cfg.to_str().unwrap(), "--backend", "pcap", "--pcap", pcap], secs(10));
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains(key), "{text}: {}", stderr(&o));
    }
    // The largest duration allowed is accepted (a capture ends the run).
    let o = attnet(&["node", "--backend", "pcap", "--pcap", pcap, "--duration", "1e9"], secs(10));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn network_id_must_match_the_genesis_file() {
    let d = tmpdir("network-id");
    let pcap = empty_pcap(&d);
    let genesis = d.join("genesis.json");
    std::fs::write(&genesis, r#"{"network_id": 7, "accounts": []}"#).unwrap();
    let base = ["node", "--backend", "pcap", "--pcap", pcap.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()];
    let mut args = base.to_vec();
    args.extend_from_slice(&["--network-id", "8"]);
    let o = attnet(&args, secs(10));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`network_id`: 8 differs from the network id 7"), "{err}");
    let mut args = base.to_vec();
    args.extend_from_slice(&["--network-id", "7"]);
    assert!(attnet(&args, secs(10)).status.success());
    assert!(attnet(&base, secs(10)).status.success(), "without --network-id the file's id is used");
}

#[test]
fn decode_refuses_an_over_long_line_by_number() {
    let d = tmpdir("decode");
    let keys = d.join("keys.json");
    std::fs::write(
        &keys,
        format!(r#"{{"sessions": [{{"id": 1, "c2r": "{}", "r2c": "{}"}}]}}"#, "11".repeat(32), "22".repeat(32)),
    )
    .unwrap();
    let mut c = Command::new(BIN)
        .args(["decode", "--keys", keys.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = c.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // A short line, then a line of 1 MB; the node may stop reading early.
        let _ = input.write_all(b"00\n");
        let _ = input.write_all(&vec![b'a'; 1 << 20]);
        let _ = input.write_all(b"\n");
    });
    let (o, _) = wait_bounded(c, secs(10));
    let o = o.expect("decode finished");
    let _ = writer.join();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("stdin line 2: longer than"), "{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1, "line 1 was judged");
}

/// `attnet check-config`: the example passes; a file with several
/// problems gets every one (key, value, range, fix) and exit 2; a node
/// started on it refuses with the same lines.
#[test]
fn check_config_reports_every_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../attnet.example.toml");
    let o = Command::new(BIN).args(["check-config", example]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).ends_with(": ok\n"));
    let d = tmpdir("check-config");
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "cores = 99\nring_depth = 0\nthrottle_burst = 0\nrcvbuf = 4294967296\nmetrics = \"localhost\"\n\
         log_level = \"loud\"\n",
    )
    .unwrap();
    let o = Command::new(BIN).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for want in [
        "config key `cores`: 99 is not in 1..=64; set a value in 1..=64",
        "config key `ring_depth`: 0 is not in 1..=4096",
        "config key `throttle_burst`: 0 is not in 1..=10000000",
        "config key `rcvbuf`: 4294967296 is not in 0..=1073741824",
        "config key `metrics`: `localhost` is not IP:PORT",
        "config key `log_level`: `loud` is not a log filter",
        "6 problem(s)",
    ] {
        assert!(err.contains(want), "{want} missing from:\n{err}");
    }
    let n = Command::new(BIN).args(["node", "--backend", "pcap", "--pcap", "/dev/null", "--config"]).arg(&bad).output();
    let n = n.unwrap();
    assert_ne!(n.status.code(), Some(0));
    let nerr = String::from_utf8_lossy(&n.stderr);
    assert!(nerr.contains("`cores`: 99") && nerr.contains("`rcvbuf`: 4294967296"), "{nerr}");
    std::fs::remove_dir_all(d).unwrap();
}

/// `deploy/attnet.service` passes `systemd-analyze verify` without a
/// warning (with the binary path pointed at the built one), and a unit
/// with a bad value does not: the check can fail. `systemd` is one of
/// `scripts/deps.sh`'s packages.
#[test]
fn the_service_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/attnet.service")).unwrap();
    assert!(unit.contains("ExecStartPre=/usr/local/bin/attnet check-config"));
    for key in ["CapabilityBoundingSet=", "LimitMEMLOCK=", "ProtectSystem=strict", "Restart=on-failure"] {
        assert!(unit.contains(key), "{key}");
    }
    let d = tmpdir("unit");
    let verify = |text: &str| {
        let p = d.join("attnet.service");
        std::fs::write(&p, text.replace("/usr/local/bin/attnet", BIN)).unwrap();
        let o = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&p)
            .output()
            .expect("systemd-analyze (Debian package systemd, installed by scripts/deps.sh)");
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, err) = verify(&unit);
    assert!(ok && err.trim().is_empty(), "{err}");
    let (_, err) = verify(&unit.replace("Restart=on-failure", "Restart=sometimes"));
    assert!(err.contains("restart specifier"), "a bad value went unnoticed: {err}");
    std::fs::remove_dir_all(d).unwrap();
}
