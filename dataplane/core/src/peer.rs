//! A datagram's source address as the data path carries it, without the
//! socket API: backends fill it, the shard batches carry it to the control
//! thread, which answers to it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A datagram's source address as the data path carries it: IPv4 or IPv6,
/// port and (IPv6) scope id, or no address at all. `Copy` and 24 bytes, so
/// a burst's addresses are a plain array and nothing is allocated per
/// datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Peer {
    /// 0: no address; 4 or 6: the IP version.
    family: u8,
    port: u16,
    /// IPv4 in the first four bytes, or the IPv6 address.
    ip: [u8; 16],
    scope_id: u32,
}

impl Peer {
    /// No address (pcap replay, or an address the kernel did not give).
    pub const NONE: Peer = Peer { family: 0, port: 0, ip: [0; 16], scope_id: 0 };

    /// No address ([`Peer::NONE`]).
    pub fn is_none(&self) -> bool {
        self.family == 0
    }

    /// The address, if there is one.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.family {
            4 => {
                let [a, b, c, d, ..] = self.ip;
                Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), self.port)))
            }
            6 => Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(self.ip), self.port, 0, self.scope_id))),
            _ => None,
        }
    }

    /// The address bytes: 4 for IPv4, 16 for IPv6, none for [`Peer::NONE`].
    pub fn ip_bytes(&self) -> &[u8] {
        let n = match self.family {
            4 => 4,
            6 => 16,
            _ => 0,
        };
        self.ip.get(..n).unwrap_or(&[])
    }

    /// The port (0 for [`Peer::NONE`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An IPv4 address and port.
    pub const fn v4(ip: [u8; 4], port: u16) -> Peer {
        let [a, b, c, d] = ip;
        Peer { family: 4, port, ip: [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], scope_id: 0 }
    }

    /// An IPv6 address, port and scope id.
    pub const fn v6(ip: [u8; 16], port: u16, scope_id: u32) -> Peer {
        Peer { family: 6, port, ip, scope_id }
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        match a {
            SocketAddr::V4(v4) => {
                let [a, b, c, d] = v4.ip().octets();
                Peer { family: 4, port: v4.port(), ip: [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], scope_id: 0 }
            }
            SocketAddr::V6(v6) => Peer { family: 6, port: v6.port(), ip: v6.ip().octets(), scope_id: v6.scope_id() },
        }
    }
}

impl From<Option<SocketAddr>> for Peer {
    fn from(a: Option<SocketAddr>) -> Peer {
        a.map_or(Peer::NONE, Peer::from)
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.socket_addr() {
            Some(a) => a.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_round_trips() {
        for a in ["127.0.0.1:7100", "[::1]:9", "[fe80::1%3]:40000", "0.0.0.0:0"] {
            let a: SocketAddr = a.parse().unwrap();
            let p = Peer::from(a);
            assert!(!p.is_none());
            assert_eq!(p.socket_addr(), Some(a));
            assert_eq!(p.to_string(), a.to_string());
        }
        assert_eq!(Peer::NONE.socket_addr(), None);
        assert_eq!(Peer::from(None), Peer::NONE);
        assert_eq!(Peer::NONE.to_string(), "-");
        assert_eq!(std::mem::size_of::<Peer>(), 24);
    }

    #[test]
    fn address_bytes_and_port() {
        let p = Peer::v4([127, 0, 0, 1], 40000);
        assert_eq!((p.ip_bytes(), p.port()), (&[127u8, 0, 0, 1][..], 40000));
        let a: SocketAddr = "[fe80::1%3]:9".parse().unwrap();
        let p = Peer::from(a);
        let mut want = [0u8; 16];
        want[0] = 0xfe;
        want[1] = 0x80;
        want[15] = 1;
        assert_eq!((p.ip_bytes(), p.port()), (&want[..], 9));
        assert_eq!((Peer::NONE.ip_bytes().len(), Peer::NONE.port()), (0, 0));
    }
}
