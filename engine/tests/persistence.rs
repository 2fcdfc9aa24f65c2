//! Crash safety: `kill -9` of a node under load (a capture replayed as
//! fast as the node takes it) at random moments, on one data directory.
//! After each kill: every transaction the node reported committed
//! (`--committed-ids`, written after the fsync; the live line's height)
//! is in the block log; the directory recovers, and a replay of the whole
//! log from the genesis (snapshots removed) reaches the same tip; no
//! transaction is in the chain twice. Each restart replays the whole
//! capture again, so the transactions already committed are sent again
//! and must be refused. A last run to the end leaves every transaction of
//! the capture in the chain exactly once.
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

const BIN: &str = env!("CARGO_BIN_EXE_attnet");
const TXS: u64 = 60_000;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-persist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A capture of `TXS` single-transaction datagrams from 512 accounts, its
/// keys and genesis.
fn capture(d: &Path) {
    let out = Command::new(BIN)
        .current_dir(d)
        .args(["pktgen", "--quiet", "--seed", "77", "--accounts", "512", "--count", &TXS.to_string()])
        .args(["--txs-per-frame", "1", "--frames-per-datagram", "1", "--bad", "0", "--lz4", "off"])
        .args(["--pool-cache", "off", "--keys-out", "keys.json", "--genesis-out", "genesis.json"])
        .args(["--out", "pcap:t.pcap"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn node(d: &Path, run: usize) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(d)
        .args(["node", "--backend", "pcap", "--pcap", "t.pcap", "--cores", "1"])
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
    capture(&d);
    let g = Genesis::load(d.join("genesis.json")).unwrap();
    let mut committed_total: HashSet<[u8; 32]> = HashSet::new();
    let mut height = 0u64;
    let mut mid_run = 0;
    for run in 0..kills {
        let mut child = node(&d, run).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
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
        let at = Duration::from_millis(300 + rng.next() % 2200);
        let started = Instant::now();
        while started.elapsed() < at && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
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
    // The last run to the end: every transaction of the capture, once.
    let out = node(&d, kills).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(format!("summary-{kills}.json"))).unwrap()).unwrap();
    let (chain, tip) = chain_ids(&d.join("data"));
    assert_eq!(chain.len() as u64, TXS, "every transaction of the capture is in the chain exactly once");
    assert!(committed_total.is_subset(&chain));
    assert_eq!(s["height"].as_u64(), Some(tip));
    assert!(s["persistent"].as_bool().unwrap());
    // What the killed runs committed came again and was refused.
    let bad_nonce = s["ledger"]["dropped"]["bad_nonce"].as_u64().unwrap();
    let applied = s["ledger"]["applied"].as_u64().unwrap();
    assert_eq!(applied + bad_nonce, TXS, "{}", s["ledger"]);
    assert_eq!(s["recovered"]["height"].as_u64(), Some(height));
    assert_eq!(recovers_the_same(&d, &g), tip);
    eprintln!("{kills} kills ({mid_run} mid-run), chain of {tip} blocks, {TXS} transactions once each");
    assert!(mid_run * 2 >= kills, "most kills land while the node works ({mid_run} of {kills})");
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
    capture(&d);
    let g = Genesis::load(d.join("genesis.json")).unwrap();
    let data = d.join("data");
    let fs = Tmpfs::mount(&data, 2);
    // Space that is freed afterwards.
    let filler = data.join("filler");
    std::fs::write(&filler, vec![7u8; 512 << 10]).unwrap();
    let out = node(&d, 0).output().unwrap();
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
    // transaction in the chain once.
    let grown = Command::new("mount").args(["-o", "remount,size=64m"]).arg(&data).status().unwrap();
    assert!(grown.success(), "remounting the tmpfs larger failed");
    let out = node(&d, 1).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (chain, tip) = chain_ids(&data);
    assert_eq!(chain.len() as u64, TXS, "every transaction of the capture is in the chain exactly once");
    assert!(committed.iter().all(|id| chain.contains(id)));
    assert_eq!(recovers_the_same(&d, &g), tip);
    drop(fs);
    std::fs::remove_dir_all(&d).unwrap();
}
