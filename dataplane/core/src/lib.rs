//! The ATT v1 core: the wire codec, AES-256-GCM, the anti-replay window,
//! sessions, the handshake's crypto, LZ4, Ed25519 batch verification, the
//! frame path that strings them together, the per-core id filter and the
//! plain types that travel between data cores and the control thread
//! (shard batches, routes, commands).
//!
//! No I/O, no threads, no clock and no OS randomness: the host (the
//! `dataplane` crate's backends and pipelines, the control thread, the
//! traffic generator) passes in the counter start, the time and the seed
//! of every random number generator. `scripts/check-core.sh` (run by the
//! test command) fails if this crate gains a dependency on `io-uring`,
//! `ffi` or `libc`, or a use of the clock or of an OS random source.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod budget;
pub mod command;
pub mod copies;
pub mod crypto;
pub mod dedup;
pub mod emit;
pub mod exception;
pub mod handshake;
pub mod latency;
pub mod lz4;
pub mod offer;
pub mod path;
pub mod peer;
pub mod replay;
pub mod reply;
pub mod session;
pub mod shard;
pub mod testkit;
pub mod verdict;
pub mod verify;
pub mod wire;

pub use path::{AcceptedTx, Burst, ControlFrame, Depth, FramePath, FrameRecord, TxLoc, VerifyCost};
pub use peer::Peer;
pub use verdict::{Counters, DropReason, TxDrop, Verdict};

/// Most datagrams one burst hands over (every backend's burst size).
pub const MAX_BURST: usize = 64;
