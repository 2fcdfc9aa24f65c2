//! Final blocks and their commit certificates read back from the block log
//! for validators catching up from further back than the replica keeps in
//! memory (`crate::replica::RECENT_DECIDED`).
//!
//! A thread of its own reads, so that neither the control thread nor the
//! store thread waits on the disk for a peer. It indexes each segment the
//! first time a height in it is asked for (one sequential read of the
//! records' prefixes and headers; the active segment is indexed on as it
//! grows), then reads the asked records with positional reads and checks
//! their CRC32C again. Requests are bounded
//! ([`MAX_RANGE`] heights each, [`QUEUE`] waiting); one over the bound is
//! refused, not queued, and counted.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{segments, CERTIFICATE_RECORD, COUNTERS_RECORD, RECORD_FLAGS, RECORD_PREFIX};
use crate::block::{BlockHeader, Certificate, HEADER_LEN};

/// Most heights one request names.
pub const MAX_RANGE: u64 = 64;
/// Requests waiting for the reader thread.
const QUEUE: usize = 64;
/// Index entries kept (about 40 bytes each); past it the index starts over.
const MAX_INDEXED: usize = 1 << 21;

/// Blocks from the log for one peer: each block's encoding and its
/// certificate, consecutive heights from the first asked.
#[derive(Debug)]
pub struct Served {
    pub peer: [u8; 32],
    pub blocks: Vec<(Vec<u8>, Certificate)>,
}

struct Request {
    peer: [u8; 32],
    from: u64,
    to: u64,
}

/// The control thread's end of the reader thread.
pub struct Archive {
    tx: Option<crossbeam_channel::Sender<Request>>,
    rx: crossbeam_channel::Receiver<Served>,
    thread: Option<std::thread::JoinHandle<()>>,
    refused: u64,
    /// Blocks read back and handed over (the reader thread counts).
    served: Arc<AtomicU64>,
}

