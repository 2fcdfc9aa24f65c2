//! Persistence: the data directory, the block log, state snapshots and
//! recovery (`docs/STORAGE.md` has the layout, the choice and the figures).
//!
//! ```text
//! D/lock                 held (flock) while a node runs on D
//! D/meta.json            genesis hash, network id, node key: checked at start
//! D/node.key             the node key generated on first start (mode 0600)
//! D/blocks/<H>.log       block log segments, named by their first height
//! D/snapshots/<H>.snap   the state after block H
//! D/admin.sock           the admin socket while the node runs
//! ```
//!
//! A log record is `u32 LE` payload length, `u32 LE` CRC32C of the
//! payload, then the payload: the block as [`Block::encode_into`] writes
//! it. Records are appended by the store thread ([`Store`]) and made
//! durable with one `fdatasync` per write (blocks that queue up meanwhile
//! share it); only then is a block's height published as durable, and only
//! durable blocks are reported committed.
//!
//! The length word's top bit marks the second kind of record, the receive
//! counters ([`ReceiveCounters`]): the highest counter accepted on each
//! configured session whose top moved since the last such record, read
//! from the shared replay windows when a write starts and written ahead of
//! that write's blocks, in the same `fdatasync`. Every block in the log is
//! therefore preceded by counters at least as high as when it was sealed;
//! snapshots carry the whole map, so removing old segments loses none.
//!
//! A snapshot is written aside (temporary file, `fsync`, `rename`, `fsync`
//! of the directory), so one is either whole or absent. Recovery
//! ([`recover`]) loads the newest snapshot, replays the log's later
//! blocks, executing each and checking its state root against its header,
//! and truncates a torn last record; any other damage is an error naming
//! the file and offset, which `attnet repair` ([`repair`]) resolves by
//! cutting the log there.
#![deny(clippy::indexing_slicing)]

pub mod archive;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attnet_core::replay::ReplayWindow;
use attnet_core::wire::tx::unsigned_part;
use hdrhistogram::Histogram;
use sha2::{Digest, Sha256};

use crate::block::{Block, Certificate};
use crate::genesis::Genesis;
use crate::merkle::Hash;
use crate::state::State;

/// The log record's prefix: length and CRC32C.
const RECORD_PREFIX: usize = 8;
/// The length word's flag of a receive-counters record.
const COUNTERS_RECORD: u32 = 1 << 31;
/// The length word's flag of a commit-certificate record.
const CERTIFICATE_RECORD: u32 = 1 << 30;
/// The length word's bits that are flags.
const RECORD_FLAGS: u32 = COUNTERS_RECORD | CERTIFICATE_RECORD;
/// A snapshot file's first bytes.
/// Version 3 adds the seats, the slashed total and the banned node keys.
const SNAP_MAGIC: &[u8; 8] = b"ATTSNAP3";
/// Snapshot header: magic, height, block hash, timestamp, state root, body
/// length, counters length, CRC32C (of the header before it, the body and
/// the counters).
const SNAP_HEADER: usize = 8 + 8 + 32 + 8 + 32 + 8 + 8 + 4;
/// Snapshots kept; older ones are removed after a new one is durable.
const SNAPSHOTS_KEPT: usize = 2;
/// The data directory's format, in `meta.json`: 2 since the block log and
/// the snapshots also hold receive counters, 3 since the log also holds
/// the commit certificates of a validator's final blocks.
const FORMAT: u64 = 3;

/// The highest counter accepted on each configured session (by session id,
/// receive direction), as persisted.
pub type ReceiveCounters = BTreeMap<u16, u64>;

/// A counters record's (or a snapshot's counters') payload: `u32 LE`
/// entries, then each one's `u16 LE` session id and `u64 LE` top.
fn encode_counters<'a>(entries: impl ExactSizeIterator<Item = (&'a u16, &'a u64)>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (id, top) in entries {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&top.to_le_bytes());
    }
}

/// Merges an encoded counters payload into `into` (each session keeps the
/// highest top); `None` if it does not decode exactly.
fn merge_counters(payload: &[u8], into: &mut ReceiveCounters) -> Option<()> {
    let (n, mut rest) = payload.split_first_chunk::<4>()?;
    let n = u32::from_le_bytes(*n) as usize;
    if rest.len() != n.checked_mul(10)? {
        return None;
    }
    while let Some((id, r)) = rest.split_first_chunk::<2>() {
        let (top, r) = r.split_first_chunk::<8>()?;
        let top = u64::from_le_bytes(*top);
        let e = into.entry(u16::from_le_bytes(*id)).or_insert(top);
        *e = (*e).max(top);
        rest = r;
    }
    Some(())
}

/// How the store writes.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// A new log segment starts once the current one holds this many bytes.
    pub segment_bytes: u64,
    /// A snapshot is written once this many transactions were stored since
    /// the last one (and at shutdown): it bounds what recovery replays.
    pub snapshot_txs: u64,
    /// Log bytes kept: whole segments older than this and older than the
    /// oldest kept snapshot are removed (0: keep every segment).
    pub retain_bytes: u64,
    /// Write each committed transaction id here (one hex id a line) once
    /// its block is durable.
    pub committed_ids: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { segment_bytes: 256 << 20, snapshot_txs: 1 << 20, retain_bytes: 64 << 30, committed_ids: None }
    }
}

fn blocks_dir(d: &Path) -> PathBuf {
    d.join("blocks")
}

fn snapshots_dir(d: &Path) -> PathBuf {
    d.join("snapshots")
}

fn io(what: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", what.display())
}

fn fsync_dir(d: &Path) -> Result<(), String> {
    File::open(d).and_then(|f| f.sync_all()).map_err(|e| io(d, e))
}

/// The lock on a data directory: one node per directory. Released when
/// dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `d` (mode 0700) and its subdirectories if needed and takes its
/// lock; an error if another process holds it.
pub fn lock(d: &Path) -> Result<DirLock, String> {
    use std::os::unix::fs::DirBuilderExt;
    for sub in [d.to_path_buf(), blocks_dir(d), snapshots_dir(d)] {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&sub).map_err(|e| io(&sub, e))?;
    }
    let p = d.join("lock");
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(&p).map_err(|e| io(&p, e))?;
    match f.try_lock() {
        Ok(()) => Ok(DirLock { _file: f, path: d.to_path_buf() }),
        Err(fs::TryLockError::WouldBlock) => {
            Err(format!("{}: another attnet node is running on this data directory", d.display()))
        }
        Err(fs::TryLockError::Error(e)) => Err(io(&p, e)),
    }
}

/// Whether a node holds `d`'s lock now.
pub fn is_locked(d: &Path) -> bool {
    let p = d.join("lock");
    match File::open(&p) {
        Ok(f) => matches!(f.try_lock_shared(), Err(fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

/// What `meta.json` records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Meta {
    format: u64,
    genesis_hash: String,
    network_id: u32,
    node_key: String,
}

/// Refuses a data directory of another format than this attnet's.
fn check_format(meta: &Path, format: u64) -> Result<(), String> {
    if format == FORMAT {
        return Ok(());
    }
    Err(format!(
        "{}: data directory format {format}, this attnet reads format {FORMAT} only (format 3: the block log also \
         holds commit certificates; format 2: the block log and snapshots also hold the receive counters of \
         configured sessions); use the attnet that wrote it, or start \
         on a new data directory",
        meta.display()
    ))
}

/// Records the genesis and the node key in a new data directory, or checks
/// them against an existing one: a directory serves one chain and one node
/// key.
pub fn check_meta(lock: &DirLock, genesis: &Genesis, node_key: &[u8; 32]) -> Result<(), String> {
    let d = lock.path();
    let p = d.join("meta.json");
    let want = Meta {
        format: FORMAT,
        genesis_hash: hex::encode(genesis.hash()),
        network_id: genesis.network_id(),
        node_key: hex::encode(node_key),
    };
    match fs::read_to_string(&p) {
        Ok(text) => {
            let have: Meta = serde_json::from_str(&text)
                .map_err(|e| format!("{}: not a data directory's meta: {e}", p.display()))?;
            check_format(&p, have.format)?;
            if have.genesis_hash != want.genesis_hash || have.network_id != want.network_id {
                return Err(format!(
                    "{} holds the chain of genesis {} (network id {}), not this genesis {} (network id {}): \
                     give the matching genesis or another data directory",
                    d.display(),
                    have.genesis_hash,
                    have.network_id,
                    want.genesis_hash,
                    want.network_id
                ));
            }
            if have.node_key != want.node_key {
                return Err(format!(
                    "{} belongs to node key {}, not {}: give that node's key (or none, to use {}) or another data directory",
                    d.display(),
                    have.node_key,
                    want.node_key,
                    d.join("node.key").display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The genesis beside it, so that a stopped node's directory can
            // be read and repaired with nothing else.
            write_aside(d, &d.join("genesis.json"), genesis.to_json().as_bytes())?;
            let text = serde_json::to_string_pretty(&want).map_err(|e| e.to_string())?;
            write_aside(d, &p, text.as_bytes())
        }
        Err(e) => Err(io(&p, e)),
    }
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside
/// it, `fsync`, `rename`, `fsync` of the directory.
pub(crate) fn write_aside(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    if let Err(e) = f.write_all(bytes).and_then(|_| f.sync_all()) {
        // A full disk: the partial file would only hold on to the space.
        let _ = fs::remove_file(&tmp);
        return Err(io(&tmp, e));
    }
    fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    fsync_dir(dir)
}

/// The genesis a data directory was started with (`D/genesis.json`,
/// checked against the hash in `D/meta.json`).
pub fn dir_genesis(d: &Path) -> Result<Genesis, String> {
    let p = d.join("meta.json");
    let text = fs::read_to_string(&p).map_err(|e| format!("{}: {e} (not a data directory?)", p.display()))?;
    let meta: Meta = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    check_format(&p, meta.format)?;
    let g = Genesis::load(d.join("genesis.json"))?;
    if hex::encode(g.hash()) != meta.genesis_hash {
        return Err(format!("{}: its hash is not the one {} records", d.join("genesis.json").display(), p.display()));
    }
    Ok(g)
}

/// The chain's tip: the last block's height, hash and timestamp (height 0:
/// the genesis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash,
    pub timestamp_ms: u64,
}

/// What [`recover`] found.
#[derive(Debug)]
pub struct Recovered {
    /// The state after the tip.
    pub state: State,
    pub tip: Tip,
    /// The snapshot loaded (0: none, replayed from the genesis).
    pub snapshot_height: u64,
    /// Reading, decoding and checking it (its root rebuilt).
    pub snapshot_load: Duration,
    /// Blocks and transactions replayed from the log after the snapshot.
    pub blocks_replayed: u64,
    pub txs_replayed: u64,
    /// A torn last record that was cut off: where, and how many bytes.
    pub truncated: Option<String>,
    /// The highest counter accepted on each configured session, as of the
    /// newest counters the snapshot and the log hold.
    pub counters: ReceiveCounters,
    pub elapsed: Duration,
}

impl Recovered {
    /// The summary's `recovered` object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "height": self.tip.height,
            "snapshot_height": self.snapshot_height,
            "snapshot_ms": self.snapshot_load.as_millis() as u64,
            "blocks": self.blocks_replayed,
            "txs": self.txs_replayed,
            "ms": self.elapsed.as_millis() as u64,
            "truncated": self.truncated,
            "counters": self.counters.len(),
        })
    }
}

/// A log segment: its path and first height.
#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    path: PathBuf,
}

/// Files in `dir` named `<20 digits>.<ext>`, by that number.
fn numbered(dir: &Path, ext: &str) -> Result<Vec<(u64, PathBuf)>, String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let e = e.map_err(|e| io(dir, e))?;
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some(ext) {
            continue;
        }
        if let Some(n) = p.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok()) {
            out.push((n, p));
        }
    }
    out.sort_by_key(|(n, _)| *n);
    Ok(out)
}

