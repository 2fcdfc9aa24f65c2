//! Where replies go on a port without a kernel stack (DPDK): every data
//! core records, for each ATT datagram's source address, the link-layer
//! addressing it came with ([`Link`]: the sender's MAC, our MAC, VLAN, the
//! local address and port it was sent to); the core that transmits replies
//! looks the destination up and builds the Ethernet/IP/UDP frame around the
//! reply. A reply goes to the MAC its request came from, out of the local
//! address the client used: no ARP or neighbour discovery is needed.
//!
//! [`Neighbours`] is a fixed table of `2^n` slots, direct-mapped by a hash
//! of the address, shared by the cores of a port without locks: each slot
//! is a sequence lock over seven words (one cache line). Writers (the
//! receiving cores) update a slot only when its contents change and skip
//! the update when another writer holds it; readers retry a torn read a few
//! times. A new address overwrites whatever shared its slot, so a flood of
//! sources can evict a client's entry: its reply is then dropped as
//! `no_route` (counted), never sent elsewhere. Memory is bounded and
//! nothing is allocated after start.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use etherparse::{PacketBuilder, VlanId};

use super::pcap::Link;
use super::Peer;

/// Words of a slot's contents: 52 bytes (address, port, MACs, local
/// address and port, VLAN) rounded up.
const WORDS: usize = 7;

/// The shortest Ethernet frame (without FCS): shorter replies are padded.
pub const ETH_MIN: usize = 60;

/// Slots of the table the DPDK backend uses: 4096 (256 KB).
pub const NEIGHBOURS_LOG2: u32 = 12;

struct Slot {
    /// Even: stable; odd: a writer is in.
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// Peer address → [`Link`], shared by the cores of one port.
pub struct Neighbours {
    slots: Box<[Slot]>,
    mask: usize,
}

impl std::fmt::Debug for Neighbours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neighbours").field("slots", &self.slots.len()).finish()
    }
}

/// The slot contents of `peer` with `link`; `None` for [`Peer::NONE`].
fn encode(peer: &Peer, link: &Link) -> Option<[u64; WORDS]> {
    let ip = peer.ip_bytes();
    let family = match ip.len() {
        4 => 4u8,
        16 => 6,
        _ => return None,
    };
    let mut b = [0u8; WORDS * 8];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        if let Some(d) = b.get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    put(&[family]);
    put(&peer.port().to_be_bytes());
    let mut ip16 = [0u8; 16];
    if let Some(d) = ip16.get_mut(..ip.len()) {
        d.copy_from_slice(ip);
    }
    put(&ip16);
    put(&link.peer_mac);
    put(&link.local_mac);
    put(&link.local_ip);
    put(&link.local_port.to_be_bytes());
    put(&link.vlan.unwrap_or(0).to_be_bytes());
    put(&[u8::from(link.vlan.is_some())]);
    let mut w = [0u64; WORDS];
    for (w, c) in w.iter_mut().zip(b.chunks_exact(8)) {
        let mut x = [0u8; 8];
        x.copy_from_slice(c);
        *w = u64::from_le_bytes(x);
    }
    Some(w)
}

/// The [`Link`] in slot contents `w` (whose key the caller compared).
fn decode(w: &[u64; WORDS]) -> Link {
    let mut b = [0u8; WORDS * 8];
    for (c, w) in b.chunks_exact_mut(8).zip(w) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    let take = |at: usize, out: &mut [u8]| {
        if let Some(s) = b.get(at..at + out.len()) {
            out.copy_from_slice(s);
        }
    };
    let mut l = Link::default();
    take(19, &mut l.peer_mac);
    take(25, &mut l.local_mac);
    take(31, &mut l.local_ip);
    let mut two = [0u8; 2];
    take(47, &mut two);
    l.local_port = u16::from_be_bytes(two);
    take(49, &mut two);
    let mut flag = [0u8; 1];
    take(51, &mut flag);
    l.vlan = (flag[0] != 0).then_some(u16::from_be_bytes(two));
    l
}

/// The key part of slot contents: family, port and address (19 bytes).
fn same_key(a: &[u64; WORDS], b: &[u64; WORDS]) -> bool {
    a[0] == b[0] && a[1] == b[1] && (a[2] & 0xff_ffff) == (b[2] & 0xff_ffff)
}

