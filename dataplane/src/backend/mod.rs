//! Packet I/O backends. Each yields bursts of datagrams borrowed from the
//! backend's own buffers; the pipeline runs the frame path on them in
//! place and the buffers go back to the backend when the burst callback
//! returns. Backends are chosen by capability (`att-wire.md` transport:
//! UDP, default port 7100): io_uring on Linux, recvmmsg when io_uring is
//! unavailable or asked for, pcap replay offline; DPDK plugs in here too.

use std::io;
use std::time::Duration;

pub mod dpdk;
pub mod kstats;
pub mod pcap;
pub mod recvmmsg;
pub mod uring;

/// Most datagrams one burst hands over.
pub const MAX_BURST: usize = 64;
/// Receive buffer size per datagram (a UDP datagram larger than this is
/// truncated by the kernel and counted as `truncated` by the frame path).
pub const BUF_SIZE: usize = 2048;

/// One receive queue of a backend.
pub trait RxQueue: Send {
    /// Backend name for logs and summaries (`io_uring`, `recvmmsg`, `pcap`).
    fn name(&self) -> &'static str;

    /// Receives up to [`MAX_BURST`] datagrams without blocking and, if there
    /// are any, calls `f` once with them as mutable buffers (the frame path
    /// decrypts in place). Returns how many datagrams were handed over.
    fn rx_burst(&mut self, f: &mut dyn FnMut(&mut [&mut [u8]])) -> io::Result<usize>;

    /// Blocks until datagrams may be ready or `timeout` passes: the idle
    /// policy's last stage (poll on the socket, or an io_uring wait).
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;

    /// Datagrams the kernel dropped before this queue read them (the
    /// socket's `sk_drops`: from `SO_RXQ_OVFL` control messages with
    /// recvmmsg, from `SO_MEMINFO` with io_uring; the NIC's missed and
    /// no-mbuf counts with DPDK), cumulative. Called when counters are
    /// published, never per packet.
    fn kernel_dropped(&self) -> u64 {
        0
    }

    /// Packets read that were not ATT datagrams, by reason (pcap replay).
    fn not_att(&self) -> [u64; NotAtt::COUNT] {
        [0; NotAtt::COUNT]
    }

    /// Packets read, ATT or not (pcap replay counts non-UDP packets too).
    fn packets(&self) -> u64;

    /// True once a finite source (pcap) is exhausted; sockets never are.
    fn finished(&self) -> bool {
        false
    }

    /// Replies the backend sent on its own (ARP on DPDK ports), cumulative.
    fn replies(&self) -> u64 {
        0
    }

    /// The NIC's own counters (DPDK ports; reported by one queue per port).
    fn nic_stats(&self) -> Option<NicStats> {
        None
    }
}

/// A NIC's receive counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NicStats {
    pub ipackets: u64,
    pub ibytes: u64,
    /// Dropped by the NIC: no free receive descriptor.
    pub imissed: u64,
    pub ierrors: u64,
    /// Dropped: no mbuf to receive into.
    pub rx_nombuf: u64,
}

impl NicStats {
    pub fn add(&mut self, o: &NicStats) {
        self.ipackets += o.ipackets;
        self.ibytes += o.ibytes;
        self.imissed += o.imissed;
        self.ierrors += o.ierrors;
        self.rx_nombuf += o.rx_nombuf;
    }
}

/// Why a captured packet is not an ATT datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NotAtt {
    /// Capture link type other than Ethernet.
    LinkType = 0,
    /// Ethernet/IP headers cut off or invalid.
    Malformed,
    /// Ethertype other than IPv4/IPv6 (after one optional 802.1Q tag).
    NotIp,
    /// A fragment of an IP packet (the spec drops fragments).
    IpFragment,
    /// IP, but not UDP.
    NotUdp,
    /// UDP, but not to the ATT port.
    WrongPort,
}

impl NotAtt {
    pub const COUNT: usize = 6;
    pub const ALL: [NotAtt; Self::COUNT] =
        [NotAtt::LinkType, NotAtt::Malformed, NotAtt::NotIp, NotAtt::IpFragment, NotAtt::NotUdp, NotAtt::WrongPort];

    pub const fn as_str(self) -> &'static str {
        match self {
            NotAtt::LinkType => "link_type",
            NotAtt::Malformed => "malformed",
            NotAtt::NotIp => "not_ip",
            NotAtt::IpFragment => "ip_fragment",
            NotAtt::NotUdp => "not_udp",
            NotAtt::WrongPort => "wrong_port",
        }
    }
}

/// Which socket backend to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketBackend {
    IoUring,
    Recvmmsg,
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct UdpConfig {
    pub listen: std::net::SocketAddr,
    /// One `SO_REUSEPORT` socket (and ring) per queue.
    pub queues: usize,
    /// `SO_RCVBUF` in bytes (the kernel doubles it); 0 keeps the default.
    pub rcvbuf: usize,
}
