//! The Environment Abstraction Layer: initialised once per process.

use std::cell::Cell;
use std::ffi::{c_char, c_int, CString};
use std::sync::OnceLock;

use super::{clear_errno, errno_error, lifecycle, ret_error, running};
use crate::{sys, Error};

/// argv[0] handed to `rte_eal_init` (EAL log lines start with it).
const PROGRAM: &str = "attnet";

/// The outcome of the one `rte_eal_init` call of this process, with the
/// arguments it was given.
static EAL: OnceLock<Result<Vec<String>, Error>> = OnceLock::new();

/// Proof that the EAL is initialised: a handle that costs nothing to copy.
/// Obtained from [`Eal::init`] (or [`Eal::get`] afterwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises the EAL with `args` (EAL options only, without a program
    /// name: `["--no-huge", "-m", "512", "--vdev=net_null0"]`).
    ///
    /// Once per process: DPDK cannot initialise twice. Later calls with the
    /// same arguments return the same handle; with other arguments,
    /// [`Error::AlreadyInitialized`]; after a failed first call, that
    /// call's error again (DPDK cannot retry either). Concurrent first
    /// calls wait for one another.
    ///
    /// The calling thread becomes the main lcore (lcore id 0 by default;
    /// it uses mempool caches). `rte_eal_init` pins it to the main lcore's
    /// CPU; this function puts back the thread's CPU set afterwards, so
    /// threads it spawns later are not all confined to that one CPU
    /// (attnet pins its data cores itself). Every other lcore of `-l`
    /// (default: one per CPU) gets an EAL worker thread that idles, as
    /// attnet launches nothing on them: `-l 0` avoids those, and leaves
    /// more ids for [`Eal::register_thread`].
    pub fn init(args: &[&str]) -> Result<Eal, Error> {
        let outcome = EAL.get_or_init(|| init_once(args));
        match outcome {
            Ok(first) if first.iter().map(String::as_str).eq(args.iter().copied()) => Ok(Eal { _private: () }),
            Ok(first) => Err(Error::AlreadyInitialized { args: first.clone() }),
            Err(e) => Err(e.clone()),
        }
    }

    /// The handle, if [`Eal::init`] succeeded in this process.
    pub fn get() -> Option<Eal> {
        matches!(EAL.get(), Some(Ok(_))).then_some(Eal { _private: () })
    }

    /// The arguments the EAL was initialised with.
    pub fn args(&self) -> &'static [String] {
        match EAL.get() {
            Some(Ok(args)) => args,
            _ => &[],
        }
    }

    /// Gives the calling thread an lcore id (`rte_thread_register`), so its
    /// mempool operations use the per-lcore caches; returns the id. Idempotent:
    /// a thread that already has one (the main lcore, or registered before)
    /// gets it back. The id is released when the thread exits.
    ///
    /// Fails with `ENOMEM` when all `RTE_MAX_LCORE` (128) ids are taken.
    pub fn register_thread(&self) -> Result<u32, Error> {
        if let Some(id) = self.lcore_id() {
            return Ok(id);
        }
        // Held across the call: cleanup cannot run in between.
        let _running = running()?;
        clear_errno();
        // SAFETY: the EAL is initialised and not cleaned up (checked above,
        // lock held). rte_thread_register only touches the lcore table
        // (under its own lock) and this thread's lcore id.
        if unsafe { sys::rte_thread_register() } != 0 {
            return Err(errno_error("rte_thread_register"));
        }
        REGISTERED.with(|r| r.registered.set(true));
        self.lcore_id().ok_or_else(|| Error::Busy("rte_thread_register gave no lcore id".to_string()))
    }

    /// The calling thread's lcore id, if it has one.
    pub fn lcore_id(&self) -> Option<u32> {
        // SAFETY: rte_lcore_id only reads this thread's lcore id (a
        // thread-local variable).
        let id = unsafe { sys::rte_lcore_id() };
        (id != sys::LCORE_ID_ANY).then_some(id)
    }

    /// NUMA socket of the calling thread (`rte_socket_id`), `None` when
    /// unknown (a thread that is not an lcore, `--no-huge` on one node).
    pub fn socket_id(&self) -> Option<u32> {
        // SAFETY: reads this thread's socket id (thread-local); valid after
        // rte_eal_init, which the Eal handle proves.
        let s = unsafe { sys::rte_socket_id() };
        (s as c_int != sys::SOCKET_ID_ANY).then_some(s)
    }

    /// Ethernet ports available (probed devices), as `(id, name)`.
    pub fn ports(&self) -> Vec<(u16, String)> {
        let Ok(_running) = running() else { return Vec::new() };
        let mut out = Vec::new();
        let mut id: u64 = 0;
        loop {
            // SAFETY: rte_eth_find_next only reads the ethdev table; the
            // EAL is running (lock held).
            let next = unsafe { sys::rte_eth_find_next(id as u16) } as u64;
            if next >= u64::from(sys::RTE_MAX_ETHPORTS) {
                break;
            }
            out.push((next as u16, super::port::port_name(next as u16).unwrap_or_default()));
            id = next + 1;
            if id >= u64::from(sys::RTE_MAX_ETHPORTS) {
                break;
            }
        }
        out
    }

    /// `rte_eal_cleanup`: releases the EAL's memory (hugepage files, runtime
    /// directory). Refused with [`Error::Busy`] while any mempool (even a
    /// leaked one) or port is alive, since DPDK forbids every call after
    /// it; afterwards every constructor fails with [`Error::CleanedUp`] and
    /// the EAL cannot be initialised again in this process.
    pub fn cleanup(self) -> Result<(), Error> {
        let mut l = lifecycle();
        if l.cleaned {
            return Err(Error::CleanedUp);
        }
        if l.live > 0 {
            return Err(Error::Busy(format!("{} mempools or ports are still alive (or leaked)", l.live)));
        }
        REGISTERED.with(|r| r.registered.set(false));
        // SAFETY: no pool, mbuf or port of this crate exists (live == 0
        // under the lock, and every creation happens under it), so nothing
        // calls into DPDK after this; `cleaned` stops later calls.
        let ret = unsafe { sys::rte_eal_cleanup() };
        l.cleaned = true;
        if ret < 0 {
            return Err(ret_error("rte_eal_cleanup", ret));
        }
        Ok(())
    }
}

