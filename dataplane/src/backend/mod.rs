//! Packet I/O backends. Each yields bursts of datagrams borrowed from the
//! backend's own buffers; the pipeline runs the frame path on them in
//! place and the buffers go back to the backend when the burst callback
//! returns. Backends are chosen by capability (`att-wire.md` transport:
//! UDP, default port 7100): io_uring on Linux, recvmmsg when io_uring is
//! unavailable or asked for, pcap replay offline; DPDK plugs in here too.

use std::io;
use std::net::UdpSocket;

pub use attnet_core::reply::ReplyConsumer;
pub use attnet_core::{Peer, MAX_BURST};
use std::time::Duration;

pub mod dpdk;
pub mod kstats;
pub mod neighbours;
pub mod pcap;
pub mod probe;
pub mod recvmmsg;
pub(crate) mod socket;
pub mod uring;

/// Receive buffer size per datagram (a UDP datagram larger than this is
/// truncated by the kernel and counted as `truncated` by the frame path).
pub const BUF_SIZE: usize = 2048;

/// What [`RxQueue::rx_burst_peers`] calls with a burst: the datagrams, and
/// their source addresses in a slice of the same length.
pub type BurstFn<'a> = dyn FnMut(&mut [&mut [u8]], &[Peer]) + 'a;

/// One receive queue of a backend: what a data core needs of it and
/// nothing more. What differs between backends (their names, whether they
/// read source addresses, the socket a reply can leave from) is on the
/// concrete types and on [`Queue`].
pub trait RxQueue: Send {
    /// Receives up to [`MAX_BURST`] datagrams without blocking and, if there
    /// are any, calls `f` once with them as mutable buffers (the frame path
    /// decrypts in place) and, in a parallel slice of the same length, each
    /// datagram's source address ([`Peer::NONE`] where the backend does not
    /// read it). Returns how many datagrams were handed over.
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize>;

    /// Blocks until datagrams may be ready or `timeout` passes: the idle
    /// policy's last stage (poll on the socket, or an io_uring wait).
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;

    /// The queue's counters, cumulative. Called when counters are published
    /// and when the queue is idle, never per packet (it may make a syscall:
    /// the socket's drop count).
    fn stats(&self) -> QueueStats;

    /// As [`rx_burst_peers`](Self::rx_burst_peers), for callers that do not
    /// need the source addresses (provided; implementors write the three
    /// methods above).
    fn rx_burst(&mut self, f: &mut dyn FnMut(&mut [&mut [u8]])) -> io::Result<usize> {
        self.rx_burst_peers(&mut |bufs: &mut [&mut [u8]], _: &[Peer]| f(bufs))
    }
}

/// What a receive queue has counted ([`RxQueue::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Packets read, ATT or not (pcap replay counts non-UDP packets too).
    pub packets: u64,
    /// Datagrams the kernel dropped before this queue read them (the
    /// socket's `sk_drops`: from `SO_RXQ_OVFL` control messages with
    /// recvmmsg, from `SO_MEMINFO` with io_uring; the NIC's missed and
    /// no-mbuf counts with DPDK).
    pub kernel_dropped: u64,
    /// Packets read that were not ATT datagrams, by reason (pcap replay,
    /// DPDK).
    pub not_att: [u64; NotAtt::COUNT],
    /// Replies the backend sent on its own (ARP on DPDK ports).
    pub replies: u64,
    /// The relay's replies this queue transmitted for the control thread
    /// (DPDK: the queue that drains the reply ring).
    pub tx_replies: TxReplies,
    /// The NIC's own counters (DPDK ports; reported by one queue per port).
    pub nic: Option<NicStats>,
    /// A finite source (pcap) is exhausted; sockets and ports never are.
    pub finished: bool,
}

