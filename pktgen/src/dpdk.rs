//! The DPDK output (`--out dpdk:PORT_OR_VDEV`), through the `ffi` crate's
//! safe API.
//!
//! The EAL starts once per process, from [`DpdkOptions::eal_args`]
//! (`--eal`), on the thread that creates the first sink. A target of digits
//! is a port id; `net_*` names a virtual device, declared with `--vdev`
//! unless the EAL arguments already declare it; anything else is a device
//! name (a PCI address). Without EAL arguments a virtual device runs
//! without hugepages or PCI (`--no-huge -m 256 --no-pci ...`, see
//! [`eal_args`]).
//!
//! Open ports live in a [`DpdkPorts`] registry that the caller owns and
//! lends to each run (`RunConfig::dpdk`; runs given the same registry share
//! its ports); the command line makes one per process. Each target gets a
//! mempool and the port, opened once with one transmit queue per sending
//! thread and kept open in the registry across runs (a closed virtual
//! device cannot be opened again in the process) until
//! [`DpdkPorts::close`], [`DpdkPorts::shutdown`] or the registry's drop.
//! Each sending thread registers with the EAL on its first burst (mempool
//! caches), takes mbufs in bulk, writes Ethernet/IP/UDP and the datagram
//! straight into them with [`Encap::write_into`], and hands the burst to
//! the driver, retrying what a full ring refused (counted). At `finish()`
//! it waits until the port's `opackets` covers what the queues handed over;
//! [`DpdkPorts::report`] gives the port's counters for the run summary.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ffi::{Eal, MbufBurst, Mempool, Port, PortConfig, PortStats, TxQueue, MAX_BURST};
use serde_json::{json, Value};

use crate::drive::Sink;
use crate::encap::Encap;
use crate::traffic::Datagram;

/// A queue that takes nothing (or a pool that stays empty) for this long
/// ends the part: the link is down or the peer is gone.
const STALL: Duration = Duration::from_secs(5);
/// How long `finish()` waits for the port to count what it was handed.
const DRAIN: Duration = Duration::from_secs(5);
/// Transmit descriptors asked per queue (the driver adjusts).
const TX_DESC: u16 = 1024;
/// Receive descriptors of the one receive queue every port needs.
const RX_DESC: u16 = 128;
/// Per-lcore mempool cache.
const POOL_CACHE: u32 = 256;
/// Mbuf data room: DPDK's 128-byte headroom, the largest datagram a
/// receiver takes (`dataplane::backend::BUF_SIZE`) and 128 bytes for the
/// outer layers (at most 66: Ethernet, VLAN, IPv6, UDP).
const DATA_ROOM: u16 = 128 + dataplane::backend::BUF_SIZE as u16 + 128;

/// What `--out dpdk:` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A port id (`dpdk:0`); the EAL arguments provide the device.
    Id(u16),
    /// A virtual device: its name (`net_null0`) and whole EAL spec
    /// (`net_memif0,role=client,socket=/tmp/x.sock`).
    Vdev { name: String, spec: String },
    /// A device by name (a PCI address such as `0000:3b:00.0`).
    Name(String),
}

impl Target {
    pub fn parse(dev: &str) -> Result<Target, String> {
        let dev = dev.trim();
        if dev.is_empty() {
            return Err("dpdk: expected a port id, a device name or a vdev spec".into());
        }
        if let Ok(id) = dev.parse::<u16>() {
            return Ok(Target::Id(id));
        }
        let name = dev.split(',').next().unwrap_or(dev);
        if name.starts_with("net_") {
            Ok(Target::Vdev { name: name.to_string(), spec: dev.to_string() })
        } else if dev.contains(',') {
            Err(format!("dpdk:{dev}: device arguments are for virtual devices (net_*); pass others with --eal"))
        } else {
            Ok(Target::Name(dev.to_string()))
        }
    }

    /// What `Port::open` is given.
    fn port_name(&self) -> String {
        match self {
            Target::Id(id) => id.to_string(),
            Target::Vdev { name, .. } => name.clone(),
            Target::Name(n) => n.clone(),
        }
    }
}

