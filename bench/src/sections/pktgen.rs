//! `pktgen`: the traffic generator against the machine's own limits.
//!
//! - UDP output per core: pktgen's real send path (`pktgen::drive::drive`,
//!   a generator sealing datagrams live, unlimited rate, its UDP sink) and
//!   the UDP sink alone on pre-sealed datagrams, each against a bare
//!   `sendmmsg` loop (batches of 32) sending the same bytes, all to a
//!   loopback socket that is bound but never read (the kernel drops what
//!   does not fit; sends still succeed). Interleaved in-process figures.
//! - Live sealing: frames per second one core's generator builds into a
//!   buffer (no output), against raw AES-256-GCM seals (aws-lc-rs) of the
//!   same sizes.
//! - DPDK tx: `attnet-pktgen --out dpdk:net_null0 --presealed` against
//!   `dpdk-testpmd --forward-mode=txonly` with frames of the same length on
//!   the same virtual device, lcores and memory (`bench::dpdk`), runs
//!   alternating; and the generator sealing live on the same port.

use std::cell::RefCell;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use pktgen::drive::{drive, Limits, LiveCounters, Sink};
use pktgen::out::UdpSink;
use pktgen::sched::{Pacer, Rate};
use pktgen::traffic::Datagram;
use pktgen::{Generator, Plan, TrafficConfig, TxPool};

use super::Ctx;
use crate::dpdk;
use crate::measure::{interleave, median, timed, Figure};
use crate::report::Row;

/// pktgen's UDP output at >= 0.80 of a bare sendmmsg loop.
pub const GOAL_UDP: f64 = 0.80;
/// pktgen's DPDK tx at >= 0.50 of dpdk-testpmd txonly.
pub const GOAL_DPDK_TX: f64 = 0.50;

/// Datagrams per timed iteration of the in-process figures.
const N: usize = 4096;
/// Datagrams per sendmmsg call and per sink batch.
const BATCH: usize = 32;
const SEED: u64 = 7;

/// The section's rows, or why it was skipped. The DPDK rows are left out
/// (with the reason on stderr) when DPDK or dpdk-testpmd is missing.
pub fn pktgen_rows(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let plan = Plan::from_seed(SEED, 1, 4, 256, 1_000_000_000_000);
    // 10240 transactions: a fresh generator per iteration draws ~8000.
    let pool = plan.pool(40);
    let traffic = TrafficConfig::default();
    let mut rows = udp_rows(ctx, &plan, &pool, &traffic)?;
    rows.extend(sealing_rows(ctx, &plan, &pool, &traffic));
    match dpdk_rows(ctx) {
        Ok(r) => rows.extend(r),
        Err(e) => eprintln!("attnet-bench: pktgen: DPDK rows skipped: {e}"),
    }
    Ok(rows)
}

/// The first `N` datagrams a fresh generator builds, and what each is.
fn presealed(plan: &Plan, pool: &TxPool, traffic: &TrafficConfig) -> Result<(Vec<Vec<u8>>, Vec<Datagram>), String> {
    let mut g = Generator::new(plan, pool, traffic, 0, 1, pktgen::traffic::start_counter());
    let (bufs, info) = pktgen::presealed::build(&mut g, N);
    if bufs.len() < N {
        return Err(format!("the pool gave {} datagrams, {N} needed", bufs.len()));
    }
    Ok((bufs, info))
}