fn segments(d: &Path) -> Result<Vec<Segment>, String> {
    Ok(numbered(&blocks_dir(d), "log")?.into_iter().map(|(first, path)| Segment { first, path }).collect())
}

fn segment_path(d: &Path, first: u64) -> PathBuf {
    blocks_dir(d).join(format!("{first:020}.log"))
}

fn snapshot_path(d: &Path, height: u64) -> PathBuf {
    snapshots_dir(d).join(format!("{height:020}.snap"))
}

/// One record read from the log.
enum Next {
    Block(Vec<u8>),
    /// A receive-counters record's payload.
    Counters(Vec<u8>),
    /// A commit-certificate record's payload ([`Certificate::decode`]).
    Certificate(Vec<u8>),
    End,
    /// A record that does not check out at `offset`: `torn` if it can only
    /// be an interrupted last write (it runs to or past the end, or only
    /// zeros follow).
    Bad {
        offset: u64,
        torn: bool,
        why: String,
    },
}

/// Reads a segment's records in order.
struct SegmentReader {
    data: Vec<u8>,
    at: usize,
}

impl SegmentReader {
    fn open(p: &Path) -> Result<SegmentReader, String> {
        let data = fs::read(p).map_err(|e| io(p, e))?;
        Ok(SegmentReader { data, at: 0 })
    }

    fn next(&mut self) -> Next {
        let rest = self.data.get(self.at..).unwrap_or_default();
        if rest.is_empty() {
            return Next::End;
        }
        let offset = self.at as u64;
        let zeros = rest.iter().all(|b| *b == 0);
        let Some(prefix) = rest.first_chunk::<RECORD_PREFIX>() else {
            return Next::Bad { offset, torn: true, why: format!("{} bytes, shorter than a record", rest.len()) };
        };
        let word = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let len = (word & !RECORD_FLAGS) as usize;
        let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        let Some(payload) = rest.get(RECORD_PREFIX..RECORD_PREFIX + len) else {
            return Next::Bad { offset, torn: true, why: format!("a record of {len} bytes runs past the end") };
        };
        if len == 0 || word & RECORD_FLAGS == RECORD_FLAGS || crc32c::crc32c(payload) != crc {
            let ends_file = RECORD_PREFIX + len == rest.len();
            return Next::Bad { offset, torn: ends_file || zeros, why: "checksum mismatch".into() };
        }
        self.at += RECORD_PREFIX + len;
        if word & COUNTERS_RECORD != 0 {
            Next::Counters(payload.to_vec())
        } else if word & CERTIFICATE_RECORD != 0 {
            Next::Certificate(payload.to_vec())
        } else {
            Next::Block(payload.to_vec())
        }
    }

    /// The next block record's payload, past counters records; `None` at
    /// the end or at the first record that does not check out.
    fn next_block(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.next() {
                Next::Block(p) => return Some(p),
                Next::Counters(_) | Next::Certificate(_) => continue,
                Next::End | Next::Bad { .. } => return None,
            }
        }
    }
}

/// Snapshots from this size on are said in the log as they load.
const SNAPSHOT_SAID: u64 = 16 << 20;

/// Loads the newest snapshot: the state, its tip. `Ok(None)` if there is
/// none; an error if the newest one does not check out.
fn load_snapshot(d: &Path, inbox_capacity: usize) -> Result<Option<(State, Tip, ReceiveCounters)>, String> {
    let snaps = numbered(&snapshots_dir(d), "snap")?;
    let Some((_, p)) = snaps.last() else { return Ok(None) };
    let started = Instant::now();
    let size = fs::metadata(p).map_or(0, |m| m.len());
    // A large state takes a second or more to read, decode and hash: said
    // before and after, with the time it took.
    let say = size >= SNAPSHOT_SAID;
    if say {
        tracing::info!("loading snapshot {} ({} MiB)", p.display(), size >> 20);
    }
    let bytes = fs::read(p).map_err(|e| io(p, e))?;
    let bad = |why: &str| format!("{}: {why}: a damaged snapshot (`attnet repair` removes it)", p.display());
    let hdr = bytes.get(..SNAP_HEADER).ok_or_else(|| bad("shorter than a snapshot header"))?;
    if hdr.get(..7) == Some(&SNAP_MAGIC[..7]) && hdr.get(..8) != Some(&SNAP_MAGIC[..]) {
        return Err(format!(
            "{}: a snapshot of another format than this build's ({}): remove it (`attnet repair`); \
             the blocks replay from genesis",
            p.display(),
            String::from_utf8_lossy(SNAP_MAGIC)
        ));
    }
    if hdr.get(..8) != Some(&SNAP_MAGIC[..]) {
        return Err(bad("not a snapshot"));
    }
    let u64_at = |o: usize| hdr.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0);
    let h32_at = |o: usize| -> Hash { hdr.get(o..o + 32).and_then(|b| b.try_into().ok()).unwrap_or([0; 32]) };
    let height = u64_at(8);
    let hash = h32_at(16);
    let timestamp_ms = u64_at(48);
    let root = h32_at(56);
    let body_len = u64_at(88) as usize;
    let counters_len = u64_at(96) as usize;
    let crc = hdr.get(104..108).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).unwrap_or(0);
    let rest = bytes.get(SNAP_HEADER..).ok_or_else(|| bad("no body"))?;
    if Some(rest.len()) != body_len.checked_add(counters_len) {
        return Err(bad("length mismatch"));
    }
    let (body, counters) = rest.split_at(body_len);
    let want = crc32c::crc32c_append(crc32c::crc32c(hdr.get(8..104).unwrap_or_default()), rest);
    if want != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut tops = ReceiveCounters::new();
    merge_counters(counters, &mut tops).ok_or_else(|| bad("undecodable receive counters"))?;
    let state: State = postcard::from_bytes(body).map_err(|e| bad(&format!("undecodable ({e})")))?;
    let mut state = state.with_root_rebuilt(inbox_capacity);
    if state.root() != root {
        return Err(bad("its state does not hash to the root it records"));
    }
    if say {
        tracing::info!(
            "snapshot of block {height} loaded: {} accounts in {} ms ({:.0} MiB/s)",
            state.account_count(),
            started.elapsed().as_millis(),
            size as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64().max(1e-3)
        );
    }
    Ok(Some((state, Tip { height, hash, timestamp_ms }, tops)))
}

