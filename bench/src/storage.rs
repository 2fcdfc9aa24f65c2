//! The block-storage candidates for `attnet node --data-dir` and the
//! synthetic writer that measures them (`storage_writer`,
//! docs/STORAGE.md): final blocks of random transactions, sealed on a
//! fixed schedule, each committed durably before the next one starts.
//!
//! - [`Candidate::Log`]: an append-only file of records `[u32 LE payload
//!   length][u32 LE CRC32C of the payload][payload]`, one `fdatasync` a
//!   block.
//! - [`Candidate::Redb`]: redb 2, one write transaction a block (the block
//!   as the value, its height as the key), `Durability::Immediate`.
//! - [`Candidate::Fjall`]: fjall 3, one keyspace with key-value separation
//!   (blocks are megabytes), one insert and one `persist(SyncData)` a block.
//!
//! Per block: the commit latency (write start to durable) in an
//! HdrHistogram, the writing thread's CPU time over the commit
//! (`CLOCK_THREAD_CPUTIME_ID`); per run: the bytes the process had
//! written to storage (`/proc/self/io` `write_bytes`, the stores'
//! background threads included), the other threads' CPU time, the size
//! left on disk, and how many commits took longer than the interval.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};

use crate::report::{Row, Section};

/// Bytes of one synthetic transaction.
pub const TX_LEN: usize = 256;

/// Bytes a block adds per transaction beside its bytes: a `u32` end offset
/// (the block keeps its transactions in one buffer cut at end offsets),
/// an estimate for sizing the stored body.
pub const PER_TX_OVERHEAD: usize = 4;

/// Bytes of a log record's framing: length and CRC32C.
pub const LOG_RECORD_OVERHEAD: usize = 8;

/// A way to keep final blocks durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    Log,
    Redb,
    Fjall,
}

impl Candidate {
    pub const ALL: [Candidate; 3] = [Candidate::Log, Candidate::Redb, Candidate::Fjall];

    pub fn name(self) -> &'static str {
        match self {
            Candidate::Log => "log",
            Candidate::Redb => "redb",
            Candidate::Fjall => "fjall",
        }
    }

    pub fn parse(s: &str) -> Option<Candidate> {
        Candidate::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Opens an empty store in `dir` (which exists and is empty).
    pub fn open(self, dir: &Path) -> Result<Box<dyn BlockStore>, String> {
        Ok(match self {
            Candidate::Log => Box::new(Log::create(&dir.join("blocks.log"))?),
            Candidate::Redb => Box::new(RedbStore::create(&dir.join("blocks.redb"))?),
            Candidate::Fjall => Box::new(FjallStore::open(&dir.join("fjall"))?),
        })
    }
}

/// One durable commit per block.
pub trait BlockStore {
    /// Returns once `block` (at `height`) is on stable storage.
    fn commit(&mut self, height: u64, block: &[u8]) -> Result<(), String>;
}

/// The append-only block log.
pub struct Log {
    file: File,
}

impl Log {
    pub fn create(path: &Path) -> Result<Log, String> {
        let file = File::create_new(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Log { file })
    }

    /// A record's header: the payload's length and CRC32C, both u32 LE.
    pub fn record_header(payload: &[u8]) -> Result<[u8; LOG_RECORD_OVERHEAD], String> {
        let len = u32::try_from(payload.len()).map_err(|_| format!("block of {} bytes", payload.len()))?;
        let mut h = [0u8; LOG_RECORD_OVERHEAD];
        h[..4].copy_from_slice(&len.to_le_bytes());
        h[4..].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        Ok(h)
    }
}

impl BlockStore for Log {
    fn commit(&mut self, _height: u64, block: &[u8]) -> Result<(), String> {
        let h = Log::record_header(block)?;
        self.file.write_all(&h).map_err(|e| format!("log write: {e}"))?;
        self.file.write_all(block).map_err(|e| format!("log write: {e}"))?;
        self.file.sync_data().map_err(|e| format!("log fdatasync: {e}"))
    }
}

