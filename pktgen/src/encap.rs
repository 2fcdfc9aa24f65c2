//! Ethernet II / optional 802.1Q / IPv4 or IPv6 / UDP around a datagram,
//! for the pcap and DPDK outputs. Each session is its own flow (source
//! port `src_port + session`), so RSS on the receiver spreads sessions
//! over queues while one session stays on one.

use std::net::IpAddr;

use etherparse::{PacketBuilder, VlanId};

/// The outer layers.
#[derive(Debug, Clone)]
pub struct Encap {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub vlan: Option<u16>,
}

impl Default for Encap {
    fn default() -> Self {
        Encap {
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src_ip: IpAddr::from([10, 0, 0, 1]),
            dst_ip: IpAddr::from([10, 0, 0, 2]),
            src_port: 40000,
            dst_port: 7100,
            vlan: None,
        }
    }
}

impl Encap {
    /// Wire bytes added besides UDP/IPv4/Ethernet (for rates in bits):
    /// 20 more for IPv6, 4 for a VLAN tag.
    pub fn extra_wire_bytes(&self) -> u64 {
        u64::from(self.dst_ip.is_ipv6()) * 20 + u64::from(self.vlan.is_some()) * 4
    }

    /// Bytes the outer layers add in front of a payload: Ethernet 14, a
    /// VLAN tag 4, IPv4 20 or IPv6 40, UDP 8.
    pub fn header_len(&self) -> usize {
        14 + if self.vlan.is_some() { 4 } else { 0 } + if self.dst_ip.is_ipv6() { 40 } else { 20 } + 8
    }

    /// Writes the whole packet for `payload` of `session` into `out`
    /// (cleared first). Errors if the addresses mix families or the
    /// payload does not fit a UDP datagram.
    pub fn write(&self, session: u16, payload: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        self.build(session, payload, out)
    }

    /// Writes the whole packet into the start of `out` (a packet buffer
    /// such as a DPDK mbuf's data, at least [`header_len`](Self::header_len)
    /// + `payload.len()` bytes) and returns its length.
    pub fn write_into(&self, session: u16, payload: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let len = self.header_len() + payload.len();
        let room = out.len();
        let mut w = out.get_mut(..len).ok_or_else(|| format!("a {len}-byte packet does not fit {room}"))?;
        self.build(session, payload, &mut w)?;
        Ok(len)
    }

    fn build<W: std::io::Write>(&self, session: u16, payload: &[u8], out: &mut W) -> Result<(), String> {
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        let sport = self.src_port.wrapping_add(session);
        let r = match (self.src_ip, self.dst_ip, self.vlan) {
            (IpAddr::V4(s), IpAddr::V4(d), None) => {
                eth.ipv4(s.octets(), d.octets(), 64).udp(sport, self.dst_port).write(out, payload)
            }
            (IpAddr::V6(s), IpAddr::V6(d), None) => {
                eth.ipv6(s.octets(), d.octets(), 64).udp(sport, self.dst_port).write(out, payload)
            }
            (IpAddr::V4(s), IpAddr::V4(d), Some(v)) => eth
                .single_vlan(VlanId::try_new(v).map_err(|e| e.to_string())?)
                .ipv4(s.octets(), d.octets(), 64)
                .udp(sport, self.dst_port)
                .write(out, payload),
            (IpAddr::V6(s), IpAddr::V6(d), Some(v)) => eth
                .single_vlan(VlanId::try_new(v).map_err(|e| e.to_string())?)
                .ipv6(s.octets(), d.octets(), 64)
                .udp(sport, self.dst_port)
                .write(out, payload),
            _ => return Err("source and destination addresses must both be IPv4 or both IPv6".into()),
        };
        r.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::backend::pcap::udp_payload;

    #[test]
    fn the_node_finds_the_payload_in_every_shape() {
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let v6d: IpAddr = "fd00::2".parse().unwrap();
        let mut out = Vec::new();
        for e in [
            Encap::default(),
            Encap { vlan: Some(42), ..Encap::default() },
            Encap { src_ip: v6, dst_ip: v6d, ..Encap::default() },
            Encap { src_ip: v6, dst_ip: v6d, vlan: Some(7), ..Encap::default() },
        ] {
            e.write(3, b"att datagram", &mut out).unwrap();
            assert_eq!(udp_payload(&out, 7100), Ok(&b"att datagram"[..]), "{e:?}");
            let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else { panic!("not UDP") };
            assert_eq!(u.source_port(), 40003);
            // The same bytes straight into a packet buffer.
            assert_eq!(out.len(), e.header_len() + 12, "{e:?}");
            let mut buf = [0xffu8; 128];
            assert_eq!(e.write_into(3, b"att datagram", &mut buf), Ok(out.len()));
            assert_eq!(&buf[..out.len()], &out[..]);
            assert!(e.write_into(3, b"att datagram", &mut buf[..out.len() - 1]).is_err());
        }
        let mixed = Encap { dst_ip: v6d, ..Encap::default() };
        assert!(mixed.write(0, b"x", &mut out).is_err());
    }
}