/// The EAL arguments for `target`: the user's (`--eal`), with `--vdev
/// <spec>` added for a virtual device they do not already declare. Without
/// user arguments: for a virtual device `--no-huge -m 256 --no-pci
/// --no-shconf --no-telemetry -l 0 --file-prefix attnet-pktgen-<pid> --log-level=*:warning`
/// (no hugepages, no PCI scan, one main lcore: sending threads register
/// their own lcore ids); for a port id or device name the same without
/// `--no-huge -m 256 --no-pci` (hugepages, PCI), and `-a <name>` for a
/// named device.
pub fn eal_args(target: &Target, user: &[String], pid: u32) -> Vec<String> {
    let mut a: Vec<String> = user.to_vec();
    if a.is_empty() {
        if matches!(target, Target::Vdev { .. }) {
            a.extend(["--no-huge", "-m", "256", "--no-pci"].map(String::from));
        }
        a.extend(["--no-shconf", "--no-telemetry", "-l", "0"].map(String::from));
        a.push(format!("--file-prefix=attnet-pktgen-{pid}"));
        a.push("--log-level=*:warning".into());
        if let Target::Name(n) = target {
            a.push(format!("--allow={n}"));
        }
    }
    if let Target::Vdev { name, spec } = target {
        if !declares_vdev(&a, name) {
            a.push(format!("--vdev={spec}"));
        }
    }
    a
}

/// Whether `args` declare the virtual device `name` (`--vdev X`,
/// `--vdev=X`).
fn declares_vdev(args: &[String], name: &str) -> bool {
    let named = |spec: &str| spec.split(',').next() == Some(name);
    args.iter().enumerate().any(|(i, a)| match a.strip_prefix("--vdev") {
        Some("") => args.get(i + 1).is_some_and(|s| named(s)),
        Some(rest) => rest.strip_prefix('=').is_some_and(named),
        None => false,
    })
}

/// Counters of one run on one port, summed over its sending threads.
#[derive(Debug, Clone, Copy, Default)]
struct RunCounts {
    /// Mbufs the queues handed to the driver.
    handed: u64,
    /// `rte_eth_tx_burst` calls that left part of a burst (ring full).
    retries: u64,
    /// Times the pool had no mbufs for a burst.
    pool_empty: u64,
    /// A queue or the pool made no progress for [`STALL`].
    stalled: bool,
    /// `opackets` reached `handed` within [`DRAIN`] at every finish.
    drained: bool,
    threads: usize,
}

/// What a DPDK sink takes from the run besides the target.
#[derive(Debug, Clone, Default)]
pub struct DpdkOptions {
    /// The user's EAL arguments (`--eal`); see [`eal_args`].
    pub eal_args: Vec<String>,
    /// Outer layers of every frame; the source MAC is the port's.
    pub encap: Encap,
}

/// One open port and what its sinks share. Fields drop in declaration
/// order: the queues, then the port (stop, close), then the pool.
struct Open {
    /// Transmit queues not lent to a sink.
    queues: Vec<Option<TxQueue>>,
    port: Port,
    pool: Mempool,
    target: String,
    eal: Eal,
    /// Port counters when the current run started.
    base: PortStats,
    run: RunCounts,
}

/// The open DPDK ports, by target (`--out dpdk:TARGET`), and each one's
/// counters for the current run. Sinks borrow the registry; a port stays
/// open in it across runs until [`DpdkPorts::close`],
/// [`DpdkPorts::shutdown`] or the registry's drop closes it. Sending
/// threads share it, hence the lock.
#[derive(Default)]
pub struct DpdkPorts {
    open: Mutex<Vec<Open>>,
}

impl std::fmt::Debug for DpdkPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let targets: Vec<String> = self.lock().iter().map(|o| o.target.clone()).collect();
        f.debug_struct("DpdkPorts").field("open", &targets).finish()
    }
}

