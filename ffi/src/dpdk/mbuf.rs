//! Packet buffers (`rte_mbuf`) and bursts of them.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::{sys, MAX_BURST};

/// One packet in DPDK memory (an `rte_mbuf` chain), owned: freed back to its
/// pool on drop.
///
/// Invariant: the pointer is a valid mbuf from a pool that outlives it (a
/// pool is never freed while mbufs are out, see the crate docs), with
/// reference count 1 and a direct buffer, owned by nobody else: it came
/// from `rte_eth_rx_burst` or `rte_pktmbuf_alloc` and was not handed to
/// DPDK since.
#[repr(transparent)]
pub struct Mbuf {
    ptr: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is owned exclusively (see the invariant); freeing it on
// another thread is what DPDK pipelines do all the time (mempool puts are
// thread-safe; without an lcore id they bypass the per-lcore cache).
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only reads the header and packet bytes; nothing mutates
// them without `&mut`.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `ptr` must satisfy the type's invariant and not be used by the
    /// caller afterwards.
    pub(crate) unsafe fn from_raw(ptr: NonNull<sys::rte_mbuf>) -> Mbuf {
        // SAFETY: the caller hands over a valid mbuf (contract above).
        unsafe { debug_check_exclusive(ptr.as_ptr()) };
        Mbuf { ptr }
    }

    /// Gives up ownership without freeing.
    pub(crate) fn into_raw(self) -> *mut sys::rte_mbuf {
        ManuallyDrop::new(self).ptr.as_ptr()
    }

    fn header(&self) -> &sys::rte_mbuf {
        // SAFETY: the pointer is a valid, exclusively owned mbuf (invariant).
        unsafe { self.ptr.as_ref() }
    }

