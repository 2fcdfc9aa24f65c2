//! The io_uring backend: per queue one `SO_REUSEPORT` UDP socket (opened
//! like the recvmmsg backend's), one ring, a provided-buffer ring the kernel
//! picks receive buffers from, and one multishot plain receive (`RecvMulti`)
//! that stays armed: a datagram costs no system call, a burst at most one
//! `io_uring_enter`. A buffer holds just the payload (no
//! `io_uring_recvmsg_out` header, no name, no control message). When the
//! caller needs each datagram's source address ([`RecvMode::Addresses`]:
//! the node sends RECEIPTs back to it) the queue arms a multishot
//! `RecvMsgMulti` instead, with a `sockaddr_in6`-sized name and no control
//! data: each buffer then starts with the kernel's `io_uring_recvmsg_out`
//! header and the name, parsed with [`RecvMsgOut::parse`], and the payload
//! follows (the buffer is larger by those 44 bytes, so the payload is still
//! cut at `BUF_SIZE`). The socket's
//! drop counter, which recvmmsg reads from per-datagram `SO_RXQ_OVFL`
//! control messages, is read with `getsockopt(SO_MEMINFO)` when asked for
//! (`kernel_dropped`, a few times a second), never per datagram.
//!
//! Memory handed to the kernel (the buffer ring and its buffers, see
//! `bufring`) belongs to the queue and is freed only after the ring: `Drop`
//! cancels the receive and waits for its final completion, then the ring is
//! closed (field order), then the memory is unmapped. If the cancellation
//! cannot be confirmed the memory is leaked rather than freed under the
//! kernel (io-uring issues #176, #219, #221).
//!
//! Threads: with `SINGLE_ISSUER` only one thread may drive a ring. The ring
//! is created disabled (`R_DISABLED`) and enabled by the first `rx_burst` or
//! `wait`, so a queue may be opened on one thread and moved to the worker
//! that polls it; after that it must stay on (and be dropped by) that worker.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::types::{RecvMsgOut, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, IoUring, Probe};
use socket2::{Domain, Protocol, Socket, Type};

use super::socket::{context, open_udp_group, DropCounter};
use super::{BurstFn, Peer, QueueStats, RxQueue, UdpConfig, BUF_SIZE, MAX_BURST, NO_PEERS};

mod bufring;
pub use bufring::RecvMode;
use bufring::{RecvMem, ADDR_PAYLOAD_AT, MAX_RING_ENTRIES};

/// user_data of the multishot receive and of its cancellation.
const RECV: u64 = 1;
const CANCEL: u64 = 2;
/// `SK_MEMINFO_VARS`: the length of the `SO_MEMINFO` array (Linux 4.12+;
/// `SK_MEMINFO_DROPS`, the last, since 4.12 too). A newer kernel with more
/// entries copies only as many as asked for.
const SK_MEMINFO_VARS: usize = 9;
/// One receive SQE and, at drop, one cancel are ever queued.
const SQ_ENTRIES: u32 = 8;

/// Ring setup flags, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Completions are produced only when this thread enters the ring
    /// (Linux 6.1): no task-work interrupts while the worker computes.
    DeferTaskrun,
    /// Task work runs at the next system call rather than by IPI (5.19).
    CoopTaskrun,
    Plain,
}

impl Setup {
    const ALL: [Setup; 3] = [Setup::DeferTaskrun, Setup::CoopTaskrun, Setup::Plain];

    fn as_str(self) -> &'static str {
        match self {
            Setup::DeferTaskrun => "single_issuer+defer_taskrun+taskrun_flag",
            Setup::CoopTaskrun => "coop_taskrun+taskrun_flag",
            Setup::Plain => "none",
        }
    }

    /// `TASKRUN_FLAG` makes the kernel flag pending task work in the SQ
    /// ring, so `submit()` enters the kernel only when there is work.
    fn builder(self, cq_entries: u32, r_disabled: bool) -> io_uring::Builder {
        let mut b = IoUring::builder();
        b.dontfork().setup_cqsize(cq_entries);
        match self {
            Setup::DeferTaskrun => {
                b.setup_single_issuer().setup_defer_taskrun().setup_taskrun_flag();
                if r_disabled {
                    b.setup_r_disabled();
                }
            }
            Setup::CoopTaskrun => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            Setup::Plain => {}
        }
        b
    }
}

fn unsupported(msg: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("io_uring: {msg}"))
}

fn wrong_thread() -> io::Error {
    io::Error::other(
        "io_uring: queue used from a thread other than the one that first polled it (the ring is SINGLE_ISSUER)",
    )
}

