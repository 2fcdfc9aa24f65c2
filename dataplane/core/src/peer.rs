//! A datagram's source address as the data path carries it, without the
//! socket API: backends fill it, the shard batches carry it to the control
//! thread, which answers to it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// A datagram's source address as the data path carries it: IPv4 or IPv6,
/// port and (IPv6) scope id, or no address at all; and, when the socket
/// listens on a wildcard address, the local address the datagram was sent
/// to, so that a reply leaves from it. `Copy` and 40 bytes, so a burst's
/// addresses are a plain array and nothing is allocated per datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Peer {
    /// 0: no address; 4 or 6: the IP version.
    family: u8,
    port: u16,
    /// IPv4 in the first four bytes, or the IPv6 address.
    ip: [u8; 16],
    scope_id: u32,
    /// 0: not known; 4 or 6: the family of `local`.
    local_family: u8,
    /// The local (destination) address the datagram was sent to.
    local: [u8; 16],
}

impl Peer {
    /// No address (pcap replay, or an address the kernel did not give).
    pub const NONE: Peer = Peer { family: 0, port: 0, ip: [0; 16], scope_id: 0, local_family: 0, local: [0; 16] };

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
        Peer {
            family: 4,
            port,
            ip: [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            scope_id: 0,
            local_family: 0,
            local: [0; 16],
        }
    }

    /// An IPv6 address, port and scope id.
    pub const fn v6(ip: [u8; 16], port: u16, scope_id: u32) -> Peer {
        Peer { family: 6, port, ip, scope_id, local_family: 0, local: [0; 16] }
    }

    /// The same peer, sent to local address `local` (what `IP_PKTINFO` or
    /// `IPV6_PKTINFO` reported).
    pub fn with_local(mut self, local: std::net::IpAddr) -> Peer {
        match local {
            std::net::IpAddr::V4(v4) => {
                self.local_family = 4;
                self.local = [0; 16];
                if let Some(d) = self.local.get_mut(..4) {
                    d.copy_from_slice(&v4.octets());
                }
            }
            std::net::IpAddr::V6(v6) => {
                self.local_family = 6;
                self.local = v6.octets();
            }
        }
        self
    }

    /// The local address the datagram was sent to, if the backend knows it.
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        match self.local_family {
            4 => {
                let [a, b, c, d, ..] = self.local;
                Some(Ipv4Addr::new(a, b, c, d).into())
            }
            6 => Some(Ipv6Addr::from(self.local).into()),
            _ => None,
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        match a {
            SocketAddr::V4(v4) => {
                let [a, b, c, d] = v4.ip().octets();
                Peer::v4([a, b, c, d], v4.port())
            }
            SocketAddr::V6(v6) => Peer::v6(v6.ip().octets(), v6.port(), v6.scope_id()),
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
        assert_eq!(std::mem::size_of::<Peer>(), 40);
    }

    #[test]
    fn the_local_address_rides_along() {
        let p = Peer::v4([127, 0, 0, 1], 9);
        assert_eq!(p.local_ip(), None);
        let q = p.with_local("127.0.0.2".parse().unwrap());
        assert_eq!((q.local_ip(), q.socket_addr()), (Some("127.0.0.2".parse().unwrap()), p.socket_addr()));
        let r = Peer::v6([0; 16], 9, 0).with_local("::1".parse().unwrap());
        assert_eq!(r.local_ip(), Some("::1".parse().unwrap()));
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
