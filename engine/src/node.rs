//! `attnet node`: data cores (backend queue → frame path → dedup → shard
//! rings), the control thread (ledger, blocks, consensus), a live line,
//! and a summary whose counters add up.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use control::runner::{self, Live, Published, RunnerConfig};
use dataplane::backend::uring::RecvMode;
use dataplane::backend::{self, Backend, NotAtt, Queue, UdpConfig};
use dataplane::pipeline::{self, CommandBus, CoreConfig, CoreCounters, CoreSetup, DataCore, Sharder};
use dataplane::session::{Role, RxKey, Session};
use dataplane::{DropReason, TxDrop};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::config::{BackendChoice, NodeConfig};
use crate::keys;
use crate::output::{self, PortLock, SummaryFile};
use crate::topology::{LinkKind, Shape, Topology};

/// What a finished node reports.
pub struct Outcome {
    pub summary: Value,
    /// A thread that failed (the node stopped because of it); the summary
    /// was still built from what the other threads counted.
    pub error: Option<String>,
    /// Where the summary JSON goes (`summary_json`), created at start.
    json: Option<SummaryFile>,
}

impl Outcome {
    /// Writes the summary JSON file, if one was asked for (after the
    /// summary was printed), then reports the failed thread, if any.
    pub fn finish(self) -> Result<(), String> {
        if let Some(f) = self.json {
            f.commit(&serde_json::to_string_pretty(&self.summary).map_err(|e| e.to_string())?)?;
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Opened queues, the backend's name, and the bound address (sockets).
struct Opened {
    queues: Vec<Queue>,
    backend: Backend,
    addr: Option<std::net::SocketAddr>,
    /// The DPDK port, read once more after every core stopped.
    dpdk: Option<Arc<backend::dpdk::Shared>>,
    /// The socket backends' per-port lock, held until the node ends.
    lock: Option<PortLock>,
}

/// A failed bind said as what it is: EADDRINUSE names the port and says
/// another process holds it.
fn listen_error(listen: std::net::SocketAddr, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        format!("UDP port {listen} is in use by another process (bind: EADDRINUSE, {e})")
    } else {
        format!("listen {listen}: {e}")
    }
}

/// Opens the configured backend's queues; io_uring falls back to recvmmsg
/// with the reason logged when the kernel refuses it (never on a bind
/// error). Socket backends take the port's lock first (with port 0, once
/// the kernel picked the port).
fn open_queues(cfg: &NodeConfig) -> Result<Opened, String> {
    let socket = matches!(cfg.backend, BackendChoice::Auto | BackendChoice::IoUring | BackendChoice::Recvmmsg);
    let early = if socket && cfg.listen.port() != 0 { Some(PortLock::take(cfg.listen)?) } else { None };
    let mut opened = open_backend(cfg)?;
    opened.lock = match (early, opened.addr) {
        (Some(l), _) => Some(l),
        (None, Some(a)) if socket => Some(PortLock::take(a)?),
        _ => None,
    };
    Ok(opened)
}

/// Rounds of the start-up probe of `backend = "auto"`: each drains 128
/// loopback datagrams with each backend (tens of microseconds), so the
/// probe takes a few tens of milliseconds.
const PROBE_ROUNDS: usize = 41;

/// The socket backend `auto` runs here: io_uring when it drains loopback
/// datagrams at least as fast as recvmmsg in a short probe (in the mode
/// the node will use), else recvmmsg; the log line says which and why.
fn auto_backend(cfg: &NodeConfig) -> BackendChoice {
    if let Err(e) = uring_allowed() {
        tracing::info!("backend auto: recvmmsg (io_uring {e})");
        return BackendChoice::Recvmmsg;
    }
    match backend::probe::compare(cfg.receipts, PROBE_ROUNDS) {
        Ok(p) => {
            let r = p.uring_ratio();
            let pick = if r >= 1.0 { BackendChoice::IoUring } else { BackendChoice::Recvmmsg };
            tracing::info!(
                "backend auto: {} (io_uring{} drained loopback datagrams at {r:.2} of recvmmsg's rate, median of {} \
                 rounds: {} vs {} µs per {} datagrams)",
                if pick == BackendChoice::IoUring { "io_uring" } else { "recvmmsg" },
                if cfg.receipts { " with source addresses" } else { "" },
                p.rounds,
                p.uring.as_micros(),
                p.recvmmsg.as_micros(),
                backend::probe::PREFILL
            );
            pick
        }
        Err(e) => {
            tracing::info!("backend auto: recvmmsg (the io_uring probe failed: {e})");
            BackendChoice::Recvmmsg
        }
    }
}

fn open_backend(cfg: &NodeConfig) -> Result<Opened, String> {
    let udp = UdpConfig { listen: cfg.listen, queues: cfg.cores, rcvbuf: cfg.rcvbuf };
    let choice = if cfg.backend == BackendChoice::Auto { auto_backend(cfg) } else { cfg.backend };
    match choice {
        BackendChoice::Auto => Err("backend auto: no backend chosen".into()),
        BackendChoice::Pcap => {
            let path = cfg.pcap.as_ref().ok_or("config key `pcap`: missing")?;
            // One queue per data core, each taking its share of the flows
            // (as a NIC's RSS would spread them).
            let of = cfg.cores.max(1) as u32;
            let queues = (0..of)
                .map(|i| {
                    backend::pcap::PcapReplay::open_shard(path, cfg.port, cfg.loops, i, of)
                        .map(Queue::Pcap)
                        .map_err(|e| format!("pcap {}: {e}", path.display()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Opened { queues, backend: Backend::Pcap, addr: None, dpdk: None, lock: None })
        }
        BackendChoice::IoUring => match uring_allowed().and_then(|()| {
            // Receipts need each datagram's source address: a multishot
            // recvmsg; without them the plain multishot recv is cheaper.
            let mode = if cfg.receipts { RecvMode::Addresses } else { RecvMode::Plain };
            match backend::uring::UringQueue::open_mode(&udp, cfg.uring_buffers, mode) {
                Ok(qs) => Ok(Ok(qs)),
                // The kernel cannot run io_uring: fall back.
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Err(e.to_string()),
                // Anything else (a bind error above all) is not io_uring's.
                Err(e) => Ok(Err(listen_error(cfg.listen, &e))),
            }
        }) {
            Ok(Err(e)) => Err(e),
            Ok(Ok(qs)) => {
                let addr = qs.first().map(|q| q.local_addr());
                tracing::info!(
                    "backend io_uring ({} queue(s), {}, {}), listening on {}",
                    qs.len(),
                    qs.first().map_or("", |q| q.setup_flags()),
                    if cfg.receipts { "recvmsg with source addresses" } else { "plain recv" },
                    addr.map_or_else(|| cfg.listen.to_string(), |a| a.to_string())
                );
                Ok(Opened {
                    queues: qs.into_iter().map(Queue::Uring).collect(),
                    backend: Backend::IoUring,
                    addr,
                    dpdk: None,
                    lock: None,
                })
            }
            Err(e) => {
                tracing::warn!("io_uring unavailable ({e}); falling back to recvmmsg");
                open_recvmmsg(&udp)
            }
        },
        BackendChoice::Recvmmsg => open_recvmmsg(&udp),
        BackendChoice::Dpdk => {
            let d = &cfg.dpdk;
            let dcfg = backend::dpdk::DpdkConfig {
                eal_args: d.eal_args.clone().unwrap_or_default(),
                port: d.port.clone().unwrap_or_else(|| "0".into()),
                queues: cfg.cores as u16,
                rx_desc: d.rx_desc.unwrap_or(1024),
                mbufs: d.mbufs.unwrap_or(16383),
                udp_port: cfg.port,
                ipv4: d.ipv4,
            };
            let (qs, shared) = backend::dpdk::open(&dcfg)?;
            tracing::info!("backend dpdk ({} queue(s)) on port {}", qs.len(), dcfg.port);
            Ok(Opened {
                queues: qs.into_iter().map(Queue::Dpdk).collect(),
                backend: Backend::Dpdk,
                addr: None,
                dpdk: Some(shared),
                lock: None,
            })
        }
    }
}

/// `ATTNET_DISABLE_IO_URING=1` makes the node treat io_uring as
/// unavailable (for kernels where it is present but misbehaves); the
/// fallback then runs exactly as when the kernel refuses it.
fn uring_allowed() -> Result<(), String> {
    match std::env::var("ATTNET_DISABLE_IO_URING") {
        Ok(v) if !v.is_empty() && v != "0" => Err("disabled by ATTNET_DISABLE_IO_URING".into()),
        _ => Ok(()),
    }
}

fn open_recvmmsg(udp: &UdpConfig) -> Result<Opened, String> {
    let qs = backend::recvmmsg::RecvmmsgQueue::open(udp).map_err(|e| listen_error(udp.listen, &e))?;
    let addr = qs.first().map(|q| q.local_addr());
    tracing::info!(
        "backend recvmmsg ({} queue(s)), listening on {}",
        qs.len(),
        addr.map_or_else(|| udp.listen.to_string(), |a| a.to_string())
    );
    Ok(Opened {
        queues: qs.into_iter().map(Queue::Recvmmsg).collect(),
        backend: Backend::Recvmmsg,
        addr,
        dpdk: None,
        lock: None,
    })
}

pub fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0});
    }
    json!({
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

/// Builds the summary JSON (every reason listed, zero or not).
pub fn summary(
    backend: Backend,
    cores: usize,
    c: &CoreCounters,
    ctl: &runner::ControlReport,
    ingest: &Histogram<u64>,
    duration_s: f64,
) -> Value {
    let p = runner::Published {
        live: ctl.live,
        chain: ctl.chain,
        receipts: ctl.receipts,
        replies: ctl.replies,
        handshake: ctl.handshake,
        queries: ctl.queries,
        ..runner::Published::default()
    };
    let mut v = counters_json(backend, cores, c, &p);
    v["control"]["loop_us"] = percentiles(&ctl.loop_us);
    v["control"]["loop_cpu_us"] = percentiles(&ctl.loop_cpu_us);
    v["control"]["slowest"] = ctl.slowest.to_json();
    v["control"]["seal_us"] = percentiles(&ctl.seal_us);
    v["latency_us"] = json!({"ingest": percentiles(ingest), "inclusion": percentiles(&ctl.inclusion_us)});
    v["duration_s"] = json!((duration_s * 1000.0).round() / 1000.0);
    v
}

/// The summary's counters from the cores' counters (summed) and the
/// control thread's (`p`): the summary at the end, `attnet top`'s and the
/// metrics' view while the node runs. Histograms are left to the caller
/// (`latency_us` null, `control` without its percentiles).
pub fn counters_json(backend: Backend, cores: usize, c: &CoreCounters, p: &runner::Published) -> Value {
    let mut not_att = Map::new();
    for r in NotAtt::ALL {
        not_att.insert(r.as_str().into(), json!(c.not_att[r as usize]));
    }
    let mut fd = Map::new();
    for r in DropReason::ALL {
        fd.insert(r.as_str().into(), json!(c.frames.frame_drop(r)));
    }
    // Duplicates the control thread caught move from accepted to duplicate.
    let late = p.live.late_duplicates;
    let mut td = Map::new();
    for r in TxDrop::ALL {
        let n = c.frames.tx_drop(r) + if r == TxDrop::Duplicate { late } else { 0 };
        td.insert(r.as_str().into(), json!(n));
    }
    let l = &p.chain.ledger;
    json!({
        "backend": backend.as_str(),
        "cores": cores,
        "packets": {"received": c.packets.max(c.rx_packets), "kernel_dropped": c.kernel_dropped, "not_att": not_att},
        "frames": {"received": c.frames.frames_received, "accepted": c.frames.frames_accepted, "dropped": fd},
        "txs": {"seen": c.frames.txs_seen, "accepted": c.frames.txs_accepted.saturating_sub(late), "dropped": td, "pending": c.pending_txs},
        "verify": {"batches": c.verify_batches, "batch_txs": c.verify_batch_txs, "key_hits": c.verify_key_hits, "key_misses": c.verify_key_misses},
        "ledger": {
            "submitted": l.submitted,
            "applied": l.applied,
            "dropped": l.refused_json(),
            "records_evicted": p.chain.records_evicted,
        },
        "control": {
            "recently_refused": p.live.recently_refused,
            "throttles": p.live.throttles,
            "throttles_lost": p.live.throttles_lost,
            "forgets_sent": p.live.forgets_sent,
            "forgets_lost": p.live.forgets_lost,
        },
        "blocks": p.live.blocks,
        "certified": p.chain.certified,
        "height": p.live.height,
        "latency_us": null,
        "receipts": p.receipts.to_json(),
        "handshake": p.handshake.to_json(c.hellos, c.hello_overload),
        "queries": p.queries.to_json(c.queries, c.query_overload),
        "duration_s": null,
    })
}

/// The DPDK reply path: every reply the control thread handed over is
/// `queued` or dropped as `ring_full`; every queued one is `sent` or
/// dropped by the core (`no_route`, `no_mbuf`, `tx_full`) or was still on
/// the ring at the end (`left`).
pub fn replies_json(ctl: &control::receipts::ReplyCounters, core: &backend::TxReplies) -> Value {
    json!({
        "queued": ctl.queued,
        "sent": core.sent,
        "dropped": {
            "ring_full": ctl.ring_full,
            "no_route": core.no_route,
            "no_mbuf": core.no_mbuf,
            "tx_full": core.tx_full,
            "left": ctl.left,
        },
    })
}

/// Transactions a shard batch is allocated for.
const BATCH_TXS: usize = 256;

/// Commands each data core's ring holds.
const COMMAND_RING: usize = 256;

/// HELLO items each data core's exception ring holds for the control
/// thread (about 230 bytes each); a HELLO flood beyond it is `overload`.
const HELLO_RING: usize = 1024;

/// Replies the DPDK reply ring holds (about 1.5 KB each): a block's
/// RECEIPTs to a few hundred clients at once.
const REPLY_RING: usize = 1024;

/// How long the node waits for every data core to apply its configured
/// sessions at start.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Queues `sessions` to every data core's command ring; returns the last
/// sequence number.
fn install_sessions(bus: &mut CommandBus, sessions: &[RxKey]) -> Result<u64, String> {
    let mut seq = bus.seq();
    for rx in sessions {
        seq = bus.install(rx).map_err(|e| format!("installing session {}: {e}", rx.id))?;
    }
    Ok(seq)
}

/// Waits until every data core has applied the commands up to `seq`; a
/// core that already stopped (a pcap replay that ended) applied them
/// before its first burst.
fn wait_applied(bus: &CommandBus, seq: u64, running: &AtomicUsize) -> Result<(), String> {
    let until = Instant::now() + INSTALL_TIMEOUT;
    while !bus.applied_by_all(seq) && running.load(Ordering::Acquire) == bus.cores() {
        if Instant::now() >= until {
            return Err(format!("data cores did not apply the configured sessions within {INSTALL_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// The live line: totals over the data cores (`now` and `prev` are each
/// core's published counters, in the topology's order, `dt` seconds apart),
/// and with several cores each core's share of the packets.
fn live_line(topo: &Topology, now: &[CoreCounters], prev: &[CoreCounters], l: &Live, prev_l: &Live, dt: f64) -> String {
    let total = |cs: &[CoreCounters]| {
        let mut sum = CoreCounters::default();
        for c in cs {
            sum.add(c);
        }
        sum
    };
    let (sum, before) = (total(now), total(prev));
    let dt = dt.max(1e-9);
    // Every packet the backend read, ATT or not.
    let seen = |c: &CoreCounters| c.packets.max(c.rx_packets);
    let pps = seen(&sum).saturating_sub(seen(&before)) as f64 / dt;
    let gbps = sum.rx_bytes.saturating_sub(before.rx_bytes) as f64 * 8.0 / dt / 1e9;
    let fps = sum.frames.frames_received.saturating_sub(before.frames.frames_received) as f64 / dt;
    let tps = sum.frames.txs_accepted.saturating_sub(before.frames.txs_accepted) as f64 / dt;
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| sum.frames.frame_drop(**r) > 0)
        .map(|r| format!("{}={}", r.as_str(), sum.frames.frame_drop(*r)))
        .chain(
            TxDrop::ALL
                .iter()
                .filter(|r| sum.frames.tx_drop(**r) > 0)
                .map(|r| format!("{}={}", r.as_str(), sum.frames.tx_drop(*r))),
        )
        .collect();
    let per_core = if now.len() > 1 {
        let cores: Vec<String> = topo
            .data_cores()
            .zip(now.iter().zip(prev))
            .map(|(t, (n, p))| {
                let name = t.name.strip_prefix("attnet-").unwrap_or(&t.name);
                format!("{name} {:.3}", seen(n).saturating_sub(seen(p)) as f64 / dt / 1e6)
            })
            .collect();
        format!(" ({})", cores.join(", "))
    } else {
        String::new()
    };
    // Negotiated sessions, once there are handshakes.
    let sessions = if l.hs_received > 0 {
        format!(
            " | sessions {} (+{} welcomed, {} cookies, {} refused)",
            l.hs_live,
            l.hs_welcomed.saturating_sub(prev_l.hs_welcomed),
            l.hs_cookies.saturating_sub(prev_l.hs_cookies),
            l.hs_refused.saturating_sub(prev_l.hs_refused)
        )
    } else {
        String::new()
    };
    // A validator of a network of several: the height voted on, and peers.
    let network =
        if l.round_height > 0 { format!(" round_height {} peers {}", l.round_height, l.peers) } else { String::new() };
    format!(
        "{:.3} Mpps{per_core} {:.3} Gbit/s | {:.0} frames/s {:.0} tx/s | drops {} | blocks {} (+{}) height {}{network} | p99 inclusion {} us{sessions}",
        pps / 1e6,
        gbps,
        fps,
        tps,
        if drops.is_empty() { "none".into() } else { drops.join(" ") },
        l.blocks,
        l.blocks.saturating_sub(prev_l.blocks),
        l.height,
        l.inclusion_p99_us
    )
}

/// What a control thread that failed leaves for the summary: its last
/// published figures, and no ledger counters (its report is lost).
fn dead_control_report(live: &Mutex<Published>) -> runner::ControlReport {
    runner::ControlReport {
        live: live.lock().map(|l| l.live).unwrap_or_default(),
        chain: Default::default(),
        inclusion_us: Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds"),
        loop_us: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds"),
        loop_cpu_us: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds"),
        slowest: control::runner::Slowest::default(),
        seal_us: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds"),
        receipts: Default::default(),
        replies: Default::default(),
        pending_swept: 0,
        handshake: Default::default(),
        queries: Default::default(),
        storage: None,
        network: Value::Null,
    }
}

/// A panicking thread is named on one line and stops the node (the other
/// threads wind down and the summary is still printed). Release builds
/// abort on panic (`panic = "abort"`): there the line is all there is.
fn install_panic_hook(stop: Arc<AtomicBool>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let t = std::thread::current();
        tracing::error!("thread {} panicked: {info}", t.name().unwrap_or("<unnamed>"));
        stop.store(true, Ordering::Relaxed);
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            previous(info);
        }
    }));
}

/// Ready-made pieces for a running node (used by `attnet demo` to learn
/// the bound address before traffic starts).
pub struct Started {
    pub addr: Option<std::net::SocketAddr>,
    join: Box<dyn FnOnce() -> Result<Outcome, String> + Send>,
}

impl Started {
    pub fn wait(self) -> Result<Outcome, String> {
        (self.join)()
    }
}

/// The node key, where it came from, and the data directory (locked,
/// recovered) if there is one.
struct Persistence {
    /// The key and where it came from; `None` without a data directory or
    /// `--node-key`: no handshakes, blocks without a producer.
    node_key: Option<(keys::NodeKey, String)>,
    data_lock: Option<control::store::DirLock>,
    recovered: Option<control::store::Recovered>,
}

/// Takes the data directory's lock, finds the node key (given, the data
/// directory's, generated there on first start, or fresh for this run),
/// checks the directory's genesis and key, and recovers its chain.
fn persistence(cfg: &NodeConfig, genesis: &control::genesis::Genesis) -> Result<Persistence, String> {
    let Some(d) = &cfg.data_dir else {
        if cfg.committed_ids.is_some() {
            return Err("--committed-ids needs --data-dir: without one nothing is ever durable".into());
        }
        tracing::warn!("no data directory: blocks are kept in memory only and lost at exit (persistent: false)");
        let node_key = match &cfg.node_key {
            Some(p) => Some((keys::read_node_key(p)?, p.display().to_string())),
            None => None,
        };
        return Ok(Persistence { node_key, data_lock: None, recovered: None });
    };
    let lock = control::store::lock(d)?;
    let (node_key, key_origin) = match &cfg.node_key {
        Some(p) => (keys::read_node_key(p)?, p.display().to_string()),
        None => {
            let p = d.join("node.key");
            if p.exists() {
                (keys::read_node_key(&p)?, p.display().to_string())
            } else {
                let k = crate::keygen::generate()?;
                crate::keygen::write_new(&p, &k)?;
                (k, format!("{}, generated", p.display()))
            }
        }
    };
    control::store::check_meta(&lock, genesis, &node_key.public)?;
    let inbox = control::ledger::LedgerConfig::default().inbox_capacity;
    // A long replay shows its progress (a bar on a terminal, a line every
    // few seconds otherwise).
    let mut bar: Option<pktgen::progress::Progress> = None;
    let started = std::time::Instant::now();
    let r = control::store::recover_with_progress(d, genesis, inbox, false, &mut |read, total| {
        if bar.is_none() && started.elapsed() >= std::time::Duration::from_secs(1) && read < total {
            bar = Some(pktgen::progress::Progress::new("attnet: replaying the block log", total, "bytes"));
        }
        if let Some(b) = bar.as_mut() {
            b.set(read);
        }
    })?;
    if let Some(b) = bar {
        b.finish();
    }
    if let Some(t) = &r.truncated {
        tracing::warn!("recovery cut a torn write: {t}");
    }
    tracing::info!(
        "data directory {} (persistent): recovered block {} in {} ms (snapshot of block {}, then {} blocks, {} transactions replayed)",
        d.display(),
        r.tip.height,
        r.elapsed.as_millis(),
        r.snapshot_height,
        r.blocks_replayed,
        r.txs_replayed
    );
    Ok(Persistence { node_key: Some((node_key, key_origin)), data_lock: Some(lock), recovered: Some(r) })
}

/// Where the admin socket goes when `admin` is not configured: the data
/// directory's `admin.sock`, else `/run/attnet/PORT.sock` for a socket
/// backend (the port's lock makes it this node's), else one named after
/// the process.
fn admin_path(cfg: &NodeConfig, backend: Backend, addr: Option<std::net::SocketAddr>) -> std::path::PathBuf {
    static NTH: AtomicUsize = AtomicUsize::new(0);
    if let Some(p) = &cfg.admin {
        return p.clone();
    }
    if let Some(d) = &cfg.data_dir {
        return d.join("admin.sock");
    }
    let run = std::path::Path::new(RUNTIME_DIR);
    match addr {
        Some(a) if a.port() != 0 => run.join(format!("{}.sock", a.port())),
        _ => run.join(format!(
            "{}-{}-{}.sock",
            backend.as_str(),
            std::process::id(),
            NTH.fetch_add(1, Ordering::Relaxed)
        )),
    }
}

/// Where admin sockets of nodes without a data directory go.
pub const RUNTIME_DIR: &str = "/run/attnet";

/// Starts the admin socket. One the operator asked for (`admin`, or the
/// data directory's) must start; the runtime default may fail (a user
/// without write access to /run): the node then runs without one and says
/// so.
fn start_admin(
    cfg: &NodeConfig,
    addr: Option<std::net::SocketAddr>,
    dir: Option<(&control::store::DirLock, &control::store::Store)>,
    view: &Arc<crate::metrics::NodeView>,
) -> Result<Option<control::admin::AdminServer>, String> {
    let path = admin_path(cfg, view.backend, addr);
    let v = view.clone();
    let src = control::admin::AdminSources {
        dir: match dir {
            Some((lock, s)) => Some((lock.path().to_path_buf(), s.admin().ok_or("store closed")?)),
            None => None,
        },
        stats: Some(Box::new(move || v.stats())),
    };
    match control::admin::AdminServer::start(&path, src) {
        Ok(a) => {
            tracing::info!("admin socket {}", path.display());
            Ok(Some(a))
        }
        Err(e) if cfg.admin.is_none() && cfg.data_dir.is_none() => {
            tracing::warn!("no admin socket ({e}): attnet top cannot attach; set --admin PATH");
            Ok(None)
        }
        Err(e) => Err(format!("admin socket: {e}")),
    }
}

/// Starts the node's threads; `Started::wait` runs the main loop (live
/// line, duration, signals) and returns the summary.
pub fn start(cfg: NodeConfig, external_stop: Option<Arc<AtomicBool>>) -> Result<Started, String> {
    crate::logs::init(cfg.log_format, &cfg.log_level)?;
    let sessions = match &cfg.keys {
        Some(p) => keys::read(p)?,
        None => Vec::new(),
    };
    let genesis = match &cfg.genesis {
        Some(p) => control::genesis::Genesis::load(p)?,
        None => control::genesis::Genesis::new(cfg.network_id.unwrap_or(1), [])?,
    };
    let network_id = genesis.network_id();
    if let Some(asked) = cfg.network_id.filter(|n| *n != network_id) {
        return Err(format!(
            "config key `network_id`: {asked} differs from the network id {network_id} of the genesis file {}",
            cfg.genesis.as_ref().map_or_else(String::new, |p| p.display().to_string())
        ));
    }
    // The node key and the data directory, recovered, before any queue
    // opens: a restart replays its blocks before it receives.
    let Persistence { node_key, data_lock, recovered } = persistence(&cfg, &genesis)?;
    // Every output file exists before the first packet.
    let json = cfg.summary_json.as_deref().map(SummaryFile::create).transpose()?;
    if let Some(p) = &cfg.accepted_ids {
        output::check_accepted_ids(p)?;
    }
    let deadline_after = cfg.duration_s.map(crate::config::duration).transpose()?;
    if cfg.receipts_ignored {
        tracing::warn!("receipts = true ignored: the pcap backend reads no source addresses, no RECEIPTs are sent");
    }
    let Opened { mut queues, backend, addr, dpdk, lock } = open_queues(&cfg)?;
    // Every configured session splits once: the receive half goes to the
    // data cores through the command ring, the sending half (the only
    // sealer of its relay-to-client key) to the RECEIPT sender.
    let mut rx_halves = Vec::with_capacity(sessions.len());
    let mut sealers = Vec::with_capacity(sessions.len());
    let now_start = control::receipts::ReceiptSender::counter_start_now();
    // With a data directory the configured sessions' sending counters are
    // reserved ahead on disk, and the run starts above the last
    // reservation even if the clock stepped back.
    let (reservation, tx_start) = match &data_lock {
        Some(l) if !sessions.is_empty() => {
            let (r, start) =
                control::reserve::CounterReservation::open(l.path(), now_start, control::reserve::RESERVE_BLOCK)?;
            if start > now_start {
                tracing::warn!("the clock is behind the last counter reservation: RECEIPT counters start above it");
            }
            (Some(r), start)
        }
        _ => (None, now_start),
    };
    for s in &sessions {
        let (rx, tx) = Session::new(Role::Relay, s.id, &s.c2r, &s.r2c, tx_start).map_err(|e| e.to_string())?.split();
        // Only counters above the persisted top are new (spec v1.1,
        // "Counters"): a capture replayed after a restart is `replay`.
        if let Some(top) = recovered.as_ref().and_then(|r| r.counters.get(&rx.id)) {
            rx.window.seed(*top);
        }
        rx_halves.push(rx);
        sealers.push(tx);
    }
    // Replies (RECEIPTs, WELCOMEs, COOKIEs, ANSWERs) leave from a
    // duplicate of the first queue's socket: every socket of the
    // SO_REUSEPORT group has the listening address. On DPDK they go on a
    // ring to the first data core, which frames them and sends them on its
    // transmit queue. A capture replay builds and counts them without
    // sending.
    let out = match queues.first_mut() {
        Some(q) if backend == Backend::Dpdk => {
            let (ring, consumer) = pipeline::reply_link(REPLY_RING);
            q.attach_replies(consumer).map_err(|_| "replies: the dpdk queue refused the reply ring".to_string())?;
            control::receipts::ReplyOut::Ring(ring)
        }
        Some(q) => q.send_socket().map_err(|e| format!("replies: {e}"))?.into(),
        None => control::receipts::ReplyOut::None,
    };
    let mut replies =
        control::receipts::ReceiptSender::new(out, std::mem::take(&mut sealers)).with_receipts(cfg.receipts);
    if let Some(r) = reservation {
        replies = replies.with_reservation(r);
    }
    let handshake = if let Some((node_key, key_origin)) = &node_key {
        let mut h = control::handshake::HandshakeConfig::new(network_id, node_key.secret);
        h.cookie_threshold = cfg.hello_cookie_threshold;
        h.source_rate = cfg.hello_source_rate;
        h.sessions_per_source = cfg.sessions_per_source;
        h.idle_ms = u64::from(cfg.session_idle_s) * 1000;
        h.validator_slots = u16::try_from(cfg.validator_slots).unwrap_or(u16::MAX);
        let configured: Vec<u16> = rx_halves.iter().map(|r| r.id).collect();
        let server = control::handshake::HandshakeServer::new(h, &configured, rand::make_rng());
        tracing::info!("node key {} ({key_origin}) answers HELLOs on channel 1003", hex::encode(server.node_key()));
        Some(server)
    } else {
        None
    };
    let kernel_before = backend::kstats::KernelStats::read();
    // The stage modes were refused with the configuration; `rx` stops
    // every burst before the frame path, so nothing reaches the ledger.
    let rx_only = cfg.stop_after == crate::config::StopAfterChoice::Rx;
    if rx_only {
        tracing::warn!("measurement mode --stop-after rx: datagrams are received and counted, never judged");
    }
    let cores = queues.len();
    let topo = Topology::build(&Shape {
        backend,
        cores,
        shards: cfg.shards,
        ring_depth: cfg.ring_depth,
        command_depth: COMMAND_RING + rx_halves.len(),
        batch_txs: BATCH_TXS,
        pin: cfg.pin,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
    });
    tracing::info!("{}; ed25519 on {}", topo.describe(), dataplane::host::ed25519_backend());
    let epoch = Instant::now();
    let deadline = match deadline_after {
        Some(d) => {
            Some(epoch.checked_add(d).ok_or_else(|| format!("config key `duration_s`: {d:?} is too far ahead"))?)
        }
        None => None,
    };
    let stop = external_stop.unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    install_panic_hook(stop.clone());
    let sharder = Sharder::new(cfg.shards);
    // The configured sessions are queued before any core starts, so every
    // core applies them before its first burst (a pcap replay starts at
    // once); the ring holds them all and room for run-time commands.
    let command_depth = topo.links.iter().find(|l| l.kind == LinkKind::Command).map_or(COMMAND_RING, |l| l.depth);
    let (mut commands, command_ends) = pipeline::command_bus(cores, command_depth);
    let installed = install_sessions(&mut commands, &rx_halves)?;
    let mut ends = Vec::new();
    let mut exception_ends = Vec::new();
    let query_depth = (cfg.query_queue as usize / cores.max(1)).max(64);
    let mut core_threads = Vec::new();
    let mut published = Vec::new();
    let running = Arc::new(AtomicUsize::new(cores));
    let rcfg = RunnerConfig {
        cpu: topo.control().and_then(|t| t.cpu),
        accepted_ids: cfg.accepted_ids.clone(),
        budget: cfg.budget,
        ..RunnerConfig::default()
    };
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    // Built (memory touched) before any core receives.
    let tables = runner::ControlTables::new(&rcfg);
    for (i, ((tile, q), commands)) in topo.data_cores().zip(queues).zip(command_ends).enumerate() {
        let mut fp = dataplane::host::frame_path(network_id);
        fp.set_budget(cfg.budget);
        fp.set_handshakes(handshake.is_some());
        let (exceptions, exception_end) = pipeline::exception_link(HELLO_RING, query_depth);
        exception_ends.push(exception_end);
        let mut links = Vec::new();
        for l in topo.shard_links(i) {
            let (link, end, pool) = pipeline::shard_link(l.depth, topo.batch_txs);
            links.push((link, pool));
            ends.push(end);
        }
        let pubc = Arc::new(Mutex::new(CoreCounters::default()));
        published.push(pubc.clone());
        let ccfg = CoreConfig {
            cpu: tile.cpu,
            busy_poll: cfg.busy_poll,
            // A capture is offline: wait for the control thread, lose nothing.
            lossless: backend == Backend::Pcap,
            stop_after: if rx_only { pipeline::StopAfter::Rx } else { pipeline::StopAfter::Full },
            batch: cfg.batch,
            ..CoreConfig::default()
        };
        let core = DataCore::new(CoreSetup {
            fp,
            queue: q,
            links,
            commands,
            sharder: sharder.clone(),
            cfg: ccfg,
            epoch,
            stop: stop.clone(),
            published: pubc,
            exceptions: Some(exceptions),
        });
        let running = running.clone();
        let h = std::thread::Builder::new()
            .name(tile.name.clone())
            .spawn(move || {
                let r = core.run();
                running.fetch_sub(1, Ordering::AcqRel);
                r
            })
            .map_err(|e| format!("spawn data core: {e}"))?;
        core_threads.push(h);
    }
    let chain_cfg = control::chain::ChainConfig {
        ledger: control::ledger::LedgerConfig::default(),
        block: control::block::BlockConfig {
            interval_ms: cfg.block_interval_ms,
            max_txs: cfg.block_max_txs,
            empty_blocks: cfg.empty_blocks,
        },
        // The relay's own key is its blocks' producer: their fees go to it.
        producer: node_key.as_ref().map(|(k, _)| k.public),
    };
    let (chain, store, recovered_json) = match (&data_lock, recovered) {
        (Some(lock), Some(r)) => {
            let t = r.tip;
            let chain =
                control::chain::Chain::resume(&genesis, chain_cfg, r.state.clone(), t.height, t.hash, t.timestamp_ms);
            let scfg = control::store::StoreConfig {
                committed_ids: cfg.committed_ids.clone(),
                snapshot_txs: cfg.snapshot_txs,
                retain_bytes: cfg.retain_mb.saturating_mul(1 << 20),
                ..control::store::StoreConfig::default()
            };
            let json = r.to_json();
            let rx = control::store::ReceiveWindows {
                recovered: r.counters,
                windows: rx_halves.iter().map(|h| (h.id, h.window.clone())).collect(),
            };
            (chain, Some(control::store::Store::start(lock, scfg, r.state, t, rx)?), json)
        }
        _ => (control::chain::Chain::new(&genesis, chain_cfg), None, Value::Null),
    };
    let mut chain = chain;
    let consensus = consensus_json(&genesis);
    let mut peers: Option<Box<dyn control::replica::Peers>> = None;
    if !genesis.validators().is_empty() {
        let Some((key, _)) = &node_key else {
            return Err(
                "the genesis lists validators: give the node its key (--node-key, or --data-dir to keep one)".into()
            );
        };
        let set = control::bft::ValidatorSet::from_genesis(genesis.validators())
            .ok_or("the genesis validator list is empty or its power overflows")?;
        if set.seats().len() == 1 {
            chain.finalizer_mut().certify_with(genesis.hash(), key.secret, set).map_err(|e| format!("genesis: {e}"))?;
            tracing::info!("consensus: the only genesis validator; every block is certified by the BFT engine");
        } else {
            peers = Some(join_network(&cfg, &genesis, key, set, chain_cfg, &mut chain)?);
        }
    }
    let live = Arc::new(Mutex::new(Published::default()));
    let (reload_tx, reload_rx) = crossbeam_channel::bounded(1);
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .map_err(|e| format!("signal handler: {e}"))?;
    let configured = Arc::new(AtomicUsize::new(rx_halves.len()));
    let mut reloader = crate::reload::Reloader {
        cfg: cfg.clone(),
        sessions: sessions.clone(),
        to_control: reload_tx,
        configured: configured.clone(),
    };
    let view = Arc::new(crate::metrics::NodeView {
        backend,
        cores: topo
            .data_cores()
            .zip(&published)
            .map(|(t, c)| crate::metrics::CoreView { name: t.name.clone(), counters: c.clone() })
            .collect(),
        control: live.clone(),
        shards: cfg.shards,
        sessions_configured: configured.clone(),
        started: epoch,
        kernel_before,
        network_id,
        node_key: node_key.as_ref().map(|(k, _)| k.public),
        data_dir: cfg.data_dir.clone(),
    });
    let admin = start_admin(&cfg, addr, data_lock.as_ref().zip(store.as_ref()), &view)?;
    let metrics = match cfg.metrics {
        Some(a) => {
            let m = crate::metrics::MetricsServer::start(a, view.clone())?;
            tracing::info!("metrics on http://{}/metrics and /status", m.addr);
            Some(m)
        }
        None => None,
    };
    // Live on every running core before the node reports that it listens.
    wait_applied(&commands, installed, &running)?;
    let setup = runner::ControlSetup {
        ends,
        chain,
        cfg: rcfg,
        tables,
        epoch,
        cores_running: running.clone(),
        live: live.clone(),
        receipts: Some(replies),
        commands,
        exceptions: exception_ends,
        handshake,
        store,
        reloads: Some(reload_rx),
        peers,
    };
    let handshakes = setup.handshake.is_some();
    let control_thread = std::thread::Builder::new()
        .name(topo.control().map_or_else(|| "attnet-control".into(), |t| t.name.clone()))
        .spawn(move || runner::run(setup))
        .map_err(|e| format!("spawn control thread: {e}"))?;
    tracing::info!(
        "ready: {} configured session(s) on every data core, handshakes {}",
        rx_halves.len(),
        if handshakes { "on" } else { "off (no node key)" }
    );
    let stop2 = stop.clone();
    let join = move || -> Result<Outcome, String> {
        // Dropped when the node ends.
        let _lock = lock;
        let _data_lock = data_lock;
        let _admin = admin;
        let _metrics = metrics;
        let show_live = cfg.live || std::io::stderr().is_terminal();
        let mut last_line = Instant::now();
        let mut prev = vec![CoreCounters::default(); published.len()];
        let mut prev_live = Live::default();
        let mut failed: Option<String> = None;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                stop2.store(true, Ordering::Relaxed);
            }
            if hup.swap(false, Ordering::Relaxed) {
                reloader.reload();
            }
            // Every core has stopped (or died: the panic hook set the stop
            // flag, so the others follow).
            if running.load(Ordering::Acquire) == 0 || core_threads.iter().all(|h| h.is_finished()) {
                break;
            }
            // The control thread ends only after every core: one that ended
            // first failed, and nothing drains the rings any more.
            if control_thread.is_finished() {
                stop2.store(true, Ordering::Relaxed);
            }
            if show_live && last_line.elapsed() >= Duration::from_secs(1) {
                let dt = last_line.elapsed().as_secs_f64();
                last_line = Instant::now();
                let now: Vec<CoreCounters> =
                    published.iter().map(|p| p.lock().map(|c| *c).unwrap_or_default()).collect();
                let l = live.lock().map(|l| l.live).unwrap_or_default();
                let line = live_line(&topo, &now, &prev, &l, &prev_live, dt);
                match cfg.log_format {
                    crate::config::LogFormat::Text => eprintln!("attnet: {line}"),
                    crate::config::LogFormat::Json => tracing::info!(target: "attnet::live", "{line}"),
                }
                prev = now;
                prev_live = l;
            }
        }
        let mut total = CoreCounters::default();
        let mut ingest = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
        for ((h, tile), p) in core_threads.into_iter().zip(topo.data_cores()).zip(&published) {
            match h.join() {
                Ok(r) => {
                    total.add(&r.counters);
                    let _ = ingest.add(&r.ingest_us);
                }
                // Its last published counters stand in for its report.
                Err(_) => {
                    total.add(&p.lock().map(|c| *c).unwrap_or_default());
                    failed.get_or_insert_with(|| format!("thread {} panicked; the node stopped", tile.name));
                }
            }
        }
        let ctl_name = control_thread.thread().name().unwrap_or("attnet-control").to_string();
        let ctl = match control_thread.join() {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                failed.get_or_insert_with(|| format!("thread {ctl_name} failed: {e}; the node stopped"));
                dead_control_report(&live)
            }
            Err(_) => {
                failed.get_or_insert_with(|| format!("thread {ctl_name} panicked; the node stopped"));
                dead_control_report(&live)
            }
        };
        if let Some(port) = &dpdk {
            // Every core has stopped: the port's counters are final now.
            if let Some(n) = port.nic_stats() {
                total.nic = Some(n);
                total.kernel_dropped = n.imissed + n.rx_nombuf;
            }
        }
        let duration = epoch.elapsed().as_secs_f64();
        // Backlog drops are invisible to SO_RXQ_OVFL: add them (machine-wide)
        // for socket backends; the MIB deltas are reported for cross-checks.
        let kernel = backend::kstats::KernelStats::read().since(&kernel_before);
        let socket = backend.is_socket();
        let rxq_ovfl = total.kernel_dropped;
        if socket {
            total.kernel_dropped += kernel.softnet_dropped;
        }
        let mut summary = summary(backend, cores, &total, &ctl, &ingest, duration);
        summary["topology"] = topo.to_json();
        summary["persistent"] = json!(cfg.data_dir.is_some());
        summary["consensus"] = consensus.clone();
        if !ctl.network.is_null() {
            summary["consensus"]["network"] = ctl.network.clone();
        }
        summary["recovered"] = recovered_json;
        summary["storage"] = ctl.storage.as_ref().map_or(Value::Null, |s| s.to_json());
        if backend == Backend::Dpdk {
            summary["packets"]["arp_replies"] = json!(total.arp_replies);
            summary["replies"] = replies_json(&ctl.replies, &total.tx_replies);
        }
        if let Some(n) = total.nic {
            summary["packets"]["nic"] = json!({
                "ipackets": n.ipackets, "ibytes": n.ibytes, "imissed": n.imissed,
                "ierrors": n.ierrors, "rx_nombuf": n.rx_nombuf,
            });
        }
        if socket {
            summary["packets"]["kernel"] = json!({
                "rxq_ovfl": rxq_ovfl,
                "softnet_dropped": kernel.softnet_dropped,
                "udp_rcvbuf_errors": kernel.udp_rcvbuf_errors,
                "udp_in_errors": kernel.udp_in_errors,
            });
        }
        if let Some(e) = &failed {
            summary["error"] = json!(e);
        }
        Ok(Outcome { summary, error: failed, json })
    };
    Ok(Started { addr, join: Box::new(join) })
}

/// Makes this node one validator of a network of several: its consensus
/// log and block spool in the data directory, links to the other
/// validators on its genesis address.
/// The engine's timeouts from the proposal timeout, in the engine's own
/// default proportions (3 s propose, 1 s prevote and precommit, 0.5 s more
/// each round): a validator that is down costs its turns the proposal
/// timeout and the precommit timeout (Tendermint waits that out after
/// +2/3 precommits for nil).
fn round_timeouts(propose_ms: u64) -> control::bft::LinearTimeouts {
    let ms = std::time::Duration::from_millis;
    let (propose, vote, delta) = (ms(propose_ms), ms((propose_ms / 3).max(1)), ms((propose_ms / 6).max(1)));
    control::bft::LinearTimeouts {
        propose,
        propose_delta: delta,
        prevote: vote,
        prevote_delta: delta,
        precommit: vote,
        precommit_delta: delta,
        rebroadcast: propose + vote + vote,
        ..control::bft::LinearTimeouts::default()
    }
}

fn join_network(
    cfg: &NodeConfig,
    genesis: &control::Genesis,
    key: &keys::NodeKey,
    set: control::bft::ValidatorSet,
    chain_cfg: control::chain::ChainConfig,
    chain: &mut control::chain::Chain,
) -> Result<Box<dyn control::replica::Peers>, String> {
    let listed = genesis.validators();
    let Some(mine) = listed.iter().find(|v| v.node_key == key.public) else {
        return Err(format!(
            "genesis: this node's key {} is not one of its {} validators",
            hex::encode(key.public),
            listed.len()
        ));
    };
    let Some(dir) = &cfg.data_dir else {
        return Err("a validator of a network of several keeps its consensus log in the data directory: \
                    give it --data-dir"
            .into());
    };
    let mut rc = control::replica::ReplicaConfig::new(genesis.hash(), genesis.network_id(), key.secret, set);
    rc.block = chain_cfg.block;
    rc.timeouts = round_timeouts(cfg.propose_timeout_ms);
    rc.dir = Some(dir.join("consensus"));
    chain.join_network(rc, dataplane::client::unix_ms()).map_err(|e| format!("consensus: {e}"))?;
    let links = control::bft::link::Links::start(control::bft::link::LinkConfig {
        key_seed: key.secret,
        network_id: genesis.network_id(),
        listen: mine.address,
        peers: listed.iter().filter(|v| v.node_key != key.public).map(|v| (v.node_key, v.address)).collect(),
    })
    .map_err(|e| format!("validator links on {}: {e}", mine.address))?;
    tracing::info!(
        "consensus: validator {} of {}, links on {} (tcp), voting from height {}",
        hex::encode(key.public),
        listed.len(),
        links.local_addr(),
        chain.height() + 1
    );
    Ok(Box::new(LinkPeers(links)))
}

/// The validator links as the control thread's transport.
struct LinkPeers(control::bft::link::Links);

impl control::replica::Peers for LinkPeers {
    fn try_recv(&mut self) -> Option<([u8; 32], Vec<u8>)> {
        self.0.try_recv()
    }
    fn send(&mut self, to: Option<[u8; 32]>, msg: Arc<Vec<u8>>) {
        match to {
            Some(p) => self.0.send(&p, msg),
            None => self.0.broadcast(msg),
        }
    }
    fn connected(&self) -> usize {
        self.0.connected().len()
    }
    fn to_json(&self) -> Value {
        json!({
            "connected": self.0.connected().iter().map(hex::encode).collect::<Vec<_>>(),
            "counters": self.0.counters().to_json(),
        })
    }
}

/// The summary's `consensus`: how blocks become final.
fn consensus_json(genesis: &control::Genesis) -> Value {
    match genesis.validators().len() {
        0 => json!({"mode": "final-at-once", "validators": 1}),
        n => json!({"mode": "bft", "engine": "arc-malachitebft-core-consensus 0.8.2", "validators": n}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live line reads the topology: totals, then each data core's share.
    #[test]
    fn live_line_names_each_core() {
        let topo = Topology::build(&Shape {
            backend: Backend::Recvmmsg,
            cores: 2,
            shards: 1,
            ring_depth: 8,
            command_depth: 8,
            batch_txs: 8,
            pin: false,
            cpus: 2,
        });
        let c = |packets: u64, frames: u64| {
            let mut c = CoreCounters { rx_packets: packets, rx_bytes: packets * 100, ..CoreCounters::default() };
            c.frames.frames_received = frames;
            c
        };
        let prev = [c(0, 0), c(0, 0)];
        let now = [c(1_500_000, 10), c(500_000, 0)];
        let l = Live { blocks: 3, height: 3, ..Live::default() };
        let line = live_line(&topo, &now, &prev, &l, &Live::default(), 1.0);
        assert!(line.starts_with("2.000 Mpps (rx0 1.500, rx1 0.500) 1.600 Gbit/s | 10 frames/s"), "{line}");
        assert!(line.contains("drops none | blocks 3 (+3) height 3"), "{line}");
        let one = live_line(&topo, &now[..1], &prev[..1], &l, &l, 0.5);
        assert!(one.starts_with("3.000 Mpps 2.400 Gbit/s | 20 frames/s"), "{one}");
        assert!(!line.contains("sessions"), "no handshakes, no sessions token: {line}");
        let h = Live { hs_received: 9, hs_welcomed: 5, hs_cookies: 3, hs_refused: 1, hs_live: 4, ..l };
        let line = live_line(&topo, &now, &prev, &h, &Live { hs_welcomed: 2, ..l }, 1.0);
        assert!(line.ends_with("| sessions 4 (+3 welcomed, 3 cookies, 1 refused)"), "{line}");
    }
}
