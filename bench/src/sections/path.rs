//! `crypto` and `frame_path`: per workload row (bench::ROWS), the raw
//! libraries and the frame path stage by stage, measured in one
//! interleaved group so noise hits a stage and its raw parts alike.

use std::cell::RefCell;

use dataplane::batch::{BatchPolicy, Pending};
use dataplane::path::NoFilter;
use dataplane::{Burst, Counters, Depth};

use super::Ctx;
use crate::measure::{interleave, timed, Figure};
use crate::raw::{self, AesLib, AesOpener};
use crate::report::{Row, Section};
use crate::{Workload, BURST, ROWS};

/// Goal 1: the path without signatures at >= 0.90 of its raw parts.
pub const GOAL_PARTS: f64 = 0.90;
/// Goal 2: the full path at >= 0.90 of the batch-verify ceiling (tx/s).
pub const GOAL_BATCH: f64 = 0.90;

/// Signatures in a batch: the node's default. Each row's workload holds
/// this many (256 single-transaction frames, or 32 of 8), from distinct
/// accounts, and the full path verifies them together across its bursts
/// of 32 frames, as a data core does.
const BATCH: usize = BatchPolicy::DEFAULT_SIGS;

const CRYPTO_NOTE: &str = "Raw libraries on each row's bytes (256 signatures: 256 single-transaction frames or 32 \
of 8 transactions, every frame from its own account): AES-256-GCM open in place of freshly sealed frames (GB/s of \
frame bytes; ring and aes-gcm as ratios to aws-lc-rs, the frame path's default), LZ4 block decompression (GB/s of \
decompressed bytes), Ed25519 verification one by one, in ed25519-zebra batches of 32 (one burst of \
single-transaction frames; ratio to single verification) and in one batch of 256 (the node's default batch, \
across bursts; ratio to batches of 32) (tx/s), and the frame path's own verifier (attnet-core: zebra's \
cofactored batch equation over keys from a per-core cache of decompressed keys) on the same batch of 256, with a \
cache of one set (every key decompressed, as zebra does) and with the default cache (the keys stay cached between \
rounds, as a client's key does on its core), each as a ratio to the zebra batch of 256.";

const PATH_NOTE: &str = "The frame path (production code built with the bench-stages feature) stopped after each \
stage, on bursts of 32 freshly sealed frames, against the raw parts doing the same work on the same bytes: \
+decrypt against raw aws-lc-rs open; +decompress/ids against raw AES + LZ4 (LZ4 rows) + SHA-256 of the ids; the \
full path in tx/s as a data core runs it (judge_burst per burst, each burst's transactions copied into the \
pending arena, one settle for the batch of 256 signatures) against the ed25519-zebra ceiling, one raw batch of 256.";

/// Indices of the figures measured for one row.
#[derive(Default)]
struct Ix {
    aes: [Option<usize>; 3],
    lz4: Option<usize>,
    sha: Option<usize>,
    single: Option<usize>,
    batch32: Option<usize>,
    batch: Option<usize>,
    /// attnet-core's verifier, a batch of 256: every key decompressed (a
    /// key cache of one set), and keys cached.
    own: [Option<usize>; 2],
    stages: [Option<usize>; 4],
}

fn add<'a>(f: Figure<'a>, figs: &mut Vec<Figure<'a>>) -> Option<usize> {
    figs.push(f);
    Some(figs.len() - 1)
}

/// A fresh burst sealed with the next counters (untimed setup).
fn fresh(w: &Workload, counter: &mut u64) -> (u64, Vec<Vec<u8>>) {
    let base = *counter;
    *counter += w.frames() as u64;
    (base, w.burst(base))
}