/// Serializes a snapshot of `state` after `tip`, with the receive counters.
fn encode_snapshot(state: &mut State, tip: Tip, tops: &ReceiveCounters) -> Result<Vec<u8>, String> {
    let root = state.root();
    let mut body = postcard::to_stdvec(&*state).map_err(|e| format!("snapshot: {e}"))?;
    let state_len = body.len();
    encode_counters(tops.iter(), &mut body);
    let mut out = Vec::with_capacity(SNAP_HEADER + body.len());
    out.extend_from_slice(SNAP_MAGIC);
    out.extend_from_slice(&tip.height.to_le_bytes());
    out.extend_from_slice(&tip.hash);
    out.extend_from_slice(&tip.timestamp_ms.to_le_bytes());
    out.extend_from_slice(&root);
    out.extend_from_slice(&(state_len as u64).to_le_bytes());
    out.extend_from_slice(&((body.len() - state_len) as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(out.get(8..).unwrap_or_default()), &body);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Executes one block on `state`, which is after `tip`: checks that it
/// extends the tip, runs its transactions (each must apply: they did when
/// the block was built), ends the block and compares the state root with
/// the header's. Returns the new tip.
pub fn apply_block(state: &mut State, tip: Tip, b: &Block) -> Result<Tip, String> {
    let h = b.header();
    if h.height != tip.height + 1 || h.parent != tip.hash {
        return Err(format!(
            "block {} (parent {}) does not extend block {} ({})",
            h.height,
            hex::encode(h.parent),
            tip.height,
            hex::encode(tip.hash)
        ));
    }
    state.apply_block(b).map_err(|e| format!("block {}: {e}", h.height))?;
    // Replayed blocks are final: nothing to keep for a rollback.
    state.commit_oldest();
    Ok(Tip { height: h.height, hash: b.hash(), timestamp_ms: h.timestamp_ms })
}

/// Recovers the state of data directory `d` (locked by the caller, or
/// read-only when no node runs): the newest snapshot, then every later
/// block of the log executed and checked. A torn last record is cut off
/// (unless `read_only`); any other damage is an error naming file and
/// offset.
pub fn recover(d: &Path, genesis: &Genesis, inbox_capacity: usize, read_only: bool) -> Result<Recovered, String> {
    recover_with_progress(d, genesis, inbox_capacity, read_only, &mut |_, _| {})
}

/// [`recover`], calling `progress(read, total)` with the bytes of log it
/// has read of those it will read, after every block.
pub fn recover_with_progress(
    d: &Path,
    genesis: &Genesis,
    inbox_capacity: usize,
    read_only: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Recovered, String> {
    let started = Instant::now();
    let genesis_tip = Tip { height: 0, hash: genesis.hash(), timestamp_ms: 0 };
    let (mut state, snap_tip, mut counters) = match load_snapshot(d, inbox_capacity)? {
        Some((s, tip, c)) => (s, tip, c),
        None => (State::new(genesis, inbox_capacity), genesis_tip, ReceiveCounters::new()),
    };
    let snapshot_load = started.elapsed();
    // Nothing else runs yet: each replayed block's state root may use
    // every CPU (the same root; the state goes back to one thread below).
    state.set_root_threads(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut tip = snap_tip;
    let (mut blocks, mut txs) = (0u64, 0u64);
    let mut truncated = None;
    let segs = segments(d)?;
    if let Some(first) = segs.first() {
        if first.first > snap_tip.height + 1 {
            return Err(format!(
                "{}: the log starts at block {} but the newest snapshot is of block {}: blocks {}..{} are missing \
                 (retention removed them) and no snapshot in {} covers them; put back a snapshot of block {} or \
                 later, or start from a copy of a whole data directory: `attnet repair --data-dir {}` cannot \
                 rebuild removed blocks",
                blocks_dir(d).display(),
                first.first,
                snap_tip.height,
                snap_tip.height + 1,
                first.first - 1,
                snapshots_dir(d).display(),
                first.first - 1,
                d.display()
            ));
        }
    }
    let last_seg = segs.len().saturating_sub(1);
    // Recovery needs the blocks after the snapshot and the snapshot's own
    // (checked against it): a segment whose successor starts at or before
    // the snapshot's block holds none of them and is not read (`attnet
    // repair` and the queries still read every segment).
    let skipped = |si: usize| segs.get(si + 1).is_some_and(|next| next.first <= snap_tip.height);
    let total: u64 = (0..segs.len())
        .filter(|&si| !skipped(si))
        .filter_map(|si| segs.get(si).and_then(|s| fs::metadata(&s.path).ok()).map(|m| m.len()))
        .sum();
    let mut read_before = 0u64;
    for (si, seg) in segs.iter().enumerate() {
        if skipped(si) {
            continue;
        }
        let mut r = SegmentReader::open(&seg.path)?;
        let mut expect = seg.first;
        loop {
            match r.next() {
                Next::End => break,
                // Served to peers catching up; nothing to recover from it.
                Next::Certificate(_) => {}
                Next::Counters(payload) => {
                    // Any counters record is history of the same sessions:
                    // each keeps its highest top.
                    merge_counters(&payload, &mut counters).ok_or_else(|| {
                        format!(
                            "{} offset {}: a counters record that does not decode (`attnet repair` cuts the log there)",
                            seg.path.display(),
                            r.at - payload.len() - RECORD_PREFIX
                        )
                    })?;
                }
                Next::Block(payload) => {
                    let at = r.at;
                    let b = Block::decode(&payload).ok_or_else(|| {
                        format!("{} offset {}: a record that is not a block", seg.path.display(), at - payload.len())
                    })?;
                    let h = b.header().height;
                    if h != expect {
                        return Err(format!(
                            "{}: block {h} where block {expect} belongs (`attnet repair` cuts the log there)",
                            seg.path.display()
                        ));
                    }
                    expect += 1;
                    if h <= snap_tip.height {
                        if h == snap_tip.height && b.hash() != snap_tip.hash {
                            return Err(format!(
                                "{}: block {h} is not the block the newest snapshot follows",
                                seg.path.display()
                            ));
                        }
                        continue;
                    }
                    tip = apply_block(&mut state, tip, &b)
                        .map_err(|e| format!("{} offset {}: {e}", seg.path.display(), at - payload.len() - 8))?;
                    blocks += 1;
                    txs += b.len() as u64;
                    progress(read_before + r.at as u64, total);
                }
                Next::Bad { offset, torn, why } => {
                    if torn && si == last_seg {
                        let cut = r.data.len() as u64 - offset;
                        let what =
                            format!("{} offset {offset}: torn last record ({why}), {cut} bytes", seg.path.display());
                        if !read_only {
                            let f = OpenOptions::new().write(true).open(&seg.path).map_err(|e| io(&seg.path, e))?;
                            f.set_len(offset).and_then(|_| f.sync_all()).map_err(|e| io(&seg.path, e))?;
                        }
                        truncated = Some(what);
                        break;
                    }
                    return Err(format!(
                        "{} offset {offset}: {why}: the block log is damaged; `attnet repair --data-dir {}` cuts it \
                         there (the blocks after it are lost)",
                        seg.path.display(),
                        d.display()
                    ));
                }
            }
        }
        read_before += r.data.len() as u64;
    }
    progress(total, total);
    state.set_root_threads(1);
    let supply = state.supply();
    if !supply.holds() {
        return Err(format!("{}: the recovered state does not conserve the supply: {supply:?}", d.display()));
    }
    Ok(Recovered {
        state,
        tip,
        snapshot_height: snap_tip.height,
        snapshot_load,
        blocks_replayed: blocks,
        txs_replayed: txs,
        truncated,
        counters,
        elapsed: started.elapsed(),
    })
}

/// What [`repair`] did.
#[derive(Debug, Default)]
pub struct Repaired {
    pub actions: Vec<String>,
}

/// Makes a damaged data directory recoverable, losing as little as it
/// must: removes snapshots that do not check out; cuts the log at its
/// first damaged record and removes the later segments. What it did is
/// listed. The caller holds the lock.
pub fn repair(lock: &DirLock, genesis: &Genesis) -> Result<Repaired, String> {
    let d = lock.path();
    let mut out = Repaired::default();
    loop {
        match load_snapshot(d, usize::MAX) {
            Ok(_) => break,
            Err(e) => {
                let snaps = numbered(&snapshots_dir(d), "snap")?;
                let Some((_, p)) = snaps.last() else { break };
                fs::remove_file(p).map_err(|er| io(p, er))?;
                out.actions.push(format!("removed {} ({e})", p.display()));
            }
        }
    }
    let mut cut_after: Option<usize> = None;
    let segs = segments(d)?;
    'segs: for (si, seg) in segs.iter().enumerate() {
        let mut r = SegmentReader::open(&seg.path)?;
        let mut expect = seg.first;
        loop {
            let offset = r.at as u64;
            let bad = match r.next() {
                Next::End => break,
                Next::Counters(p) => {
                    if merge_counters(&p, &mut ReceiveCounters::new()).is_some() {
                        continue;
                    }
                    "a counters record that does not decode".to_string()
                }
                Next::Certificate(p) => {
                    if Certificate::decode(&p).is_some() {
                        continue;
                    }
                    "a certificate record that does not decode".to_string()
                }
                Next::Block(p) => match Block::decode(&p) {
                    Some(b) if b.header().height == expect => {
                        expect += 1;
                        continue;
                    }
                    _ => "a record that is not the next block".to_string(),
                },
                Next::Bad { why, .. } => why,
            };
            let f = OpenOptions::new().write(true).open(&seg.path).map_err(|e| io(&seg.path, e))?;
            f.set_len(offset).and_then(|_| f.sync_all()).map_err(|e| io(&seg.path, e))?;
            out.actions.push(format!(
                "cut {} at offset {offset} ({bad}): blocks from {expect} on are gone",
                seg.path.display()
            ));
            cut_after = Some(si);
            break 'segs;
        }
    }
    if let Some(si) = cut_after {
        for seg in segs.iter().skip(si + 1) {
            fs::remove_file(&seg.path).map_err(|e| io(&seg.path, e))?;
            out.actions.push(format!("removed {}", seg.path.display()));
        }
    }
    // A snapshot beyond the log's end would skip the cut blocks: the state
    // it holds is still a valid one of this chain, so it stays; recovery
    // replays nothing before it. Check the result now.
    match recover(d, genesis, usize::MAX, false) {
        Ok(r) => out.actions.push(format!("the directory recovers to block {}", r.tip.height)),
        Err(e) => return Err(format!("still not recoverable: {e}")),
    }
    Ok(out)
}

/// Reads block `height` from the log (a scan of one segment).
pub fn read_block(d: &Path, height: u64) -> Result<Option<Block>, String> {
    let segs = segments(d)?;
    let Some(seg) = segs.iter().rev().find(|s| s.first <= height) else { return Ok(None) };
    let mut r = SegmentReader::open(&seg.path)?;
    while let Some(p) = r.next_block() {
        if let Some(b) = Block::decode(&p) {
            if b.header().height == height {
                return Ok(Some(b));
            }
        }
    }
    Ok(None)
}

/// Every block of the log, in order, up to its end or its first record
/// that does not check out (audits and tests; holds them all in memory).
pub fn read_blocks(d: &Path) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    for seg in segments(d)? {
        let mut r = SegmentReader::open(&seg.path)?;
        while let Some(p) = r.next_block() {
            match Block::decode(&p) {
                Some(b) => out.push(b),
                None => return Ok(out),
            }
        }
    }
    Ok(out)
}

/// Finds transaction `id` in the log, newest block first: its block's
/// height and its index there.
pub fn find_tx(d: &Path, id: &[u8; 32]) -> Result<Option<(u64, usize, Vec<u8>)>, String> {
    for seg in segments(d)?.iter().rev() {
        let mut r = SegmentReader::open(&seg.path)?;
        let mut found = None;
        while let Some(p) = r.next_block() {
            if let Some(b) = Block::decode(&p) {
                for (i, t) in b.txs().enumerate() {
                    if tx_id(t) == *id {
                        found = Some((b.header().height, i, t.to_vec()));
                    }
                }
            }
        }
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// A transaction's id: SHA-256 of its unsigned part.
pub fn tx_id(tx: &[u8]) -> [u8; 32] {
    Sha256::digest(unsigned_part(tx)).into()
}

/// The store thread's figures.
#[derive(Debug, Clone)]
pub struct StoreReport {
    pub blocks: u64,
    pub txs: u64,
    pub bytes: u64,
    pub syncs: u64,
    pub snapshots: u64,
    pub segments_removed: u64,
    /// Receive-counters records written.
    pub counter_records: u64,
    /// Commit-certificate records written.
    pub certificates: u64,
    /// Sealed (handed to the store) → durable, microseconds, per block.
    pub commit_us: Histogram<u64>,
    /// Each `fdatasync` of the log, microseconds: the disk's part of
    /// `commit_us`.
    pub sync_us: Histogram<u64>,
    /// Each snapshot's writing, microseconds.
    pub snapshot_us: Histogram<u64>,
    /// The durable tip when the store stopped.
    pub height: u64,
}

impl StoreReport {
    /// The summary's `storage` object.
    pub fn to_json(&self) -> serde_json::Value {
        let q = |h: &Histogram<u64>, p: f64| if h.is_empty() { 0 } else { h.value_at_quantile(p) };
        serde_json::json!({
            "blocks": self.blocks,
            "txs": self.txs,
            "bytes": self.bytes,
            "syncs": self.syncs,
            "snapshots": self.snapshots,
            "segments_removed": self.segments_removed,
            "certificates": self.certificates,
            "counter_records": self.counter_records,
            "height": self.height,
            "commit_us": {"p50": q(&self.commit_us, 0.5), "p99": q(&self.commit_us, 0.99), "max": self.commit_us.max()},
            "sync_us": {"p50": q(&self.sync_us, 0.5), "p99": q(&self.sync_us, 0.99), "max": self.sync_us.max()},
            "snapshot_us": {"p50": q(&self.snapshot_us, 0.5), "max": self.snapshot_us.max()},
        })
    }
}

/// A question for the store thread, answered from the durable state.
pub type AdminQuery = Box<dyn FnOnce(&StoreView<'_>) -> serde_json::Value + Send>;

/// What an admin query sees: the state after the durable tip.
pub struct StoreView<'a> {
    pub dir: &'a Path,
    pub state: &'a State,
    pub tip: Tip,
}

enum Msg {
    Block(Box<Block>, Instant),
    /// A final block's commit certificate, written after the block.
    Certificate(Box<Certificate>),
    Admin(AdminQuery, crossbeam_channel::Sender<serde_json::Value>),
    /// Every block was handed over: finish (admin handles may outlive it).
    Stop,
    /// A configured session a reload added (or gave new keys): its window
    /// is seeded with the top persisted for its id, then persisted with
    /// every write; the reply says it is done.
    Window(u16, Arc<ReplayWindow>, crossbeam_channel::Sender<()>),
}

/// The control thread's end of the store thread.
pub struct Store {
    tx: Option<crossbeam_channel::Sender<Msg>>,
    /// Reads final blocks back for validators catching up.
    archive: archive::Archive,
    durable: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<StoreReport, String>>>,
}

/// A handle that sends admin queries to the store thread.
#[derive(Clone)]
pub struct AdminHandle {
    tx: crossbeam_channel::Sender<Msg>,
}

impl AdminHandle {
    /// Runs `q` on the store thread and waits (at most `timeout`) for its
    /// answer.
    pub fn ask(&self, q: AdminQuery, timeout: Duration) -> Option<serde_json::Value> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx.send(Msg::Admin(q, tx)).ok()?;
        rx.recv_timeout(timeout).ok()
    }
}

/// The receive side the store persists: the configured sessions' shared
/// replay windows, and the counters recovered (kept for sessions that are
/// not configured in this run).
#[derive(Debug, Clone, Default)]
pub struct ReceiveWindows {
    pub recovered: ReceiveCounters,
    pub windows: Vec<(u16, Arc<ReplayWindow>)>,
}

impl Store {
    /// Starts the store thread on data directory `lock`, whose recovered
    /// state and tip are `state` and `tip`; each write also persists the
    /// tops of `rx`'s windows.
    pub fn start(
        lock: &DirLock,
        cfg: StoreConfig,
        state: State,
        tip: Tip,
        rx: ReceiveWindows,
    ) -> Result<Store, String> {
        let d = lock.path().to_path_buf();
        let ids = match &cfg.committed_ids {
            Some(p) => Some(std::io::BufWriter::new(File::create(p).map_err(|e| io(p, e))?)),
            None => None,
        };
        let archive = archive::Archive::start(&d)?;
        let mut w = Writer::open(d, cfg, state, tip, ids, rx)?;
        // Deep enough that a slow disk is absorbed for a few blocks; beyond
        // that the control thread waits (and counts it).
        let (tx, rx) = crossbeam_channel::bounded::<Msg>(64);
        let durable = Arc::new(AtomicU64::new(tip.height));
        let failed = Arc::new(AtomicBool::new(false));
        let (dur, fail) = (durable.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("attnet-store".into())
            .spawn(move || {
                let r = w.run(&rx, &dur);
                if r.is_err() {
                    fail.store(true, Ordering::Release);
                }
                r
            })
            .map_err(|e| format!("store thread: {e}"))?;
        Ok(Store { tx: Some(tx), archive, durable, failed, thread: Some(thread) })
    }

    /// Hands a final block to the store thread. An error if the store
    /// thread has stopped (its error comes from [`Store::finish`]).
    pub fn append(&self, b: Block) -> Result<(), String> {
        let tx = self.tx.as_ref().ok_or("store closed")?;
        tx.send(Msg::Block(Box::new(b), Instant::now())).map_err(|_| "the store thread stopped".to_string())
    }

    /// Hands a final block's commit certificate to the store thread (after
    /// the block): it is kept in the log for validators catching up.
    pub fn append_certificate(&self, c: Certificate) -> Result<(), String> {
        let tx = self.tx.as_ref().ok_or("store closed")?;
        tx.send(Msg::Certificate(Box::new(c))).map_err(|_| "the store thread stopped".to_string())
    }

    /// The reader of final blocks for validators catching up.
    pub fn archive(&mut self) -> &mut archive::Archive {
        &mut self.archive
    }

    /// The height of the last durable block.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Whether the store thread stopped on an error.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Persists configured session `id`'s window from now on, first
    /// seeded with the top persisted for `id` (a capture of its frames
    /// from an earlier run stays `replay`). Waits for the store thread:
    /// the session must not be installed before its window is seeded.
    pub fn add_window(&self, id: u16, w: Arc<ReplayWindow>) -> Result<(), String> {
        let tx = self.tx.as_ref().ok_or("store closed")?;
        let (done, wait) = crossbeam_channel::bounded(1);
        tx.send(Msg::Window(id, w, done)).map_err(|_| "the store thread stopped".to_string())?;
        wait.recv_timeout(Duration::from_secs(10)).map_err(|_| "the store thread did not answer".to_string())
    }

    /// A handle for admin queries.
    pub fn admin(&self) -> Option<AdminHandle> {
        self.tx.as_ref().map(|tx| AdminHandle { tx: tx.clone() })
    }

    /// Stops the store thread once every block handed over is durable (and
    /// a last snapshot written); its figures.
    pub fn finish(mut self) -> Result<StoreReport, String> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Stop);
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the store thread panicked".into()),
            None => Err("store already finished".into()),
        }
    }
}

/// The store thread's state: the log. What follows a durable write (the
/// replica's execution, snapshots, retention, admin queries) is the
/// replica thread's, so that a snapshot of a large state (most of a
/// second at a million accounts) never holds up the next block's write.
struct Writer {
    d: PathBuf,
    cfg: StoreConfig,
    /// The durable tip's height.
    height: u64,
    seg: File,
    seg_path: PathBuf,
    seg_len: u64,
    ids: Option<std::io::BufWriter<File>>,
    record: Vec<u8>,
    /// The configured sessions' windows, and every top persisted so far.
    windows: Vec<(u16, Arc<ReplayWindow>)>,
    counters: ReceiveCounters,
    /// Scratch: the tops that moved since the last counters record.
    moved: ReceiveCounters,
    report: StoreReport,
    replica: ReplicaLink,
}

/// What the store thread hands the replica thread, in log order.
enum ReplicaMsg {
    /// Durable blocks, and every receive counter persisted with them.
    Blocks(Vec<Block>, ReceiveCounters),
    Admin(AdminQuery, crossbeam_channel::Sender<serde_json::Value>),
    /// The last blocks were handed over: a last snapshot, then stop.
    Stop(ReceiveCounters),
}

/// The store thread's end of the replica thread.
struct ReplicaLink {
    tx: Option<crossbeam_channel::Sender<ReplicaMsg>>,
    failed: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<ReplicaReport, String>>>,
}

impl ReplicaLink {
    fn send(&mut self, m: ReplicaMsg) -> Result<(), String> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(m).is_ok());
        if sent && !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        // It stopped on an error: that error is the store's.
        self.join().and_then(|_| Err("the store's replica thread stopped".into()))
    }

    fn join(&mut self) -> Result<ReplicaReport, String> {
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the store's replica thread panicked".into()),
            None => Err("the store's replica thread already stopped".into()),
        }
    }
}

