//! `attnet decode --pcap`: replays a capture through the frame path and
//! prints a summary whose counters add up.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use dataplane::{Burst, DropReason, FramePath, TxDrop};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use serde_json::{json, Map, Value};

/// Why a captured packet is not ATT traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAtt {
    /// Capture link type other than Ethernet.
    LinkType,
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
    const ALL: [NotAtt; 6] =
        [NotAtt::LinkType, NotAtt::Malformed, NotAtt::NotIp, NotAtt::IpFragment, NotAtt::NotUdp, NotAtt::WrongPort];
    fn as_str(self) -> &'static str {
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

/// The UDP payload of an Ethernet frame to `port`, or why there is none.
pub fn udp_payload(eth: &[u8], port: u16) -> Result<&[u8], NotAtt> {
    let p = SlicedPacket::from_ethernet(eth).map_err(|_| NotAtt::Malformed)?;
    match &p.net {
        Some(NetSlice::Ipv4(v4)) if v4.is_payload_fragmented() => return Err(NotAtt::IpFragment),
        Some(NetSlice::Ipv6(v6)) if v6.is_payload_fragmented() => return Err(NotAtt::IpFragment),
        Some(NetSlice::Ipv4(_)) | Some(NetSlice::Ipv6(_)) => {}
        _ => return Err(NotAtt::NotIp),
    }
    match p.transport {
        Some(TransportSlice::Udp(u)) if u.destination_port() == port => Ok(u.payload()),
        Some(TransportSlice::Udp(_)) => Err(NotAtt::WrongPort),
        _ => Err(NotAtt::NotUdp),
    }
}

/// Frames the summary from raw captured packets (Ethernet or not).
struct Replay {
    fp: FramePath,
    port: u16,
    burst: Burst,
    pending: Vec<Vec<u8>>,
    used: usize,
    packets: u64,
    not_att: [u64; NotAtt::ALL.len()],
    seen_ids: HashSet<[u8; 32]>,
}

const BURST: usize = 32;

impl Replay {
    fn packet(&mut self, ethernet: bool, data: &[u8]) {
        self.packets += 1;
        let r = if ethernet { udp_payload(data, self.port) } else { Err(NotAtt::LinkType) };
        match r {
            Ok(payload) => {
                let slot = &mut self.pending[self.used];
                slot.clear();
                slot.extend_from_slice(payload);
                self.used += 1;
                if self.used == BURST {
                    self.flush();
                }
            }
            Err(why) => self.not_att[why as usize] += 1,
        }
    }

    fn flush(&mut self) {
        if self.used == 0 {
            return;
        }
        self.fp.process(&mut self.pending[..self.used], &mut self.burst);
        for t in &self.burst.txs {
            if !self.seen_ids.insert(t.id) {
                self.burst.counters.reclassify_duplicate();
            }
        }
        self.used = 0;
    }

    fn summary(&self) -> Value {
        let c = &self.burst.counters;
        let mut not_att = Map::new();
        for w in NotAtt::ALL {
            not_att.insert(w.as_str().into(), json!(self.not_att[w as usize]));
        }
        let mut fd = Map::new();
        for r in DropReason::ALL {
            fd.insert(r.as_str().into(), json!(c.frame_drop(r)));
        }
        let mut td = Map::new();
        for r in TxDrop::ALL {
            td.insert(r.as_str().into(), json!(c.tx_drop(r)));
        }
        json!({
            "packets": {"received": self.packets, "not_att": not_att},
            "frames": {"received": c.frames_received, "accepted": c.frames_accepted, "dropped": fd},
            "txs": {"seen": c.txs_seen, "accepted": c.txs_accepted, "dropped": td},
        })
    }
}

pub fn run(fp: FramePath, file: &Path, port: u16) -> Result<(), String> {
    let name = file.display();
    let mut f = BufReader::new(File::open(file).map_err(|e| format!("pcap {name}: {e}"))?);
    let mut magic = [0u8; 4];
    f.read_exact(&mut magic).map_err(|e| format!("pcap {name}: cannot read the magic number: {e}"))?;
    let f = std::io::Cursor::new(magic).chain(f);
    let mut rp = Replay {
        fp,
        port,
        burst: Burst::default(),
        pending: (0..BURST).map(|_| Vec::with_capacity(2048)).collect(),
        used: 0,
        packets: 0,
        not_att: [0; NotAtt::ALL.len()],
        seen_ids: HashSet::new(),
    };
    match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => {
            let mut r = PcapNgReader::new(f).map_err(|e| format!("pcapng {name}: {e}"))?;
            // Link types of the section's interfaces, in order.
            let mut links: Vec<DataLink> = Vec::new();
            while let Some(block) = r.next_block() {
                let block = block.map_err(|e| format!("pcapng {name}: packet {}: {e}", rp.packets + 1))?;
                let link = |i: u32| links.get(i as usize).copied();
                match &block {
                    Block::SectionHeader(_) => links.clear(),
                    Block::InterfaceDescription(d) => links.push(d.linktype),
                    Block::EnhancedPacket(p) => rp.packet(link(p.interface_id) == Some(DataLink::ETHERNET), &p.data),
                    Block::SimplePacket(p) => rp.packet(link(0) == Some(DataLink::ETHERNET), &p.data),
                    Block::Packet(p) => rp.packet(link(p.interface_id as u32) == Some(DataLink::ETHERNET), &p.data),
                    _ => {}
                }
            }
        }
        _ => {
            let mut r = PcapReader::new(f).map_err(|e| format!("pcap {name}: {e}"))?;
            let eth = r.header().datalink == DataLink::ETHERNET;
            while let Some(p) = r.next_packet() {
                let p = p.map_err(|e| format!("pcap {name}: packet {}: {e}", rp.packets + 1))?;
                rp.packet(eth, &p.data);
            }
        }
    }
    rp.flush();
    println!("{}", serde_json::to_string_pretty(&rp.summary()).map_err(|e| e.to_string())?);
    Ok(())
}
