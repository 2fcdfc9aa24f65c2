//! DPDK bindings for attnet and a small safe API above them.
//!
//! `build.rs` finds the installed DPDK with pkg-config (22.11.x only),
//! generates allowlisted bindings with bindgen from `src/wrapper.h`, and
//! compiles bindgen's wrappers of DPDK's `static inline` functions
//! (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, …) with the `cc` crate. This
//! crate is the only home of DPDK `unsafe`: the generated module (`sys`) and
//! the safe wrappers (`dpdk/`) opt back in; everything else denies it.
//!
//! Without DPDK (not installed, another release, no libclang) the crate
//! still builds: every constructor returns [`Error::Unavailable`] naming
//! what to install, and [`AVAILABLE`] is false. `ATTNET_REQUIRE_DPDK=1` at
//! build time turns that into a build failure.
//!
//! # The API
//!
//! - [`Eal::init`] once per process (a second call with the same arguments
//!   returns the same handle; with other arguments, an error).
//! - [`Mempool::new`] makes an mbuf pool; [`Mempool::alloc`] and
//!   [`Mbuf::append`] build packets.
//! - [`Port::open`] configures (RSS over IP/UDP when the driver can hash
//!   that), sets up queues, starts; [`Port::rx_queue`] / [`Port::tx_queue`]
//!   hand each queue out once; stop and close happen when the port and all
//!   its queues are dropped.
//! - [`RxQueue::recv_burst`] fills a [`MbufBurst`] (up to [`MAX_BURST`]);
//!   [`TxQueue::send_burst`] sends one and frees what the driver refused.
//!
//! # Threads
//!
//! - `Eal`, `Mempool` and `Port` are `Send + Sync`: any thread may allocate
//!   from a pool, read port statistics, or open and drop ports.
//! - `RxQueue` and `TxQueue` are `Send` but not `Sync`, and each queue of a
//!   port is handed out once: DPDK's burst functions for one queue must
//!   never run on two threads at once. Move each queue to the thread (data
//!   core) that polls it.
//! - `Mbuf` and `MbufBurst` are `Send`: a packet may be freed on another
//!   thread than the one that received it.
//! - Mempool per-lcore caches are used only by threads that have an lcore
//!   id: the thread that called [`Eal::init`] (the main lcore) and threads
//!   that called [`Eal::register_thread`]. Any other thread still works,
//!   going to the pool's shared ring every time (slower, still correct).
//!   Data cores should call `register_thread` first.
//!
//! # Installing and running
//!
//! Debian 12: `apt-get install libdpdk-dev pkg-config libclang-dev` (plus a
//! C compiler). `libdpdk-dev` pulls in every `librte-*` runtime package,
//! the poll-mode drivers included; the EAL loads them at init from its
//! plugin directory (`/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`), which is
//! why the crate links DPDK's shared libraries rather than static ones.
//! The `clang` binary is not needed (bindgen loads libclang).
//!
//! Without hugepages, pass `--no-huge -m <MB>` (IOVA is then virtual
//! addresses); a missing `--no-huge` shows up as `rte_eal_init failed:
//! Permission denied`. `--no-shconf` (or `--in-memory` with hugepages) and a
//! `--file-prefix` of its own keep a process from sharing state with other
//! DPDK processes. The integration tests (`tests/dpdk.rs`) run on virtual
//! devices: `--no-huge -m 512 --no-pci --no-shconf --iova-mode=va
//! --file-prefix=attnet-test-<pid> --log-level=*:error --vdev=net_null0 …`.
//! `cargo run -p ffi --example dpdk_ports -- <EAL args>` lists the ports an
//! EAL command line yields.
//!
//! # Lifetimes
//!
//! An mbuf holds no reference to its pool (that would cost an atomic per
//! packet). Instead a pool is freed only when dropped with every mbuf back
//! in it; dropped with mbufs still out, it is deliberately leaked (and
//! counted, see [`leaked_mempools`]) rather than freed under them. A port
//! keeps its receive pool alive until it is closed.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub use error::Error;

mod config;
pub use config::{PortConfig, PortInfo, PortSpec, PortStats};

#[cfg(attnet_dpdk)]
#[allow(unsafe_code)]
mod sys;

#[cfg(attnet_dpdk)]
#[allow(unsafe_code)]
mod dpdk;
#[cfg(attnet_dpdk)]
use dpdk as imp;

#[cfg(not(attnet_dpdk))]
mod stub;
#[cfg(not(attnet_dpdk))]
use stub as imp;

pub use imp::{dpdk_version, leaked_mempools, Eal, Mbuf, MbufBurst, Mempool, Port, RxQueue, Segments, TxQueue};

/// Most mbufs one [`MbufBurst`] holds (one receive or transmit burst).
pub const MAX_BURST: usize = 64;

/// Whether this build has DPDK (found by `build.rs`).
pub const AVAILABLE: bool = cfg!(attnet_dpdk);

/// Default mbuf data room: 2048 bytes of packet plus DPDK's 128-byte
/// headroom (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = 2048 + 128;

/// Why this build has no DPDK, or `None` when it has.
pub fn unavailable_reason() -> Option<&'static str> {
    imp::unavailable_reason()
}

/// Whether `ATTNET_REQUIRE_DPDK` (set by `scripts/test.sh`) makes a
/// missing DPDK a failure.
pub fn dpdk_required() -> bool {
    std::env::var_os("ATTNET_REQUIRE_DPDK").is_some_and(|v| !v.is_empty() && v != "0")
}

/// For the tests that need DPDK: `false` when this build has it; `true`
/// (skip, the reason printed on stderr with `what`) when it has not and
/// none is required; a panic when it has not and `ATTNET_REQUIRE_DPDK`
/// requires it.
pub fn skip_without_dpdk(what: &str) -> bool {
    let Some(reason) = unavailable_reason() else { return false };
    assert!(!dpdk_required(), "ATTNET_REQUIRE_DPDK is set but this build has no DPDK: {reason}");
    // Straight to stderr: the test harness captures prints of passing tests.
    let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("skipping {what}: {reason}\n"));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_is_consistent() {
        assert_eq!(AVAILABLE, unavailable_reason().is_none());
        // rte_version() needs no EAL.
        assert_eq!(AVAILABLE, dpdk_version().is_some());
        if !AVAILABLE {
            let e = Eal::init(&["--no-huge"]).unwrap_err();
            assert!(matches!(e, Error::Unavailable { .. }));
            assert!(e.to_string().contains("libdpdk-dev"), "{e}");
            assert!(Mempool::new("p", 63, 0, DEFAULT_DATA_ROOM, None).is_err());
            assert!(Eal::get().is_none());
        }
    }

    #[test]
    fn an_empty_burst_needs_no_dpdk() {
        let mut b = MbufBurst::new();
        assert!(b.is_empty() && !b.is_full() && b.pop().is_none());
        b.clear();
        assert_eq!(b.with_data_mut(|bufs| bufs.len()), 0);
    }

    #[test]
    fn port_specs_and_errors_read_well() {
        assert_eq!(PortSpec::from("net_null0"), PortSpec::Name("net_null0"));
        assert_eq!(PortSpec::from(3u16), PortSpec::Id(3));
        let e = Error::Dpdk { op: "rte_eth_dev_configure", code: 22, message: "Invalid argument".into() };
        assert_eq!(e.to_string(), "rte_eth_dev_configure failed: Invalid argument (errno 22)");
        let d = PortConfig::default();
        assert_eq!((d.rx_queues, d.tx_queues, d.rss), (1, 1, true));
    }
}
