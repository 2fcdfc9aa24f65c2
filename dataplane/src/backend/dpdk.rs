//! The DPDK backend: one receive queue of a DPDK port per data core, mbuf
//! bursts handed to the frame path without a copy (the UDP payload is a
//! sub-slice of the mbuf's data), freed in bulk after the burst. Ethernet
//! II, an optional 802.1Q tag, IPv4 or IPv6, UDP to the configured port;
//! anything else is counted by reason. All DPDK `unsafe` lives in `ffi`.
//!
//! Each datagram's source address is reported with it, and its link-layer
//! addressing recorded in the port's [`Neighbours`] table. The queue given
//! the control thread's reply ring ([`DpdkQueue::attach_replies`]) drains
//! it between bursts: each WELCOME, COOKIE, RECEIPT or ANSWER goes out on
//! the core's transmit queue in an Ethernet/IP/UDP frame to the MAC the
//! client's datagram came from, from the address it was sent to.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use ffi::{Eal, MbufBurst, Mempool, Port, PortConfig, PortStats};

use super::neighbours::{build_reply, reply_len, Neighbours, NEIGHBOURS_LOG2};
use super::{
    pcap::udp_datagram, BurstFn, NicStats, NotAtt, Peer, QueueStats, ReplyConsumer, RxQueue, TxReplies, MAX_BURST,
};

/// Replies a queue takes off the reply ring per call, at most (two
/// transmit bursts), so a full ring never delays receiving for long.
const REPLIES_PER_CALL: usize = 2 * MAX_BURST;

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
    /// The node's IPv4 address on this port: ARP requests for it are
    /// answered (so a real switch can deliver traffic).
    pub ipv4: Option<std::net::Ipv4Addr>,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            eal_args: Vec::new(),
            port: "0".into(),
            queues: 1,
            rx_desc: 1024,
            mbufs: 16383,
            udp_port: 7100,
            ipv4: None,
        }
    }
}

