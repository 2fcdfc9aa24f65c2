//! Crash safety: `kill -9` of a node under load (a capture replayed as
//! fast as the node takes it) at random moments, on one data directory.
//! After each kill: every transaction the node reported committed
//! (`--committed-ids`, written after the fsync; the live line's height)
//! is in the block log; the directory recovers, and a replay of the whole
//! log from the genesis (snapshots removed) reaches the same tip; no
//! transaction is in the chain twice. Each restart replays the whole
//! capture again: frames up to the receive counters persisted with the
//! blocks are `replay` (spec v1.1, "Counters"), the transactions of later
//! frames that were committed already are refused by their nonces. A last
//! run replays the capture to the end; transactions whose frames were
//! accepted but never committed before a kill are then `replay` too, so a
//! capture of the same transactions under fresh counters (a client sending
//! them again) completes the chain: every transaction once.
//!
//! `ATTNET_KILLS` sets the number of kills (default 5); `ATTNET_KILL_SEED`
//! the moments' seed (printed).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control::genesis::Genesis;
use control::store;
use serde_json::Value;

mod summary_common;
use summary_common::{assert_balanced, sum};

const BIN: &str = env!("CARGO_BIN_EXE_attnet");
const TXS: u64 = 60_000;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-persist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A capture `pcap` of `txs` single-transaction datagrams from 512
/// accounts, its keys and genesis. The transactions, keys and genesis
/// follow from the seed; the frames' counters from the clock, so a second
/// capture carries the same transactions under fresh counters.
fn capture(d: &Path, txs: u64, pcap: &str) {
    let keys = std::fs::read(d.join("keys.json")).ok();
    let out = Command::new(BIN)
        .current_dir(d)
        .args(["pktgen", "--quiet", "--seed", "77", "--accounts", "512", "--count", &txs.to_string()])
        .args(["--txs-per-frame", "1", "--frames-per-datagram", "1", "--bad", "0", "--lz4", "off"])
        .args(["--pool-cache", "off", "--keys-out", "keys.json", "--genesis-out", "genesis.json"])
        .args(["--out", &format!("pcap:{pcap}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if let Some(k) = keys {
        assert_eq!(std::fs::read(d.join("keys.json")).unwrap(), k, "the same seed, the same session keys");
    }
}

fn node_on(d: &Path, run: usize, pcap: &str) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(d)
        .args(["node", "--backend", "pcap", "--pcap", pcap, "--cores", "1"])
        .args(["--keys", "keys.json", "--genesis", "genesis.json", "--data-dir", "data"])
        .args(["--committed-ids", &format!("committed-{run}.txt")])
        .args(["--snapshot-txs", "15000", "--block-interval", "20", "--throttle-per-s", "0", "--live", "true"])
        .args(["--summary-json", &format!("summary-{run}.json")]);
    c
}

fn ids(p: &Path) -> Vec<[u8; 32]> {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    // Lines are written whole after each fsync; a kill between a line's
    // bytes leaves a partial last line, which names no committed block.
    text.lines().filter(|l| l.len() == 64).map(|l| hex::decode(l).unwrap().try_into().unwrap()).collect()
}

/// Every transaction id in the chain, checked unique; and the tip height.
fn chain_ids(data: &Path) -> (HashSet<[u8; 32]>, u64) {
    let blocks = store::read_blocks(data).unwrap();
    let mut set = HashSet::new();
    let mut height = 0;
    for b in &blocks {
        assert_eq!(b.header().height, height + 1, "heights are consecutive");
        height = b.header().height;
        for t in b.txs() {
            assert!(set.insert(store::tx_id(t)), "a transaction is in the chain twice (block {height})");
        }
    }
    (set, height)
}

/// The directory recovers read-only, and so does a copy without its
/// snapshots (the whole log replayed from the genesis, each block's state
/// root checked) to the same tip.
fn recovers_the_same(d: &Path, g: &Genesis) -> u64 {
    let data = d.join("data");
    let r = store::recover(&data, g, 256, true).unwrap_or_else(|e| panic!("recovery: {e}"));
    let copy = d.join("replay");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(copy.join("snapshots")).unwrap();
    std::fs::create_dir_all(copy.join("blocks")).unwrap();
    for e in std::fs::read_dir(data.join("blocks")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, copy.join("blocks").join(p.file_name().unwrap())).unwrap();
    }
    let mut full = store::recover(&copy, g, 256, true).unwrap_or_else(|e| panic!("replay from the genesis: {e}"));
    assert_eq!(full.snapshot_height, 0);
    assert_eq!((full.tip.height, full.tip.hash), (r.tip.height, r.tip.hash), "a full replay reaches the same tip");
    let mut snap = r.state;
    assert_eq!(full.state.root(), snap.root(), "the same state root");
    assert!(full.state.supply().holds());
    r.tip.height
}