/// The replica thread's figures, merged into the store's report.
struct ReplicaReport {
    snapshots: u64,
    segments_removed: u64,
    snapshot_us: Histogram<u64>,
}

/// The replica thread's state: the chain's state after the durable tip.
struct Replica {
    d: PathBuf,
    cfg: StoreConfig,
    state: State,
    tip: Tip,
    txs_since_snapshot: u64,
    counters: ReceiveCounters,
    report: ReplicaReport,
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds")
}

impl Writer {
    fn open(
        d: PathBuf,
        cfg: StoreConfig,
        state: State,
        tip: Tip,
        ids: Option<std::io::BufWriter<File>>,
        rx: ReceiveWindows,
    ) -> Result<Writer, String> {
        let (seg_path, seg_len) = match segments(&d)?.last() {
            Some(s) => {
                let len = fs::metadata(&s.path).map_err(|e| io(&s.path, e))?.len();
                (s.path.clone(), len)
            }
            None => (segment_path(&d, tip.height + 1), 0),
        };
        let seg = OpenOptions::new().create(true).append(true).open(&seg_path).map_err(|e| io(&seg_path, e))?;
        if seg_len == 0 {
            fsync_dir(&blocks_dir(&d))?;
        }
        let replica = Replica {
            d: d.clone(),
            cfg: cfg.clone(),
            state,
            tip,
            txs_since_snapshot: 0,
            counters: rx.recovered.clone(),
            report: ReplicaReport { snapshots: 0, segments_removed: 0, snapshot_us: histogram() },
        };
        // As deep as the store's own queue: a snapshot's worth of blocks
        // waits here, not in front of the log.
        let (to_replica, from_writer) = crossbeam_channel::bounded::<ReplicaMsg>(64);
        let failed = Arc::new(AtomicBool::new(false));
        let fail = failed.clone();
        let thread = std::thread::Builder::new()
            .name("attnet-replica".into())
            .spawn(move || {
                let r = replica.run(&from_writer);
                if r.is_err() {
                    fail.store(true, Ordering::Release);
                }
                r
            })
            .map_err(|e| format!("replica thread: {e}"))?;
        Ok(Writer {
            d,
            cfg,
            height: tip.height,
            seg,
            seg_path,
            seg_len,
            ids,
            record: Vec::new(),
            windows: rx.windows,
            counters: rx.recovered,
            moved: ReceiveCounters::new(),
            report: StoreReport {
                blocks: 0,
                txs: 0,
                bytes: 0,
                syncs: 0,
                snapshots: 0,
                segments_removed: 0,
                counter_records: 0,
                certificates: 0,
                commit_us: histogram(),
                sync_us: histogram(),
                snapshot_us: histogram(),
                height: tip.height,
            },
            replica: ReplicaLink { tx: Some(to_replica), failed, thread: Some(thread) },
        })
    }

