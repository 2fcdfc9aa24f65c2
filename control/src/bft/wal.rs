//! The consensus write-ahead log on disk: one file holding the engine's
//! inputs for the height being voted on.
//!
//! A record is `len u32 | crc32c u32 | height u64 | tag u8 | body`, the
//! CRC over everything after it, little-endian. Appends are buffered by the
//! kernel; [`Wal::sync`] is one `fdatasync` (the engine calls it once per
//! event, before anything the event produced leaves the node). The first
//! append of a higher height truncates the file first: the previous height
//! is final and durable in the block store by then.
//!
//! Opening reads the records back and cuts a torn or corrupt tail (a crash
//! in the middle of a write), so later appends never follow garbage.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use arc_malachitebft_core_consensus::{Input, ProposedValue};
use arc_malachitebft_core_types::{SignedMessage, Timeout, TimeoutKind, Validity, ValueOrigin};

use super::codec::{put_round, Message, Reader};
use super::context::{Address, BlockId, Ctx, Height};
use super::engine::Wal;

mod tag {
    pub const PROPOSAL: u8 = 1;
    pub const VOTE: u8 = 2;
    pub const POLKA: u8 = 3;
    pub const PROPOSED_VALUE: u8 = 4;
    pub const TIMEOUT: u8 = 5;
    pub const ROUND_CERT: u8 = 6;
}

/// The largest record the log accepts back (a certificate of 1024 seats is
/// about 100 KiB).
const MAX_RECORD: usize = 1 << 20;

/// The consensus log file.
pub struct FileWal {
    file: File,
    height: Height,
    /// Records appended (for the operator's counters).
    appended: u64,
    syncs: u64,
}

/// What [`FileWal::open`] found.
pub struct Recovered {
    /// The height the entries are for (0 for an empty log).
    pub height: Height,
    pub entries: Vec<Input<Ctx>>,
    /// Bytes cut from the end (a torn or corrupt tail).
    pub cut: u64,
}

impl FileWal {
    /// Opens (or creates) the log at `path` and reads it back.
    pub fn open(path: &Path) -> io::Result<(FileWal, Recovered)> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut at = 0usize;
        let mut height = Height(0);
        let mut entries = Vec::new();
        while let Some((h, input, next)) = record_at(&bytes, at) {
            if h != height {
                // Only the highest height's entries matter (a truncation
                // that a crash cut short can leave an older prefix).
                height = h;
                entries.clear();
            }
            entries.push(input);
            at = next;
        }
        let cut = (bytes.len() - at) as u64;
        if cut > 0 {
            file.set_len(at as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::Start(at as u64))?;
        let n = entries.len() as u64;
        Ok((FileWal { file, height, appended: n, syncs: 0 }, Recovered { height, entries, cut }))
    }

    /// Records appended since the file was opened (plus those read back).
    pub fn appended(&self) -> u64 {
        self.appended
    }

    /// `fdatasync` calls made.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }
}

impl Wal for FileWal {
    fn append(&mut self, height: Height, entry: &Input<Ctx>) -> io::Result<()> {
        if height < self.height {
            return Ok(());
        }
        if height > self.height {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.height = height;
        }
        let Some(rec) = encode_record(height, entry) else { return Ok(()) };
        self.file.write_all(&rec)?;
        self.appended += 1;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.syncs += 1;
        self.file.sync_data()
    }
}