    /// The packet bytes of the first segment: the whole packet when
    /// [`Mbuf::is_contiguous`] (always, for frames that fit the pool's data
    /// room); see [`Mbuf::segments`] for the rest of a chain.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.header();
        // SAFETY: buf_addr + data_off is the first data byte and data_len
        // bytes from it lie inside the segment's buffer (DPDK keeps
        // data_off + data_len <= buf_len); the bytes live as long as the
        // mbuf, which `&self` borrows.
        unsafe { seg_slice(m) }
    }

    /// The packet bytes of the first segment, writable (to decrypt in place
    /// or to fill a packet).
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: the pointer is a valid mbuf (invariant).
        unsafe { debug_check_exclusive(self.ptr.as_ptr()) };
        let m = self.header();
        let (ptr, len) = (seg_ptr(m), usize::from(m.data_len));
        // SAFETY: as in `data`; the mbuf is owned exclusively with
        // reference count 1 and a direct buffer (invariant), so no other
        // reference to these bytes exists while `&mut self` is held.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// Length of the whole packet (all segments).
    #[inline]
    pub fn len(&self) -> usize {
        self.header().pkt_len as usize
    }

    /// True for a zero-length packet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the packet is one segment, so [`Mbuf::data`] is all of it.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.header().nb_segs == 1
    }

    /// The packet's segments in order, each as its bytes.
    pub fn segments(&self) -> Segments<'_> {
        Segments { next: self.ptr.as_ptr(), _mbuf: PhantomData }
    }

    /// Room left after the packet's last byte (in the last segment).
    pub fn tailroom(&self) -> usize {
        let mut last = self.header();
        // SAFETY: `next` links are valid mbufs of the same chain, owned with
        // the head, or NULL at the end.
        while let Some(n) = unsafe { last.next.as_ref() } {
            last = n;
        }
        usize::from(last.buf_len).saturating_sub(usize::from(last.data_off) + usize::from(last.data_len))
    }

    /// Appends `len` bytes at the end of the packet (`rte_pktmbuf_append`)
    /// and returns them, zeroed, to fill in; `None` when the last segment
    /// lacks the room (the packet is left unchanged).
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        // SAFETY: the pointer is a valid mbuf (invariant).
        unsafe { debug_check_exclusive(self.ptr.as_ptr()) };
        let len16 = u16::try_from(len).ok()?;
        // SAFETY: the mbuf is valid and exclusively owned; rte_pktmbuf_append
        // checks the tailroom itself and returns NULL, changing nothing,
        // when it is short.
        let p = unsafe { sys::rte_pktmbuf_append(self.ptr.as_ptr(), len16) };
        let p = NonNull::new(p.cast::<u8>())?;
        // SAFETY: rte_pktmbuf_append returned the start of `len` bytes
        // inside the last segment's buffer, now part of this packet and
        // owned through `&mut self`; zeroing them first means no byte of
        // unknown content is handed out.
        unsafe {
            std::ptr::write_bytes(p.as_ptr(), 0, len);
            Some(std::slice::from_raw_parts_mut(p.as_ptr(), len))
        }
    }

    /// The RSS hash the NIC computed, when it did (`RTE_MBUF_F_RX_RSS_HASH`).
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.header();
        if m.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: the flag says the `rss` member of the hash union holds the
        // hash; it is plain u32 data in any case.
        Some(unsafe { m.__bindgen_anon_2.hash.rss })
    }

    /// The port the packet came in on.
    pub fn port(&self) -> u16 {
        self.header().port
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: the mbuf is valid and owned by us (invariant) and is not
        // used again; rte_pktmbuf_free returns every segment to its pool.
        unsafe { sys::rte_pktmbuf_free(self.ptr.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf").field("len", &self.len()).field("segments", &self.header().nb_segs).finish()
    }
}

/// Debug builds check what the `Mbuf` invariant promises and the in-place
/// writes (`data_mut`, `append`) rely on: reference count 1 (no clone of the
/// mbuf shares its bytes) and a direct buffer (`RTE_MBUF_DIRECT`: neither
/// an indirect mbuf attached to another's data nor an external buffer).
/// A PMD or a caller that broke this would otherwise have the frame path
/// decrypt bytes another packet still reads.
///
/// # Safety
/// `m` must point at a valid mbuf.
#[inline]
unsafe fn debug_check_exclusive(m: *mut sys::rte_mbuf) {
    #[cfg(debug_assertions)]
    {
        // SAFETY: `m` is a valid mbuf (contract); rte_mbuf_refcnt_read only
        // reads its reference count.
        let refs = unsafe { sys::rte_mbuf_refcnt_read(m) };
        debug_assert_eq!(refs, 1, "an owned mbuf with reference count {refs}");
        // SAFETY: `m` is a valid mbuf (contract); only a plain field is read.
        let flags = unsafe { (*m).ol_flags };
        let attached = flags & (sys::RTE_MBUF_F_INDIRECT | sys::RTE_MBUF_F_EXTERNAL);
        debug_assert_eq!(attached, 0, "an owned mbuf that is not direct (ol_flags {flags:#x})");
    }
    #[cfg(not(debug_assertions))]
    let _ = m;
}

/// First data byte of a segment.
fn seg_ptr(m: &sys::rte_mbuf) -> *mut u8 {
    m.buf_addr.cast::<u8>().wrapping_add(usize::from(m.data_off))
}

/// The data bytes of one segment.
///
/// # Safety
/// `m` must be a valid mbuf whose bytes are not mutated while the returned
/// slice lives (`'a` is tied to the owning `Mbuf` borrow by the callers).
unsafe fn seg_slice<'a>(m: &sys::rte_mbuf) -> &'a [u8] {
    let (ptr, len) = (seg_ptr(m), usize::from(m.data_len));
    #[cfg(debug_assertions)]
    {
        // Checks the field arithmetic above against DPDK's own macro.
        // SAFETY: rte_pktmbuf_mtod only computes buf_addr + data_off.
        let c = unsafe { sys::attnet_pktmbuf_mtod(std::ptr::from_ref(m).cast_mut()) };
        debug_assert_eq!(c.cast::<u8>(), ptr, "rte_mbuf layout mismatch");
    }
    // SAFETY: see the callers; data_off + data_len <= buf_len.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

/// Iterator over the segments of an [`Mbuf`] chain.
pub struct Segments<'a> {
    next: *const sys::rte_mbuf,
    _mbuf: PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // SAFETY: `next` is the head (a valid mbuf borrowed for 'a) or a
        // `next` link of the chain (valid, owned with the head), or NULL.
        let m = unsafe { self.next.as_ref() }?;
        self.next = m.next;
        // SAFETY: the chain is borrowed shared for 'a through the head.
        Some(unsafe { seg_slice(m) })
    }
}