/// Blocks by height.
pub const REDB_BLOCKS: redb::TableDefinition<'static, u64, &'static [u8]> = redb::TableDefinition::new("blocks");

pub struct RedbStore {
    db: redb::Database,
}

impl RedbStore {
    pub fn create(path: &Path) -> Result<RedbStore, String> {
        let db = redb::Database::create(path).map_err(|e| format!("redb {}: {e}", path.display()))?;
        Ok(RedbStore { db })
    }

    pub fn db(&self) -> &redb::Database {
        &self.db
    }
}

impl BlockStore for RedbStore {
    fn commit(&mut self, height: u64, block: &[u8]) -> Result<(), String> {
        let mut tx = self.db.begin_write().map_err(|e| format!("redb begin: {e}"))?;
        tx.set_durability(redb::Durability::Immediate);
        {
            let mut t = tx.open_table(REDB_BLOCKS).map_err(|e| format!("redb table: {e}"))?;
            t.insert(height, block).map_err(|e| format!("redb insert: {e}"))?;
        }
        tx.commit().map_err(|e| format!("redb commit: {e}"))
    }
}

pub struct FjallStore {
    db: fjall::Database,
    blocks: fjall::Keyspace,
}

impl FjallStore {
    pub fn open(path: &Path) -> Result<FjallStore, String> {
        let db = fjall::Database::builder(path).open().map_err(|e| format!("fjall {}: {e}", path.display()))?;
        let blocks = db
            .keyspace("blocks", || {
                fjall::KeyspaceCreateOptions::default().with_kv_separation(Some(fjall::KvSeparationOptions::default()))
            })
            .map_err(|e| format!("fjall keyspace: {e}"))?;
        Ok(FjallStore { db, blocks })
    }

    pub fn blocks(&self) -> &fjall::Keyspace {
        &self.blocks
    }
}

impl BlockStore for FjallStore {
    fn commit(&mut self, height: u64, block: &[u8]) -> Result<(), String> {
        // Big-endian keys sort by height.
        self.blocks.insert(height.to_be_bytes(), block).map_err(|e| format!("fjall insert: {e}"))?;
        self.db.persist(fjall::PersistMode::SyncData).map_err(|e| format!("fjall persist: {e}"))
    }
}

/// A block rate: `tx_per_s` transactions of [`TX_LEN`] bytes, a block
/// every `interval_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub tx_per_s: u32,
    pub interval_ms: u32,
}

impl Scenario {
    /// 100 k tx/s every 200 ms (the goal); 20 k tx/s every 200 ms (the
    /// disk-per-day figure); 100 k tx/s every 50 ms (smaller blocks, four
    /// times the commits).
    pub const ALL: [Scenario; 3] = [
        Scenario { tx_per_s: 100_000, interval_ms: 200 },
        Scenario { tx_per_s: 20_000, interval_ms: 200 },
        Scenario { tx_per_s: 100_000, interval_ms: 50 },
    ];

    pub fn txs_per_block(&self) -> usize {
        (u64::from(self.tx_per_s) * u64::from(self.interval_ms) / 1000) as usize
    }

    /// The block's payload: a header, the transactions and their offsets.
    pub fn block_len(&self) -> usize {
        control::block::HEADER_LEN + self.txs_per_block() * (TX_LEN + PER_TX_OVERHEAD)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.interval_ms))
    }

    /// Blocks in `secs` seconds (at least one).
    pub fn blocks_in(&self, secs: f64) -> u64 {
        ((secs * 1000.0 / f64::from(self.interval_ms)).round() as u64).max(1)
    }

    pub fn label(&self) -> String {
        format!(
            "{} k tx/s, a block every {} ms ({} tx, {:.2} MB)",
            self.tx_per_s / 1000,
            self.interval_ms,
            self.txs_per_block(),
            self.block_len() as f64 / 1e6
        )
    }

    /// `--scenarios` names: `100k-200ms`, `20k-200ms`, `100k-50ms`.
    pub fn key(&self) -> String {
        format!("{}k-{}ms", self.tx_per_s / 1000, self.interval_ms)
    }
}

