//! Offline replay: the ATT datagrams of a pcap or pcapng capture, handed
//! over in bursts like a socket backend's, with every other packet counted
//! by the reason it is not ATT (`att-wire.md`, Transport: Ethernet II, one
//! optional 802.1Q tag, IPv4 or IPv6, UDP; fragments dropped and counted).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::{LinkExtSlice, LinkSlice, NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, PcapError};

use super::{BurstFn, NotAtt, Peer, QueueStats, RxQueue, BUF_SIZE, MAX_BURST, NO_PEERS};

/// The UDP payload of an Ethernet frame to `port`, or why there is none.
pub fn udp_payload(eth: &[u8], port: u16) -> Result<&[u8], NotAtt> {
    udp_datagram(eth, port).map(|d| d.payload)
}

/// A UDP datagram to the ATT port with the addresses a reply needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub payload: &'a [u8],
    /// Source IP address and port.
    pub peer: Peer,
    /// The rest of the addressing: MACs, VLAN, our IP address and port.
    pub link: Link,
}

/// What a reply to a datagram needs besides its source address ([`Peer`]):
/// the Ethernet addresses of both ends, the VLAN it came on, and the local
/// IP address and port it was sent to (the reply's source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// The sender's MAC (the reply's destination).
    pub peer_mac: [u8; 6],
    /// The MAC the datagram was sent to (the reply's source).
    pub local_mac: [u8; 6],
    /// The destination address: IPv4 in the first four bytes (the family
    /// is the peer's), or IPv6.
    pub local_ip: [u8; 16],
    pub local_port: u16,
    /// The 802.1Q VLAN id, if the datagram was tagged.
    pub vlan: Option<u16>,
}

/// Parses an Ethernet II frame (one optional 802.1Q tag), IPv4 or IPv6,
/// UDP to `port`: the payload and both ends' addresses, or why it is not
/// an ATT datagram. Never panics, whatever the bytes.
pub fn udp_datagram(eth: &[u8], port: u16) -> Result<Datagram<'_>, NotAtt> {
    ethertype_is_ip(eth)?;
    let p = SlicedPacket::from_ethernet(eth).map_err(|_| NotAtt::Malformed)?;
    let mut link = Link::default();
    if let Some(LinkSlice::Ethernet2(e)) = &p.link {
        link.peer_mac = e.source();
        link.local_mac = e.destination();
    }
    if let Some(LinkExtSlice::Vlan(v)) = p.link_exts.first() {
        link.vlan = Some(v.vlan_identifier().value());
    }
    let from = match &p.net {
        Some(NetSlice::Ipv4(v4)) if v4.is_payload_fragmented() => return Err(NotAtt::IpFragment),
        Some(NetSlice::Ipv6(v6)) if v6.is_payload_fragmented() => return Err(NotAtt::IpFragment),
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let (dst, src) = (h.destination(), h.source());
            if let Some(l) = link.local_ip.get_mut(..4) {
                l.copy_from_slice(&dst);
            }
            Ok(src)
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            link.local_ip = h.destination();
            Err(h.source())
        }
        _ => return Err(NotAtt::NotIp),
    };
    match p.transport {
        Some(TransportSlice::Udp(u)) if u.destination_port() == port => {
            link.local_port = port;
            let peer = match from {
                Ok(v4) => Peer::v4(v4, u.source_port()),
                Err(v6) => Peer::v6(v6, u.source_port(), 0),
            };
            Ok(Datagram { payload: u.payload(), peer, link })
        }
        Some(TransportSlice::Udp(_)) => Err(NotAtt::WrongPort),
        _ => Err(NotAtt::NotUdp),
    }
}

/// The cheap test first: the ethertype (after at most one 802.1Q tag, as
/// the spec allows) must be IPv4 or IPv6 before etherparse slices the
/// whole packet. On a port full of other traffic this is most of the
/// per-packet cost (benchmarked against `dpdk-testpmd` in
/// `bench/src/bin/dpdk_vs_testpmd.rs`).
#[inline]
fn ethertype_is_ip(eth: &[u8]) -> Result<(), NotAtt> {
    use etherparse::EtherType;
    let at = |i: usize| eth.get(i..i + 2).map(|b| EtherType(u16::from_be_bytes([b[0], b[1]])));
    let mut et = at(12).ok_or(NotAtt::Malformed)?;
    if et == EtherType::VLAN_TAGGED_FRAME {
        et = at(16).ok_or(NotAtt::Malformed)?;
    }
    if et == EtherType::IPV4 || et == EtherType::IPV6 {
        Ok(())
    } else {
        Err(NotAtt::NotIp)
    }
}

