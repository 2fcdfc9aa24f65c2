//! pktgen: an ATT-aware traffic generator. It builds real, signed, sealed
//! ATT v1 frames with `dataplane`'s emitters from a pool of pre-signed
//! transactions, gives every session fresh counters (`unix_seconds << 32`
//! onward, spec "Counters"), mixes in a known share of malformed traffic,
//! paces datagrams against absolute time and sends them in `sendmmsg`
//! batches. Its counters say what was sent and what the receiver must
//! make of it. It is meant to grow into the line-rate generator.
#![deny(unsafe_code)]

pub mod plan;
pub mod send;
pub mod sendmmsg;

pub use plan::{Plan, TxPool};
pub use send::{send, SendConfig, SendReport};