/// Releases the lcore id of a thread that called `register_thread`, when
/// the thread exits.
struct Registration {
    registered: Cell<bool>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.registered.get() {
            return;
        }
        let l = lifecycle();
        if !l.cleaned {
            // SAFETY: this thread registered and the EAL still runs (lock
            // held); unregistering frees its lcore id. Mbufs in that lcore's
            // mempool caches stay counted as available and serve the next
            // thread that gets the id.
            unsafe { sys::rte_thread_unregister() };
        }
    }
}

thread_local! {
    static REGISTERED: Registration = const { Registration { registered: Cell::new(false) } };
}

fn init_once(args: &[&str]) -> Result<Vec<String>, Error> {
    let mut owned = Vec::with_capacity(args.len() + 1);
    for a in std::iter::once(PROGRAM).chain(args.iter().copied()) {
        owned.push(CString::new(a).map_err(|_| Error::InvalidArgument(format!("EAL argument {a:?} has a NUL")))?);
    }
    // rte_eal_init may keep pointers into argv (and permutes the array):
    // both live for the rest of the process, as in a C main().
    let owned: &'static [CString] = Vec::leak(owned);
    let argv: &'static mut [*mut c_char] =
        Vec::leak(owned.iter().map(|c| c.as_ptr().cast_mut()).chain(std::iter::once(std::ptr::null_mut())).collect());
    let argc = c_int::try_from(owned.len()).map_err(|_| Error::InvalidArgument("too many EAL arguments".into()))?;

    let cpus = affinity::get();
    clear_errno();
    // SAFETY: called once per process (OnceLock), with argc/argv shaped as
    // for main(): argc strings, NUL-terminated, followed by a NULL, all
    // alive forever. rte_eal_init reads and reorders them.
    let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        let mut e = errno_error("rte_eal_init");
        if let Error::Dpdk { code: libc::EACCES, message, .. } = &mut e {
            // What DPDK 22.11 says when it finds no free hugepages.
            message.push_str(
                " (rte_eal_init reports missing hugepages so: reserve some, see HugePages_Free in /proc/meminfo, \
                 or pass --no-huge)",
            );
        }
        return Err(e);
    }
    if let Some(cpus) = cpus {
        affinity::set(&cpus);
    }
    Ok(args.iter().map(|s| s.to_string()).collect())
}

/// The calling thread's CPU set, saved around `rte_eal_init`.
mod affinity {
    /// The calling thread's CPU set, if the kernel tells.
    pub fn get() -> Option<libc::cpu_set_t> {
        // SAFETY: cpu_set_t is plain data; zeroed is an empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is the calling thread; the size matches the buffer.
        let ret = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        (ret == 0).then_some(set)
    }

    /// Sets the calling thread's CPU set (best effort: a failure leaves the
    /// thread where the EAL put it).
    pub fn set(set: &libc::cpu_set_t) {
        // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of
        // the size given.
        let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    }
}
