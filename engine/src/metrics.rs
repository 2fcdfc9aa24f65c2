//! The running node seen from outside: the Prometheus endpoint
//! (`--metrics ADDR`: `/metrics` and `/status`) and the admin socket's
//! `stats` answer (`attnet top`). Both read what the threads already
//! publish: each data core's counters (copied under its mutex every
//! 100 ms, never per packet or per burst) and the control thread's
//! [`Published`] figures, so a scrape costs the data path nothing.
//!
//! Names follow Prometheus conventions: counters end in `_total`, times
//! are seconds, reasons are the summary's names as a `reason` label, and
//! per-core series carry a `core` label (totals are a PromQL `sum`).
//! `docs/OPERATIONS.md` lists every series.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attnet_core::latency::{LatencyBuckets, BOUNDS_US};
use control::runner::Published;
use dataplane::backend::kstats::KernelStats;
use dataplane::backend::{Backend, NotAtt};
use dataplane::pipeline::CoreCounters;
use dataplane::{DropReason, TxDrop};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use serde_json::{json, Value};

/// A data core as the views name it.
pub struct CoreView {
    /// Its thread's name (`attnet-rx0`).
    pub name: String,
    pub counters: Arc<Mutex<CoreCounters>>,
}

/// Everything the views read, shared with the node's threads.
pub struct NodeView {
    pub backend: Backend,
    pub cores: Vec<CoreView>,
    pub control: Arc<Mutex<Published>>,
    /// Shard rings per data core (the control thread's `ring_fill` holds
    /// `cores × shards` entries, core by core).
    pub shards: usize,
    /// Configured sessions in force (a reload changes them).
    pub sessions_configured: Arc<std::sync::atomic::AtomicUsize>,
    pub started: Instant,
    /// The kernel's counters at start: socket backends add the backlog
    /// drops since (machine-wide) to the cores' own, as the summary does.
    pub kernel_before: KernelStats,
    pub network_id: u32,
    pub node_key: Option<[u8; 32]>,
    pub data_dir: Option<PathBuf>,
}

/// One reading of every thread's published figures.
pub struct Snapshot {
    pub cores: Vec<CoreCounters>,
    pub ctl: Published,
    pub uptime_s: f64,
    /// Backlog drops since start (socket backends; 0 otherwise).
    pub softnet_dropped: u64,
}

impl Snapshot {
    /// The cores' counters summed, kernel drops as the summary counts them.
    pub fn total(&self) -> CoreCounters {
        let mut t = CoreCounters::default();
        for c in &self.cores {
            t.add(c);
        }
        t.kernel_dropped += self.softnet_dropped;
        t
    }

    /// Each data core's fullest shard ring, 0..1.
    fn ring_fill(&self, core: usize, shards: usize) -> f64 {
        let from = core * shards;
        self.ctl.ring_fill.iter().skip(from).take(shards).fold(0.0f64, |m, f| m.max(f64::from(*f)))
    }
}

impl NodeView {
    /// Configured sessions in force.
    pub fn configured(&self) -> usize {
        self.sessions_configured.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        let cores = self.cores.iter().map(|c| c.counters.lock().map(|c| *c).unwrap_or_default()).collect();
        let ctl = self.control.lock().map(|p| p.clone()).unwrap_or_default();
        let softnet_dropped =
            if self.backend.is_socket() { KernelStats::read().since(&self.kernel_before).softnet_dropped } else { 0 };
        Snapshot { cores, ctl, uptime_s: self.started.elapsed().as_secs_f64(), softnet_dropped }
    }