/// What a queue did with the replies the control thread queued to it:
/// every reply taken off the ring is `sent` or dropped for one reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxReplies {
    /// Handed to the NIC.
    pub sent: u64,
    /// No link-layer addressing known for the destination (never seen, or
    /// evicted from the neighbour table).
    pub no_route: u64,
    /// No mbuf free in the pool (or none with room for the frame).
    pub no_mbuf: u64,
    /// The transmit queue was full.
    pub tx_full: u64,
}

impl TxReplies {
    pub fn add(&mut self, o: &TxReplies) {
        self.sent += o.sent;
        self.no_route += o.no_route;
        self.no_mbuf += o.no_mbuf;
        self.tx_full += o.tx_full;
    }

    /// Replies taken off the ring.
    pub fn taken(&self) -> u64 {
        self.sent + self.no_route + self.no_mbuf + self.tx_full
    }
}

/// Which backend a queue belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring on UDP sockets.
    IoUring,
    /// `recvmmsg` on UDP sockets.
    Recvmmsg,
    /// Replay of a capture file.
    Pcap,
    /// A DPDK port.
    Dpdk,
}

impl Backend {
    /// The name in logs and the summary (`io_uring`, `recvmmsg`, `pcap`,
    /// `dpdk`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::IoUring => "io_uring",
            Backend::Recvmmsg => "recvmmsg",
            Backend::Pcap => "pcap",
            Backend::Dpdk => "dpdk",
        }
    }

    /// A kernel socket backend (its drops show in the kernel's counters).
    pub const fn is_socket(self) -> bool {
        matches!(self, Backend::IoUring | Backend::Recvmmsg)
    }
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A queue of any backend: what the node opens and its data cores run
/// (an enum rather than a trait object, so the data core's calls are
/// direct).
// One per data core, built once and moved into its thread; boxing the large
// variants would put a pointer chase in front of every burst.
#[allow(clippy::large_enum_variant)]
pub enum Queue {
    /// io_uring multishot receive on a UDP socket.
    Uring(uring::UringQueue),
    /// `recvmmsg` on a UDP socket.
    Recvmmsg(recvmmsg::RecvmmsgQueue),
    /// A capture replayed from a file.
    Pcap(pcap::PcapReplay),
    /// A DPDK port's receive queue.
    Dpdk(dpdk::DpdkQueue),
}

impl Queue {
    /// The queue's backend.
    pub fn backend(&self) -> Backend {
        match self {
            Queue::Uring(_) => Backend::IoUring,
            Queue::Recvmmsg(_) => Backend::Recvmmsg,
            Queue::Pcap(_) => Backend::Pcap,
            Queue::Dpdk(_) => Backend::Dpdk,
        }
    }

    /// The backend's name for logs and summaries.
    pub fn name(&self) -> &'static str {
        self.backend().as_str()
    }

    /// True when bursts carry source addresses: recvmmsg and DPDK always,
    /// io_uring in its address mode ([`uring::RecvMode::Addresses`]); pcap
    /// replay reads none.
    pub fn reports_peers(&self) -> bool {
        match self {
            Queue::Uring(q) => q.reports_peers(),
            Queue::Recvmmsg(q) => q.reports_peers(),
            Queue::Dpdk(_) => true,
            Queue::Pcap(_) => false,
        }
    }

    /// Gives this queue the control thread's reply ring: it transmits what
    /// comes on it between bursts (DPDK, whose transmit queues only their
    /// core may use). Other backends give the ring back: their replies
    /// leave through [`send_socket`](Self::send_socket).
    pub fn attach_replies(&mut self, ring: ReplyConsumer) -> Result<(), ReplyConsumer> {
        match self {
            Queue::Dpdk(q) => {
                q.attach_replies(ring);
                Ok(())
            }
            _ => Err(ring),
        }
    }

    /// A handle that sends from this queue's socket (a duplicate of its
    /// descriptor: same local address and port, so a client's connected
    /// UDP socket accepts what it sends). `None` for backends without a
    /// kernel socket. The handle shares the socket's non-blocking mode.
    pub fn send_socket(&self) -> io::Result<Option<UdpSocket>> {
        match self {
            Queue::Uring(q) => q.send_socket(),
            Queue::Recvmmsg(q) => q.send_socket(),
            Queue::Pcap(_) | Queue::Dpdk(_) => Ok(None),
        }
    }
}

