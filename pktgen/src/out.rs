//! Outputs: UDP sockets (sendmmsg, one connected socket per sending
//! thread, replays from a second socket) and pcap files (Ethernet/IPv4 or
//! IPv6/UDP, optional 802.1Q, nanosecond timestamps following the rate).

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};

use crate::drive::Sink;
use crate::encap::Encap;
use crate::receipts::Tracker;
use crate::sendmmsg::send_batch;
use crate::traffic::Datagram;

/// One sending thread's sockets.
pub struct UdpSink {
    sock: UdpSocket,
    replay: UdpSocket,
}

impl UdpSink {
    pub fn connect(dest: SocketAddr) -> io::Result<UdpSink> {
        let bind: SocketAddr = if dest.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().map_err(io::Error::other)?;
        let sock = UdpSocket::bind(bind)?;
        sock.connect(dest)?;
        // Replays leave from another source port, so with SO_REUSEPORT or
        // RSS they may land on another core than the original, and the
        // receiver must still accept each counter once.
        let replay = UdpSocket::bind(bind)?;
        replay.connect(dest)?;
        Ok(UdpSink { sock, replay })
    }

    /// A thread that hands every datagram arriving on this sink's sockets
    /// (the node's receipts) to `tracker` until `stop`.
    pub fn receiver(&self, tracker: Arc<Tracker>, stop: Arc<AtomicBool>) -> io::Result<std::thread::JoinHandle<()>> {
        let socks = [self.sock.try_clone()?, self.replay.try_clone()?];
        for s in &socks {
            s.set_read_timeout(Some(Duration::from_millis(20)))?;
        }
        std::thread::Builder::new().name("pktgen-receipts".into()).spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                for s in &socks {
                    // Drain what is there, a bounded number at a time so a
                    // flood cannot keep the thread from seeing `stop`; the
                    // read timeout paces the idle loop.
                    for _ in 0..256 {
                        match s.recv(&mut buf) {
                            Ok(n) => tracker.on_datagram(&mut buf[..n]),
                            Err(_) => break,
                        }
                    }
                }
            }
        })
    }
}

fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
}

impl Sink for UdpSink {
    fn realtime(&self) -> bool {
        true
    }

    fn send(&mut self, batch: &[Vec<u8>], info: &[Datagram], _due: &[u64]) -> io::Result<usize> {
        let mut refs: [&[u8]; 64] = [&[]; 64];
        let mut from = 0;
        while from < batch.len() {
            if info[from].is_replay() {
                match self.replay.send(&batch[from]) {
                    Err(e) if refused(&e) => return Ok(from),
                    r => r?,
                };
                from += 1;
                continue;
            }
            let mut to = from;
            while to < batch.len() && !info[to].is_replay() && to - from < refs.len() {
                refs[to - from] = &batch[to];
                to += 1;
            }
            let mut off = 0;
            while off < to - from {
                match send_batch(&self.sock, &refs[off..to - from]) {
                    Ok(k) => off += k,
                    Err(e) if refused(&e) => return Ok(from + off),
                    // The socket buffer is full: let the kernel drain it.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) => {
                        std::thread::yield_now()
                    }
                    Err(e) => return Err(e),
                }
            }
            from = to;
        }
        Ok(batch.len())
    }
}

/// A pcap file of whole Ethernet frames, timestamped at the schedule.
pub struct PcapSink {
    w: Option<PcapWriter<BufWriter<File>>>,
    encap: Encap,
    t0: Duration,
    pkt: Vec<u8>,
}

impl PcapSink {
    pub fn create(path: &std::path::Path, encap: Encap) -> io::Result<PcapSink> {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            snaplen: 65535,
            ..PcapHeader::default()
        };
        let f = BufWriter::with_capacity(1 << 20, File::create(path)?);
        let w = PcapWriter::with_header(f, header).map_err(io::Error::other)?;
        let t0 = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        Ok(PcapSink { w: Some(w), encap, t0, pkt: Vec::with_capacity(2048) })
    }
}

impl Sink for PcapSink {
    fn realtime(&self) -> bool {
        false
    }

    fn send(&mut self, batch: &[Vec<u8>], info: &[Datagram], due: &[u64]) -> io::Result<usize> {
        let w = self.w.as_mut().ok_or_else(|| io::Error::other("pcap output already finished"))?;
        for ((d, i), t) in batch.iter().zip(info).zip(due) {
            self.encap.write(i.session, d, &mut self.pkt).map_err(io::Error::other)?;
            let ts = self.t0 + Duration::from_nanos(*t);
            w.write_packet(&PcapPacket::new(ts, self.pkt.len() as u32, &self.pkt)).map_err(io::Error::other)?;
        }
        Ok(batch.len())
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.w.take() {
            Some(w) => io::Write::flush(&mut w.into_writer()),
            None => Ok(()),
        }
    }
}