/// The socket's drop counter (`sk_drops`, the value `SO_RXQ_OVFL` would
/// attach to the next datagram): `SK_MEMINFO_DROPS` of `SO_MEMINFO`. One
/// system call; made only when the drop count is asked for.
fn socket_drops(fd: RawFd) -> io::Result<u32> {
    let mut mem = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&mem) as libc::socklen_t;
    // SAFETY: optval points at `mem`, which lives across the call, and optlen holds its size
    // in bytes; the kernel writes at most that many.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_MEMINFO, mem.as_mut_ptr().cast(), &mut len) };
    if r != 0 {
        return Err(context("getsockopt(SO_MEMINFO)", io::Error::last_os_error()));
    }
    let at = libc::SK_MEMINFO_DROPS as usize;
    if (len as usize) < (at + 1) * std::mem::size_of::<u32>() {
        return Err(io::Error::other(format!("getsockopt(SO_MEMINFO) returned {len} bytes, without the drop count")));
    }
    Ok(mem[at])
}

/// Cancels the multishot receive (pushed, in flight, or both) and waits up
/// to a second for its final completion. True when it came: from then on
/// the kernel no longer touches the receive's memory.
fn cancel_recv(ring: &mut IoUring) -> bool {
    let cancel = opcode::AsyncCancel::new(RECV).build().user_data(CANCEL);
    // SAFETY: an AsyncCancel SQE carries no pointers.
    if unsafe { ring.submission().push(&cancel) }.is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        for cqe in ring.completion() {
            if cqe.user_data() == RECV && !cqueue::more(cqe.flags()) {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        let ts = Timespec::from(Duration::from_millis(50));
        match ring.submitter().submit_with_args(1, &SubmitArgs::new().timespec(&ts)) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
            // EEXIST: dropped on a thread that does not own the SINGLE_ISSUER ring.
            Err(_) => return false,
        }
    }
}

