//! Deterministic keys, accounts and frames for tests, benchmarks and
//! examples: the shared vectors' session-key rule, signing keys derived
//! from a label, and sealed TX_BATCH frames built with [`crate::emit`].

use crate::emit::{emit_frame, emit_signed_tx, FrameSpec, TxFields};
use crate::wire::tx::{emit_batch, Kind};
use crate::FramePath;
use ed25519_zebra::SigningKey;
use sha2::{Digest, Sha256};

/// The batch verifier's seed in tests (production seeds come from the OS).
pub const TEST_SEED: [u8; 32] = *b"attnet-test-batch-verifier-seed!";

/// SHA-256 of `s`: the derivation of every key here.
pub fn sha(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The vectors' key rule.
pub fn c2r(session: u16) -> [u8; 32] {
    sha(&format!("att-vector-session/{session}/c2r"))
}

/// The vectors' relay-to-client key for `session` (see [`c2r`]).
pub fn r2c(session: u16) -> [u8; 32] {
    sha(&format!("att-vector-session/{session}/r2c"))
}

/// A relay path knowing sessions 0..16 with the vectors' keys.
pub fn relay(network_id: u32) -> FramePath {
    let mut fp = FramePath::new(network_id, TEST_SEED);
    for s in 0..16u16 {
        fp.sessions.install(u32::from(s), &c2r(s), &r2c(s)).unwrap();
    }
    fp
}

/// The signing key of test account `i` (derived from `test-account/{i}`).
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

/// A frame for `session` on `channel` whose sealed plaintext is exactly
/// `plaintext` (share-data header included, however wrong), so tests and
/// fuzzers reach the steps after decryption. `None` if it cannot fit.
pub fn seal_plaintext(session: u16, channel: u16, counter: u64, plaintext: &[u8]) -> Option<Vec<u8>> {
    use crate::wire::security::{ENCRYPTED_HEADER_LEN, FLAG_ENCRYPT, SUITE_AES_256_GCM, TAG_LEN};
    let ud_len = ENCRYPTED_HEADER_LEN + plaintext.len() + TAG_LEN;
    if ud_len > crate::wire::mcs::MAX_PER_LEN {
        return None;
    }
    let mut f = vec![3, 0, 0, 0, 2, 0xF0, 0x80, crate::wire::mcs::KIND_REQUEST];
    f.extend_from_slice(&session.to_be_bytes());
    f.extend_from_slice(&channel.to_be_bytes());
    f.push(crate::wire::mcs::PRIORITY_HIGH);
    if ud_len < 0x80 {
        f.push(ud_len as u8);
    } else {
        f.extend_from_slice(&(0x8000u16 | ud_len as u16).to_be_bytes());
    }
    f.extend_from_slice(&FLAG_ENCRYPT.to_le_bytes());
    f.extend_from_slice(&SUITE_AES_256_GCM.to_le_bytes());
    f.extend_from_slice(&counter.to_le_bytes());
    let pt_at = f.len();
    f.extend_from_slice(plaintext);
    let total = (f.len() + TAG_LEN) as u16;
    f.get_mut(2..4)?.copy_from_slice(&total.to_be_bytes());
    let key = crate::crypto::AeadKey::new(&c2r(session));
    let (aad, body) = f.split_at_mut(pt_at);
    let tag = key.seal_in_place(counter, aad, body);
    f.extend_from_slice(&tag);
    Some(f)
}

/// A sealed frame as its receiver opens it (see [`open_frame`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFrame {
    /// MCS kind: always an indication (0x68).
    pub kind: u8,
    /// Session id (MCS initiator).
    pub session: u16,
    /// MCS channel.
    pub channel: u16,
    /// The frame counter.
    pub counter: u64,
    /// Content kind, `pdu_type2`.
    pub content_kind: u8,
    /// The body, decompressed if it was compressed.
    pub body: Vec<u8>,
}

/// Opens one whole sealed indication (`frame` is exactly one frame) with
/// `key` as its session's receive key, as a client opens a relay's
/// indications: through [`crate::path::open_indication`] with a client
/// table holding that one session. `None` if anything fails.
pub fn open_frame(frame: &[u8], key: &[u8; 32]) -> Option<OpenedFrame> {
    use crate::session::{Role, RxKey, SessionTable};
    let session = crate::path::peek_session(frame)?;
    let mut table = SessionTable::new(Role::Client);
    table.install_rx(&RxKey { id: session, key: *key, window: Default::default(), generation: 0 });
    let mut f = frame.to_vec();
    let mut scratch = Vec::new();
    let o = crate::path::open_indication(&table, &mut f, &mut scratch).ok()?;
    (o.len == frame.len()).then(|| OpenedFrame {
        kind: crate::wire::mcs::KIND_INDICATION,
        session: o.session,
        channel: o.channel,
        counter: o.counter,
        content_kind: o.content_kind,
        body: o.body.to_vec(),
    })
}

/// The frame-path fuzz target's body, shared with the corpus regression
/// test. The first byte picks the mode: even, the rest is a burst of raw
/// datagrams split at `FF FE`; odd, the rest is a plaintext sealed into a
/// valid frame for session 1 (channel 1004 or 1005 by bit 1). Panics if
/// the counters do not add up, or if the burst's signature work exceeds
/// its bound ([`crate::path::VerifyCost::within_bound`]).
pub fn fuzz_frame_path(fp: &mut FramePath, burst: &mut crate::Burst, data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut ds: Vec<Vec<u8>> = Vec::new();
    if mode & 1 == 0 {
        ds.extend(split_datagrams(rest).map(|d| d.to_vec()));
    } else {
        let channel = if mode & 2 == 0 { 1004 } else { 1005 };
        // Counters grow across runs so sealed inputs are never replays.
        let counter = fp.sessions.get(1).and_then(|s| s.window.top()).map_or(0, |t| t + 1);
        match seal_plaintext(1, channel, counter, rest) {
            Some(f) => ds.push(f),
            None => return,
        }
    }
    let before = burst.counters;
    let cost = fp.cost();
    fp.process(&mut ds, burst);
    assert!(burst.counters.balanced(), "{:?}", burst.counters);
    // The cost oracle: signature work stays within its bound.
    let work = fp.cost().since(&cost);
    assert!(work.within_bound(1), "signature work over its bound: {work:?}");
    assert!(burst.frames.len() >= ds.len());
    assert_eq!(burst.counters.frames_received - before.frames_received, burst.frames.len() as u64);
}

fn split_datagrams(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0usize;
    let mut i = 0usize;
    let mut done = false;
    core::iter::from_fn(move || {
        if done {
            return None;
        }
        while i + 1 < b.len() {
            if b.get(i..i + 2) == Some(&[0xFF, 0xFE]) {
                let d = b.get(start..i);
                i += 2;
                start = i;
                return d;
            }
            i += 1;
        }
        done = true;
        b.get(start..)
    })
}
