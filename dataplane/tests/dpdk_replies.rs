//! The DPDK backend's reply path on a `net_pcap` port (no hugepages): the
//! queue reports each datagram's source address, and replies queued on its
//! ring leave on its transmit queue framed back to the MAC and from the
//! address the datagram used, or are counted as `no_route` when the
//! destination never sent anything. Its own test binary: the EAL starts
//! once per process.

use std::time::{Duration, Instant};

use dataplane::backend::dpdk::{self, DpdkConfig};
use dataplane::backend::{Peer, RxQueue, TxReplies};
use dataplane::pipeline::reply_link;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

#[test]
fn replies_go_back_to_the_sender_and_unknown_destinations_are_counted() {
    if ffi::skip_without_dpdk("the DPDK reply test") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("attnet-dpdk-replies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rx, tx) = (dir.join("rx.pcap"), dir.join("tx.pcap"));
    // One datagram from 127.0.0.1:40000 (MAC 02::01) to 127.0.0.2:7100
    // (MAC 02::02), one over IPv6 with a VLAN tag.
    let v4 = dataplane::testkit::udp4_packet(7100, b"hello");
    let v6 = dataplane::testkit::udp6_vlan_packet(7100, b"hello6");
    {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        let mut w = PcapWriter::with_header(std::fs::File::create(&rx).unwrap(), PcapHeader::default()).unwrap();
        for p in [&v4, &v6] {
            w.write_packet(&PcapPacket::new(Duration::ZERO, p.len() as u32, p)).unwrap();
        }
    }
    let cfg = DpdkConfig {
        eal_args: [
            "--no-huge",
            "-m",
            "256",
            "--no-pci",
            "--no-shconf",
            "--iova-mode=va",
            "--log-level=*:error",
            &format!("--file-prefix=attnet-replies-{}", std::process::id()),
            &format!("--vdev=net_pcap0,rx_pcap={},tx_pcap={}", rx.display(), tx.display()),
        ]
        .map(String::from)
        .to_vec(),
        port: "net_pcap0".into(),
        mbufs: 2047,
        rx_desc: 256,
        ..DpdkConfig::default()
    };
    let (mut queues, shared) = dpdk::open(&cfg).unwrap();
    let mut q = queues.pop().unwrap();
    let (mut ring, consumer) = reply_link(8);
    q.attach_replies(consumer);
    let mut peers = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while peers.len() < 2 && Instant::now() < until {
        q.rx_burst_peers(&mut |bufs: &mut [&mut [u8]], p: &[Peer]| {
            assert_eq!(bufs.len(), p.len());
            peers.extend_from_slice(p);
        })
        .unwrap();
    }
    let lo6 = Peer::v6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 40000, 0);
    assert_eq!(peers, vec![Peer::v4([127, 0, 0, 1], 40000), lo6]);
    // Two known destinations and one that never sent anything.
    ring.push(&peers[0], b"welcome").unwrap();
    ring.push(&Peer::v4([127, 0, 0, 9], 40000), b"lost").unwrap();
    ring.push(&lo6, b"answer6").unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while q.stats().tx_replies.taken() < 3 && Instant::now() < until {
        q.rx_burst_peers(&mut |_: &mut [&mut [u8]], _: &[Peer]| {}).unwrap();
    }
    assert_eq!(q.stats().tx_replies, TxReplies { sent: 2, no_route: 1, no_mbuf: 0, tx_full: 0 });
    assert_eq!(ring.queued(), 0);
    // The port closes (and net_pcap flushes its capture) with the last
    // handle.
    drop(q);
    drop(queues);
    drop(shared);
    let frames = dataplane::testkit::read_pcap_frames(&tx).unwrap();
    assert_eq!(frames.len(), 2);
    for (f, (payload, vlan)) in frames.iter().zip([(&b"welcome"[..], None), (&b"answer6"[..], Some(42))]) {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(e)) = &p.link else { panic!("not Ethernet") };
        assert_eq!((e.source(), e.destination()), ([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]));
        let got_vlan = match p.link_exts.first() {
            Some(etherparse::LinkExtSlice::Vlan(v)) => Some(v.vlan_identifier().value()),
            _ => None,
        };
        assert_eq!(got_vlan, vlan);
        let Some(TransportSlice::Udp(u)) = &p.transport else { panic!("not UDP") };
        assert_eq!((u.source_port(), u.destination_port(), u.payload()), (7100, 40000, payload));
        match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header().to_header();
                assert_eq!((h.source, h.destination), ([127, 0, 0, 2], [127, 0, 0, 1]));
                assert_eq!(h.header_checksum, h.calc_header_checksum());
            }
            Some(NetSlice::Ipv6(ip)) => {
                let h = ip.header().to_header();
                assert_eq!(u.checksum(), u.to_header().calc_checksum_ipv6(&h, payload).unwrap());
            }
            _ => panic!("not IP"),
        }
    }
}