/// Checks, on a scratch ring, everything the queues will use: ring setup
/// (picking the flags), timed waits, the opcodes, a provided-buffer ring,
/// the socket's drop counter (`SO_MEMINFO`), and a multishot recv armed for
/// real on an unbound socket (which nothing can reach) and cancelled.
/// Returns the setup the kernel accepts, or an `Unsupported` error that
/// names what is missing.
fn probe(listen: SocketAddr, mode: RecvMode) -> io::Result<Setup> {
    // Declared before the ring, so dropped after it.
    let mut mem = RecvMem::new(1, mode)?;
    let sock = Socket::new(Domain::for_address(listen), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| context("probe socket", e))?;
    let mut refused = None;
    for setup in Setup::ALL {
        match setup.builder(16, false).build(SQ_ENTRIES) {
            Ok(mut ring) => {
                let r = probe_ring(&mut ring, &mut mem, sock.as_raw_fd());
                return r.map(|()| setup);
            }
            // EINVAL: flags this kernel does not know; try the next set.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => refused = Some(e),
            Err(e) => return Err(unsupported(format!("io_uring_setup failed: {e}{}", disabled_note()))),
        }
    }
    Err(unsupported(format!(
        "io_uring_setup refused every flag set: {}",
        refused.map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn disabled_note() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(v) if v.trim() != "0" => format!(" (kernel.io_uring_disabled = {})", v.trim()),
        _ => String::new(),
    }
}

fn probe_ring(ring: &mut IoUring, mem: &mut RecvMem, fd: RawFd) -> io::Result<()> {
    if !ring.params().is_feature_ext_arg() {
        return Err(unsupported("IORING_FEAT_EXT_ARG (timed waits, Linux 5.11) is missing"));
    }
    let mut p = Probe::new();
    ring.submitter().register_probe(&mut p).map_err(|e| unsupported(format!("IORING_REGISTER_PROBE failed: {e}")))?;
    let recv = match mem.mode {
        RecvMode::Plain => (opcode::RecvMulti::CODE, "IORING_OP_RECV"),
        RecvMode::Addresses => (opcode::RecvMsgMulti::CODE, "IORING_OP_RECVMSG"),
    };
    for (code, name) in [recv, (opcode::AsyncCancel::CODE, "IORING_OP_ASYNC_CANCEL")] {
        if !p.is_supported(code) {
            return Err(unsupported(format!("{name} is not supported by this kernel")));
        }
    }
    socket_drops(fd).map_err(|e| unsupported(format!("the socket drop counter (Linux 4.12): {e}")))?;
    // SAFETY: `mem` outlives `ring` (declared before it in `probe`), and is leaked below if
    // the receive's end cannot be confirmed.
    unsafe { mem.br.register(ring) }
        .map_err(|e| unsupported(format!("provided buffer rings (IORING_REGISTER_PBUF_RING, Linux 5.19): {e}")))?;
    let sqe = mem.recv_sqe(fd);
    // SAFETY: the SQE selects buffers from mem.br, which outlives the operation: we wait
    // below for its final completion, or leak it.
    unsafe { ring.submission().push(&sqe) }.map_err(|_| unsupported("probe: submission queue full"))?;
    ring.submit().map_err(|e| unsupported(format!("probe: io_uring_enter failed: {e}")))?;
    // The receive either failed at once (EINVAL: no multishot) or is armed.
    let mut first = None;
    for cqe in ring.completion() {
        if cqe.user_data() == RECV && !cqueue::more(cqe.flags()) {
            first = Some(cqe.result());
        }
    }
    if first.is_none() && !cancel_recv(ring) {
        mem.leak();
        return Err(unsupported("probe: the multishot receive did not end when cancelled"));
    }
    match first {
        None => Ok(()),
        Some(r) if r == -libc::EINVAL => {
            Err(unsupported("multishot recv (IORING_RECV_MULTISHOT, Linux 6.0) is not supported"))
        }
        Some(r) => Err(unsupported(format!("probe: multishot recv failed: {}", io::Error::from_raw_os_error(-r)))),
    }
}

/// Runs the probe [`UringQueue::open`] runs, on a scratch ring and an
/// unbound socket, without opening a queue: `Ok` with the ring setup flags
/// this kernel accepts, or an `Unsupported` error naming what is missing
/// (`attnet doctor`).
pub fn supported() -> io::Result<&'static str> {
    probe(SocketAddr::from(([127, 0, 0, 1], 0)), RecvMode::Plain).map(Setup::as_str)
}

/// One io_uring receive queue.
pub struct UringQueue {
    // Field order is drop order: the ring closes before `mem` is unmapped.
    ring: IoUring,
    sock: Socket,
    mem: RecvMem,
    local: SocketAddr,
    setup: Setup,
    /// Per buffer id: handed to the callback in the current burst.
    in_use: Box<[bool]>,
    /// Ring enabled and first receive queued (done by the first poll).
    started: bool,
    /// A receive SQE is queued or in flight.
    armed: bool,
    /// An error seen in a burst that also delivered datagrams.
    pending: Option<io::Error>,
    /// The socket's drop counter as last read (`kernel_dropped`, which takes
    /// `&self`; the queue is Send, never shared).
    drops: Cell<DropCounter>,
    packets: u64,
    rearms: u64,
}

// SAFETY: the queue's raw pointers (the mappings, and the msghdr of the address
// mode) point only at memory the queue owns exclusively; the ring is Send. The kernel-side constraint (SINGLE_ISSUER) is
// met by enabling the ring on the first polling thread, see the module docs.
unsafe impl Send for UringQueue {}

impl UringQueue {
    /// Opens `cfg.queues` sockets in one `SO_REUSEPORT` group on
    /// `cfg.listen`, each with its own ring and `buffers` receive buffers
    /// (1..=32768; each holds up to `BUF_SIZE` payload bytes). Fails with
    /// `ErrorKind::Unsupported` and a message naming the missing feature when
    /// the kernel cannot run this backend, so the caller can fall back to
    /// recvmmsg; a bind error keeps its own kind (`AddrInUse` for a port
    /// another socket holds) and is no reason to fall back. Datagrams come without their source address
    /// ([`RecvMode::Plain`]); see [`open_mode`](Self::open_mode).
    pub fn open(cfg: &UdpConfig, buffers: u16) -> io::Result<Vec<UringQueue>> {
        UringQueue::open_mode(cfg, buffers, RecvMode::Plain)
    }

    /// As [`open`](Self::open), receiving in `mode`: with
    /// [`RecvMode::Addresses`] every datagram is handed over with its source
    /// address (a multishot recvmsg, probed as such at start).
    pub fn open_mode(cfg: &UdpConfig, buffers: u16, mode: RecvMode) -> io::Result<Vec<UringQueue>> {
        if buffers == 0 || buffers > MAX_RING_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("io_uring: buffer count {buffers} not in 1..={MAX_RING_ENTRIES}"),
            ));
        }
        let setup = probe(cfg.listen, mode)?;
        let (socks, local) = open_udp_group(cfg)?;
        socks.into_iter().map(|s| UringQueue::new(s, local, setup, buffers, mode)).collect()
    }

    fn new(sock: Socket, local: SocketAddr, setup: Setup, buffers: u16, mode: RecvMode) -> io::Result<UringQueue> {
        let mut mem = RecvMem::new(buffers, mode)?;
        // Every completion but the last holds a buffer until we return it, so
        // the CQ cannot overflow with twice the ring's entries.
        let cq = (u32::from(mem.br.ring_entries) * 2).max(64);
        // Declared after `mem`: dropped before it if anything below fails.
        let ring = setup
            .builder(cq, setup == Setup::DeferTaskrun)
            .build(SQ_ENTRIES)
            .map_err(|e| unsupported(format!("io_uring_setup ({}): {e}", setup.as_str())))?;
        // SAFETY: `mem` moves into the queue next to `ring` and is dropped after it.
        unsafe { mem.br.register(&ring) }
            .map_err(|e| unsupported(format!("provided buffer ring of {buffers}: {e}")))?;
        Ok(UringQueue {
            ring,
            sock,
            mem,
            local,
            setup,
            in_use: vec![false; usize::from(buffers)].into_boxed_slice(),
            started: false,
            armed: false,
            pending: None,
            drops: Cell::new(DropCounter::default()),
            packets: 0,
            rearms: 0,
        })
    }

    /// The address the socket group is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The ring setup flags the kernel accepted (for the startup log).
    pub fn setup_flags(&self) -> &'static str {
        self.setup.as_str()
    }

    /// What each receive brings back.
    pub fn mode(&self) -> RecvMode {
        self.mem.mode
    }

    /// Times the multishot receive ended and was armed again (ENOBUFS when
    /// the buffer ring ran dry, or any other end of the multishot).
    pub fn rearms(&self) -> u64 {
        self.rearms
    }

    /// Enables the ring on this (the polling) thread and arms the receive.
    fn start(&mut self) -> io::Result<()> {
        if self.started {
            return Ok(());
        }
        if self.setup == Setup::DeferTaskrun {
            self.ring.submitter().register_enable_rings().map_err(|e| context("io_uring: enabling the ring", e))?;
        }
        self.started = true;
        self.arm()
    }

    /// Queues the multishot receive (submitted by the next enter).
    fn arm(&mut self) -> io::Result<()> {
        let sqe = self.mem.recv_sqe(self.sock.as_raw_fd());
        // SAFETY: the SQE selects buffers from self.mem.br, which is owned by the queue and
        // freed only after Drop has cancelled the receive and seen its final completion (else
        // it is leaked) and the ring is closed.
        unsafe { self.ring.submission().push(&sqe) }
            .map_err(|_| io::Error::other("io_uring: submission queue full"))?;
        self.armed = true;
        Ok(())
    }

    fn submit(&mut self) -> io::Result<()> {
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN | libc::EBUSY) => Ok(()),
                Some(libc::EEXIST) => Err(wrong_thread()),
                _ => Err(context("io_uring_enter", e)),
            },
        }
    }
}

