//! `recovery_bench`: how long `attnet node --data-dir` takes to recover a
//! long chain (docs/STORAGE.md, "Recovery time"). It writes a synthetic
//! chain through the node's own store ([`store::Store`]: log segments,
//! group commit, snapshots by the default policy), then times
//! [`store::recover`], the function the node runs before its first
//! packet, from a cold and a warm page cache, with every snapshot kept and
//! with the newest one removed (the older snapshot and a longer replay).
//!
//! The chain: a genesis of `--accounts` funded accounts, blocks of
//! `--block-txs` transfers among them (each sender's nonce in order, the
//! minimum fee, a producer paid the fees), executed on a state to get each
//! block's state root, as the node's chain does. Signatures are zeros:
//! neither the store nor recovery verifies them (recovery re-executes
//! admitted transactions; the signature was checked at admission).
//!
//! `cargo build --release -p bench --bin recovery_bench &&
//!  target/release/recovery_bench [--txs 12000000] [--accounts 1000000] [--dir /tmp]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bench::report::machine;
use clap::Parser;
use control::block::{Block, Stamp};
use control::genesis::{Genesis, GenesisAccount};
use control::state::State;
use control::store::{self, StoreConfig, Tip};
use dataplane::wire::tx::{Kind, Repr, Transaction};

