//! The frame path: a burst of datagrams in, verified transactions and
//! per-reason counters out, judged exactly in the order of
//! `att-wire.md` "The order of checks". No I/O, no clocks, no allocation
//! per frame (see [`crate::verify`] for the one per-burst allocation the
//! Ed25519 library makes).
//!
//! It judges frames as a relay's transaction path: channels 1004 and 1005,
//! send-data requests (0x64), AES-256-GCM, TX_BATCH bodies. The other end
//! (a client, the traffic generator's receipt tracker, tests) opens the
//! relay's indications with [`open_indication`], which runs the same steps
//! through the same code.

use sha2::{Digest, Sha256};

use crate::batch::Pending;
use crate::budget::BudgetConfig;
use crate::copies::{BurstCopies, Copy as CopyVerdict};
use crate::lz4;
use crate::session::{Role, RxSession, SessionTable};
use crate::verdict::{Counters, DropReason, TxDrop, Verdict};
use crate::verify::BatchVerifier;
use crate::wire::mcs::{self, channel};
use crate::wire::query;
use crate::wire::security::{self, ENCRYPTED_HEADER_LEN, TAG_LEN};
use crate::wire::share::{self, Compression, MAX_BODY};
use crate::wire::tx::Batch;
use crate::wire::{tpkt, x224};

/// Offset of the MCS header in a frame.
const MCS_AT: usize = tpkt::HEADER_LEN + x224::HEADER_LEN;

/// One judged frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRecord {
    /// Index of the datagram in the burst.
    pub datagram: u32,
    /// MCS initiator (0 if the frame was dropped before it could be read).
    pub session: u16,
    /// MCS channel (0 if the frame was dropped before it could be read).
    pub channel: u16,
    /// What happened to the frame.
    pub verdict: Verdict,
    /// Transactions the frame carried (0 unless accepted).
    pub txs: u16,
    /// The generation of its session on this core (0 unless accepted, and
    /// for configured sessions): routes of answers carry it, so nothing
    /// meant for an ended session reaches the next holder of its id.
    pub generation: u32,
}

/// An accepted frame whose body the control plane finishes: a HELLO or
/// COOKIE_ECHO on channel 1003, a QUERY on 1005 ([`crate::exception`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlFrame {
    /// Index into [`Burst::frames`].
    pub frame: u32,
    /// The share-data content kind.
    pub content_kind: u8,
    /// The buffer that holds its body.
    pub loc: TxLoc,
    /// Byte offset of the body in that buffer.
    pub offset: u32,
    /// Length of the body in bytes.
    pub len: u32,
}

/// Where an accepted transaction's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxLoc {
    /// In the (decrypted in place) datagram of that index.
    Datagram(u32),
    /// In the burst's decompression arena.
    Arena,
}

/// An accepted transaction: where it is, and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptedTx {
    /// Index into [`Burst::frames`].
    pub frame: u32,
    /// The buffer that holds its bytes.
    pub loc: TxLoc,
    /// Byte offset of the transaction in that buffer.
    pub offset: u32,
    /// Length of the transaction in bytes.
    pub len: u32,
    /// SHA-256 of the bytes before the signature.
    pub id: [u8; 32],
}

/// Caller-owned output of [`FramePath::process`]. Reused across bursts:
/// `clear` keeps every buffer's capacity; counters accumulate until the
/// caller resets them.
#[derive(Debug)]
pub struct Burst {
    /// One record per judged frame, in datagram and frame order.
    pub frames: Vec<FrameRecord>,
    /// Accepted transactions in datagram and frame order; after the signature
    /// checks, only those that verified.
    pub txs: Vec<AcceptedTx>,
    /// Accepted HELLO, COOKIE_ECHO and QUERY frames, in datagram and frame
    /// order.
    pub control: Vec<ControlFrame>,
    /// Counts of this and earlier bursts (accumulated until the caller resets them).
    pub counters: Counters,
    arena: Vec<u8>,
    arena_used: usize,
}

impl Burst {
    /// Room for `frames` frames and `txs` transactions, and an arena for
    /// `lz4_frames` decompressed bodies of up to 16 KiB before it grows.
    pub fn with_capacity(frames: usize, txs: usize, lz4_frames: usize) -> Self {
        Burst {
            frames: Vec::with_capacity(frames),
            txs: Vec::with_capacity(txs),
            control: Vec::with_capacity(crate::MAX_BURST),
            counters: Counters::default(),
            arena: vec![0; lz4_frames.max(1) * MAX_BODY],
            arena_used: 0,
        }
    }

