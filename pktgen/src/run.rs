//! A whole generator run: plan and pool, the output's sending threads,
//! receipts, the live line, and the JSON summary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::dpdk::{DpdkOptions, DpdkPorts};
use crate::drive::{drive, Limits, LiveCounters, PartReport, Sink};
use crate::encap::Encap;
use crate::handshake::HandshakeReport;
use crate::out::{PcapSink, UdpSink};
use crate::plan::{Plan, TxPool};
use crate::receipts::Tracker;
use crate::sched::{Pacer, Rate};
use crate::traffic::{start_counter, Generator, TrafficConfig};

/// Where the datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    Udp(SocketAddr),
    Pcap(PathBuf),
    /// A DPDK port id or a virtual device's EAL argument (`net_memif0,...`).
    Dpdk(String),
}

impl std::str::FromStr for Out {
    type Err = String;
    fn from_str(s: &str) -> Result<Out, String> {
        let (kind, rest) = s.split_once(':').ok_or("--out is udp:HOST:PORT, pcap:FILE or dpdk:PORT_OR_VDEV")?;
        match kind {
            "udp" => {
                use std::net::ToSocketAddrs;
                let a = rest
                    .to_socket_addrs()
                    .map_err(|e| format!("--out udp:{rest}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("--out udp:{rest}: no address"))?;
                Ok(Out::Udp(a))
            }
            "pcap" if !rest.is_empty() => Ok(Out::Pcap(PathBuf::from(rest))),
            "dpdk" if !rest.is_empty() => Ok(Out::Dpdk(rest.to_string())),
            _ => Err(format!("--out {s}: expected udp:HOST:PORT, pcap:FILE or dpdk:PORT_OR_VDEV")),
        }
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Out::Udp(a) => write!(f, "udp:{a}"),
            Out::Pcap(p) => write!(f, "pcap:{}", p.display()),
            Out::Dpdk(d) => write!(f, "dpdk:{d}"),
        }
    }
}

/// Everything a run needs besides the plan and pool.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub out: Out,
    pub traffic: TrafficConfig,
    pub rate: Rate,
    pub burst: usize,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Sending threads (UDP: one socket each); at most the sessions.
    pub threads: usize,
    pub batch: usize,
    /// Pin sending thread i to CPU i (mod the CPUs).
    pub pin: bool,
    /// Match the receiver's receipts (UDP).
    pub receipts: bool,
    /// How long to wait for outstanding receipts after sending ends.
    pub receipt_wait: Duration,
    /// Outer layers for pcap and DPDK.
    pub encap: Encap,
    /// Link speed for `--percent` and for pcap timestamps when unlimited.
    pub link_bps: f64,
    /// Print the live line every second.
    pub live: bool,
    /// EAL arguments for the DPDK output.
    pub eal_args: Vec<String>,
    /// The DPDK ports this run opens or takes up again, owned by the
    /// caller: runs given the same registry share its ports, which stay
    /// open until it closes them or is dropped. The default is a registry
    /// of its own.
    pub dpdk: Arc<DpdkPorts>,
    /// Datagrams each thread builds before sending and then sends round
    /// and round (0: build every datagram as it goes); see [`crate::presealed`].
    pub presealed: usize,
    /// The plan's sessions were opened by handshakes with the receiver
    /// ([`crate::handshake`]): their frames are sealed from counter 1 (a
    /// negotiated session's counters start at 0: spec, "Counters"), the
    /// handshakes' datagrams are part of the expected counts and the
    /// report is the summary's `handshake`.
    pub opened: Option<HandshakeReport>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            out: Out::Pcap(PathBuf::from("/dev/null")),
            traffic: TrafficConfig::default(),
            rate: Rate::Unlimited,
            burst: 1,
            count: None,
            duration: None,
            threads: 1,
            batch: 32,
            pin: false,
            receipts: false,
            receipt_wait: Duration::from_secs(2),
            encap: Encap::default(),
            link_bps: 10e9,
            live: false,
            eal_args: Vec::new(),
            dpdk: Arc::default(),
            presealed: 0,
            opened: None,
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub sent: PartReport,
    pub summary: Value,
}

/// Receipts per second since the last line (`last` is updated), and the
/// latency percentiles so far.
fn receipts_line(t: Option<&Tracker>, last: &mut u64, dt: f64) -> String {
    match t {
        Some(t) => {
            let (p50, p99) = t.p50_p99();
            let m = t.counts().matched;
            let rate = (m - (*last).min(m)) as f64 / dt;
            *last = m;
            format!(" {rate:.0} receipts/s p50 {p50} us p99 {p99} us")
        }
        None => String::new(),
    }
}

