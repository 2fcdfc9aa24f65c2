//! Receive from a loopback socket: the io_uring backend against recvmmsg
//! on the same prefilled datagrams. A measurement sends [`PREFILL`]
//! datagrams to a queue's socket (untimed), then times draining them.
//! `attnet-bench`'s `receive` section reports it; `backend = "auto"`
//! runs a short one at start ([`compare`]) and keeps the faster backend.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::backend::{RxQueue, UdpConfig};

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
        let _ = q.rx_burst_peers(&mut |bufs: &mut [&mut [u8]], _peers: &[crate::backend::Peer]| got += bufs.len());
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
    use crate::backend::uring::{RecvMode, UringQueue};
    let cfg = UdpConfig { listen: "127.0.0.1:0".parse().expect("address"), queues: 1, rcvbuf: 4 << 20 };
    let mut u = UringQueue::open(&cfg, 4096).map_err(|e| format!("io_uring: {e}"))?;
    let u = u.remove(0);
    let ua = u.local_addr();
    let mut r = crate::backend::recvmmsg::RecvmmsgQueue::open(&cfg).map_err(|e| format!("recvmmsg: {e}"))?;
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

/// What a start-up probe measured: the median time to drain [`PREFILL`]
/// datagrams with io_uring (in the mode the node will use) and with
/// recvmmsg, rounds alternating.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub uring: Duration,
    pub recvmmsg: Duration,
    pub rounds: usize,
}

impl Probe {
    /// io_uring's drain rate over recvmmsg's (above 1: io_uring is faster).
    pub fn uring_ratio(&self) -> f64 {
        self.recvmmsg.as_secs_f64() / self.uring.as_secs_f64().max(1e-9)
    }
}

/// Drains [`PREFILL`] loopback datagrams `rounds` times with each backend,
/// alternating (io_uring in its address mode when `addresses`, as the
/// node runs it with receipts on); the medians. An error if either
/// backend cannot open or loses datagrams.
pub fn compare(addresses: bool, rounds: usize) -> Result<Probe, String> {
    let mut ts = targets()?;
    let uring_at = if addresses { 2 } else { 0 };
    let sender = Sender::new()?;
    let (mut u, mut r) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for _ in 0..rounds.max(1) {
        let t = ts.get_mut(uring_at).ok_or("io_uring target missing")?;
        u.push(sender.prefill_and_drain(t)?);
        let t = ts.get_mut(1).ok_or("recvmmsg target missing")?;
        r.push(sender.prefill_and_drain(t)?);
    }
    u.sort_unstable();
    r.sort_unstable();
    let median = |v: &[Duration]| v.get(v.len() / 2).copied().unwrap_or_default();
    Ok(Probe { uring: median(&u), recvmmsg: median(&r), rounds: rounds.max(1) })
}

#[cfg(test)]
mod tests {
    /// The probe drains real loopback datagrams with both backends and
    /// reports positive times (which one wins depends on the machine).
    #[test]
    fn the_probe_times_both_backends() {
        let p = super::compare(false, 5).unwrap();
        assert_eq!(p.rounds, 5);
        assert!(p.uring > std::time::Duration::ZERO && p.recvmmsg > std::time::Duration::ZERO, "{p:?}");
        assert!(p.uring_ratio().is_finite() && p.uring_ratio() > 0.0, "{p:?}");
        let a = super::compare(true, 3).unwrap();
        assert!(a.uring > std::time::Duration::ZERO, "{a:?}");
    }
}