    /// Forgets the last burst's frames and transactions (not the counters).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.txs.clear();
        self.control.clear();
        self.arena_used = 0;
    }

    /// The bytes of an accepted transaction.
    pub fn tx_bytes<'a, D: AsRef<[u8]>>(&'a self, datagrams: &'a [D], tx: &AcceptedTx) -> &'a [u8] {
        self.bytes_at(datagrams, tx.loc, tx.offset, tx.len)
    }

    /// The body of an accepted control frame.
    pub fn control_body<'a, D: AsRef<[u8]>>(&'a self, datagrams: &'a [D], c: &ControlFrame) -> &'a [u8] {
        self.bytes_at(datagrams, c.loc, c.offset, c.len)
    }

    fn bytes_at<'a, D: AsRef<[u8]>>(&'a self, datagrams: &'a [D], loc: TxLoc, offset: u32, len: u32) -> &'a [u8] {
        let src: &[u8] = match loc {
            TxLoc::Datagram(i) => datagrams.get(i as usize).map_or(&[], |d| d.as_ref()),
            TxLoc::Arena => &self.arena,
        };
        let (o, n) = (offset as usize, len as usize);
        src.get(o..o + n).unwrap_or(&[])
    }

    /// Verdict of datagram `i`: its first frame's failure in order, where
    /// copies (`duplicate`) count only if nothing else failed; else `ok`.
    pub fn datagram_verdict(&self, i: u32) -> Verdict {
        let mut verdicts = self.frames.iter().filter(|f| f.datagram == i).map(|f| f.verdict);
        let mut copies = None;
        for v in verdicts.by_ref() {
            match v {
                Verdict::Ok => {}
                Verdict::Duplicate(_) => {
                    copies.get_or_insert(v);
                }
                _ => return v,
            }
        }
        copies.unwrap_or(Verdict::Ok)
    }
}

impl Default for Burst {
    fn default() -> Self {
        Burst::with_capacity(64, 256, 64)
    }
}

/// What the caller already knows about transaction ids (the node's
/// deduplication). The id does not cover the signature, so a known id is
/// dropped as `duplicate` *before* the costly verification, while the
/// caller records ids only *after* they verified: a forged copy can never
/// shadow the real transaction.
pub trait TxFilter {
    /// Whether a transaction with this id was already accepted (it is then
    /// dropped as `duplicate`).
    fn seen(&self, id: &[u8; 32]) -> bool;
}

/// No deduplication (`attnet decode`, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFilter;

impl TxFilter for NoFilter {
    #[inline(always)]
    fn seen(&self, _: &[u8; 32]) -> bool {
        false
    }
}

/// The keys of the burst-copies table's signature hash, derived from the
/// frame path's seed (as unpredictable to senders as the batch
/// coefficients, without sharing their bytes).
fn copies_keys(seed: &[u8; 32]) -> [u64; 16] {
    let mut keys = [0u64; 16];
    for (half, ks) in keys.chunks_mut(4).enumerate() {
        let d =
            Sha256::new().chain_update(b"attnet burst copies").chain_update([half as u8]).chain_update(seed).finalize();
        for (k, c) in ks.iter_mut().zip(d.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            *k = u64::from_le_bytes(w);
        }
    }
    keys
}

/// What steps 1-3 read off a frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    /// The TPKT length: the next frame starts this many bytes on.
    pub(crate) len: usize,
    pub(crate) session: u16,
    pub(crate) channel: u16,
    pub(crate) kind: u8,
    /// Where the MCS user data (the security header) starts.
    pub(crate) ud_at: usize,
}

/// Steps 1-3 on the frame at the start of `f`: TPKT, X.224, MCS header and
/// length. An error means the frame's end is unknown.
#[inline(always)]
pub(crate) fn frame_header(f: &[u8]) -> Result<Header, DropReason> {
    // Step 1.
    let len = tpkt::Packet::new_checked(f)?.length() as usize;
    let frame = f.get(..len).ok_or(DropReason::Truncated)?;
    // Step 2.
    x224::Packet::new_checked(frame.get(tpkt::HEADER_LEN..).unwrap_or(&[]))?;
    let m = mcs::Packet::new_unchecked(frame.get(MCS_AT..).unwrap_or(&[]));
    m.check_header()?;
    // Step 3.
    m.check_len()?;
    Ok(Header { len, session: m.initiator(), channel: m.channel(), kind: m.kind(), ud_at: MCS_AT + m.data_offset() })
}

/// Steps 5-7: the security header, the session, the replay check (the
/// window is not moved yet).
#[inline(always)]
fn security_check<'t>(
    sessions: &'t SessionTable,
    frame: &[u8],
    h: &Header,
) -> Result<(&'t RxSession, u64), DropReason> {
    // Step 5.
    let sec = security::Packet::new_checked(frame.get(h.ud_at..).unwrap_or(&[]), false)?;
    let counter = sec.counter();
    // Step 6.
    let sess = sessions.get(h.session).ok_or(DropReason::UnknownSession)?;
    // Step 7.
    if sess.window.check(counter).is_err() {
        return Err(DropReason::Replay);
    }
    Ok((sess, counter))
}

/// Step 8: opens the frame's ciphertext (from `pt_at`) in place and only
/// then moves the replay window; returns the plaintext's length.
#[inline(always)]
fn decrypt(sess: &RxSession, counter: u64, frame: &mut [u8], pt_at: usize) -> Result<usize, DropReason> {
    if frame.len() < pt_at + TAG_LEN {
        return Err(DropReason::BadLength);
    }
    let (aad, sealed) = frame.split_at_mut(pt_at);
    let pt_len = sess.key.open_in_place(counter, aad, sealed).map_err(|_| DropReason::AuthFailed)?;
    // The window moves only now, after the tag verified.
    if sess.window.update(counter).is_err() {
        return Err(DropReason::Replay);
    }
    Ok(pt_len)
}

/// An indication a client opened ([`open_indication`]), or a request
/// ([`open_request`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indication<'a> {
    /// The frame's length: the next frame of the datagram starts here.
    pub len: usize,
    /// MCS initiator: the session id.
    pub session: u16,
    /// MCS channel.
    pub channel: u16,
    /// The frame counter.
    pub counter: u64,
    /// The share-data header's content kind (RECEIPT is 0x43).
    pub content_kind: u8,
    /// The body, decompressed if it was compressed.
    pub body: &'a [u8],
}

