//! What both socket backends (recvmmsg and io_uring) share: opening an
//! `SO_REUSEPORT` group of UDP sockets, keeping a 64-bit total of the
//! kernel's per-socket drop counter (`sk_drops`, which each backend reads
//! its own way), and giving an `io::Error` the context of what was being
//! done.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::UdpConfig;

/// An `io::Error` of the same kind whose message says what was being done.
pub(crate) fn context(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A UDP socket as every socket backend listens: non-blocking,
/// `SO_REUSEPORT` (one socket per queue, the kernel spreads flows over the
/// group; only sockets of the same user with `SO_REUSEPORT` can join it),
/// `SO_RCVBUF` when `rcvbuf` is nonzero (capped by `net.core.rmem_max`),
/// `SO_RXQ_OVFL` on so that each datagram carries the socket's drop
/// counter, `IP_PKTINFO` / `IPV6_RECVPKTINFO` on when `addr` is a wildcard
/// (each datagram then says the local address it was sent to), bound to
/// `addr`. No `SO_REUSEADDR`: on UDP it would let any
/// other socket that sets it bind the same address and take datagrams.
/// A port already bound fails with `ErrorKind::AddrInUse`.
fn open_udp_socket(addr: SocketAddr, rcvbuf: usize) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| context("UDP socket", e))?;
    s.set_nonblocking(true).map_err(|e| context("O_NONBLOCK", e))?;
    s.set_reuse_port(true).map_err(|e| context("SO_REUSEPORT", e))?;
    if rcvbuf > 0 {
        s.set_recv_buffer_size(rcvbuf).map_err(|e| context("SO_RCVBUF", e))?;
    }
    let on: libc::c_int = 1;
    // SAFETY: `s` is an open socket; optval points at a live c_int and optlen is its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(context("SO_RXQ_OVFL", io::Error::last_os_error()));
    }
    if addr.ip().is_unspecified() {
        // Listening on every address: each datagram says which one it was
        // sent to, so that replies leave from it.
        let (level, name, what) = if addr.is_ipv4() {
            (libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO")
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO")
        };
        // SAFETY: `s` is an open socket; optval points at a live c_int and optlen is its size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(context(what, io::Error::last_os_error()));
        }
    }
    s.bind(&SockAddr::from(addr)).map_err(|e| context(&format!("bind {addr}"), e))?;
    Ok(s)
}

/// `cfg.queues` sockets of one `SO_REUSEPORT` group. With port 0 in
/// `cfg.listen` the first socket picks the port and the others join it.
/// Returns the sockets and the address they share.
pub(crate) fn open_udp_group(cfg: &UdpConfig) -> io::Result<(Vec<Socket>, SocketAddr)> {
    if cfg.queues == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "UdpConfig::queues must be at least 1"));
    }
    let first = open_udp_socket(cfg.listen, cfg.rcvbuf)?;
    let local = first
        .local_addr()
        .and_then(|a| a.as_socket().ok_or_else(|| io::Error::other("not an IP socket")))
        .map_err(|e| context("getsockname", e))?;
    let mut socks = Vec::with_capacity(cfg.queues);
    socks.push(first);
    for _ in 1..cfg.queues {
        socks.push(open_udp_socket(local, cfg.rcvbuf)?);
    }
    Ok((socks, local))
}

/// Turns the socket's cumulative 32-bit drop counter (as sampled by the
/// `SO_RXQ_OVFL` cmsgs, in arrival order, or read with `SO_MEMINFO`) into a
/// 64-bit total that survives the counter wrapping.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DropCounter {
    last: u32,
    total: u64,
}

impl DropCounter {
    pub(crate) fn update(&mut self, sample: u32) {
        self.total += u64::from(sample.wrapping_sub(self.last));
        self.last = sample;
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(listen: SocketAddr, queues: usize) -> UdpConfig {
        UdpConfig { listen, queues, rcvbuf: 0 }
    }

    /// The group's own sockets share the port; a socket of another program
    /// that asks for `SO_REUSEADDR` cannot bind it while the group holds
    /// it, nor can the group bind a port such a socket holds.
    #[test]
    fn only_the_group_shares_its_port() {
        let (socks, local) = open_udp_group(&cfg("127.0.0.1:0".parse().unwrap(), 3)).unwrap();
        assert_eq!(socks.len(), 3);
        let other = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        other.set_reuse_address(true).unwrap();
        let e = other.bind(&SockAddr::from(local)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(socks);
        let foreign = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        foreign.set_reuse_address(true).unwrap();
        foreign.bind(&SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap())).unwrap();
        let taken = foreign.local_addr().unwrap().as_socket().unwrap();
        let e = open_udp_group(&cfg(taken, 2)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        assert!(e.to_string().contains(&format!("bind {taken}")), "{e}");
    }

    #[test]
    fn drop_counter_survives_wrap() {
        let mut d = DropCounter::default();
        d.update(5);
        d.update(5);
        d.update(u32::MAX);
        d.update(3);
        assert_eq!(d.total(), u64::from(u32::MAX) + 4);
    }
}
