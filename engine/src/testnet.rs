//! `attnet testnet`: a local network of validators, each a separate
//! `attnet node` process on loopback, with its keys, genesis, data
//! directories and configuration generated; optional load from the
//! traffic generator; one live line per node on stderr; a summary on
//! stdout and in `DIR/summary.json` (`docs/CONSENSUS.md`, "attnet
//! testnet").
//!
//! Load (`--clients`): with `spread` (the default) each node's generator
//! sends it its own slice of the accounts, and forwarding between the
//! validators gives every node the rest; each node's clients get their
//! RECEIPTs from it. With `same` every node receives the whole stream, as
//! if every client sent to every validator.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::keygen;

/// The generator's plan: the same seed, sessions and accounts for the
/// genesis and for every node's stream.
const SEED: &str = "7";
const SESSIONS: &str = "4";
const ACCOUNTS: &str = "1024";

#[derive(Debug, clap::Args)]
pub struct TestnetArgs {
    /// Validators, each a separate node process (2 to 16).
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Seconds the network runs; load stops 3 s before the end so that
    /// its last transactions can become final.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Transactions per second offered (0: none): distinct transactions,
    /// however `--clients` spreads them.
    #[arg(long, default_value_t = 0)]
    pub load: u64,
    /// How the load reaches the validators: `spread`, each node its own
    /// slice of the accounts at load/N tx/s (forwarding does the rest), or
    /// `same`, every node the whole stream.
    #[arg(long, default_value = "spread", value_parser = ["spread", "same"])]
    pub clients: String,
    /// Keep keys, genesis, data directories, logs and summaries in DIR
    /// (created; it must not hold a testnet already). Without it they go
    /// to a temporary directory removed at the end.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Block interval, milliseconds.
    #[arg(long, default_value_t = 200)]
    pub block_interval: u64,
}

/// What a node's live line said last.
#[derive(Debug, Clone, Default)]
struct LiveView {
    line: String,
    addr: Option<SocketAddr>,
    ready: bool,
    exited: bool,
}

struct Proc {
    child: Child,
    view: Arc<Mutex<LiveView>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("testnet: the attnet binary: {e}"))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Loopback TCP ports free now, for the validator links.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let ls: Vec<TcpListener> =
        (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    ls.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<String, String> {
    let o = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if !o.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn generator(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.args(["pktgen", "--seed", SEED, "--sessions", SESSIONS, "--accounts", ACCOUNTS]);
    c
}

/// Starts node `i` and a thread that keeps its last live line.
fn start_node(exe: &Path, dir: &Path, i: usize, block_interval: u64) -> Result<Proc, String> {
    let log = std::fs::File::create(dir.join(format!("node{i}.log"))).map_err(|e| format!("node{i}.log: {e}"))?;
    let mut child = Command::new(exe)
        .args(["node", "--backend", "recvmmsg", "--listen", "127.0.0.1:0", "--cores", "1", "--pin", "false"])
        .args(["--keys", &s(&dir.join("keys.json")), "--genesis", &s(&dir.join("genesis.json"))])
        .args(["--node-key", &s(&dir.join(format!("node{i}.key")))])
        .args(["--data-dir", &s(&dir.join(format!("data{i}")))])
        .args(["--block-interval", &block_interval.to_string(), "--receipts", "true", "--live", "true"])
        .args(["--summary-json", &s(&dir.join(format!("summary{i}.json")))])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("node{i}: {e}"))?;
    let err = child.stderr.take().ok_or("node stderr")?;
    let view = Arc::new(Mutex::new(LiveView::default()));
    let v = view.clone();
    let mut keep = std::fs::File::create(dir.join(format!("node{i}.stderr"))).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = std::io::Write::write_all(&mut keep, format!("{line}\n").as_bytes());
            let Ok(mut v) = v.lock() else { break };
            if let Some((_, a)) = line.trim().rsplit_once("listening on ") {
                v.addr = a.parse().ok();
            }
            if line.contains("ready:") {
                v.ready = true;
            }
            if line.contains(" height ") && line.contains("tx/s") {
                v.line = line;
            }
        }
        if let Ok(mut v) = v.lock() {
            v.exited = true;
        }
    });
    Ok(Proc { child, view })
}

