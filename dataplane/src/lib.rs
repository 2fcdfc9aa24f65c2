//! The ATT v1 data plane: the wire codec, AES-256-GCM, the anti-replay
//! window, the session table, LZ4, Ed25519 batch verification and the frame
//! path that strings them together, with no I/O and no clocks. Later
//! stages (I/O backends, per-core pipelines, sharding rings) build on this
//! crate; `unsafe` is denied here and will be allowed only in the named
//! hot-path modules that need it.
#![deny(unsafe_code)]

pub mod backend;
pub mod crypto;
pub mod dedup;
pub mod emit;
pub mod lz4;
pub mod path;
pub mod pipeline;
pub mod replay;
pub mod session;
pub mod testkit;
pub mod verdict;
pub mod verify;
pub mod wire;

pub use path::{AcceptedTx, Burst, Depth, FramePath, FrameRecord, TxLoc};
pub use verdict::{Counters, DropReason, TxDrop, Verdict};