    fn run(&mut self, rx: &crossbeam_channel::Receiver<Msg>, durable: &AtomicU64) -> Result<StoreReport, String> {
        let r = self.serve(rx, durable);
        if r.is_err() {
            // Stop the replica (its error, if it has one, is not the first).
            self.replica.tx = None;
            let _ = self.replica.join();
        }
        r
    }

    fn serve(&mut self, rx: &crossbeam_channel::Receiver<Msg>, durable: &AtomicU64) -> Result<StoreReport, String> {
        let mut batch: Vec<(Block, Instant)> = Vec::new();
        let mut certificates: Vec<Certificate> = Vec::new();
        let mut stopping = false;
        while !stopping {
            let first = match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            };
            let mut admin = Vec::new();
            let mut next = Some(first);
            // Group commit: whatever queued meanwhile shares one fdatasync.
            while let Some(m) = next.take() {
                match m {
                    Msg::Block(b, t) => batch.push((*b, t)),
                    Msg::Certificate(c) => certificates.push(*c),
                    Msg::Admin(q, reply) => admin.push((q, reply)),
                    Msg::Stop => stopping = true,
                    Msg::Window(id, w, done) => {
                        if let Some(top) = self.counters.get(&id) {
                            w.seed(*top);
                        }
                        self.windows.retain(|(i, _)| *i != id);
                        self.windows.push((id, w));
                        let _ = done.send(());
                    }
                }
                if batch.len() < 64 && !stopping {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() || !certificates.is_empty() {
                self.commit(&mut batch, &mut certificates, durable)?;
            }
            // Answered by the replica after the blocks committed before.
            for (q, reply) in admin {
                self.replica.send(ReplicaMsg::Admin(q, reply))?;
            }
            if self.replica.failed.load(Ordering::Acquire) {
                return self.replica.join().and_then(|_| Err("the store's replica thread stopped".into()));
            }
        }
        // Frames accepted since the last write (with no block to carry
        // them) are persisted too at a clean stop.
        if self.append_counters()? {
            self.seg.sync_data().map_err(|e| io(&self.seg_path, e))?;
            self.report.syncs += 1;
        }
        if let Some(w) = self.ids.as_mut() {
            w.flush().map_err(|e| format!("committed ids: {e}"))?;
        }
        self.replica.send(ReplicaMsg::Stop(self.counters.clone()))?;
        let r = self.replica.join()?;
        self.report.snapshots = r.snapshots;
        self.report.segments_removed = r.segments_removed;
        self.report.snapshot_us = r.snapshot_us;
        self.report.height = self.height;
        Ok(self.report.clone())
    }

    /// Writes `self.record` (a prefix's room, then the payload) to the
    /// segment, its prefix filled in (`flag` marks the record's kind).
    fn write_record(&mut self, flag: u32) -> Result<(), String> {
        let len = (self.record.len() - RECORD_PREFIX) as u32 | flag;
        let crc = crc32c::crc32c(self.record.get(RECORD_PREFIX..).unwrap_or_default());
        if let Some(p) = self.record.first_chunk_mut::<RECORD_PREFIX>() {
            let mut prefix = [0u8; RECORD_PREFIX];
            prefix[..4].copy_from_slice(&len.to_le_bytes());
            prefix[4..].copy_from_slice(&crc.to_le_bytes());
            *p = prefix;
        }
        self.seg.write_all(&self.record).map_err(|e| io(&self.seg_path, e))?;
        self.seg_len += self.record.len() as u64;
        self.report.bytes += self.record.len() as u64;
        Ok(())
    }

    /// Appends a counters record of the configured sessions whose top moved
    /// since the last one (none if none moved); true if it wrote one. The
    /// caller syncs.
    fn append_counters(&mut self) -> Result<bool, String> {
        self.moved.clear();
        for (id, w) in &self.windows {
            if let Some(top) = w.top() {
                if self.counters.get(id).is_none_or(|t| *t < top) {
                    self.moved.insert(*id, top);
                }
            }
        }
        if self.moved.is_empty() {
            return Ok(false);
        }
        self.record.clear();
        self.record.extend_from_slice(&[0; RECORD_PREFIX]);
        encode_counters(self.moved.iter(), &mut self.record);
        self.write_record(COUNTERS_RECORD)?;
        self.counters.extend(self.moved.iter().map(|(k, v)| (*k, *v)));
        self.report.counter_records += 1;
        Ok(true)
    }

    /// Appends, syncs, publishes, then hands the blocks to the replica.
    /// The receive counters, read now (after every block of the batch was
    /// sealed), go ahead of the blocks in the same sync: a block that is in
    /// the log after a crash has counters at least as of its sealing before
    /// it.
    fn commit(
        &mut self,
        batch: &mut Vec<(Block, Instant)>,
        certificates: &mut Vec<Certificate>,
        durable: &AtomicU64,
    ) -> Result<(), String> {
        self.append_counters()?;
        for (b, _) in batch.iter() {
            if self.seg_len >= self.cfg.segment_bytes {
                self.roll(b.header().height)?;
            }
            self.record.clear();
            self.record.extend_from_slice(&[0; RECORD_PREFIX]);
            b.encode_into(&mut self.record);
            self.write_record(0)?;
        }
        // A certificate follows its block (the control thread hands it over
        // after the block), in this write or a later one.
        for c in certificates.drain(..) {
            self.record.clear();
            self.record.extend_from_slice(&[0; RECORD_PREFIX]);
            c.encode_into(&mut self.record);
            self.write_record(CERTIFICATE_RECORD)?;
            self.report.certificates += 1;
        }
        let synced = Instant::now();
        self.seg.sync_data().map_err(|e| io(&self.seg_path, e))?;
        self.report.sync_us.saturating_record(synced.elapsed().as_micros().max(1) as u64);
        self.report.syncs += 1;
        let Some(last) = batch.last() else { return Ok(()) };
        self.height = last.0.header().height;
        durable.store(self.height, Ordering::Release);
        let mut blocks = Vec::with_capacity(batch.len());
        for (b, queued) in batch.drain(..) {
            self.report.commit_us.saturating_record(queued.elapsed().as_micros().max(1) as u64);
            if let Some(w) = self.ids.as_mut() {
                for t in b.txs() {
                    writeln!(w, "{}", hex::encode(tx_id(t))).map_err(|e| format!("committed ids: {e}"))?;
                }
            }
            self.report.blocks += 1;
            self.report.txs += b.len() as u64;
            blocks.push(b);
        }
        if let Some(w) = self.ids.as_mut() {
            w.flush().map_err(|e| format!("committed ids: {e}"))?;
        }
        self.replica.send(ReplicaMsg::Blocks(blocks, self.counters.clone()))
    }

    /// Starts a new segment whose first block is `height`.
    fn roll(&mut self, height: u64) -> Result<(), String> {
        self.seg_path = segment_path(&self.d, height);
        self.seg =
            OpenOptions::new().create(true).append(true).open(&self.seg_path).map_err(|e| io(&self.seg_path, e))?;
        self.seg_len = 0;
        fsync_dir(&blocks_dir(&self.d))
    }
}

impl Replica {
    fn run(mut self, rx: &crossbeam_channel::Receiver<ReplicaMsg>) -> Result<ReplicaReport, String> {
        while let Ok(m) = rx.recv() {
            match m {
                ReplicaMsg::Blocks(blocks, counters) => {
                    self.counters = counters;
                    for b in &blocks {
                        self.tip = apply_block(&mut self.state, self.tip, b)
                            .map_err(|e| format!("the store's replica diverged from the chain: {e}"))?;
                        self.txs_since_snapshot += b.len() as u64;
                    }
                    if self.txs_since_snapshot >= self.cfg.snapshot_txs {
                        self.snapshot()?;
                    }
                }
                ReplicaMsg::Admin(q, reply) => {
                    let v = q(&StoreView { dir: &self.d, state: &self.state, tip: self.tip });
                    let _ = reply.send(v);
                }
                ReplicaMsg::Stop(counters) => {
                    self.counters = counters;
                    if self.txs_since_snapshot > 0 {
                        self.snapshot()?;
                    }
                    break;
                }
            }
        }
        Ok(self.report)
    }

