//! Byzantine fault-tolerant finality between validators: malachite's
//! Tendermint core ([`engine`]), instantiated with the node's types
//! ([`context`]), speaking the channel-1006 messages of [`codec`] over the
//! validator links of [`link`].
//! `docs/CONSENSUS.md` gives the evaluation, the choice and the design.

pub mod codec;
pub mod context;
pub mod engine;
pub mod link;
pub mod wal;

/// The engine's round timeouts (the node sets them from its configuration).
pub use arc_malachitebft_core_types::{LinearTimeouts, NilOrVal};
pub use codec::{Message, RoundVote};
pub use context::{Address, BlockId, Ctx, Height, Sig, Validator, ValidatorSet};
pub use engine::{equivocation, Config, Engine, Output, Stats, Wal};
pub use wal::FileWal;