/// Why [`open_indication`] (or [`open_request`]) refused a frame, and
/// whether the datagram's next frame can be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The check the frame failed first.
    pub reason: DropReason,
    /// The frame's length, when steps 1-3 passed (the next frame starts
    /// there); `None` when the rest of the datagram is unframed.
    pub len: Option<usize>,
}

/// The session (MCS initiator) of the frame at the start of `f`, if steps
/// 1-3 pass.
pub fn peek_session(f: &[u8]) -> Option<u16> {
    frame_header(f).ok().map(|h| h.session)
}

/// Opens the sealed indication (MCS kind 0x68) at the start of `f` in place
/// with the receive keys of `sessions` (a client's table): the relay's
/// steps 1-3 and 5-9 in the same order through the same code, step 4
/// requiring an indication on any channel, and no transaction checks (the
/// body is returned, decompressed into `scratch` if it was compressed). The
/// session's replay window moves with every frame opened.
pub fn open_indication<'a>(
    sessions: &SessionTable,
    f: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<Indication<'a>, Refused> {
    open_sealed(mcs::KIND_INDICATION, sessions, f, scratch)
}

/// As [`open_indication`], for a sealed request (MCS kind 0x64) with the
/// receive keys of a relay's table: the accepting end of a validator link
/// opens the dialer's frames with it (step 4 requires a request on any
/// channel; the caller checks the channel and the content kind).
pub fn open_request<'a>(
    sessions: &SessionTable,
    f: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<Indication<'a>, Refused> {
    open_sealed(mcs::KIND_REQUEST, sessions, f, scratch)
}

/// [`open_indication`] and [`open_request`]: the frame's MCS kind must be
/// `want_kind`.
fn open_sealed<'a>(
    want_kind: u8,
    sessions: &SessionTable,
    f: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<Indication<'a>, Refused> {
    let h = frame_header(f).map_err(|reason| Refused { reason, len: None })?;
    let refuse = |reason| Refused { reason, len: Some(h.len) };
    let frame = f.get_mut(..h.len).ok_or(refuse(DropReason::Truncated))?;
    if h.kind != want_kind {
        return Err(refuse(DropReason::BadHeader));
    }
    let (sess, counter) = security_check(sessions, frame, &h).map_err(refuse)?;
    let pt_at = h.ud_at + ENCRYPTED_HEADER_LEN;
    let pt_len = decrypt(sess, counter, frame, pt_at).map_err(refuse)?;
    let frame: &'a [u8] = frame;
    let plain = frame.get(pt_at..pt_at + pt_len).unwrap_or(&[]);
    let sd = share::Packet::new_unchecked(plain);
    let compression = sd.check_lengths().map_err(refuse)?;
    let body: &'a [u8] = match compression {
        Compression::None => plain.get(share::HEADER_LEN..).unwrap_or(&[]),
        Compression::Lz4 => {
            scratch.clear();
            scratch.resize(usize::from(sd.uncompressed_length()), 0);
            lz4::decompress_exact(sd.body(), scratch).map_err(refuse)?;
            scratch
        }
    };
    // As on the relay's path: decompression, then the constants.
    sd.check_constants().map_err(refuse)?;
    let content_kind = sd.content_kind();
    Ok(Indication { len: h.len, session: h.session, channel: h.channel, counter, content_kind, body })
}

/// Where a share-data body is: in the datagram (uncompressed; `plain_at`
/// is the plaintext's offset in it) or decompressed into the burst's arena.
#[inline(always)]
fn locate_body(
    sd: &share::Packet<&[u8]>,
    compression: Compression,
    plain_at: usize,
    di: u32,
    out: &mut Burst,
) -> Result<(TxLoc, usize, usize), DropReason> {
    Ok(match compression {
        Compression::None => (TxLoc::Datagram(di), plain_at + share::HEADER_LEN, sd.body().len()),
        Compression::Lz4 => {
            let ulen = sd.uncompressed_length() as usize;
            let at = out.arena_used;
            if out.arena.len() < at + ulen {
                // Grows to the burst's high-water mark once, then stays.
                let want = (at + ulen).max(out.arena.len() * 2);
                out.arena.resize(want, 0);
            }
            let dst = out.arena.get_mut(at..at + ulen).unwrap_or(&mut []);
            lz4::decompress_exact(sd.body(), dst)?;
            out.arena_used += ulen;
            (TxLoc::Arena, at, ulen)
        }
    })
}

/// Steps 4, 5 and 9 for a frame on channel 1003 (served): a request, in
/// clear (INFO), a share-data header whose content kind is HELLO or
/// COOKIE_ECHO. Steps 6-8 do not apply (no session yet); the body is the
/// control plane's to judge. Lists the frame in [`Burst::control`].
fn info_frame(frame: &[u8], h: &Header, base: usize, di: u32, out: &mut Burst) -> Result<(), DropReason> {
    if h.kind != mcs::KIND_REQUEST {
        return Err(DropReason::BadHeader);
    }
    // Step 5.
    security::Packet::new_checked(frame.get(h.ud_at..).unwrap_or(&[]), true)?;
    // Step 9.
    let pt_at = h.ud_at + security::BASE_LEN;
    let plain = frame.get(pt_at..).unwrap_or(&[]);
    let sd = share::Packet::new_unchecked(plain);
    let compression = sd.check_lengths()?;
    let (loc, at, n) = locate_body(&sd, compression, base + pt_at, di, out)?;
    sd.check_constants()?;
    let content_kind = sd.content_kind();
    if content_kind != share::kind::HELLO && content_kind != share::kind::COOKIE_ECHO {
        return Err(DropReason::BadHeader);
    }
    out.control.push(ControlFrame {
        frame: out.frames.len() as u32,
        content_kind,
        loc,
        offset: at as u32,
        len: n as u32,
    });
    Ok(())
}