/// Mbufs for `queues` transmit rings of `tx_desc`, the receive ring, a
/// burst in hand per queue and the caches; 2^q - 1.
fn pool_size(queues: usize, tx_desc: usize) -> u32 {
    let want = queues * (tx_desc + 2 * MAX_BURST + POOL_CACHE as usize) + RX_DESC as usize + 1024;
    (want + 1).next_power_of_two() as u32 - 1
}

fn open(target: &Target, key: &str, parts: usize, opts: &DpdkOptions) -> Result<Open, String> {
    let args = eal_args(target, &opts.eal_args, std::process::id());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal = Eal::init(&refs).map_err(|e| format!("dpdk:{key}: EAL ({}): {e}", args.join(" ")))?;
    let queues = u16::try_from(parts).map_err(|_| format!("dpdk:{key}: {parts} queues"))?;
    // DPDK mempool names are process-wide (whichever registry opens the
    // port), unique and at most 25 bytes.
    static POOLS: AtomicUsize = AtomicUsize::new(0);
    let pool_name = format!("pktgen_tx{}", POOLS.fetch_add(1, Ordering::Relaxed));
    let pool = Mempool::new(&pool_name, pool_size(parts, usize::from(TX_DESC)), POOL_CACHE, DATA_ROOM, None)
        .map_err(|e| format!("dpdk:{key}: mempool: {e}"))?;
    let pcfg = PortConfig {
        rx_queues: 1,
        tx_queues: queues,
        rx_desc: RX_DESC,
        tx_desc: TX_DESC,
        rss: false,
        promiscuous: false,
    };
    let name = target.port_name();
    let port = Port::open(&eal, name.as_str(), &pcfg, &pool).map_err(|e| {
        let ports: Vec<String> = eal.ports().into_iter().map(|(i, n)| format!("{i} {n}")).collect();
        format!("dpdk:{key}: {e} (ports: {})", if ports.is_empty() { "none".into() } else { ports.join(", ") })
    })?;
    let queues = (0..queues)
        .map(|q| port.tx_queue(q).map(Some))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("dpdk:{key}: {e}"))?;
    let base = port.stats().map_err(|e| format!("dpdk:{key}: {e}"))?;
    Ok(Open { queues, port, pool, target: key.to_string(), eal, base, run: RunCounts::default() })
}

impl DpdkPorts {
    /// An empty registry: no port open yet.
    pub fn new() -> DpdkPorts {
        DpdkPorts::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sink of sending thread `part` of `parts` on `dev`. Part 0 opens
    /// the port (or takes it up again, in a later run with this registry)
    /// and starts the run's counters; every part borrows its own transmit
    /// queue until the sink is dropped.
    pub fn sink(
        &self,
        dev: &str,
        part: usize,
        parts: usize,
        opts: &DpdkOptions,
    ) -> Result<Box<dyn Sink + Send + '_>, String> {
        if let Some(why) = ffi::unavailable_reason() {
            return Err(format!("dpdk:{dev}: DPDK is not available in this build: {why}"));
        }
        let target = Target::parse(dev)?;
        let key = dev.trim().to_string();
        let mut ports = self.lock();
        let at = match ports.iter().position(|o| o.target == key) {
            Some(i) => i,
            None if part == 0 => {
                drop(ports);
                let o = open(&target, &key, parts, opts)?;
                ports = self.lock();
                ports.push(o);
                ports.len() - 1
            }
            None => return Err(format!("dpdk:{key}: part {part} before part 0")),
        };
        let o = &mut ports[at];
        if o.queues.len() < parts {
            return Err(format!(
                "dpdk:{key}: the port was opened with {} transmit queues in this process; {parts} asked",
                o.queues.len()
            ));
        }
        if part == 0 {
            o.base = o.port.stats().map_err(|e| format!("dpdk:{key}: {e}"))?;
            o.run = RunCounts { drained: true, threads: parts, ..RunCounts::default() };
        }
        let txq = o.queues[part].take().ok_or_else(|| format!("dpdk:{key}: transmit queue {part} is in use"))?;
        let mac = o.port.mac_address().map_err(|e| format!("dpdk:{key}: {e}"))?;
        let encap = Encap { src_mac: mac, ..opts.encap.clone() };
        Ok(Box::new(DpdkSink {
            key,
            ports: self,
            eal: o.eal,
            pool: o.pool.clone(),
            txq: Some(txq),
            part,
            encap,
            burst: MbufBurst::new(),
            registered: false,
            counts: RunCounts::default(),
            frames: Vec::new(),
            spans: Vec::new(),
        }))
    }

