//! The recvmmsg(2) backend: one non-blocking `SO_REUSEPORT` UDP socket per
//! queue, drained with one `recvmmsg(MSG_DONTWAIT)` per burst into buffers
//! allocated once. The kernel fills each datagram's source address
//! (`msg_name`, a `sockaddr_in6`-sized slot) with the payload, so source
//! addresses cost no extra system call. It is the fallback when io_uring
//! is unavailable. Its sockets are opened by `socket::open_udp_group`, as
//! the io_uring backend's are, so both listen the same way.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

use socket2::Socket;

use super::socket::{context, open_udp_group, DropCounter};
use super::{BurstFn, Peer, QueueStats, RxQueue, UdpConfig, BUF_SIZE, MAX_BURST, NAME_LEN};

/// Control-message room per datagram: one `SO_RXQ_OVFL` cmsg
/// (`CMSG_SPACE(4)` = 24 bytes on 64-bit Linux) and one `IP_PKTINFO` or
/// `IPV6_PKTINFO` cmsg (`CMSG_SPACE(20)` = 40 at most).
pub(crate) const CONTROL_LEN: usize = 64;

/// The data of the first control message of `level` and `kind` in
/// `control` (the bytes of `msg_control` the kernel filled), if any. The
/// layout is the kernel's `struct cmsghdr` (`size_t` length, `int` level,
/// `int` type, data aligned to `size_t`); every range is checked, so
/// malformed input yields `None`, never a panic.
fn find_cmsg(control: &[u8], want_level: i32, want_kind: i32) -> Option<&[u8]> {
    const W: usize = std::mem::size_of::<usize>();
    const HDR: usize = (W + 8).next_multiple_of(W);
    let mut off = 0usize;
    loop {
        let hdr = control.get(off..off.checked_add(HDR)?)?;
        let len = usize::from_ne_bytes(hdr.get(..W)?.try_into().ok()?);
        let level = i32::from_ne_bytes(hdr.get(W..W + 4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(hdr.get(W + 4..W + 8)?.try_into().ok()?);
        if len < HDR {
            return None;
        }
        if level == want_level && kind == want_kind {
            return control.get(off + HDR..off.checked_add(len)?);
        }
        off = off.checked_add(len.checked_next_multiple_of(W)?)?;
    }
}

/// The value of the first `SOL_SOCKET`/`SO_RXQ_OVFL` control message.
pub(crate) fn parse_rxq_ovfl(control: &[u8]) -> Option<u32> {
    let data = find_cmsg(control, libc::SOL_SOCKET, libc::SO_RXQ_OVFL)?;
    Some(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?))
}

/// The local address a datagram was sent to, from its `IP_PKTINFO`
/// (`struct in_pktinfo`: ifindex, spec_dst, addr: the header's destination)
/// or `IPV6_PKTINFO` (`struct in6_pktinfo`: addr, ifindex) control message.
pub(crate) fn parse_pktinfo(control: &[u8]) -> Option<std::net::IpAddr> {
    if let Some(d) = find_cmsg(control, libc::IPPROTO_IP, libc::IP_PKTINFO) {
        let a: [u8; 4] = d.get(8..12)?.try_into().ok()?;
        return Some(std::net::Ipv4Addr::from(a).into());
    }
    let d = find_cmsg(control, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)?;
    let a: [u8; 16] = d.get(..16)?.try_into().ok()?;
    Some(std::net::Ipv6Addr::from(a).into())
}

/// Waits until `fd` is readable or `timeout` passes; EINTR counts as a
/// (spurious) wake-up.
pub(crate) fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<()> {
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: `p` is one valid pollfd that lives across the call.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    Ok(())
}

/// A heap array owned through a raw pointer: its address never changes when
/// the queue moves, and the pointers the kernel gets (iovecs, mmsghdrs) stay
/// valid because nothing ever re-borrows the allocation as a unique `Box`.
struct RawArray<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T> RawArray<T> {
    fn new(v: Vec<T>) -> Self {
        let len = v.len();
        let ptr = NonNull::from(Box::leak(v.into_boxed_slice())).cast::<T>();
        RawArray { ptr, len }
    }

    fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> Drop for RawArray<T> {
    fn drop(&mut self) {
        // SAFETY: ptr and len come from the `Box<[T]>` leaked in `new`, freed only here.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len)) });
    }
}

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// One datagram's source address slot (`sockaddr_in` or `sockaddr_in6`).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Name([u8; NAME_LEN]);

/// One `recvmmsg` receive queue.
pub struct RecvmmsgQueue {
    sock: Socket,
    local: SocketAddr,
    /// MAX_BURST × BUF_SIZE bytes; slot `i` is `bufs[i * BUF_SIZE..][..BUF_SIZE]`.
    bufs: RawArray<u8>,
    /// Slot `i`'s iovec; read by the kernel only.
    _iovs: RawArray<libc::iovec>,
    /// Slot `i`'s control-message buffer.
    ctrl: RawArray<Control>,
    /// Slot `i`'s source address.
    names: RawArray<Name>,
    /// Slot `i`'s mmsghdr, pointing at `_iovs[i]`, `ctrl[i]` and `names[i]`.
    hdrs: RawArray<libc::mmsghdr>,
    drops: DropCounter,
    packets: u64,
}

// SAFETY: the raw pointers of a queue point only into allocations that the
// queue owns exclusively (nothing is shared with other queues or threads), so
// moving the whole queue to another thread moves that ownership with it.
unsafe impl Send for RecvmmsgQueue {}

impl RecvmmsgQueue {
    /// Opens `cfg.queues` sockets in one `SO_REUSEPORT` group on `cfg.listen`.
    pub fn open(cfg: &UdpConfig) -> io::Result<Vec<RecvmmsgQueue>> {
        let (socks, local) = open_udp_group(cfg)?;
        Ok(socks.into_iter().map(|s| RecvmmsgQueue::new(s, local)).collect())
    }

    fn new(sock: Socket, local: SocketAddr) -> RecvmmsgQueue {
        let bufs = RawArray::new(vec![0u8; MAX_BURST * BUF_SIZE]);
        let ctrl = RawArray::new(vec![Control([0; CONTROL_LEN]); MAX_BURST]);
        let names = RawArray::new(vec![Name([0; NAME_LEN]); MAX_BURST]);
        let iovs = RawArray::new(
            (0..MAX_BURST)
                .map(|i| libc::iovec {
                    // SAFETY: i * BUF_SIZE < MAX_BURST * BUF_SIZE, inside `bufs`.
                    iov_base: unsafe { bufs.as_ptr().add(i * BUF_SIZE) }.cast(),
                    iov_len: BUF_SIZE,
                })
                .collect(),
        );
        let hdrs = RawArray::new(
            (0..MAX_BURST)
                .map(|i| {
                    // SAFETY: mmsghdr is plain C data for which all-zero is valid (null pointers, zero lengths).
                    let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                    // SAFETY: i < MAX_BURST, the length of `iovs` and `ctrl`.
                    h.msg_hdr.msg_iov = unsafe { iovs.as_ptr().add(i) };
                    h.msg_hdr.msg_iovlen = 1;
                    // SAFETY: as above.
                    h.msg_hdr.msg_control = unsafe { ctrl.as_ptr().add(i) }.cast();
                    h.msg_hdr.msg_controllen = CONTROL_LEN as _;
                    // SAFETY: as above, `names` has MAX_BURST slots.
                    h.msg_hdr.msg_name = unsafe { names.as_ptr().add(i) }.cast();
                    h.msg_hdr.msg_namelen = NAME_LEN as _;
                    h
                })
                .collect(),
        );
        RecvmmsgQueue { sock, local, bufs, _iovs: iovs, ctrl, names, hdrs, drops: DropCounter::default(), packets: 0 }
    }

    /// The address the socket group is bound to (with the port the kernel
    /// chose if `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl RxQueue for RecvmmsgQueue {
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize> {
        let fd = self.sock.as_raw_fd();
        let n = loop {
            // SAFETY: `hdrs` holds MAX_BURST initialised mmsghdrs, each pointing at its
            // own iovec (BUF_SIZE bytes of `bufs`) and its own CONTROL_LEN-byte control
            // buffer and NAME_LEN-byte name slot; all are owned by `self`, outlive the
            // (synchronous) call, and no Rust reference to them exists during it.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_ptr(),
                    MAX_BURST as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                break (r as usize).min(MAX_BURST);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(0),
                Some(libc::EINTR) => continue,
                _ => return Err(context("recvmmsg", e)),
            }
        };
        if n == 0 {
            return Ok(0);
        }
        let mut slices: [&mut [u8]; MAX_BURST] = std::array::from_fn(|_| Default::default());
        let mut peers = [Peer::NONE; MAX_BURST];
        for (i, (slot, peer)) in slices.iter_mut().zip(peers.iter_mut()).enumerate().take(n) {
            // SAFETY: i < n <= MAX_BURST; the kernel is done with hdrs[i] once recvmmsg
            // returned, and this is the only reference to it.
            let h = unsafe { &mut *self.hdrs.as_ptr().add(i) };
            // A datagram longer than BUF_SIZE comes with MSG_TRUNC and msg_len cut at
            // BUF_SIZE; min() keeps the slice inside the slot whatever the kernel says.
            let len = (h.msg_len as usize).min(BUF_SIZE);
            #[allow(clippy::unnecessary_cast)] // socklen_t, not size_t, on musl
            let clen = (h.msg_hdr.msg_controllen as usize).min(CONTROL_LEN);
            // SAFETY: ctrl[i] is CONTROL_LEN initialised bytes owned by `self`, clen <=
            // CONTROL_LEN, and nothing writes to it while this slice lives.
            let control = unsafe { std::slice::from_raw_parts(self.ctrl.as_ptr().add(i).cast::<u8>(), clen) };
            if let Some(v) = parse_rxq_ovfl(control) {
                self.drops.update(v);
            }
            #[allow(clippy::unnecessary_cast)] // socklen_t is u32 everywhere, but say so
            let nlen = (h.msg_hdr.msg_namelen as usize).min(NAME_LEN);
            // SAFETY: names[i] is NAME_LEN initialised bytes owned by `self`, nlen <= NAME_LEN,
            // and nothing writes to it while this slice lives.
            let name = unsafe { std::slice::from_raw_parts(self.names.as_ptr().add(i).cast::<u8>(), nlen) };
            *peer = crate::backend::peer_from_sockaddr(name);
            if let Some(local) = parse_pktinfo(control) {
                *peer = peer.with_local(local);
            }
            // The kernel shrinks msg_controllen and msg_namelen to what it wrote: give the
            // room back.
            h.msg_hdr.msg_controllen = CONTROL_LEN as _;
            h.msg_hdr.msg_namelen = NAME_LEN as _;
            h.msg_hdr.msg_flags = 0;
            // SAFETY: slot i is bufs[i * BUF_SIZE..][..BUF_SIZE] and len <= BUF_SIZE, so the
            // slice is inside the allocation; slots of different i are disjoint; the
            // kernel writes to them only during recvmmsg, which cannot run before these
            // slices die at the end of this call (`&mut self`).
            *slot = unsafe { std::slice::from_raw_parts_mut(self.bufs.as_ptr().add(i * BUF_SIZE), len) };
        }
        self.packets += n as u64;
        f(&mut slices[..n], &peers[..n]);
        Ok(n)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        poll_readable(self.sock.as_raw_fd(), timeout)
    }

    fn stats(&self) -> QueueStats {
        QueueStats { packets: self.packets(), kernel_dropped: self.kernel_dropped(), ..QueueStats::default() }
    }
}

// Counters and handles of this queue; [`RxQueue::stats`] gathers the counters.
impl RecvmmsgQueue {
    pub fn name(&self) -> &'static str {
        "recvmmsg"
    }

    pub fn reports_peers(&self) -> bool {
        true
    }

    pub fn send_socket(&self) -> io::Result<Option<std::net::UdpSocket>> {
        let s = self.sock.try_clone().map_err(|e| context("dup of the receive socket", e))?;
        Ok(Some(s.into()))
    }

    pub fn kernel_dropped(&self) -> u64 {
        self.drops.total()
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }
}

