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

    /// Writes the whole packet into the start of `out`, a packet buffer
    /// such as a DPDK mbuf's data of at least `header_len()` plus the
    /// payload's length, and returns its length. The same bytes as
    /// [`write`](Self::write), written field by field: no builder, one pass
    /// over the payload for the UDP checksum, one copy.
    pub fn write_into(&self, session: u16, payload: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let hl = self.header_len();
        let len = hl + payload.len();
        let room = out.len();
        let out = out.get_mut(..len).ok_or_else(|| format!("a {len}-byte packet does not fit {room}"))?;
        let udp_len = u16::try_from(8 + payload.len()).map_err(|_| "the payload does not fit a UDP datagram")?;
        let sport = self.src_port.wrapping_add(session);
        out[0..6].copy_from_slice(&self.dst_mac);
        out[6..12].copy_from_slice(&self.src_mac);
        let mut at = 12;
        if let Some(v) = self.vlan {
            if v > 0x0fff {
                return Err(format!("VLAN id {v} above 4095"));
            }
            out[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            out[14..16].copy_from_slice(&v.to_be_bytes());
            at = 16;
        }
        // Ones' complement sum of the UDP pseudo-header, header and payload.
        let mut sum = sum16(payload) + u64::from(sport) + u64::from(self.dst_port) + 2 * u64::from(udp_len) + 17;
        match (self.src_ip, self.dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let total = udp_len.checked_add(20).ok_or("the payload does not fit an IPv4 packet")?;
                out[at..at + 2].copy_from_slice(&0x0800u16.to_be_bytes());
                let ip = &mut out[at + 2..at + 22];
                // Version 4, IHL 5, no DSCP; id 0, don't fragment; TTL 64, UDP.
                ip[..12].copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip[12..16].copy_from_slice(&src.octets());
                ip[16..20].copy_from_slice(&dst.octets());
                // From the values, not read back from the buffer (a load
                // over the fresh narrow stores would stall).
                let addrs = sum16(&src.octets()) + sum16(&dst.octets());
                let c = !fold(0x4500 + u64::from(total) + 0x4000 + (64 << 8 | 17) + addrs);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                sum += addrs;
                at += 22;
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                out[at..at + 2].copy_from_slice(&0x86ddu16.to_be_bytes());
                let ip = &mut out[at + 2..at + 42];
                ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, 17, 64]);
                ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
                ip[8..24].copy_from_slice(&src.octets());
                ip[24..40].copy_from_slice(&dst.octets());
                sum += sum16(&src.octets()) + sum16(&dst.octets());
                at += 42;
            }
            _ => return Err("source and destination addresses must both be IPv4 or both IPv6".into()),
        }
        // A computed 0 goes on the wire as 0xffff (0 means "no checksum").
        let c = match !fold(sum) {
            0 => 0xffff,
            c => c,
        };
        let udp = &mut out[at..at + 8];
        udp[0..2].copy_from_slice(&sport.to_be_bytes());
        udp[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        out[hl..].copy_from_slice(payload);
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

/// Sum of `b` as big-endian 16-bit words (an odd last byte padded with a
/// zero), not yet folded: eight bytes at a time.
fn sum16(b: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Each 32-bit half is a sum of two words; adding the halves keeps
        // every carry (at most 2^33 per step, far from overflow in 2^64
        // for any datagram).
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    acc
}

/// Folds a sum into 16 bits, end-around carry included.
fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
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
            {
                let p = etherparse::SlicedPacket::from_ethernet(&out).unwrap();
                let Some(etherparse::TransportSlice::Udp(u)) = p.transport else { panic!("not UDP") };
                assert_eq!(u.source_port(), 40003);
            }
            // The same bytes straight into a packet buffer, for payloads of
            // every length mod 8, odd and even, and ones whose sums carry.
            assert_eq!(out.len(), e.header_len() + 12, "{e:?}");
            let mut buf = vec![0xa5u8; 2200];
            for len in (0..40).chain([255, 1400, 2048]) {
                for fill in [0x00u8, 0x5a, 0xff] {
                    let payload: Vec<u8> = (0..len).map(|i| fill ^ (i as u8).wrapping_mul(37)).collect();
                    e.write(9, &payload, &mut out).unwrap();
                    assert_eq!(e.write_into(9, &payload, &mut buf), Ok(out.len()), "{e:?} {len}");
                    assert_eq!(&buf[..out.len()], &out[..], "{e:?} length {len} fill {fill:#x}");
                }
            }
            assert!(e.write_into(3, b"att datagram", &mut buf[..e.header_len() + 11]).is_err());
        }
        let mixed = Encap { dst_ip: v6d, ..Encap::default() };
        assert!(mixed.write(0, b"x", &mut out).is_err());
    }
}