    /// The port's side of the last run on `dev` (`--out dpdk:DEV`), for the
    /// summary: what the queues handed over, retries of full rings, and the
    /// port's counters since the run started. `None` if no such port is open.
    pub fn report(&self, dev: &str) -> Option<Value> {
        let ports = self.lock();
        let o = ports.iter().find(|o| o.target == dev.trim())?;
        let s = o.port.stats().unwrap_or_default();
        let i = o.port.info();
        let mac = o.port.mac_address().map(|m| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"));
        Some(json!({
            "port": i.name,
            "port_id": i.id,
            "driver": i.driver_name,
            "mac": mac.unwrap_or_default(),
            "tx_queues": o.run.threads,
            "tx_desc": i.tx_desc,
            "mbufs": o.pool.capacity(),
            "eal_args": o.eal.args(),
            "handed": o.run.handed,
            "tx_retries": o.run.retries,
            "pool_empty": o.run.pool_empty,
            "stalled": o.run.stalled,
            "drained": o.run.drained,
            "opackets": s.opackets.saturating_sub(o.base.opackets),
            "obytes": s.obytes.saturating_sub(o.base.obytes),
            "oerrors": s.oerrors.saturating_sub(o.base.oerrors),
        }))
    }

    /// Whether the last run on `dev` stopped because the port took nothing
    /// for a while.
    pub fn stalled(&self, dev: &str) -> bool {
        self.lock().iter().find(|o| o.target == dev.trim()).is_some_and(|o| o.run.stalled)
    }

    /// Stops and closes the port of `dev` and frees its pool (a virtual
    /// device's output file is complete afterwards). The device cannot be
    /// opened again in this process. Errors if a sink still holds a queue.
    pub fn close(&self, dev: &str) -> Result<(), String> {
        let mut ports = self.lock();
        let Some(at) = ports.iter().position(|o| o.target == dev.trim()) else { return Ok(()) };
        if ports[at].queues.iter().any(Option::is_none) {
            return Err(format!("dpdk:{dev}: a sending thread still holds a queue"));
        }
        // Queues, then the port (stop, close), then the pool.
        let o = ports.remove(at);
        drop(o.queues);
        drop(o.port);
        drop(o.pool);
        Ok(())
    }

    /// Closes every port of the registry and cleans the EAL up (releasing
    /// its hugepages), at the end of a process that used the DPDK output.
    /// The EAL is process-wide: its cleanup is refused while a port or pool
    /// of another registry is alive, and nothing can use DPDK afterwards.
    pub fn shutdown(&self) -> Result<(), String> {
        let targets: Vec<String> = self.lock().iter().map(|o| o.target.clone()).collect();
        for t in &targets {
            self.close(t)?;
        }
        match Eal::get() {
            Some(eal) => eal.cleanup().map_err(|e| format!("EAL cleanup: {e}")),
            None => Ok(()),
        }
    }
}

/// One sending thread's queue, lent by the registry's port for the run.
struct DpdkSink<'p> {
    key: String,
    /// Where the queue goes back and the run's counters add up.
    ports: &'p DpdkPorts,
    eal: Eal,
    pool: Mempool,
    txq: Option<TxQueue>,
    part: usize,
    encap: Encap,
    burst: MbufBurst,
    registered: bool,
    counts: RunCounts,
    /// Pre-sealed runs: every datagram's whole Ethernet frame, back to back,
    /// and where each is.
    frames: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl DpdkSink<'_> {
    /// An lcore id of its own, on the sending thread's first burst: the
    /// pool's per-lcore cache.
    fn register(&mut self) -> io::Result<()> {
        if !self.registered {
            self.eal.register_thread().map_err(|e| io::Error::other(format!("dpdk:{}: {e}", self.key)))?;
            self.registered = true;
        }
        Ok(())
    }