    /// Writes a snapshot of the replica, keeps the newest two, and removes
    /// log segments beyond retention.
    fn snapshot(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let bytes = encode_snapshot(&mut self.state, self.tip, &self.counters)?;
        let p = snapshot_path(&self.d, self.tip.height);
        write_aside(&snapshots_dir(&self.d), &p, &bytes)?;
        self.txs_since_snapshot = 0;
        self.report.snapshots += 1;
        let snaps = numbered(&snapshots_dir(&self.d), "snap")?;
        let keep_from = snaps.len().saturating_sub(SNAPSHOTS_KEPT);
        for (_, old) in snaps.iter().take(keep_from) {
            fs::remove_file(old).map_err(|e| io(old, e))?;
        }
        let oldest_kept = snaps.get(keep_from).map_or(self.tip.height, |(h, _)| *h);
        if self.cfg.retain_bytes > 0 {
            self.prune(oldest_kept)?;
        }
        self.report.snapshot_us.saturating_record(started.elapsed().as_micros().max(1) as u64);
        Ok(())
    }

    /// Removes the oldest segments while the log holds more than
    /// `retain_bytes` and the segment after it starts at or below
    /// `oldest_snapshot + 1` (recovery from that snapshot never needs it).
    /// Never the newest segment, the one the store thread appends to.
    fn prune(&mut self, oldest_snapshot: u64) -> Result<(), String> {
        let segs = segments(&self.d)?;
        let mut sizes = Vec::with_capacity(segs.len());
        for s in &segs {
            sizes.push(fs::metadata(&s.path).map_err(|e| io(&s.path, e))?.len());
        }
        let mut total: u64 = sizes.iter().sum();
        for (i, s) in segs.iter().enumerate() {
            let Some(next) = segs.get(i + 1) else { break };
            if total <= self.cfg.retain_bytes || next.first > oldest_snapshot + 1 {
                break;
            }
            fs::remove_file(&s.path).map_err(|e| io(&s.path, e))?;
            total -= sizes.get(i).copied().unwrap_or(0);
            self.report.segments_removed += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::block::BlockConfig;
    use crate::chain::{Chain, ChainConfig};
    use crate::genesis::GenesisAccount;
    use crate::ledger::LedgerConfig;
    use attnet_core::wire::tx::{Kind, Repr};

    const A: [u8; 32] = [0xA; 32];
    const B: [u8; 32] = [0xB; 32];
    const P: [u8; 32] = [0x7; 32];

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("attnet-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn genesis() -> Genesis {
        Genesis::new(9, [GenesisAccount { key: A, balance: 1_000_000 }]).unwrap()
    }

    fn tx(kind: Kind, from: [u8; 32], to: [u8; 32], nonce: u64, amount: u64, memo: &[u8]) -> Vec<u8> {
        let r = Repr { kind, from, to, nonce, amount, fee: 2, memo, signature: [0; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        b
    }

    /// Builds `blocks` blocks of a few transactions each (transfers,
    /// messages, a stake), hands them to a store on `d`, and returns the
    /// chain's final state root and tip height.
    fn write_chain(d: &Path, blocks: u64, cfg: StoreConfig) -> (Hash, u64) {
        write_chain_rx(d, blocks, cfg, &[], false)
    }

    /// [`write_chain`] with configured sessions' windows: before block `i`
    /// of this run each window `(id, w)` accepts counter `1000 * id + i`;
    /// with `certify`, each block is followed by [`certificate`]`(height)`.
    fn write_chain_rx(
        d: &Path,
        blocks: u64,
        cfg: StoreConfig,
        windows: &[(u16, Arc<ReplayWindow>)],
        certify: bool,
    ) -> (Hash, u64) {
        let g = genesis();
        let lock = lock(d).unwrap();
        check_meta(&lock, &g, &P).unwrap();
        let r = recover(d, &g, 16, false).unwrap();
        let tip = r.tip;
        let mut c = Chain::resume(
            &g,
            ChainConfig { ledger: LedgerConfig::default(), block: BlockConfig::default(), producer: Some(P) },
            r.state.clone(),
            tip.height,
            tip.hash,
            tip.timestamp_ms,
        );
        let rx = ReceiveWindows { recovered: r.counters, windows: windows.to_vec() };
        let store = Store::start(&lock, cfg, r.state, tip, rx).unwrap();
        let mut now = 1_000 + tip.timestamp_ms;
        for i in 0..blocks {
            for (id, w) in windows {
                w.update(1000 * u64::from(*id) + i).unwrap();
            }
            let n = c.ledger().account(&A).unwrap().nonce;
            c.submit(&tx(Kind::Transfer, A, B, n + 1, 100, b""), now).unwrap();
            c.submit(&tx(Kind::Message, A, B, n + 2, 0, b"hello"), now).unwrap();
            c.submit(&tx(Kind::Stake, A, A, n + 3, 5, b""), now).unwrap();
            now += 1_000;
            for b in c.poll(now) {
                let h = b.header().height;
                store.append(b).unwrap();
                if certify {
                    store.append_certificate(certificate(h)).unwrap();
                }
            }
        }
        for b in c.finish(now) {
            let h = b.header().height;
            store.append(b).unwrap();
            if certify {
                store.append_certificate(certificate(h)).unwrap();
            }
        }
        let rep = store.finish().unwrap();
        assert_eq!(rep.height, c.height());
        (c.state_root(), c.height())
    }

    #[test]
    fn a_chain_recovers_to_the_same_state_root_and_continues() {
        let d = tmp("recover");
        let cfg = StoreConfig { snapshot_txs: 10, segment_bytes: 2_000, ..StoreConfig::default() };
        let (root, height) = write_chain(&d, 12, cfg.clone());
        assert_eq!(height, 12);
        assert!(segments(&d).unwrap().len() > 1, "small segments roll");
        let mut r = recover(&d, &genesis(), 16, true).unwrap();
        assert_eq!((r.tip.height, r.state.root()), (12, root));
        assert_eq!(r.snapshot_height, 12, "a snapshot at shutdown");
        // Without snapshots the log alone replays to the same root.
        for (_, p) in numbered(&snapshots_dir(&d), "snap").unwrap() {
            fs::remove_file(p).unwrap();
        }
        // The replay reports its progress: bytes read of the whole log,
        // rising, to the end.
        let mut seen: Vec<(u64, u64)> = Vec::new();
        let mut r = recover_with_progress(&d, &genesis(), 16, true, &mut |a, b| seen.push((a, b))).unwrap();
        assert_eq!((r.tip.height, r.blocks_replayed, r.state.root()), (12, 12, root));
        assert!(r.state.supply().holds());
        let log: u64 = segments(&d).unwrap().iter().map(|s| fs::metadata(&s.path).unwrap().len()).sum();
        assert_eq!(seen.last(), Some(&(log, log)), "{seen:?}");
        assert!(seen.len() > 12 && seen.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 == log), "{seen:?}");
        // A second run continues the chain.
        let (_, height) = write_chain(&d, 3, cfg);
        assert_eq!(height, 15);
        assert_eq!(recover(&d, &genesis(), 16, true).unwrap().tip.height, 15);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_torn_last_record_is_cut_and_other_damage_is_named_and_repaired() {
        let d = tmp("torn");
        let cfg = StoreConfig { snapshot_txs: u64::MAX, ..StoreConfig::default() };
        write_chain(&d, 5, cfg);
        for (_, p) in numbered(&snapshots_dir(&d), "snap").unwrap() {
            fs::remove_file(p).unwrap();
        }
        let seg = segments(&d).unwrap()[0].path.clone();
        let whole = fs::read(&seg).unwrap();
        // Torn: half of a sixth record appended.
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..whole.len() / 10]);
        fs::write(&seg, &torn).unwrap();
        let r = recover(&d, &genesis(), 16, false).unwrap();
        assert_eq!(r.tip.height, 5);
        assert!(r.truncated.as_deref().unwrap().contains("torn"), "{:?}", r.truncated);
        assert_eq!(fs::read(&seg).unwrap(), whole, "cut back to the whole records");
        // Zeros after the last record (a size change whose data never came).
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 300]);
        fs::write(&seg, &zeros).unwrap();
        assert_eq!(recover(&d, &genesis(), 16, false).unwrap().tip.height, 5);
        // A flipped byte in the middle: an error naming file and offset.
        let mut flipped = whole.clone();
        flipped[whole.len() / 2] ^= 0x40;
        fs::write(&seg, &flipped).unwrap();
        let e = recover(&d, &genesis(), 16, false).unwrap_err();
        assert!(e.contains(&seg.display().to_string()) && e.contains("offset") && e.contains("attnet repair"), "{e}");
        let lock = lock(&d).unwrap();
        let fixed = repair(&lock, &genesis()).unwrap();
        assert!(fixed.actions.iter().any(|a| a.starts_with("cut")), "{:?}", fixed.actions);
        let r = recover(&d, &genesis(), 16, false).unwrap();
        assert!(r.tip.height < 5 && r.tip.height >= 1, "{}", r.tip.height);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_until_repaired() {
        let d = tmp("snap");
        write_chain(&d, 4, StoreConfig { snapshot_txs: 3, ..StoreConfig::default() });
        let snaps = numbered(&snapshots_dir(&d), "snap").unwrap();
        let newest = &snaps.last().unwrap().1;
        let mut b = fs::read(newest).unwrap();
        let n = b.len();
        b[n - 3] ^= 1;
        fs::write(newest, &b).unwrap();
        let e = recover(&d, &genesis(), 16, true).unwrap_err();
        assert!(e.contains("damaged snapshot"), "{e}");
        let lock = lock(&d).unwrap();
        repair(&lock, &genesis()).unwrap();
        assert_eq!(recover(&d, &genesis(), 16, true).unwrap().tip.height, 4);
        fs::remove_dir_all(&d).unwrap();
    }

    fn windows(ids: &[u16]) -> Vec<(u16, Arc<ReplayWindow>)> {
        ids.iter().map(|id| (*id, Arc::new(ReplayWindow::new()))).collect()
    }

    /// The receive counters come back from recovery: from the log alone,
    /// from a snapshot whose older segments were removed, merged across
    /// runs (a session not configured in a later run keeps its top).
    #[test]
    fn receive_counters_round_trip_through_recovery() {
        let d = tmp("counters");
        let cfg = StoreConfig { snapshot_txs: u64::MAX, segment_bytes: 1_500, retain_bytes: 0, ..Default::default() };
        write_chain_rx(&d, 6, cfg.clone(), &windows(&[1, 2]), false);
        let want = ReceiveCounters::from([(1, 1005), (2, 2005)]);
        let r = recover(&d, &genesis(), 16, true).unwrap();
        assert_eq!(r.counters, want);
        assert_eq!(r.to_json()["counters"], 2);
        // The log alone (no snapshot) holds them too.
        for (_, p) in numbered(&snapshots_dir(&d), "snap").unwrap() {
            fs::remove_file(p).unwrap();
        }
        assert_eq!(recover(&d, &genesis(), 16, true).unwrap().counters, want);
        // A second run without session 1 and with session 2's counters below
        // its top (its window not seeded here): session 1 keeps its top,
        // session 2 its higher one.
        let (_, h) = write_chain_rx(&d, 2, cfg, &windows(&[2, 3]), false);
        assert_eq!(h, 8);
        let want = ReceiveCounters::from([(1, 1005), (2, 2005), (3, 3001)]);
        assert_eq!(recover(&d, &genesis(), 16, true).unwrap().counters, want);
        // Snapshots carry them: with every segment the snapshot covers
        // removed, recovery still returns them.
        let cfg = StoreConfig { snapshot_txs: 3, segment_bytes: 1_500, retain_bytes: 1, ..Default::default() };
        write_chain_rx(&d, 4, cfg, &windows(&[4]), false);
        let r = recover(&d, &genesis(), 16, true).unwrap();
        assert!(segments(&d).unwrap()[0].first > 1, "old segments were removed");
        assert_eq!(r.snapshot_height, 12);
        let want = ReceiveCounters::from([(1, 1005), (2, 2005), (3, 3001), (4, 4003)]);
        assert_eq!(r.counters, want);
        // The block readers skip counters records.
        assert_eq!(read_block(&d, 12).unwrap().unwrap().header().height, 12);
        fs::remove_dir_all(&d).unwrap();
    }

    /// A session a reload adds while the store runs: its window is seeded
    /// with the top persisted for its id (an old frame stays a replay),
    /// and its new top is persisted with the next write.
    #[test]
    fn a_window_added_while_running_is_seeded_and_persisted() {
        let d = tmp("add-window");
        let cfg = StoreConfig { snapshot_txs: u64::MAX, ..StoreConfig::default() };
        write_chain_rx(&d, 3, cfg.clone(), &windows(&[5]), false);
        let g = genesis();
        let lock = lock(&d).unwrap();
        let r = recover(&d, &g, 16, false).unwrap();
        assert_eq!(r.counters.get(&5), Some(&5002));
        let tip = r.tip;
        let rx = ReceiveWindows { recovered: r.counters, windows: Vec::new() };
        let mut c = Chain::resume(
            &g,
            ChainConfig { ledger: LedgerConfig::default(), block: BlockConfig::default(), producer: Some(P) },
            r.state.clone(),
            tip.height,
            tip.hash,
            tip.timestamp_ms,
        );
        let store = Store::start(&lock, cfg, r.state, tip, rx).unwrap();
        let (w5, w6) = (Arc::new(ReplayWindow::new()), Arc::new(ReplayWindow::new()));
        store.add_window(5, w5.clone()).unwrap();
        store.add_window(6, w6.clone()).unwrap();
        assert!(w5.check(5002).is_err() && w5.check(4990).is_err(), "seeded: old counters are replays");
        assert!(w5.check(5003).is_ok());
        assert!(w6.check(1).is_ok(), "nothing persisted for 6: nothing seeded");
        w5.update(5010).unwrap();
        w6.update(6001).unwrap();
        let now = tip.timestamp_ms + 1_000;
        let n = c.ledger().account(&A).unwrap().nonce;
        c.submit(&tx(Kind::Transfer, A, B, n + 1, 100, b""), now).unwrap();
        for b in c.finish(now + 1_000) {
            store.append(b).unwrap();
        }
        store.finish().unwrap();
        drop(lock);
        let r = recover(&d, &g, 16, true).unwrap();
        assert_eq!(r.counters, ReceiveCounters::from([(5, 5010), (6, 6001)]));
        fs::remove_dir_all(&d).unwrap();
    }

    /// A torn counters record at the end of the log is cut like a torn
    /// block record (the counters before it stand); one in the middle that
    /// does not check out is damage, named, and repaired by a cut.
    #[test]
    fn a_torn_counters_record_is_cut_like_a_torn_block() {
        let d = tmp("torn-counters");
        let cfg = StoreConfig { snapshot_txs: u64::MAX, ..StoreConfig::default() };
        write_chain_rx(&d, 3, cfg, &windows(&[7]), false);
        for (_, p) in numbered(&snapshots_dir(&d), "snap").unwrap() {
            fs::remove_file(p).unwrap();
        }
        let seg = segments(&d).unwrap()[0].path.clone();
        let whole = fs::read(&seg).unwrap();
        // A counters record of session 7, top 9999, whole and then torn.
        let mut payload = Vec::new();
        encode_counters([(&7u16, &9999u64)].into_iter(), &mut payload);
        let mut rec = ((payload.len() as u32) | COUNTERS_RECORD).to_le_bytes().to_vec();
        rec.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        rec.extend_from_slice(&payload);
        let mut with = whole.clone();
        with.extend_from_slice(&rec);
        fs::write(&seg, &with).unwrap();
        assert_eq!(recover(&d, &genesis(), 16, true).unwrap().counters, ReceiveCounters::from([(7, 9999)]));
        let mut torn = whole.clone();
        torn.extend_from_slice(&rec[..rec.len() - 3]);
        fs::write(&seg, &torn).unwrap();
        let r = recover(&d, &genesis(), 16, false).unwrap();
        assert!(r.truncated.as_deref().unwrap().contains("torn"), "{:?}", r.truncated);
        assert_eq!((r.tip.height, r.counters), (3, ReceiveCounters::from([(7, 7002)])));
        assert_eq!(fs::read(&seg).unwrap(), whole, "cut back to the whole records");
        // A damaged counters record followed by more: an error, then a cut.
        let mut flipped = whole.clone();
        flipped[RECORD_PREFIX + 1] ^= 0x10; // inside the first record: counters (written ahead of block 1)
        assert_ne!(u32::from_le_bytes(whole[..4].try_into().unwrap()) & COUNTERS_RECORD, 0);
        fs::write(&seg, &flipped).unwrap();
        let e = recover(&d, &genesis(), 16, false).unwrap_err();
        assert!(e.contains("offset 0") && e.contains("attnet repair"), "{e}");
        let lock = lock(&d).unwrap();
        repair(&lock, &genesis()).unwrap();
        assert_eq!(recover(&d, &genesis(), 16, false).unwrap().tip.height, 0);
        fs::remove_dir_all(&d).unwrap();
    }

    /// A certificate for block `h` (signatures made up: the store keeps
    /// them as they come).
    fn certificate(h: u64) -> Certificate {
        let signatures = (0..3u8).map(|i| ([i; 32], [h as u8 ^ i; 64])).collect();
        Certificate { height: h, round: (h % 3) as u32, signatures }
    }

    #[test]
    fn certificates_in_the_log_are_served_back_with_their_blocks_and_recovery_skips_them() {
        let d = tmp("certificates");
        // Small segments: a certificate may sit in the segment after its block's.
        let cfg = StoreConfig { snapshot_txs: 10, segment_bytes: 1_500, ..StoreConfig::default() };
        let (root, height) = write_chain_rx(&d, 12, cfg.clone(), &[], true);
        assert!(segments(&d).unwrap().len() > 2, "small segments roll");
        let mut r = recover(&d, &genesis(), 16, true).unwrap();
        assert_eq!((r.tip.height, r.state.root()), (height, root));
        let blocks = read_blocks(&d).unwrap();
        assert_eq!(blocks.len() as u64, height);

        let mut a = archive::Archive::start(&d).unwrap();
        let peer = [0x5; 32];
        // Asked past the end: the heights the log holds, in order.
        assert!(a.request(peer, 3, height + 5));
        let until = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.is_empty() && Instant::now() < until {
            got = a.take();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got.len(), 1);
        let served = &got[0];
        assert_eq!(served.peer, peer);
        assert_eq!(served.blocks.len() as u64, height - 2);
        for (i, (body, c)) in served.blocks.iter().enumerate() {
            let h = 3 + i as u64;
            assert_eq!(c, &certificate(h));
            assert_eq!(Block::decode(body).unwrap(), blocks[h as usize - 1]);
        }
        assert_eq!(a.served(), height - 2);
        // A later run appends more: the reader indexes on.
        drop(a);
        let (_, height2) = write_chain_rx(&d, 4, cfg, &[], true);
        let mut a = archive::Archive::start(&d).unwrap();
        assert!(a.request(peer, 1, 2));
        assert!(a.request(peer, height2, height2));
        let mut got = Vec::new();
        while got.len() < 2 && Instant::now() < until {
            got.extend(a.take());
            std::thread::sleep(Duration::from_millis(5));
        }
        let heights: Vec<Vec<u64>> = got.iter().map(|s| s.blocks.iter().map(|(_, c)| c.height).collect()).collect();
        assert_eq!(heights, vec![vec![1, 2], vec![height2]]);
        // An empty range is refused, not queued.
        assert!(!a.request(peer, 5, 4));
        assert_eq!(a.refused(), 1);
        // Repair finds nothing to cut.
        let l = lock(&d).unwrap();
        assert!(repair(&l, &genesis()).unwrap().actions.iter().all(|x| !x.starts_with("cut")));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_older_directory_format_is_refused_by_name() {
        let d = tmp("format");
        let l = lock(&d).unwrap();
        check_meta(&l, &genesis(), &P).unwrap();
        let p = d.join("meta.json");
        let text = fs::read_to_string(&p).unwrap().replace("\"format\": 3", "\"format\": 1");
        fs::write(&p, text).unwrap();
        let e = check_meta(&l, &genesis(), &P).unwrap_err();
        assert!(e.contains("format 1") && e.contains("reads format 3 only"), "{e}");
        // Read-only tools (attnet query, repair) say the same.
        assert_eq!(dir_genesis(&d).unwrap_err(), e);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_directory_serves_one_chain_one_key_and_one_node() {
        let d = tmp("meta");
        let l = lock(&d).unwrap();
        check_meta(&l, &genesis(), &P).unwrap();
        check_meta(&l, &genesis(), &P).unwrap();
        assert!(check_meta(&l, &genesis(), &B).unwrap_err().contains("belongs to node key"));
        let other = Genesis::new(10, [GenesisAccount { key: A, balance: 1 }]).unwrap();
        assert!(check_meta(&l, &other, &P).unwrap_err().contains("holds the chain of genesis"));
        assert!(is_locked(&d));
        assert!(lock(&d).unwrap_err().contains("another attnet node"));
        drop(l);
        assert!(!is_locked(&d));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_snapshot_falls_back_to_an_older_one_or_the_genesis_else_names_what_is_missing() {
        let d = tmp("nosnap");
        // Two runs, each ending with a snapshot (at 6, then at 10).
        let cfg = StoreConfig { snapshot_txs: u64::MAX, ..StoreConfig::default() };
        write_chain(&d, 6, cfg.clone());
        let (root, height) = write_chain(&d, 4, cfg);
        let snaps = numbered(&snapshots_dir(&d), "snap").unwrap();
        assert_eq!(snaps.len(), SNAPSHOTS_KEPT, "{snaps:?}");
        let (older, newest) = (snaps[0].0, snaps[1].0);
        assert_eq!((older, newest, height), (6, 10, 10));
        // The newest deleted: the older one, and the blocks after it.
        fs::remove_file(&snaps[1].1).unwrap();
        let mut r = recover(&d, &genesis(), 16, false).unwrap();
        assert_eq!((r.snapshot_height, r.blocks_replayed), (older, height - older));
        assert_eq!((r.tip.height, r.state.root()), (height, root));
        // Every snapshot deleted: the log from the genesis.
        fs::remove_file(&snaps[0].1).unwrap();
        let mut r = recover(&d, &genesis(), 16, false).unwrap();
        assert_eq!((r.snapshot_height, r.blocks_replayed, r.state.root()), (0, height, root));
        fs::remove_dir_all(&d).unwrap();

        // Retention removed the first segments; then every snapshot goes.
        let d = tmp("pruned");
        let cfg =
            StoreConfig { snapshot_txs: u64::MAX, segment_bytes: 1_500, retain_bytes: 3_000, ..StoreConfig::default() };
        write_chain(&d, 10, cfg.clone());
        let (root, height) = write_chain(&d, 10, cfg);
        let first = segments(&d).unwrap()[0].first;
        assert!(first > 1, "retention removed the oldest segments");
        assert_eq!(recover(&d, &genesis(), 16, false).unwrap().tip.height, height);
        let snaps = numbered(&snapshots_dir(&d), "snap").unwrap();
        let (newest_h, newest) = snaps.last().unwrap().clone();
        let kept = fs::read(&newest).unwrap();
        for (_, p) in &snaps {
            fs::remove_file(p).unwrap();
        }
        let e = recover(&d, &genesis(), 16, false).unwrap_err();
        let missing = format!("blocks 1..{} are missing", first - 1);
        for want in [missing.as_str(), "no snapshot in", "attnet repair --data-dir", "cannot rebuild"] {
            assert!(e.contains(want), "{want:?} not in: {e}");
        }
        // `repair` changes nothing there and says the directory stays
        // unrecoverable.
        let before: Vec<_> = segments(&d).unwrap().iter().map(|s| fs::read(&s.path).unwrap()).collect();
        let l = lock(&d).unwrap();
        let e = repair(&l, &genesis()).unwrap_err();
        assert!(e.starts_with("still not recoverable") && e.contains(&missing), "{e}");
        let after: Vec<_> = segments(&d).unwrap().iter().map(|s| fs::read(&s.path).unwrap()).collect();
        assert_eq!(before, after, "repair leaves the log as it was");
        drop(l);
        // A snapshot put back makes it whole again.
        fs::write(&newest, kept).unwrap();
        let mut r = recover(&d, &genesis(), 16, false).unwrap();
        assert_eq!((r.snapshot_height, r.tip.height, r.state.root()), (newest_h, height, root));
        fs::remove_dir_all(&d).unwrap();
    }

    /// A tmpfs of `mb` MiB mounted on a new directory, unmounted (and the
    /// directory removed) when dropped.
    struct Tmpfs(PathBuf);

    impl Tmpfs {
        fn mount(name: &str, mb: u32) -> Tmpfs {
            let d = tmp(name);
            fs::create_dir_all(&d).unwrap();
            let out = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mb}m,mode=0700"), "tmpfs"])
                .arg(&d)
                .output()
                .unwrap_or_else(|e| panic!("running mount: {e}"));
            assert!(
                out.status.success(),
                "this test mounts a {mb} MiB tmpfs on {} (it needs root): mount failed: {}",
                d.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            Tmpfs(d)
        }
    }

    impl Drop for Tmpfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = fs::remove_dir(&self.0);
        }
    }

    #[test]
    fn a_full_disk_stops_the_store_naming_the_file_and_every_committed_block_recovers() {
        let m = Tmpfs::mount("full", 2);
        let d = m.0.join("data");
        let ids_path = tmp("full-ids");
        let g = genesis();
        let l = lock(&d).unwrap();
        check_meta(&l, &g, &P).unwrap();
        // Space that is freed afterwards.
        let filler = m.0.join("filler");
        fs::write(&filler, vec![7u8; 512 << 10]).unwrap();
        let r = recover(&d, &g, 16, false).unwrap();
        let mut c = Chain::resume(
            &g,
            ChainConfig { ledger: LedgerConfig::default(), block: BlockConfig::default(), producer: Some(P) },
            r.state.clone(),
            0,
            r.tip.hash,
            0,
        );
        let cfg = StoreConfig {
            snapshot_txs: 40,
            segment_bytes: 200 << 10,
            committed_ids: Some(ids_path.clone()),
            ..StoreConfig::default()
        };
        let rx = ReceiveWindows { recovered: r.counters.clone(), windows: Vec::new() };
        let store = Store::start(&l, cfg, r.state, r.tip, rx).unwrap();
        let memo = [b'm'; 1000];
        let mut now = 1_000;
        // B's account, so that messages reach it.
        c.submit(&tx(Kind::Transfer, A, B, 1, 100, b""), now).unwrap();
        let mut reported = 0;
        let mut refused = false;
        // 2 MiB holds about 1 900 such transactions: the bound is far off.
        'fill: for _ in 0..2_000 {
            let n = c.ledger().account(&A).unwrap().nonce;
            for i in 1..=8 {
                c.submit(&tx(Kind::Message, A, B, n + i, 0, &memo), now).unwrap();
            }
            now += 1_000;
            for b in c.poll(now) {
                if store.append(b).is_err() {
                    refused = true;
                    break 'fill;
                }
            }
            // What the node reports committed: the durable height.
            reported = reported.max(store.durable());
            if store.failed() {
                break;
            }
        }
        reported = reported.max(store.durable());
        assert!(refused || store.failed(), "the store never ran out of space");
        let e = store.finish().unwrap_err();
        eprintln!("the store stopped at block {reported} of {}: {e}", c.height());
        assert!(e.contains("No space left on device"), "{e}");
        assert!(e.contains(&d.display().to_string()), "the error names the file: {e}");
        assert!(reported >= 1 && reported < c.height(), "reported {reported} of {}", c.height());
        let committed: Vec<[u8; 32]> = fs::read_to_string(&ids_path)
            .unwrap()
            .lines()
            .map(|l| hex::decode(l).unwrap().try_into().unwrap())
            .collect();
        assert!(!committed.is_empty());
        assert!(
            fs::read_dir(snapshots_dir(&d)).unwrap().all(|e| e.unwrap().path().extension().unwrap() == "snap"),
            "no partial snapshot left behind"
        );
        // Space freed: the directory recovers every block reported
        // committed (a torn last record cut), and takes new blocks.
        fs::remove_file(&filler).unwrap();
        let r = recover(&d, &g, 16, false).unwrap_or_else(|e| panic!("recovery after the space was freed: {e}"));
        assert!(r.tip.height >= reported, "recovered {} < reported {reported}", r.tip.height);
        eprintln!("recovered to block {} ({:?})", r.tip.height, r.truncated);
        let chain: std::collections::HashSet<[u8; 32]> =
            read_blocks(&d).unwrap().iter().flat_map(|b| b.txs().map(tx_id).collect::<Vec<_>>()).collect();
        assert!(committed.iter().all(|id| chain.contains(id)), "a transaction reported committed was lost");
        drop(l);
        let (_, height) = write_chain(&d, 2, StoreConfig { snapshot_txs: 40, ..StoreConfig::default() });
        assert!(height > r.tip.height);
        let _ = fs::remove_file(&ids_path);
        drop(m);
    }
}