    /// The admin socket's `stats` answer: the summary's counters as they
    /// stand, each data core's share, latency percentiles (inclusion from
    /// the control thread's histogram; ingest to its bucket's bound).
    pub fn stats(&self) -> Value {
        let s = self.snapshot();
        let total = s.total();
        let mut summary = crate::node::counters_json(self.backend, self.cores.len(), &total, &s.ctl);
        let [p50, p90, p99, p999, max] = s.ctl.inclusion_pct;
        let q = |b: &LatencyBuckets, q: f64| b.quantile_bound(q);
        summary["latency_us"] = json!({
            "ingest": {
                "p50": q(&total.ingest, 0.5), "p90": q(&total.ingest, 0.9), "p99": q(&total.ingest, 0.99),
                "p999": q(&total.ingest, 0.999), "max": q(&total.ingest, 1.0),
            },
            "inclusion": {"p50": p50, "p90": p90, "p99": p99, "p999": p999, "max": max},
        });
        summary["duration_s"] = json!((s.uptime_s * 1000.0).round() / 1000.0);
        let cores: Vec<Value> = self
            .cores
            .iter()
            .zip(&s.cores)
            .enumerate()
            .map(|(i, (v, c))| {
                json!({
                    "core": i,
                    "name": v.name,
                    "packets": c.packets.max(c.rx_packets),
                    "bytes": c.rx_bytes,
                    "frames_received": c.frames.frames_received,
                    "frames_accepted": c.frames.frames_accepted,
                    "txs_seen": c.frames.txs_seen,
                    "txs_accepted": c.frames.txs_accepted,
                    "txs_pending": c.pending_txs,
                    "verify_batches": c.verify_batches,
                    "verify_batch_txs": c.verify_batch_txs,
                    "verify_key_hits": c.verify_key_hits,
                    "verify_key_misses": c.verify_key_misses,
                    "kernel_dropped": c.kernel_dropped,
                    "ring_fill": s.ring_fill(i, self.shards),
                })
            })
            .collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backend": self.backend.as_str(),
            "uptime_s": (s.uptime_s * 1000.0).round() / 1000.0,
            "height": s.ctl.sealed_height,
            "finalized_height": s.ctl.live.height,
            "sessions": {"configured": self.configured(), "live": s.ctl.handshake.live},
            "cores": cores,
            "summary": summary,
        })
    }

    /// `/status`: who the node is and where its chain stands.
    pub fn status(&self) -> Value {
        let p = self.control.lock().map(|p| p.clone()).unwrap_or_default();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "backend": self.backend.as_str(),
            "network_id": self.network_id,
            "node_key": self.node_key.map(hex::encode),
            "uptime_s": (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            "height": p.sealed_height,
            "finalized_height": p.live.height,
            // One validator (the node itself) until validators peer.
            "peers": 0,
            "sessions": {"configured": self.configured(), "live": p.handshake.live},
            "cores": self.cores.len(),
            "persistent": self.data_dir.is_some(),
        })
    }
}

/// Encodes one metric family: `series` are (labels, value) pairs.
fn family<V: MetricValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: &[(Vec<(&str, String)>, V)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in series {
        v.encode(m.encode_family(labels)?, kind)?;
    }
    Ok(())
}

/// A counter or gauge value.
trait MetricValue {
    fn encode(&self, m: prometheus_client::encoding::MetricEncoder, kind: MetricType) -> Result<(), std::fmt::Error>;
}

impl MetricValue for u64 {
    fn encode(
        &self,
        mut m: prometheus_client::encoding::MetricEncoder,
        kind: MetricType,
    ) -> Result<(), std::fmt::Error> {
        match kind {
            MetricType::Counter => m.encode_counter::<NoLabelSet, u64, u64>(self, None),
            _ => m.encode_gauge(&(i64::try_from(*self).unwrap_or(i64::MAX))),
        }
    }
}

impl MetricValue for f64 {
    fn encode(
        &self,
        mut m: prometheus_client::encoding::MetricEncoder,
        kind: MetricType,
    ) -> Result<(), std::fmt::Error> {
        match kind {
            MetricType::Counter => m.encode_counter::<NoLabelSet, f64, f64>(self, None),
            _ => m.encode_gauge(self),
        }
    }
}

/// A latency histogram family in seconds.
fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Vec<(&str, String)>, LatencyBuckets)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, b) in series {
        // Per-bucket counts: the encoder writes them cumulated.
        let bounds = BOUNDS_US.iter().map(|us| *us as f64 / 1e6).chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds.zip(b.counts).collect();
        m.encode_family(labels)?.encode_histogram::<NoLabelSet>(b.sum_us as f64 / 1e6, b.count, &buckets, None)?;
    }
    Ok(())
}

