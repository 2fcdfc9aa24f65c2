//! The control plane of attnet: the session handshake (HELLO/WELCOME,
//! X25519 and HKDF key agreement), the ledger of accounts and blocks that
//! survives crashes, and the contribution-weighted delegated consensus (PoC
//! with PoR penalties) that orders sharded transactions into blocks. It
//! builds on `dataplane`'s wire codec and is filled by the sessions/ledger
//! and consensus work.
#![forbid(unsafe_code)]