/// Measures and returns (crypto, frame_path) for the sections asked for.
pub fn measure(ctx: &Ctx, crypto: bool, path: bool) -> (Option<Section>, Option<Section>) {
    let mut crow = Vec::new();
    let mut prow = Vec::new();
    for row in ROWS {
        let w = Workload::with_frames(row, BURST.max(BATCH / row.txs_per_frame));
        let sigs = raw::sigs(&w);
        let failure: RefCell<Option<String>> = RefCell::new(None);
        let mut figs: Vec<Figure<'_>> = Vec::new();
        let mut ix = Ix::default();
        for (i, lib) in AesLib::ALL.into_iter().enumerate() {
            if lib == AesLib::AwsLc || crypto {
                let k = AesOpener::new(lib, &w.key);
                let w = &w;
                let mut counter = 1u64 << 40;
                ix.aes[i] = add(
                    Box::new(move || {
                        let (base, mut frames) = fresh(w, &mut counter);
                        timed(|| k.open_burst(base, &mut frames, &w.sealed_at))
                    }),
                    &mut figs,
                );
            }
        }
        if row.lz4 {
            let mut scratch = raw::lz4_scratch();
            let w = &w;
            ix.lz4 = add(Box::new(move || timed(|| raw::lz4_burst(w, &mut scratch))), &mut figs);
        }
        if path {
            let w = &w;
            ix.sha = add(
                Box::new(move || {
                    timed(|| {
                        std::hint::black_box(raw::sha_ids(w));
                    })
                }),
                &mut figs,
            );
        }
        if crypto {
            let (s, m) = (&sigs, &w.messages);
            ix.single = add(Box::new(move || timed(|| raw::verify_single(s, m))), &mut figs);
        }
        if crypto {
            let (s, m) = (&sigs, &w.messages);
            let mut rng = raw::batch_rng();
            ix.batch32 = add(Box::new(move || timed(|| raw::verify_batches(s, m, BURST, &mut rng))), &mut figs);
        }
        {
            let (s, m) = (&sigs, &w.messages);
            let mut rng = raw::batch_rng();
            ix.batch = add(Box::new(move || timed(|| raw::verify_batches(s, m, BATCH, &mut rng))), &mut figs);
        }
        if crypto {
            for (i, sets) in [1, dataplane::verify::KEY_CACHE_SETS].into_iter().enumerate() {
                let w = &w;
                let failure = &failure;
                let mut bv = dataplane::verify::BatchVerifier::with_key_cache(
                    1,
                    rand::RngExt::random(&mut raw::batch_rng()),
                    sets,
                );
                ix.own[i] = add(
                    Box::new(move || {
                        bv.clear();
                        let d = timed(|| {
                            for tx in w.txs.iter().flatten() {
                                bv.queue(tx);
                            }
                            bv.verify();
                        });
                        if bv.verify().iter().any(|ok| !ok) && failure.borrow().is_none() {
                            *failure.borrow_mut() = Some(format!("{}: a good signature failed", w.row.name));
                        }
                        d
                    }),
                    &mut figs,
                );
            }
        }
        if path {
            for (i, depth) in [Depth::Decode, Depth::Decrypt, Depth::Decompress, Depth::Full].into_iter().enumerate() {
                let w = &w;
                let failure = &failure;
                let mut fp = w.relay();
                fp.set_depth(depth);
                let mut out = Burst::with_capacity(BURST * 2, BURST * 8, BURST);
                let mut pending = Pending::with_capacity(BATCH + BURST * 8);
                let mut counter = 1u64 << 40;
                ix.stages[i] = add(
                    Box::new(move || {
                        let (_, mut frames) = fresh(w, &mut counter);
                        let mut c = Counters::default();
                        let mut txs = 0usize;
                        pending.clear();
                        let d = timed(|| {
                            for burst in frames.chunks_mut(BURST) {
                                // The burst's counters accumulate; count each burst once.
                                out.counters = Counters::default();
                                if depth == Depth::Full {
                                    fp.judge_burst(burst, &mut out, &NoFilter);
                                    pending.take_burst(&out, burst, 0, |_| Default::default());
                                } else {
                                    fp.process(burst, &mut out);
                                    txs += out.txs.len();
                                }
                                c.add(&out.counters);
                            }
                            if depth == Depth::Full {
                                fp.settle(&mut pending, &mut c);
                                txs = pending.len();
                            }
                        });
                        let txs_ok = depth < Depth::Decompress || txs == w.tx_count();
                        if (c.frames_accepted != c.frames_received || !txs_ok || !c.balanced())
                            && failure.borrow().is_none()
                        {
                            *failure.borrow_mut() = Some(format!(
                                "{} at {depth:?}: {} of {} frames, {txs} of {} transactions accepted",
                                w.row.name,
                                c.frames_accepted,
                                c.frames_received,
                                w.tx_count()
                            ));
                        }
                        d
                    }),
                    &mut figs,
                );
            }
        }
        let t = interleave(ctx.budget, &mut figs);
        drop(figs);
        if let Some(e) = failure.into_inner() {
            let reason = format!("the frame path refused its own traffic: {e}");
            return (
                crypto.then(|| Section::skipped("crypto", reason.clone())),
                path.then(|| Section::skipped("frame_path", reason)),
            );
        }
        let get = |i: Option<usize>| i.map(|i| t[i]);
        let name = row.name;
        let frame_bytes = (w.frame_len() * w.frames()) as f64;
        let body_bytes: f64 = w.bodies.iter().map(|b| b.len() as f64).sum();
        let txs = w.tx_count() as f64;
        let gbs = |secs: f64, bytes: f64| bytes / secs / 1e9;
        let aws = get(ix.aes[0]).unwrap_or(f64::NAN);
        if crypto {
            crow.push(Row::plain(format!("{name}: AES-256-GCM open, aws-lc-rs"), gbs(aws, frame_bytes), "GB/s", true));
            for i in 1..3 {
                if let Some(s) = get(ix.aes[i]) {
                    crow.push(Row::vs(
                        format!("{name}: AES-256-GCM open, {}", AesLib::ALL[i].label()),
                        gbs(s, frame_bytes),
                        "GB/s",
                        "aws-lc-rs",
                        gbs(aws, frame_bytes),
                    ));
                }
            }
            if let Some(s) = get(ix.lz4) {
                crow.push(Row::plain(format!("{name}: LZ4 decompress"), gbs(s, body_bytes), "GB/s", true));
            }
            if let (Some(single), Some(b32), Some(batch)) = (get(ix.single), get(ix.batch32), get(ix.batch)) {
                crow.push(Row::plain(format!("{name}: Ed25519 single verify"), txs / single / 1e3, "k tx/s", true));
                crow.push(Row::vs(
                    format!("{name}: ed25519-zebra batches of 32"),
                    txs / b32 / 1e3,
                    "k tx/s",
                    "single verify",
                    txs / single / 1e3,
                ));
                crow.push(Row::vs(
                    format!("{name}: ed25519-zebra batch of {BATCH}"),
                    txs / batch / 1e3,
                    "k tx/s",
                    "batches of 32",
                    txs / b32 / 1e3,
                ));
                let labels = ["every key decompressed", "keys cached"];
                for (i, label) in labels.into_iter().enumerate() {
                    if let Some(own) = get(ix.own[i]) {
                        crow.push(Row::vs(
                            format!("{name}: attnet-core batch of {BATCH}, {label}"),
                            txs / own / 1e3,
                            "k tx/s",
                            format!("zebra batch of {BATCH}"),
                            txs / batch / 1e3,
                        ));
                    }
                }
            }
        }
        if path {
            let nframes = w.frames() as f64;
            let kfps = |secs: f64| nframes / secs / 1e3;
            let st: Vec<f64> = ix.stages.iter().map(|i| get(*i).unwrap_or(f64::NAN)).collect();
            let parts = aws + get(ix.lz4).unwrap_or(0.0) + get(ix.sha).unwrap_or(f64::NAN);
            let batch = get(ix.batch).unwrap_or(f64::NAN);
            prow.push(Row::plain(format!("{name}: decode"), kfps(st[0]), "k frames/s", true));
            prow.push(Row::vs(
                format!("{name}: +decrypt"),
                kfps(st[1]),
                "k frames/s",
                "raw AES (aws-lc-rs)",
                kfps(aws),
            ));
            let parts_name = if row.lz4 { "raw AES + LZ4 + SHA-256" } else { "raw AES + SHA-256" };
            prow.push(
                Row::vs(format!("{name}: +decompress/ids"), kfps(st[2]), "k frames/s", parts_name, kfps(parts))
                    .goal(GOAL_PARTS),
            );
            prow.push(
                Row::vs(
                    format!("{name}: full"),
                    txs / st[3] / 1e3,
                    "k tx/s",
                    format!("raw batch of {BATCH}"),
                    txs / batch / 1e3,
                )
                .goal(GOAL_BATCH),
            );
        }
    }
    (
        crypto.then(|| Section::measured("crypto", CRYPTO_NOTE, crow)),
        path.then(|| Section::measured("frame_path", PATH_NOTE, prow)),
    )
}
