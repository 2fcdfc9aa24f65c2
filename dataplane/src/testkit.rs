//! Test helpers of the host crate: everything of [`attnet_core::testkit`]
//! (keys, signed transactions, sealed frames) plus link-layer packets and
//! captures for the backends' tests, benchmarks and examples.

pub use attnet_core::testkit::*;

/// An Ethernet II / IPv4 / UDP packet from 127.0.0.1:40000 to
/// 127.0.0.2:`port` carrying `payload` (for captures; never sent).
pub fn udp4_packet(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 42);
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
        .udp(40000, port);
    // Writing into a Vec cannot fail; a payload over 65507 bytes is the
    // caller's mistake and leaves the packet empty.
    let _ = b.write(&mut v, payload);
    v
}

/// As [`udp4_packet`] over IPv6 (::1) with one 802.1Q tag (VLAN 42).
pub fn udp6_vlan_packet(port: u16, payload: &[u8]) -> Vec<u8> {
    let lo = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut v = Vec::with_capacity(payload.len() + 66);
    if let Ok(vlan) = etherparse::VlanId::try_new(42) {
        let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(vlan)
            .ipv6(lo, lo, 64)
            .udp(40000, port);
        let _ = b.write(&mut v, payload);
    }
    v
}

/// Every packet's bytes of a classic pcap file (a test's capture of what a
/// port sent).
pub fn read_pcap_frames(path: &std::path::Path) -> std::io::Result<Vec<Vec<u8>>> {
    let f = std::fs::File::open(path)?;
    let mut r = pcap_file::pcap::PcapReader::new(f).map_err(std::io::Error::other)?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.map_err(std::io::Error::other)?.data.into_owned());
    }
    Ok(out)
}

/// Writes a pcap of `payloads` as UDP/IPv4 datagrams to port 7100.
pub fn write_udp_pcap(path: &std::path::Path, payloads: &[Vec<u8>]) -> std::io::Result<()> {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let mut w =
        PcapWriter::with_header(std::fs::File::create(path)?, PcapHeader::default()).map_err(std::io::Error::other)?;
    for (i, p) in payloads.iter().enumerate() {
        let pkt = udp4_packet(7100, p);
        w.write_packet(&PcapPacket::new(std::time::Duration::from_micros(i as u64), pkt.len() as u32, &pkt))
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// An Ethernet/IPv4 ARP packet with operation `op` from 02:00:00:00:00:09
/// (192.0.2.9) for `target` (broadcast for a request).
pub fn arp_packet(op: etherparse::ArpOperation, target: [u8; 4]) -> Vec<u8> {
    let a = etherparse::ArpEthIpv4Packet {
        operation: op,
        sender_mac: [2, 0, 0, 0, 0, 9],
        sender_ipv4: [192, 0, 2, 9],
        target_mac: [0; 6],
        target_ipv4: target,
    };
    let mut v = Vec::with_capacity(42);
    let _ = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [0xff; 6]).arp(a.into()).write(&mut v);
    v
}

/// An Ethernet/IPv4/TCP packet to `port` carrying `payload` (not ATT).
pub fn tcp4_packet(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 54);
    let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
        .tcp(1, port, 0, 1000);
    let _ = b.write(&mut v, payload);
    v
}

/// [`udp4_packet`] with the IPv4 more-fragments flag set: an IP fragment.
pub fn udp4_fragment(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = udp4_packet(port, payload);
    if let Some(flags) = v.get_mut(14 + 6) {
        *flags |= 0x20;
    }
    v
}