/// Packets (and pcapng blocks) read per `rx_burst` at most, so that a long
/// run of non-ATT packets does not stall the caller.
const MAX_READ: usize = 16 * MAX_BURST;

/// An open capture, read packet by packet (pcap-file keeps an 8 MB window,
/// never the whole file).
enum Source {
    Pcap {
        r: PcapReader<File>,
        ethernet: bool,
    },
    /// Link types of the current section's interfaces, in order.
    PcapNg {
        r: PcapNgReader<File>,
        links: Vec<DataLink>,
    },
}

fn pcap_error(path: &Path, packet: Option<u64>, e: PcapError) -> io::Error {
    let at = packet.map(|n| format!(" packet {n}:")).unwrap_or_default();
    match e {
        PcapError::IoError(io) => io::Error::new(io.kind(), format!("pcap {}:{at} read error: {io}", path.display())),
        e => io::Error::new(io::ErrorKind::InvalidData, format!("pcap {}:{at} {e}", path.display())),
    }
}

impl Source {
    fn open(path: &Path) -> io::Result<Source> {
        let name = path.display();
        let mut f = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("pcap {name}: {e}")))?;
        let mut magic = [0u8; 4];
        f.read_exact(&mut magic)
            .map_err(|e| io::Error::new(e.kind(), format!("pcap {name}: cannot read the magic number: {e}")))?;
        f.seek(SeekFrom::Start(0)).map_err(|e| io::Error::new(e.kind(), format!("pcap {name}: {e}")))?;
        match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => {
                let r = PcapNgReader::new(f).map_err(|e| pcap_error(path, None, e))?;
                Ok(Source::PcapNg { r, links: Vec::new() })
            }
            // Microsecond and nanosecond pcap, either byte order.
            [0xa1, 0xb2, 0xc3, 0xd4]
            | [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x4d, 0x3c, 0xb2, 0xa1] => {
                let r = PcapReader::new(f).map_err(|e| pcap_error(path, None, e))?;
                let ethernet = r.header().datalink == DataLink::ETHERNET;
                Ok(Source::Pcap { r, ethernet })
            }
            m => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("pcap {name}: not a pcap or pcapng file (magic {:08x})", u32::from_be_bytes(m)),
            )),
        }
    }
}

/// Where one burst's datagrams go: MAX_BURST buffers of BUF_SIZE bytes,
/// allocated once.
struct Slots {
    buf: Box<[u8]>,
    lens: [usize; MAX_BURST],
    n: usize,
}

