//! DPDK bindings for attnet, generated with bindgen from the installed DPDK
//! (found through pkg-config), with wrappers for DPDK's `static inline`
//! functions and a small safe API above them (EAL, mempools, ports, RX/TX
//! queues, mbuf bursts). This crate is the only home of DPDK `unsafe`; it
//! is filled by the DPDK backend work and is empty until then.
#![forbid(unsafe_code)]