/// One candidate's run of one scenario.
#[derive(Debug, Clone)]
pub struct Run {
    pub candidate: Candidate,
    pub scenario: Scenario,
    /// Blocks committed (all of them: a failed commit ends the run with
    /// an error).
    pub blocks: u64,
    /// Commit latency per block, microseconds.
    pub latency_us: Histogram<u64>,
    /// Payload bytes handed to the store.
    pub payload_bytes: u64,
    /// Bytes the process wrote to storage over the run (`write_bytes`).
    pub written_bytes: u64,
    /// Bytes written to the device over the run, by every process on the
    /// machine (`None`: no block device found for the directory).
    pub device_bytes: Option<u64>,
    /// Bytes allocated under the store's directory after it was closed.
    pub disk_bytes: u64,
    /// The writing thread's CPU time over the commits.
    pub writer_cpu: Duration,
    /// CPU time of the process's other threads (the store's background
    /// work), over the run.
    pub other_cpu: Duration,
    /// Commits that took longer than the block interval.
    pub overruns: u64,
    /// Wall time from the first block's slot to the last commit.
    pub wall: Duration,
}

impl Run {
    fn ms(us: u64) -> f64 {
        us as f64 / 1e3
    }
    pub fn p50_ms(&self) -> f64 {
        Run::ms(self.latency_us.value_at_quantile(0.50))
    }
    pub fn p99_ms(&self) -> f64 {
        Run::ms(self.latency_us.value_at_quantile(0.99))
    }
    pub fn max_ms(&self) -> f64 {
        Run::ms(self.latency_us.max())
    }
    pub fn mean_ms(&self) -> f64 {
        self.latency_us.mean() / 1e3
    }
    /// Bytes written to storage per payload byte.
    pub fn amplification(&self) -> f64 {
        self.written_bytes as f64 / self.payload_bytes.max(1) as f64
    }
    pub fn written_mb_per_block(&self) -> f64 {
        self.written_bytes as f64 / self.blocks.max(1) as f64 / 1e6
    }
    /// Device writes per block (every process's), when known.
    pub fn device_mb_per_block(&self) -> Option<f64> {
        Some(self.device_bytes? as f64 / self.blocks.max(1) as f64 / 1e6)
    }
    pub fn writer_cpu_ms_per_block(&self) -> f64 {
        self.writer_cpu.as_secs_f64() * 1e3 / self.blocks.max(1) as f64
    }
    pub fn other_cpu_ms_per_block(&self) -> f64 {
        self.other_cpu.as_secs_f64() * 1e3 / self.blocks.max(1) as f64
    }
}

fn cpu_clock(id: rustix::time::ClockId) -> Duration {
    let t = rustix::time::clock_gettime(id);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu() -> Duration {
    cpu_clock(rustix::time::ClockId::ThreadCPUTime)
}

/// CPU time of the whole process, every thread, exited ones included
/// (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu() -> Duration {
    cpu_clock(rustix::time::ClockId::ProcessCPUTime)
}