/// The word after `key` in a live line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next().unwrap_or("-");
        }
    }
    "-"
}

/// The number before `unit` in a live line (`1234 tx/s`).
fn before<'a>(line: &'a str, unit: &str) -> &'a str {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find(|w| w.get(1) == Some(&unit)).and_then(|w| w.first().copied()).unwrap_or("-")
}

fn live_line(i: usize, v: &LiveView) -> String {
    if v.exited {
        return format!("testnet: node{i} exited");
    }
    let l = &v.line;
    format!(
        "testnet: node{i} height {} round_height {} peers {} {} tx/s | finality p99 {} us",
        field(l, "height"),
        field(l, "round_height"),
        field(l, "peers"),
        before(l, "tx/s"),
        field(l, "inclusion"),
    )
}

fn stop(p: &mut Proc, name: &str) -> Result<(), String> {
    if let Ok(None) = p.child.try_wait() {
        let _ = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status();
    }
    let until = Instant::now() + Duration::from_secs(30);
    while p.child.try_wait().map_err(|e| format!("{name}: {e}"))?.is_none() {
        if Instant::now() > until {
            let _ = p.child.kill();
            return Err(format!("{name} did not stop within 30 s of SIGTERM"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// CPU seconds (user + system) a running process has used, from
/// `/proc/PID/stat`; `None` once it has exited or where unreadable.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // /proc reports clock ticks of USER_HZ, which the kernel's ABI fixes
    // at 100 a second.
    Some(ticks / 100.0)
}

fn read_json(p: &Path) -> Result<Value, String> {
    let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))
}

/// What the nodes' own block logs say.
struct Chains {
    /// Heights where two nodes hold different final blocks.
    conflicts: u64,
    /// The highest height any node reached.
    top: u64,
    /// Transactions in final blocks (the longest chain).
    txs: u64,
    /// Transactions per second of block time: the transactions of every
    /// block after the first one holding any, over the time from that
    /// block's timestamp to the last's.
    tx_per_s: Option<f64>,
}

/// Finalized blocks of equal height with different hashes across the
/// nodes' own block logs, the heights compared, and the rate the
/// transactions became final at.
fn chains(dirs: &[PathBuf]) -> Result<Chains, String> {
    let mut tips = Vec::new();
    for d in dirs {
        let st = crate::query::ask(d, &json!({"q": "status"}))?;
        tips.push(st["height"].as_u64().unwrap_or(0));
    }
    let top = tips.iter().copied().max().unwrap_or(0);
    let mut conflicts = 0;
    let mut loaded: Vec<(u64, u64)> = Vec::new();
    for h in 1..=top {
        let mut seen: Vec<String> = Vec::new();
        let mut first = true;
        for (d, tip) in dirs.iter().zip(&tips) {
            if *tip < h {
                continue;
            }
            let b = crate::query::ask(d, &json!({"q": "block", "height": h}))?;
            let hash = b["hash"].as_str().ok_or_else(|| format!("{}: block {h}: {b}", d.display()))?.to_string();
            if !seen.contains(&hash) {
                seen.push(hash);
            }
            let n = b["tx_count"].as_u64().unwrap_or(0);
            if first && (n > 0 || !loaded.is_empty()) {
                loaded.push((b["timestamp_ms"].as_u64().unwrap_or(0), n));
            }
            first = false;
        }
        if seen.len() > 1 {
            conflicts += 1;
        }
    }
    // Trailing empty blocks are not part of the load.
    while loaded.last().is_some_and(|b| b.1 == 0) {
        loaded.pop();
    }
    let txs = loaded.iter().map(|b| b.1).sum();
    let tx_per_s = match (loaded.first(), loaded.last()) {
        (Some(a), Some(z)) if z.0 > a.0 => Some((txs - a.1) as f64 * 1000.0 / (z.0 - a.0) as f64),
        _ => None,
    };
    Ok(Chains { conflicts, top, txs, tx_per_s })
}

pub fn run(a: TestnetArgs) -> Result<(), String> {
    if !(2..=16).contains(&a.nodes) {
        return Err(format!("testnet: --nodes {} (2 to 16)", a.nodes));
    }
    if !(a.duration >= 5.0 && a.duration <= 3600.0) {
        return Err(format!("testnet: --duration {} (5 to 3600 seconds)", a.duration));
    }
    let exe = exe()?;
    let (dir, temporary) = match &a.keep {
        Some(d) => {
            if d.join("genesis.json").exists() {
                return Err(format!("testnet: {} already holds a testnet; choose an empty directory", d.display()));
            }
            (d.clone(), false)
        }
        None => (std::env::temp_dir().join(format!("attnet-testnet-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("testnet: {}: {e}", dir.display()))?;
    let res = run_in(&a, &exe, &dir);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let summary = res?;
    println!("{}", serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?);
    let c = summary["conflicts"].as_u64().unwrap_or(0);
    if c > 0 {
        return Err(format!("testnet: {c} conflicting heights"));
    }
    if let Some(e) = summary["error"].as_str() {
        return Err(format!("testnet: {e}"));
    }
    Ok(())
}

fn run_in(a: &TestnetArgs, exe: &Path, dir: &Path) -> Result<Value, String> {
    let n = a.nodes;
    // Keys, link ports, and a genesis listing every validator.
    let mut publics = Vec::new();
    for i in 0..n {
        let k = keygen::generate()?;
        keygen::write_new(&dir.join(format!("node{i}.key")), &k)?;
        publics.push(hex::encode(k.public));
    }
    let ports = free_ports(n)?;
    let mut g = generator(exe);
    g.args(["--keys-out", &s(&dir.join("keys.json")), "--genesis-out", &s(&dir.join("genesis.json"))]);
    for (k, p) in publics.iter().zip(&ports) {
        g.args(["--validator", &format!("{k}@127.0.0.1:{p}")]);
    }
    run_ok(&mut g, "attnet pktgen --genesis-out")?;

    let started = Instant::now();
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(start_node(exe, dir, i, a.block_interval)?);
    }
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let views: Vec<LiveView> = nodes.iter().map(|p| p.view.lock().map(|v| v.clone()).unwrap_or_default()).collect();
        if let Some(i) = views.iter().position(|v| v.exited) {
            let err = std::fs::read_to_string(dir.join(format!("node{i}.stderr"))).unwrap_or_default();
            return Err(format!("node{i} exited at start: {}", err.trim()));
        }
        if views.iter().all(|v| v.ready && v.addr.is_some()) {
            break;
        }
        if Instant::now() > until {
            return Err("the nodes were not ready within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let addrs: Vec<SocketAddr> =
        nodes.iter().filter_map(|p| p.view.lock().ok().and_then(|v| v.addr)).collect::<Vec<_>>();
    eprintln!("testnet: {n} validators in {} ({})", dir.display(), if a.load > 0 { "with load" } else { "idle" });

    // Load: a slice of the accounts for each node, or the same stream.
    let load_secs = (a.duration - 3.0).max(1.0);
    let spread = a.clients == "spread";
    let pps = if spread { a.load.div_ceil(n as u64) } else { a.load };
    let mut gens = Vec::new();
    if a.load > 0 {
        for (i, addr) in addrs.iter().enumerate() {
            let mut c = generator(exe);
            if spread {
                c.args(["--slice", &format!("{i}/{n}")]);
            }
            let c = c
                .args(["--out", &format!("udp:{addr}"), "--pps", &pps.to_string()])
                .args(["--duration", &format!("{load_secs}")])
                .args(["--txs-per-frame", "1", "--frames-per-datagram", "1", "--bad", "0"])
                .args(["--receipts", "--receipt-wait", "3", "--quiet"])
                .args(["--json", &s(&dir.join(format!("load{i}.json")))])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("attnet pktgen: {e}"))?;
            gens.push(c);
        }
    }
    let end = started + Duration::from_secs_f64(a.duration);
    let mut gen_cpu = vec![0.0f64; gens.len()];
    let mut next_line = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
        for (c, g) in gen_cpu.iter_mut().zip(&gens) {
            if let Some(t) = cpu_seconds(g.id()) {
                *c = t;
            }
        }
        if Instant::now() >= next_line {
            next_line += Duration::from_secs(1);
            for (i, p) in nodes.iter().enumerate() {
                let v = p.view.lock().map(|v| v.clone()).unwrap_or_default();
                eprintln!("{}", live_line(i, &v));
            }
        }
    }
    for mut g in gens {
        let until = Instant::now() + Duration::from_secs(30);
        while g.try_wait().map_err(|e| e.to_string())?.is_none() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = g.kill();
        let _ = g.wait();
    }
    // CPU the nodes used, for where the time went.
    let node_cpu: Vec<Option<f64>> = nodes.iter().map(|p| cpu_seconds(p.child.id())).collect();
    // Peers as the nodes saw them while all ran.
    let peers: Vec<Option<u64>> =
        nodes.iter().map(|p| p.view.lock().ok().and_then(|v| field(&v.line, "peers").parse().ok())).collect();
    // All stop together, so none loses its peers while it still votes.
    for p in &nodes {
        let _ = Command::new("kill").args(["-TERM", &p.child.id().to_string()]).status();
    }
    let mut errors = Vec::new();
    for (i, p) in nodes.iter_mut().enumerate() {
        if let Err(e) = stop(p, &format!("node{i}")) {
            errors.push(e);
        }
    }
    let duration = started.elapsed().as_secs_f64();
    let dirs: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("data{i}"))).collect();
    let c = chains(&dirs)?;
    let mut list = Vec::new();
    for i in 0..n {
        let sm = read_json(&dir.join(format!("summary{i}.json"))).unwrap_or(Value::Null);
        let load = read_json(&dir.join(format!("load{i}.json"))).unwrap_or(Value::Null);
        let net = &sm["consensus"]["network"];
        let secs = sm["duration_s"].as_f64().unwrap_or(0.0).max(1e-3);
        let lat = &load["receipts"]["latency_us"];
        if let Some(e) = sm["error"].as_str() {
            errors.push(format!("node{i}: {e}"));
        }
        if let Some(h) = net["halted"].as_str() {
            errors.push(format!("node{i}: consensus halted: {h}"));
        }
        list.push(json!({
            "node": i,
            "node_key": publics.get(i),
            "height": sm["height"],
            "round_height": net["round_height"],
            "peers": peers.get(i).copied().flatten(),
            "blocks": sm["blocks"],
            "finalized_txs": sm["storage"]["txs"],
            "tx_per_s": sm["storage"]["txs"].as_f64().map(|t| t / secs),
            "finality_p50_ms": lat["p50"].as_f64().map(|u| u / 1e3),
            "finality_p99_ms": lat["p99"].as_f64().map(|u| u / 1e3),
            "receipts": load["receipts"]["matched"],
            "offered": load["sent"]["txs"],
            "cpu_s": node_cpu.get(i).copied().flatten(),
            "replica": net["replica"],
        }));
    }
    let offered: Vec<u64> = list.iter().map(|l| l["offered"].as_u64().unwrap_or(0)).collect();
    let offered_txs = if spread { offered.iter().sum() } else { offered.first().copied().unwrap_or(0) };
    let mut summary = json!({
        "clients": a.clients,
        "offered_txs": offered_txs,
        "nodes": list,
        "conflicts": c.conflicts,
        "heights_compared": c.top,
        "finalized_txs": c.txs,
        "finalized_tx_per_s": c.tx_per_s,
        "duration_s": duration,
        "load_tx_per_s": a.load,
        "block_interval_ms": a.block_interval,
        "load_cpu_s": gen_cpu.iter().sum::<f64>(),
        "dir": s(dir),
    });
    if !errors.is_empty() {
        summary["error"] = json!(errors.join("; "));
    }
    std::fs::write(dir.join("summary.json"), summary.to_string()).map_err(|e| format!("summary.json: {e}"))?;
    Ok(summary)
}
