//! `loopback`: the traffic generator (`attnet-pktgen`) against `attnet
//! node` on this machine. Capacity C first: the generator writes a pcap of
//! single-transaction frames, `attnet node --backend pcap` replays it, and
//! C = accepted transactions / the node's duration. Then the node on
//! io_uring on 127.0.0.1 and the generator over UDP at 25, 50, 75 and
//! 100 % of C (one transaction per frame, one frame per datagram, so
//! datagrams/s = transactions/s), with receipts: offered against accepted
//! transactions/s, and submit→inclusion latency from the receipts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Ctx;
use crate::report::{Row, Section};

/// Loads, in percent of the capacity C.
pub const LOADS: [u32; 4] = [25, 50, 75, 100];

/// Loads at which inclusion latency is also measured with every burst
/// verified as it comes (`--verify-batch 1`), against the default batches.
pub const LATENCY_LOADS: [u32; 2] = [25, 75];

/// Goal: committed transactions per second against vCPUs × the batch
/// ceiling (the control thread, the ledger and Merkle roots share them).
pub const GOAL_COMMITTED: f64 = 0.75;

/// Goal: submit → finality p99 with the node as the only validator, at
/// 50 % of C, at most the block interval plus this (ms).
pub const FINALITY_SLACK_MS: f64 = 100.0;

/// The node's default block interval (ms).
const BLOCK_INTERVAL_MS: f64 = 200.0;

/// Goal: finalized transactions per second with the node as the only
/// validator (every block through the BFT engine) against the same capture
/// final at once.
pub const GOAL_ONE_VALIDATOR: f64 = 0.90;

const SEED: &str = "7";
const SESSIONS: &str = "4";
const ACCOUNTS: &str = "1024";

pub fn section(ctx: &Ctx) -> Section {
    if !ctx.pktgen.exists() {
        return Section::skipped(
            "loopback",
            format!("{} not found (cargo build --release -p pktgen)", ctx.pktgen.display()),
        );
    }
    if !ctx.attnet.exists() {
        return Section::skipped(
            "loopback",
            format!("{} not found (cargo build --release -p engine)", ctx.attnet.display()),
        );
    }
    let dir = ctx.work.join("loopback");
    let r = std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display())).and_then(|_| rows(ctx, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok((rows, secs)) => Section::measured(
            "loopback",
            format!(
                "attnet-pktgen (seed {SEED}, {SESSIONS} sessions, {ACCOUNTS} accounts, one transaction per frame, one \
                 frame per datagram, no malformed traffic, every transaction new) into attnet node. C is the capacity \
                 on the pcap backend with one data core (the generator's capture replayed: accepted transactions / \
                 node duration). Committed: the same capture replayed with one data core per vCPU (the control \
                 thread sharing a CPU), transactions applied by the ledger per second of the node's run, against \
                 vCPUs × one ed25519-zebra batch of 256 signatures (measured just before). One validator: the same \
                 replay under a genesis that lists the node as its only validator, so that every block is signed, \
                 voted and certified by the BFT engine, against the committed row (and at 50 % of C below, its \
                 submit→finality p99 against the block interval + 100 ms). Then the node on \
                 io_uring on 127.0.0.1 and the generator over UDP at 25-100 % of C for {secs} s each: accepted \
                 against offered transactions/s, and submit→inclusion latency from the generator's receipts; at 25 \
                 and 75 % also with every burst verified as it comes (--verify-batch 1): the batch budget \
                 (verify_budget_us, 0.5 ms) is to move inclusion p99 by no more than itself. On {} CPUs the \
                 generator, the data core, the control thread and the kernel share the machine: these rows are what \
                 this machine gives, not the engine's limit.",
                crate::report::machine::cores()
            ),
            rows,
        ),
        Err(e) => Section::skipped("loopback", e),
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{what} failed ({}): {}", out.status, err.trim().lines().last().unwrap_or("")));
    }
    Ok(())
}

