//! Deterministic keys, accounts and frames for tests, benchmarks and
//! examples: the shared vectors' session-key rule, signing keys derived
//! from a label, and sealed TX_BATCH frames built with [`crate::emit`].

use crate::emit::{emit_frame, emit_signed_tx, FrameSpec, TxFields};
use crate::wire::tx::{emit_batch, Kind};
use crate::FramePath;
use ed25519_zebra::SigningKey;
use sha2::{Digest, Sha256};

pub fn sha(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The vectors' key rule.
pub fn c2r(session: u16) -> [u8; 32] {
    sha(&format!("att-vector-session/{session}/c2r"))
}

pub fn r2c(session: u16) -> [u8; 32] {
    sha(&format!("att-vector-session/{session}/r2c"))
}

/// A relay path knowing sessions 0..16 with the vectors' keys.
pub fn relay(network_id: u32) -> FramePath {
    let mut fp = FramePath::new(network_id);
    for s in 0..16u16 {
        fp.sessions.install(s as u32, &c2r(s), &r2c(s), 0).unwrap();
    }
    fp
}

pub fn signer(i: u8) -> SigningKey {
    SigningKey::from(sha(&format!("test-account/{i}")))
}

/// Emits `n` signed transactions from account `who`, returning (bytes, ids).
pub fn txs(who: u8, n: usize, memo_len: usize, network_id: u32) -> (Vec<Vec<u8>>, Vec<[u8; 32]>) {
    let sk = signer(who);
    let memo = vec![b'm'; memo_len];
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let mut t = Vec::new();
        let id = emit_signed_tx(
            &sk,
            network_id,
            &TxFields { kind: Kind::Message, to: [7; 32], nonce: i as u64 + 1, amount: 10, fee: 1, memo: &memo },
            &mut t,
        );
        out.push(t);
        ids.push(id);
    }
    (out, ids)
}

/// A sealed TX_BATCH frame for `session` with the vectors' key.
pub fn frame(session: u16, counter: u64, txs: &[Vec<u8>], compress: bool) -> Vec<u8> {
    frame_on(crate::wire::mcs::channel::TRANSACTIONS, session, counter, txs, compress)
}

/// As [`frame`], on another channel.
pub fn frame_on(channel: u16, session: u16, counter: u64, txs: &[Vec<u8>], compress: bool) -> Vec<u8> {
    let mut body = Vec::new();
    emit_batch(txs.iter().map(|t| &t[..]), &mut body);
    let key = crate::crypto::AeadKey::new(&c2r(session));
    let mut out = Vec::with_capacity(body.len() + 64);
    let spec = FrameSpec { compress, channel, ..FrameSpec::tx_batch(session) };
    emit_frame(&spec, &body, Some((&key, counter)), &mut out).unwrap();
    out
}
