//! Benchmarks of attnet against the machine's own limits, measured in the
//! same run. `attnet-bench` (src/bin/attnet-bench.rs) measures every
//! section (`sections`) with in-process timed loops (`measure`), writes the
//! results file (`report`) and its plot (`plot`), and regenerates
//! docs/PERFORMANCE.md (`docs`). The criterion micro-benchmarks in
//! `benches/` and `perf_report` (criterion's results as tables) remain for
//! profiling single pieces. The workloads (rows) and their traffic
//! builders live here; the raw library baselines in `raw`, the loopback
//! receive measurement in `receive`, the DPDK comparison in `dpdk`.
#![forbid(unsafe_code)]

use dataplane::emit::{emit_frame, FrameSpec};
use dataplane::testkit;
use dataplane::wire::{mcs, security, share, tx};

/// Frames per burst in every benchmark.
pub const BURST: usize = 32;

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub name: &'static str,
    pub txs_per_frame: usize,
    pub memo: usize,
    pub lz4: bool,
}

/// ~256 B with 1 tx; the largest 1-tx frame (a 1024-byte memo, 1243 B:
/// one transaction cannot fill 1500 B); ~1500 B with 8 txs. Plain and LZ4.
pub const ROWS: [Row; 6] = [
    Row { name: "256B-1tx-plain", txs_per_frame: 1, memo: 37, lz4: false },
    Row { name: "256B-1tx-lz4", txs_per_frame: 1, memo: 37, lz4: true },
    Row { name: "1243B-1tx-plain", txs_per_frame: 1, memo: 1024, lz4: false },
    Row { name: "1243B-1tx-lz4", txs_per_frame: 1, memo: 1024, lz4: true },
    Row { name: "1495B-8tx-plain", txs_per_frame: 8, memo: 23, lz4: false },
    Row { name: "1495B-8tx-lz4", txs_per_frame: 8, memo: 23, lz4: true },
];

/// The names of the benchmarks in each row's group.
pub mod names {
    pub const AES: [(&str, &str); 3] =
        [("raw_aes_awslc", "aws-lc-rs"), ("raw_aes_ring", "ring"), ("raw_aes_rustcrypto", "aes-gcm")];
    pub const LZ4: &str = "raw_lz4";
    pub const SHA: &str = "raw_sha256";
    pub const ED_SINGLE: &str = "raw_ed25519_single";
    pub const ED_BATCH: &str = "raw_ed25519_batch";
    pub const PATH: [&str; 4] = ["path_decode", "path_decrypt", "path_decompress", "path_full"];
}

/// Memo text: invoice-like and somewhat compressible, as real memos are.
fn memo(len: usize, i: usize) -> Vec<u8> {
    format!("payment for invoice #{i:06} from the ATT relay benchmark; thank you. ").bytes().cycle().take(len).collect()
}

/// A burst's worth of traffic for one row, and the pieces the raw
/// baselines need to do the same work on the same bytes.
pub struct Workload {
    pub row: Row,
    /// Transactions per frame (signed by one account per frame).
    pub txs: Vec<Vec<Vec<u8>>>,
    /// TX_BATCH body per frame (uncompressed).
    pub bodies: Vec<Vec<u8>>,
    /// Wire body per frame (LZ4-compressed for LZ4 rows).
    pub wire_bodies: Vec<Vec<u8>>,
    /// Signing messages per transaction, flattened.
    pub messages: Vec<Vec<u8>>,
    /// Offset of the sealed region (after the counter) in each frame.
    pub sealed_at: Vec<usize>,
    pub session: u16,
    pub key: [u8; 32],
    key_expanded: dataplane::crypto::AeadKey,
}

impl Workload {
    /// One burst of the row.
    pub fn new(row: Row) -> Self {
        Self::with_frames(row, BURST)
    }

