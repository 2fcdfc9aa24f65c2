//! Property tests: the frame path never panics and its counters always add
//! up; emit→parse is the identity; batch and single verification agree.

mod common;

use attnet_core::verify::{verify_single, BatchVerifier};
use attnet_core::wire::{handshake, mcs, security, share, tx};
use attnet_core::{Burst, DropReason, TxDrop, Verdict};
use proptest::prelude::*;

fn judge(fp: &mut attnet_core::FramePath, ds: &mut [Vec<u8>]) -> Burst {
    let mut b = Burst::default();
    fp.process(ds, &mut b);
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(ds in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..8)) {
        let mut fp = common::relay(1);
        let mut ds = ds;
        let b = judge(&mut fp, &mut ds);
        prop_assert!(b.counters.balanced());
        prop_assert!(b.frames.len() >= ds.len());
        prop_assert_eq!(b.counters.frames_received as usize, b.frames.len());
    }

    /// Bytes that look like a frame header (so the deeper steps are reached).
    #[test]
    fn framed_garbage_never_panics(
        chan in 1002u16..1008, kind in prop::sample::select(vec![0x64u8, 0x68]), sess in 0u16..20,
        flags in prop::sample::select(vec![0x0008u16, 0x0040, 0x0048, 0]), body in prop::collection::vec(any::<u8>(), 0..300),
        long in any::<bool>(),
    ) {
        let mut f = vec![3, 0, 0, 0, 2, 0xF0, 0x80, kind];
        f.extend_from_slice(&sess.to_be_bytes());
        f.extend_from_slice(&chan.to_be_bytes());
        f.push(0x70);
        let ud_len = 4 + body.len();
        if long || ud_len >= 0x80 { f.extend_from_slice(&(0x8000u16 | ud_len as u16).to_be_bytes()) } else { f.push(ud_len as u8) }
        f.extend_from_slice(&flags.to_le_bytes());
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&body);
        let n = f.len() as u16;
        f[2..4].copy_from_slice(&n.to_be_bytes());
        let mut fp = common::relay(1);
        let b = judge(&mut fp, &mut [f]);
        prop_assert!(b.counters.balanced());
        prop_assert_eq!(b.frames.len(), 1);
        prop_assert!(!b.frames[0].verdict.is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Valid frames (random tx counts, memo sizes, compression, sessions,
    /// several frames per datagram) are accepted with exactly their ids.
    #[test]
    fn valid_frames_accepted(frames in prop::collection::vec((0u16..16, 0usize..5, 0usize..300, any::<bool>()), 1..4)) {
        let mut fp = common::relay(1);
        let mut d = Vec::new();
        let mut want = Vec::new();
        for (i, (s, n, memo, lz4)) in frames.iter().enumerate() {
            let (t, ids) = common::txs(i as u8, *n, *memo, 1);
            d.extend_from_slice(&common::frame(*s, i as u64, &t, *lz4));
            want.extend(ids);
        }
        let b = judge(&mut fp, &mut [d]);
        prop_assert!(b.counters.balanced());
        prop_assert_eq!(b.counters.frames_accepted as usize, frames.len());
        prop_assert_eq!(b.txs.iter().map(|t| t.id).collect::<Vec<_>>(), want);
    }

    /// Any mutation of a valid datagram ends in named verdicts, and the
    /// counters add up.
    #[test]
    fn mutated_frames_get_named_verdicts(
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
        lz4 in any::<bool>(),
    ) {
        let (t, _) = common::txs(1, 2, 20, 1);
        let mut d = common::frame(2, 5, &t, lz4);
        d.extend_from_slice(&common::frame(3, 6, &t[..1], !lz4));
        for (at, v, op) in muts {
            if d.is_empty() { break; }
            let i = at.index(d.len());
            match op {
                0 => d[i] ^= v | 1,
                1 => d.truncate(i),
                2 => d.insert(i, v),
                _ => { d.remove(i); }
            }
        }
        let mut fp = common::relay(1);
        let b = judge(&mut fp, &mut [d]);
        prop_assert!(b.counters.balanced());
        prop_assert!(b.counters.frames_received >= 1);
        for f in &b.frames {
            match f.verdict {
                Verdict::Dropped(r) => prop_assert!(DropReason::ALL.contains(&r)),
                Verdict::Ok | Verdict::BadSignature(_) | Verdict::Duplicate(_) => {}
            }
        }
    }

    /// Batch verification with forged, non-canonical and small-order
    /// signatures mixed in gives exactly the single-verification answers.
    #[test]
    fn batch_agrees_with_single(
        n in 1usize..24,
        damage in prop::collection::vec((any::<prop::sample::Index>(), 0u8..6), 0..5),
    ) {
        let (mut t, _) = common::txs(9, n, 10, 1);
        for (at, how) in damage {
            let i = at.index(t.len());
            let tx = &mut t[i];
            let sig = attnet_core::wire::tx::signature_range(tx.len());
            let (r, last) = (sig.start..sig.start + 32, sig.end - 1);
            let from = attnet_core::wire::tx::field::FROM;
            match how {
                0 => tx[last] ^= 0x40,                            // S changed
                1 => tx[r.start] ^= 1,                            // R changed
                2 => tx[10] ^= 1,                                 // message changed
                3 => tx[r].copy_from_slice(&attnet_core::verify::SMALL_ORDER_ENCODINGS[0]), // small-order R
                4 => tx[last] |= 0xf0,                            // S >= L
                _ => tx[from].copy_from_slice(&attnet_core::verify::SMALL_ORDER_ENCODINGS[6]), // small-order A
            }
        }
        let mut bv = BatchVerifier::new(1, common::TEST_SEED);
        for x in &t { bv.queue(x); }
        let batch = bv.verify().to_vec();
        let single: Vec<bool> = t.iter().map(|x| verify_single(1, x)).collect();
        prop_assert_eq!(batch, single);
    }

    #[test]
    fn network_id_is_signed(other in 2u32..) {
        let (t, _) = common::txs(4, 1, 0, 1);
        prop_assert!(verify_single(1, &t[0]));
        prop_assert!(!verify_single(other, &t[0]));
    }
}

// emit→parse identity for arbitrary valid Reprs.
proptest! {
    #[test]
    fn mcs_round_trip(kind in prop::sample::select(vec![0x64u8, 0x68]), initiator in 0u16..=64534, channel in any::<u16>(),
                      priority in prop::sample::select(vec![0x70u8, 0xF0]), len in 0usize..=0x3FFF, long in any::<bool>()) {
        let r = mcs::Repr { kind, initiator, channel, priority, user_data_len: len, long_per: long || len >= 0x80 };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut mcs::Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(mcs::Repr::parse(&mcs::Packet::new_unchecked(&b[..])), Ok(r));
    }

    #[test]
    fn security_round_trip(counter in any::<u64>(), sealed in any::<bool>()) {
        let r = security::Repr { protection: if sealed { security::Protection::Sealed { counter } } else { security::Protection::Clear } };
        let mut b = vec![0u8; r.overhead()];
        r.emit(&mut security::Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(security::Repr::parse(&security::Packet::new_unchecked(&b[..])), Ok(r));
    }

    #[test]
    fn share_round_trip(seq in any::<u16>(), ulen in 0u16..=16384, kind in any::<u8>(), lz4 in any::<bool>(), clen in 0usize..2000) {
        let (compression, body_len) = if lz4 { (share::Compression::Lz4, clen) } else { (share::Compression::None, ulen as usize) };
        let r = share::Repr { stream_seq: seq, uncompressed_length: ulen, content_kind: kind, compression, body_len };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut share::Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(share::Repr::parse(&share::Packet::new_unchecked(&b[..])), Ok(r));
    }

    #[test]
    fn tx_round_trip(kind in 0u8..9, from in any::<[u8; 32]>(), to in any::<[u8; 32]>(), nonce in any::<u64>(), amount in any::<u64>(),
                     fee in any::<u64>(), memo in prop::collection::vec(any::<u8>(), 0..=1024), s1 in any::<[u8; 32]>(), s2 in any::<[u8; 32]>()) {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&s1);
        signature[32..].copy_from_slice(&s2);
        let r = tx::Repr { kind: tx::Kind::from_u8(kind).unwrap(), from, to, nonce, amount, fee, memo: &memo, signature };
        let mut b = vec![0u8; r.buffer_len()];
        prop_assert_eq!(r.emit(&mut b), Ok(b.len()));
        prop_assert_eq!(tx::Repr::parse(&tx::Transaction::new_unchecked(&b[..])), Ok(r));
        let mut body = Vec::new();
        tx::emit_batch([&b[..], &b[..]], &mut body);
        prop_assert_eq!(tx::Batch::new_checked(&body).map(|x| x.count()), Ok(2));
    }

    #[test]
    fn handshake_round_trip(a in any::<[u8; 32]>(), e in any::<[u8; 32]>(), ts in any::<u64>(), sid in any::<u16>(), p in any::<[u16; 8]>()) {
        let params = handshake::DomainParams {
            max_channel_ids: p[0], max_user_ids: p[1], max_token_ids: p[2], num_priorities: p[3],
            min_throughput: p[4], max_height: p[5], max_pdu_size: p[6], protocol_version: p[7],
        };
        let h = handshake::Hello { params, account: a, ephemeral: e, timestamp_ms: ts, signature: [1; 64] };
        let mut b = [0u8; handshake::Hello::LEN];
        h.emit(&mut b).unwrap();
        prop_assert_eq!(handshake::Hello::parse(&b), Ok(h));
        let w = handshake::Welcome { params, node_key: e, ephemeral: a, session_id: sid, hello_hash: a, signature: [2; 64] };
        let mut b = [0u8; handshake::Welcome::LEN];
        w.emit(&mut b).unwrap();
        prop_assert_eq!(handshake::Welcome::parse(&b), Ok(w));
    }
}

// Inbox and connections pages: whatever the records and the budget, the
// page parses, holds a prefix of what was pushed (whole, or the first cut
// to fit), stays within the budget, and any cut of it is refused.
proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn inbox_pages_round_trip(recs in prop::collection::vec((1u8..=4, any::<[u8; 32]>(), any::<u64>(), any::<u64>(),
                                                             prop::collection::vec(any::<u8>(), 0..=1024)), 0..8),
                              limit in 33usize..=1411, total_extra in 0u64..1000, first in 0u64..1000) {
        use attnet_core::wire::query::*;
        let at = first;
        let total = at + recs.len() as u64 + total_extra;
        let mut out = Vec::new();
        let mut w = PageWriter::inbox(&mut out, 3, total, first, at, limit);
        let mut pushed = 0usize;
        for (kind, from, nonce, height, memo) in &recs {
            if !w.push_record(&InboxRecord { kind: *kind, flags: 0, from: *from, nonce: *nonce, height: *height, memo }) {
                break;
            }
            pushed += 1;
        }
        prop_assert_eq!(usize::from(w.count()), pushed);
        prop_assert!(out.len() <= limit.max(INBOX_HEAD_LEN));
        let a = Answer::parse(&out);
        prop_assert_eq!(a.map(|a| a.body), Ok(AnswerBody::Inbox { total, first, at, count: pushed as u16 }));
        let got: Vec<InboxRecord<'_>> = inbox_records(&out).collect();
        prop_assert_eq!(got.len(), pushed);
        for (g, (kind, from, nonce, height, memo)) in got.iter().zip(&recs) {
            prop_assert_eq!((g.kind, g.from, g.nonce, g.height), (*kind, *from, *nonce, *height));
            if g.flags & record_flag::CUT == 0 {
                prop_assert_eq!(g.memo, &memo[..]);
            } else {
                prop_assert!(pushed == 1 && g.memo.len() < memo.len() && memo.starts_with(g.memo));
            }
        }
        // A page stops only when the next whole record would not fit.
        if let Some((_, _, _, _, memo)) = recs.get(pushed) {
            prop_assert!(out.len() + RECORD_HEAD_LEN + memo.len() > limit);
        }
        for n in 0..out.len() {
            prop_assert!(Answer::parse(&out[..n]).is_err());
        }
    }

    #[test]
    fn connections_pages_round_trip(entries in prop::collection::vec((0u8..=2, any::<[u8; 32]>()), 0..60),
                                    limit in 25usize..=1411, at in 0u64..1000) {
        use attnet_core::wire::query::*;
        let total = at + entries.len() as u64;
        let mut out = Vec::new();
        let mut w = PageWriter::connections(&mut out, 4, total, at, limit);
        let pushed = entries.iter().take_while(|(r, k)| w.push_entry(*r, k)).count();
        prop_assert_eq!(pushed, ((limit - CONNECTIONS_HEAD_LEN) / ENTRY_LEN).min(entries.len()));
        prop_assert_eq!(Answer::parse(&out).map(|a| a.body), Ok(AnswerBody::Connections { total, at, count: pushed as u16 }));
        prop_assert_eq!(connection_entries(&out).collect::<Vec<_>>(), entries[..pushed].to_vec());
    }

    #[test]
    fn query_and_answer_parsers_never_panic(b in prop::collection::vec(any::<u8>(), 0..1600), what in 15u8..=18) {
        use attnet_core::wire::query::*;
        let mut b = b;
        if b.len() >= 7 {
            b[0] = 1;
            b[5] = what;
            b[6] = 0;
        }
        let _ = Query::parse(&b);
        if let Ok(a) = Answer::parse(&b) {
            // Accepted: the readers yield exactly `count` entries.
            match a.body {
                AnswerBody::Inbox { count, .. } => prop_assert_eq!(inbox_records(&b).count(), usize::from(count)),
                AnswerBody::Connections { count, .. } => prop_assert_eq!(connection_entries(&b).count(), usize::from(count)),
                _ => {}
            }
        }
        let _ = inbox_records(&b).count();
        let _ = connection_entries(&b).count();
    }
}