/// Step 10 for a QUERY body (`att-wire.md`, v1.1): version 1, a request id
/// and a `what`; a `what` the project serves has its exact length
/// ([`query::Query::body_len`]: 38 bytes for an account or a transaction,
/// 46 for an inbox or connections page). Any other `what` is answered as
/// not served, so only its header is checked.
fn query_body_ok(b: &[u8]) -> bool {
    const HEAD: usize = 1 + 4 + 1;
    match (b.first(), b.get(HEAD - 1)) {
        (Some(&query::VERSION), Some(&w)) => !matches!(query::Query::body_len(w), Some(n) if n != b.len()),
        _ => false,
    }
}

/// A frame that got past steps 1-3: how long it is.
enum Judged {
    /// Steps 1-3 failed: the rest of the datagram is part of this frame.
    Unframed(DropReason),
    /// A later step failed; the next frame starts `len` bytes on.
    Dropped { len: usize, reason: DropReason, session: u16, channel: u16 },
    /// Accepted; its transactions were queued, but for `copies` dropped
    /// as duplicates.
    Accepted { len: usize, session: u16, channel: u16, txs: u16, copies: u16, generation: u32 },
}

/// How far [`FramePath`] takes a frame. With the `bench-stages` feature
/// (the benchmarks, and the node for `--stop-after decode|decrypt|decompress`)
/// [`FramePath::set_depth`] can stop every frame after a stage, to measure
/// stage by stage on the same code; until it is called, and in a build
/// without the feature, every step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Depth {
    /// Steps 1-7: headers, session, replay check.
    Decode,
    /// Through step 8: AEAD open and window update.
    Decrypt,
    /// Through steps 9-10 structure: decompression, TX_BATCH parse and
    /// transaction ids, no signatures.
    Decompress,
    /// Everything.
    Full,
}

#[cfg(feature = "bench-stages")]
macro_rules! stop_at {
    ($self:ident, $depth:expr, $ret:expr) => {
        if $self.depth == $depth {
            return $ret;
        }
    };
}

#[cfg(not(feature = "bench-stages"))]
macro_rules! stop_at {
    ($self:ident, $depth:expr, $ret:expr) => {};
}

/// Signature work done by a [`FramePath`] ([`FramePath::cost`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyCost {
    /// Distinct transaction ids that reached the signature stage.
    pub distinct_ids: u64,
    /// Signatures queued for verification.
    pub queued: u64,
    /// Signature checks made (each signature of each batch equation, and
    /// each single verification).
    pub checked: u64,
}

impl VerifyCost {
    /// Most signature checks per queued signature in a burst's bounded
    /// bisection (about 3 is reached with every signature bad).
    pub const BISECT_FACTOR: u64 = 4;
    /// Slack per burst in the bound.
    pub const PER_BURST: u64 = 16;

    /// The work since `before`.
    pub fn since(&self, before: &VerifyCost) -> VerifyCost {
        VerifyCost {
            distinct_ids: self.distinct_ids - before.distinct_ids,
            queued: self.queued - before.queued,
            checked: self.checked - before.checked,
        }
    }

    /// Whether this work (of `bursts` bursts) is within the bound: queued
    /// at most `MAX_QUEUED` per distinct id, checks at most
    /// `BISECT_FACTOR` per queued signature plus `PER_BURST` per burst.
    pub fn within_bound(&self, bursts: u64) -> bool {
        self.queued <= u64::from(crate::copies::MAX_QUEUED) * self.distinct_ids
            && self.checked <= Self::BISECT_FACTOR * self.queued + Self::PER_BURST * bursts
    }
}

/// Per-core frame path state: the session table, the batch verifier and
/// the signing network id.
#[derive(Debug)]
pub struct FramePath {
    /// The sessions whose frames this path accepts.
    pub sessions: SessionTable,
    verifier: BatchVerifier,
    /// Copies of one transaction inside the burst.
    copies: BurstCopies,
    network_id: u32,
    /// Failure budgets: `None` never throttles (`attnet decode`, tests).
    budget: Option<BudgetConfig>,
    /// The host's clock for the budgets, milliseconds.
    now_ms: u64,
    /// Sessions that went over budget in this path (each cool-down once).
    throttles: u64,
    /// Signatures queued for verification, and distinct ids among the
    /// transactions that reached the copies rule, summed over bursts.
    sigs_queued: u64,
    distinct_ids: u64,
    /// Channel 1003 is served: HELLO and COOKIE_ECHO frames are accepted
    /// for the control plane (a relay with a node key).
    handshakes: bool,
    #[cfg(feature = "bench-stages")]
    depth: Depth,
}