/// The port and pool every queue of it shares (dropped after the last
/// queue: stop, close, then the pool).
pub struct Shared {
    port: Port,
    pool: Mempool,
    /// Where each source address was last reached from (every queue
    /// writes, the replying queue reads).
    neighbours: Neighbours,
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
    /// This core's transmit queue (ARP replies and the relay's replies).
    tx: ffi::TxQueue,
    replies: MbufBurst,
    mac: [u8; 6],
    ipv4: Option<[u8; 4]>,
    arp_replies: u64,
    /// The control thread's replies, on the queue that transmits them.
    reply_in: Option<ReplyConsumer>,
    tx_replies: TxReplies,
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
    let pcfg =
        PortConfig { rx_queues: cfg.queues, tx_queues: cfg.queues, rx_desc: cfg.rx_desc, ..PortConfig::default() };
    let port = match cfg.port.parse::<u16>() {
        Ok(id) => Port::open(&eal, id, &pcfg, &pool),
        Err(_) => Port::open(&eal, cfg.port.as_str(), &pcfg, &pool),
    }
    .map_err(|e| format!("DPDK port {}: {e}", cfg.port))?;
    let rxs: Vec<ffi::RxQueue> = (0..cfg.queues).map(|q| port.rx_queue(q).map_err(err)).collect::<Result<_, _>>()?;
    let txs: Vec<ffi::TxQueue> = (0..cfg.queues).map(|q| port.tx_queue(q).map_err(err)).collect::<Result<_, _>>()?;
    let mac = port.mac_address().map_err(|e| format!("DPDK port {}: {e}", cfg.port))?;
    let shared = Arc::new(Shared { port, pool, neighbours: Neighbours::new(NEIGHBOURS_LOG2) });
    let queues = rxs
        .into_iter()
        .zip(txs)
        .enumerate()
        .map(|(i, (rx, tx))| DpdkQueue {
            shared: shared.clone(),
            rx,
            burst: MbufBurst::new(),
            udp_port: cfg.udp_port,
            packets: 0,
            not_att: [0; NotAtt::COUNT],
            registered: false,
            first: i == 0,
            tx,
            replies: MbufBurst::new(),
            mac,
            ipv4: cfg.ipv4.map(|a| a.octets()),
            arp_replies: 0,
            reply_in: None,
            tx_replies: TxReplies::default(),
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

    /// Makes this queue the one that transmits the control thread's
    /// replies (drained between bursts and when idle).
    pub fn attach_replies(&mut self, ring: ReplyConsumer) {
        self.reply_in = Some(ring);
    }

    /// Sends up to [`REPLIES_PER_CALL`] queued replies: each is looked up
    /// in the neighbour table, framed into an mbuf and sent in bursts on
    /// this core's transmit queue; each one taken is counted as sent or by
    /// why it was dropped.
    fn transmit_replies(&mut self) {
        let Some(ring) = self.reply_in.as_mut() else { return };
        let mut budget = REPLIES_PER_CALL;
        while budget > 0 && ring.waiting() > 0 {
            while budget > 0 && !self.replies.is_full() {
                let Some(r) = ring.pop() else { break };
                budget -= 1;
                let Some(link) = self.shared.neighbours.lookup(&r.peer) else {
                    self.tx_replies.no_route += 1;
                    continue;
                };
                let Some(mut m) = self.shared.pool.alloc() else {
                    self.tx_replies.no_mbuf += 1;
                    continue;
                };
                // An mbuf that is not sent goes back to the pool as it
                // drops.
                let Some(d) = m.append(reply_len(&link, &r.peer, r.payload().len())) else {
                    self.tx_replies.no_mbuf += 1;
                    continue;
                };
                if build_reply(&link, &r.peer, r.payload(), d).is_none() {
                    // The recorded addressing cannot frame it (an entry
                    // recorded from one datagram always can; counted
                    // rather than assumed): no usable route.
                    self.tx_replies.no_route += 1;
                    continue;
                }
                if self.replies.push(m).is_err() {
                    self.tx_replies.tx_full += 1;
                }
            }
            let n = self.replies.len();
            if n == 0 {
                continue;
            }
            let sent = self.tx.send_burst(&mut self.replies);
            self.tx_replies.sent += sent as u64;
            self.tx_replies.tx_full += (n - sent) as u64;
        }
    }
}

impl RxQueue for DpdkQueue {
    /// Reports each datagram's source address and records its link-layer
    /// addressing; sends ARP replies, then the queued replies of the
    /// control thread (on the queue that has the ring).
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize> {
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
            self.transmit_replies();
            return Ok(0);
        }
        self.packets += n as u64;
        let (port, not_att) = (self.udp_port, &mut self.not_att);
        let (replies, pool, mac, ipv4) = (&mut self.replies, &self.shared.pool, self.mac, self.ipv4);
        let neighbours = &self.shared.neighbours;
        let mut handed = 0;
        self.burst.with_data_mut(|frames| {
            let mut payloads: [&mut [u8]; MAX_BURST] = std::array::from_fn(|_| <&mut [u8]>::default());
            let mut peers = [Peer::NONE; MAX_BURST];
            let mut k = 0;
            for frame in frames.iter_mut() {
                let whole = std::mem::take(frame);
                let (range, peer) = match udp_datagram(whole, port) {
                    Ok(d) => {
                        neighbours.record(&d.peer, &d.link);
                        let at = d.payload.as_ptr() as usize - whole.as_ptr() as usize;
                        (at..at + d.payload.len(), d.peer)
                    }
                    Err(why) => {
                        if let Some(c) = not_att.get_mut(why as usize) {
                            *c += 1;
                        }
                        if let (NotAtt::NotIp, Some(ip)) = (why, ipv4) {
                            if let Some(reply) = arp_reply(whole, mac, ip) {
                                if let Some(mut m) = pool.alloc() {
                                    if let Some(d) = m.append(reply.len()) {
                                        d.copy_from_slice(&reply);
                                        let _ = replies.push(m);
                                    }
                                }
                            }
                        }
                        continue;
                    }
                };
                if let (Some(slot), Some(p), Some(a)) = (payloads.get_mut(k), whole.get_mut(range), peers.get_mut(k)) {
                    *slot = p;
                    *a = peer;
                    k += 1;
                }
            }
            handed = k;
            if k > 0 {
                f(&mut payloads[..k], &peers[..k]);
            }
        });
        // Back to the pool in one call.
        self.burst.clear();
        if !self.replies.is_empty() {
            self.arp_replies += self.tx.send_burst(&mut self.replies) as u64;
        }
        self.transmit_replies();
        Ok(handed)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        // Polling devices have no descriptor to block on: the adaptive idle
        // policy sleeps briefly instead (busy_poll spins, as DPDK
        // applications do by default).
        std::thread::sleep(timeout.min(Duration::from_micros(200)));
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            packets: self.packets(),
            kernel_dropped: self.kernel_dropped(),
            not_att: self.not_att(),
            replies: self.replies(),
            tx_replies: self.tx_replies,
            nic: self.nic_stats(),
            ..QueueStats::default()
        }
    }
}