#[test]
fn replayed_frame_and_forged_frame_do_not_move_the_window() {
    let mut fp = common::relay(1);
    let (t, ids) = common::txs(3, 1, 0, 1);
    let good = common::frame(1, 100, &t, false);
    let mut forged = common::frame(1, 101, &t, false);
    let l = forged.len();
    forged[l - 1] ^= 1;
    let b = judge(&mut fp, &mut [forged.clone()]);
    assert_eq!(b.frames[0].verdict, Verdict::Dropped(DropReason::AuthFailed));
    // The forged counter 101 is still usable by the real sender.
    let real101 = common::frame(1, 101, &t, false);
    let b = judge(&mut fp, &mut [good.clone(), real101, good]);
    assert_eq!(
        b.frames.iter().map(|f| f.verdict).collect::<Vec<_>>(),
        vec![Verdict::Ok, Verdict::Duplicate(1), Verdict::Dropped(DropReason::Replay)]
    );
    // Counter 101 is accepted as a frame; its transaction is a byte-identical
    // copy of the one the first frame carried in the same burst.
    assert_eq!(b.txs.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert!(b.counters.balanced());
}

/// A burst's later frames see the counters its earlier frames moved the
/// window to: a copy of an accepted frame in the same burst is `replay` at
/// step 7 even with a forged tag (before step 8 could call it
/// `auth_failed`), so is a counter 2048 or more below one the burst
/// accepted (2047 below is accepted), and so are they all in the next burst.
#[test]
fn a_burst_sees_the_counters_its_earlier_frames_accepted() {
    let mut fp = common::relay(1);
    let (t, _) = common::txs(3, 3, 0, 1);
    let first = common::frame(1, 5000, &t[..1], false);
    let mut forged_copy = first.clone();
    let l = forged_copy.len();
    forged_copy[l - 1] ^= 1;
    let b = judge(
        &mut fp,
        &mut [
            first.clone(),
            forged_copy,
            common::frame(1, 5000 - 2048, &t[1..2], false),
            common::frame(1, 5000 - 2047, &t[1..2], false),
        ],
    );
    assert_eq!(
        b.frames.iter().map(|f| f.verdict).collect::<Vec<_>>(),
        vec![Verdict::Ok, Verdict::Dropped(DropReason::Replay), Verdict::Dropped(DropReason::Replay), Verdict::Ok]
    );
    assert!(b.counters.balanced());
    let b = judge(
        &mut fp,
        &mut [first, common::frame(1, 5000 - 2047, &t[2..3], false), common::frame(1, 5001, &t[2..3], false)],
    );
    assert_eq!(
        b.frames.iter().map(|f| f.verdict).collect::<Vec<_>>(),
        vec![Verdict::Dropped(DropReason::Replay), Verdict::Dropped(DropReason::Replay), Verdict::Ok]
    );
}

#[test]
fn one_bad_signature_keeps_the_others_and_costs_few_batch_checks() {
    let mut fp = common::relay(1);
    let (mut t, ids) = common::txs(5, 64, 8, 1);
    let l = t[37].len();
    t[37][l - 40] ^= 1;
    let mut ds: Vec<Vec<u8>> =
        t.chunks(8).enumerate().map(|(i, c)| common::frame(2, i as u64, c, i % 2 == 0)).collect();
    let before = fp.batch_checks();
    let b = judge(&mut fp, &mut ds);
    let checks = fp.batch_checks() - before;
    let mut want = ids.clone();
    want.remove(37);
    assert_eq!(b.txs.iter().map(|t| t.id).collect::<Vec<_>>(), want);
    assert_eq!(b.frames[4].verdict, Verdict::BadSignature(1));
    assert_eq!(b.counters.txs_seen, 64);
    assert_eq!(b.counters.txs_accepted, 63);
    assert!(b.counters.balanced());
    // 1 + 2 per level of a 64-wide bisection.
    assert!(checks <= 1 + 2 * 6, "batch checks {checks}");
}

/// A burst of nothing but bad signatures (S = 0: canonical, so only the
/// equation rejects them) from an authenticated session: every verdict is
/// exact, and bisection is bounded, so the work stays a few times that of
/// an all-good burst (unbounded bisection of n bad signatures is n·(log2 n
/// + 1) signature checks in 2n - 1 calls).
#[test]
fn a_burst_of_bad_signatures_costs_a_bounded_multiple_of_a_good_one() {
    let n = 128usize;
    let (good, _) = common::txs(9, n, 0, 1);
    let mut bad = good.clone();
    for t in &mut bad {
        let s = attnet_core::wire::tx::signature_range(t.len());
        t[s.start + 32..s.end].fill(0);
    }
    let work = |txs: &[Vec<u8>]| {
        let mut fp = common::relay(1);
        let mut ds: Vec<Vec<u8>> =
            txs.chunks(16).enumerate().map(|(i, c)| common::frame(3, i as u64, c, false)).collect();
        let b = judge(&mut fp, &mut ds);
        assert!(b.counters.balanced());
        (b.counters.txs_accepted, b.counters.tx_drop(TxDrop::BadSignature), fp.batch_checks(), fp.batch_items())
    };
    let (ok, _, good_checks, good_items) = work(&good);
    assert_eq!((ok, good_checks, good_items), (n as u64, 1, n as u64));
    let (ok, failed, checks, items) = work(&bad);
    assert_eq!((ok, failed), (0, n as u64), "every bad signature is dropped alone");
    let budget = u64::from(attnet_core::verify::FAILED_BATCHES);
    assert!(checks <= budget + n as u64, "{checks} checks");
    assert!(items <= 4 * n as u64, "{items} signatures checked for {n}");
    // Mixed: bad ones scattered among good ones keep exact verdicts.
    let mut mixed = good.clone();
    for i in (0..n).step_by(5) {
        mixed[i] = bad[i].clone();
    }
    let (ok, failed, _, items) = work(&mixed);
    let bad_count = (0..n).step_by(5).count() as u64;
    assert_eq!((ok, failed), (n as u64 - bad_count, bad_count));
    assert!(items <= 4 * n as u64, "{items} signatures checked for {n}");
}

/// Copies of one transaction inside a burst cost no signature work: 104
/// byte-identical copies (good or S = 0) are verified once, the rest are
/// `duplicate`; a forged first copy (another signature) does not shadow
/// the genuine one after it; a third signature for the id is not verified.
/// (Two valid signatures of one id, where the second verified is the
/// duplicate, are covered by `copies.rs`'s unit tests: Ed25519 signing
/// here is deterministic.)
#[test]
fn copies_in_a_burst_are_duplicates_before_signature_work() {
    let (t, ids) = common::txs(4, 2, 0, 1);
    let run = |txs: Vec<Vec<u8>>| {
        let mut fp = common::relay(1);
        let mut ds: Vec<Vec<u8>> =
            txs.chunks(8).enumerate().map(|(i, c)| common::frame(5, i as u64, c, i % 2 == 1)).collect();
        let b = judge(&mut fp, &mut ds);
        assert!(b.counters.balanced(), "{:?}", b.counters);
        (b, fp.batch_items())
    };
    // 104 identical good copies: one verification, one accepted.
    let (b, items) = run(vec![t[0].clone(); 104]);
    assert_eq!((b.counters.txs_accepted, b.counters.tx_drop(TxDrop::Duplicate), items), (1, 103, 1));
    assert_eq!(b.txs.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert_eq!(b.frames[0].verdict, Verdict::Duplicate(7));
    assert_eq!(b.datagram_verdict(0), Verdict::Duplicate(7));
    // 104 identical copies with S = 0: one bad_signature, 103 duplicates.
    let mut zero = t[0].clone();
    let s = tx::signature_range(zero.len());
    zero[s.start + 32..s.end].fill(0);
    let (b, items) = run(vec![zero.clone(); 104]);
    assert_eq!((b.counters.tx_drop(TxDrop::BadSignature), b.counters.tx_drop(TxDrop::Duplicate), items), (1, 103, 1));
    assert_eq!(b.datagram_verdict(0), Verdict::BadSignature(1), "a bad signature outranks copies");
    // Forged first (S = 0), then the genuine one, then a third signature
    // (R flipped): the genuine stands, the third is never verified.
    let mut third = t[0].clone();
    third[s.start] ^= 1;
    let (b, items) = run(vec![zero, t[0].clone(), third, t[1].clone()]);
    assert_eq!(b.txs.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0], ids[1]]);
    assert_eq!((b.counters.tx_drop(TxDrop::BadSignature), b.counters.tx_drop(TxDrop::Duplicate)), (1, 1));
    assert_eq!(items, 3 + 1 + 2, "a batch of three, then the bad one found by bisection");
}