/// One record's bytes, or `None` for an input the log never holds.
pub fn encode_record(height: Height, entry: &Input<Ctx>) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(192);
    body.extend_from_slice(&height.0.to_le_bytes());
    match entry {
        Input::Proposal(p) => {
            body.push(tag::PROPOSAL);
            body.extend_from_slice(&Message::Proposal(p.message.clone(), p.signature).encode());
        }
        Input::Vote(v) => {
            body.push(tag::VOTE);
            body.extend_from_slice(&Message::Vote(v.message.clone(), v.signature).encode());
        }
        Input::PolkaCertificate(c) => {
            body.push(tag::POLKA);
            let signatures = c.polka_signatures.iter().map(|s| (s.address, s.signature)).collect();
            body.extend_from_slice(
                &Message::Polka { height: c.height, round: c.round, value: c.value_id, signatures }.encode(),
            );
        }
        Input::RoundCertificate(c) => {
            body.push(tag::ROUND_CERT);
            body.extend_from_slice(&super::engine::round_cert(c.clone()).encode());
        }
        Input::ProposedValue(v, origin) => {
            body.push(tag::PROPOSED_VALUE);
            body.extend_from_slice(&v.height.0.to_le_bytes());
            put_round(&mut body, v.round);
            put_round(&mut body, v.valid_round);
            body.extend_from_slice(&v.proposer.0);
            body.extend_from_slice(&v.value.0);
            body.push(u8::from(v.validity.is_valid()));
            body.push(u8::from(origin.is_sync()));
        }
        Input::TimeoutElapsed(t) => {
            body.push(tag::TIMEOUT);
            let (kind, ms) = match t.kind {
                TimeoutKind::Propose => (1, 0),
                TimeoutKind::Prevote => (2, 0),
                TimeoutKind::Precommit => (3, 0),
                TimeoutKind::Rebroadcast => (4, 0),
                TimeoutKind::FinalizeHeight(d) => (5, u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            };
            body.push(kind);
            put_round(&mut body, t.round);
            body.extend_from_slice(&u64::to_le_bytes(ms));
        }
        Input::StartHeight(..) | Input::Propose(_) | Input::SyncValueResponse(_) => return None,
    }
    let mut rec = Vec::with_capacity(8 + body.len());
    rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    rec.extend_from_slice(&body);
    Some(rec)
}