#[derive(Debug, Parser)]
#[command(name = "recovery_bench", about = "Time the recovery of a long synthetic chain from its data directory")]
struct Args {
    /// Transactions in the chain.
    #[arg(long, default_value_t = 12_000_000)]
    txs: u64,
    /// Funded genesis accounts the transfers move among.
    #[arg(long, default_value_t = 1_000_000)]
    accounts: u64,
    /// Transactions a block (100 k tx/s with a block every 200 ms: 20 000).
    #[arg(long, default_value_t = 20_000)]
    block_txs: u64,
    /// Records kept per inbox (the node's --inbox default).
    #[arg(long, default_value_t = 256)]
    inbox: usize,
    /// Parent of the data directory (removed at the end unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the data directory.
    #[arg(long)]
    keep: bool,
    /// Warm recoveries only (no page-cache drop, which needs root).
    #[arg(long)]
    warm_only: bool,
    /// Write the results (JSON) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write nothing: time recoveries of this existing data directory
    /// (kept by --keep), warm, `--reps` times.
    #[arg(long)]
    recover: Option<PathBuf>,
    /// Recoveries with --recover.
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

/// Account `i`'s key: distinct, spread over the key space.
fn key(i: u64) -> [u8; 32] {
    let mut k = [0u8; 32];
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_A5A5_5A5A_5A5A;
    for (n, c) in k.chunks_mut(8).enumerate() {
        c.copy_from_slice(&x.rotate_left(n as u32 * 16).to_le_bytes());
    }
    k[31] = (i & 0xff) as u8;
    k[30] = ((i >> 8) & 0xff) as u8;
    k[29] = ((i >> 16) & 0xff) as u8;
    k[28] = ((i >> 24) & 0xff) as u8;
    k
}

const PRODUCER: [u8; 32] = [0x50; 32];

/// The generator's side of the chain: its own state (for the state roots),
/// the tip, each account's last nonce, the transactions made so far.
struct Gen {
    state: State,
    tip: Tip,
    nonces: Vec<u64>,
    made: u64,
}

/// One node session on `data`: recovers it, starts the store (the default
/// policy: a snapshot every `snapshot_txs` transactions and one at the
/// end), hands it blocks of `txs` more transactions, and stops it.
fn session(a: &Args, g: &Genesis, data: &Path, gen: &mut Gen, txs: u64) -> Result<serde_json::Value, String> {
    let lock = store::lock(data)?;
    store::check_meta(&lock, g, &PRODUCER)?;
    let r = store::recover(data, g, a.inbox, false)?;
    if r.tip != gen.tip {
        return Err(format!("the directory recovered to {:?}, the generator is at {:?}", r.tip, gen.tip));
    }
    // No configured sessions: the counters recovered are kept as they are.
    let rx = store::ReceiveWindows { recovered: r.counters, windows: Vec::new() };
    let s = store::Store::start(&lock, StoreConfig::default(), r.state, r.tip, rx)?;
    let n = a.accounts;
    let min_fee = g.min_fee();
    let mut block: Vec<Vec<u8>> = Vec::with_capacity(a.block_txs as usize);
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut written = 0u64;
    while written < txs {
        let count = a.block_txs.min(txs - written);
        block.clear();
        let mut fees = 0u64;
        for _ in 0..count {
            let t = gen.made;
            let from = t % n;
            let to = (t.wrapping_mul(7919) + 1 + t / n) % n;
            let to = if to == from { (to + 1) % n } else { to };
            gen.made += 1;
            let nonce = gen.nonces.get_mut(from as usize).ok_or("account index")?;
            *nonce += 1;
            let r = Repr {
                kind: Kind::Transfer,
                from: key(from),
                to: key(to),
                nonce: *nonce,
                amount: 1 + t % 97,
                fee: min_fee,
                memo: b"",
                signature: [0; 64],
            };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b).map_err(|e| format!("emit: {e:?}"))?;
            let tx = Transaction::new_checked(&b[..]).map_err(|e| format!("transaction: {e:?}"))?;
            gen.state.execute(&tx).map_err(|r| format!("transaction {t}: {}", r.name()))?;
            fees += min_fee;
            block.push(b);
        }
        let height = gen.tip.height + 1;
        gen.state.end_block(height, Some(PRODUCER), fees);
        let stamp = Stamp { producer: PRODUCER, state_root: gen.state.root() };
        let ts = gen.tip.timestamp_ms + 200;
        let b = Block::new(height, gen.tip.hash, ts, stamp, block.iter().map(|v| &v[..])).ok_or("block")?;
        gen.tip = Tip { height, hash: b.hash(), timestamp_ms: ts };
        s.append(b)?;
        written += count;
        if last_print.elapsed() > Duration::from_secs(20) {
            eprintln!("recovery_bench: {} transactions made ({:.0} s)", gen.made, started.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
    }
    let rep = s.finish()?;
    let secs = started.elapsed().as_secs_f64();
    if rep.height != gen.tip.height {
        return Err(format!("the store stopped at {} of {}", rep.height, gen.tip.height));
    }
    eprintln!(
        "recovery_bench: a session wrote {} blocks, {} transactions, {:.2} GB, {} snapshots in {secs:.0} s",
        rep.blocks,
        rep.txs,
        rep.bytes as f64 / 1e9,
        rep.snapshots
    );
    Ok(serde_json::json!({"secs": secs, "store": rep.to_json()}))
}

/// Drops the page cache (root only): `sync`, then `3 > drop_caches`.
fn drop_caches() -> Result<(), String> {
    let ok = std::process::Command::new("sync").status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        return Err("sync failed".into());
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|e| format!("/proc/sys/vm/drop_caches: {e}"))
}

/// One timed recovery.
fn timed(
    what: &str,
    cold: bool,
    data: &Path,
    g: &Genesis,
    inbox: usize,
    want: Tip,
) -> Result<serde_json::Value, String> {
    if cold {
        drop_caches()?;
    }
    let lock = store::lock(data)?;
    let cpu0 = bench::storage::thread_cpu();
    let r = store::recover(lock.path(), g, inbox, false)?;
    // Recovery runs on this thread: its CPU time, beside the wall time
    // other processes on a shared machine stretch.
    let cpu = (bench::storage::thread_cpu() - cpu0).as_secs_f64() * 1e3;
    if r.tip != want {
        return Err(format!("{what}: recovered to {:?}, the chain's tip is {want:?}", r.tip));
    }
    let total = r.elapsed.as_secs_f64() * 1e3;
    let snap = r.snapshot_load.as_secs_f64() * 1e3;
    eprintln!(
        "recovery_bench: {what}, {} cache: snapshot {} loaded in {snap:.0} ms, {} blocks / {} txs replayed in \
         {:.0} ms, {total:.0} ms in all ({cpu:.0} ms of CPU)",
        if cold { "cold" } else { "warm" },
        r.snapshot_height,
        r.blocks_replayed,
        r.txs_replayed,
        total - snap
    );
    let v = serde_json::json!({
        "case": what, "cache": if cold { "cold" } else { "warm" }, "height": r.tip.height,
        "snapshot_height": r.snapshot_height, "blocks_replayed": r.blocks_replayed, "txs_replayed": r.txs_replayed,
        "snapshot_ms": snap, "replay_ms": total - snap, "total_ms": total, "cpu_ms": cpu,
    });
    drop(r);
    Ok(v)
}

/// `--recover D`: warm recoveries of an existing directory.
fn recover_only(a: &Args, d: &Path) -> Result<(), String> {
    let g = store::dir_genesis(d)?;
    let tip = {
        let lock = store::lock(d)?;
        store::recover(lock.path(), &g, a.inbox, false)?.tip
    };
    for _ in 0..a.reps.max(1) {
        timed("existing directory", false, d, &g, a.inbox, tip)?;
    }
    Ok(())
}

fn run(a: Args) -> Result<(), String> {
    if let Some(d) = &a.recover {
        return recover_only(&a, d);
    }
    if a.accounts < 2 || a.block_txs == 0 || a.txs == 0 {
        return Err("--accounts must be at least 2, --block-txs and --txs at least 1".into());
    }
    let base = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    let data = base.join(format!("attnet-recovery-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let g = Genesis::new(1, (0..a.accounts).map(|i| GenesisAccount { key: key(i), balance: 1 << 40 }))?;
    let result = (|| {
        // Two sessions: the second's transactions stay just under the
        // snapshot interval, so that with the second's closing snapshot
        // removed recovery replays nearly a whole interval, as after a
        // crash just before a periodic snapshot.
        let interval = StoreConfig::default().snapshot_txs;
        let tail = (interval / a.block_txs).max(1) * a.block_txs;
        let tail = if tail >= interval { tail - a.block_txs } else { tail }.min(a.txs);
        let mut gen = Gen {
            state: State::new(&g, a.inbox),
            tip: Tip { height: 0, hash: g.hash(), timestamp_ms: 0 },
            nonces: vec![0; a.accounts as usize],
            made: 0,
        };
        let mut wrote = Vec::new();
        for txs in [a.txs - tail, tail] {
            if txs > 0 {
                wrote.push(session(&a, &g, &data, &mut gen, txs)?);
            }
        }
        let tip = gen.tip;
        let caches: &[bool] = if a.warm_only { &[false] } else { &[true, false] };
        let mut runs = Vec::new();
        for &cold in caches {
            runs.push(timed("newest snapshot", cold, &data, &g, a.inbox, tip)?);
        }
        // The newest snapshot removed: the one before it and a longer replay.
        let snaps: Vec<PathBuf> = {
            let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("snapshots"))
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "snap"))
                .collect();
            v.sort();
            v
        };
        if let Some(newest) = snaps.last() {
            std::fs::remove_file(newest).map_err(|e| format!("{}: {e}", newest.display()))?;
            for &cold in caches {
                runs.push(timed("newest snapshot removed", cold, &data, &g, a.inbox, tip)?);
            }
        }
        Ok::<_, String>(serde_json::json!({
            "date": machine::today(), "cpu": machine::cpu(), "cores": machine::cores(), "kernel": machine::kernel(),
            "git": machine::git_commit(Path::new(env!("CARGO_MANIFEST_DIR"))),
            "accounts": a.accounts, "block_txs": a.block_txs, "txs": a.txs, "inbox": a.inbox,
            "snapshot_txs": interval, "tail_txs": tail, "sessions": wrote, "recoveries": runs,
        }))
    })();
    if !a.keep {
        let _ = std::fs::remove_dir_all(&data);
    }
    let v = result?;
    let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
    println!("{text}");
    if let Some(p) = &a.json {
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("recovery_bench: {e}");
        std::process::exit(1);
    }
}
