//! The control plane of attnet: what happens to a transaction after the
//! data plane has accepted it (well-formed, signature verified).
//!
//! - [`genesis`]: the genesis file (network id, opening balances) and its
//!   hash, the parent of block 1;
//! - [`ledger`]: admission: fee, sender and nonce order, with a bounded,
//!   time-limited wait for nonce gaps;
//! - [`state`]: what the nine transaction kinds do: balances, stake,
//!   votes, producers, connections and inboxes, fees to producers;
//! - [`merkle`]: the RFC 6962 Merkle root over a block's transactions;
//! - [`block`]: block headers (versioned 246-byte encoding: producer,
//!   transaction and state roots, fields reserved for consensus) and the
//!   builder that cuts applied transactions into blocks on an interval or
//!   at a cap;
//! - [`root`]: the incremental state root over every account;
//! - [`consensus`]: the [`consensus::Finalizer`] stage, for now the
//!   single-node one;
//! - [`chain`]: the glue the node's control thread drives;
//! - [`runner`]: that control thread (rings from the data cores in, final
//!   blocks out);
//! - [`receipts`]: where pending transactions came from, the RECEIPT
//!   indications sent when their block is sealed, and the relay's transmit
//!   half for every other reply;
//! - [`handshake`]: the relay's side of HELLO/WELCOME and cookies, session
//!   ids, and the sessions' lifecycle;
//! - [`queries`]: QUERY/ANSWER about accounts and transactions;
//! - [`store`]: the data directory (block log, snapshots, recovery, the
//!   configured sessions' receive counters);
//! - [`reserve`]: the configured sessions' sending counters, reserved
//!   ahead on disk.
//!
//! Everything but `runner`, `receipts`, `handshake`, `admin`, `store` and `reserve` is pure: no I/O except reading the genesis file,
//! no clocks (every call that needs the time takes `now_ms`), no threads;
//! those modules also deny `clippy::indexing_slicing`, so they cannot panic
//! on an index.
//!
//! Still to come: persistence that survives crashes, and the
//! contribution-weighted delegated consensus (PoC with PoR penalties)
//! replacing the single-node finalizer.
#![forbid(unsafe_code)]

pub mod admin;
pub mod bft;
pub mod block;
pub mod chain;
pub mod consensus;
pub mod election;
pub mod genesis;
pub mod handshake;
pub mod ledger;
pub mod merkle;
pub mod queries;
pub mod receipts;
pub mod replica;
pub mod reserve;
pub mod root;
pub mod state;
pub mod store;

pub use block::{Block, BlockBuilder, BlockConfig, BlockHeader, Stamp};
pub use chain::{Chain, ChainConfig, ChainCounters};
pub use consensus::{Finalizer, SingleNode};
pub use genesis::{Genesis, GenesisAccount, GenesisValidator};
pub use ledger::{Ledger, LedgerConfig, LedgerCounters, Refusal};
pub use state::{Account, Producer, Record, State, Supply};
pub mod runner;