/// Loopback harness shared by the recvmmsg and io_uring tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
    use std::process::Command;
    use std::time::{Duration, Instant};

    pub(crate) use super::super::Queue;
    use super::super::{Peer, RxQueue, UdpConfig, BUF_SIZE};

    /// Runs `f` on a new thread inside a network namespace of its own with
    /// `lo` up, so that test traffic never leaves it. Without the right to
    /// create one (EPERM: not root), runs on the host's loopback and says so.
    pub(crate) fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare(2) with CLONE_NEWNET only moves this thread into a new
            // network namespace; it touches no memory of ours.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                let e = std::io::Error::last_os_error();
                println!("unshare(CLONE_NEWNET) failed ({e}); testing on the host's 127.0.0.1 instead");
            } else {
                // Children inherit the namespace of the thread that forks them.
                let st = Command::new("ip").args(["link", "set", "lo", "up"]).status();
                match st {
                    Ok(s) if s.success() => {}
                    other => {
                        panic!("`ip link set lo up` in the test namespace failed: {other:?} (is iproute2 installed?)")
                    }
                }
            }
            f()
        })
        .join()
        .expect("test thread panicked")
    }

    pub(crate) fn cfg(queues: usize, rcvbuf: usize) -> UdpConfig {
        UdpConfig { listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), queues, rcvbuf }
    }

    /// Datagram `seq`: 4-byte LE sequence number, then bytes derived from it.
    pub(crate) fn datagram(seq: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len.max(4)];
        v[..4].copy_from_slice(&seq.to_le_bytes());
        for (j, b) in v.iter_mut().enumerate().skip(4) {
            *b = (seq as u8).wrapping_mul(31).wrapping_add(j as u8);
        }
        v
    }

    /// Length of datagram `seq`: 4..=BUF_SIZE, and now and then longer than
    /// BUF_SIZE (handed over cut).
    pub(crate) fn size_of_seq(seq: u32) -> usize {
        if seq % 401 == 7 {
            BUF_SIZE + 300
        } else {
            4 + (seq as usize * 7919) % (BUF_SIZE - 4 + 1)
        }
    }

    /// What the receiving side saw.
    #[derive(Default)]
    pub(crate) struct Tally {
        pub(crate) seen: HashMap<u32, usize>,
        pub(crate) received: u64,
        pub(crate) per_queue: Vec<u64>,
        pub(crate) cut: u64,
        /// The clients' addresses: datagram `seq` comes from `from[seq % len]`.
        pub(crate) from: Vec<SocketAddr>,
        /// Datagrams whose reported source address was checked.
        pub(crate) peers_checked: u64,
    }

    impl Tally {
        /// Checks one received datagram against what was sent and, when the
        /// queue reports one, its source address against the client that sent it.
        fn check(&mut self, q: usize, d: &[u8], peer: Peer) {
            assert!(d.len() >= 4, "runt datagram of {} bytes", d.len());
            let seq = u32::from_le_bytes(d[..4].try_into().unwrap());
            if !peer.is_none() && !self.from.is_empty() {
                let want = self.from[seq as usize % self.from.len()];
                assert_eq!(peer.socket_addr(), Some(want), "datagram {seq}: source address");
                self.peers_checked += 1;
            }
            let want = datagram(seq, size_of_seq(seq));
            assert_eq!(d.len(), want.len().min(BUF_SIZE), "datagram {seq}: length");
            assert!(d == &want[..d.len()], "datagram {seq}: content differs");
            if want.len() > BUF_SIZE {
                self.cut += 1;
            }
            *self.seen.entry(seq).or_default() += 1;
            assert_eq!(self.seen[&seq], 1, "datagram {seq} delivered twice");
            self.received += 1;
            self.per_queue[q] += 1;
        }
    }

    /// One round over all queues: a burst from each; waits briefly on one
    /// queue if none had anything.
    pub(crate) fn drain_round(qs: &mut [Queue], t: &mut Tally, round: &mut usize) {
        if t.per_queue.len() < qs.len() {
            t.per_queue.resize(qs.len(), 0);
        }
        let mut got = 0;
        for (i, q) in qs.iter_mut().enumerate() {
            let reports = q.reports_peers();
            got += q
                .rx_burst_peers(&mut |b: &mut [&mut [u8]], peers: &[Peer]| {
                    assert_eq!(b.len(), peers.len(), "one source address per datagram");
                    for (d, p) in b.iter().zip(peers) {
                        assert_eq!(p.is_none(), !reports, "reports_peers() disagrees with the burst");
                        t.check(i, d, *p);
                    }
                })
                .expect("rx_burst");
        }
        if got == 0 {
            *round += 1;
            let n = qs.len();
            qs[*round % n].wait(Duration::from_millis(2)).expect("wait");
        }
    }

    pub(crate) fn dropped(qs: &[Queue]) -> u64 {
        qs.iter().map(|q| q.stats().kernel_dropped).sum()
    }

    /// Drains until received + kernel-dropped reaches `sent`, `deadline`
    /// passes, or (with `quiet`) nothing has arrived for that long.
    pub(crate) fn drain_until(qs: &mut [Queue], t: &mut Tally, sent: u64, deadline: Instant, quiet: Option<Duration>) {
        let mut round = 0;
        let mut last = (t.received, Instant::now());
        while t.received + dropped(qs) < sent && Instant::now() < deadline {
            drain_round(qs, t, &mut round);
            if t.received != last.0 {
                last = (t.received, Instant::now());
            } else if quiet.is_some_and(|q| last.1.elapsed() >= q) {
                break;
            }
        }
    }

    /// `SO_RXQ_OVFL` reports a socket's drops with the next datagram it
    /// queues, so drops at the very end of a run stay unreported until
    /// something else arrives. Once the queues are drained, one marker from
    /// every client reaches every socket that could have dropped (a client's
    /// datagrams always hash to the same socket) and carries the final count.
    /// Marker `seq` leaves from client `seq % clients.len()`, as the traffic did.
    pub(crate) fn send_markers(clients: &[UdpSocket], to: SocketAddr, next_seq: &mut u32) -> u64 {
        for _ in clients {
            let c = &clients[*next_seq as usize % clients.len()];
            c.send_to(&datagram(*next_seq, size_of_seq(*next_seq)), to).expect("send marker");
            *next_seq += 1;
        }
        clients.len() as u64
    }

    pub(crate) fn clients(n: usize) -> Vec<UdpSocket> {
        (0..n).map(|_| UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("client socket")).collect()
    }

    /// The loopback check for a socket backend: `total` datagrams of varying
    /// sizes from 16 client sockets (16 source ports) sent at a modest pace by
    /// a second thread while this one drains all queues; then every payload
    /// is intact, none is delivered twice, and received + kernel-dropped ==
    /// sent. Returns the tally.
    pub(crate) fn exercise(mut qs: Vec<Queue>, to: SocketAddr, total: u32) -> Tally {
        let cl = clients(16);
        let senders: Vec<UdpSocket> = cl.iter().map(|c| c.try_clone().unwrap()).collect();
        let sender = std::thread::spawn(move || {
            for seq in 0..total {
                senders[seq as usize % senders.len()].send_to(&datagram(seq, size_of_seq(seq)), to).expect("send");
                if seq % 20 == 19 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        let from = cl.iter().map(|c| c.local_addr().expect("client address")).collect();
        let mut t = Tally { per_queue: vec![0; qs.len()], from, ..Tally::default() };
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut round = 0;
        while !sender.is_finished() && Instant::now() < deadline {
            drain_round(&mut qs, &mut t, &mut round);
        }
        sender.join().expect("sender thread");
        // Tail drops are reported only by the markers, hence `quiet`.
        drain_until(&mut qs, &mut t, u64::from(total), deadline, Some(Duration::from_millis(100)));
        let mut next = total;
        let sent = u64::from(total) + send_markers(&cl, to, &mut next);
        drain_until(&mut qs, &mut t, sent, Instant::now() + Duration::from_secs(5), None);
        let dropped = dropped(&qs);
        println!(
            "{}: sent {sent}, received {} (per queue {:?}), kernel dropped {dropped}, cut at BUF_SIZE {}",
            qs[0].name(),
            t.received,
            t.per_queue,
            t.cut
        );
        assert_eq!(t.received + dropped, sent, "received + kernel_dropped != sent");
        let packets: u64 = qs.iter().map(|q| q.stats().packets).sum();
        assert_eq!(packets, t.received, "packets() disagrees with what the callback saw");
        if qs.len() > 1 {
            assert!(t.per_queue.iter().all(|&n| n > 0), "a queue of the group got nothing: {:?}", t.per_queue);
        }
        assert!(t.cut > 0 || dropped > 0, "no over-long datagram arrived");
        if qs.iter().all(|q| q.reports_peers()) {
            assert_eq!(t.peers_checked, t.received, "a datagram came without its source address");
        }
        t
    }

    /// Sends `total` datagrams of `len` bytes to one queue before reading
    /// anything (so a small receive buffer overflows, or a small buffer ring
    /// runs dry), then drains, sends one marker (see `send_markers`) and
    /// drains again. Checks every payload and that received + kernel-dropped
    /// == sent (`total` + 1); returns (received, kernel-dropped).
    pub(crate) fn flood<Q: RxQueue + ?Sized>(
        q: &mut Q,
        name: &str,
        to: SocketAddr,
        total: u32,
        len: usize,
    ) -> (u64, u64) {
        let cl = clients(1);
        for seq in 0..total {
            cl[0].send_to(&datagram(seq, len), to).expect("send");
        }
        let mut seen = vec![false; total as usize + 1];
        let mut received = 0u64;
        // Until `want` arrived or were dropped, for at most 5 s, or (with
        // `quiet`) until nothing arrived for that long.
        let mut drain = |q: &mut Q, want: u64, quiet: Option<Duration>| {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut last = (received, Instant::now());
            while received + q.stats().kernel_dropped < want && Instant::now() < deadline {
                let got = q
                    .rx_burst(&mut |b: &mut [&mut [u8]]| {
                        for d in b.iter() {
                            let seq = u32::from_le_bytes(d[..4].try_into().unwrap());
                            assert!(d[..] == datagram(seq, len)[..], "datagram {seq}: content differs");
                            assert!(!std::mem::replace(&mut seen[seq as usize], true), "datagram {seq} twice");
                            received += 1;
                        }
                    })
                    .expect("rx_burst");
                if got == 0 {
                    q.wait(Duration::from_millis(5)).expect("wait");
                }
                if received != last.0 {
                    last = (received, Instant::now());
                } else if quiet.is_some_and(|d| last.1.elapsed() >= d) {
                    break;
                }
            }
        };
        // Drops at the tail are reported only with the marker, hence `quiet`.
        drain(q, u64::from(total), Some(Duration::from_millis(100)));
        cl[0].send_to(&datagram(total, len), to).expect("send marker");
        drain(q, u64::from(total) + 1, None);
        let d = q.stats().kernel_dropped;
        println!("{name} flood: sent {}, received {received}, kernel dropped {d}", total + 1);
        assert_eq!(received + d, u64::from(total) + 1, "received + kernel_dropped != sent");
        assert!(seen[total as usize], "the marker sent after the drain was lost");
        assert_eq!(q.stats().packets, received, "packets disagrees with what the callback saw");
        (received, d)
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn rxq_ovfl_cmsg_parses() {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let (space, clen) = unsafe { (libc::CMSG_SPACE(4) as usize, libc::CMSG_LEN(4) as usize) };
        assert!(space <= CONTROL_LEN);
        let mut c = vec![0u8; CONTROL_LEN];
        c[..8].copy_from_slice(&clen.to_ne_bytes());
        c[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        c[12..16].copy_from_slice(&libc::SO_RXQ_OVFL.to_ne_bytes());
        c[16..20].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(parse_rxq_ovfl(&c[..space]), Some(77));
        assert_eq!(parse_rxq_ovfl(&c[..clen]), Some(77));
        assert_eq!(parse_rxq_ovfl(&c[..clen - 1]), None);
        assert_eq!(parse_rxq_ovfl(&[]), None);
        // Another cmsg first, then ours.
        let mut two = vec![0u8; 48];
        two[..8].copy_from_slice(&20usize.to_ne_bytes());
        two[8..12].copy_from_slice(&libc::IPPROTO_IP.to_ne_bytes());
        two[24..48].copy_from_slice(&c[..24]);
        assert_eq!(parse_rxq_ovfl(&two), Some(77));
        // A length below the header or beyond the buffer is not followed.
        let mut bad = c.clone();
        bad[..8].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(parse_rxq_ovfl(&bad), None);
        bad[..8].copy_from_slice(&usize::MAX.to_ne_bytes());
        assert_eq!(parse_rxq_ovfl(&bad), None);
    }

    #[test]
    fn pktinfo_cmsgs_parse() {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let (space4, len4, space6, len6) = unsafe {
            (
                libc::CMSG_SPACE(12) as usize,
                libc::CMSG_LEN(12) as usize,
                libc::CMSG_SPACE(20) as usize,
                libc::CMSG_LEN(20) as usize,
            )
        };
        assert!(24 + space6 <= CONTROL_LEN, "room for SO_RXQ_OVFL and the larger pktinfo");
        let mut c = vec![0u8; space4];
        c[..8].copy_from_slice(&len4.to_ne_bytes());
        c[8..12].copy_from_slice(&libc::IPPROTO_IP.to_ne_bytes());
        c[12..16].copy_from_slice(&libc::IP_PKTINFO.to_ne_bytes());
        c[16 + 8..16 + 12].copy_from_slice(&[127, 0, 0, 2]);
        assert_eq!(parse_pktinfo(&c), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(parse_pktinfo(&c[..len4 - 1]), None);
        let mut c6 = vec![0u8; space6];
        c6[..8].copy_from_slice(&len6.to_ne_bytes());
        c6[8..12].copy_from_slice(&libc::IPPROTO_IPV6.to_ne_bytes());
        c6[12..16].copy_from_slice(&libc::IPV6_PKTINFO.to_ne_bytes());
        c6[16 + 15] = 1;
        assert_eq!(parse_pktinfo(&c6), Some("::1".parse().unwrap()));
        assert_eq!(parse_pktinfo(&[]), None);
    }

    #[test]
    fn queues_share_one_port() {
        in_netns(|| {
            let qs = RecvmmsgQueue::open(&cfg(3, 0)).unwrap();
            assert_ne!(qs[0].local_addr().port(), 0);
            assert!(qs.iter().all(|q| q.local_addr() == qs[0].local_addr()));
            let tx = qs[1].send_socket().unwrap().expect("a send handle");
            assert_eq!(tx.local_addr().unwrap(), qs[0].local_addr());
            assert!(qs.iter().all(|q| q.reports_peers()));
            assert!(RecvmmsgQueue::open(&cfg(0, 0)).is_err());
        });
    }

    #[test]
    fn loopback_burst_intact() {
        in_netns(|| {
            let qs = RecvmmsgQueue::open(&cfg(2, 1 << 20)).unwrap();
            let to = qs[0].local_addr();
            let qs: Vec<Queue> = qs.into_iter().map(Queue::Recvmmsg).collect();
            exercise(qs, to, 2000);
        });
    }

    #[test]
    fn loopback_overflow_counted() {
        in_netns(|| {
            let mut q = RecvmmsgQueue::open(&cfg(1, 4096)).unwrap().pop().unwrap();
            let to = q.local_addr();
            let (_, dropped) = flood(&mut q, "recvmmsg", to, 400, 1000);
            assert!(dropped > 0, "the kernel dropped nothing: the receive buffer did not fill");
        });
    }

    #[test]
    fn wait_times_out_and_wakes() {
        in_netns(|| {
            let mut q = RecvmmsgQueue::open(&cfg(1, 0)).unwrap().pop().unwrap();
            let t0 = std::time::Instant::now();
            q.wait(Duration::from_millis(20)).unwrap();
            assert!(t0.elapsed() >= Duration::from_millis(15));
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"wake", q.local_addr()).unwrap();
            q.wait(Duration::from_secs(5)).unwrap();
            let mut got = Vec::new();
            let n = q.rx_burst(&mut |b: &mut [&mut [u8]]| got.extend(b.iter().map(|d| d.to_vec()))).unwrap();
            assert_eq!(n, 1);
            assert_eq!(got, vec![b"wake".to_vec()]);
            assert_eq!(q.rx_burst(&mut |_: &mut [&mut [u8]]| panic!("nothing is queued")).unwrap(), 0);
        });
    }
}