fn core(i: usize) -> Vec<(&'static str, String)> {
    vec![("core", i.to_string())]
}

fn reason_core(r: &str, i: usize) -> Vec<(&'static str, String)> {
    vec![("reason", r.to_string()), ("core", i.to_string())]
}

/// Each numeric entry of a summary section (`{"name": n}`) as a series
/// labelled `label="name"`.
fn by_label(v: &Value, label: &'static str) -> Vec<(Vec<(&'static str, String)>, u64)> {
    v.as_object()
        .map(|m| m.iter().filter_map(|(k, n)| Some((vec![(label, k.clone())], n.as_u64()?))).collect())
        .unwrap_or_default()
}

fn one(v: u64) -> [(Vec<(&'static str, String)>, u64); 1] {
    [(Vec::new(), v)]
}

/// The node's collector: reads a [`Snapshot`] at each scrape.
#[derive(Clone)]
pub struct NodeCollector(pub Arc<NodeView>);

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use MetricType::{Counter, Gauge};
        let view = &self.0;
        let s = view.snapshot();
        let cs = &s.cores;
        let per_core = |f: &dyn Fn(&CoreCounters) -> u64| -> Vec<(Vec<(&str, String)>, u64)> {
            cs.iter().enumerate().map(|(i, c)| (core(i), f(c))).collect()
        };
        let e = &mut e;
        // What the node is.
        let features = dataplane::host::cpu_features();
        let mut info = vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("backend", view.backend.as_str().to_string()),
            ("ed25519", dataplane::host::ed25519_backend().to_string()),
        ];
        info.extend(features.iter().map(|(f, on)| (*f, if *on { "yes" } else { "no" }.to_string())));
        let mut m = e.encode_descriptor(
            "attnet_node",
            "The node's version, backend and the CPU features its fast paths use (1).",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&info)?;
        family(e, "attnet_uptime_seconds", "Seconds since the node started.", Gauge, &[(Vec::new(), s.uptime_s)])?;
        family(e, "attnet_sessions_configured", "Sessions from the keys file.", Gauge, &one(view.configured() as u64))?;
        family(
            e,
            "attnet_sessions_live",
            "Sessions negotiated by handshake, live now.",
            Gauge,
            &one(s.ctl.handshake.live),
        )?;
        // Data cores.
        family(
            e,
            "attnet_packets_received",
            "Datagrams (frames of the backend) a data core received.",
            Counter,
            &per_core(&|c| c.packets.max(c.rx_packets)),
        )?;
        family(e, "attnet_bytes_received", "Bytes of those datagrams.", Counter, &per_core(&|c| c.rx_bytes))?;
        let mut not_att = Vec::new();
        for (i, c) in cs.iter().enumerate() {
            not_att.extend(NotAtt::ALL.iter().map(|r| (reason_core(r.as_str(), i), c.not_att[*r as usize])));
        }
        family(e, "attnet_packets_not_att", "Packets that are not ATT datagrams, by reason.", Counter, &not_att)?;
        family(
            e,
            "attnet_packets_kernel_dropped",
            "Datagrams the kernel or NIC dropped before the core read them (SO_RXQ_OVFL, NIC imissed + rx_nombuf).",
            Counter,
            &per_core(&|c| c.kernel_dropped),
        )?;
        family(
            e,
            "attnet_kernel_backlog_dropped",
            "Backlog (softnet) drops since start, machine-wide (socket backends).",
            Counter,
            &one(s.softnet_dropped),
        )?;
        family(
            e,
            "attnet_frames_received",
            "ATT frames a data core judged.",
            Counter,
            &per_core(&|c| c.frames.frames_received),
        )?;
        family(e, "attnet_frames_accepted", "Frames accepted.", Counter, &per_core(&|c| c.frames.frames_accepted))?;
        let mut fd = Vec::new();
        for (i, c) in cs.iter().enumerate() {
            fd.extend(DropReason::ALL.iter().map(|r| (reason_core(r.as_str(), i), c.frames.frame_drop(*r))));
        }
        family(e, "attnet_frames_dropped", "Frames dropped, by reason.", Counter, &fd)?;
        family(e, "attnet_txs_seen", "Transactions in accepted frames.", Counter, &per_core(&|c| c.frames.txs_seen))?;
        family(e, "attnet_txs_accepted", "Transactions a data core accepted and put on a shard ring (some may still be caught as duplicates by the control thread: attnet_txs_late_duplicates_total).", Counter, &per_core(&|c| c.frames.txs_accepted))?;
        let mut td = Vec::new();
        for (i, c) in cs.iter().enumerate() {
            td.extend(TxDrop::ALL.iter().map(|r| (reason_core(r.as_str(), i), c.frames.tx_drop(*r))));
        }
        family(e, "attnet_txs_dropped", "Transactions a data core dropped, by reason.", Counter, &td)?;
        family(e, "attnet_txs_late_duplicates", "Transactions accepted by a data core that the control thread found to be duplicates of one another core accepted (the summary counts them as txs.dropped.duplicate).", Counter, &one(s.ctl.live.late_duplicates))?;
        family(
            e,
            "attnet_txs_pending",
            "Transactions waiting for their signature batch (counted in attnet_txs_seen, not yet accepted or dropped).",
            Gauge,
            &per_core(&|c| c.pending_txs),
        )?;
        family(
            e,
            "attnet_verify_batches",
            "Signature batches a data core verified.",
            Counter,
            &per_core(&|c| c.verify_batches),
        )?;
        family(
            e,
            "attnet_verify_batch_txs",
            "Transactions in those batches (divided by attnet_verify_batches_total: the average batch).",
            Counter,
            &per_core(&|c| c.verify_batch_txs),
        )?;
        family(
            e,
            "attnet_verify_key_hits",
            "Public keys of queued signatures found in the data core's cache of decompressed keys.",
            Counter,
            &per_core(&|c| c.verify_key_hits),
        )?;
        family(
            e,
            "attnet_verify_key_misses",
            "Public keys decompressed because they were not cached (hits / (hits + misses): the cache's hit rate).",
            Counter,
            &per_core(&|c| c.verify_key_misses),
        )?;
        family(e, "attnet_core_bursts", "Receive calls that returned datagrams.", Counter, &per_core(&|c| c.bursts))?;
        family(
            e,
            "attnet_core_idle_waits",
            "Times a data core blocked waiting for traffic.",
            Counter,
            &per_core(&|c| c.idle_waits),
        )?;
        family(e, "attnet_core_rx_errors", "Receive calls that failed.", Counter, &per_core(&|c| c.rx_errors))?;
        let fill: Vec<_> = (0..cs.len()).map(|i| (core(i), s.ring_fill(i, view.shards))).collect();
        family(
            e,
            "attnet_ring_fill_ratio",
            "The fullest shard ring of a data core, batches waiting over capacity.",
            Gauge,
            &fill,
        )?;
        let ingest: Vec<_> = cs.iter().enumerate().map(|(i, c)| (core(i), c.ingest)).collect();
        histogram(
            e,
            "attnet_ingest_latency_seconds",
            "Receive to verified and in its shard's batch, per transaction.",
            &ingest,
        )?;
        // Control thread: ledger, blocks, handshakes, queries, receipts.
        let total = s.total();
        let sum = crate::node::counters_json(view.backend, cs.len(), &total, &s.ctl);
        let l = &s.ctl.chain.ledger;
        family(e, "attnet_ledger_submitted", "Transactions submitted to the ledger.", Counter, &one(l.submitted))?;
        family(e, "attnet_ledger_applied", "Transactions the ledger applied.", Counter, &one(l.applied))?;
        family(
            e,
            "attnet_ledger_refused",
            "Transactions the ledger refused, by reason.",
            Counter,
            &by_label(&sum["ledger"]["dropped"], "reason"),
        )?;
        family(
            e,
            "attnet_ledger_records_evicted",
            "Inbox records dropped from full inboxes since the genesis.",
            Counter,
            &one(s.ctl.chain.records_evicted),
        )?;
        family(
            e,
            "attnet_control_events",
            "Control-thread events: recently_refused, throttles(_lost), forgets_sent/lost.",
            Counter,
            &by_label(&sum["control"], "event"),
        )?;
        family(
            e,
            "attnet_blocks",
            "Blocks committed (final and durable) since start.",
            Counter,
            &one(s.ctl.live.blocks),
        )?;
        family(e, "attnet_height", "The chain's tip: the last sealed block.", Gauge, &one(s.ctl.sealed_height))?;
        family(
            e,
            "attnet_finalized_height",
            "The last block final and durable (committed).",
            Gauge,
            &one(s.ctl.live.height),
        )?;
        histogram(
            e,
            "attnet_inclusion_latency_seconds",
            "Receive to sealed in a block, per committed transaction.",
            &[(Vec::new(), s.ctl.inclusion)],
        )?;
        histogram(
            e,
            "attnet_finality_latency_seconds",
            "Sealed to committed (final, and durable with a data directory), per block.",
            &[(Vec::new(), s.ctl.finality)],
        )?;
        family(
            e,
            "attnet_receipts",
            "RECEIPT indications: frames, ids, datagrams, no_address, send_errors.",
            Counter,
            &by_label(&sum["receipts"], "kind"),
        )?;
        let hs = &sum["handshake"];
        family(
            e,
            "attnet_handshake_received",
            "Handshake items the data cores handed to the control thread.",
            Counter,
            &one(total.hellos),
        )?;
        family(
            e,
            "attnet_handshake_welcomed",
            "HELLOs answered with a WELCOME.",
            Counter,
            &one(s.ctl.handshake.welcomed),
        )?;
        family(
            e,
            "attnet_handshake_cookies_sent",
            "HELLOs answered with a COOKIE.",
            Counter,
            &one(s.ctl.handshake.cookies_sent),
        )?;
        family(
            e,
            "attnet_handshake_refused",
            "Handshake items refused, by reason.",
            Counter,
            &by_label(&hs["refused"], "reason"),
        )?;
        family(
            e,
            "attnet_sessions_ended",
            "Negotiated sessions ended, by reason.",
            Counter,
            &by_label(&hs["ended"], "reason"),
        )?;
        family(
            e,
            "attnet_queries",
            "QUERY frames: received, answered, sent, stale_session, malformed, overload.",
            Counter,
            &by_label(&sum["queries"], "outcome"),
        )?;
        Ok(())
    }
}