/// Runs the generator: `plan`'s sessions split over `cfg.threads` parts.
pub fn run(plan: &Plan, pool: &TxPool, cfg: &RunConfig, stop: &AtomicBool) -> Result<RunReport, String> {
    let parts = cfg.threads.max(1);
    if parts > plan.sessions.len() {
        return Err(format!("--threads {parts} needs at least as many sessions (have {})", plan.sessions.len()));
    }
    let max_dg = crate::traffic::max_datagram(&cfg.traffic, pool.max_tx_len());
    if max_dg > dataplane::backend::BUF_SIZE {
        return Err(format!(
            "datagrams could reach {max_dg} bytes, over the receiver's {} (fewer transactions per frame, \
             fewer frames per datagram or shorter memos)",
            dataplane::backend::BUF_SIZE
        ));
    }
    // Pre-sealed rounds resend the same transactions: nothing to match.
    let tracker = (cfg.receipts && cfg.presealed == 0 && matches!(cfg.out, Out::Udp(_)))
        .then(|| Arc::new(Tracker::new(plan, pool)));
    let rx_stop = Arc::new(AtomicBool::new(false));
    let lives: Vec<LiveCounters> = (0..parts).map(|_| LiveCounters::default()).collect();
    let counter0 = if cfg.opened.is_some() { 0 } else { start_counter() };
    let per_part = |i: usize| cfg.count.map(|c| c / parts as u64 + u64::from((i as u64) < c % parts as u64));
    let rate_part = |r: Rate| match r {
        Rate::Unlimited => Rate::Unlimited,
        Rate::Pps(x) => Rate::Pps(x / parts as f64),
        Rate::Bps(x) => Rate::Bps(x / parts as f64),
    };
    // Wire bytes beyond UDP/IPv4/Ethernet: the outer layers of pcap and
    // DPDK frames, or an IPv6 UDP destination's 20 more.
    let extra_wire = match &cfg.out {
        Out::Udp(dest) => 20 * u64::from(dest.is_ipv6()),
        _ => cfg.encap.extra_wire_bytes(),
    };
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let result: Result<Vec<PartReport>, String> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        let mut receivers = Vec::new();
        // Every output opens before any part starts, so a failure leaves
        // nothing running.
        if matches!(cfg.out, Out::Pcap(_)) && parts > 1 {
            return Err("a pcap output is written by one thread (--threads 1)".into());
        }
        let dpdk = DpdkOptions { eal_args: cfg.eal_args.clone(), encap: cfg.encap.clone() };
        let mut sinks: Vec<Box<dyn Sink + Send + '_>> = Vec::new();
        for part in 0..parts {
            sinks.push(match &cfg.out {
                Out::Udp(dest) => {
                    let u = UdpSink::connect(*dest).map_err(|e| format!("udp {dest}: {e}"))?;
                    if let Some(t) = &tracker {
                        receivers.push(u.receiver(t.clone(), rx_stop.clone()).map_err(|e| e.to_string())?);
                    }
                    Box::new(u)
                }
                Out::Pcap(p) => {
                    Box::new(PcapSink::create(p, cfg.encap.clone()).map_err(|e| format!("{}: {e}", p.display()))?)
                }
                Out::Dpdk(dev) => cfg.dpdk.sink(dev, part, parts, &dpdk)?,
            });
        }
        for ((part, live), mut sink) in lives.iter().enumerate().zip(sinks) {
            let tracker = tracker.clone();
            let lim = Limits { count: per_part(part), duration: cfg.duration, batch: cfg.batch, extra_wire };
            let pacer = Pacer::new(
                if cfg.rate == Rate::Unlimited && !sink.realtime() {
                    // Timestamps of an unlimited pcap follow the link speed.
                    Rate::Bps(cfg.link_bps)
                } else {
                    rate_part(cfg.rate)
                },
                cfg.burst,
            );
            let pin = cfg.pin;
            handles.push(s.spawn(move || {
                if pin {
                    let cores = core_affinity::get_core_ids().unwrap_or_default();
                    if let Some(c) = cores.get(part % cores.len().max(1)) {
                        core_affinity::set_for_current(*c);
                    }
                }
                let mut g = Generator::new(plan, pool, &cfg.traffic, part, parts, counter0);
                let r = if cfg.presealed > 0 {
                    let (bufs, info) = crate::presealed::build(&mut g, cfg.presealed);
                    crate::presealed::drive_presealed(&bufs, &info, sink.as_mut(), pacer, &lim, stop, live)
                } else {
                    drive(&mut g, sink.as_mut(), pacer, &lim, stop, live, tracker.as_deref())
                };
                sink.finish().map_err(|e| e.to_string())?;
                r.map_err(|e| e.to_string())
            }));
        }
        // The live line, once a second, while the parts run.
        let mut last = (Instant::now(), 0u64, 0u64, 0u64);
        let mut last_receipts = 0u64;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if cfg.live && last.0.elapsed() >= Duration::from_secs(1) {
                let sum = |f: fn(&LiveCounters) -> u64| lives.iter().map(f).sum::<u64>();
                let d = sum(|l| l.datagrams.load(Ordering::Relaxed));
                let b = sum(|l| l.wire_bits.load(Ordering::Relaxed));
                let t = sum(|l| l.txs.load(Ordering::Relaxed));
                let dt = last.0.elapsed().as_secs_f64();
                eprintln!(
                    "pktgen: {:.3} Mpps {:.3} Gbit/s {:.0} tx/s{}",
                    (d - last.1) as f64 / dt / 1e6,
                    (b - last.2) as f64 / dt / 1e9,
                    (t - last.3) as f64 / dt,
                    receipts_line(tracker.as_deref(), &mut last_receipts, dt)
                );
                last = (Instant::now(), d, b, t);
            }
        }
        done.store(true, Ordering::Relaxed);
        let reports: Result<Vec<PartReport>, String> =
            handles.into_iter().map(|h| h.join().map_err(|_| "a sending thread panicked".to_string())?).collect();
        // Receipts still in flight: wait until every sent transaction is
        // receipted or the wait ends.
        if let (Some(t), Ok(r)) = (&tracker, &reports) {
            let sent: u64 = r.iter().map(|p| p.txs).sum();
            let until = Instant::now() + cfg.receipt_wait;
            while t.counts().matched < sent && Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        rx_stop.store(true, Ordering::Relaxed);
        for r in receivers {
            let _ = r.join();
        }
        reports
    });
    // Receipt threads end on every path (they are joined above when the
    // parts ran; after an error they see this and stop).
    rx_stop.store(true, Ordering::Relaxed);
    let reports = result?;
    let mut sent = PartReport::default();
    for r in &reports {
        sent.add(r);
    }
    if let Some(h) = &cfg.opened {
        sent.expected.add(&h.expected());
    }
    let secs = sent.elapsed.as_secs_f64().max(1e-9);
    let asked_pps = match cfg.rate {
        Rate::Pps(x) => json!(x),
        _ => Value::Null,
    };
    let asked_bps = match cfg.rate {
        Rate::Bps(x) => json!(x),
        _ => Value::Null,
    };
    let mut summary = json!({
        "version": 1,
        "out": cfg.out.to_string(),
        "seed": plan.seed,
        "threads": parts,
        "sent": {"datagrams": sent.datagrams, "frames": sent.frames, "txs": sent.txs, "bytes": sent.bytes,
                 "wire_bits": sent.wire_bits},
        "rate": {"asked_pps": asked_pps, "asked_bps": asked_bps,
                 "achieved_pps": sent.datagrams as f64 / secs, "achieved_bps": sent.wire_bits as f64 / secs,
                 "late": sent.late, "late_max_us": sent.late_max_us, "burst": cfg.burst},
        "duration_s": (secs * 1e6).round() / 1e6,
        "wall_s": (started.elapsed().as_secs_f64() * 1e3).round() / 1e3,
        "ended": if sent.refused { "refused" } else if sent.exhausted { "pool_exhausted" } else { "limit" },
        "expected": sent.expected.to_json(),
        "hostile": hostile_json(&sent),
        "attack": attack_json(cfg, &sent),
    });
    if let Some(t) = &tracker {
        summary["receipts"] = t.report(sent.txs);
    }
    if let Some(h) = &cfg.opened {
        summary["handshake"] = h.to_json();
    }
    if let Out::Dpdk(dev) = &cfg.out {
        if let Some(d) = cfg.dpdk.report(dev) {
            summary["dpdk"] = d;
        }
        if cfg.dpdk.stalled(dev) {
            summary["ended"] = json!("stalled");
        }
    }
    if cfg.presealed > 0 {
        // Rounds after the first repeat datagrams: nothing to expect.
        summary["presealed"] = json!(cfg.presealed);
        summary["expected"] = Value::Null;
        summary["hostile"] = Value::Null;
        summary["attack"] = Value::Null;
    }
    Ok(RunReport { sent, summary })
}

fn hostile_json(r: &PartReport) -> Value {
    let mut m = serde_json::Map::new();
    for (h, n) in crate::traffic::Hostile::ALL.iter().zip(r.expected.hostile) {
        m.insert(format!("{h:?}").to_lowercase(), json!(n));
    }
    Value::Object(m)
}

/// Attack datagrams sent by shape, with the share asked and where a
/// correct receiver counts each shape (null without `--attack`).
fn attack_json(cfg: &RunConfig, r: &PartReport) -> Value {
    if cfg.traffic.attack.is_empty() {
        return Value::Null;
    }
    let mut sent = serde_json::Map::new();
    let mut verdicts = serde_json::Map::new();
    for (a, n) in crate::traffic::Attack::ALL.iter().zip(r.expected.attack) {
        if cfg.traffic.attack.contains(a) {
            sent.insert(a.name().into(), json!(n));
            verdicts.insert(a.name().into(), json!(a.verdict(cfg.traffic.handshakes)));
        }
    }
    json!({"share": cfg.traffic.attack_share, "sent": sent, "counted_as": verdicts})
}