    /// `frames` frames of the row (at most 256, each from its own account:
    /// a batch of distinct keys, as clients send them).
    pub fn with_frames(row: Row, frames: usize) -> Self {
        let session = 1;
        let key = testkit::c2r(session);
        let mut txs = Vec::new();
        let mut bodies = Vec::new();
        let mut wire_bodies = Vec::new();
        let mut messages = Vec::new();
        for f in 0..frames.min(256) {
            let sk = testkit::signer(f as u8);
            let mut ts = Vec::new();
            for i in 0..row.txs_per_frame {
                let mut t = Vec::new();
                let m = memo(row.memo, f * 16 + i);
                dataplane::emit::emit_signed_tx(
                    &sk,
                    1,
                    &dataplane::emit::TxFields {
                        kind: tx::Kind::Message,
                        to: [7; 32],
                        nonce: i as u64 + 1,
                        amount: 5,
                        fee: 1,
                        memo: &m,
                    },
                    &mut t,
                );
                let mut msg = tx::signing_header(1).to_vec();
                msg.extend_from_slice(&t[..t.len() - tx::SIG_LEN]);
                messages.push(msg);
                ts.push(t);
            }
            let mut body = Vec::new();
            tx::emit_batch(ts.iter().map(|t| &t[..]), &mut body);
            let mut wire = Vec::new();
            if row.lz4 {
                dataplane::lz4::compress_into(&body, &mut wire);
            } else {
                wire.extend_from_slice(&body);
            }
            txs.push(ts);
            bodies.push(body);
            wire_bodies.push(wire);
        }
        let key_expanded = dataplane::crypto::AeadKey::new(&key);
        let mut w =
            Workload { row, txs, bodies, wire_bodies, messages, sealed_at: Vec::new(), session, key, key_expanded };
        let burst = w.burst(0);
        w.sealed_at = burst.iter().map(|f| sealed_offset(f)).collect();
        w
    }

    /// Frames of the workload.
    pub fn frames(&self) -> usize {
        self.bodies.len()
    }

    /// Fresh frames sealed with counters `base..base + frames()`.
    pub fn burst(&self, base: u64) -> Vec<Vec<u8>> {
        let spec = FrameSpec { compress: self.row.lz4, ..FrameSpec::tx_batch(self.session) };
        self.bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut out = Vec::with_capacity(b.len() + 64);
                emit_frame(&spec, b, Some((&self.key_expanded, base + i as u64)), &mut out).expect("frame fits");
                out
            })
            .collect()
    }

    /// Mean wire size of the row's frames.
    pub fn frame_len(&self) -> usize {
        self.burst(0).iter().map(|f| f.len()).sum::<usize>() / self.frames()
    }

    pub fn tx_count(&self) -> usize {
        self.frames() * self.row.txs_per_frame
    }

    /// A relay path that knows the workload's session.
    pub fn relay(&self) -> dataplane::FramePath {
        let mut fp = dataplane::host::frame_path(1);
        fp.sessions.install(u32::from(self.session), &self.key, &testkit::r2c(self.session)).expect("session id");
        fp
    }
}

/// Where the sealed share-data header starts in a frame.
pub fn sealed_offset(f: &[u8]) -> usize {
    let m = mcs::Packet::new_unchecked(&f[7..]);
    7 + m.data_offset() + security::ENCRYPTED_HEADER_LEN
}

/// Bytes of the share-data header (for the raw LZ4 baseline's offsets).
pub const SHARE_HEADER: usize = share::HEADER_LEN;

/// The genesis of [`unique_frames`]' senders: its 250 accounts funded, so
/// that every transaction applies (a node refusing them all would throttle
/// the session and measure its throttle, not its frame path).
pub fn unique_genesis() -> String {
    let accounts = (0..250u8).map(|i| control::genesis::GenesisAccount {
        key: ed25519_zebra::VerificationKeyBytes::from(&testkit::signer(i)).into(),
        balance: 1_000_000_000,
    });
    control::genesis::Genesis::new(1, accounts).map(|g| g.to_json()).unwrap_or_default()
}

/// `n` unique single-transaction frames for session 1 (vectors' key):
/// every frame a fresh counter, every transaction new (250 accounts,
/// nonces in order), LZ4 on every other frame. Signed on two threads.
pub fn unique_frames(n: usize) -> Vec<Vec<u8>> {
    let one = |i: usize| {
        let sk = testkit::signer((i % 250) as u8);
        let mut t = Vec::new();
        dataplane::emit::emit_signed_tx(
            &sk,
            1,
            &dataplane::emit::TxFields {
                kind: tx::Kind::Transfer,
                to: [9; 32],
                nonce: (i / 250) as u64 + 1,
                amount: 1,
                fee: 1,
                memo: b"bench",
            },
            &mut t,
        );
        testkit::frame(1, i as u64, &[t], i.is_multiple_of(2))
    };
    let half = n / 2;
    std::thread::scope(|s| {
        let a = s.spawn(move || (0..half).map(one).collect::<Vec<_>>());
        let b: Vec<Vec<u8>> = (half..n).map(one).collect();
        let mut v = a.join().unwrap_or_default();
        v.extend(b);
        v
    })
}

pub mod docs;
pub mod dpdk;
pub mod measure;
pub mod plot;
pub mod raw;
pub mod report;
pub mod sections;
pub mod storage;