fn udp_rows(ctx: &Ctx, plan: &Plan, pool: &TxPool, traffic: &TrafficConfig) -> Result<Vec<Row>, String> {
    let (bufs, info) = presealed(plan, pool, traffic)?;
    // Bound, never read: the kernel drops what overflows its buffer.
    let rx = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp bind: {e}"))?;
    let dest = rx.local_addr().map_err(|e| e.to_string())?;
    let bare = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp bind: {e}"))?;
    bare.connect(dest).map_err(|e| format!("udp connect: {e}"))?;
    let mut sink = UdpSink::connect(dest).map_err(|e| format!("udp sink: {e}"))?;
    let mut sink2 = UdpSink::connect(dest).map_err(|e| format!("udp sink: {e}"))?;
    let stop = AtomicBool::new(false);
    let live = LiveCounters::default();
    let lim = Limits { count: Some(N as u64), duration: None, batch: BATCH, extra_wire: 0 };
    let counter0 = pktgen::traffic::start_counter();
    let due = [0u64; BATCH];
    let mut live_sent = 0u64;
    let errors: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let mut figs: Vec<Figure<'_>> = vec![
        // Bare sendmmsg, 32 a call, the same bytes.
        Box::new(|| {
            timed(|| {
                let mut refs: [&[u8]; BATCH] = [&[]; BATCH];
                for chunk in bufs.chunks(BATCH) {
                    for (r, b) in refs.iter_mut().zip(chunk) {
                        *r = b;
                    }
                    let mut off = 0;
                    while off < chunk.len() {
                        match pktgen::sendmmsg::send_batch(&bare, &refs[off..chunk.len()]) {
                            Ok(k) => off += k,
                            Err(_) => std::thread::yield_now(),
                        }
                    }
                }
            })
        }),
        // pktgen's send path: a generator sealing live into the UDP sink.
        Box::new(|| {
            let mut g = Generator::new(plan, pool, traffic, 0, 1, counter0);
            let t = Instant::now();
            let r = drive(&mut g, &mut sink, Pacer::new(Rate::Unlimited, 1), &lim, &stop, &live, None);
            let dt = t.elapsed();
            match r {
                Ok(r) => live_sent = r.datagrams,
                Err(e) => errors.borrow_mut().push(e.to_string()),
            }
            dt
        }),
        // The UDP sink alone on the pre-sealed datagrams.
        Box::new(|| {
            timed(|| {
                for (chunk, inf) in bufs.chunks(BATCH).zip(info.chunks(BATCH)) {
                    if let Err(e) = sink2.send(chunk, inf, &due[..chunk.len()]) {
                        errors.borrow_mut().push(e.to_string());
                        return;
                    }
                }
            })
        }),
    ];
    let secs = interleave(ctx.budget, &mut figs);
    drop(figs);
    if let Some(e) = errors.borrow().first() {
        return Err(format!("UDP output: {e}"));
    }
    if live_sent != N as u64 {
        return Err(format!("pktgen's send path sent {live_sent} of {N} datagrams"));
    }
    let rate = |s: f64| N as f64 / s / 1e3;
    let bare_k = rate(secs[0]);
    Ok(vec![
        Row::plain("bare sendmmsg loop (32 a call), loopback", bare_k, "k datagrams/s", true),
        // The output's goal: the same bytes as the bare loop, through
        // pktgen's sink (what `--presealed` sends).
        Row::vs("pktgen UDP output, pre-sealed datagrams", rate(secs[2]), "k datagrams/s", "bare sendmmsg", bare_k)
            .goal(GOAL_UDP),
        // Sealing on the same core as the sends: bounded by the sealing
        // rate below (more cores: --threads).
        Row::vs("pktgen UDP, sealing live on the same core", rate(secs[1]), "k datagrams/s", "bare sendmmsg", bare_k),
    ])
}

fn sealing_rows(ctx: &Ctx, plan: &Plan, pool: &TxPool, traffic: &TrafficConfig) -> Vec<Row> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let counter0 = pktgen::traffic::start_counter();
    let lens: Vec<usize> =
        presealed(plan, pool, traffic).map(|(b, _)| b.iter().map(Vec::len).collect()).unwrap_or_default();
    if lens.is_empty() {
        return Vec::new();
    }
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).expect("32-byte key"));
    let mut plain: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0x5a; l]).collect();
    let mut frames = 0u64;
    let mut buf = Vec::with_capacity(4096);
    let mut figs: Vec<Figure<'_>> = vec![
        Box::new(|| {
            let mut g = Generator::new(plan, pool, traffic, 0, 1, counter0);
            timed(|| {
                frames = 0;
                for _ in 0..N {
                    match g.next(&mut buf) {
                        Some(d) => frames += u64::from(d.frames),
                        None => break,
                    }
                }
            })
        }),
        Box::new(|| {
            timed(|| {
                for (i, p) in plain.iter_mut().enumerate() {
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                    let tag = key
                        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&[0u8; 8]), p)
                        .expect("seal");
                    let _ = std::hint::black_box(tag);
                }
            })
        }),
    ];
    let secs = interleave(ctx.budget, &mut figs);
    drop(figs);
    let gen_k = frames as f64 / secs[0] / 1e3;
    let raw_k = lens.len() as f64 / secs[1] / 1e3;
    vec![
        Row::plain("raw AES-256-GCM seal (aws-lc-rs), the generator's datagram sizes", raw_k, "k seals/s", true),
        Row::vs("generator: frames built and sealed live, one core", gen_k, "k frames/s", "raw AES-GCM seal", raw_k),
    ]
}