impl FramePath {
    /// A relay's frame path for `network_id`; `seed` seeds the batch
    /// verifier's coefficients ([`BatchVerifier::new`]).
    pub fn new(network_id: u32, seed: [u8; 32]) -> Self {
        FramePath {
            sessions: SessionTable::new(Role::Relay),
            verifier: BatchVerifier::new(network_id, seed),
            copies: BurstCopies::new(copies_keys(&seed)),
            network_id,
            budget: None,
            now_ms: 0,
            throttles: 0,
            sigs_queued: 0,
            distinct_ids: 0,
            handshakes: false,
            #[cfg(feature = "bench-stages")]
            depth: Depth::Full,
        }
    }

    /// Turns the sessions' failure budgets on (`Some`) or off
    /// ([`crate::budget`]). Off by default.
    pub fn set_budget(&mut self, budget: Option<BudgetConfig>) {
        self.budget = budget;
    }

    /// The host's clock for the budgets, in milliseconds; set before each
    /// burst.
    #[inline]
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Serves channel 1003 (`true`): HELLO and COOKIE_ECHO frames that pass
    /// steps 1-5 and 9 are accepted and listed in [`Burst::control`]. Off by
    /// default: a node without a node key answers no HELLO, and its frames
    /// on 1003 are `unsupported_channel`.
    pub fn set_handshakes(&mut self, on: bool) {
        self.handshakes = on;
    }

    /// Whether channel 1003 is served.
    pub fn handshakes(&self) -> bool {
        self.handshakes
    }

    /// Times a session went over its signature budget here.
    pub fn throttles(&self) -> u64 {
        self.throttles
    }

    /// Stops every frame at `depth` (benchmarks only).
    #[cfg(feature = "bench-stages")]
    pub fn set_depth(&mut self, depth: Depth) {
        self.depth = depth;
    }

    /// The network id transactions are verified for.
    pub fn network_id(&self) -> u32 {
        self.network_id
    }

    /// The signature work so far, to check it against its bound: at most
    /// [`MAX_QUEUED`](crate::copies::MAX_QUEUED) signatures queued per
    /// distinct id and burst, and [`VerifyCost::BISECT_FACTOR`] signature
    /// checks per queued signature (plus a constant per burst).
    pub fn cost(&self) -> VerifyCost {
        VerifyCost { distinct_ids: self.distinct_ids, queued: self.sigs_queued, checked: self.verifier.batch_items }
    }

    /// Batch equations checked so far (bisection shows up here).
    pub fn batch_checks(&self) -> u64 {
        self.verifier.batch_checks
    }

    /// Signatures put through those checks, summed (the verification work).
    pub fn batch_items(&self) -> u64 {
        self.verifier.batch_items
    }

    /// Public keys found in the verifier's cache of decompressed keys, and
    /// keys decompressed (misses), so far.
    pub fn key_cache(&self) -> (u64, u64) {
        self.verifier.key_cache()
    }

    /// Judges every frame of every datagram, decrypting in place, and
    /// fills `out` (cleared first). Accepted transactions are listed in
    /// datagram and frame order.
    pub fn process<D: AsRef<[u8]> + AsMut<[u8]>>(&mut self, datagrams: &mut [D], out: &mut Burst) {
        self.process_filtered(datagrams, out, &NoFilter)
    }

    /// As [`process`](Self::process), dropping transactions whose id
    /// `filter` has seen as `duplicate` without verifying them. The burst
    /// is one signature batch: whatever an earlier
    /// [`judge_burst`](Self::judge_burst) left queued is forgotten.
    pub fn process_filtered<D: AsRef<[u8]> + AsMut<[u8]>, F: TxFilter>(
        &mut self,
        datagrams: &mut [D],
        out: &mut Burst,
        filter: &F,
    ) {
        self.start_batch();
        self.judge_burst(datagrams, out, filter);
        self.count_batch();
        self.finish_signatures(out);
    }

    /// Signatures queued since the last batch was verified.
    pub fn queued(&self) -> usize {
        self.verifier.len()
    }

    /// Counts the batch's distinct ids towards the cost bound.
    fn count_batch(&mut self) {
        self.distinct_ids += self.copies.distinct() as u64;
    }

    /// Forgets the queued signatures and the batch's copies.
    fn start_batch(&mut self) {
        self.verifier.clear();
        self.copies.start_burst();
    }

    /// Judges every frame of every datagram as [`process_filtered`](Self::process_filtered)
    /// does, but leaves the signatures of `out.txs` queued: the batch goes
    /// on across bursts ([`crate::batch`]). The caller copies `out.txs`
    /// into its [`Pending`] before the next burst and calls
    /// [`settle`](Self::settle) when its [`BatchPolicy`](crate::batch::BatchPolicy)
    /// says so. Copies of a transaction already waiting are `duplicate` as
    /// within one burst.
    pub fn judge_burst<D: AsRef<[u8]> + AsMut<[u8]>, F: TxFilter>(
        &mut self,
        datagrams: &mut [D],
        out: &mut Burst,
        filter: &F,
    ) {
        out.clear();
        for (di, d) in datagrams.iter_mut().enumerate() {
            let buf = d.as_mut();
            let di = di as u32;
            let mut off = 0usize;
            loop {
                let rest = buf.get_mut(off..).unwrap_or(&mut []);
                match self.judge(rest, off, di, out, filter) {
                    Judged::Unframed(reason) => {
                        out.counters.drop_frame(reason);
                        out.frames.push(FrameRecord {
                            datagram: di,
                            session: 0,
                            channel: 0,
                            verdict: Verdict::Dropped(reason),
                            txs: 0,
                            generation: 0,
                        });
                        break;
                    }
                    Judged::Dropped { len, reason, session, channel } => {
                        out.counters.drop_frame(reason);
                        out.frames.push(FrameRecord {
                            datagram: di,
                            session,
                            channel,
                            verdict: Verdict::Dropped(reason),
                            txs: 0,
                            generation: 0,
                        });
                        off += len;
                    }
                    Judged::Accepted { len, session, channel, txs, copies, generation } => {
                        out.counters.accept_frame();
                        out.counters.txs_seen += txs as u64;
                        let verdict = if copies > 0 { Verdict::Duplicate(copies) } else { Verdict::Ok };
                        out.frames.push(FrameRecord { datagram: di, session, channel, verdict, txs, generation });
                        off += len;
                    }
                }
                if off >= buf.len() {
                    break;
                }
            }
        }
    }