impl Neighbours {
    /// A table of `2^log2` slots (at most 2^20).
    pub fn new(log2: u32) -> Neighbours {
        let n = 1usize << log2.min(20);
        let slots = (0..n).map(|_| Slot { seq: AtomicU64::new(0), words: Default::default() }).collect();
        Neighbours { slots, mask: n - 1 }
    }

    fn slot(&self, key: &[u64; WORDS]) -> Option<&Slot> {
        // A multiplicative hash of the key words (the table is not keyed:
        // a collision costs a reply, which the core counts).
        let h = (key[0] ^ key[1].rotate_left(17) ^ (key[2] & 0xff_ffff).rotate_left(41))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.slots.get((h >> 32) as usize & self.mask)
    }

    /// A consistent copy of a slot's words, if one could be read.
    fn read(slot: &Slot) -> Option<[u64; WORDS]> {
        for _ in 0..4 {
            let s1 = slot.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let mut w = [0u64; WORDS];
            for (d, a) in w.iter_mut().zip(&slot.words) {
                *d = a.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if slot.seq.load(Ordering::Relaxed) == s1 {
                return Some(w);
            }
        }
        None
    }

    /// Records that `peer`'s datagrams arrive with `link`. Writes only when
    /// the slot holds something else, and gives up (the next datagram
    /// tries again) when another core is writing it.
    #[inline]
    pub fn record(&self, peer: &Peer, link: &Link) {
        let Some(new) = encode(peer, link) else { return };
        let Some(slot) = self.slot(&new) else { return };
        let s = slot.seq.load(Ordering::Acquire);
        if s & 1 == 1 {
            return;
        }
        if Self::read(slot) == Some(new) {
            return;
        }
        if slot.seq.compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return;
        }
        fence(Ordering::Release);
        for (a, w) in slot.words.iter().zip(new) {
            a.store(w, Ordering::Relaxed);
        }
        slot.seq.store(s + 2, Ordering::Release);
    }

    /// How to reach `peer`, if its last datagram's addressing is still in
    /// the table.
    #[inline]
    pub fn lookup(&self, peer: &Peer) -> Option<Link> {
        let key = encode(peer, &Link::default())?;
        let w = Self::read(self.slot(&key)?)?;
        same_key(&w, &key).then(|| decode(&w))
    }
}

/// Bytes of the frame [`build_reply`] writes for a `payload`-byte reply
/// (at least [`ETH_MIN`]).
pub fn reply_len(link: &Link, peer: &Peer, payload: usize) -> usize {
    let ip = if peer.ip_bytes().len() == 4 { 20 } else { 40 };
    let vlan = if link.vlan.is_some() { 4 } else { 0 };
    (14 + vlan + ip + 8 + payload).max(ETH_MIN)
}

