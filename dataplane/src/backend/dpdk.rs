//! The DPDK backend: one receive queue of a DPDK port per data core, mbuf
//! bursts handed to the frame path without a copy (the UDP payload is a
//! sub-slice of the mbuf's data), freed in bulk after the burst. Ethernet
//! II, an optional 802.1Q tag, IPv4 or IPv6, UDP to the configured port;
//! anything else is counted by reason. All DPDK `unsafe` lives in `ffi`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ffi::{Eal, MbufBurst, Mempool, Port, PortConfig, PortStats};

use super::{pcap::udp_payload, NicStats, NotAtt, RxQueue, MAX_BURST};

/// How to bring the port up.
#[derive(Debug, Clone)]
pub struct DpdkConfig {
    /// EAL arguments (program name first is added if missing).
    pub eal_args: Vec<String>,
    /// Device name (`net_null0`, a PCI address) or port id.
    pub port: String,
    /// Receive queues: one per data core.
    pub queues: u16,
    pub rx_desc: u16,
    /// Mbufs in the pool (all queues).
    pub mbufs: u32,
    /// UDP destination port of ATT traffic.
    pub udp_port: u16,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig { eal_args: Vec::new(), port: "0".into(), queues: 1, rx_desc: 1024, mbufs: 16383, udp_port: 7100 }
    }
}

/// The port and pool every queue of it shares (dropped after the last
/// queue: stop, close, then the pool).
pub struct Shared {
    port: Port,
    _pool: Mempool,
}

impl Shared {
    /// NIC statistics of the whole port.
    pub fn stats(&self) -> Option<PortStats> {
        self.port.stats().ok()
    }

    /// The same, in the backend-neutral shape.
    pub fn nic_stats(&self) -> Option<NicStats> {
        self.stats().map(|s| NicStats {
            ipackets: s.ipackets,
            ibytes: s.ibytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            rx_nombuf: s.rx_nombuf,
        })
    }
}

/// One receive queue.
pub struct DpdkQueue {
    shared: Arc<Shared>,
    rx: ffi::RxQueue,
    burst: MbufBurst,
    udp_port: u16,
    packets: u64,
    not_att: [u64; NotAtt::COUNT],
    registered: bool,
    /// Queue 0 reports the port's statistics.
    first: bool,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Starts the EAL (once per process), the port and its queues.
pub fn open(cfg: &DpdkConfig) -> Result<(Vec<DpdkQueue>, Arc<Shared>), String> {
    let mut args: Vec<&str> = cfg.eal_args.iter().map(|s| s.as_str()).collect();
    if args.first().is_none_or(|a| a.starts_with('-')) {
        args.insert(0, "attnet");
    }
    let eal = Eal::init(&args).map_err(|e| format!("DPDK EAL: {e}"))?;
    let pool = Mempool::new("attnet_rx", cfg.mbufs, 256, 2048 + 128, None).map_err(|e| format!("DPDK mempool: {e}"))?;
    let pcfg = PortConfig { rx_queues: cfg.queues, tx_queues: 1, rx_desc: cfg.rx_desc, ..PortConfig::default() };
    let port = match cfg.port.parse::<u16>() {
        Ok(id) => Port::open(&eal, id, &pcfg, &pool),
        Err(_) => Port::open(&eal, cfg.port.as_str(), &pcfg, &pool),
    }
    .map_err(|e| format!("DPDK port {}: {e}", cfg.port))?;
    let rxs: Vec<ffi::RxQueue> = (0..cfg.queues).map(|q| port.rx_queue(q).map_err(err)).collect::<Result<_, _>>()?;
    let shared = Arc::new(Shared { port, _pool: pool });
    let queues = rxs
        .into_iter()
        .enumerate()
        .map(|(i, rx)| DpdkQueue {
            shared: shared.clone(),
            rx,
            burst: MbufBurst::new(),
            udp_port: cfg.udp_port,
            packets: 0,
            not_att: [0; NotAtt::COUNT],
            registered: false,
            first: i == 0,
        })
        .collect();
    Ok((queues, shared))
}

impl DpdkQueue {
    fn port_stats(&self) -> Option<PortStats> {
        if self.first {
            self.shared.stats()
        } else {
            None
        }
    }
}

impl RxQueue for DpdkQueue {
    fn name(&self) -> &'static str {
        "dpdk"
    }

    fn rx_burst(&mut self, f: &mut dyn FnMut(&mut [&mut [u8]])) -> io::Result<usize> {
        if !self.registered {
            // Data cores are plain threads: give each an lcore id so its
            // mempool operations use a per-lcore cache.
            if let Some(eal) = Eal::get() {
                let _ = eal.register_thread();
            }
            self.registered = true;
        }
        let n = self.rx.recv_burst(&mut self.burst);
        if n == 0 {
            return Ok(0);
        }
        self.packets += n as u64;
        let (port, not_att) = (self.udp_port, &mut self.not_att);
        let mut handed = 0;
        self.burst.with_data_mut(|frames| {
            let mut payloads: [&mut [u8]; MAX_BURST] = std::array::from_fn(|_| <&mut [u8]>::default());
            let mut k = 0;
            for frame in frames.iter_mut() {
                let whole = std::mem::take(frame);
                let range = match udp_payload(whole, port) {
                    Ok(p) => {
                        let at = p.as_ptr() as usize - whole.as_ptr() as usize;
                        at..at + p.len()
                    }
                    Err(why) => {
                        if let Some(c) = not_att.get_mut(why as usize) {
                            *c += 1;
                        }
                        continue;
                    }
                };
                if let (Some(slot), Some(p)) = (payloads.get_mut(k), whole.get_mut(range)) {
                    *slot = p;
                    k += 1;
                }
            }
            handed = k;
            if k > 0 {
                f(&mut payloads[..k]);
            }
        });
        // Back to the pool in one call.
        self.burst.clear();
        Ok(handed)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // Polling devices have no descriptor to block on: the adaptive idle
        // policy sleeps briefly instead (busy_poll spins, as DPDK
        // applications do by default).
        std::thread::sleep(timeout.min(Duration::from_micros(200)));
        Ok(())
    }

    fn kernel_dropped(&self) -> u64 {
        // Losses before the node on a DPDK port: missed by the NIC (no free
        // descriptor) and no mbuf to receive into.
        self.port_stats().map_or(0, |s| s.imissed + s.rx_nombuf)
    }

    /// The port's statistics (queue 0 only; the others report none, so a
    /// sum over queues counts the port once).
    fn nic_stats(&self) -> Option<NicStats> {
        if self.first {
            self.shared.nic_stats()
        } else {
            None
        }
    }

    fn not_att(&self) -> [u64; NotAtt::COUNT] {
        self.not_att
    }

    fn packets(&self) -> u64 {
        self.packets
    }
}
