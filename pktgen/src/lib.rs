//! pktgen: an ATT-aware traffic generator. It builds real, signed, sealed
//! ATT v1 frames with `dataplane`'s emitters from a pool of pre-signed
//! transactions (signed on every CPU, cached on disk), gives every session
//! fresh counters (`unix_seconds << 32` onward, spec "Counters"), spreads
//! a chosen fraction of hostile datagrams over every drop reason, paces
//! datagrams against absolute time, and writes them to UDP sockets, a
//! pcap file or a DPDK port. It reports what a correct receiver must count
//! ([`Expected`]) and matches the receiver's RECEIPTs to what it sent.
#![deny(unsafe_code)]

pub mod check;
pub mod cli;
pub mod dpdk;
pub mod drive;
pub mod encap;
pub mod handshake;
pub mod out;
pub mod plan;
pub mod presealed;
pub mod progress;
pub mod receipts;
pub mod run;
pub mod sched;
pub mod sendmmsg;
pub mod traffic;

pub use plan::{Plan, PoolSpec, TxPool};
pub use run::{run, Out, RunConfig, RunReport};
pub use sched::Rate;
pub use traffic::{Expected, Generator, Hostile, Lz4, TrafficConfig};