/// Writes the Ethernet II (802.1Q when the request was tagged) / IPv4 or
/// IPv6 / UDP frame carrying `payload` to `peer` into `out`, from the
/// local MAC, address and port `link` recorded, to the peer's MAC: the
/// IPv4 header checksum and the UDP checksum (mandatory on IPv6) are
/// computed, TTL/hop limit 64. A frame shorter than [`ETH_MIN`] is padded
/// with zeros. Returns the frame's length, or `None` if `out` is too short
/// or `peer` has no address.
pub fn build_reply(link: &Link, peer: &Peer, payload: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = reply_len(link, peer, payload.len());
    let out = out.get_mut(..len)?;
    let eth = PacketBuilder::ethernet2(link.local_mac, link.peer_mac);
    let vlan = match link.vlan {
        Some(v) => Some(VlanId::try_new(v).ok()?),
        None => None,
    };
    let (sport, dport) = (link.local_port, peer.port());
    let written = match (peer.ip_bytes(), vlan) {
        (ip, vlan) if ip.len() == 4 => {
            let dst: [u8; 4] = ip.try_into().ok()?;
            let src: [u8; 4] = link.local_ip.get(..4)?.try_into().ok()?;
            match vlan {
                Some(v) => eth.single_vlan(v).ipv4(src, dst, 64).udp(sport, dport).write_to_slice(out, payload),
                None => eth.ipv4(src, dst, 64).udp(sport, dport).write_to_slice(out, payload),
            }
        }
        (ip, vlan) if ip.len() == 16 => {
            let dst: [u8; 16] = ip.try_into().ok()?;
            match vlan {
                Some(v) => {
                    eth.single_vlan(v).ipv6(link.local_ip, dst, 64).udp(sport, dport).write_to_slice(out, payload)
                }
                None => eth.ipv6(link.local_ip, dst, 64).udp(sport, dport).write_to_slice(out, payload),
            }
        }
        _ => return None,
    }
    .ok()?;
    out.get_mut(written..)?.fill(0);
    Some(len)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::super::pcap::udp_datagram;
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    fn link(vlan: Option<u16>) -> Link {
        let mut local_ip = [0u8; 16];
        local_ip[..4].copy_from_slice(&[10, 7, 0, 1]);
        Link { peer_mac: [2, 0, 0, 0, 0, 9], local_mac: [2, 0, 0, 0, 0, 1], local_ip, local_port: 7100, vlan }
    }

    #[test]
    fn the_table_remembers_the_latest_addressing_per_peer() {
        let t = Neighbours::new(4);
        let a = Peer::v4([10, 7, 0, 2], 40000);
        let b = Peer::v4([10, 7, 0, 2], 40001);
        assert_eq!(t.lookup(&a), None);
        t.record(&a, &link(None));
        assert_eq!(t.lookup(&a), Some(link(None)));
        assert_eq!(t.lookup(&b), None, "another port is another peer");
        t.record(&a, &link(Some(42)));
        assert_eq!(t.lookup(&a), Some(link(Some(42))));
        let v6 = Peer::v6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5], 9, 0);
        let l6 = Link { local_ip: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], ..link(None) };
        t.record(&v6, &l6);
        assert_eq!(t.lookup(&v6), Some(l6));
        t.record(&Peer::NONE, &l6);
        assert_eq!(t.lookup(&Peer::NONE), None);
        // A table of one slot: the newest address evicts the other, whose
        // lookup then misses rather than returning the wrong link.
        let one = Neighbours::new(0);
        one.record(&a, &link(None));
        one.record(&b, &link(Some(7)));
        assert_eq!((one.lookup(&a), one.lookup(&b)), (None, Some(link(Some(7)))));
    }

    /// Writers on two threads and a reader: every read is one of the
    /// written values, never a mix of both.
    #[test]
    fn concurrent_writers_never_tear_an_entry() {
        let t = std::sync::Arc::new(Neighbours::new(0));
        let p = Peer::v4([10, 7, 0, 2], 40000);
        let links = [link(Some(1)), Link { peer_mac: [0xff; 6], local_port: 9, ..link(Some(2)) }];
        let writers: Vec<_> = links
            .iter()
            .map(|l| {
                let (t, l) = (t.clone(), *l);
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        t.record(&p, &l);
                    }
                })
            })
            .collect();
        while !writers.iter().all(|w| w.is_finished()) {
            if let Some(l) = t.lookup(&p) {
                assert!(links.contains(&l), "{l:?}");
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(t.lookup(&p).is_some_and(|l| links.contains(&l)));
    }

    /// A reply parses back as the datagram it answers, reversed: MACs,
    /// addresses, ports, VLAN; the IPv4 header checksum and the UDP
    /// checksum (IPv4 and IPv6) verify.
    #[test]
    fn replies_are_the_requests_reversed_with_valid_checksums() {
        let v6ip = |last: u8| {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[15] = last;
            a
        };
        for (peer, vlan) in [
            (Peer::v4([10, 7, 0, 2], 40000), None),
            (Peer::v4([10, 7, 0, 2], 40000), Some(42)),
            (Peer::v6(v6ip(2), 40000, 0), None),
            (Peer::v6(v6ip(2), 40000, 0), Some(3)),
        ] {
            let mut l = link(vlan);
            if peer.ip_bytes().len() == 16 {
                l.local_ip = v6ip(1);
            }
            for payload in [&b"ok"[..], &[0x5a; 1400][..]] {
                let mut out = [0xeeu8; 1600];
                let n = build_reply(&l, &peer, payload, &mut out).unwrap();
                assert_eq!(n, reply_len(&l, &peer, payload.len()));
                assert!(n >= ETH_MIN);
                let frame = &out[..n];
                // The request's view of it, turned around: the node's port.
                let p = SlicedPacket::from_ethernet(frame).unwrap();
                let Some(etherparse::LinkSlice::Ethernet2(e)) = &p.link else { panic!() };
                assert_eq!((e.source(), e.destination()), (l.local_mac, l.peer_mac));
                let got_vlan = match p.link_exts.first() {
                    Some(etherparse::LinkExtSlice::Vlan(v)) => Some(v.vlan_identifier().value()),
                    _ => None,
                };
                assert_eq!(got_vlan, vlan);
                let Some(TransportSlice::Udp(u)) = &p.transport else { panic!() };
                assert_eq!((u.source_port(), u.destination_port(), u.payload()), (7100, 40000, payload));
                match &p.net {
                    Some(NetSlice::Ipv4(v4)) => {
                        let h = v4.header().to_header();
                        assert_eq!((h.source, h.destination), ([10, 7, 0, 1], [10, 7, 0, 2]));
                        assert_eq!(h.header_checksum, h.calc_header_checksum());
                        let c = u.to_header().calc_checksum_ipv4(&h, payload).unwrap();
                        assert_eq!(u.checksum(), c);
                    }
                    Some(NetSlice::Ipv6(v6)) => {
                        let h = v6.header().to_header();
                        assert_eq!((h.source, h.destination), (v6ip(1), v6ip(2)));
                        let c = u.to_header().calc_checksum_ipv6(&h, payload).unwrap();
                        assert_ne!(u.checksum(), 0);
                        assert_eq!(u.checksum(), c);
                    }
                    _ => panic!("not IP"),
                }
                // Padding is zeros, not what the buffer held.
                let ip = if peer.ip_bytes().len() == 4 { 20 } else { 40 };
                assert!(frame[14 + 4 * usize::from(vlan.is_some()) + ip + 8 + payload.len()..].iter().all(|b| *b == 0));
                // And the node's own parser reads the peer and link back
                // from the frame with its ends swapped.
                let back = udp_datagram(frame, 40000).unwrap();
                let mut local = [0u8; 16];
                local[..peer.ip_bytes().len()].copy_from_slice(peer.ip_bytes());
                assert_eq!(back.payload, payload);
                assert_eq!(back.link.local_ip, local);
                assert_eq!((back.link.peer_mac, back.link.local_mac), (l.local_mac, l.peer_mac));
            }
        }
        assert_eq!(build_reply(&link(None), &Peer::v4([1, 2, 3, 4], 5), &[0; 100], &mut [0; 100]), None);
        assert_eq!(build_reply(&link(None), &Peer::NONE, b"x", &mut [0; 100]), None);
    }

    #[test]
    fn a_datagram_reports_its_peer_and_link() {
        let p = crate::testkit::udp6_vlan_packet(7100, b"att");
        let d = udp_datagram(&p, 7100).unwrap();
        assert_eq!(d.peer.socket_addr(), Some("[::1]:40000".parse().unwrap()));
        assert_eq!(d.link.vlan, Some(42));
        assert_eq!((d.link.peer_mac, d.link.local_mac), ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]));
        assert_eq!(d.link.local_port, 7100);
        let p = crate::testkit::udp4_packet(7100, b"att");
        let d = udp_datagram(&p, 7100).unwrap();
        assert_eq!(d.peer, Peer::v4([127, 0, 0, 1], 40000));
        assert_eq!(&d.link.local_ip[..4], &[127, 0, 0, 2]);
        assert_eq!(d.link.vlan, None);
    }

    proptest! {
        /// Hostile frames: parsing never panics, and whatever parses can be
        /// recorded, looked up and answered.
        #[test]
        fn hostile_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), flip in 0usize..90) {
            let mut frame = crate::testkit::udp4_packet(7100, &bytes);
            if let Some(b) = frame.get_mut(flip) {
                *b ^= 0x41;
            }
            let t = Neighbours::new(2);
            for f in [&bytes[..], &frame[..]] {
                if let Ok(d) = udp_datagram(f, 7100) {
                    t.record(&d.peer, &d.link);
                    let l = t.lookup(&d.peer).unwrap();
                    let mut out = [0u8; 2048];
                    let _ = build_reply(&l, &d.peer, d.payload, &mut out);
                }
            }
        }
    }
}