impl RxQueue for UringQueue {
    fn rx_burst_peers(&mut self, f: &mut BurstFn<'_>) -> io::Result<usize> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        self.start()?;
        // The one enter of the burst: submits a re-arm, runs deferred task work.
        self.submit()?;
        let mut taken = [0u16; MAX_BURST];
        let (mut n, mut nt) = (0usize, 0usize);
        let mut err = None;
        // The slices into the buffers live only in this block: they are gone before the
        // buffers go back to the kernel below.
        {
            let mut slices: [&mut [u8]; MAX_BURST] = std::array::from_fn(|_| Default::default());
            let mut peers = [Peer::NONE; MAX_BURST];
            let mem = &self.mem;
            let mut cq = self.ring.completion();
            for _ in 0..MAX_BURST {
                let Some(cqe) = cq.next() else { break };
                if cqe.user_data() != RECV {
                    continue;
                }
                let (res, flags) = (cqe.result(), cqe.flags());
                if !cqueue::more(flags) {
                    self.armed = false;
                }
                if res < 0 {
                    // ENOBUFS: the buffer ring ran dry; the datagrams wait in the socket
                    // (or are dropped and counted there) until the re-arm below.
                    if res != -libc::ENOBUFS {
                        err.get_or_insert_with(|| context("io_uring recv", io::Error::from_raw_os_error(-res)));
                    }
                    continue;
                }
                let Some(bid) = cqueue::buffer_select(flags) else {
                    if res == 0 {
                        // A zero-length datagram: the kernel consumed it, put the buffer back
                        // in the ring and ended the multishot (re-armed below). Handed over
                        // empty, as recvmmsg hands it over.
                        slices[n] = &mut [];
                        n += 1;
                    } else {
                        err.get_or_insert_with(|| io::Error::other("io_uring: a receive completion without a buffer"));
                    }
                    continue;
                };
                match self.in_use.get_mut(usize::from(bid)) {
                    Some(u) if !*u => *u = true,
                    _ => {
                        err.get_or_insert_with(|| {
                            io::Error::other(format!("io_uring: bad or repeated buffer id {bid}"))
                        });
                        continue;
                    }
                }
                taken[nt] = bid;
                nt += 1;
                // res is the bytes the kernel wrote into the buffer; min() keeps every slice
                // inside the slot whatever it says.
                let written = (res as usize).min(mem.br.entry_len);
                let (at, len) = match &mem.msg {
                    // Plain: the payload starts the buffer (a datagram longer than the buffer
                    // comes cut at ENTRY_LEN = BUF_SIZE, as recvmmsg cuts it).
                    None => (0, written),
                    Some(m) => {
                        // SAFETY: as for the payload slice below: `written` bytes of the slot,
                        // written by the kernel, not touched again until pushed back; this
                        // shared slice ends before the mutable one is made.
                        let raw = unsafe { std::slice::from_raw_parts(mem.br.slot(bid), written) };
                        match RecvMsgOut::parse(raw, m.get()) {
                            Ok(out) => {
                                peers[n] = crate::backend::peer_from_sockaddr(out.name_data());
                                if let Some(local) = crate::backend::recvmmsg::parse_pktinfo(out.control_data()) {
                                    peers[n] = peers[n].with_local(local);
                                }
                                // Cut at BUF_SIZE like the other backends (the buffer leaves
                                // exactly BUF_SIZE bytes after the name).
                                (ADDR_PAYLOAD_AT, out.payload_data().len().min(BUF_SIZE))
                            }
                            Err(()) => {
                                err.get_or_insert_with(|| {
                                    io::Error::other("io_uring: a recvmsg completion shorter than its header")
                                });
                                continue;
                            }
                        }
                    }
                };
                // SAFETY: bid < nbufs (checked against in_use), and at + len <= entry_len (plain:
                // 0 + written; addresses: ADDR_PAYLOAD_AT + at most BUF_SIZE = ADDR_ENTRY_LEN), so
                // the slice lies in the slot's buffer mapping; the kernel wrote those bytes
                // before posting this completion and will not touch the slot again until we push
                // it back below, after the callback; in_use rules out a second slice over the
                // same slot in this burst.
                slices[n] = unsafe { std::slice::from_raw_parts_mut(mem.br.slot(bid).add(at), len) };
                n += 1;
            }
            drop(cq); // publishes the consumed CQ head
            if n > 0 {
                let peers = if mem.msg.is_some() { &peers[..n] } else { &NO_PEERS[..n] };
                f(&mut slices[..n], peers);
            }
        }
        for &bid in &taken[..nt] {
            self.mem.br.push(bid);
            self.in_use[usize::from(bid)] = false;
        }
        if nt > 0 {
            self.mem.br.publish();
        }
        if !self.armed {
            self.arm()?;
            self.rearms += 1;
        }
        self.packets += n as u64;
        if let Some(e) = err {
            if n == 0 {
                return Err(e);
            }
            self.pending = Some(e);
        }
        Ok(n)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<()> {
        if self.pending.is_some() {
            return Ok(());
        }
        self.start()?;
        if !self.ring.completion().is_empty() {
            return Ok(());
        }
        let ts = Timespec::from(timeout);
        match self.ring.submitter().submit_with_args(1, &SubmitArgs::new().timespec(&ts)) {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EAGAIN | libc::EBUSY) => Ok(()),
                Some(libc::EEXIST) => Err(wrong_thread()),
                _ => Err(context("io_uring wait", e)),
            },
        }
    }

    fn stats(&self) -> QueueStats {
        QueueStats { packets: self.packets(), kernel_dropped: self.kernel_dropped(), ..QueueStats::default() }
    }
}