/// `write_bytes` of `/proc/self/io`: bytes this process caused to be
/// written to storage.
pub fn process_written() -> Result<u64, String> {
    let s = std::fs::read_to_string("/proc/self/io").map_err(|e| format!("/proc/self/io: {e}"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "/proc/self/io: no write_bytes".into())
}

/// Bytes allocated to the files under `dir` (a store that grows its file
/// ahead, or preallocates a journal, is charged for it).
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The block device holding `path`: its `stat` file under /sys.
pub fn device_stat(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let p = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    p.exists().then_some(p)
}

/// Bytes written to the device so far (sectors written, field 7, times
/// 512), by every process: the file system's journal and metadata
/// included.
pub fn device_written(stat: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(stat).ok()?;
    let sectors: u64 = s.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// A fresh, empty directory under `base` for one run.
fn run_dir(base: &Path, c: Candidate) -> Result<PathBuf, String> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = base.join(format!("attnet-storage-{}-{}-{n}", std::process::id(), c.name()));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

/// Runs `c` on `s` for `blocks` blocks in a fresh directory under `base`
/// (removed afterwards). Block `i` is due at `start + i * interval`: the
/// writer sleeps until it is due, or, when a slow commit left it behind,
/// writes it at once (as a node with a queue of final blocks would). The
/// next block's random bytes are made between commits, untimed.
pub fn run(c: Candidate, s: Scenario, blocks: u64, base: &Path) -> Result<Run, String> {
    let dir = run_dir(base, c)?;
    let r = run_in(c, s, blocks, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_in(c: Candidate, s: Scenario, blocks: u64, dir: &Path) -> Result<Run, String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(s.tx_per_s) ^ u64::from(s.interval_ms) << 32);
    let mut block = vec![0u8; s.block_len()];
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).map_err(|e| format!("histogram: {e}"))?;
    let mut store = c.open(dir)?;
    let dev = device_stat(dir);
    let dev0 = dev.as_deref().and_then(device_written);
    let (written0, proc0, thread0) = (process_written()?, process_cpu(), thread_cpu());
    let mut writer_cpu = Duration::ZERO;
    let mut overruns = 0;
    let interval = s.interval();
    let start = Instant::now();
    for height in 1..=blocks {
        rng.fill_bytes(&mut block);
        let due = start + interval * (height - 1) as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        store.commit(height, &block)?;
        let took = t0.elapsed();
        writer_cpu += thread_cpu().saturating_sub(cpu0);
        latency_us.saturating_record(took.as_micros().max(1) as u64);
        overruns += u64::from(took > interval);
    }
    let wall = start.elapsed();
    let (written1, proc1, thread1) = (process_written()?, process_cpu(), thread_cpu());
    let dev1 = dev.as_deref().and_then(device_written);
    drop(store);
    Ok(Run {
        candidate: c,
        scenario: s,
        blocks,
        latency_us,
        payload_bytes: blocks * s.block_len() as u64,
        written_bytes: written1.saturating_sub(written0),
        device_bytes: dev0.zip(dev1).map(|(a, b)| b.saturating_sub(a)),
        disk_bytes: disk_bytes(dir),
        writer_cpu,
        other_cpu: proc1.saturating_sub(proc0).saturating_sub(thread1.saturating_sub(thread0)),
        overruns,
        wall,
    })
}

/// The commit p99 the choice must meet at 100 k tx/s, milliseconds.
pub const GOAL_P99_MS: f64 = 20.0;

/// The rows of one repetition of one scenario: every candidate's figures,
/// the others' latencies also as ratios to the log's, measured in the same
/// repetition.
pub fn rows(rep: usize, runs: &[Run]) -> Vec<Row> {
    let log = runs.iter().find(|r| r.candidate == Candidate::Log);
    let mut out = Vec::new();
    for r in runs {
        let n = |what: &str| format!("rep {rep}: {} {what}", r.candidate.name());
        let vs_log = |what: &str, v: f64, base: Option<f64>| match (r.candidate, base) {
            (Candidate::Log, _) | (_, None) => Row::plain(n(what), v, "ms", false),
            (_, Some(b)) => Row::vs(n(what), v, "ms", format!("rep {rep}: log {what}"), b).lower_is_better(),
        };
        out.push(vs_log("commit p50", r.p50_ms(), log.map(Run::p50_ms)));
        out.push(vs_log("commit p99", r.p99_ms(), log.map(Run::p99_ms)));
        out.push(vs_log("commit max", r.max_ms(), log.map(Run::max_ms)));
        out.push(vs_log("commit mean", r.mean_ms(), log.map(Run::mean_ms)));
        out.push(
            Row::vs(
                n("written per block"),
                r.written_mb_per_block(),
                "MB",
                "payload per block",
                r.scenario.block_len() as f64 / 1e6,
            )
            .lower_is_better(),
        );
        if let Some(d) = r.device_mb_per_block() {
            out.push(Row::plain(n("device writes per block (every process)"), d, "MB", false));
        }
        out.push(Row::plain(n("allocated on disk at the end"), r.disk_bytes as f64 / 1e6, "MB", false));
        out.push(Row::plain(n("writing thread CPU per block"), r.writer_cpu_ms_per_block(), "ms", false));
        out.push(Row::plain(n("other threads' CPU per block"), r.other_cpu_ms_per_block(), "ms", false));
        out.push(Row::plain(n("commits longer than the interval"), r.overruns as f64, "blocks", false));
        out.push(Row::plain(n("blocks"), r.blocks as f64, "blocks", true));
    }
    out
}

/// A section per scenario: `runs[rep]` holds that repetition's runs of it.
pub fn section(s: Scenario, runs: &[Vec<Run>], secs: f64) -> Section {
    let rows = runs.iter().enumerate().flat_map(|(i, r)| rows(i + 1, r)).collect();
    Section::measured(
        &format!("storage {}", s.key()),
        format!(
            "{}: {} blocks of random bytes ({secs} s) per candidate and repetition, the candidates one after \
             the other in a rotating order; commit = write start to durable (ms, HdrHistogram); ratios are to \
             the log in the same repetition; written = the process's /proc/self/io write_bytes over the run \
             (background threads included) per block, against the payload; device writes = sectors written to \
             the store's block device over the run, journal and metadata included, by every process on the \
             machine; CPU from CLOCK_THREAD_CPUTIME_ID \
             (the writing thread, over its commits) and CLOCK_PROCESS_CPUTIME_ID less the writing thread's \
             (the other threads, over the run).",
            s.label(),
            s.blocks_in(secs),
        ),
        rows,
    )
}

/// A markdown table of `runs` (one scenario, every repetition).
pub fn table(s: Scenario, runs: &[Vec<Run>]) -> String {
    let mut t = format!(
        "### {}\n\n| rep | store | p50 ms | p99 ms | max ms | p99 vs log | written MB/block | written / payload | \
         device MB/block | writer CPU ms/block | other CPU ms/block | commits > {} ms | allocated MB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        s.label(),
        s.interval_ms
    );
    for (i, rep) in runs.iter().enumerate() {
        let log = rep.iter().find(|r| r.candidate == Candidate::Log).map(Run::p99_ms);
        for r in rep {
            let ratio = log.filter(|l| *l > 0.0).map(|l| format!("{:.2}", r.p99_ms() / l)).unwrap_or("-".into());
            t.push_str(&format!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {ratio} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {} / {} | {:.0} |\n",
                i + 1,
                r.candidate.name(),
                r.p50_ms(),
                r.p99_ms(),
                r.max_ms(),
                r.written_mb_per_block(),
                r.amplification(),
                r.device_mb_per_block().map(|d| format!("{d:.2}")).unwrap_or("-".into()),
                r.writer_cpu_ms_per_block(),
                r.other_cpu_ms_per_block(),
                r.overruns,
                r.blocks,
                r.disk_bytes as f64 / 1e6,
            ));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: Scenario = Scenario { tx_per_s: 5_000, interval_ms: 10 };

    /// Walks the log's records, checking each CRC32C; returns their count.
    fn log_records(mut b: &[u8], len: usize) -> Result<u64, String> {
        let mut n = 0;
        while !b.is_empty() {
            let (h, rest) = b.split_at_checked(LOG_RECORD_OVERHEAD).ok_or("torn header")?;
            let l = u32::from_le_bytes(h[..4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(h[4..].try_into().unwrap());
            let (p, rest) = rest.split_at_checked(l).ok_or("torn payload")?;
            if crc32c::crc32c(p) != crc || l != len {
                return Err(format!("record {n}: bad CRC or length {l}"));
            }
            n += 1;
            b = rest;
        }
        Ok(n)
    }

    /// Commits `n` blocks of `TINY` to `c` in `dir` as the writer does.
    fn fill(c: Candidate, dir: &Path, n: u64) -> Vec<Vec<u8>> {
        let mut store = c.open(dir).unwrap();
        let blocks: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; TINY.block_len()]).collect();
        for (h, b) in blocks.iter().enumerate() {
            store.commit(h as u64 + 1, b).unwrap();
        }
        blocks
    }

    #[test]
    fn log_records_read_back_with_their_crc() {
        let dir = tempfile::tempdir().unwrap();
        fill(Candidate::Log, dir.path(), 5);
        let mut bytes = std::fs::read(dir.path().join("blocks.log")).unwrap();
        assert_eq!(bytes.len(), 5 * (LOG_RECORD_OVERHEAD + TINY.block_len()));
        assert_eq!(log_records(&bytes, TINY.block_len()), Ok(5));
        // A flipped payload bit fails its record's CRC.
        bytes[LOG_RECORD_OVERHEAD + 17] ^= 1;
        assert!(log_records(&bytes, TINY.block_len()).unwrap_err().starts_with("record 0"));
    }

    #[test]
    fn redb_and_fjall_hold_every_block_by_height() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = fill(Candidate::Redb, dir.path(), 4);
        let db = redb::Database::open(dir.path().join("blocks.redb")).unwrap();
        let rx = db.begin_read().unwrap();
        let t = rx.open_table(REDB_BLOCKS).unwrap();
        for (h, b) in blocks.iter().enumerate() {
            assert_eq!(t.get(h as u64 + 1).unwrap().unwrap().value(), &b[..]);
        }
        assert_eq!(redb::ReadableTableMetadata::len(&t).unwrap(), 4);

        let dir = tempfile::tempdir().unwrap();
        let blocks = fill(Candidate::Fjall, dir.path(), 4);
        let f = FjallStore::open(&dir.path().join("fjall")).unwrap();
        for (h, b) in blocks.iter().enumerate() {
            let got = f.blocks().get((h as u64 + 1).to_be_bytes()).unwrap().unwrap();
            assert_eq!(&got[..], &b[..]);
        }
    }

    #[test]
    fn a_run_counts_every_block_and_its_bytes() {
        let base = tempfile::tempdir().unwrap();
        for c in Candidate::ALL {
            let r = run(c, TINY, 6, base.path()).unwrap();
            assert_eq!(r.blocks, 6);
            assert_eq!(r.latency_us.len(), 6);
            assert_eq!(r.payload_bytes, 6 * TINY.block_len() as u64);
            // Every store writes at least the payload (fjall may keep part
            // of it in its journal only until it is closed).
            assert!(r.disk_bytes >= r.payload_bytes || c == Candidate::Fjall, "{c:?}: {r:?}");
            assert!(r.writer_cpu > Duration::ZERO, "{c:?}");
            // Paced: six 10 ms slots take at least 50 ms.
            assert!(r.wall >= Duration::from_millis(50), "{c:?}: {:?}", r.wall);
            let rows = rows(1, std::slice::from_ref(&r));
            assert!(rows.iter().all(|row| row.value.is_finite()));
        }
        // Each run's directory is removed.
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn scenario_sizes() {
        let s = Scenario::ALL[0];
        assert_eq!(s.txs_per_block(), 20_000);
        assert_eq!(s.block_len(), 246 + 20_000 * 260);
        assert_eq!(Scenario::ALL[1].txs_per_block(), 4_000);
        assert_eq!(Scenario::ALL[2].txs_per_block(), 5_000);
        assert_eq!(s.blocks_in(20.0), 100);
        assert_eq!(Candidate::parse("redb"), Some(Candidate::Redb));
        assert_eq!(Candidate::parse("lmdb"), None);
    }

    #[test]
    fn proc_figures_read() {
        assert!(process_written().is_ok());
        let (t0, p0) = (thread_cpu(), process_cpu());
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (t1, p1) = (thread_cpu(), process_cpu());
        assert!(t1 > t0 && p1 > p0, "{t0:?} {t1:?} {p0:?} {p1:?}");
    }
}
