//! The safe API over the generated bindings. Every `unsafe` block here says
//! which DPDK invariant makes it sound (and clippy holds that line).
#![deny(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

use std::ffi::CStr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::sys;
use crate::Error;

mod eal;
mod mbuf;
mod mempool;
mod port;

pub use eal::Eal;
pub use mbuf::{Mbuf, MbufBurst, Segments};
pub use mempool::{leaked_mempools, Mempool};
pub use port::{Port, RxQueue, TxQueue};

// The constants the public API repeats must match the headers it was built
// against.
const _: () = assert!(crate::MAX_BURST <= u16::MAX as usize);
const _: () = assert!(crate::DEFAULT_DATA_ROOM as u32 == sys::RTE_MBUF_DEFAULT_BUF_SIZE);

/// This build has DPDK.
pub fn unavailable_reason() -> Option<&'static str> {
    None
}

/// The DPDK release the library reports at run time (`rte_version()`,
/// e.g. "DPDK 22.11.11"); `None` without DPDK.
pub fn dpdk_version() -> Option<&'static str> {
    // SAFETY: rte_version() returns a pointer to a static, NUL-terminated
    // string in librte_eal and may be called before rte_eal_init.
    let v = unsafe { CStr::from_ptr(sys::rte_version()) };
    v.to_str().ok()
}

/// Process-wide bookkeeping of what is alive, so that `Eal::cleanup` can
/// refuse while anything still points into DPDK memory.
struct Lifecycle {
    /// Mempools (freed or leaked ones still count: a leaked pool's mbufs
    /// are still out there) and ports alive.
    live: usize,
    cleaned: bool,
}

static LIFECYCLE: Mutex<Lifecycle> = Mutex::new(Lifecycle { live: 0, cleaned: false });

fn lifecycle() -> MutexGuard<'static, Lifecycle> {
    // The guarded data stays consistent whatever panicked while holding it.
    LIFECYCLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks the lifecycle after checking the EAL runs: resources are created
/// under this lock so cleanup can never overlap a creation.
fn running() -> Result<MutexGuard<'static, Lifecycle>, Error> {
    if Eal::get().is_none() {
        return Err(Error::NotInitialized);
    }
    let l = lifecycle();
    if l.cleaned {
        return Err(Error::CleanedUp);
    }
    Ok(l)
}

impl Lifecycle {
    /// A resource (pool or port) was created; called with the lock from
    /// [`running`] still held.
    fn retain(&mut self) {
        self.live += 1;
    }

    /// A resource was destroyed; called with the lock held across the
    /// destruction, so control-path calls never overlap.
    fn release(&mut self) {
        self.live = self.live.saturating_sub(1);
    }
}

/// `rte_strerror(code)` as a `String`.
fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a NUL-terminated
    // string: a static one, or a per-lcore (thread-local) buffer that stays
    // valid on this thread until its next call; we copy it at once.
    let s = unsafe { CStr::from_ptr(sys::rte_strerror(code)) };
    s.to_string_lossy().into_owned()
}

/// An error from a DPDK call that reports through `rte_errno` (returns -1
/// or NULL). Must run on the thread that made the call: rte_errno is
/// thread-local.
fn errno_error(op: &'static str) -> Error {
    // SAFETY: reads this thread's rte_errno through a C helper (it is a
    // thread-local variable behind a macro); no other effect.
    let code = unsafe { sys::attnet_rte_errno() };
    Error::Dpdk { op, code, message: strerror(code) }
}

/// An error from a DPDK call that returns a negative errno.
fn ret_error(op: &'static str, ret: i32) -> Error {
    let code = ret.saturating_neg();
    Error::Dpdk { op, code, message: strerror(code) }
}

/// Turns a DPDK `int` return (0 or positive: success; negative: -errno)
/// into a `Result`.
fn check(op: &'static str, ret: i32) -> Result<i32, Error> {
    if ret < 0 {
        Err(ret_error(op, ret))
    } else {
        Ok(ret)
    }
}

/// Clears this thread's rte_errno before a call that reports through it,
/// so a stale value is never reported.
fn clear_errno() {
    // SAFETY: writes this thread's rte_errno through a C helper.
    unsafe { sys::attnet_rte_errno_clear() }
}
