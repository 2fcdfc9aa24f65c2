//! The host side of the data plane: packet I/O backends (io_uring,
//! recvmmsg, DPDK, pcap replay), the per-core pipelines that run the
//! [`attnet_core`] frame path on their bursts and shard the accepted
//! transactions, and the host services the core does without (the clock
//! for counter starts, OS randomness for the verifier's seed).
//!
//! The core's modules are re-exported under their own names, so
//! `dataplane::wire`, `dataplane::path` and the rest name the same items as
//! `attnet_core::…`. `unsafe` is denied here; the backends that need it
//! opt in module by module.
#![deny(unsafe_code)]

pub mod backend;
pub mod client;
pub mod host;
pub mod pipeline;
pub mod testkit;

pub use attnet_core::{
    batch, budget, crypto, dedup, emit, exception, handshake, lz4, offer, path, peer, replay, reply, session, shard,
    verdict, verify, wire,
};
pub use attnet_core::{
    AcceptedTx, Burst, Counters, Depth, DropReason, FramePath, FrameRecord, Peer, TxDrop, TxLoc, Verdict,
};
