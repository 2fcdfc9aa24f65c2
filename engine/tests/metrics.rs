//! The running node seen by an operator, through the built binary: the
//! Prometheus endpoint scraped by an HTTP client during a run and parsed
//! by a Prometheus text-format parser, its counters equal to the summary's
//! at the end; `/status`; `attnet top --once --json` on the admin socket;
//! JSON logs; SIGHUP reloading sessions, budgets and the log level while
//! traffic flows. Nodes listen on loopback, traffic is bounded, and every
//! node is killed after a bounded time whatever happens.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod summary_common;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-metrics-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A node process, killed when dropped, with its stderr lines on a channel.
struct Node {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let mut c =
            Command::new(BIN).arg("node").args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let err = BufReader::new(c.stderr.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Node { child: Some(c), lines, seen: Vec::new() }
    }

    /// Waits (at most 20 s) for a stderr line containing `what`; returns it.
    fn wait_line(&mut self, what: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(l.clone());
                if l.contains(what) {
                    return l;
                }
            }
        }
        panic!("no line with {what:?} in 20 s; saw {:#?}", self.seen);
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// SIGTERM, then waits (at most 20 s) for the exit.
    fn stop(&mut self) {
        self.signal("-TERM");
        let mut c = self.child.take().unwrap();
        let until = Instant::now() + Duration::from_secs(20);
        while c.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let _ = c.kill();
                panic!("the node did not stop on SIGTERM within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(c.wait().unwrap().success());
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// pktgen's keys and genesis for 64 accounts (4 sessions).
fn keys(d: &Path) -> (PathBuf, PathBuf) {
    let (k, g) = (d.join("keys.json"), d.join("genesis.json"));
    let o = Command::new(BIN)
        .args(["pktgen", "--quiet", "--seed", "7", "--accounts", "64", "--count", "1", "--keys-out"])
        .arg(&k)
        .arg("--genesis-out")
        .arg(&g)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (k, g)
}

/// Sends `count` datagrams of pktgen's traffic (`bad` of them hostile) to
/// `port`, with its own seed for the transactions.
fn send(keys: &Path, port: u16, count: u32, bad: &str, seed: &str) {
    let o = Command::new(BIN)
        .args(["pktgen", "--quiet", "--seed", seed, "--accounts", "64", "--keys"])
        .arg(keys)
        .args(["--out", &format!("udp:127.0.0.1:{port}"), "--pps", "4000", "--bad", bad])
        .args(["--count", &count.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn get(url: &str) -> String {
    ureq::get(url).call().unwrap().body_mut().read_to_string().unwrap()
}

/// Samples by metric name.
struct Scraped(HashMap<String, Vec<prometheus_parse::Sample>>);

impl Scraped {
    fn of(base: &str) -> Scraped {
        let text = get(&format!("{base}/metrics"));
        let s = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let mut m: HashMap<String, Vec<prometheus_parse::Sample>> = HashMap::new();
        for x in s.samples {
            m.entry(x.metric.clone()).or_default().push(x);
        }
        Scraped(m)
    }

    fn value(x: &prometheus_parse::Sample) -> f64 {
        match &x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => *v,
            prometheus_parse::Value::Untyped(v) => *v,
            v => panic!("{} is {v:?}", x.metric),
        }
    }

    /// The sum over the series of `name` whose `label` (if given) has value
    /// `want`.
    fn sum(&self, name: &str, label: Option<(&str, &str)>) -> u64 {
        let xs = self.0.get(name).unwrap_or_else(|| panic!("no {name}"));
        xs.iter().filter(|x| label.is_none_or(|(k, v)| x.labels.get(k) == Some(v))).map(|x| Self::value(x) as u64).sum()
    }

    /// `name{label=k}` for every `k` of a summary section `{k: n}` equals `n`
    /// (`adjust` added for some keys).
    fn equal_by(&self, name: &str, label: &str, section: &Value, adjust: &dyn Fn(&str) -> u64) {
        for (k, n) in section.as_object().unwrap() {
            let got = self.sum(name, Some((label, k))) + adjust(k);
            assert_eq!(got, n.as_u64().unwrap(), "{name}{{{label}={k}}}");
        }
    }
}

#[test]
fn metrics_are_the_summary_while_the_node_runs() {
    let d = tmpdir("scrape");
    let (k, g) = keys(&d);
    let port = free_port();
    let (admin, summary) = (d.join("admin.sock"), d.join("summary.json"));
    let mut node = Node::start(&[
        "--backend",
        "recvmmsg",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--cores",
        "1",
        "--keys",
        k.to_str().unwrap(),
        "--genesis",
        g.to_str().unwrap(),
        "--metrics",
        "127.0.0.1:0",
        "--admin",
        admin.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
        "--duration",
        "60",
    ]);
    let line = node.wait_line("metrics on http://");
    let base = line.split("metrics on ").nth(1).unwrap().split("/metrics").next().unwrap().to_string();
    node.wait_line("ready:");
    send(&k, port, 3000, "0.05", "7");
    // The cores publish every 100 ms and the control thread every 100 ms:
    // wait until two scrapes 300 ms apart agree.
    let until = Instant::now() + Duration::from_secs(20);
    let mut last = (0, 0, 0);
    let m = loop {
        let m = Scraped::of(&base);
        let now = (
            m.sum("attnet_packets_received_total", None),
            m.sum("attnet_ledger_submitted_total", None),
            m.sum("attnet_blocks_total", None),
        );
        if now == last && now.0 == 3000 {
            break m;
        }
        assert!(Instant::now() < until, "the counters never settled at 3000 datagrams: {now:?}");
        last = now;
        std::thread::sleep(Duration::from_millis(300));
    };
    // Every counter is a `_total` counter; per-core series all carry `core`.
    for (name, xs) in &m.0 {
        for x in xs {
            if matches!(x.value, prometheus_parse::Value::Counter(_)) {
                assert!(name.ends_with("_total"), "counter {name}");
            }
        }
        let cored = xs.iter().filter(|x| x.labels.get("core").is_some()).count();
        assert!(cored == 0 || cored == xs.len(), "{name}: some series without a core label");
    }
    let status: Value = serde_json::from_str(&get(&format!("{base}/status"))).unwrap();
    assert_eq!(status["backend"], "recvmmsg");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["finalized_height"].as_u64(), Some(m.sum("attnet_finalized_height", None)));
    assert!(status["height"].as_u64().unwrap() >= status["finalized_height"].as_u64().unwrap());
    match ureq::get(&format!("{base}/nothing")).call() {
        Err(ureq::Error::StatusCode(404)) => {}
        other => panic!("/nothing answered {other:?}"),
    }
    // attnet top's snapshot of the same counters.
    let o = Command::new(BIN).args(["top", "--once", "--json", "--admin"]).arg(&admin).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(top["summary"]["frames"]["received"].as_u64(), Some(m.sum("attnet_frames_received_total", None)));
    assert_eq!(top["cores"][0]["name"], "attnet-rx0");
    assert_eq!(top["rates"]["datagrams_per_s"].as_f64(), Some(0.0), "no traffic in the last second");
    // The Grafana dashboard uses only series the node exports.
    let scrape = d.join("scrape.txt");
    std::fs::write(&scrape, get(&format!("{base}/metrics"))).unwrap_or_else(|e| panic!("{e}"));
    let check = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/check_dashboard.py");
    let o = Command::new("python3").arg(check).arg(&scrape).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    // The end: the summary holds what the last scrape said.
    node.stop();
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    summary_common::assert_balanced(&s);
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(m.sum("attnet_packets_received_total", None), n(&s["packets"]["received"]));
    assert_eq!(m.sum("attnet_frames_received_total", None), n(&s["frames"]["received"]));
    assert_eq!(m.sum("attnet_frames_accepted_total", None), n(&s["frames"]["accepted"]));
    assert_eq!(m.sum("attnet_txs_seen_total", None), n(&s["txs"]["seen"]));
    let late = m.sum("attnet_txs_late_duplicates_total", None);
    assert_eq!(m.sum("attnet_txs_accepted_total", None) - late, n(&s["txs"]["accepted"]));
    let zero = |_: &str| 0;
    m.equal_by("attnet_frames_dropped_total", "reason", &s["frames"]["dropped"], &zero);
    m.equal_by("attnet_txs_dropped_total", "reason", &s["txs"]["dropped"], &|r| {
        if r == "duplicate" {
            late
        } else {
            0
        }
    });
    m.equal_by("attnet_packets_not_att_total", "reason", &s["packets"]["not_att"], &zero);
    assert!(n(&s["frames"]["dropped"]["auth_failed"]) > 0, "the hostile mix reached the node: {s}");
    assert_eq!(m.sum("attnet_ledger_submitted_total", None), n(&s["ledger"]["submitted"]));
    assert_eq!(m.sum("attnet_ledger_applied_total", None), n(&s["ledger"]["applied"]));
    m.equal_by("attnet_ledger_refused_total", "reason", &s["ledger"]["dropped"], &zero);
    assert_eq!(m.sum("attnet_blocks_total", None), n(&s["blocks"]));
    assert_eq!(m.sum("attnet_finalized_height", None), n(&s["height"]));
    m.equal_by("attnet_receipts_total", "kind", &s["receipts"], &zero);
    m.equal_by("attnet_handshake_refused_total", "reason", &s["handshake"]["refused"], &zero);
    m.equal_by("attnet_queries_total", "outcome", &s["queries"], &zero);
    for e in ["recently_refused", "throttles", "throttles_lost", "forgets_sent", "forgets_lost"] {
        assert_eq!(m.sum("attnet_control_events_total", Some(("event", e))), n(&s["control"][e]), "{e}");
    }
    // Histograms: buckets rise to +Inf, which is the count; ingest counts
    // every transaction pushed to a shard ring, inclusion every one
    // committed.
    for (name, count) in [
        ("attnet_ingest_latency_seconds", m.sum("attnet_txs_accepted_total", None)),
        ("attnet_inclusion_latency_seconds", n(&s["ledger"]["applied"])),
        ("attnet_finality_latency_seconds", n(&s["blocks"])),
    ] {
        let x = &m.0[name][0];
        let prometheus_parse::Value::Histogram(b) = &x.value else { panic!("{name} is {:?}", x.value) };
        assert!(b.windows(2).all(|w| w[0].count <= w[1].count && w[0].less_than < w[1].less_than), "{name}: {b:?}");
        let inf = b.last().unwrap();
        assert!(inf.less_than.is_infinite() && inf.count as u64 == count, "{name}: {b:?} against {count}");
    }
    let info = &m.0["attnet_node_info"][0];
    assert_eq!(info.labels.get("backend"), Some("recvmmsg"));
    assert!(info.labels.get("avx2").is_some() && info.labels.get("ed25519").is_some());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sighup_reloads_sessions_budgets_and_the_log_level_while_traffic_flows() {
    let d = tmpdir("reload");
    let (k, g) = keys(&d);
    // The node starts with two of pktgen's four sessions.
    let all: Value = serde_json::from_str(&std::fs::read_to_string(&k).unwrap()).unwrap();
    let two = serde_json::json!({"sessions": all["sessions"].as_array().unwrap()[..2]});
    let node_keys = d.join("node-keys.json");
    std::fs::write(&node_keys, two.to_string()).unwrap();
    // With a data directory: a node key of its own (handshakes on), the
    // admin socket at data/admin.sock, and the added sessions' windows
    // persisted by the store.
    let data = d.join("data");
    let port = free_port();
    let conf = d.join("node.toml");
    let write_conf = |extra: &str| {
        let text = format!(
            "backend = \"recvmmsg\"\nlisten = \"127.0.0.1:{port}\"\ncores = 1\nkeys = \"{}\"\ngenesis = \"{}\"\n\
             metrics = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nduration_s = 60\nlog_format = \"json\"\n{extra}",
            node_keys.display(),
            g.display(),
            data.display()
        );
        std::fs::write(&conf, text).unwrap();
    };
    write_conf("");
    let mut node = Node::start(&["--config", conf.to_str().unwrap()]);
    let line = node.wait_line("metrics on http://");
    let log: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    assert_eq!(log["level"], "INFO");
    let base =
        log["message"].as_str().unwrap().split("metrics on ").nth(1).unwrap().replace("/metrics and /status", "");
    node.wait_line("ready:");
    let settled = |want: u64| {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let m = Scraped::of(&base);
            if m.sum("attnet_frames_received_total", None) == want {
                return m;
            }
            assert!(Instant::now() < until, "frames never reached {want}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    send(&k, port, 400, "0", "7");
    let before = settled(400);
    let unknown = before.sum("attnet_frames_dropped_total", Some(("reason", "unknown_session")));
    assert!(unknown > 100, "half the sessions are unknown before the reload: {unknown}");
    assert_eq!(before.sum("attnet_frames_accepted_total", None) + unknown, 400);
    // Every session, a tighter budget, another level, and a key that
    // needs a restart.
    std::fs::write(&node_keys, all.to_string()).unwrap();
    write_conf("log_level = \"debug\"\nthrottle_per_s = 50\nhello_source_rate = 5\nshards = 2\n");
    node.signal("-HUP");
    node.wait_line("session 3 installed");
    node.wait_line("session 2 installed");
    node.wait_line("budgets 50 a second");
    node.wait_line("HELLO limits: cookies above 1000/s, 5/s per source");
    node.wait_line("SIGHUP: log_level debug");
    let restart = node.wait_line("only applied by a restart");
    assert!(restart.contains("shards") && !restart.contains("keys"), "{restart}");
    send(&k, port, 400, "0", "8");
    let after = settled(800);
    assert_eq!(
        after.sum("attnet_frames_dropped_total", Some(("reason", "unknown_session"))),
        unknown,
        "no frame of the added sessions is unknown after the reload"
    );
    assert_eq!(after.sum("attnet_frames_accepted_total", None), 800 - unknown);
    assert_eq!(after.sum("attnet_sessions_configured", None), 4);
    let o = Command::new(BIN).args(["top", "--once", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let top: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(top["sessions"]["configured"], 4, "{top}");
    assert_eq!(top["summary"]["frames"]["received"], 800, "{top}");
    // A file with a problem is refused whole; the node keeps running.
    write_conf("shards = 0\n");
    node.signal("-HUP");
    node.wait_line("reload refused");
    send(&k, port, 100, "0", "9");
    settled(900);
    node.stop();
    let _ = std::fs::remove_dir_all(&d);
}