// Counters and handles of this queue; [`RxQueue::stats`] gathers the counters.
impl UringQueue {
    pub fn name(&self) -> &'static str {
        "io_uring"
    }

    /// Reads the socket's drop counter: one `getsockopt`, made only here (the
    /// pipeline asks every publish interval and at the end), never per
    /// datagram. Unlike `SO_RXQ_OVFL`, which reports drops only with the next
    /// datagram read, this includes drops up to now. Should the read fail,
    /// the last total stands.
    pub fn kernel_dropped(&self) -> u64 {
        let mut d = self.drops.get();
        if let Ok(v) = socket_drops(self.sock.as_raw_fd()) {
            d.update(v);
            self.drops.set(d);
        }
        d.total()
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn reports_peers(&self) -> bool {
        self.mem.mode == RecvMode::Addresses
    }

    pub fn send_socket(&self) -> io::Result<Option<std::net::UdpSocket>> {
        let s = self.sock.try_clone().map_err(|e| context("dup of the receive socket", e))?;
        Ok(Some(s.into()))
    }
}

impl UringQueue {
    /// Ends the multishot receive; true when the kernel is done with the
    /// queue's memory. Not started: the ring never saw the receive. Not
    /// armed: its final completion has been consumed.
    fn stop(&mut self) -> bool {
        if self.started && self.armed {
            if !cancel_recv(&mut self.ring) {
                return false;
            }
            self.armed = false;
        }
        true
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        if !self.stop() {
            self.mem.leak();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::recvmmsg::test_util::*;
    use super::*;

    /// None when io_uring can run here, else why not. Only a kernel without
    /// io_uring or with it switched off counts; anything else must fail.
    fn unavailable() -> Option<String> {
        if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
            if v.trim() == "2" {
                return Some("kernel.io_uring_disabled = 2".into());
            }
        }
        match IoUring::new(4) {
            Ok(_) => None,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                Some(format!("io_uring_setup: {e}"))
            }
            Err(e) => panic!("io_uring_setup failed unexpectedly: {e}"),
        }
    }