/// Which of `of` queues a datagram belongs to, as a NIC's RSS would spread
/// them: a hash (FNV-1a) of both ends' addresses and ports, so that one
/// flow (one client socket) always lands on the same queue.
pub fn flow_queue(d: &Datagram<'_>, of: u32) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let peer_port = d.peer.port().to_be_bytes();
    let local_port = d.link.local_port.to_be_bytes();
    for part in [d.peer.ip_bytes(), &peer_port[..], &d.link.local_ip[..], &local_port[..]] {
        for b in part {
            h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
    }
    h % of.max(1)
}

/// Counts one captured packet that belongs to queue `shard.0` of
/// `shard.1` and, if it is an ATT datagram, copies its payload (cut at
/// BUF_SIZE) into the next slot. Packets that are not ATT datagrams belong
/// to queue 0, so that every packet is counted by exactly one queue.
fn take(slots: &mut Slots, tally: &mut Tally, port: u16, shard: (u32, u32), ethernet: bool, data: &[u8]) {
    let r = if ethernet { udp_datagram(data, port) } else { Err(NotAtt::LinkType) };
    let mine = match &r {
        Ok(d) => flow_queue(d, shard.1) == shard.0,
        Err(_) => shard.0 == 0,
    };
    if !mine {
        return;
    }
    tally.packets += 1;
    match r.map(|d| d.payload) {
        Ok(payload) => {
            let len = payload.len().min(BUF_SIZE);
            let start = slots.n * BUF_SIZE;
            if let (Some(dst), Some(src)) = (slots.buf.get_mut(start..start + len), payload.get(..len)) {
                dst.copy_from_slice(src);
                slots.lens[slots.n] = len;
                slots.n += 1;
            }
        }
        Err(why) => tally.not_att[why as usize] += 1,
    }
}

#[derive(Default)]
struct Tally {
    packets: u64,
    not_att: [u64; NotAtt::COUNT],
}

/// Replays a capture `loops` times as one receive queue (or as one of
/// several, each taking its share of the flows: [`PcapReplay::open_shard`]).
pub struct PcapReplay {
    path: PathBuf,
    port: u16,
    /// This queue's number and the number of queues sharing the capture.
    shard: (u32, u32),
    loops: u32,
    /// Passes completed.
    done: u32,
    src: Option<Source>,
    /// Packets read in the current pass, for error messages.
    in_pass: u64,
    slots: Slots,
    tally: Tally,
    /// A read error held back while the datagrams read before it are
    /// delivered; returned by the next `rx_burst`.
    pending: Option<io::Error>,
}

impl PcapReplay {
    /// Opens `path` (pcap with any of the four magic numbers, or pcapng) to
    /// replay its UDP datagrams to `port` `loops` times. A capture that
    /// cannot be opened or is neither format is an error naming the file.
    pub fn open(path: &Path, port: u16, loops: u32) -> io::Result<PcapReplay> {
        PcapReplay::open_shard(path, port, loops, 0, 1)
    }

    /// Queue `index` of `of` over the same capture: each reads the whole
    /// file and keeps the datagrams [`flow_queue`] gives it (queue 0 also
    /// counts the packets that are not ATT datagrams), so `of` queues
    /// together deliver every datagram once, each flow in its order.
    pub fn open_shard(path: &Path, port: u16, loops: u32, index: u32, of: u32) -> io::Result<PcapReplay> {
        let src = Source::open(path)?;
        Ok(PcapReplay {
            path: path.to_path_buf(),
            port,
            shard: (index, of.max(1)),
            loops,
            done: 0,
            src: (loops > 0).then_some(src),
            in_pass: 0,
            slots: Slots { buf: vec![0u8; MAX_BURST * BUF_SIZE].into_boxed_slice(), lens: [0; MAX_BURST], n: 0 },
            tally: Tally::default(),
            pending: None,
        })
    }

    /// Reads one packet (or pcapng block) into the slots. Ok(false) at the
    /// end of the file.
    fn step(&mut self) -> io::Result<bool> {
        let Some(src) = self.src.as_mut() else { return Ok(false) };
        let (slots, tally, port, shard) = (&mut self.slots, &mut self.tally, self.port, self.shard);
        let packet_no = self.in_pass + 1;
        match src {
            Source::Pcap { r, ethernet } => match r.next_packet() {
                None => return Ok(false),
                Some(Err(e)) => return Err(pcap_error(&self.path, Some(packet_no), e)),
                Some(Ok(p)) => {
                    take(slots, tally, port, shard, *ethernet, &p.data);
                    self.in_pass += 1;
                }
            },
            Source::PcapNg { r, links } => {
                let block = match r.next_block() {
                    None => return Ok(false),
                    Some(Err(e)) => return Err(pcap_error(&self.path, Some(packet_no), e)),
                    Some(Ok(b)) => b,
                };
                let eth = |i: u32| links.get(i as usize) == Some(&DataLink::ETHERNET);
                let packet = match &block {
                    Block::SectionHeader(_) => {
                        links.clear();
                        None
                    }
                    Block::InterfaceDescription(d) => {
                        links.push(d.linktype);
                        None
                    }
                    Block::EnhancedPacket(p) => Some((eth(p.interface_id), &p.data)),
                    Block::SimplePacket(p) => Some((eth(0), &p.data)),
                    Block::Packet(p) => Some((eth(u32::from(p.interface_id)), &p.data)),
                    _ => None,
                };
                if let Some((ethernet, data)) = packet {
                    take(slots, tally, port, shard, ethernet, data);
                    self.in_pass += 1;
                }
            }
        }
        Ok(true)
    }
}

impl RxQueue for PcapReplay {
    /// A read error ends the replay: it is returned (after the datagrams
    /// read before it have been handed over), naming the file and the packet
    /// number within the pass, and then `finished()` is true. Source
    /// addresses are not reported (the node sends no receipts for a replay).
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        self.slots.n = 0;
        let mut read = 0;
        while self.src.is_some() && self.slots.n < MAX_BURST && read < MAX_READ {
            match self.step() {
                Ok(true) => read += 1,
                Ok(false) => {
                    self.done += 1;
                    self.in_pass = 0;
                    self.src = None;
                    if self.done < self.loops {
                        self.src = Some(Source::open(&self.path)?);
                    }
                }
                Err(e) => {
                    self.src = None;
                    self.done = self.loops;
                    if self.slots.n == 0 {
                        return Err(e);
                    }
                    self.pending = Some(e);
                }
            }
        }
        let n = self.slots.n;
        if n > 0 {
            let mut slices: [&mut [u8]; MAX_BURST] = std::array::from_fn(|_| Default::default());
            for ((s, chunk), &len) in
                slices.iter_mut().zip(self.slots.buf.chunks_exact_mut(BUF_SIZE)).zip(&self.slots.lens[..n])
            {
                *s = &mut chunk[..len];
            }
            f(&mut slices[..n], &NO_PEERS[..n]);
        }
        Ok(n)
    }

    /// A file is always ready.
    fn wait(&mut self, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            packets: self.packets(),
            not_att: self.not_att(),
            finished: self.finished(),
            ..QueueStats::default()
        }
    }
}

