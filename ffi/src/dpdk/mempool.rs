//! Mbuf pools (`rte_pktmbuf_pool_create`).

use std::ffi::{c_int, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::mbuf::{Mbuf, MbufBurst};
use super::{clear_errno, errno_error, lifecycle, running};
use crate::{sys, Error};

/// Pools dropped with mbufs still out, and so never freed.
static LEAKED: AtomicUsize = AtomicUsize::new(0);

/// Mempools dropped while some of their mbufs were still out (held by the
/// program, queued in a driver): kept allocated, since freeing them would
/// leave those mbufs pointing into freed memory. Zero in a correct program.
pub fn leaked_mempools() -> usize {
    LEAKED.load(Ordering::Relaxed)
}

/// A pool of packet mbufs. Cheap to clone (shared handle); freed when the
/// last handle (including the ports that receive into it) is dropped and
/// every mbuf is back.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: a pktmbuf pool uses DPDK's default "ring_mp_mc" ops, whose get and
// put are multi-producer/multi-consumer safe; the per-lcore caches are
// indexed by the calling thread's lcore id, unique per thread (non-lcore
// threads bypass them). The pointer is only freed in Drop, with the last
// handle.
unsafe impl Send for PoolInner {}
// SAFETY: see Send; every operation through `&PoolInner` is thread-safe.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `n_mbufs` mbufs (`rte_pktmbuf_pool_create`). `name`
    /// is unique in the process (DPDK refuses a second pool of the same
    /// name, and names longer than 25 bytes); `cache` mbufs per lcore
    /// (0 for none; at most 512 and `n_mbufs / 1.5`); `data_room` bytes of
    /// buffer per mbuf, DPDK's headroom (128) included
    /// ([`crate::DEFAULT_DATA_ROOM`] for standard frames); on NUMA `socket`
    /// (`None`: any). `n_mbufs` of the form 2^q - 1 uses memory best.
    pub fn new(name: &str, n_mbufs: u32, cache: u32, data_room: u16, socket: Option<u32>) -> Result<Mempool, Error> {
        let cname =
            CString::new(name).map_err(|_| Error::InvalidArgument(format!("mempool name {name:?} has a NUL")))?;
        let socket = match socket {
            Some(s) => c_int::try_from(s).map_err(|_| Error::InvalidArgument(format!("socket {s}")))?,
            None => sys::SOCKET_ID_ANY,
        };
        let mut l = running()?;
        clear_errno();
        // SAFETY: the EAL runs (lifecycle lock held, so cleanup cannot run
        // concurrently); `cname` is a valid C string for the call's
        // duration (DPDK copies the name). Returns NULL with rte_errno set
        // on failure.
        let p = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n_mbufs, cache, 0, data_room, socket) };
        let ptr = NonNull::new(p).ok_or_else(|| errno_error("rte_pktmbuf_pool_create"))?;
        l.retain();
        // SAFETY: `ptr` is the pool just created, valid until freed in Drop.
        let size = unsafe { ptr.as_ref() }.size;
        Ok(Mempool { inner: Arc::new(PoolInner { ptr, name: name.to_string(), size }) })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Mbufs in the pool in all.
    pub fn capacity(&self) -> u32 {
        self.inner.size
    }

    /// Mbufs available (in the pool and in the per-lcore caches). Equals
    /// [`capacity`](Self::capacity) when every mbuf is back.
    pub fn avail(&self) -> u32 {
        // SAFETY: the pool is valid while a handle exists; the count only
        // reads the ring and cache lengths (racy by nature, like DPDK's).
        unsafe { sys::rte_mempool_avail_count(self.inner.ptr.as_ptr()) }
    }

    /// Mbufs out of the pool (held by the program or queued in drivers).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `avail`.
        unsafe { sys::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Takes one empty mbuf (`rte_pktmbuf_alloc`): length 0, default
    /// headroom; fill it with [`Mbuf::append`]. `None` when the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid while a handle exists; allocation is
        // thread-safe (see `Send`). A non-NULL result is a fresh, reset mbuf
        // with reference count 1 owned by nobody else.
        let p = unsafe { sys::rte_pktmbuf_alloc(self.inner.ptr.as_ptr()) };
        NonNull::new(p).map(|p| {
            // SAFETY: see above: the `Mbuf` invariant holds.
            unsafe { Mbuf::from_raw(p) }
        })
    }

    /// Takes `n` empty mbufs at once into `burst` (`rte_pktmbuf_alloc_bulk`:
    /// all or none). Returns false, changing nothing, when the pool has
    /// fewer than `n` or the burst lacks the room.
    pub fn alloc_bulk(&self, burst: &mut MbufBurst, n: usize) -> bool {
        if n > burst.spare() {
            return false;
        }
        // SAFETY: the pool is valid; the burst has room for `n` pointers at
        // `spare_ptr`. On success (0) all `n` are fresh mbufs with reference
        // count 1, now owned by the burst; on failure none was taken.
        unsafe {
            if sys::rte_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), burst.spare_ptr(), n as u32) != 0 {
                return false;
            }
            burst.commit(n);
        }
        true
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("capacity", &self.inner.size)
            .field("avail", &self.avail())
            .finish()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let mut l = lifecycle();
        // SAFETY: the pool is valid until freed below.
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use != 0 {
            // Mbufs are out (held by the program or a driver): freeing now
            // would leave them dangling. Keep the pool (and count it alive,
            // so Eal::cleanup refuses too).
            LEAKED.fetch_add(1, Ordering::Relaxed);
            eprintln!("attnet ffi: mempool {:?} dropped with {in_use} mbufs out; leaking it", self.name);
            return;
        }
        // SAFETY: this is the last handle (no port holds the pool: ports hold
        // a handle until closed) and no mbuf is out, so nothing refers to
        // the pool any more; it is freed exactly once.
        unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        l.release();
    }
}