    /// Fills `self.burst` with `n` fresh mbufs; false if the pool stayed
    /// empty for [`STALL`].
    fn alloc(&mut self, n: usize) -> bool {
        let mut since: Option<Instant> = None;
        while !self.pool.alloc_bulk(&mut self.burst, n) {
            // Every mbuf is in a ring: the driver frees them as it sends.
            self.counts.pool_empty += 1;
            if since.get_or_insert_with(Instant::now).elapsed() > STALL {
                self.counts.stalled = true;
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// Writes each datagram's whole Ethernet frame into the burst's mbufs.
    fn write(&mut self, chunk: &[Vec<u8>], info: &[Datagram]) -> io::Result<()> {
        for ((m, d), i) in self.burst.as_mut_slice().iter_mut().zip(chunk).zip(info) {
            let len = self.encap.header_len() + d.len();
            let Some(room) = m.append(len) else {
                self.burst.clear();
                return Err(io::Error::other(format!("a {len}-byte frame does not fit an mbuf")));
            };
            if let Err(e) = self.encap.write_into(i.session, d, room) {
                self.burst.clear();
                return Err(io::Error::other(e));
            }
        }
        Ok(())
    }

    /// Copies prepared frames `first..` into the burst's mbufs.
    fn copy_prepared(&mut self, first: usize) -> io::Result<()> {
        let (frames, spans) = (&self.frames, &self.spans);
        for (m, &(at, len)) in self.burst.as_mut_slice().iter_mut().zip(&spans[first..]) {
            let Some(room) = m.append(len) else {
                self.burst.clear();
                return Err(io::Error::other(format!("a {len}-byte frame does not fit an mbuf")));
            };
            room.copy_from_slice(&frames[at..at + len]);
        }
        Ok(())
    }

    /// Hands the burst to the driver, retrying what a full ring refused, in
    /// order. Returns how many it took, and false if the queue stalled.
    fn transmit(&mut self) -> io::Result<(usize, bool)> {
        let txq = self.txq.as_mut().ok_or_else(|| io::Error::other("dpdk: queue already returned"))?;
        let mut taken = 0;
        let mut since: Option<Instant> = None;
        loop {
            let k = txq.try_send(&mut self.burst);
            self.counts.handed += k as u64;
            taken += k;
            if self.burst.is_empty() {
                return Ok((taken, true));
            }
            // The ring is full: retry the rest, in order.
            self.counts.retries += 1;
            if k > 0 {
                since = None;
            } else if since.get_or_insert_with(Instant::now).elapsed() > STALL {
                self.counts.stalled = true;
                self.burst.clear();
                return Ok((taken, false));
            }
            std::hint::spin_loop();
        }
    }
}

impl Sink for DpdkSink<'_> {
    fn realtime(&self) -> bool {
        true
    }

    fn send(&mut self, batch: &[Vec<u8>], info: &[Datagram], _due: &[u64]) -> io::Result<usize> {
        self.register()?;
        let mut taken = 0;
        for (chunk, inf) in batch.chunks(MAX_BURST).zip(info.chunks(MAX_BURST)) {
            if !self.alloc(chunk.len()) {
                return Ok(taken);
            }
            self.write(chunk, inf)?;
            let (k, ok) = self.transmit()?;
            taken += k;
            if !ok {
                return Ok(taken);
            }
        }
        Ok(taken)
    }

    fn prepare(&mut self, bufs: &[Vec<u8>], info: &[Datagram]) -> io::Result<bool> {
        self.frames.clear();
        self.spans.clear();
        for (d, i) in bufs.iter().zip(info) {
            let at = self.frames.len();
            let len = self.encap.header_len() + d.len();
            self.frames.resize(at + len, 0);
            self.encap.write_into(i.session, d, &mut self.frames[at..]).map_err(io::Error::other)?;
            self.spans.push((at, len));
        }
        Ok(true)
    }

    fn send_prepared(&mut self, first: usize, n: usize) -> io::Result<usize> {
        self.register()?;
        let end = (first + n).min(self.spans.len());
        let mut taken = 0;
        let mut i = first;
        while i < end {
            let m = (end - i).min(MAX_BURST);
            if !self.alloc(m) {
                return Ok(taken);
            }
            self.copy_prepared(i)?;
            let (k, ok) = self.transmit()?;
            taken += k;
            if !ok {
                return Ok(taken);
            }
            i += m;
        }
        Ok(taken)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.burst.clear();
        let mut ports = self.ports.lock();
        let Some(o) = ports.iter_mut().find(|o| o.target == self.key) else { return Ok(()) };
        o.run.handed += self.counts.handed;
        o.run.retries += self.counts.retries;
        o.run.pool_empty += self.counts.pool_empty;
        o.run.stalled |= self.counts.stalled;
        self.counts = RunCounts::default();
        // The port counts a packet once it has left (NICs) or was written
        // (virtual devices): wait for what this run handed over so far.
        let deadline = Instant::now() + DRAIN;
        loop {
            let s = o.port.stats().map_err(|e| io::Error::other(e.to_string()))?;
            if s.opackets.saturating_sub(o.base.opackets) >= o.run.handed {
                return Ok(());
            }
            if Instant::now() > deadline {
                o.run.drained = false;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for DpdkSink<'_> {
    fn drop(&mut self) {
        self.burst.clear();
        if let Some(q) = self.txq.take() {
            if let Some(o) = self.ports.lock().iter_mut().find(|o| o.target == self.key) {
                o.queues[self.part] = Some(q);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn targets() {
        assert_eq!(Target::parse("0"), Ok(Target::Id(0)));
        assert_eq!(
            Target::parse("net_memif0,role=client,socket=/tmp/x.sock"),
            Ok(Target::Vdev { name: "net_memif0".into(), spec: "net_memif0,role=client,socket=/tmp/x.sock".into() })
        );
        assert_eq!(Target::parse("0000:3b:00.0"), Ok(Target::Name("0000:3b:00.0".into())));
        assert!(Target::parse("").is_err());
        assert!(Target::parse("0000:3b:00.0,x=1").is_err());
    }

    #[test]
    fn eal_arguments() {
        let null = Target::parse("net_null0").unwrap();
        let a = eal_args(&null, &[], 42);
        assert_eq!(a[..4], s(&["--no-huge", "-m", "256", "--no-pci"]));
        assert!(a.contains(&"--file-prefix=attnet-pktgen-42".to_string()));
        assert_eq!(a.last().unwrap(), "--vdev=net_null0");
        // The user's arguments as they are, the vdev added once.
        let user = s(&["-l", "0-1", "--huge-dir", "/dev/hugepages"]);
        assert_eq!(eal_args(&null, &user, 1), s(&["-l", "0-1", "--huge-dir", "/dev/hugepages", "--vdev=net_null0"]));
        for declared in [s(&["--vdev", "net_null0,size=128"]), s(&["--vdev=net_null0"])] {
            assert_eq!(eal_args(&null, &declared, 1), declared);
        }
        assert_eq!(eal_args(&null, &s(&["--vdev=net_null01"]), 1).len(), 2);
        // A port id needs no vdev; a named device is allowed explicitly.
        assert!(!eal_args(&Target::Id(0), &[], 1).iter().any(|x| x.contains("vdev") || x == "--no-huge"));
        assert!(eal_args(&Target::Name("0000:3b:00.0".into()), &[], 1).contains(&"--allow=0000:3b:00.0".into()));
    }

    #[test]
    fn pool_sizes_cover_the_rings() {
        for q in 1..=8 {
            let n = pool_size(q, 1024) as usize;
            assert!((n + 1).is_power_of_two());
            assert!(n >= q * (1024 + 2 * MAX_BURST + POOL_CACHE as usize) + RX_DESC as usize);
        }
    }
}
