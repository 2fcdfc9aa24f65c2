//! `testnet`: four validators, each a separate `attnet node` process on
//! loopback (`attnet testnet`), each validator's clients sending it a
//! slice of the accounts and forwarding giving the others the rest. The
//! ceiling is this machine's: every transaction is verified on every node
//! (by the receiving node's data plane, by the others' control threads), so vCPUs × one ed25519-zebra batch of 256 ÷ 4
//! (measured just before). Finalized transactions per second are read
//! from the blocks themselves (transactions over block time) under an
//! offered load of 0.6 × that ceiling; finality latency (submit →
//! RECEIPT, from the generators) at half of the rate reached.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::Ctx;
use crate::report::{Row, Section};

/// Validators in the network measured.
const NODES: usize = 4;
/// Goal: finalized transactions per second against the ceiling.
pub const GOAL_FINALIZED: f64 = 0.5;
/// Goals: finality p50 and p99 at half of the rate reached (ms).
pub const GOAL_P50_MS: f64 = 500.0;
pub const GOAL_P99_MS: f64 = 1000.0;
/// The white paper's figure (transactions per second).
const WHITE_PAPER_TPS: f64 = 20_000.0;
/// The offered load of the throughput point, against the ceiling.
const OFFERED: f64 = 0.55;

pub fn section(ctx: &Ctx) -> Section {
    if !ctx.attnet.exists() {
        return Section::skipped(
            "testnet",
            format!("{} not found (cargo build --release -p engine)", ctx.attnet.display()),
        );
    }
    let dir = ctx.work.join("testnet");
    let _ = std::fs::remove_dir_all(&dir);
    let r = std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display())).and_then(|_| rows(ctx, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok((rows, secs)) => Section::measured(
            "testnet",
            format!(
                "attnet testnet --nodes {NODES}: four validator processes on 127.0.0.1 (TCP links, BFT engine, \
                 consensus log and block store on disk), unpinned, 200 ms block interval, with one generator per \
                 validator sending it its own slice of the accounts (one transaction per frame, `--clients spread`); \
                 forwarding between the validators gives every node the rest, so every transaction is verified \
                 by every node. Ceiling: vCPUs × one ed25519-zebra \
                 batch of 256 ÷ {NODES} (measured just before). Finalized: the transactions of the final blocks \
                 over their block time, with {OFFERED} × the ceiling offered for {secs} s. Finality: submit → \
                 RECEIPT at the generators (the slowest node's percentile), at half of the finalized rate. On {} \
                 CPUs the four nodes, the four generators and the kernel share the machine; the CPU rows say where \
                 the time went.",
                crate::report::machine::cores()
            ),
            rows,
        ),
        Err(e) => Section::skipped("testnet", e),
    }
}

fn testnet(ctx: &Ctx, dir: &Path, name: &str, load: f64, secs: f64) -> Result<Value, String> {
    let keep = dir.join(name);
    let out = Command::new(&ctx.attnet)
        .args(["testnet", "--nodes", &NODES.to_string(), "--duration", &format!("{secs}")])
        .args(["--load", &format!("{load:.0}"), "--keep", &keep.to_string_lossy()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("attnet testnet: {e}"))?;
    let s: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("attnet testnet ({}): no summary: {e}", out.status))?;
    if !out.status.success() {
        return Err(format!("attnet testnet failed ({}): {}", out.status, s["error"]));
    }
    if s["conflicts"] != 0 {
        return Err(format!("attnet testnet: {} conflicting heights", s["conflicts"]));
    }
    Ok(s)
}

fn worst(s: &Value, key: &str) -> Result<f64, String> {
    let nodes = s["nodes"].as_array().ok_or("testnet summary: no nodes")?;
    nodes
        .iter()
        .map(|n| n[key].as_f64().ok_or_else(|| format!("testnet summary: {key} missing")))
        .try_fold(0.0f64, |m, v| v.map(|v| m.max(v)))
}

fn rows(ctx: &Ctx, dir: &Path) -> Result<(Vec<Row>, f64), String> {
    let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling = vcpus as f64 * super::loopback::batch_ceiling() / NODES as f64;
    let secs = if ctx.quick { 8.0 } else { 15.0 };
    let a = testnet(ctx, dir, "throughput", ceiling * OFFERED, secs)?;
    let rate = a["finalized_tx_per_s"].as_f64().ok_or("testnet summary: finalized_tx_per_s missing")?;
    let finalized = a["finalized_txs"].as_f64().unwrap_or(0.0);
    let node_cpu: f64 = a["nodes"].as_array().map_or(0.0, |n| n.iter().filter_map(|n| n["cpu_s"].as_f64()).sum());
    let load_cpu = a["load_cpu_s"].as_f64().unwrap_or(0.0);
    let wall = a["duration_s"].as_f64().unwrap_or(0.0);
    let mut rows = vec![
        Row::vs(
            format!("{NODES} validators: finalized ({:.0} k tx/s offered, spread)", ceiling * OFFERED / 1e3),
            rate / 1e3,
            "k tx/s",
            format!("{vcpus} vCPUs × zebra batch of 256 ÷ {NODES}"),
            ceiling / 1e3,
        )
        .goal(GOAL_FINALIZED),
        Row::vs(
            format!("{NODES} validators: finalized, against the white paper's figure"),
            rate / 1e3,
            "k tx/s",
            "white paper",
            WHITE_PAPER_TPS / 1e3,
        ),
    ];
    if finalized > 0.0 {
        rows.push(Row::plain(
            format!("{NODES} validators: node CPU per finalized transaction, per node"),
            node_cpu / NODES as f64 / finalized * 1e6,
            "µs",
            false,
        ));
        rows.push(Row::vs(
            format!("{NODES} validators: CPU of nodes and generators over the run"),
            node_cpu + load_cpu,
            "CPU s",
            format!("{vcpus} vCPUs × wall time"),
            vcpus as f64 * wall,
        ));
    }
    let b = testnet(ctx, dir, "latency", rate / 2.0, secs)?;
    let p50 = worst(&b, "finality_p50_ms")?;
    let p99 = worst(&b, "finality_p99_ms")?;
    let label = format!("{NODES} validators at {:.1} k tx/s (half the finalized rate)", rate / 2e3);
    rows.push(Row::vs(format!("{label}: finality p50"), p50, "ms", "goal", GOAL_P50_MS).goal(1.0).lower_is_better());
    rows.push(Row::vs(format!("{label}: finality p99"), p99, "ms", "goal", GOAL_P99_MS).goal(1.0).lower_is_better());
    Ok((rows, secs))
}