/// Copies of `good[i]` for each pick `(i, how)`, damaged by `how`: 0 as
/// is, 1 S = 0, 2 R changed (another signature), 3 S's top bit flipped, 4
/// small-order R, 5 small-order key (another id); anything else as is.
fn damaged(good: &[Vec<u8>], picks: &[(usize, u8)]) -> Vec<Vec<u8>> {
    picks
        .iter()
        .map(|&(i, how)| {
            let mut t = good[i].clone();
            let s = tx::signature_range(t.len());
            match how {
                1 => t[s.start + 32..s.end].fill(0),
                2 => t[s.start] ^= 1,
                3 => t[s.end - 1] ^= 0x80,
                4 => t[s.start..s.start + 32].copy_from_slice(&attnet_core::verify::SMALL_ORDER_ENCODINGS[0]),
                5 => t[tx::field::FROM].copy_from_slice(&attnet_core::verify::SMALL_ORDER_ENCODINGS[6]),
                _ => {}
            }
            t
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For any burst of good transactions, copies of them (byte-identical
    /// or with other signatures) and bad signatures, the signature work is
    /// at most a small constant times the distinct ids: the copies rule
    /// queues at most two signatures an id, the bounded bisection checks a
    /// queued signature at most four times. Counted, not timed.
    #[test]
    fn signature_work_is_bounded_by_distinct_ids(
        picks in prop::collection::vec((0usize..6, 0u8..4), 1..96),
        per_frame in 1usize..12,
    ) {
        let (good, _) = common::txs(6, 6, 0, 1);
        let txs = damaged(&good, &picks);
        let mut fp = common::relay(1);
        let mut ds: Vec<Vec<u8>> =
            txs.chunks(per_frame).enumerate().map(|(i, c)| common::frame(3, i as u64, c, false)).collect();
        let b = judge(&mut fp, &mut ds);
        prop_assert!(b.counters.balanced());
        let cost = fp.cost();
        let distinct = picks.iter().map(|p| p.0).collect::<std::collections::HashSet<_>>().len() as u64;
        prop_assert_eq!(cost.distinct_ids, distinct);
        prop_assert!(cost.within_bound(1), "{:?}", cost);
        prop_assert!(cost.checked <= 8 * distinct + 16, "{:?} for {} ids", cost, distinct);
    }
}

/// A session whose signatures keep failing is throttled after
/// authentication, on this path only, for the cool-down; another session
/// is not; a forged frame claiming the throttled session is still
/// `auth_failed` (a forger cannot use the throttle); a path without
/// budgets (`attnet decode`) never throttles.
#[test]
fn a_session_over_its_signature_budget_is_throttled_for_the_cooldown() {
    use attnet_core::budget::BudgetConfig;
    let (good, _) = common::txs(7, 12, 0, 1);
    let mut bad = good.clone();
    for t in &mut bad {
        let s = tx::signature_range(t.len());
        t[s.start + 32..s.end].fill(0);
    }
    for budgeted in [true, false] {
        let mut fp = common::relay(1);
        if budgeted {
            fp.set_budget(Some(BudgetConfig { per_s: 10, burst: 4, cooldown_ms: 1000 }));
        }
        fp.set_now_ms(5000);
        // Five bad signatures from session 3: one over the burst of four.
        let mut ds = vec![common::frame(3, 1, &bad[..5], false)];
        let b = judge(&mut fp, &mut ds);
        assert_eq!(b.counters.tx_drop(TxDrop::BadSignature), 5);
        assert_eq!(fp.throttles(), u64::from(budgeted));
        fp.set_now_ms(5500);
        let mut tampered = common::frame(3, 3, &good[6..7], false);
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let mut ds = vec![common::frame(3, 2, &good[5..6], false), common::frame(4, 1, &good[..1], true), tampered];
        let b = judge(&mut fp, &mut ds);
        let throttled = b.counters.frame_drop(DropReason::Throttled);
        assert_eq!(throttled, u64::from(budgeted));
        assert_eq!(b.counters.frame_drop(DropReason::AuthFailed), 1);
        assert_eq!(b.counters.txs_accepted, 2 - u64::from(budgeted));
        assert!(b.counters.balanced());
        // After the cool-down session 3 is served again.
        fp.set_now_ms(6001);
        let mut ds = vec![common::frame(3, 4, &good[7..8], false)];
        let b = judge(&mut fp, &mut ds);
        assert_eq!((b.counters.txs_accepted, b.counters.frame_drop(DropReason::Throttled)), (1, 0));
    }
}

/// One signature batch as the copies rule and single verification judge
/// it, transaction by transaction in arrival order: a byte-identical copy
/// of an id's first copy, or a copy past [`attnet_core::copies::MAX_QUEUED`]
/// signatures, is `duplicate`; the first copy that verifies stands, any
/// copy after it is `duplicate`, a failure before it is `bad_signature`.
/// Returns the accepted ids in order, duplicates and bad signatures.
fn model_batch(txs: &[Vec<u8>]) -> (Vec<[u8; 32]>, u64, u64) {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    struct Id {
        first_sig: Vec<u8>,
        queued: u8,
    }
    let mut ids: HashMap<[u8; 32], Id> = HashMap::new();
    let mut queue: Vec<(&Vec<u8>, [u8; 32])> = Vec::new();
    let mut dup = 0u64;
    for t in txs {
        let s = tx::signature_range(t.len());
        let id: [u8; 32] = Sha256::digest(&t[..s.start]).into();
        match ids.get_mut(&id) {
            None => {
                ids.insert(id, Id { first_sig: t[s].to_vec(), queued: 1 });
                queue.push((t, id));
            }
            Some(e) if e.first_sig == t[s.clone()] || e.queued >= attnet_core::copies::MAX_QUEUED => dup += 1,
            Some(e) => {
                e.queued += 1;
                queue.push((t, id));
            }
        }
    }
    let mut accepted: Vec<[u8; 32]> = Vec::new();
    let mut bad = 0u64;
    for (t, id) in queue {
        let stands = accepted.contains(&id);
        match (verify_single(1, t), stands) {
            (true, false) => accepted.push(id),
            (_, true) => dup += 1,
            (false, false) => bad += 1,
        }
    }
    (accepted, dup, bad)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Signature batches that span bursts (`judge_burst` burst after burst,
    /// `settle` at random points) give each transaction the verdict the
    /// model gives the batch's transactions in arrival order: forged
    /// copies, byte-identical copies within and across the batch's bursts,
    /// second signatures and small-order keys and nonces mixed in. The
    /// counters of the bursts and the settlements add up, and nothing is
    /// left waiting.
    #[test]
    fn batches_across_bursts_agree_with_the_model(
        picks in prop::collection::vec((0usize..8, 0u8..8), 1..160),
        per_frame in 1usize..4,
        per_burst in 1usize..9,
        settle_after in prop::collection::vec(any::<bool>(), 64),
    ) {
        let (good, _) = common::txs(11, 8, 3, 1);
        let txs = damaged(&good, &picks);
        let frames: Vec<Vec<Vec<u8>>> = txs.chunks(per_frame).map(|c| c.to_vec()).collect();
        let mut fp = common::relay(1);
        let mut pending = attnet_core::batch::Pending::with_capacity(64);
        let mut total = attnet_core::Counters::default();
        let mut accepted: Vec<[u8; 32]> = Vec::new();
        let mut model: (Vec<[u8; 32]>, u64, u64) = (Vec::new(), 0, 0);
        let mut group: Vec<Vec<u8>> = Vec::new();
        let settle = |fp: &mut attnet_core::FramePath,
                          pending: &mut attnet_core::batch::Pending,
                          total: &mut attnet_core::Counters,
                          group: &mut Vec<Vec<u8>>,
                          accepted: &mut Vec<[u8; 32]>,
                          model: &mut (Vec<[u8; 32]>, u64, u64)| {
            fp.settle(pending, total);
            accepted.extend(pending.txs().iter().map(|t| t.id));
            for t in pending.txs() {
                // The arena holds the transaction's bytes.
                assert_eq!(tx::signature_range(pending.tx_bytes(t).len()).end, pending.tx_bytes(t).len());
            }
            pending.clear();
            let m = model_batch(group);
            model.0.extend(m.0);
            model.1 += m.1;
            model.2 += m.2;
            group.clear();
        };
        let mut counter = 0u64;
        for (bi, burst) in frames.chunks(per_burst).enumerate() {
            let mut ds: Vec<Vec<u8>> = burst
                .iter()
                .map(|f| {
                    counter += 1;
                    common::frame(3, counter, f, counter.is_multiple_of(3))
                })
                .collect();
            let mut b = Burst::default();
            fp.judge_burst(&mut ds, &mut b, &attnet_core::path::NoFilter);
            prop_assert_eq!(b.frames.len(), ds.len());
            prop_assert!(b.frames.iter().all(|f| f.verdict.is_ok() || matches!(f.verdict, Verdict::Duplicate(_))));
            pending.take_burst(&b, &ds, bi as u64, |f| attnet_core::shard::Route {
                session: f.session,
                generation: f.generation,
                ..Default::default()
            });
            prop_assert_eq!(pending.len(), fp.queued());
            total.add(&b.counters);
            group.extend(burst.iter().flatten().cloned());
            if settle_after[bi % settle_after.len()] {
                settle(&mut fp, &mut pending, &mut total, &mut group, &mut accepted, &mut model);
            }
        }
        settle(&mut fp, &mut pending, &mut total, &mut group, &mut accepted, &mut model);
        prop_assert!(total.balanced(), "{:?}", total);
        prop_assert_eq!(total.txs_seen, txs.len() as u64);
        prop_assert_eq!(&accepted, &model.0);
        prop_assert_eq!(total.txs_accepted, model.0.len() as u64);
        prop_assert_eq!((total.tx_drop(TxDrop::Duplicate), total.tx_drop(TxDrop::BadSignature)), (model.1, model.2));
        prop_assert_eq!(fp.queued(), 0);
    }
}

/// A transaction signed by hand with secret scalar `a` under the key
/// `[a]B + ta` and nonce point `[r]B + tr` (ta, tr: points of small order,
/// so the key or R may have a torsion component): a signature the
/// cofactored equation accepts. `how` then damages it: 0 none, 1 S
/// changed, 2 another message, 3 a key off the curve, 4 an R off the curve.
fn hand_signed(template: &[u8], a: u64, r: u64, ta: usize, tr: usize, how: u8) -> Vec<u8> {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::edwards::CompressedEdwardsY;
    use curve25519_dalek::scalar::Scalar;
    use sha2::{Digest, Sha512};
    let torsion = |i: usize| CompressedEdwardsY(attnet_core::verify::SMALL_ORDER_ENCODINGS[i]).decompress().unwrap();
    let (a, r) = (Scalar::from(a) * Scalar::from(0x9e37_79b9_7f4a_7c15u64), Scalar::from(r) + Scalar::from(3u8));
    let mut key = (a * B + torsion(ta)).compress().to_bytes();
    let mut rr = (r * B + torsion(tr)).compress().to_bytes();
    // A y < p with no x on the curve: the first such y from 2 up.
    let off_curve = || {
        (2u8..)
            .map(|y| {
                let mut e = [0u8; 32];
                e[0] = y;
                e
            })
            .find(|e| CompressedEdwardsY(*e).decompress().is_none())
            .unwrap()
    };
    if how == 3 {
        key = off_curve();
    }
    if how == 4 {
        rr = off_curve();
    }
    let mut t = template.to_vec();
    t[tx::field::FROM].copy_from_slice(&key);
    if how == 2 {
        t[tx::field::FROM.end] ^= 1;
    }
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(rr)
            .chain_update(key)
            .chain_update(tx::signing_header(1))
            .chain_update(tx::unsigned_part(&t)),
    );
    let mut s = r + k * a;
    if how == 1 {
        s += Scalar::ONE;
    }
    if how == 2 {
        t[tx::field::FROM.end] ^= 1;
    }
    let sig = tx::signature_range(t.len());
    t[sig.start..sig.start + 32].copy_from_slice(&rr);
    t[sig.start + 32..sig.end].copy_from_slice(s.as_bytes());
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The batch equation over cached keys gives ed25519-zebra's single
    /// verdicts on batches of keys with and without torsion components,
    /// repeated keys, forged signatures and points off the curve, across
    /// queues that reuse the verifier (and its cache), with caches so small
    /// that keys evict each other inside one queue; good batches pass in
    /// one check.
    #[test]
    fn cached_key_batches_agree_with_zebra(
        queues in prop::collection::vec(
            prop::collection::vec((0u64..6, 0u64..1000, 0usize..10, 0usize..10, 0u8..8), 1..40), 1..4),
        sets in prop::sample::select(vec![1usize, 2, 4096]),
    ) {
        let (template, _) = common::txs(3, 1, 4, 1);
        let mut bv = BatchVerifier::with_key_cache(1, common::TEST_SEED, sets);
        for q in queues {
            // Torsion only on points that stay acceptable (not of small
            // order: any multiple of B plus torsion is not, save a = 0).
            let t: Vec<Vec<u8>> = q.iter()
                .map(|&(a, r, ta, tr, how)| hand_signed(&template[0], a + 1, r, if ta < 6 { 0 } else { ta }, if tr < 6 { 0 } else { tr }, how.saturating_sub(3)))
                .collect();
            bv.clear();
            for x in &t { bv.queue(x); }
            let checks = bv.batch_checks;
            let batch = bv.verify().to_vec();
            let single: Vec<bool> = t.iter().map(|x| verify_single(1, x)).collect();
            prop_assert_eq!(&batch, &single);
            // A batch of good signatures (torsion or not) passes in one
            // equation: bisection would hide a wrong equation's verdicts.
            if single.iter().all(|&x| x) {
                prop_assert_eq!(bv.batch_checks - checks, 1);
            }
            // The vectors of this generator are good unless damaged.
            for (x, &(_, _, _, _, how)) in single.iter().zip(&q) {
                prop_assert_eq!(*x, how <= 3);
            }
        }
    }
}