impl Archive {
    /// Starts the reader thread on data directory `d`.
    pub fn start(d: &Path) -> Result<Archive, String> {
        let (tx, requests) = crossbeam_channel::bounded::<Request>(QUEUE);
        let (answers, rx) = crossbeam_channel::bounded::<Served>(QUEUE);
        let served = Arc::new(AtomicU64::new(0));
        let mut reader = Reader { d: d.to_path_buf(), index: Index::default(), served: served.clone() };
        let thread = std::thread::Builder::new()
            .name("attnet-archive".into())
            .spawn(move || {
                while let Ok(r) = requests.recv() {
                    let blocks = reader.read(r.from, r.to);
                    if !blocks.is_empty() && answers.send(Served { peer: r.peer, blocks }).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("archive thread: {e}"))?;
        Ok(Archive { tx: Some(tx), rx, thread: Some(thread), refused: 0, served })
    }

    /// Asks for heights `from..=to` (at most [`MAX_RANGE`] of them) for
    /// `peer`; false (and counted) if the reader has too many waiting.
    pub fn request(&mut self, peer: [u8; 32], from: u64, to: u64) -> bool {
        let to = to.min(from.saturating_add(MAX_RANGE - 1));
        let ok = from <= to && self.tx.as_ref().is_some_and(|t| t.try_send(Request { peer, from, to }).is_ok());
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// What the reader has read since the last call.
    pub fn take(&mut self) -> Vec<Served> {
        self.rx.try_iter().collect()
    }

    /// Requests refused because the reader had too many waiting.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Blocks read back from the log and handed over.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        self.tx = None;
        // The reader may be blocked sending an answer: drain while it ends.
        while let Some(t) = self.thread.as_ref() {
            if t.is_finished() {
                break;
            }
            let _ = self.rx.recv_timeout(std::time::Duration::from_millis(10));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where a record is: its segment's path, its payload's offset and length.
#[derive(Debug, Clone)]
struct At {
    seg: Arc<PathBuf>,
    offset: u64,
    len: u32,
    crc: u32,
}

#[derive(Default)]
struct Index {
    blocks: BTreeMap<u64, At>,
    certificates: BTreeMap<u64, At>,
    /// How far each segment (by first height) is indexed.
    scanned: HashMap<u64, u64>,
}

struct Reader {
    d: PathBuf,
    index: Index,
    served: Arc<AtomicU64>,
}

impl Reader {
    /// Heights `from..=to` that the log holds with their certificates, up
    /// to the first one it lacks.
    fn read(&mut self, from: u64, to: u64) -> Vec<(Vec<u8>, Certificate)> {
        if !self.indexed(from, to) {
            self.scan(from);
        }
        let mut out = Vec::new();
        for h in from..=to {
            let (Some(b), Some(c)) = (self.index.blocks.get(&h), self.index.certificates.get(&h)) else { break };
            let (Some(block), Some(cert)) = (read_at(b), read_at(c)) else {
                // A segment removed or damaged since it was indexed.
                self.index = Index::default();
                break;
            };
            let Some(cert) = Certificate::decode(&cert).filter(|c| c.height == h) else { break };
            out.push((block, cert));
        }
        self.served.fetch_add(out.len() as u64, Ordering::Relaxed);
        out
    }

    fn indexed(&self, from: u64, to: u64) -> bool {
        (from..=to).all(|h| self.index.blocks.contains_key(&h) && self.index.certificates.contains_key(&h))
    }

    /// Indexes (on from where it stopped) every segment that can hold
    /// height `from` or later records: a height's certificate may sit in
    /// the segment after its block's.
    fn scan(&mut self, from: u64) {
        if self.index.blocks.len() + self.index.certificates.len() > MAX_INDEXED {
            self.index = Index::default();
        }
        let Ok(segs) = segments(&self.d) else { return };
        let start = segs.iter().rposition(|s| s.first <= from).unwrap_or(0);
        for seg in segs.iter().skip(start) {
            let done = self.index.scanned.get(&seg.first).copied().unwrap_or(0);
            let reached = index_segment(&seg.path, done, &mut self.index);
            self.index.scanned.insert(seg.first, reached);
        }
    }
}

/// Indexes the records of segment `path` from byte `offset` on; the offset
/// where it stopped (the end, or the first record not whole yet).
fn index_segment(path: &Path, offset: u64, index: &mut Index) -> u64 {
    let Ok(f) = File::open(path) else { return offset };
    let Ok(size) = f.metadata().map(|m| m.len()) else { return offset };
    let mut r = BufReader::with_capacity(1 << 20, f);
    if r.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let seg = Arc::new(path.to_path_buf());
    let mut at = offset;
    let mut head = [0u8; HEADER_LEN];
    loop {
        let mut prefix = [0u8; RECORD_PREFIX];
        if at + RECORD_PREFIX as u64 > size || r.read_exact(&mut prefix).is_err() {
            return at;
        }
        let word = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let crc = u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        let len = word & !RECORD_FLAGS;
        let payload = at + RECORD_PREFIX as u64;
        if payload + u64::from(len) > size {
            return at;
        }
        let place = At { seg: seg.clone(), offset: payload, len, crc };
        let read = if word & COUNTERS_RECORD != 0 {
            0
        } else if word & CERTIFICATE_RECORD != 0 {
            let mut h = [0u8; 8];
            if len < 8 || r.read_exact(&mut h).is_err() {
                return at;
            }
            index.certificates.insert(u64::from_le_bytes(h), place);
            8
        } else {
            let Some(buf) = head.get_mut(..(len as usize).min(HEADER_LEN)) else { return at };
            if r.read_exact(buf).is_err() {
                return at;
            }
            match BlockHeader::decode(buf) {
                Some(h) => {
                    index.blocks.insert(h.height, place);
                }
                None => return at,
            }
            buf.len() as i64
        };
        if r.seek_relative(i64::from(len) - read).is_err() {
            return at;
        }
        at = payload + u64::from(len);
    }
}

/// A record's payload, if it is still there and its CRC32C checks out.
fn read_at(at: &At) -> Option<Vec<u8>> {
    let f = File::open(at.seg.as_path()).ok()?;
    let mut buf = vec![0u8; at.len as usize];
    f.read_exact_at(&mut buf, at.offset).ok()?;
    (crc32c::crc32c(&buf) == at.crc).then_some(buf)
}