    /// Verifies the batch that waits in `pending` (queued by
    /// [`judge_burst`](Self::judge_burst), in that order), counts each
    /// transaction in `counters` as accepted, `bad_signature` or
    /// `duplicate` exactly as [`process`](Self::process) would, keeps the
    /// accepted ones in `pending` in order and starts the next batch.
    pub fn settle(&mut self, pending: &mut Pending, counters: &mut Counters) {
        #[cfg(feature = "bench-stages")]
        if self.depth != Depth::Full {
            counters.txs_accepted += pending.len() as u64;
            self.start_batch();
            return;
        }
        self.count_batch();
        if !self.verifier.is_empty() {
            let ok = self.verifier.verify();
            let mut i = 0usize;
            let mut s =
                Settler::of(&mut self.copies, &mut self.sessions, &self.budget, self.now_ms, &mut self.throttles);
            pending.retain(|t| {
                let good = ok.get(i).copied().unwrap_or(false);
                i += 1;
                s.settle(good, &t.id, t.route.session, t.route.generation, counters) == Settled::Accepted
            });
        }
        self.start_batch();
    }

    /// Steps 1-10 (structure) for the frame at the start of `f`, which
    /// starts at `base` in datagram `di`.
    #[inline]
    fn judge<F: TxFilter>(&mut self, f: &mut [u8], base: usize, di: u32, out: &mut Burst, filter: &F) -> Judged {
        // Steps 1-3.
        let h = match frame_header(f) {
            Ok(h) => h,
            Err(r) => return Judged::Unframed(r),
        };
        let Header { len, session, channel: chan, kind, ud_at } = h;
        let Some(frame) = f.get_mut(..len) else { return Judged::Unframed(DropReason::Truncated) };
        let drop = |reason| Judged::Dropped { len, reason, session, channel: chan };
        // Step 4.
        if chan == channel::CONTROL && self.handshakes {
            return match info_frame(frame, &h, base, di, out) {
                Ok(()) => Judged::Accepted { len, session, channel: chan, txs: 0, copies: 0, generation: 0 },
                Err(r) => drop(r),
            };
        }
        if chan != channel::TRANSACTIONS && chan != channel::MESSAGES {
            return drop(DropReason::UnsupportedChannel);
        }
        if kind != mcs::KIND_REQUEST {
            return drop(DropReason::BadHeader);
        }
        // Steps 5-7.
        let (sess, counter) = match security_check(&self.sessions, frame, &h) {
            Ok(x) => x,
            Err(r) => return drop(r),
        };
        stop_at!(
            self,
            Depth::Decode,
            Judged::Accepted { len, session, channel: chan, txs: 0, copies: 0, generation: 0 }
        );
        // Step 8.
        let pt_at = ud_at + ENCRYPTED_HEADER_LEN;
        let pt_len = match decrypt(sess, counter, frame, pt_at) {
            Ok(n) => n,
            Err(r) => return drop(r),
        };
        // The node's defence, after authentication and before any more work.
        if self.budget.is_some() && sess.budget.throttled(self.now_ms) {
            return drop(DropReason::Throttled);
        }
        let sealed = frame.get(pt_at..).unwrap_or(&[]);
        stop_at!(
            self,
            Depth::Decrypt,
            Judged::Accepted { len, session, channel: chan, txs: 0, copies: 0, generation: 0 }
        );
        // Step 9.
        let plain = sealed.get(..pt_len).unwrap_or(&[]);
        let sd = share::Packet::new_unchecked(plain);
        let compression = match sd.check_lengths() {
            Ok(c) => c,
            Err(r) => return drop(r),
        };
        let (body_loc, body_at, body_len) = match locate_body(&sd, compression, base + pt_at, di, out) {
            Ok(x) => x,
            Err(r) => return drop(r),
        };
        if let Err(r) = sd.check_constants() {
            return drop(r);
        }
        let generation = sess.generation;
        let body = match body_loc {
            TxLoc::Datagram(_) => plain.get(share::HEADER_LEN..).unwrap_or(&[]),
            TxLoc::Arena => out.arena.get(body_at..body_at + body_len).unwrap_or(&[]),
        };
        match sd.content_kind() {
            share::kind::TX_BATCH => {}
            share::kind::QUERY if chan == channel::MESSAGES => {
                // Step 10 for a QUERY: its length and version.
                if !query_body_ok(body) {
                    return drop(DropReason::BadTx);
                }
                out.control.push(ControlFrame {
                    frame: out.frames.len() as u32,
                    content_kind: share::kind::QUERY,
                    loc: body_loc,
                    offset: body_at as u32,
                    len: body_len as u32,
                });
                return Judged::Accepted { len, session, channel: chan, txs: 0, copies: 0, generation };
            }
            _ => return drop(DropReason::BadHeader),
        }
        // Step 10 (frame level): the batch's structure.
        let batch = match Batch::new_checked(body) {
            Ok(b) => b,
            Err(r) => return drop(r),
        };
        let frame_idx = out.frames.len() as u32;
        let mut copies = 0u16;
        let mut prev: &[u8] = &[];
        for (o, tx) in batch.iter() {
            // A byte-identical copy of the frame's previous transaction has
            // that one's verdict or is its copy: `duplicate`, without even
            // hashing it (a frame full of copies of one transaction is the
            // cheapest flood an authenticated sender has).
            if tx == prev {
                out.counters.drop_tx(TxDrop::Duplicate);
                copies = copies.saturating_add(1);
                continue;
            }
            prev = tx;
            let unsigned = crate::wire::tx::unsigned_part(tx);
            let id: [u8; 32] = Sha256::digest(unsigned).into();
            // Already accepted on this core, or a copy inside this burst:
            // `duplicate` before any signature work.
            if filter.seen(&id) || self.copies.note(&id, crate::wire::tx::signature_part(tx)) == CopyVerdict::Duplicate
            {
                out.counters.drop_tx(TxDrop::Duplicate);
                copies = copies.saturating_add(1);
                continue;
            }
            // Benchmarks stopping at Depth::Decompress skip verification.
            #[cfg(feature = "bench-stages")]
            let verify = self.depth != Depth::Decompress;
            #[cfg(not(feature = "bench-stages"))]
            let verify = true;
            if verify {
                self.verifier.queue(tx);
                self.sigs_queued += 1;
            }
            out.txs.push(AcceptedTx {
                frame: frame_idx,
                loc: body_loc,
                offset: (body_at + o) as u32,
                len: tx.len() as u32,
                id,
            });
        }
        Judged::Accepted { len, session, channel: chan, txs: batch.count(), copies, generation }
    }