/// The last `height N` token of the live lines.
fn live_height(stderr: &str) -> Option<u64> {
    stderr.lines().rev().find_map(|l| {
        let (_, rest) = l.split_once(") height ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_9_under_load_never_loses_a_committed_block_nor_applies_a_transaction_twice() {
    let kills: usize = std::env::var("ATTNET_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let seed = std::env::var("ATTNET_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("kills {kills}, seed {seed}");
    let mut rng = Rng(seed);
    let d = tmpdir("kill");
    let mut last_committed = 0;
    // Run k sends the first (k + 1) / kills of the transactions (pktgen's
    // pool for a seed is the same whatever its size: a larger one extends
    // a smaller one), under fresh counters (what a client resends when it
    // had no receipt): every run has old transactions to refuse by nonce
    // and new ones to commit while it is killed. The same capture again
    // would be `replay` up to the persisted counters; the final run below
    // does that with the last capture.
    let share = |run: usize| (TXS * (run as u64 + 1) / kills.max(1) as u64).max(1);
    capture(&d, share(0), "t0.pcap");
    let g = Genesis::load(d.join("genesis.json")).unwrap();
    let mut committed_total: HashSet<[u8; 32]> = HashSet::new();
    let mut height = 0u64;
    let mut mid_run = 0;
    // Where kills land: within the time a run of this size took to the
    // end so far (start-up plus a cost per transaction, learnt from runs
    // that finished before their kill).
    let mut us_per_tx = 40u64;
    for run in 0..kills {
        if run > 0 {
            std::fs::remove_file(d.join(format!("t{}.pcap", run - 1))).unwrap();
            capture(&d, share(run), &format!("t{run}.pcap"));
        }
        let window_ms = 300 + us_per_tx * share(run) / 1000;
        let mut child =
            node_on(&d, run, &format!("t{run}.pcap")).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            for l in BufReader::new(err).lines() {
                s.push_str(&l.unwrap_or_default());
                s.push('\n');
            }
            s
        });
        // Somewhere in the run: start-up and recovery, ingest, seals,
        // snapshots.
        // Start-up (recovery, the admin socket) takes about 250 ms; kills
        // land in it too, but mostly after it.
        let at = Duration::from_millis(150 + rng.next() % window_ms);
        let started = Instant::now();
        while started.elapsed() < at && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished = child.try_wait().unwrap().is_some();
        if finished {
            let took_us = started.elapsed().as_micros() as u64;
            us_per_tx = us_per_tx.min(took_us.saturating_sub(300_000) / share(run)).max(5);
        } else {
            mid_run += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let stderr = reader.join().unwrap();
        if run > 0 {
            let line = stderr.lines().find(|l| l.contains("recovered block")).unwrap_or_else(|| panic!("{stderr}"));
            let resumed: u64 =
                line.split("recovered block ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
            assert_eq!(resumed, height, "the height resumes where the last run's directory recovered: {line}");
        }
        let committed = ids(&d.join(format!("committed-{run}.txt")));
        let (chain, tip) = chain_ids(&d.join("data"));
        for id in &committed {
            assert!(chain.contains(id), "run {run}: a transaction reported committed is not in the log");
        }
        committed_total.extend(committed.iter().copied());
        last_committed = committed.len();
        if let Some(h) = live_height(&stderr) {
            assert!(h <= tip, "run {run}: the live line reported height {h}, the log ends at {tip}");
        }
        height = recovers_the_same(&d, &g);
        assert!(height >= tip.min(height), "recovered {height}, log {tip}");
        eprintln!(
            "run {run}: killed at {at:?}{}, {} committed this run, tip {height}",
            if finished { " (after it finished)" } else { "" },
            committed.len()
        );
    }
    // The last capture again, to the end.
    let out = node_on(&d, kills, &format!("t{}.pcap", kills - 1)).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(format!("summary-{kills}.json"))).unwrap()).unwrap();
    let (chain, tip) = chain_ids(&d.join("data"));
    assert!(committed_total.is_subset(&chain));
    assert_eq!(s["height"].as_u64(), Some(tip));
    assert!(s["persistent"].as_bool().unwrap());
    assert_balanced(&s);
    assert_eq!(s["frames"]["received"].as_u64(), Some(TXS));
    // What the killed runs received came again: frames up to the persisted
    // counters are `replay` (there are some as soon as a block was
    // durable: counters go ahead of the blocks), the committed
    // transactions of later frames are refused by their nonces.
    // Frames accepted after the last durable block's counters were taken
    // and lost with a kill are `replay` too; later transactions of their
    // accounts then wait at a nonce gap and go as `nonce_gap`.
    let replay = s["frames"]["dropped"]["replay"].as_u64().unwrap();
    let dropped = &s["ledger"]["dropped"];
    let bad_nonce = dropped["bad_nonce"].as_u64().unwrap();
    let nonce_gap = dropped["nonce_gap"].as_u64().unwrap();
    assert_eq!(sum(dropped), bad_nonce + nonce_gap, "no other refusal: {dropped}");
    let applied = s["ledger"]["applied"].as_u64().unwrap();
    assert_eq!(applied + bad_nonce + nonce_gap + replay, TXS, "{}", s);
    assert_eq!(s["recovered"]["height"].as_u64(), Some(height));
    if last_committed > 0 {
        assert!(replay > 0, "the last run's blocks were durable, so were its counters: {}", s["frames"]);
    }
    if height > 0 {
        assert!(s["recovered"]["counters"].as_u64().unwrap() > 0, "{}", s["recovered"]);
    }
    // What is missing from the chain: transactions of frames that were
    // accepted before a kill but whose block was not durable (their frames
    // are `replay` now), and the later transactions of the same accounts
    // (`nonce_gap`, never in the chain: a chained one would be `bad_nonce`).
    let missing = TXS - chain.len() as u64;
    assert!(nonce_gap <= missing, "a transaction refused at a nonce gap is in the chain: {}", s["ledger"]);
    assert!(missing <= nonce_gap + replay, "only transactions of replayed frames and their successors are missing");
    assert_eq!(recovers_the_same(&d, &g), tip);
    // The same transactions under fresh counters (a client sending what
    // had no receipt again): every transaction of the capture, once.
    capture(&d, TXS, "t2.pcap");
    let out = node_on(&d, kills + 1, "t2.pcap").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(format!("summary-{}.json", kills + 1))).unwrap()).unwrap();
    let (chain, tip) = chain_ids(&d.join("data"));
    assert_eq!(chain.len() as u64, TXS, "every transaction of the capture is in the chain exactly once");
    assert_eq!(s["frames"]["accepted"].as_u64(), Some(TXS), "fresh counters are new traffic: {}", s["frames"]);
    let bad_nonce = s["ledger"]["dropped"]["bad_nonce"].as_u64().unwrap();
    let applied = s["ledger"]["applied"].as_u64().unwrap();
    assert_eq!(applied + bad_nonce, TXS, "{}", s["ledger"]);
    assert_eq!(recovers_the_same(&d, &g), tip);
    eprintln!("{kills} kills ({mid_run} mid-run), chain of {tip} blocks, {TXS} transactions once each");
    assert!(mid_run * 2 >= kills, "most kills land while the node works ({mid_run} of {kills})");
    std::fs::remove_dir_all(&d).unwrap();
}

