//! `attack`: what attack traffic costs the node's legitimate throughput.
//! On a 2-vCPU machine a live flood measures the generator's CPU, not the
//! node's, so the node replays captures on the pcap backend: legitimate
//! traffic (pktgen's default shape) with attack datagrams of one case
//! between them (half the datagrams), against a baseline capture that is
//! the same capture with each attack datagram replaced by a 3-byte
//! datagram (`truncated`, the cheapest verdict). Row value: legitimate
//! accepted transactions per second of the node's run under attack, over
//! the baseline's; attack and baseline runs alternate, medians of a few.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pktgen::encap::Encap;
use pktgen::out::PcapSink;
use pktgen::traffic::{Attack, Datagram};
use pktgen::{Generator, Plan, PoolSpec, TrafficConfig};
use serde_json::Value;

use super::Ctx;
use crate::measure::median;
use crate::report::{Row, Section};

/// Legitimate throughput under attack at >= 0.90 of the baseline's.
pub const GOAL: f64 = 0.90;

/// The baseline's name in the rows (the goal finds its rows by it).
pub const BASELINE: &str = "attack datagrams truncated";

const SEED: u64 = 41;
const SESSIONS: usize = 4;
const ACCOUNTS: usize = 1024;
/// Share of the datagrams that are attack datagrams.
const SHARE: f64 = 0.5;

/// The cases: a row name and the shapes cycled in its capture. A case of
/// `hello` datagrams runs the node with a node key (both of its captures),
/// so that it serves handshakes and the forged HELLOs reach its control
/// thread.
const CASES: [(&str, &[Attack]); 5] = [
    ("attack junk+unknown", &[Attack::Junk, Attack::Unknown]),
    ("attack auth_failed", &[Attack::Auth]),
    ("attack duplicate copies", &[Attack::Dup]),
    ("attack bad signatures", &[Attack::BadSig]),
    ("attack HELLO flood", &[Attack::Hello]),
];