    /// Step 10 per transaction: verify the burst's signatures together,
    /// drop the failures alone, keep the rest in order.
    fn finish_signatures(&mut self, out: &mut Burst) {
        #[cfg(feature = "bench-stages")]
        if self.depth != Depth::Full {
            out.counters.txs_accepted += out.txs.len() as u64;
            return;
        }
        if self.verifier.is_empty() {
            return;
        }
        let ok = self.verifier.verify();
        let mut s = Settler::of(&mut self.copies, &mut self.sessions, &self.budget, self.now_ms, &mut self.throttles);
        let mut i = 0usize;
        let Burst { txs, frames, counters, .. } = out;
        txs.retain(|t| {
            let good = ok.get(i).copied().unwrap_or(false);
            i += 1;
            let Some(f) = frames.get_mut(t.frame as usize) else {
                return s.settle(good, &t.id, 0, 0, counters) == Settled::Accepted;
            };
            let settled = s.settle(good, &t.id, f.session, f.generation, counters);
            f.verdict = match (settled, f.verdict) {
                (Settled::Accepted, v) => v,
                (Settled::Duplicate, Verdict::Ok) => Verdict::Duplicate(1),
                (Settled::Duplicate, Verdict::Duplicate(n)) => Verdict::Duplicate(n.saturating_add(1)),
                (Settled::Duplicate, v) => v,
                (Settled::BadSignature, Verdict::BadSignature(n)) => Verdict::BadSignature(n + 1),
                (Settled::BadSignature, _) => Verdict::BadSignature(1),
            };
            settled == Settled::Accepted
        });
    }
}

/// What a queued transaction became once its batch was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Accepted,
    /// Another copy of its id stands (verified earlier in the batch).
    Duplicate,
    BadSignature,
}

/// The per-transaction rule after a batch is verified, shared by the
/// one-burst and the across-bursts paths.
struct Settler<'a> {
    copies: &'a mut BurstCopies,
    sessions: &'a mut SessionTable,
    budget: &'a Option<BudgetConfig>,
    now_ms: u64,
    throttles: &'a mut u64,
}

impl<'a> Settler<'a> {
    fn of(
        copies: &'a mut BurstCopies,
        sessions: &'a mut SessionTable,
        budget: &'a Option<BudgetConfig>,
        now_ms: u64,
        throttles: &'a mut u64,
    ) -> Self {
        Settler { copies, sessions, budget, now_ms, throttles }
    }

