//! The memory a multishot receive hands to the kernel: the provided-buffer
//! ring (its entries and its buffers, each an anonymous mapping), the buffer
//! layout of each [`RecvMode`], and the `msghdr` of address mode. Nothing
//! here is freed while the kernel may still use it: the owner marks the
//! memory leaked when the receive's end cannot be confirmed.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::Fd;
use io_uring::{opcode, squeue, IoUring};

use super::RECV;
use crate::backend::recvmmsg::CONTROL_LEN;
use crate::backend::socket::context;
use crate::backend::{BUF_SIZE, NAME_LEN};

/// The buffer group of the queue's provided-buffer ring.
const BGID: u16 = 0;
/// Buffer length given to the kernel: a plain receive copies the payload to
/// the start of the buffer and cuts a longer datagram at the buffer's length,
/// so exactly BUF_SIZE cuts it where the recvmmsg backend cuts it.
const ENTRY_LEN: usize = BUF_SIZE;
/// `sizeof(struct io_uring_recvmsg_out)`: namelen, controllen, payloadlen,
/// flags (u32 each), at the start of every multishot recvmsg buffer.
const RECVMSG_OUT_LEN: usize = 16;
/// Where the payload starts in an address-mode buffer: the header, the
/// name field (always `NAME_LEN` bytes), then the control field (always
/// `CONTROL_LEN` bytes: the `IP_PKTINFO` of a wildcard-bound socket).
pub(super) const ADDR_PAYLOAD_AT: usize = RECVMSG_OUT_LEN + NAME_LEN + CONTROL_LEN;
/// Buffer length in address mode: the payload is still cut at BUF_SIZE.
const ADDR_ENTRY_LEN: usize = ADDR_PAYLOAD_AT + BUF_SIZE;
/// Most entries a provided-buffer ring may have.
pub(super) const MAX_RING_ENTRIES: u16 = 32768;

/// What each datagram's receive brings back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecvMode {
    /// The payload alone (`RecvMulti`): the cheapest receive.
    #[default]
    Plain,
    /// The payload and the source address (`RecvMsgMulti` with a name).
    Addresses,
}

impl RecvMode {
    /// Bytes of one provided buffer.
    const fn entry_len(self) -> usize {
        match self {
            RecvMode::Plain => ENTRY_LEN,
            RecvMode::Addresses => ADDR_ENTRY_LEN,
        }
    }

    /// Distance between buffers (cache-line multiple).
    const fn stride(self) -> usize {
        self.entry_len().next_multiple_of(64)
    }
}

/// An anonymous private mapping (page-aligned, zero-filled), excluded from
/// forked children so that a child never shares pages the kernel writes.
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
    leaked: bool,
}