fn summary(d: &Path, run: usize) -> Value {
    serde_json::from_str(&std::fs::read_to_string(d.join(format!("summary-{run}.json"))).unwrap()).unwrap()
}

/// Spec v1.1, "Counters": a node with a data directory persists its
/// configured sessions' highest accepted counters with its blocks, so the
/// same capture replayed after a restart, whether the node was killed or
/// stopped, is `replay`, not new traffic; the same transactions under
/// fresh counters are new frames (refused by their nonces); without the
/// data directory nothing refuses the capture. Each run also reserves its
/// RECEIPT counters in `D/counters.reserve`, above the last run's.
#[test]
fn a_capture_replayed_after_a_restart_is_replay() {
    const N: u64 = 3_000;
    let d = tmpdir("replay");
    capture(&d, N, "t.pcap");
    let sessions = serde_json::from_str::<Value>(&std::fs::read_to_string(d.join("keys.json")).unwrap()).unwrap()
        ["sessions"]
        .as_array()
        .unwrap()
        .len() as u64;
    let reserved = || -> u64 {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("data/counters.reserve")).unwrap()).unwrap();
        v["below"].as_u64().unwrap()
    };
    let run = |run: usize, pcap: &str| -> Value {
        let out = node_on(&d, run, pcap).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s = summary(&d, run);
        assert_balanced(&s);
        assert_eq!(s["frames"]["received"].as_u64(), Some(N));
        s
    };
    // First run, killed: the capture over and over (every pass after the
    // first is replay within the run), SIGKILL once every transaction is
    // reported committed (after its block's fsync).
    let mut child = node_on(&d, 0, "t.pcap")
        .args(["--loop", "1000000", "--duration", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    while (ids(&d.join("committed-0.txt")).len() as u64) < N && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    assert_eq!(ids(&d.join("committed-0.txt")).len() as u64, N, "every transaction committed before the kill");
    let first_reservation = reserved();
    // Restarted on the same directory: the same capture is all `replay`.
    let s = run(1, "t.pcap");
    assert_eq!(s["recovered"]["counters"].as_u64(), Some(sessions), "{}", s["recovered"]);
    assert_eq!(s["frames"]["dropped"]["replay"].as_u64(), Some(N), "{}", s["frames"]);
    assert_eq!(s["frames"]["accepted"], 0);
    assert_eq!((s["txs"]["seen"].as_u64(), s["ledger"]["submitted"].as_u64()), (Some(0), Some(0)));
    assert_eq!(s["storage"]["counter_records"], 0, "no counter moved");
    assert!(reserved() > first_reservation, "the restart reserved above the last run");
    // The same transactions under fresh counters: new frames, old
    // transactions (refused by their nonces), so no block: the counters
    // are persisted at the clean stop.
    capture(&d, N, "t2.pcap");
    let s = run(2, "t2.pcap");
    assert_eq!(s["frames"]["accepted"].as_u64(), Some(N), "{}", s["frames"]);
    assert_eq!((s["ledger"]["applied"].as_u64(), s["ledger"]["dropped"]["bad_nonce"].as_u64()), (Some(0), Some(N)));
    assert_eq!(s["storage"]["counter_records"], 1, "{}", s["storage"]);
    for (i, pcap) in [(3, "t2.pcap"), (4, "t.pcap")] {
        let s = run(i, pcap);
        assert_eq!(s["frames"]["dropped"]["replay"].as_u64(), Some(N), "{pcap}: {}", s["frames"]);
    }
    // Without the data directory nothing remembers: the capture is new.
    let out = Command::new(BIN)
        .current_dir(&d)
        .args(["node", "--backend", "pcap", "--pcap", "t.pcap", "--cores", "1"])
        .args(["--keys", "keys.json", "--genesis", "genesis.json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["frames"]["accepted"].as_u64(), Some(N), "{}", s["frames"]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A tmpfs of `mb` MiB mounted on `at`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u32) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m,mode=0700"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap_or_else(|e| panic!("running mount: {e}"));
        assert!(
            out.status.success(),
            "this test mounts a {mb} MiB tmpfs on {} (it needs root): mount failed: {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_node_naming_the_file_and_a_restart_keeps_every_committed_block() {
    let d = tmpdir("full");
    capture(&d, TXS, "t.pcap");
    let g = Genesis::load(d.join("genesis.json")).unwrap();
    let data = d.join("data");
    let fs = Tmpfs::mount(&data, 2);
    // Space that is freed afterwards.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![7u8; 512 << 10]).unwrap();
    let out = node_on(&d, 0, "t.pcap").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the node ran {TXS} transactions on 2 MiB: {stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // The node runs in `d` with `--data-dir data`: the path as given.
    assert!(
        stderr.contains("data/blocks/") || stderr.contains("data/snapshots/"),
        "the error names the file: {stderr}"
    );
    assert!(stderr.contains("the node stopped"), "{stderr}");
    let committed = ids(&d.join("committed-0.txt"));
    assert!(!committed.is_empty(), "some blocks were committed before the disk filled: {stderr}");
    if let Some(h) = live_height(&stderr) {
        let (_, tip) = chain_ids(&data);
        assert!(h <= tip, "the live line reported height {h}, the log ends at {tip}");
    }
    // Space freed: the directory recovers every committed block.
    std::fs::remove_file(&filler).unwrap();
    let r = store::recover(&data, &g, 256, true).unwrap_or_else(|e| panic!("recovery after freeing space: {e}"));
    let (chain, _) = chain_ids(&data);
    assert!(committed.iter().all(|id| chain.contains(id)), "a transaction reported committed is not in the log");
    eprintln!(
        "{} transactions committed before the disk filled; recovers to block {} ({:?})",
        committed.len(),
        r.tip.height,
        r.truncated
    );
    // With room for the whole capture, a restart goes on to its end: every
    // transaction in the chain once. The transactions come again under
    // fresh counters (the same frames would be `replay` up to the
    // persisted counters), as a client resends what had no receipt.
    let grown = Command::new("mount").args(["-o", "remount,size=64m"]).arg(&data).status().unwrap();
    assert!(grown.success(), "remounting the tmpfs larger failed");
    capture(&d, TXS, "t2.pcap");
    let out = node_on(&d, 1, "t2.pcap").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (chain, tip) = chain_ids(&data);
    assert_eq!(chain.len() as u64, TXS, "every transaction of the capture is in the chain exactly once");
    assert!(committed.iter().all(|id| chain.contains(id)));
    assert_eq!(recovers_the_same(&d, &g), tip);
    drop(fs);
    std::fs::remove_dir_all(&d).unwrap();
}