/// The record at `at`: (height, input, offset of the next record), or
/// `None` at the end, a torn record or a corrupt one.
fn record_at(bytes: &[u8], at: usize) -> Option<(Height, Input<Ctx>, usize)> {
    let hdr = bytes.get(at..at.checked_add(8)?)?;
    let len = u32::from_le_bytes(hdr.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(hdr.get(4..8)?.try_into().ok()?);
    if !(9..=MAX_RECORD).contains(&len) {
        return None;
    }
    let body = bytes.get(at + 8..at + 8 + len)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    let height = Height(u64::from_le_bytes(body.get(..8)?.try_into().ok()?));
    let input = decode_input(*body.get(8)?, body.get(9..)?)?;
    Some((height, input, at + 8 + len))
}

fn decode_input(tag: u8, b: &[u8]) -> Option<Input<Ctx>> {
    Some(match tag {
        tag::PROPOSAL => match Message::decode(b).ok()? {
            Message::Proposal(p, s) => Input::Proposal(SignedMessage::new(p, s)),
            _ => return None,
        },
        tag::VOTE => match Message::decode(b).ok()? {
            Message::Vote(v, s) => Input::Vote(SignedMessage::new(v, s)),
            _ => return None,
        },
        tag::POLKA => match Message::decode(b).ok()? {
            Message::Polka { height, round, value, signatures } => {
                Input::PolkaCertificate(arc_malachitebft_core_types::PolkaCertificate {
                    height,
                    round,
                    value_id: value,
                    polka_signatures: signatures
                        .into_iter()
                        .map(|(a, s)| arc_malachitebft_core_types::PolkaSignature::new(a, s))
                        .collect(),
                })
            }
            _ => return None,
        },
        tag::ROUND_CERT => Input::RoundCertificate(super::engine::round_cert_back(Message::decode(b).ok()?)?),
        tag::PROPOSED_VALUE => {
            let mut r = Reader(b);
            let v = ProposedValue {
                height: Height(r.u64().ok()?),
                round: r.round().ok()?,
                valid_round: r.round().ok()?,
                proposer: Address(r.array().ok()?),
                value: BlockId(r.array().ok()?),
                validity: Validity::from_bool(r.u8().ok()? == 1),
            };
            let origin = if r.u8().ok()? == 1 { ValueOrigin::Sync } else { ValueOrigin::Consensus };
            if !r.0.is_empty() {
                return None;
            }
            Input::ProposedValue(v, origin)
        }
        tag::TIMEOUT => {
            let mut r = Reader(b);
            let kind = r.u8().ok()?;
            let round = r.round().ok()?;
            let ms = r.u64().ok()?;
            let kind = match kind {
                1 => TimeoutKind::Propose,
                2 => TimeoutKind::Prevote,
                3 => TimeoutKind::Precommit,
                4 => TimeoutKind::Rebroadcast,
                5 => TimeoutKind::FinalizeHeight(std::time::Duration::from_millis(ms)),
                _ => return None,
            };
            if !r.0.is_empty() {
                return None;
            }
            Input::TimeoutElapsed(Timeout { kind, round })
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bft::context::{Proposal, Sig, Vote};
    use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("attnet-wal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("consensus.wal")
    }

    fn entries(h: u64) -> Vec<Input<Ctx>> {
        let height = Height(h);
        let p = Proposal {
            height,
            round: Round::new(1),
            value: BlockId([1; 32]),
            pol_round: Round::new(0),
            proposer: Address([2; 32]),
        };
        let v = Vote {
            kind: VoteType::Prevote,
            height,
            round: Round::new(1),
            value: NilOrVal::Nil,
            voter: Address([3; 32]),
        };
        vec![
            Input::Proposal(SignedMessage::new(p, Sig([4; 64]))),
            Input::Vote(SignedMessage::new(v, Sig([5; 64]))),
            Input::ProposedValue(
                ProposedValue {
                    height,
                    round: Round::new(1),
                    valid_round: Round::Nil,
                    proposer: Address([2; 32]),
                    value: BlockId([1; 32]),
                    validity: Validity::Invalid,
                },
                ValueOrigin::Consensus,
            ),
            Input::TimeoutElapsed(Timeout { kind: TimeoutKind::Prevote, round: Round::new(3) }),
            Input::TimeoutElapsed(Timeout {
                kind: TimeoutKind::FinalizeHeight(std::time::Duration::from_millis(250)),
                round: Round::new(0),
            }),
            Input::PolkaCertificate(arc_malachitebft_core_types::PolkaCertificate {
                height,
                round: Round::new(0),
                value_id: BlockId([1; 32]),
                polka_signatures: vec![arc_malachitebft_core_types::PolkaSignature::new(
                    Address([6; 32]),
                    Sig([7; 64]),
                )],
            }),
        ]
    }

    #[test]
    fn entries_come_back_after_a_reopen_and_a_new_height_replaces_them() {
        let path = tmp("reopen");
        let (mut w, rec) = FileWal::open(&path).unwrap();
        assert_eq!(rec.height, Height(0));
        assert!(rec.entries.is_empty());
        for e in entries(5) {
            w.append(Height(5), &e).unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let (mut w, rec) = FileWal::open(&path).unwrap();
        assert_eq!((rec.height, rec.cut), (Height(5), 0));
        assert_eq!(rec.entries, entries(5));
        // A lower height is ignored; a higher one starts the file afresh.
        w.append(Height(4), &entries(4)[0]).unwrap();
        w.append(Height(6), &entries(6)[1]).unwrap();
        w.sync().unwrap();
        drop(w);
        let (_, rec) = FileWal::open(&path).unwrap();
        assert_eq!(rec.height, Height(6));
        assert_eq!(rec.entries, vec![entries(6)[1].clone()]);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_what_precedes_it_kept() {
        let path = tmp("torn");
        let (mut w, _) = FileWal::open(&path).unwrap();
        for e in entries(9) {
            w.append(Height(9), &e).unwrap();
        }
        w.sync().unwrap();
        drop(w);
        let full = std::fs::read(&path).unwrap();
        let last = encode_record(Height(9), entries(9).last().unwrap()).unwrap().len();
        let keep = full.len() - last;
        for cut in keep..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (_, rec) = FileWal::open(&path).unwrap();
            assert_eq!(rec.entries.len(), entries(9).len() - 1, "cut at {cut}");
            assert_eq!(rec.cut as usize, cut - keep);
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, keep);
        }
        let mut bad = full.clone();
        let flip = keep + 12;
        bad[flip] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let (_, rec) = FileWal::open(&path).unwrap();
        assert_eq!(rec.entries.len(), entries(9).len() - 1);
    }
}