impl Mmap {
    fn new(len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh anonymous mapping with no address hint; it aliases nothing.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(context(&format!("mmap {len} bytes"), io::Error::last_os_error()));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        let m = Mmap { ptr, len, leaked: false };
        // SAFETY: [p, p + len) is exactly the mapping created above.
        if unsafe { libc::madvise(p, len, libc::MADV_DONTFORK) } != 0 {
            return Err(context("madvise(MADV_DONTFORK)", io::Error::last_os_error()));
        }
        Ok(m)
    }

    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: ptr/len are the mapping made in `new`, unmapped only here; the owner
            // sets `leaked` when the kernel might still write into it.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// `struct io_uring_buf`: one entry of a provided-buffer ring. The `resv`
/// field of entry 0 is the ring's tail, which the kernel reads.
#[repr(C)]
struct BufEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

/// A provided-buffer ring and its `nbufs` buffers of `stride` bytes, of
/// which the kernel may fill `entry_len`.
///
/// Invariant: every buffer id is either published to the kernel (between
/// its head and our tail) or held by the queue, never both; the queue pushes
/// back only ids the kernel handed out, each once. With nbufs <= entries,
/// the entries we write past the tail are never ones the kernel may read.
pub(super) struct BufRing {
    entries: Mmap,
    bufs: Mmap,
    pub(super) ring_entries: u16,
    nbufs: u16,
    tail: u16,
    pub(super) entry_len: usize,
    stride: usize,
}

impl BufRing {
    fn new(nbufs: u16, mode: RecvMode) -> io::Result<BufRing> {
        if nbufs == 0 || nbufs > MAX_RING_ENTRIES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("io_uring: buffer count {nbufs} not in 1..={MAX_RING_ENTRIES}"),
            ));
        }
        let ring_entries = nbufs.next_power_of_two();
        const _: () = assert!(std::mem::size_of::<BufEntry>() == std::mem::size_of::<io_uring::types::BufRingEntry>());
        let entries = Mmap::new(usize::from(ring_entries) * std::mem::size_of::<BufEntry>())?;
        let (entry_len, stride) = (mode.entry_len(), mode.stride());
        let bufs = Mmap::new(usize::from(nbufs) * stride)?;
        Ok(BufRing { entries, bufs, ring_entries, nbufs, tail: 0, entry_len, stride })
    }

    /// Registers the ring as buffer group `BGID` of `ring` and publishes all
    /// buffers.
    ///
    /// # Safety
    /// `self` must stay alive until `ring` no longer has an operation that
    /// may select from the group (the ring is closed, or the receive has
    /// delivered its final completion).
    pub(super) unsafe fn register(&mut self, ring: &IoUring) -> io::Result<()> {
        // SAFETY: the entries mapping is page-aligned, ring_entries * 16 bytes long, zero-filled,
        // and outlives the registration per this function's contract.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(self.entries.as_ptr() as u64, self.ring_entries, BGID, 0)
        }?;
        for bid in 0..self.nbufs {
            self.push(bid);
        }
        self.publish();
        Ok(())
    }

    pub(super) fn slot(&self, bid: u16) -> *mut u8 {
        debug_assert!(bid < self.nbufs);
        // SAFETY: bid < nbufs, so the offset stays inside the `bufs` mapping.
        unsafe { self.bufs.as_ptr().add(usize::from(bid) * self.stride) }
    }

    /// Queues buffer `bid` behind the tail (not yet visible to the kernel).
    pub(super) fn push(&mut self, bid: u16) {
        let idx = usize::from(self.tail & (self.ring_entries - 1));
        let addr = self.slot(bid) as u64;
        // SAFETY: idx < ring_entries, so the entry is inside the mapping; by the type's
        // invariant the kernel does not read entries at or past our tail; the fields are
        // written through raw pointers so no reference covers entry 0's `resv` (the tail),
        // which the kernel may read at any time.
        unsafe {
            let e = self.entries.as_ptr().cast::<BufEntry>().add(idx);
            ptr::addr_of_mut!((*e).addr).write(addr);
            ptr::addr_of_mut!((*e).len).write(self.entry_len as u32);
            ptr::addr_of_mut!((*e).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the pushed entries visible: a Release store of the tail, so the
    /// kernel sees the entries written before it.
    pub(super) fn publish(&self) {
        // SAFETY: entry 0's `resv` is at offset 14 of the page-aligned mapping (2-byte
        // aligned, inside it); AtomicU16 has u16's layout; the kernel only reads it and we
        // only access it atomically.
        let tail = unsafe { &*self.entries.as_ptr().add(std::mem::offset_of!(BufEntry, resv)).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

/// The `msghdr` of an address-mode receive, on the heap so that its address
/// does not change when the queue moves: the SQE points at it and the kernel
/// reads `msg_namelen` and `msg_controllen` from it. Nothing writes to it
/// after `new`.
pub(super) struct MsgHdr {
    ptr: NonNull<libc::msghdr>,
    leaked: bool,
}

impl MsgHdr {
    fn new() -> MsgHdr {
        // SAFETY: msghdr is plain C data for which all-zero is valid (null pointers, zero
        // lengths).
        let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
        // Name and control data written into each buffer after the header; no iovec
        // (the payload goes to the provided buffer).
        h.msg_namelen = NAME_LEN as libc::socklen_t;
        h.msg_controllen = CONTROL_LEN as _;
        MsgHdr { ptr: NonNull::from(Box::leak(Box::new(h))), leaked: false }
    }

    fn as_ptr(&self) -> *const libc::msghdr {
        self.ptr.as_ptr()
    }

    pub(super) fn get(&self) -> &libc::msghdr {
        // SAFETY: ptr comes from the Box leaked in `new`, freed only in Drop; nobody writes
        // through it (the kernel only reads it), so a shared reference is sound.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for MsgHdr {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: ptr is the Box leaked in `new`, freed only here; the owner sets `leaked`
            // when the kernel might still read it.
            drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
        }
    }
}

/// Everything a multishot receive hands to the kernel: the buffer ring and
/// its buffers, and in address mode the `msghdr` (a plain receive takes
/// none; its SQE carries only the socket and the buffer group).
pub(super) struct RecvMem {
    pub(super) br: BufRing,
    pub(super) mode: RecvMode,
    pub(super) msg: Option<MsgHdr>,
}

impl RecvMem {
    pub(super) fn new(nbufs: u16, mode: RecvMode) -> io::Result<RecvMem> {
        let msg = (mode == RecvMode::Addresses).then(MsgHdr::new);
        Ok(RecvMem { br: BufRing::new(nbufs, mode)?, mode, msg })
    }

    /// The multishot receive. Plain: length 0 (each datagram gets a whole
    /// buffer, ENTRY_LEN bytes; older kernels refuse any other length for a
    /// multishot recv), no flags (no MSG_TRUNC: the result is the number of
    /// bytes copied, never the datagram's full length). Addresses: a
    /// multishot recvmsg with the heap `msghdr` (name, no control data).
    pub(super) fn recv_sqe(&self, fd: RawFd) -> squeue::Entry {
        match &self.msg {
            Some(m) => opcode::RecvMsgMulti::new(Fd(fd), m.as_ptr(), BGID).build().user_data(RECV),
            None => opcode::RecvMulti::new(Fd(fd), BGID).build().user_data(RECV),
        }
    }

    /// Never frees this memory: for when the kernel may still use it.
    pub(super) fn leak(&mut self) {
        self.br.entries.leaked = true;
        self.br.bufs.leaked = true;
        if let Some(m) = self.msg.as_mut() {
            m.leaked = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use io_uring::types::RecvMsgOut;

    use super::*;

    #[test]
    fn layout_matches_kernel() {
        assert_eq!(std::mem::size_of::<BufEntry>(), 16);
        assert_eq!(std::mem::offset_of!(BufEntry, resv), 14);
        for mode in [RecvMode::Plain, RecvMode::Addresses] {
            assert!(mode.stride() >= mode.entry_len() && mode.stride().is_multiple_of(64));
        }
        assert_eq!(ENTRY_LEN, BUF_SIZE);
        assert_eq!(ADDR_ENTRY_LEN - ADDR_PAYLOAD_AT, BUF_SIZE);
        assert_eq!(NAME_LEN, std::mem::size_of::<libc::sockaddr_in6>());
    }

    /// The address-mode buffer layout as `RecvMsgOut::parse` reads it: a
    /// 16-byte header, the name field, the payload at ADDR_PAYLOAD_AT.
    #[test]
    fn recvmsg_out_layout() {
        let m = MsgHdr::new();
        let mut buf = vec![0u8; ADDR_ENTRY_LEN];
        buf[0..4].copy_from_slice(&16u32.to_ne_bytes()); // namelen: a sockaddr_in
        buf[8..12].copy_from_slice(&5u32.to_ne_bytes()); // payloadlen
        buf[RECVMSG_OUT_LEN..RECVMSG_OUT_LEN + 2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        buf[RECVMSG_OUT_LEN + 2..RECVMSG_OUT_LEN + 4].copy_from_slice(&7100u16.to_be_bytes());
        buf[RECVMSG_OUT_LEN + 4..RECVMSG_OUT_LEN + 8].copy_from_slice(&[127, 0, 0, 9]);
        buf[ADDR_PAYLOAD_AT..ADDR_PAYLOAD_AT + 5].copy_from_slice(b"hello");
        let out = RecvMsgOut::parse(&buf[..ADDR_PAYLOAD_AT + 5], m.get()).unwrap();
        assert_eq!(out.payload_data(), b"hello");
        assert_eq!(out.payload_data().as_ptr() as usize - buf.as_ptr() as usize, ADDR_PAYLOAD_AT);
        assert_eq!(
            crate::backend::peer_from_sockaddr(out.name_data()).socket_addr(),
            Some("127.0.0.9:7100".parse().unwrap())
        );
        assert!(RecvMsgOut::parse(&buf[..ADDR_PAYLOAD_AT - 1], m.get()).is_err());
    }
}