// Counters and handles of this queue; [`RxQueue::stats`] gathers the counters.
impl DpdkQueue {
    pub fn name(&self) -> &'static str {
        "dpdk"
    }

    pub fn kernel_dropped(&self) -> u64 {
        // Losses before the node on a DPDK port: missed by the NIC (no free
        // descriptor) and no mbuf to receive into.
        self.port_stats().map_or(0, |s| s.imissed + s.rx_nombuf)
    }

    /// The port's statistics (queue 0 only; the others report none, so a
    /// sum over queues counts the port once).
    pub fn nic_stats(&self) -> Option<NicStats> {
        if self.first {
            self.shared.nic_stats()
        } else {
            None
        }
    }

    pub fn not_att(&self) -> [u64; NotAtt::COUNT] {
        self.not_att
    }

    pub fn replies(&self) -> u64 {
        self.arp_replies
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }
}

/// The ARP reply to `frame` if it is an Ethernet/IPv4 ARP request for
/// `ip`: our MAC and address to the requester, padded to the 60-byte
/// Ethernet minimum.
pub fn arp_reply(frame: &[u8], mac: [u8; 6], ip: [u8; 4]) -> Option<[u8; 60]> {
    use etherparse::{ArpEthIpv4Packet, ArpOperation, EtherType, Ethernet2Header, NetSlice, SlicedPacket};
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Arp(arp)) = p.net else { return None };
    let req = arp.to_packet().try_eth_ipv4().ok()?;
    if req.operation != ArpOperation::REQUEST || req.target_ipv4 != ip {
        return None;
    }
    let eth = Ethernet2Header { source: mac, destination: req.sender_mac, ether_type: EtherType::ARP }.to_bytes();
    let rep = ArpEthIpv4Packet {
        operation: ArpOperation::REPLY,
        sender_mac: mac,
        sender_ipv4: ip,
        target_mac: req.sender_mac,
        target_ipv4: req.sender_ipv4,
    }
    .to_bytes();
    let mut out = [0u8; 60];
    out.get_mut(..eth.len())?.copy_from_slice(&eth);
    out.get_mut(eth.len()..eth.len() + rep.len())?.copy_from_slice(&rep);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_arp_requests_for_our_address_only() {
        use crate::testkit::arp_packet;
        use etherparse::ArpOperation;
        let req = |target: [u8; 4], op: ArpOperation| arp_packet(op, target);
        let mac = [2, 0, 0, 0, 0, 1];
        let ours = [192, 0, 2, 10];
        let r = arp_reply(&req(ours, ArpOperation::REQUEST), mac, ours).unwrap();
        assert_eq!(&r[0..6], &[2, 0, 0, 0, 0, 9]); // to the requester
        assert_eq!(&r[6..12], &mac);
        assert_eq!(&r[12..14], &[0x08, 0x06]);
        assert_eq!(&r[20..22], &[0, 2]); // reply
        assert_eq!(&r[22..28], &mac);
        assert_eq!(&r[28..32], &ours);
        assert_eq!(&r[32..38], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&r[38..42], &[192, 0, 2, 9]);
        assert!(arp_reply(&req([192, 0, 2, 11], ArpOperation::REQUEST), mac, ours).is_none());
        assert!(arp_reply(&req(ours, ArpOperation::REPLY), mac, ours).is_none());
        assert!(arp_reply(&[0u8; 20], mac, ours).is_none());
    }
}