// Counters and handles of this queue; [`RxQueue::stats`] gathers the counters.
impl PcapReplay {
    pub fn name(&self) -> &'static str {
        "pcap"
    }

    pub fn not_att(&self) -> [u64; NotAtt::COUNT] {
        self.tally.not_att
    }

    pub fn packets(&self) -> u64 {
        self.tally.packets
    }

    pub fn finished(&self) -> bool {
        self.src.is_none() && self.pending.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::path::PathBuf;
    use std::time::Duration;

    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use pcap_file::{DataLink, Endianness, TsResolution};

    use super::*;

    const PORT: u16 = 7100;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("attnet-backend-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    use crate::testkit::{self, udp4_packet as udp4, udp6_vlan_packet as udp6_vlan};

    fn big_payload() -> Vec<u8> {
        (0..BUF_SIZE + 700).map(|i| (i * 7) as u8).collect()
    }

    /// The capture's packets; ATT payloads in order; not_att by reason.
    fn traffic() -> (Vec<Vec<u8>>, Vec<Vec<u8>>, [u64; NotAtt::COUNT]) {
        let tcp = testkit::tcp4_packet(PORT, b"not udp");
        let arp = testkit::arp_packet(etherparse::ArpOperation::REQUEST, [127, 0, 0, 2]);
        let frag = testkit::udp4_fragment(PORT, b"first fragment");
        let big = big_payload();
        let pkts = vec![
            udp4(PORT, b"v4 datagram"),
            udp6_vlan(PORT, b"v6 datagram behind a VLAN tag"),
            udp4(53, b"dns"),
            tcp,
            arp,
            frag,
            vec![1, 2, 3, 4, 5],
            udp4(PORT, &big),
        ];
        let att = vec![b"v4 datagram".to_vec(), b"v6 datagram behind a VLAN tag".to_vec(), big[..BUF_SIZE].to_vec()];
        let mut not_att = [0; NotAtt::COUNT];
        for w in [NotAtt::Malformed, NotAtt::NotIp, NotAtt::IpFragment, NotAtt::NotUdp, NotAtt::WrongPort] {
            not_att[w as usize] = 1;
        }
        (pkts, att, not_att)
    }

    fn write_pcap(path: &Path, pkts: &[Vec<u8>], endianness: Endianness, ts: TsResolution) {
        let h = PcapHeader { endianness, ts_resolution: ts, ..PcapHeader::default() };
        let mut w = PcapWriter::with_header(File::create(path).unwrap(), h).unwrap();
        for (i, p) in pkts.iter().enumerate() {
            w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64), p.len() as u32, p)).unwrap();
        }
    }

    /// Interface 0 Ethernet, interface 1 raw IP: the last packet, on
    /// interface 1, counts as `link_type`.
    fn write_pcapng(path: &Path, pkts: &[Vec<u8>]) {
        let mut w = PcapNgWriter::new(File::create(path).unwrap()).unwrap();
        for linktype in [DataLink::ETHERNET, DataLink::RAW] {
            w.write_pcapng_block(InterfaceDescriptionBlock { linktype, snaplen: 65535, options: vec![] }).unwrap();
        }
        let raw = pkts[0][14..].to_vec();
        for (i, p) in pkts.iter().chain(std::iter::once(&raw)).enumerate() {
            w.write_pcapng_block(EnhancedPacketBlock {
                interface_id: u32::from(i == pkts.len()),
                timestamp: Duration::from_millis(i as u64),
                original_len: p.len() as u32,
                data: Cow::Borrowed(p),
                options: vec![],
            })
            .unwrap();
        }
    }

    /// Replays to the end; returns the payloads in order and the bursts.
    fn replay(q: &mut PcapReplay) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for _ in 0..1000 {
            if q.finished() {
                break;
            }
            let n = q.rx_burst(&mut |b: &mut [&mut [u8]]| got.extend(b.iter().map(|d| d.to_vec()))).unwrap();
            assert!(n <= MAX_BURST);
        }
        assert!(q.finished());
        assert_eq!(q.rx_burst(&mut |_: &mut [&mut [u8]]| panic!("finished")).unwrap(), 0);
        got
    }

    fn check(path: &Path, extra_link_type: u64) {
        let (pkts, att, mut not_att) = traffic();
        not_att[NotAtt::LinkType as usize] = extra_link_type;
        let total = pkts.len() as u64 + extra_link_type;
        for loops in [1u32, 2] {
            let mut q = PcapReplay::open(path, PORT, loops).unwrap();
            assert_eq!(q.name(), "pcap");
            assert!(!q.finished());
            q.wait(Duration::from_secs(10)).unwrap();
            let got = replay(&mut q);
            let want: Vec<Vec<u8>> = (0..loops).flat_map(|_| att.iter().cloned()).collect();
            assert_eq!(got, want, "{} loops={loops}", path.display());
            assert_eq!(q.packets(), total * u64::from(loops));
            assert_eq!(q.not_att(), not_att.map(|c| c * u64::from(loops)));
            // Counters add up: every packet is ATT or has one reason.
            assert_eq!(q.packets(), got.len() as u64 + q.not_att().iter().sum::<u64>());
        }
        let mut q = PcapReplay::open(path, PORT, 0).unwrap();
        assert!(q.finished());
        assert!(replay(&mut q).is_empty());
    }

    /// Queues over one capture deliver every datagram exactly once, each
    /// flow whole and in order on one queue, and count every packet once.
    #[test]
    fn shards_split_the_flows_and_count_every_packet_once() {
        let (mut pkts, att, not_att) = traffic();
        // 64 flows (client ports), 5 datagrams each, interleaved.
        let mut flows: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 64];
        for i in 0..5u8 {
            for (f, flow) in flows.iter_mut().enumerate() {
                let payload = vec![f as u8, i];
                let mut v = Vec::new();
                let b = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                    .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
                    .udp(30_000 + f as u16, PORT);
                b.write(&mut v, &payload).unwrap();
                pkts.push(v);
                flow.push(payload);
            }
        }
        let path = tmp("shards.pcap");
        write_pcap(&path, &pkts, Endianness::Little, TsResolution::MicroSecond);
        let mut one = PcapReplay::open(&path, PORT, 1).unwrap();
        let all = replay(&mut one);
        assert_eq!(all.len(), att.len() + 64 * 5);
        for of in [1u32, 2, 3] {
            let mut got: Vec<Vec<Vec<u8>>> = Vec::new();
            let (mut packets, mut reasons) = (0, [0u64; NotAtt::COUNT]);
            for index in 0..of {
                let mut q = PcapReplay::open_shard(&path, PORT, 1, index, of).unwrap();
                got.push(replay(&mut q));
                packets += q.packets();
                for (r, n) in reasons.iter_mut().zip(q.not_att()) {
                    *r += n;
                }
            }
            assert_eq!(packets, pkts.len() as u64, "{of} queues");
            assert_eq!(reasons, not_att, "{of} queues");
            let mut merged: Vec<Vec<u8>> = got.iter().flatten().cloned().collect();
            let mut want = all.clone();
            merged.sort();
            want.sort();
            assert_eq!(merged, want, "every datagram once over {of} queues");
            for flow in &flows {
                let holders: Vec<&Vec<Vec<u8>>> = got.iter().filter(|q| q.contains(&flow[0])).collect();
                assert_eq!(holders.len(), 1, "one flow, one queue");
                let order: Vec<&Vec<u8>> = holders[0].iter().filter(|d| d.len() == 2 && d[0] == flow[0][0]).collect();
                assert_eq!(order, flow.iter().collect::<Vec<_>>(), "a flow keeps its order");
            }
            if of > 1 {
                assert!(
                    got.iter().all(|q| q.len() > 64),
                    "flows spread: {:?}",
                    got.iter().map(Vec::len).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn pcap_all_magics_replay() {
        let (pkts, _, _) = traffic();
        for (i, (e, ts)) in [
            (Endianness::Little, TsResolution::MicroSecond),
            (Endianness::Big, TsResolution::MicroSecond),
            (Endianness::Little, TsResolution::NanoSecond),
            (Endianness::Big, TsResolution::NanoSecond),
        ]
        .into_iter()
        .enumerate()
        {
            let p = tmp(&format!("t{i}.pcap"));
            write_pcap(&p, &pkts, e, ts);
            check(&p, 0);
        }
    }

    #[test]
    fn pcapng_replay_tracks_link_types() {
        let (pkts, _, _) = traffic();
        let p = tmp("t.pcapng");
        write_pcapng(&p, &pkts);
        check(&p, 1);
    }

    #[test]
    fn many_packets_fill_bursts() {
        let pkts: Vec<Vec<u8>> = (0..300u32).map(|i| udp4(PORT, &i.to_le_bytes())).collect();
        let p = tmp("many.pcap");
        write_pcap(&p, &pkts, Endianness::Little, TsResolution::MicroSecond);
        let mut q = PcapReplay::open(&p, PORT, 3).unwrap();
        let mut sizes = Vec::new();
        let mut seqs = Vec::new();
        while !q.finished() {
            let n = q
                .rx_burst(&mut |b: &mut [&mut [u8]]| {
                    seqs.extend(b.iter().map(|d| u32::from_le_bytes((&d[..]).try_into().unwrap())))
                })
                .unwrap();
            sizes.push(n);
        }
        assert_eq!(seqs, (0..3).flat_map(|_| 0..300u32).collect::<Vec<_>>());
        assert!(sizes.iter().filter(|&&n| n == MAX_BURST).count() >= 900 / MAX_BURST - 1, "{sizes:?}");
        assert_eq!(q.packets(), 900);
    }

    #[test]
    fn read_error_names_the_packet() {
        let (pkts, _, _) = traffic();
        let p = tmp("cut.pcap");
        write_pcap(&p, &pkts, Endianness::Little, TsResolution::MicroSecond);
        let len = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 10).unwrap();
        let mut q = PcapReplay::open(&p, PORT, 2).unwrap();
        // The datagrams before the damaged last packet are delivered first.
        let mut got = 0;
        assert_eq!(q.rx_burst(&mut |b: &mut [&mut [u8]]| got += b.len()).unwrap(), 2);
        assert_eq!(got, 2);
        assert!(!q.finished());
        let msg = q.rx_burst(&mut |_: &mut [&mut [u8]]| panic!("nothing left")).unwrap_err().to_string();
        assert!(msg.contains("cut.pcap") && msg.contains(&format!("packet {}:", pkts.len())), "{msg}");
        assert!(q.finished());
        assert_eq!(q.packets(), pkts.len() as u64 - 1);
    }

    #[test]
    fn not_a_capture_is_a_clear_error() {
        let p = tmp("x.pcap");
        std::fs::write(&p, b"this is not a capture file").unwrap();
        let msg = PcapReplay::open(&p, PORT, 1).err().unwrap().to_string();
        assert!(msg.contains("x.pcap") && msg.contains("not a pcap"), "{msg}");
        let p = tmp("short.pcap");
        std::fs::write(&p, b"ab").unwrap();
        assert!(PcapReplay::open(&p, PORT, 1).err().unwrap().to_string().contains("short.pcap"));
        let msg = PcapReplay::open(&tmp("missing.pcap"), PORT, 1).err().unwrap().to_string();
        assert!(msg.contains("missing.pcap"), "{msg}");
    }

    #[test]
    fn udp_payload_reasons() {
        let (pkts, _, _) = traffic();
        assert_eq!(udp_payload(&pkts[0], PORT), Ok(&b"v4 datagram"[..]));
        assert_eq!(udp_payload(&pkts[1], PORT), Ok(&b"v6 datagram behind a VLAN tag"[..]));
        assert_eq!(udp_payload(&pkts[2], PORT), Err(NotAtt::WrongPort));
        assert_eq!(udp_payload(&pkts[3], PORT), Err(NotAtt::NotUdp));
        assert_eq!(udp_payload(&pkts[4], PORT), Err(NotAtt::NotIp));
        assert_eq!(udp_payload(&pkts[5], PORT), Err(NotAtt::IpFragment));
        assert_eq!(udp_payload(&pkts[6], PORT), Err(NotAtt::Malformed));
        assert_eq!(udp_payload(&[], PORT), Err(NotAtt::Malformed));
    }
}