/// One `attnet-pktgen --out dpdk:net_null0` run: its achieved rate and
/// mean frame length on the wire (Ethernet, without FCS).
fn pktgen_dpdk(ctx: &Ctx, eal: &[String], secs: u64, presealed: bool) -> Result<(f64, usize), String> {
    let json = ctx.work.join(format!("pktgen-dpdk-{}.json", if presealed { "presealed" } else { "live" }));
    let mut c = Command::new(&ctx.pktgen);
    c.args(["--seed", &SEED.to_string(), "--sessions", "4", "--accounts", "256"])
        .args(["--out", "dpdk:net_null0", "--eal", &eal.join(" "), "--duration", &secs.to_string()])
        .args(["--kinds", "transfer", "--memo", "19", "--txs-per-frame", "1", "--frames-per-datagram", "1"])
        .args(["--lz4", "off", "--bad", "0", "--batch", "32", "--pin", "--quiet"])
        .arg("--json")
        .arg(&json);
    if presealed {
        c.args(["--presealed", "4096", "--txs", "8192"]);
    } else {
        // Every transaction is new, so the pool bounds the run: 200000
        // (signed once, cached on disk), a few tenths of a second.
        c.args(["--txs", "200000", "--count", "200000"]);
    }
    let out = c.stdin(Stdio::null()).stdout(Stdio::null()).output().map_err(|e| format!("attnet-pktgen: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "attnet-pktgen --out dpdk failed ({}): {}",
            out.status,
            err.trim().lines().last().unwrap_or("")
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
    let _ = std::fs::remove_file(&json);
    let s: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    let pps = s["rate"]["achieved_pps"].as_f64().ok_or("pktgen summary without rate.achieved_pps")?;
    let (dgs, bytes) = (s["sent"]["datagrams"].as_u64().unwrap_or(0), s["dpdk"]["obytes"].as_u64().unwrap_or(0));
    if dgs == 0 || s["dpdk"]["opackets"].as_u64() != Some(dgs) {
        return Err(format!("pktgen on net_null0: the port counted {} of {dgs} datagrams", s["dpdk"]["opackets"]));
    }
    // net_null does not count bytes: the UDP payload plus 42 header bytes.
    let len = if bytes > 0 { bytes / dgs } else { s["sent"]["bytes"].as_u64().unwrap_or(0) / dgs + 42 };
    Ok((pps, len as usize))
}

fn dpdk_rows(ctx: &Ctx) -> Result<Vec<Row>, String> {
    if let Some(why) = dpdk::unavailable(&ctx.attnet) {
        return Err(why);
    }
    if !ctx.pktgen.exists() {
        return Err(format!("{} not found (cargo build --release -p pktgen)", ctx.pktgen.display()));
    }
    let huge = dpdk::Hugepages::reserve();
    let r = dpdk_measure(ctx, huge.as_ref());
    drop(huge);
    r
}

fn dpdk_measure(ctx: &Ctx, huge: Option<&dpdk::Hugepages>) -> Result<Vec<Row>, String> {
    let mem = dpdk::memory_args(huge);
    let secs = if ctx.quick { 4 } else { 8 };
    let rounds = if ctx.quick { 1 } else { 3 };
    let (mut gen, mut tp, mut len) = (Vec::new(), Vec::new(), 0);
    for round in 0..rounds {
        let (pps, l) = pktgen_dpdk(ctx, &dpdk::eal_args(&mem, &format!("bench-pg{round}"), "net_null0"), secs, true)?;
        len = l;
        gen.push(pps);
        let eal = dpdk::eal_args(&mem, &format!("bench-tx{round}"), "net_null0");
        tp.push(dpdk::testpmd(&eal, secs, dpdk::Forward::TxOnly { len })?);
    }
    let (live, _) = pktgen_dpdk(ctx, &dpdk::eal_args(&mem, "bench-pgl", "net_null0"), secs.min(4), false)?;
    let tp = median(tp) / 1e6;
    eprintln!(
        "attnet-bench: pktgen DPDK tx on net_null0, {len}-byte frames, {} ({rounds} rounds of {secs} s)",
        dpdk::memory_note(huge)
    );
    Ok(vec![
        Row::plain(format!("dpdk-testpmd txonly, net_null0, {len}-byte frames"), tp, "Mpps", true),
        Row::vs("attnet-pktgen --out dpdk:net_null0 --presealed", median(gen) / 1e6, "Mpps", "testpmd txonly", tp)
            .goal(GOAL_DPDK_TX),
        Row::vs("attnet-pktgen --out dpdk:net_null0, sealing live", live / 1e6, "Mpps", "testpmd txonly", tp),
    ])
}

/// What the rows mean.
pub const NOTE: &str = "The traffic generator against the machine's own limits, one core each. UDP: pktgen's send \
path (pktgen::drive with a generator sealing datagrams live, unlimited rate, the UDP sink's sendmmsg) and the UDP \
sink alone on pre-sealed datagrams, against a bare sendmmsg loop (32 a call) sending the same bytes, all to a \
loopback socket bound but never read (the kernel drops what overflows; sends succeed); 4096 default-shape \
datagrams (1-3 transactions a frame, LZ4 on every other frame) per iteration, interleaved. Sealing: frames one \
core's generator builds into a buffer, against raw AES-256-GCM seals (aws-lc-rs) of the same sizes. DPDK: \
attnet-pktgen --out dpdk:net_null0 --presealed 4096 (one sending thread, pinned) against dpdk-testpmd \
--forward-mode=txonly --txpkts=<the same frame length> on the same virtual device, lcores 0-1 and memory \
(hugepages when they can be reserved), runs alternating, rates from the generator's JSON summary \
(rate.achieved_pps) and testpmd's steady-state Tx-pps; then the generator sealing live on the same port (200000 \
single-transaction datagrams, every transaction new). The DPDK rows are absent when DPDK or dpdk-testpmd is not installed (the reason is printed).";