/// The Prometheus listener's thread: serves until dropped.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub addr: std::net::SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` and serves `/metrics` (Prometheus text format 0.0.4)
    /// and `/status` (JSON) on a thread of its own.
    pub fn start(addr: std::net::SocketAddr, view: Arc<NodeView>) -> Result<MetricsServer, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| format!("metrics listener {addr}: {e}"))?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(NodeCollector(view.clone())));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("attnet-metrics".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(100)) else { continue };
                    let (code, ctype, body) = answer(req.method(), req.url(), &registry, &view);
                    let header =
                        tiny_http::Header::from_bytes(&b"Content-Type"[..], ctype.as_bytes()).unwrap_or_else(|()| {
                            tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/plain"[..])
                                .expect("static header")
                        });
                    let _ =
                        req.respond(tiny_http::Response::from_string(body).with_status_code(code).with_header(header));
                }
            })
            .map_err(|e| format!("metrics thread: {e}"))?;
        Ok(MetricsServer { stop, thread: Some(thread), addr: bound })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Status, content type and body of a request.
fn answer(
    method: &tiny_http::Method,
    url: &str,
    registry: &prometheus_client::registry::Registry,
    view: &NodeView,
) -> (u16, &'static str, String) {
    if *method != tiny_http::Method::Get && *method != tiny_http::Method::Head {
        return (405, "text/plain", "only GET\n".into());
    }
    match url.split('?').next().unwrap_or("") {
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::prometheus_text::encode(&mut body, registry) {
                Ok(()) => (200, "text/plain; version=0.0.4; charset=utf-8", body),
                Err(_) => (500, "text/plain", "encoding failed\n".into()),
            }
        }
        "/status" => (200, "application/json", format!("{}\n", view.status())),
        "/" => (200, "text/plain", "attnet: /metrics (Prometheus), /status (JSON)\n".into()),
        _ => (404, "text/plain", "not found: /metrics, /status\n".into()),
    }
}