pub fn section(ctx: &Ctx) -> Section {
    if !ctx.attnet.exists() {
        return Section::skipped(
            "attack",
            format!("{} not found (cargo build --release -p engine)", ctx.attnet.display()),
        );
    }
    let dir = ctx.work.join("attack");
    let r = std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display())).and_then(|_| rows(ctx, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    match r {
        Ok((rows, legit, rounds)) => Section::measured("attack", note(legit, rounds), rows),
        Err(e) => Section::skipped("attack", e),
    }
}

fn note(legit: usize, rounds: usize) -> String {
    format!(
        "attnet node --backend pcap (one data core) replaying captures of {legit} legitimate datagrams (pktgen's \
         default shape: 1-3 transactions a frame, LZ4 on every other frame, {SESSIONS} sessions, {ACCOUNTS} \
         accounts) with as many attack datagrams between them ({SHARE} of all datagrams), against the same capture \
         with every attack datagram replaced by a 3-byte one (truncated). Value: legitimate accepted tx/s (the \
         node's txs.accepted / duration_s) under attack; baseline: the same of the truncated capture; attack and \
         baseline runs alternate after one untimed replay, {rounds} each, medians. Cases (pktgen --attack): junk (random bytes, bad_header) \
         and unknown sessions, cycled; auth_failed (frames as large as a valid one gets, real session and \
         counter, one tag bit flipped); duplicate copies (byte-identical copies of the last transaction sent, \
         as many as fit: 11 a datagram plain, 93 a 16384-byte body with LZ4); bad signatures (3 transactions a \
         frame with a changed amount and the original signature, every one from one authenticated session, \
         which sends nothing valid); HELLO flood (forged HELLOs on channel 1003: random account and ephemeral \
         keys and signature, the current time, at a node with a node key (attnet keygen) for both captures: \
         accepted frames handed to the control thread's handshake, which answers them with COOKIEs past 1000 a \
         second or refuses them (bad_signature, overload when a core's ring is full); the pcap backend counts \
         replies instead of sending them; both captures are written afresh each round, so the HELLOs' \
         timestamps are never stale). Every run's counts are checked against the generator's expected counts \
         (for the HELLO flood, handshake.received and the handshake identity too) before its figure is used."
    )
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// One case's two captures and what the attack capture must count.
struct Captures {
    attack: PathBuf,
    base: PathBuf,
    expected: Value,
    legit_txs: u64,
}

/// Writes a case's captures: every datagram the generator builds goes to
/// both, except that the baseline gets 3 bytes for each attack datagram.
fn write_captures(
    dir: &Path,
    name: &str,
    plan: &Plan,
    pool: &pktgen::TxPool,
    shapes: &[Attack],
    handshakes: bool,
) -> Result<Captures, String> {
    use pktgen::drive::Sink;
    let traffic =
        TrafficConfig { attack: shapes.to_vec(), attack_share: SHARE, handshakes, ..TrafficConfig::default() };
    let mut g = Generator::new(plan, pool, &traffic, 0, 1, pktgen::traffic::start_counter());
    let (attack, base) = (dir.join(format!("{name}.pcap")), dir.join(format!("{name}-base.pcap")));
    let open = |p: &Path| PcapSink::create(p, Encap::default()).map_err(|e| format!("{}: {e}", p.display()));
    let (mut sa, mut sb) = (open(&attack)?, open(&base)?);
    let mut d = Vec::new();
    let short = vec![0u8; 3];
    let mut t = 0u64;
    let write = |s: &mut PcapSink, d: &[u8], info: Datagram, t: u64| {
        s.send(&[d.to_vec()], &[info], &[t]).map(|_| ()).map_err(|e| format!("capture: {e}"))
    };
    while let Some(info) = g.next(&mut d) {
        t += 1000;
        write(&mut sa, &d, info, t)?;
        write(&mut sb, if info.attack.is_some() { &short } else { &d }, info, t)?;
    }
    sa.finish().map_err(|e| format!("capture: {e}"))?;
    sb.finish().map_err(|e| format!("capture: {e}"))?;
    Ok(Captures { attack, base, expected: g.expected.to_json(), legit_txs: g.expected.counts.txs_accepted })
}

/// Replays `pcap` through the node (with `node_key`, serving handshakes);
/// returns its summary.
fn replay(ctx: &Ctx, dir: &Path, pcap: &Path, node_key: Option<&Path>) -> Result<Value, String> {
    let summary = dir.join("summary.json");
    let _ = std::fs::remove_file(&summary);
    let key: Vec<String> = node_key.map(|k| vec!["--node-key".into(), path_str(k)]).unwrap_or_default();
    let out = Command::new(&ctx.attnet)
        .args(["node", "--backend", "pcap", "--pcap", &path_str(pcap)])
        .args(["--keys", &path_str(&dir.join("keys.json")), "--genesis", &path_str(&dir.join("genesis.json"))])
        .args(key)
        .args(["--summary-json", &path_str(&summary)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("attnet node: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "attnet node --backend pcap failed ({}): {}",
            out.status,
            err.trim().lines().last().unwrap_or("")
        ));
    }
    let text = std::fs::read_to_string(&summary).map_err(|e| format!("{}: {e}", summary.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", summary.display()))
}

/// A new node key at `path` (`attnet keygen`).
fn keygen(ctx: &Ctx, path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let out = Command::new(&ctx.attnet)
        .args(["keygen", "--out", &path_str(path)])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("attnet keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!("attnet keygen failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// Legitimate accepted tx/s of one run; the run's counts must be exact
/// (`expected`) and all `legit` transactions accepted.
fn rate(s: &Value, expected: Option<&Value>, legit: u64, what: &str) -> Result<f64, String> {
    if let Some(e) = expected {
        let checks = pktgen::check::compare(e, s);
        if let Some(c) = checks.iter().find(|c| !c.1) {
            return Err(format!("{what}: the node's counts differ from the generator's: {}", c.0));
        }
    }
    let accepted = s["txs"]["accepted"].as_u64().unwrap_or(0);
    if accepted != legit {
        return Err(format!("{what}: the node accepted {accepted} of {legit} transactions"));
    }
    let secs = s["duration_s"].as_f64().filter(|d| *d > 0.0).ok_or_else(|| format!("{what}: no duration_s"))?;
    Ok(accepted as f64 / secs)
}

/// The rows, the legitimate datagrams per capture and the rounds.
fn rows(ctx: &Ctx, dir: &Path) -> Result<(Vec<Row>, usize, usize), String> {
    let (legit, rounds): (usize, usize) = if ctx.quick { (8000, 5) } else { (50000, 7) };
    let plan = Plan::from_seed(SEED, 1, SESSIONS, ACCOUNTS, 1_000_000_000_000);
    std::fs::write(dir.join("keys.json"), plan.keys_json()).map_err(|e| format!("keys: {e}"))?;
    std::fs::write(dir.join("genesis.json"), plan.genesis()?.to_json()).map_err(|e| format!("genesis: {e}"))?;
    // Two transactions a datagram on average (1-3 cycled), a little over.
    let per_account = (legit * 2 + 64).div_ceil(ACCOUNTS);
    let spec = PoolSpec { per_account, ..PoolSpec::default() };
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("attnet-pktgen"));
    let (full, _) = plan.cached_pool(&spec, cache.as_deref()).map_err(|e| format!("transaction pool: {e}"))?;
    let node_key = dir.join("node.key");
    let mut out = Vec::new();
    for (name, shapes) in CASES {
        let file = name.replace([' ', '+'], "-");
        // The legitimate part: exactly `legit` datagrams' worth of the pool.
        let pool = first_datagrams(&plan, &full, legit);
        let handshakes = shapes.contains(&Attack::Hello);
        let key = if handshakes {
            keygen(ctx, &node_key)?;
            Some(node_key.as_path())
        } else {
            None
        };
        let mut c = write_captures(dir, &file, &plan, &pool, shapes, handshakes)?;
        // One untimed replay first: the files and the binary are warm for
        // both figures.
        replay(ctx, dir, &c.base, key)?;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            if handshakes && round > 0 {
                // HELLOs of the current time (a node refuses one more than
                // 30 s off before any other work).
                c = write_captures(dir, &file, &plan, &pool, shapes, handshakes)?;
            }
            // Alternating, the baseline first every other round.
            let order = if round % 2 == 0 { [true, false] } else { [false, true] };
            for attacked in order {
                if attacked {
                    let s = replay(ctx, dir, &c.attack, key)?;
                    a.push(rate(&s, Some(&c.expected), c.legit_txs, name)?);
                } else {
                    let s = replay(ctx, dir, &c.base, key)?;
                    b.push(rate(&s, None, c.legit_txs, &format!("{name} baseline"))?);
                }
            }
        }
        let _ = std::fs::remove_file(&c.attack);
        let _ = std::fs::remove_file(&c.base);
        out.push(Row::vs(name, median(a) / 1e3, "k tx/s", BASELINE, median(b) / 1e3).goal(GOAL));
    }
    Ok((out, legit, rounds))
}

/// The prefix of `pool` that `n` default-shape datagrams send (every
/// account's transactions in nonce order: a prefix of the pool is one).
fn first_datagrams(plan: &Plan, pool: &pktgen::TxPool, n: usize) -> pktgen::TxPool {
    let mut g = Generator::new(plan, pool, &TrafficConfig::default(), 0, 1, 0);
    let mut d = Vec::new();
    let mut txs = 0;
    for _ in 0..n {
        match g.next(&mut d) {
            Some(info) => txs += info.txs as usize,
            None => break,
        }
    }
    pool.prefix(txs)
}