    /// The verdict of a transaction with `id` from `session` (of that
    /// generation) whose signature verified (`good`) or not, counted in
    /// `counters`: the first verified copy of an id stands; any later
    /// copy, verified or not, is a `duplicate` (as if it had come after
    /// the id was recorded); a failure before that is `bad_signature`,
    /// charged to its session's budget.
    fn settle(&mut self, good: bool, id: &[u8; 32], session: u16, generation: u32, counters: &mut Counters) -> Settled {
        if good && self.copies.accept(id) {
            counters.txs_accepted += 1;
            return Settled::Accepted;
        }
        if good || self.copies.accepted(id) {
            counters.drop_tx(TxDrop::Duplicate);
            return Settled::Duplicate;
        }
        counters.drop_tx(TxDrop::BadSignature);
        if let (Some(cfg), Some(s)) = (self.budget, self.sessions.get_mut(session)) {
            if s.generation == generation && s.budget.charge(1, self.now_ms, cfg) {
                *self.throttles += 1;
            }
        }
        Settled::BadSignature
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::FrameSpec;
    use crate::session::{Role, Session};
    use crate::testkit;

    /// A client opens the relay's indications through the same steps: two
    /// frames in one datagram (one compressed), then the same datagram
    /// again (replay), a request frame (bad header), a frame for a session
    /// it does not hold, and a flipped tag bit.
    #[test]
    fn a_client_opens_indications_through_the_same_steps() {
        let relay = Session::new(Role::Relay, 5, &testkit::c2r(5), &testkit::r2c(5), 1000).unwrap();
        let client = Session::new(Role::Client, 5, &testkit::c2r(5), &testkit::r2c(5), 0).unwrap();
        let (_, mut sealer) = relay.split();
        let mut table = SessionTable::new(Role::Client);
        table.install_rx(&client.rx);
        let body: Vec<u8> = (0..600u32).map(|i| (i % 7) as u8).collect();
        let (mut d, mut scratch) = (Vec::new(), Vec::new());
        sealer.seal_frame(&FrameSpec::receipt(5, 1004), b"first", &mut d, &mut scratch).unwrap();
        let first_len = d.len();
        let spec = FrameSpec { compress: true, ..FrameSpec::receipt(5, 1005) };
        sealer.seal_frame(&spec, &body, &mut d, &mut scratch).unwrap();
        let copy = d.clone();

        let mut out = Vec::new();
        let o = open_indication(&table, &mut d, &mut out).unwrap();
        assert_eq!((o.len, o.session, o.channel, o.counter, o.body), (first_len, 5, 1004, 1000, &b"first"[..]));
        let o = open_indication(&table, &mut d[first_len..], &mut out).unwrap();
        assert_eq!((o.channel, o.counter, o.content_kind), (1005, 1001, share::kind::RECEIPT));
        assert_eq!(o.body, &body[..]);

        let mut again = copy.clone();
        assert_eq!(
            open_indication(&table, &mut again, &mut out),
            Err(Refused { reason: DropReason::Replay, len: Some(first_len) })
        );
        let mut req = testkit::frame(5, 1, &testkit::txs(1, 1, 0, 1).0, false);
        let l = req.len();
        assert_eq!(
            open_indication(&table, &mut req, &mut out),
            Err(Refused { reason: DropReason::BadHeader, len: Some(l) })
        );
        let mut other = Vec::new();
        sealer_for(6).seal_frame(&FrameSpec::receipt(6, 1004), b"x", &mut other, &mut scratch).unwrap();
        let l = other.len();
        assert_eq!(
            open_indication(&table, &mut other, &mut out),
            Err(Refused { reason: DropReason::UnknownSession, len: Some(l) })
        );
        let mut tampered = Vec::new();
        sealer.seal_frame(&FrameSpec::receipt(5, 1004), b"late", &mut tampered, &mut scratch).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(open_indication(&table, &mut tampered, &mut out).map_err(|r| r.reason), Err(DropReason::AuthFailed));
        assert_eq!(
            open_indication(&table, &mut [3, 0, 0], &mut out),
            Err(Refused { reason: DropReason::Truncated, len: None })
        );
    }

    /// A relay's table opens a client's sealed requests through the same
    /// steps (a validator link's accepting end): any channel, the counter
    /// once only, and an indication refused at step 4.
    #[test]
    fn a_relay_opens_requests_through_the_same_steps() {
        let client = Session::new(Role::Client, 7, &testkit::c2r(7), &testkit::r2c(7), 0).unwrap();
        let (_, mut sealer) = client.split();
        let mut table = SessionTable::new(Role::Relay);
        table.install(7, &testkit::c2r(7), &testkit::r2c(7)).unwrap();
        let spec =
            FrameSpec { channel: channel::CONSENSUS, content_kind: share::kind::CONSENSUS, ..FrameSpec::tx_batch(7) };
        let (mut d, mut scratch, mut out) = (Vec::new(), Vec::new(), Vec::new());
        sealer.seal_frame(&spec, b"vote", &mut d, &mut scratch).unwrap();
        let copy = d.clone();
        let o = open_request(&table, &mut d, &mut out).unwrap();
        assert_eq!((o.session, o.channel, o.counter, o.content_kind), (7, 1006, 0, share::kind::CONSENSUS));
        assert_eq!(o.body, b"vote");
        let mut again = copy;
        assert_eq!(open_request(&table, &mut again, &mut out).map_err(|r| r.reason), Err(DropReason::Replay));
        let mut ind = Vec::new();
        sealer_for(7).seal_frame(&FrameSpec::receipt(7, 1006), b"x", &mut ind, &mut scratch).unwrap();
        assert_eq!(open_request(&table, &mut ind, &mut out).map_err(|r| r.reason), Err(DropReason::BadHeader));
        let mut tampered = Vec::new();
        sealer.seal_frame(&spec, b"late", &mut tampered, &mut scratch).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(open_request(&table, &mut tampered, &mut out).map_err(|r| r.reason), Err(DropReason::AuthFailed));
    }

    fn sealer_for(id: u16) -> crate::session::Sealer {
        crate::session::Sealer::new(id, &testkit::r2c(id), 0)
    }
}