    macro_rules! require_uring {
        () => {
            if let Some(why) = unavailable() {
                println!("skipped: io_uring unavailable: {why}");
                return;
            }
        };
    }

    fn boxed(qs: Vec<UringQueue>) -> Vec<Queue> {
        qs.into_iter().map(Queue::Uring).collect()
    }

    #[test]
    fn bad_buffer_counts_rejected() {
        assert_eq!(UringQueue::open(&cfg(1, 0), 0).err().unwrap().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(UringQueue::open(&cfg(1, 0), 40000).err().unwrap().kind(), io::ErrorKind::InvalidInput);
    }

    /// A port another program holds is a bind error (`AddrInUse`, the
    /// address in the message), not `Unsupported`: the node must not take it
    /// for a kernel without io_uring and fall back to another backend.
    #[test]
    fn uring_port_in_use_is_a_bind_error() {
        require_uring!();
        let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let taken = holder.local_addr().unwrap();
        let c = UdpConfig { listen: taken, queues: 2, rcvbuf: 0 };
        for mode in [RecvMode::Plain, RecvMode::Addresses] {
            let e = UringQueue::open_mode(&c, 64, mode).err().expect("the port is taken");
            assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
            assert!(e.to_string().contains(&format!("bind {taken}")), "{e}");
        }
    }

    #[test]
    fn uring_loopback_burst_intact() {
        require_uring!();
        in_netns(|| {
            let qs = UringQueue::open(&cfg(2, 1 << 20), 4096).unwrap();
            println!("io_uring setup: {}", qs[0].setup_flags());
            let to = qs[0].local_addr();
            assert!(qs.iter().all(|q| q.local_addr() == to));
            exercise(boxed(qs), to, 2000);
        });
    }

    /// Address mode: the same loopback check, and every datagram comes with
    /// the address of the client socket that sent it (checked in `exercise`).
    #[test]
    fn uring_addresses_loopback_burst_intact() {
        require_uring!();
        in_netns(|| {
            let qs = UringQueue::open_mode(&cfg(2, 1 << 20), 4096, RecvMode::Addresses).unwrap();
            assert!(qs.iter().all(|q| q.mode() == RecvMode::Addresses && q.reports_peers()));
            let to = qs[0].local_addr();
            let t = exercise(boxed(qs), to, 2000);
            assert_eq!(t.peers_checked, t.received);
        });
    }

    /// A plain queue reports no addresses; an address-mode queue reports
    /// them for zero-length datagrams too, and its send handle sends from the
    /// listening address (a connected client socket accepts the reply).
    #[test]
    fn uring_addresses_zero_length_and_send_handle() {
        require_uring!();
        in_netns(|| {
            let plain = UringQueue::open(&cfg(1, 0), 16).unwrap().pop().unwrap();
            assert!(!plain.reports_peers());
            let mut q = UringQueue::open_mode(&cfg(1, 0), 16, RecvMode::Addresses).unwrap().pop().unwrap();
            let to = q.local_addr();
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.connect(to).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let sent: [&[u8]; 3] = [b"", b"a", b"bc"];
            for d in sent {
                c.send(d).unwrap();
            }
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            while got.len() < sent.len() && Instant::now() < deadline {
                let n = q
                    .rx_burst_peers(&mut |b: &mut [&mut [u8]], p: &[Peer]| {
                        got.extend(b.iter().zip(p).map(|(d, p)| (d.to_vec(), p.socket_addr())))
                    })
                    .unwrap();
                if n == 0 {
                    q.wait(Duration::from_millis(5)).unwrap();
                }
            }
            let from = Some(c.local_addr().unwrap());
            assert_eq!(got, sent.map(|d| (d.to_vec(), from)).to_vec());
            let tx = q.send_socket().unwrap().expect("a socket backend has a send handle");
            assert_eq!(tx.local_addr().unwrap(), to);
            tx.send_to(b"reply", c.local_addr().unwrap()).unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(c.recv(&mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], b"reply");
        });
    }

    #[test]
    fn uring_stop_confirms_the_receive_ended() {
        require_uring!();
        in_netns(|| {
            let mut q = UringQueue::open(&cfg(1, 0), 16).unwrap().pop().unwrap();
            assert!(q.stop(), "never started");
            let to = q.local_addr();
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            // Armed and in flight, with a datagram delivered and one still queued.
            q.rx_burst(&mut |_: &mut [&mut [u8]]| {}).unwrap();
            c.send_to(b"one", to).unwrap();
            q.wait(Duration::from_secs(5)).unwrap();
            assert_eq!(q.rx_burst(&mut |_: &mut [&mut [u8]]| {}).unwrap(), 1);
            c.send_to(b"two", to).unwrap();
            assert!(q.stop(), "the cancelled receive never delivered its final completion");
            assert!(q.stop());
        });
    }

    #[test]
    fn uring_other_thread_is_refused() {
        require_uring!();
        in_netns(|| {
            let mut q = UringQueue::open(&cfg(1, 0), 16).unwrap().pop().unwrap();
            if q.setup != Setup::DeferTaskrun {
                println!("skipped: the ring is not SINGLE_ISSUER here ({})", q.setup_flags());
                return;
            }
            let to = q.local_addr();
            q.rx_burst(&mut |_: &mut [&mut [u8]]| {}).unwrap();
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"x", to).unwrap();
            // Polled from a thread that does not own the ring: a clear error, and a drop
            // that cannot confirm the cancellation leaks the buffers instead of freeing them.
            let msg = std::thread::spawn(move || {
                for _ in 0..100 {
                    if let Err(e) = q.rx_burst(&mut |_: &mut [&mut [u8]]| {}) {
                        return e.to_string();
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                String::new()
            })
            .join()
            .unwrap();
            assert!(msg.contains("SINGLE_ISSUER"), "{msg:?}");
        });
    }

    #[test]
    fn uring_overflow_counted() {
        require_uring!();
        in_netns(|| {
            let mut q = UringQueue::open(&cfg(1, 4096), 256).unwrap().pop().unwrap();
            let to = q.local_addr();
            let (_, dropped) = flood(&mut q, "io_uring", to, 400, 1000);
            assert!(dropped > 0, "the kernel dropped nothing: the receive buffer did not fill");
        });
    }

    /// `InErrors` of the UDP MIB of this thread's network namespace: every
    /// datagram a UDP socket drops (receive buffer full, or no memory) is
    /// counted there and in that socket's `sk_drops`.
    fn udp_in_errors() -> u64 {
        let s = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("read /proc/thread-self/net/snmp");
        let udp: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
        let (names, values) = (udp[0], udp[1]);
        let at = names.split_whitespace().position(|n| n == "InErrors").expect("Udp InErrors");
        values.split_whitespace().nth(at).expect("Udp InErrors value").parse().expect("Udp InErrors number")
    }

    /// True when this thread is in a network namespace of its own (see
    /// `in_netns`), where nothing else counts in the UDP MIB.
    fn own_netns() -> bool {
        std::fs::read_link("/proc/thread-self/ns/net").ok() != std::fs::read_link("/proc/1/ns/net").ok()
    }

    #[test]
    fn uring_drops_counted_when_they_happen() {
        require_uring!();
        in_netns(|| {
            let errors_before = udp_in_errors();
            let mut q = UringQueue::open(&cfg(1, 4096), 256).unwrap().pop().unwrap();
            let to = q.local_addr();
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            const SENT: u32 = 400;
            for seq in 0..SENT {
                c.send_to(&datagram(seq, 1000), to).unwrap();
            }
            // Nothing has been read and nothing arrives after the drops (no marker, unlike
            // `flood`): the count comes from the socket, not from a later datagram.
            let dropped = q.kernel_dropped();
            assert!(dropped > 0, "the kernel dropped nothing: the receive buffer did not fill");
            if own_netns() {
                let mib = udp_in_errors() - errors_before;
                println!("UDP MIB InErrors in this namespace: {mib}");
                assert_eq!(mib, dropped, "SO_MEMINFO drops disagree with the UDP MIB");
            }
            let mut seen = vec![false; SENT as usize];
            let mut received = 0u64;
            let deadline = Instant::now() + Duration::from_secs(5);
            while received + dropped < u64::from(SENT) && Instant::now() < deadline {
                let got = q
                    .rx_burst(&mut |b: &mut [&mut [u8]]| {
                        for d in b.iter() {
                            let seq = u32::from_le_bytes(d[..4].try_into().unwrap());
                            assert!(d[..] == datagram(seq, 1000)[..], "datagram {seq}: content differs");
                            assert!(!std::mem::replace(&mut seen[seq as usize], true), "datagram {seq} twice");
                            received += 1;
                        }
                    })
                    .unwrap();
                if got == 0 {
                    q.wait(Duration::from_millis(5)).unwrap();
                }
            }
            println!("io_uring: sent {SENT}, received {received}, kernel dropped {dropped}");
            assert_eq!(received + dropped, u64::from(SENT), "received + kernel_dropped != sent");
            assert_eq!(q.kernel_dropped(), dropped, "the drop count moved after the sender stopped");
            assert_eq!(q.packets(), received);
        });
    }

    #[test]
    fn uring_zero_length_datagrams_handed_over() {
        require_uring!();
        in_netns(|| {
            let mut q = UringQueue::open(&cfg(1, 0), 16).unwrap().pop().unwrap();
            let to = q.local_addr();
            assert_eq!(q.rx_burst(&mut |_: &mut [&mut [u8]]| panic!("nothing was sent yet")).unwrap(), 0);
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let sent: [&[u8]; 5] = [b"", b"a", b"", b"", b"bc"];
            for d in sent {
                c.send_to(d, to).unwrap();
            }
            // A zero-length datagram ends the multishot recv (result 0, no buffer); it must
            // be handed over empty, and the re-armed receive must go on with the rest.
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            while got.len() < sent.len() && Instant::now() < deadline {
                let n = q.rx_burst(&mut |b: &mut [&mut [u8]]| got.extend(b.iter().map(|d| d.to_vec()))).unwrap();
                if n == 0 {
                    q.wait(Duration::from_millis(5)).unwrap();
                }
            }
            assert_eq!(got, sent.map(<[u8]>::to_vec).to_vec());
            assert_eq!(q.packets(), sent.len() as u64);
            println!("rearms: {}", q.rearms());
            assert!(q.rearms() >= 3, "rearms: {}", q.rearms());
            assert_eq!(q.kernel_dropped(), 0);
        });
    }

    #[test]
    fn uring_buffer_ring_exhaustion_rearms() {
        require_uring!();
        in_netns(|| {
            let mut q = UringQueue::open(&cfg(1, 1 << 20), 16).unwrap().pop().unwrap();
            let to = q.local_addr();
            // Arm the receive first, so the 120 datagrams meet a ring of 16 buffers.
            assert_eq!(q.rx_burst(&mut |_: &mut [&mut [u8]]| panic!("nothing was sent yet")).unwrap(), 0);
            let (received, dropped) = flood(&mut q, "io_uring", to, 120, 64);
            println!("rearms: {}", q.rearms());
            assert!(q.rearms() > 0, "the buffer ring never ran dry");
            assert!(received > 16, "draining stopped after the first ring of buffers");
            assert_eq!(received + dropped, 121);
        });
    }

    #[test]
    fn uring_queue_moves_to_its_worker() {
        require_uring!();
        in_netns(|| {
            let mut q = UringQueue::open(&cfg(1, 0), 64).unwrap().pop().unwrap();
            let to = q.local_addr();
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"before", to).unwrap();
            // Opened here, polled (and dropped) by another thread.
            let worker = std::thread::spawn(move || {
                let mut got = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(5);
                while got.len() < 2 && Instant::now() < deadline {
                    q.rx_burst(&mut |b: &mut [&mut [u8]]| got.extend(b.iter().map(|d| d.to_vec()))).unwrap();
                    q.wait(Duration::from_millis(10)).unwrap();
                }
                got
            });
            std::thread::sleep(Duration::from_millis(20));
            c.send_to(b"after", to).unwrap();
            assert_eq!(worker.join().unwrap(), vec![b"before".to_vec(), b"after".to_vec()]);
        });
    }

    #[test]
    fn uring_wait_times_out_and_wakes() {
        require_uring!();
        in_netns(|| {
            let mut q = UringQueue::open(&cfg(1, 0), 64).unwrap().pop().unwrap();
            let t0 = Instant::now();
            q.wait(Duration::from_millis(20)).unwrap();
            assert!(t0.elapsed() >= Duration::from_millis(15), "{:?}", t0.elapsed());
            let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            c.send_to(b"wake", q.local_addr()).unwrap();
            let t0 = Instant::now();
            q.wait(Duration::from_secs(5)).unwrap();
            assert!(t0.elapsed() < Duration::from_secs(4));
            let mut got = Vec::new();
            let n = q.rx_burst(&mut |b: &mut [&mut [u8]]| got.extend(b.iter().map(|d| d.to_vec()))).unwrap();
            assert_eq!(n, 1);
            assert_eq!(got, vec![b"wake".to_vec()]);
            assert_eq!(q.rx_burst(&mut |_: &mut [&mut [u8]]| panic!("nothing is queued")).unwrap(), 0);
        });
    }
}
