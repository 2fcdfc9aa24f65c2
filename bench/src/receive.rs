//! Receive from a loopback socket: the io_uring backend against recvmmsg
//! on the same prefilled datagrams. A measurement sends [`PREFILL`]
//! datagrams to a queue's socket (untimed), then times draining them.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dataplane::backend::{RxQueue, UdpConfig};

/// Datagrams prefilled per measurement: what the default socket buffer
/// (net.core.rmem_max, 208 KiB) holds without kernel drops.
pub const PREFILL: usize = 128;

/// Payload size of the prefilled datagrams.
pub const PAYLOAD: usize = 256;

/// Receives until `want` datagrams arrived or 2 s passed; returns the count.
pub fn drain(q: &mut dyn RxQueue, want: usize) -> usize {
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while got < want && Instant::now() < deadline {
        // As the data core reads them: with the source addresses where the
        // queue reports them (the node's receipts need them).
        let _ = q.rx_burst_peers(&mut |bufs: &mut [&mut [u8]], _peers: &[dataplane::backend::Peer]| got += bufs.len());
    }
    got
}

/// A receive queue on loopback and its address.
pub struct Target {
    pub name: &'static str,
    pub queue: Box<dyn RxQueue>,
    pub addr: SocketAddr,
}

/// The io_uring queue, the recvmmsg queue and the io_uring queue in its
/// address mode (multishot recvmsg with the source address, what the node
/// uses when it sends receipts), in that order, each on its own loopback
/// socket.
pub fn targets() -> Result<Vec<Target>, String> {
    use dataplane::backend::uring::{RecvMode, UringQueue};
    let cfg = UdpConfig { listen: "127.0.0.1:0".parse().expect("address"), queues: 1, rcvbuf: 4 << 20 };
    let mut u = UringQueue::open(&cfg, 4096).map_err(|e| format!("io_uring: {e}"))?;
    let u = u.remove(0);
    let ua = u.local_addr();
    let mut r = dataplane::backend::recvmmsg::RecvmmsgQueue::open(&cfg).map_err(|e| format!("recvmmsg: {e}"))?;
    let r = r.remove(0);
    let ra = r.local_addr();
    let mut a = UringQueue::open_mode(&cfg, 4096, RecvMode::Addresses).map_err(|e| format!("io_uring: {e}"))?;
    let a = a.remove(0);
    let aa = a.local_addr();
    Ok(vec![
        Target { name: "io_uring", queue: Box::new(u), addr: ua },
        Target { name: "recvmmsg", queue: Box::new(r), addr: ra },
        Target { name: "io_uring_addresses", queue: Box::new(a), addr: aa },
    ])
}

/// The sender of the prefill.
pub struct Sender {
    sock: UdpSocket,
    payload: Vec<u8>,
}

impl Sender {
    pub fn new() -> Result<Sender, String> {
        let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("sender socket: {e}"))?;
        Ok(Sender { sock, payload: vec![0x5a; PAYLOAD] })
    }

    /// Prefills `t` with [`PREFILL`] datagrams (untimed), then returns the
    /// time to drain them; an error if the kernel dropped any.
    pub fn prefill_and_drain(&self, t: &mut Target) -> Result<Duration, String> {
        for _ in 0..PREFILL {
            self.sock.send_to(&self.payload, t.addr).map_err(|e| format!("send: {e}"))?;
        }
        let start = Instant::now();
        let got = drain(t.queue.as_mut(), PREFILL);
        let dt = start.elapsed();
        if got != PREFILL {
            return Err(format!(
                "{}: {got} of {PREFILL} datagrams arrived (kernel_dropped {})",
                t.name,
                t.queue.stats().kernel_dropped
            ));
        }
        Ok(dt)
    }
}