fn read_json(p: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

fn num(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64().ok_or_else(|| format!("{what} missing"))
}

fn pktgen(ctx: &Ctx) -> Command {
    let mut c = Command::new(&ctx.pktgen);
    c.args(["--seed", SEED, "--sessions", SESSIONS, "--accounts", ACCOUNTS]);
    c
}

/// The rows and the seconds per load point.
fn rows(ctx: &Ctx, dir: &Path) -> Result<(Vec<Row>, f64), String> {
    let keys = dir.join("keys.json");
    let genesis = dir.join("genesis.json");
    run_ok(
        pktgen(ctx).args(["--keys-out", &path_str(&keys), "--genesis-out", &path_str(&genesis)]),
        "attnet-pktgen --keys-out",
    )?;

    // Capacity on the pcap backend.
    let count = if ctx.quick { 40_000 } else { 600_000 };
    let pcap = dir.join("capacity.pcap");
    run_ok(
        pktgen(ctx).args(["--out", &format!("pcap:{}", path_str(&pcap)), "--count", &count.to_string()]).args([
            "--txs-per-frame",
            "1",
            "--frames-per-datagram",
            "1",
            "--bad",
            "0",
            "--quiet",
        ]),
        "attnet-pktgen --out pcap",
    )?;
    // The node's key, and a genesis listing it as the only validator.
    let node_key = dir.join("node.json");
    let validator_genesis = dir.join("genesis-validator.json");
    let out = Command::new(&ctx.attnet)
        .args(["keygen", "--out", &path_str(&node_key)])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("attnet keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!("attnet keygen failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    run_ok(
        pktgen(ctx).args([
            "--genesis-out",
            &path_str(&validator_genesis),
            "--validator",
            &format!("{public}@127.0.0.1:7100"),
        ]),
        "attnet-pktgen --validator",
    )?;
    let replay_with = |cores: usize, genesis: &Path| -> Result<Value, String> {
        let summary = dir.join(format!("replay-{cores}-summary.json"));
        run_ok(
            Command::new(&ctx.attnet)
                .args(["node", "--backend", "pcap", "--pcap", &path_str(&pcap), "--cores", &cores.to_string()])
                .args(["--keys", &path_str(&keys), "--genesis", &path_str(genesis)])
                .args(["--node-key", &path_str(&node_key)])
                .args(["--summary-json", &path_str(&summary)])
                .stdout(Stdio::null()),
            "attnet node --backend pcap",
        )?;
        let s = read_json(&summary)?;
        let accepted = num(&s["txs"]["accepted"], "pcap summary txs.accepted")?;
        let duration = num(&s["duration_s"], "pcap summary duration_s")?;
        if accepted < count as f64 || duration <= 0.0 {
            return Err(format!("the pcap replay accepted {accepted} of {count} transactions in {duration} s: {s}"));
        }
        Ok(s)
    };
    let replay = |cores: usize| replay_with(cores, &genesis);
    let s = replay(1)?;
    let c = num(&s["txs"]["accepted"], "txs.accepted")? / num(&s["duration_s"], "duration_s")?;
    let mut rows = vec![Row::plain("capacity C (pcap backend, 1 data core)", c / 1e3, "k tx/s", true)];

    // Committed transactions per second, every vCPU verifying.
    let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling = batch_ceiling();
    let s = replay(vcpus)?;
    let applied = num(&s["ledger"]["applied"], "ledger.applied")? / num(&s["duration_s"], "duration_s")?;
    rows.push(
        Row::vs(
            format!("committed (pcap backend, {vcpus} data cores): ledger applied"),
            applied / 1e3,
            "k tx/s",
            format!("{vcpus} vCPUs × zebra batch of 256"),
            vcpus as f64 * ceiling / 1e3,
        )
        .goal(GOAL_COMMITTED),
    );

    // The same with the node as the genesis' only validator: every block
    // signed, voted and certified by the BFT engine.
    let v = replay_with(vcpus, &validator_genesis)?;
    if v["consensus"]["mode"] != "bft" || v["certified"] != v["blocks"] {
        return Err(format!("the validator replay did not certify every block: {} {}", v["consensus"], v["certified"]));
    }
    let finalized = num(&v["ledger"]["applied"], "ledger.applied")? / num(&v["duration_s"], "duration_s")?;
    rows.push(
        Row::vs(
            format!("one validator (pcap backend, {vcpus} data cores): finalized"),
            finalized / 1e3,
            "k tx/s",
            "final at once (committed above)",
            applied / 1e3,
        )
        .goal(GOAL_ONE_VALIDATOR),
    );
    let _ = std::fs::remove_file(&pcap);

    let secs = if ctx.quick { 3.0 } else { 10.0 };
    for pct in LOADS {
        let rate = (c * f64::from(pct) / 100.0).round().max(1.0);
        let p = udp_point(ctx, dir, &keys, &genesis, rate, secs, &[]).map_err(|e| format!("{pct} % of C: {e}"))?;
        let label = format!("{pct} % of C");
        rows.push(Row::vs(format!("{label}: accepted"), p.accepted / 1e3, "k tx/s", "offered", p.offered / 1e3));
        rows.push(Row::plain(format!("{label}: inclusion p50"), p.p50_us / 1e3, "ms", false));
        rows.push(Row::plain(format!("{label}: inclusion p99"), p.p99_us / 1e3, "ms", false));
        if pct == 50 {
            let key = path_str(&node_key);
            let v = udp_point(ctx, dir, &keys, &validator_genesis, rate, secs, &["--node-key", &key])
                .map_err(|e| format!("{pct} % of C, one validator: {e}"))?;
            rows.push(
                Row::vs(
                    format!("{label}, one validator: finality p99 (submit → certified and committed, from receipts)"),
                    v.p99_us / 1e3,
                    "ms",
                    "block interval + 100 ms",
                    BLOCK_INTERVAL_MS + FINALITY_SLACK_MS,
                )
                .goal(1.0)
                .lower_is_better(),
            );
        }
        if LATENCY_LOADS.contains(&pct) {
            let per_burst = ["--verify-batch", "1"];
            let q = udp_point(ctx, dir, &keys, &genesis, rate, secs, &per_burst)
                .map_err(|e| format!("{pct} % of C, per-burst verification: {e}"))?;
            rows.push(Row::plain(
                format!("{label}: inclusion p99, every burst verified as it comes"),
                q.p99_us / 1e3,
                "ms",
                false,
            ));
            rows.push(Row::plain(
                format!("{label}: inclusion p99 moved by the batches"),
                (p.p99_us - q.p99_us) / 1e3,
                "ms",
                false,
            ));
        }
    }
    Ok((rows, secs))
}

/// One load point's figures.
struct Point {
    offered: f64,
    accepted: f64,
    p50_us: f64,
    p99_us: f64,
}

/// Ends the node on drop if it still runs (an error path).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}"))?;
    Ok(s.local_addr().map_err(|e| format!("free port: {e}"))?.port())
}

/// One ed25519-zebra batch of 256 distinct signatures, in signatures per
/// second: the median of 15 batches after 3 to warm up.
pub(crate) fn batch_ceiling() -> f64 {
    let w = crate::Workload::with_frames(crate::ROWS[0], 256);
    let sigs = crate::raw::sigs(&w);
    let mut rng = crate::raw::batch_rng();
    let mut t: Vec<f64> = (0..18)
        .map(|_| {
            let start = Instant::now();
            crate::raw::verify_batches(&sigs, &w.messages, 256, &mut rng);
            start.elapsed().as_secs_f64()
        })
        .skip(3)
        .collect();
    t.sort_by(f64::total_cmp);
    sigs.len() as f64 / t[t.len() / 2]
}

#[allow(clippy::too_many_arguments)]
fn udp_point(
    ctx: &Ctx,
    dir: &Path,
    keys: &Path,
    genesis: &Path,
    rate: f64,
    secs: f64,
    extra: &[&str],
) -> Result<Point, String> {
    let port = free_port()?;
    let summary: PathBuf = dir.join(format!("udp-{port}-summary.json"));
    let gen_json: PathBuf = dir.join(format!("udp-{port}-pktgen.json"));
    let mut child = Command::new(&ctx.attnet)
        .args(["node", "--backend", "io_uring", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--keys", &path_str(keys), "--genesis", &path_str(genesis)])
        .args(["--summary-json", &path_str(&summary)])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("attnet node: {e}"))?;
    let stderr = child.stderr.take().ok_or("attnet node: no stderr")?;
    let mut node = Node(child);
    // Wait for "ready"; keep draining stderr afterwards so the node
    // never blocks on a full pipe.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            // "ready": the control thread runs and every session is
            // installed (the socket listens a little earlier).
            Ok(l) if l.contains("ready:") => break,
            Ok(l) => last = l,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(format!("attnet node exited: {last}")),
        }
        if Instant::now() > deadline {
            return Err(format!("attnet node was not ready within 15 s: {last}"));
        }
    }
    let gen = pktgen(ctx)
        .args(["--out", &format!("udp:127.0.0.1:{port}"), "--pps", &format!("{rate:.0}")])
        .args(["--duration", &format!("{secs}")])
        .args(["--txs-per-frame", "1", "--frames-per-datagram", "1", "--bad", "0"])
        .args([
            "--receipts",
            "--receipt-wait",
            if ctx.quick { "1" } else { "2" },
            "--json",
            &path_str(&gen_json),
            "--quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("attnet-pktgen: {e}"))?;
    // SIGTERM: the node stops receiving, drains and writes its summary.
    let _ = Command::new("kill").args(["-TERM", &node.0.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.0.try_wait().map_err(|e| format!("attnet node: {e}"))?.is_none() {
        if Instant::now() > deadline {
            return Err("attnet node did not stop within 20 s of SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !gen.status.success() {
        let err = String::from_utf8_lossy(&gen.stderr);
        return Err(format!("attnet-pktgen failed ({}): {}", gen.status, err.trim().lines().last().unwrap_or("")));
    }
    let g = read_json(&gen_json)?;
    let s = read_json(&summary)?;
    let gen_secs = num(&g["duration_s"], "pktgen duration_s")?.max(1e-3);
    let offered = num(&g["sent"]["txs"], "pktgen sent.txs")? / gen_secs;
    let accepted = num(&s["txs"]["accepted"], "node txs.accepted")? / gen_secs;
    let lat = &g["receipts"]["latency_us"];
    Ok(Point {
        offered,
        accepted,
        p50_us: num(&lat["p50"], "pktgen receipts.latency_us.p50")?,
        p99_us: num(&lat["p99"], "pktgen receipts.latency_us.p99")?,
    })
}
