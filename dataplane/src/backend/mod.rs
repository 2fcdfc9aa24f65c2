//! Packet I/O backends. Each yields bursts of datagrams borrowed from the
//! backend's own buffers; the pipeline runs the frame path on them in
//! place and the buffers go back to the backend when the burst callback
//! returns. Backends are chosen by capability (`att-wire.md` transport:
//! UDP, default port 7100): io_uring on Linux, recvmmsg when io_uring is
//! unavailable or asked for, pcap replay offline; DPDK plugs in here too.

use std::io;
use std::net::UdpSocket;

pub use attnet_core::{Peer, MAX_BURST};
use std::time::Duration;

pub mod dpdk;
pub mod kstats;
pub mod pcap;
pub mod recvmmsg;
pub mod uring;

/// Receive buffer size per datagram (a UDP datagram larger than this is
/// truncated by the kernel and counted as `truncated` by the frame path).
pub const BUF_SIZE: usize = 2048;

/// What [`RxQueue::rx_burst_peers`] calls with a burst: the datagrams, and
/// their source addresses in a slice of the same length.
pub type BurstFn<'a> = dyn FnMut(&mut [&mut [u8]], &[Peer]) + 'a;

/// One receive queue of a backend.
pub trait RxQueue: Send {
    /// Backend name for logs and summaries (`io_uring`, `recvmmsg`, `pcap`).
    fn name(&self) -> &'static str;

    /// Receives up to [`MAX_BURST`] datagrams without blocking and, if there
    /// are any, calls `f` once with them as mutable buffers (the frame path
    /// decrypts in place) and, in a parallel slice of the same length, each
    /// datagram's source address ([`Peer::NONE`] where the backend does not
    /// read it: see [`reports_peers`](Self::reports_peers)). Returns how many
    /// datagrams were handed over.
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize>;

    /// As [`rx_burst_peers`](Self::rx_burst_peers), for callers that do not
    /// need the source addresses.
    fn rx_burst(&mut self, f: &mut dyn FnMut(&mut [&mut [u8]])) -> io::Result<usize> {
        self.rx_burst_peers(&mut |bufs: &mut [&mut [u8]], _: &[Peer]| f(bufs))
    }

    /// True when `rx_burst_peers` reports source addresses: recvmmsg always,
    /// io_uring in its address mode ([`uring::RecvMode::Addresses`]); pcap
    /// replay and DPDK report none.
    fn reports_peers(&self) -> bool {
        false
    }

    /// A handle that sends from this queue's socket (a duplicate of its
    /// descriptor: same local address and port, so a client's connected UDP
    /// socket accepts what it sends). `None` for backends without a kernel
    /// socket. The handle shares the socket's non-blocking mode.
    fn send_socket(&self) -> io::Result<Option<UdpSocket>> {
        Ok(None)
    }

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