/// Up to [`MAX_BURST`] owned mbufs: what [`crate::RxQueue::recv_burst`]
/// fills and [`crate::TxQueue::send_burst`] sends. Frees what it still
/// holds on drop, in one `rte_pktmbuf_free_bulk` call.
pub struct MbufBurst {
    /// The first `len` entries are owned mbufs (the `Mbuf` invariant); the
    /// rest are scratch space DPDK writes into.
    mbufs: [*mut sys::rte_mbuf; MAX_BURST],
    len: usize,
}

// SAFETY: owns its mbufs exclusively, like `Mbuf` (which is Send).
unsafe impl Send for MbufBurst {}
// SAFETY: `&MbufBurst` only gives out `&Mbuf` (which is Sync).
unsafe impl Sync for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBurst {
    /// An empty burst.
    pub const fn new() -> MbufBurst {
        MbufBurst { mbufs: [std::ptr::null_mut(); MAX_BURST], len: 0 }
    }

    /// Mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it holds none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when it holds [`MAX_BURST`].
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// The mbufs held.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: `Mbuf` is a repr(transparent) NonNull<rte_mbuf>, the same
        // layout as `*mut rte_mbuf`, and the first `len` pointers are owned,
        // non-null mbufs; the slice borrows `self`, so they cannot be freed
        // or moved out meanwhile.
        unsafe { std::slice::from_raw_parts(self.mbufs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs held, mutable (to rewrite packets in place).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; `&mut self` makes the borrow unique. A
        // caller may swap `Mbuf`s within the slice, which keeps every entry
        // an owned mbuf.
        unsafe { std::slice::from_raw_parts_mut(self.mbufs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterates over the mbufs held.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates mutably over the mbufs held.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Adds an mbuf at the end; gives it back when the burst is full.
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(m);
        }
        self.mbufs[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Takes the last mbuf out.
    pub fn pop(&mut self) -> Option<Mbuf> {
        self.len = self.len.checked_sub(1)?;
        let p = std::mem::replace(&mut self.mbufs[self.len], std::ptr::null_mut());
        // SAFETY: entry `len` (before the decrement) was an owned mbuf,
        // now removed from the burst, so ownership moves to the `Mbuf`.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }

    /// Frees every mbuf held, in one `rte_pktmbuf_free_bulk` call.
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        let n = self.len;
        self.len = 0;
        // SAFETY: the first `n` entries are owned mbufs, removed from the
        // burst just above, so none is used again.
        unsafe { free_bulk(self.mbufs.as_mut_ptr(), n) }
    }

    /// Calls `f` with the first segment of every mbuf as a mutable buffer:
    /// the shape `dataplane::backend::RxQueue::rx_burst` hands to the frame
    /// path (which decrypts in place).
    pub fn with_data_mut<R>(&mut self, f: impl FnOnce(&mut [&mut [u8]]) -> R) -> R {
        let mut bufs: [&mut [u8]; MAX_BURST] = std::array::from_fn(|_| <&mut [u8]>::default());
        let n = self.len;
        for (slot, m) in bufs.iter_mut().zip(self.iter_mut()) {
            *slot = m.data_mut();
        }
        f(&mut bufs[..n])
    }

    /// Room left.
    pub(crate) fn spare(&self) -> usize {
        MAX_BURST - self.len
    }

    /// Pointer to the first free entry, for DPDK to write up to
    /// [`spare`](Self::spare) mbufs into.
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.mbufs[self.len..].as_mut_ptr()
    }

    /// Records that DPDK wrote `n` owned mbufs at [`spare_ptr`](Self::spare_ptr).
    ///
    /// # Safety
    /// `n <= spare()`, and those entries now hold owned mbufs.
    pub(crate) unsafe fn commit(&mut self, n: usize) {
        debug_assert!(n <= self.spare());
        for &m in &self.mbufs[self.len..self.len + n] {
            // SAFETY: DPDK wrote `n` valid mbufs there (contract).
            unsafe { debug_check_exclusive(m) };
        }
        self.len += n;
    }

    /// Pointer to the held mbufs, for DPDK to take over.
    pub(crate) fn raw_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.mbufs.as_mut_ptr()
    }

    /// Forgets the held mbufs after DPDK took them over (sent or freed).
    pub(crate) fn forget_all(&mut self) {
        self.len = 0;
    }

    /// After the first `sent` mbufs were taken over by DPDK, moves the rest
    /// to the front.
    pub(crate) fn keep_unsent(&mut self, sent: usize) {
        let sent = sent.min(self.len);
        self.mbufs.copy_within(sent..self.len, 0);
        self.len -= sent;
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for MbufBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Frees `n` mbufs with one call.
///
/// # Safety
/// `p[..n]` are owned mbufs not used afterwards.
pub(crate) unsafe fn free_bulk(p: *mut *mut sys::rte_mbuf, n: usize) {
    // MAX_BURST fits u32, and callers pass at most that.
    debug_assert!(n <= MAX_BURST);
    // SAFETY: per the contract; rte_pktmbuf_free_bulk frees every segment
    // of each mbuf to its own pool.
    unsafe { sys::rte_pktmbuf_free_bulk(p, n as u32) }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::OnceLock;

    use super::*;
    use crate::{Eal, Mempool, DEFAULT_DATA_ROOM};

    /// An EAL without hugepages or devices, and a pool, for this test binary.
    fn pool() -> &'static Mempool {
        static POOL: OnceLock<(Eal, Mempool)> = OnceLock::new();
        &POOL
            .get_or_init(|| {
                let prefix = format!("--file-prefix=attnet-mbuf-unit-{}", std::process::id());
                let args = [
                    "--no-huge",
                    "-m",
                    "128",
                    "--no-pci",
                    "--no-shconf",
                    "--iova-mode=va",
                    "--log-level=*:error",
                    &prefix,
                ];
                let eal = Eal::init(&args).expect("EAL without hugepages");
                let pool = Mempool::new("mbuf_unit", 63, 0, DEFAULT_DATA_ROOM, None).expect("pool");
                (eal, pool)
            })
            .1
    }

    /// Runs `f` on `m` and tells whether a debug assertion fired.
    fn asserts(m: &mut Mbuf, f: impl FnOnce(&mut Mbuf)) -> bool {
        catch_unwind(AssertUnwindSafe(|| f(m))).is_err()
    }

    /// A second reference or an attached buffer breaks the invariant the
    /// in-place writes rely on: debug builds stop there.
    #[test]
    fn shared_or_attached_mbufs_are_caught() {
        let mut m = pool().alloc().expect("an mbuf");
        assert!(!asserts(&mut m, |m| assert!(m.append(8).is_some())), "a fresh mbuf is exclusive");
        assert!(!asserts(&mut m, |m| m.data_mut().fill(1)));
        let p = m.ptr.as_ptr();
        // SAFETY: `p` is the valid mbuf `m` owns; the count is put back below.
        unsafe { sys::rte_mbuf_refcnt_set(p, 2) };
        assert!(asserts(&mut m, |m| m.data_mut().fill(2)), "reference count 2");
        assert!(
            asserts(&mut m, |m| {
                let _ = m.append(1);
            }),
            "reference count 2"
        );
        // SAFETY: as above.
        unsafe { sys::rte_mbuf_refcnt_set(p, 1) };
        for flag in [sys::RTE_MBUF_F_INDIRECT, sys::RTE_MBUF_F_EXTERNAL] {
            // SAFETY: `p` is valid and owned; the flag is cleared again
            // before the mbuf is freed (a free would try to detach it).
            unsafe { (*p).ol_flags |= flag };
            assert!(asserts(&mut m, |m| m.data_mut().fill(3)), "flag {flag:#x}");
            // SAFETY: as above.
            unsafe { (*p).ol_flags &= !flag };
        }
        assert!(!asserts(&mut m, |m| m.data_mut().fill(4)));
        drop(m);
    }
}