impl RxQueue for Queue {
    #[inline]
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize> {
        match self {
            Queue::Uring(q) => q.rx_burst_peers(f),
            Queue::Recvmmsg(q) => q.rx_burst_peers(f),
            Queue::Pcap(q) => q.rx_burst_peers(f),
            Queue::Dpdk(q) => q.rx_burst_peers(f),
        }
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        match self {
            Queue::Uring(q) => q.wait(timeout),
            Queue::Recvmmsg(q) => q.wait(timeout),
            Queue::Pcap(q) => q.wait(timeout),
            Queue::Dpdk(q) => q.wait(timeout),
        }
    }

    fn stats(&self) -> QueueStats {
        match self {
            Queue::Uring(q) => q.stats(),
            Queue::Recvmmsg(q) => q.stats(),
            Queue::Pcap(q) => q.stats(),
            Queue::Dpdk(q) => q.stats(),
        }
    }
}

/// Reads a `struct sockaddr_in` or `sockaddr_in6` as the kernel wrote it
/// (`name` is the bytes it filled: `msg_namelen` of them). Another family,
/// or too few bytes, is [`Peer::NONE`]; never panics.
pub fn peer_from_sockaddr(name: &[u8]) -> Peer {
    let family = match name.get(..2) {
        Some(&[a, b]) => i32::from(u16::from_ne_bytes([a, b])),
        _ => return Peer::NONE,
    };
    let port = match name.get(2..4) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => return Peer::NONE,
    };
    if family == libc::AF_INET {
        match name.get(4..8) {
            Some(&[a, b, c, d]) => Peer::v4([a, b, c, d], port),
            _ => Peer::NONE,
        }
    } else if family == libc::AF_INET6 {
        let ip: Option<[u8; 16]> = name.get(8..24).and_then(|s| s.try_into().ok());
        let scope: Option<[u8; 4]> = name.get(24..28).and_then(|s| s.try_into().ok());
        match (ip, scope) {
            (Some(ip), Some(scope)) => Peer::v6(ip, port, u32::from_ne_bytes(scope)),
            _ => Peer::NONE,
        }
    } else {
        Peer::NONE
    }
}

/// A burst's worth of [`Peer::NONE`], for backends that read no address.
pub static NO_PEERS: [Peer; MAX_BURST] = [Peer::NONE; MAX_BURST];

/// Room for the largest source address a socket backend reads
/// (`sizeof(struct sockaddr_in6)`).
pub const NAME_LEN: usize = 28;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sockaddrs() {
        // sockaddr_in as the kernel lays it out.
        let mut v4 = [0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&7100u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(peer_from_sockaddr(&v4).socket_addr(), Some("10.1.2.3:7100".parse().unwrap()));
        assert_eq!(peer_from_sockaddr(&v4[..7]), Peer::NONE);
        let mut v6 = [0u8; NAME_LEN];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&9u16.to_be_bytes());
        v6[23] = 1;
        v6[24..28].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(peer_from_sockaddr(&v6).socket_addr(), Some("[::1%5]:9".parse().unwrap()));
        assert_eq!(peer_from_sockaddr(&v6[..27]), Peer::NONE);
        // Another family, empty or short input: no address, no panic.
        let mut unix = v4;
        unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        for bad in [&unix[..], &[][..], &[2][..], &v4[..3]] {
            assert_eq!(peer_from_sockaddr(bad), Peer::NONE);
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

impl<Q: RxQueue + ?Sized> RxQueue for Box<Q> {
    #[inline]
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize> {
        (**self).rx_burst_peers(f)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        (**self).wait(timeout)
    }

    fn stats(&self) -> QueueStats {
        (**self).stats()
    }
}
