//! Validator links: the TCP connections that carry consensus messages
//! between the validators of one network (`att-wire.md`, "Transport": on
//! TCP, frames back to back, the TPKT length delimits them).
//! `docs/PROTOCOL.md`, "Validator links (TCP)", has the same rules.
//!
//! - **One connection per pair.** The node with the lower node public key
//!   (bytewise) dials the higher one; the higher one only accepts. A dialer
//!   redials after every failure or closed session, after 100 ms doubling
//!   to 2 s (back to 100 ms once a session was established), for as long
//!   as [`Links`] lives. TCP_NODELAY is on, and TCP keepalive (10 s, then
//!   every 5 s, 3 probes) notices a peer that vanished.
//! - **Handshake** (channel 1003 INFO frames, [`attnet_core::handshake`]),
//!   within 5 s of the connection or it is closed. The dialer sends a HELLO
//!   signed with its node key (the HELLO's account key) for the genesis
//!   network id. The acceptor judges it cheapest first: version and
//!   parameters, timestamp within 30 s of its clock (`stale_timestamp`),
//!   the key among the genesis validators (`peer_unknown`) and lower than
//!   its own (`wrong_direction`), then the strict signature
//!   (`bad_signature`) and its replay memory (SHA-256 of each HELLO it
//!   answered, kept 60 s: `replayed_hello`). It answers with a WELCOME for
//!   session id 1 with the default domain parameters. The dialer checks
//!   the WELCOME against the acceptor's key from the genesis
//!   (`wrong_node_key` and the other handshake errors by name). An acceptor
//!   keeps one session per peer key: a newer authenticated one replaces
//!   the old (`replaced`). At most 64 connections may be in their
//!   handshake at once, 8 from one source (an IPv4 address or an IPv6
//!   /64); more are closed at once (`busy`).
//! - **Frames.** The dialer sends MCS requests (0x64) sealed with the
//!   client-to-relay key, the acceptor indications (0x68) sealed with the
//!   relay-to-client key, on channel 1006 with content kind CONSENSUS
//!   (0x50), uncompressed. Counters start at 0 and grow by one per frame;
//!   on a stream they must arrive exactly in order (`out_of_order`). A
//!   session carries at most 2^32 − 1 frames in each direction (counters 0
//!   to 2^32 − 2): a writer about to pass that closes the link, a reader
//!   refuses a higher counter (`renewals`), and the dialer opens a new
//!   session with a new handshake.
//! - **Messages** are byte strings of at most [`MAX_MESSAGE`] bytes, cut
//!   into parts, one per frame: `total_len u32 LE | offset u32 LE | bytes`,
//!   at most [`MAX_CHUNK`] bytes of message per part (the largest body a
//!   sealed frame holds: MCS user data ≤ 0x3FFF and share-data body ≤
//!   16384). The parts of one message go back to back; a receiver requires
//!   the first part at offset 0, each next one at the bytes received so
//!   far, the same `total_len` in every part, `total_len` ≤ [`MAX_MESSAGE`]
//!   (`oversize`), no part running past `total_len` and no empty part in a
//!   non-empty message (`bad_part`). A zero-length message is one part with
//!   `total_len` 0. The reassembly buffer grows with what arrived, never
//!   with what a header announces.
//! - **Any fault closes the link** and is counted by name: a TPKT header
//!   that is not version 3, reserved 0, length ≥ 14 (`bad_frame`), a frame
//!   that fails the order of checks (`bad_frame`; a failed tag
//!   `auth_failed`; a counter seen before `out_of_order`), another channel
//!   (`wrong_channel`) or content kind (`wrong_content_kind`), a bad part.
//!   Nothing a peer sends can panic a thread.
//! - **Threads and queues.** One thread accepts (a non-blocking listener
//!   polled every 50 ms), one dials each higher peer, one reads each
//!   connection and one writes it. A sender never blocks: each session has
//!   a queue of 1024 messages, and a message for a full queue (`queue_full`)
//!   or a peer without a session (`not_connected`) is dropped and counted.
//!   The writer frames messages into a reused buffer and writes them in
//!   batches of about 64 KiB, gathering queued messages into one write; a
//!   write that makes no progress for 30 s closes the link
//!   (`write_failed`).
//!   Received messages go to one queue of 4096; when it is full the readers
//!   wait, and TCP slows the senders. Nothing polls faster than every 50 ms;
//!   everything else blocks on a socket or a channel.
//! - **Stopping.** Dropping [`Links`] shuts every socket down (connecting,
//!   in handshake or established), wakes every sleeping thread and joins
//!   them all.

#![deny(clippy::indexing_slicing)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attnet_core::emit::{FrameSpec, SEALED_OVERHEAD};
use attnet_core::handshake::{self as hs, ClientHandshake, Established, HandshakeError, SessionKeys};
use attnet_core::path::{open_indication, open_request};
use attnet_core::session::{Role, Sealer, SessionTable};
use attnet_core::wire::handshake::DomainParams;
use attnet_core::wire::mcs::{self, channel};
use attnet_core::wire::share;
use attnet_core::wire::{tpkt, x224};
use attnet_core::DropReason;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use ed25519_zebra::{SigningKey, VerificationKey};
use rand::TryRng;
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, TcpKeepalive, Type};

/// The longest message a link carries: the largest block body a consensus
/// message may hold and 64 KiB for everything around it.
pub const MAX_MESSAGE: usize = super::codec::MAX_BODY + (64 << 10);

/// Bytes of a frame before its MCS user data, with a two-byte PER length.
const USER_DATA_AT: usize = tpkt::HEADER_LEN + x224::HEADER_LEN + mcs::FIXED_LEN + 2;

/// The largest share-data body of one sealed frame: MCS user data (security
/// header, counter, share-data header, body, tag) within 0x3FFF bytes, and
/// the body within 16384.
pub const MAX_FRAME_BODY: usize = {
    let by_per = mcs::MAX_PER_LEN - (SEALED_OVERHEAD - USER_DATA_AT);
    if by_per < share::MAX_BODY {
        by_per
    } else {
        share::MAX_BODY
    }
};

/// Bytes of a part's header: `total_len u32 LE | offset u32 LE`.
pub const PART_HEADER_LEN: usize = 8;

/// The most bytes of a message one frame carries.
pub const MAX_CHUNK: usize = MAX_FRAME_BODY - PART_HEADER_LEN;

/// Messages queued for one session before more are dropped.
pub const SEND_QUEUE: usize = 1024;

/// Whole received messages waiting for [`Links::try_recv`] before the
/// readers wait.
pub const RECV_QUEUE: usize = 4096;

/// The session id an acceptor assigns (one session per connection).
const SESSION_ID: u16 = 1;
/// The last counter a session seals or accepts: a session carries at most
/// 2^32 − 1 frames in one direction, then a new handshake renews it.
const MAX_COUNTER: u64 = u32::MAX as u64 - 1;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const TIMESTAMP_SLACK_MS: u64 = 30_000;
const HELLO_MEMORY: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_STALL: Duration = Duration::from_secs(30);
const ACCEPT_POLL: Duration = Duration::from_millis(50);
const MAX_PENDING: usize = 64;
const MAX_PENDING_PER_SOURCE: usize = 8;
const FLUSH_AT: usize = 64 << 10;
const KEEPALIVE_TIME: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// What a node needs to link with the other validators.
#[derive(Clone)]
pub struct LinkConfig {
    /// The node key's Ed25519 seed.
    pub key_seed: [u8; 32],
    /// The genesis network id, signed into HELLO and WELCOME.
    pub network_id: u32,
    /// Where to accept links: this validator's genesis address.
    pub listen: SocketAddr,
    /// Every other validator: its node public key and address (this node's
    /// own key, if listed, is ignored). Lower keys dial this node; this node
    /// dials the higher ones.
    pub peers: Vec<([u8; 32], SocketAddr)>,
}

impl core::fmt::Debug for LinkConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LinkConfig")
            .field("network_id", &self.network_id)
            .field("listen", &self.listen)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

macro_rules! link_counters {
    ($($(#[doc = $doc:literal])* $name:ident,)*) => {
        /// The links' counters since [`Links::start`]. Session faults and
        /// handshake refusals each close the connection they happened on.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct LinkCounters {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl LinkCounters {
            /// Every counter under its field's name.
            pub fn to_json(&self) -> serde_json::Value {
                let mut m = serde_json::Map::new();
                $(m.insert(stringify!($name).into(), self.$name.into());)*
                serde_json::Value::Object(m)
            }
        }

        #[derive(Default)]
        struct Atomics {
            $($name: AtomicU64,)*
        }

        impl Atomics {
            fn snapshot(&self) -> LinkCounters {
                LinkCounters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

link_counters! {
    /// Sessions established (handshake done), at either end.
    sessions,
    /// Established sessions that ended, for any reason.
    closed,
    /// TCP connections a dialer attempted.
    dials,
    /// Dials after the first to the same peer.
    reconnects,
    /// Dials whose TCP connect failed.
    dial_failed,
    /// TCP connections accepted.
    accepted,
    /// Accepted connections closed at once: 64 were in their handshake,
    /// or 8 from the same source (an IPv4 address or an IPv6 /64).
    busy,
    /// Sessions an acceptor closed for a newer one with the same peer key.
    replaced,
    /// Sessions closed after 2^32 − 1 frames in one direction (renewed by
    /// a new handshake).
    renewals,
    /// Connection threads that could not be started.
    spawn_failed,
    /// Whole messages written.
    messages_sent,
    /// Whole messages received and queued.
    messages_received,
    /// Sealed frames written.
    frames_sent,
    /// Sealed frames received and opened.
    frames_received,
    /// Bytes of sealed frames written (after the handshake).
    bytes_sent,
    /// Bytes of sealed frames received (after the handshake).
    bytes_received,
    /// Messages dropped: the session's queue was full.
    queue_full,
    /// Messages for one peer dropped: no session with it.
    not_connected,
    /// Messages dropped at the sender: longer than `MAX_MESSAGE`.
    send_too_large,
    /// Session fault: a TPKT header that is not version 3, reserved 0 and
    /// length ≥ 14, or a frame that fails the order of checks.
    bad_frame,
    /// Session fault: a frame whose tag did not verify.
    auth_failed,
    /// Session fault: a counter other than the previous one plus one.
    out_of_order,
    /// Session fault: a frame on another channel than 1006.
    wrong_channel,
    /// Session fault: a content kind other than CONSENSUS (0x50).
    wrong_content_kind,
    /// Session fault: a part announcing more than `MAX_MESSAGE` bytes.
    oversize,
    /// Session fault: a part shorter than its header, at another offset
    /// than the bytes received, with another total, running past its total,
    /// or empty in a non-empty message.
    bad_part,
    /// Session end: the peer closed the connection or it failed on read.
    peer_closed,
    /// Session end: a write failed or made no progress for 30 s.
    write_failed,
    /// Handshake refusal: not done within 5 s.
    handshake_timeout,
    /// Handshake refusal: the connection closed or failed before it was done.
    handshake_aborted,
    /// Handshake refusal: not one INFO frame of the expected kind (a HELLO
    /// request at an acceptor, a WELCOME indication at a dialer).
    handshake_bad_frame,
    /// Handshake refusal: a HELLO or WELCOME of another version.
    bad_version,
    /// Handshake refusal: domain parameters an acceptor does not accept.
    bad_params,
    /// Handshake refusal: a body of the wrong length.
    malformed,
    /// Handshake refusal: a signature that breaks the strict rules.
    bad_signature,
    /// Handshake refusal: the X25519 exchange gave all zeros.
    zero_shared_secret,
    /// Handshake refusal: a WELCOME from another key than the genesis's.
    wrong_node_key,
    /// Handshake refusal: a WELCOME for another HELLO.
    not_for_this_hello,
    /// Handshake refusal: a HELLO timestamp more than 30 s from the clock.
    stale_timestamp,
    /// Handshake refusal: a HELLO answered in the last 60 s, again.
    replayed_hello,
    /// Handshake refusal: a HELLO key that is not a genesis validator's.
    peer_unknown,
    /// Handshake refusal: a HELLO key not lower than the acceptor's (the
    /// higher key never dials).
    wrong_direction,
    /// Handshake refusal: the OS gave no randomness for the ephemeral key.
    no_randomness,
}

/// Why a connection ended (or, for the handshake, was refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    HandshakeTimeout,
    HandshakeAborted,
    HandshakeBadFrame,
    Handshake(HandshakeError),
    StaleTimestamp,
    ReplayedHello,
    PeerUnknown,
    WrongDirection,
    NoRandomness,
    BadFrame,
    AuthFailed,
    OutOfOrder,
    WrongChannel,
    WrongContentKind,
    Oversize,
    BadPart,
    Renewal,
    PeerClosed,
    WriteFailed,
    /// The links are stopping: not counted.
    Stopped,
}

impl Atomics {
    fn fault(&self, f: Fault) -> Option<&AtomicU64> {
        Some(match f {
            Fault::HandshakeTimeout => &self.handshake_timeout,
            Fault::HandshakeAborted => &self.handshake_aborted,
            Fault::HandshakeBadFrame => &self.handshake_bad_frame,
            Fault::Handshake(e) => match e {
                HandshakeError::BadVersion => &self.bad_version,
                HandshakeError::BadParams => &self.bad_params,
                // No cookies on links: a cookie error cannot happen here.
                HandshakeError::Malformed | HandshakeError::BadCookie => &self.malformed,
                HandshakeError::BadSignature => &self.bad_signature,
                HandshakeError::ZeroSharedSecret => &self.zero_shared_secret,
                HandshakeError::WrongNodeKey => &self.wrong_node_key,
                HandshakeError::NotForThisHello => &self.not_for_this_hello,
            },
            Fault::StaleTimestamp => &self.stale_timestamp,
            Fault::ReplayedHello => &self.replayed_hello,
            Fault::PeerUnknown => &self.peer_unknown,
            Fault::WrongDirection => &self.wrong_direction,
            Fault::NoRandomness => &self.no_randomness,
            Fault::BadFrame => &self.bad_frame,
            Fault::AuthFailed => &self.auth_failed,
            Fault::OutOfOrder => &self.out_of_order,
            Fault::WrongChannel => &self.wrong_channel,
            Fault::WrongContentKind => &self.wrong_content_kind,
            Fault::Oversize => &self.oversize,
            Fault::BadPart => &self.bad_part,
            Fault::Renewal => &self.renewals,
            Fault::PeerClosed => &self.peer_closed,
            Fault::WriteFailed => &self.write_failed,
            Fault::Stopped => return None,
        })
    }
}

/// A live session's sending end.
struct Live {
    conn: u64,
    tx: Sender<Arc<Vec<u8>>>,
    /// Set by the first to close the connection (the reader, the writer, a
    /// newer session replacing this one): only that one counts why.
    closing: Arc<AtomicBool>,
}

/// What every thread of one node shares.
struct Inner {
    key: SigningKey,
    public: [u8; 32],
    network_id: u32,
    peers: HashMap<[u8; 32], SocketAddr>,
    c: Atomics,
    stop: AtomicBool,
    /// Never sent on; disconnected when [`Links`] drops, which wakes sleepers.
    stop_rx: Receiver<()>,
    inbox: Sender<([u8; 32], Vec<u8>)>,
    live: Mutex<HashMap<[u8; 32], Live>>,
    /// Every open socket (connecting, in handshake, established), so that
    /// stopping can shut them all down.
    sockets: Mutex<HashMap<u64, Socket>>,
    next_conn: AtomicU64,
    /// Connections in their handshake: in all, and by source.
    pending: Mutex<(usize, HashMap<[u8; 16], usize>)>,
    hellos: Mutex<HashMap<[u8; 32], Instant>>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A socket in [`Inner::sockets`], removed when this is dropped.
struct Registered<'a> {
    inner: &'a Inner,
    conn: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.inner.sockets).remove(&self.conn);
    }
}

/// One of the [`MAX_PENDING`] handshake places, given back when dropped.
struct PendingSlot {
    inner: Arc<Inner>,
    source: [u8; 16],
}

impl PendingSlot {
    /// A place for a connection from `ip`, if there is one.
    fn take(inner: &Arc<Inner>, ip: IpAddr) -> Option<PendingSlot> {
        let source = source_of(ip);
        let mut p = lock(&inner.pending);
        let (all, by_source) = &mut *p;
        let n = by_source.entry(source).or_insert(0);
        if *all >= MAX_PENDING || *n >= MAX_PENDING_PER_SOURCE {
            if *n == 0 {
                by_source.remove(&source);
            }
            return None;
        }
        *n += 1;
        *all += 1;
        Some(PendingSlot { inner: inner.clone(), source })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut p = lock(&self.inner.pending);
        let (all, by_source) = &mut *p;
        *all = all.saturating_sub(1);
        if let Some(n) = by_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_source.remove(&self.source);
            }
        }
    }
}

/// A connection's source for the handshake limits: an IPv4 address (also
/// when mapped into IPv6) or an IPv6 /64.
fn source_of(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_ipv6_mapped().octets(),
            None => {
                let mut o = a.octets();
                o.iter_mut().skip(8).for_each(|b| *b = 0);
                o
            }
        },
    }
}

impl Inner {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Sleeps `d` unless the links stop first; true if they did.
    fn sleep(&self, d: Duration) -> bool {
        match self.stop_rx.recv_timeout(d) {
            Err(RecvTimeoutError::Timeout) => self.stopping(),
            _ => true,
        }
    }

    fn count(&self, f: Fault) {
        if let Some(c) = self.c.fault(f) {
            add(c, 1);
        }
    }

    /// Lists a socket for stopping; `None` (and the socket shut down) when
    /// the links are already stopping.
    fn register(&self, s: SockRef<'_>) -> Option<Registered<'_>> {
        let clone = s.try_clone().ok()?;
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut all = lock(&self.sockets);
        if self.stopping() {
            let _ = clone.shutdown(Shutdown::Both);
            return None;
        }
        all.insert(conn, clone);
        Some(Registered { inner: self, conn })
    }

    fn shutdown_conn(&self, conn: u64) {
        if let Some(s) = lock(&self.sockets).get(&conn) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Makes a session the one for `peer`, closing an older one. False
    /// when the links are stopping.
    fn attach(&self, peer: [u8; 32], live: Live) -> bool {
        let mut all = lock(&self.live);
        if self.stopping() {
            return false;
        }
        if let Some(old) = all.insert(peer, live) {
            old.closing.store(true, Ordering::SeqCst);
            self.shutdown_conn(old.conn);
            add(&self.c.replaced, 1);
        }
        true
    }

    fn detach(&self, peer: &[u8; 32], conn: u64) {
        let mut all = lock(&self.live);
        if all.get(peer).is_some_and(|l| l.conn == conn) {
            all.remove(peer);
        }
    }

    /// Remembers an answered HELLO for 60 s; false if it is already there.
    fn first_hello(&self, hash: [u8; 32]) -> bool {
        let now = Instant::now();
        let mut seen = lock(&self.hellos);
        seen.retain(|_, at| now.duration_since(*at) < HELLO_MEMORY);
        seen.insert(hash, now).is_none()
    }
}

/// The validator links of one node (see the module documentation).
pub struct Links {
    inner: Arc<Inner>,
    inbox: Option<Receiver<([u8; 32], Vec<u8>)>>,
    stop_tx: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    local: SocketAddr,
}

impl core::fmt::Debug for Links {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Links").field("local", &self.local).finish_non_exhaustive()
    }
}

impl Links {
    /// Binds the listener (an error if it cannot), starts the accepting
    /// thread and one dialing thread per peer with a higher key, and
    /// returns at once.
    pub fn start(cfg: LinkConfig) -> io::Result<Links> {
        let key = SigningKey::from(cfg.key_seed);
        let public: [u8; 32] = VerificationKey::from(&key).into();
        let peers: HashMap<[u8; 32], SocketAddr> = cfg.peers.iter().filter(|(k, _)| *k != public).copied().collect();
        let listener = TcpListener::bind(cfg.listen)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (stop_tx, stop_rx) = bounded(1);
        let (inbox_tx, inbox_rx) = bounded(RECV_QUEUE);
        let inner = Arc::new(Inner {
            key,
            public,
            network_id: cfg.network_id,
            peers,
            c: Atomics::default(),
            stop: AtomicBool::new(false),
            stop_rx,
            inbox: inbox_tx,
            live: Mutex::new(HashMap::new()),
            sockets: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            pending: Mutex::new((0, HashMap::new())),
            hellos: Mutex::new(HashMap::new()),
        });
        let mut links =
            Links { inner: inner.clone(), inbox: Some(inbox_rx), stop_tx: Some(stop_tx), threads: Vec::new(), local };
        let i = inner.clone();
        links.threads.push(thread::Builder::new().name("link-accept".into()).spawn(move || accept_loop(i, listener))?);
        let mut higher: Vec<([u8; 32], SocketAddr)> =
            inner.peers.iter().filter(|(k, _)| **k > public).map(|(k, a)| (*k, *a)).collect();
        higher.sort();
        for (peer, addr) in higher {
            let i = inner.clone();
            // On an error `links` drops here, which stops what was started.
            links
                .threads
                .push(thread::Builder::new().name("link-dial".into()).spawn(move || dial_loop(i, peer, addr))?);
        }
        Ok(links)
    }

    /// Queues `msg` for every peer with a session now. Never blocks: a
    /// peer whose queue is full misses it (`queue_full`).
    pub fn broadcast(&self, msg: Arc<Vec<u8>>) {
        if msg.len() > MAX_MESSAGE {
            add(&self.inner.c.send_too_large, 1);
            return;
        }
        let live = lock(&self.inner.live);
        for l in live.values() {
            self.offer(l, msg.clone());
        }
    }

    /// Queues `msg` for `peer`. Never blocks: without a session with it
    /// (`not_connected`) or with its queue full (`queue_full`) the message
    /// is dropped.
    pub fn send(&self, peer: &[u8; 32], msg: Arc<Vec<u8>>) {
        if msg.len() > MAX_MESSAGE {
            add(&self.inner.c.send_too_large, 1);
            return;
        }
        let live = lock(&self.inner.live);
        match live.get(peer) {
            Some(l) => self.offer(l, msg),
            None => add(&self.inner.c.not_connected, 1),
        }
    }

    fn offer(&self, l: &Live, msg: Arc<Vec<u8>>) {
        match l.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => add(&self.inner.c.queue_full, 1),
            Err(TrySendError::Disconnected(_)) => add(&self.inner.c.not_connected, 1),
        }
    }

    /// The next whole message received, with its sender's node key (the
    /// key its session was authenticated with), if one is waiting.
    pub fn try_recv(&self) -> Option<([u8; 32], Vec<u8>)> {
        self.inbox.as_ref()?.try_recv().ok()
    }

    /// As [`Links::try_recv`], waiting up to `d` for one.
    pub fn recv_timeout(&self, d: Duration) -> Option<([u8; 32], Vec<u8>)> {
        self.inbox.as_ref()?.recv_timeout(d).ok()
    }

    /// The peers with an established session now, sorted.
    pub fn connected(&self) -> Vec<[u8; 32]> {
        let mut v: Vec<[u8; 32]> = lock(&self.inner.live).keys().copied().collect();
        v.sort();
        v
    }

    /// The counters now.
    pub fn counters(&self) -> LinkCounters {
        self.inner.c.snapshot()
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// This node's public key.
    pub fn node_key(&self) -> [u8; 32] {
        self.inner.public
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.stop_tx.take();
        for s in lock(&self.inner.sockets).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Writers end when their queue's sender goes; readers waiting for
        // room in the inbox when its receiver goes.
        lock(&self.inner.live).clear();
        self.inbox.take();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn random32() -> Option<[u8; 32]> {
    let mut b = [0u8; 32];
    rand::rngs::SysRng.try_fill_bytes(&mut b).ok()?;
    Some(b)
}

fn tune(s: SockRef<'_>) {
    let _ = s.set_tcp_nodelay(true);
    let ka =
        TcpKeepalive::new().with_time(KEEPALIVE_TIME).with_interval(KEEPALIVE_INTERVAL).with_retries(KEEPALIVE_RETRIES);
    let _ = s.set_tcp_keepalive(&ka);
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !inner.stopping() {
        match listener.accept() {
            Ok((stream, from)) => {
                add(&inner.c.accepted, 1);
                let Some(slot) = PendingSlot::take(&inner, from.ip()) else {
                    add(&inner.c.busy, 1);
                    continue;
                };
                let i = inner.clone();
                match thread::Builder::new().name("link-conn".into()).spawn(move || accepted(&i, stream, slot)) {
                    Ok(h) => conns.push(h),
                    Err(_) => add(&inner.c.spawn_failed, 1),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Nothing waiting, or an error such as too many open files:
            // wait a little either way, never spin.
            Err(_) => {
                conns.retain(|h| !h.is_finished());
                if inner.sleep(ACCEPT_POLL) {
                    break;
                }
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

fn accepted(inner: &Arc<Inner>, mut stream: TcpStream, slot: PendingSlot) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let Some(reg) = inner.register(SockRef::from(&stream)) else { return };
    tune(SockRef::from(&stream));
    match accept_handshake(inner, &mut stream) {
        Ok((peer, keys)) => {
            drop(slot);
            run_session(inner, stream, &reg, peer, Role::Relay, SESSION_ID, &keys);
        }
        Err(f) if !inner.stopping() => inner.count(f),
        Err(_) => {}
    }
}

fn dial_loop(inner: Arc<Inner>, peer: [u8; 32], addr: SocketAddr) {
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    while !inner.stopping() {
        if !first {
            add(&inner.c.reconnects, 1);
        }
        first = false;
        add(&inner.c.dials, 1);
        if dial_once(&inner, peer, addr) {
            backoff = BACKOFF_MIN;
        }
        if inner.sleep(backoff) {
            break;
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection to `peer`: true if a session was established.
fn dial_once(inner: &Arc<Inner>, peer: [u8; 32], addr: SocketAddr) -> bool {
    let Ok(sock) = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)) else {
        add(&inner.c.dial_failed, 1);
        return false;
    };
    let Some(reg) = inner.register(SockRef::from(&sock)) else { return false };
    tune(SockRef::from(&sock));
    if sock.connect_timeout(&SockAddr::from(addr), CONNECT_TIMEOUT).is_err() {
        if !inner.stopping() {
            add(&inner.c.dial_failed, 1);
        }
        return false;
    }
    let mut stream: TcpStream = sock.into();
    match dial_handshake(inner, &mut stream, &peer) {
        Ok(est) => {
            run_session(inner, stream, &reg, peer, Role::Client, est.session_id, &est.keys);
            true
        }
        Err(f) => {
            if !inner.stopping() {
                inner.count(f);
            }
            false
        }
    }
}

/// Why a frame could not be read off the stream.
enum ReadError {
    Io(io::Error),
    /// A TPKT header that is not version 3, reserved 0, length ≥ 14.
    BadHeader,
}

/// Fills `buf` from the stream, within `deadline` if there is one.
fn read_full(stream: &mut TcpStream, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            stream.set_read_timeout(Some(left))?;
        }
        match stream.read(buf.get_mut(at..).unwrap_or(&mut [])) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(io::ErrorKind::TimedOut.into()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one frame into `buf` (resized to it); returns its length.
fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Option<Instant>) -> Result<usize, ReadError> {
    let mut head = [0u8; tpkt::HEADER_LEN];
    read_full(stream, &mut head, deadline).map_err(ReadError::Io)?;
    let [version, reserved, hi, lo] = head;
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if version != tpkt::VERSION || reserved != 0 || len < tpkt::MIN_FRAME_LEN {
        return Err(ReadError::BadHeader);
    }
    buf.clear();
    buf.extend_from_slice(&head);
    buf.resize(len, 0);
    read_full(stream, buf.get_mut(tpkt::HEADER_LEN..).unwrap_or(&mut []), deadline).map_err(ReadError::Io)?;
    Ok(len)
}

fn handshake_read_fault(e: ReadError) -> Fault {
    match e {
        ReadError::BadHeader => Fault::HandshakeBadFrame,
        ReadError::Io(e) => handshake_io_fault(&e),
    }
}

fn handshake_io_fault(e: &io::Error) -> Fault {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Fault::HandshakeTimeout,
        _ => Fault::HandshakeAborted,
    }
}

/// Reads the one INFO frame of a handshake step: `(mcs kind, content
/// kind, body)`.
fn read_info(stream: &mut TcpStream, deadline: Instant, buf: &mut Vec<u8>) -> Result<(u8, u8, Vec<u8>), Fault> {
    let len = read_frame(stream, buf, Some(deadline)).map_err(handshake_read_fault)?;
    let frames = hs::parse_info_frames(buf.get(..len).unwrap_or(&[])).map_err(|_| Fault::HandshakeBadFrame)?;
    match frames.as_slice() {
        [f] => Ok((f.kind, f.content_kind, f.body.to_vec())),
        _ => Err(Fault::HandshakeBadFrame),
    }
}

/// The accepting end's handshake: the HELLO judged, the WELCOME sent.
fn accept_handshake(inner: &Inner, stream: &mut TcpStream) -> Result<([u8; 32], SessionKeys), Fault> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(|e| handshake_io_fault(&e))?;
    let mut buf = Vec::with_capacity(256);
    let (kind, content, body) = read_info(stream, deadline, &mut buf)?;
    if kind != mcs::KIND_REQUEST || content != share::kind::HELLO {
        return Err(Fault::HandshakeBadFrame);
    }
    let hello = hs::parse_hello(&body).map_err(Fault::Handshake)?;
    if hello.timestamp_ms.abs_diff(unix_ms()) > TIMESTAMP_SLACK_MS {
        return Err(Fault::StaleTimestamp);
    }
    if !inner.peers.contains_key(&hello.account) {
        return Err(Fault::PeerUnknown);
    }
    if hello.account >= inner.public {
        return Err(Fault::WrongDirection);
    }
    if !hs::check_hello_signature(inner.network_id, &body) {
        return Err(Fault::Handshake(HandshakeError::BadSignature));
    }
    if !inner.first_hello(Sha256::digest(&body).into()) {
        return Err(Fault::ReplayedHello);
    }
    let eph = random32().ok_or(Fault::NoRandomness)?;
    let (welcome, keys) =
        hs::relay_welcome(&inner.key, eph, &hello, &body, SESSION_ID, &DomainParams::default(), inner.network_id)
            .map_err(Fault::Handshake)?;
    buf.clear();
    hs::info_frame(mcs::KIND_INDICATION, SESSION_ID, share::kind::WELCOME, &welcome, &mut buf);
    stream.write_all(&buf).map_err(|e| handshake_io_fault(&e))?;
    Ok((hello.account, keys))
}

/// The dialing end's handshake: the HELLO sent, the WELCOME checked
/// against `peer`, the acceptor's key from the genesis.
fn dial_handshake(inner: &Inner, stream: &mut TcpStream, peer: &[u8; 32]) -> Result<Established, Fault> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(|e| handshake_io_fault(&e))?;
    let eph = random32().ok_or(Fault::NoRandomness)?;
    let client = ClientHandshake::new(&inner.key, eph, unix_ms(), inner.network_id);
    stream.write_all(&client.hello_frame()).map_err(|e| handshake_io_fault(&e))?;
    let mut buf = Vec::with_capacity(256);
    let (kind, content, body) = read_info(stream, deadline, &mut buf)?;
    if kind != mcs::KIND_INDICATION || content != share::kind::WELCOME {
        return Err(Fault::HandshakeBadFrame);
    }
    client.finish(&body, peer).map_err(Fault::Handshake)
}

/// The frames this end sends: its MCS kind, the session, channel 1006,
/// CONSENSUS, uncompressed.
fn frame_spec(role: Role, session: u16) -> FrameSpec {
    FrameSpec {
        kind: match role {
            Role::Client => mcs::KIND_REQUEST,
            Role::Relay => mcs::KIND_INDICATION,
        },
        initiator: session,
        channel: channel::CONSENSUS,
        priority: mcs::PRIORITY_HIGH,
        long_per: false,
        stream_seq: 0,
        content_kind: share::kind::CONSENSUS,
        compress: false,
    }
}

/// The parts of a message: `(offset, bytes)`; one empty part for an empty
/// message.
fn parts(msg: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let n = msg.len().div_ceil(MAX_CHUNK).max(1);
    (0..n).map(move |i| {
        let at = i * MAX_CHUNK;
        (at, msg.get(at..msg.len().min(at + MAX_CHUNK)).unwrap_or(&[]))
    })
}

/// Appends one sealed part frame to `out`. `Renewal` when the sealer has
/// used its last counter.
fn seal_part(
    sealer: &mut Sealer,
    spec: &FrameSpec,
    total: u32,
    offset: usize,
    bytes: &[u8],
    bufs: &mut WriteBufs,
) -> Result<(), Fault> {
    if sealer.next_counter() > MAX_COUNTER {
        return Err(Fault::Renewal);
    }
    let offset = u32::try_from(offset).map_err(|_| Fault::Oversize)?;
    bufs.part.clear();
    bufs.part.extend_from_slice(&total.to_le_bytes());
    bufs.part.extend_from_slice(&offset.to_le_bytes());
    bufs.part.extend_from_slice(bytes);
    // stream_seq is informational: the counter's low 16 bits.
    let spec = FrameSpec { stream_seq: sealer.next_counter() as u16, ..*spec };
    // A part of at most MAX_CHUNK bytes always fits one frame.
    sealer.seal_frame(&spec, &bufs.part, &mut bufs.out, &mut bufs.scratch).map_err(|_| Fault::WriteFailed)?;
    Ok(())
}

/// A writer's reused buffers.
#[derive(Default)]
struct WriteBufs {
    part: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
    /// Frames in `out`.
    frames: u64,
}

/// A received message being put back together from its parts.
#[derive(Debug, Default)]
struct Reassembly {
    /// `total_len` of the message in progress (`None` between messages).
    total: Option<usize>,
    buf: Vec<u8>,
}

impl Reassembly {
    /// Takes one part's body; returns the message it completes.
    fn push(&mut self, body: &[u8]) -> Result<Option<Vec<u8>>, Fault> {
        let (head, bytes) = body.split_at_checked(PART_HEADER_LEN).ok_or(Fault::BadPart)?;
        let (t, o) = head.split_at(4);
        let le = |b: &[u8]| <[u8; 4]>::try_from(b).map(|a| u32::from_le_bytes(a) as usize);
        let (Ok(total), Ok(offset)) = (le(t), le(o)) else { return Err(Fault::BadPart) };
        if total > MAX_MESSAGE {
            return Err(Fault::Oversize);
        }
        if self.total.is_some_and(|t| t != total) || offset != self.buf.len() {
            return Err(Fault::BadPart);
        }
        if (bytes.is_empty() && total != 0) || bytes.len() > total - self.buf.len() {
            return Err(Fault::BadPart);
        }
        self.buf.extend_from_slice(bytes);
        if self.buf.len() == total {
            self.total = None;
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        self.total = Some(total);
        Ok(None)
    }
}

/// Runs an established session until it ends: the writer in a thread of
/// its own, the reader here.
fn run_session(
    inner: &Arc<Inner>,
    mut stream: TcpStream,
    reg: &Registered<'_>,
    peer: [u8; 32],
    role: Role,
    session: u16,
    keys: &SessionKeys,
) {
    let _ = stream.set_read_timeout(None);
    let _ = stream.set_write_timeout(Some(WRITE_STALL));
    let mut table = SessionTable::new(role);
    let (Ok(()), Ok(wstream)) = (table.install(u32::from(session), &keys.c2r, &keys.r2c), stream.try_clone()) else {
        return;
    };
    let (_, tx_key) = role.keys(&keys.c2r, &keys.r2c);
    let sealer = Sealer::new(session, tx_key, 0);
    let (tx, rx) = bounded(SEND_QUEUE);
    let closing = Arc::new(AtomicBool::new(false));
    let (i, cl, spec) = (inner.clone(), closing.clone(), frame_spec(role, session));
    let writer = match thread::Builder::new()
        .name("link-write".into())
        .spawn(move || write_loop(&i, wstream, rx, sealer, spec, &cl))
    {
        Ok(h) => h,
        Err(_) => {
            add(&inner.c.spawn_failed, 1);
            return;
        }
    };
    let fault = if inner.attach(peer, Live { conn: reg.conn, tx, closing: closing.clone() }) {
        add(&inner.c.sessions, 1);
        let f = read_loop(inner, &mut stream, &table, role, peer);
        inner.detach(&peer, reg.conn);
        add(&inner.c.closed, 1);
        f
    } else {
        Fault::Stopped
    };
    // The first to close counts why; what follows (the other thread's
    // failed read or write) is not counted.
    let first = !closing.swap(true, Ordering::SeqCst);
    if first && !inner.stopping() {
        inner.count(fault);
    }
    let _ = stream.shutdown(Shutdown::Both);
    let _ = writer.join();
}

fn read_loop(inner: &Inner, stream: &mut TcpStream, table: &SessionTable, role: Role, peer: [u8; 32]) -> Fault {
    let mut buf = Vec::with_capacity(MAX_FRAME_BODY + SEALED_OVERHEAD);
    let mut scratch = Vec::new();
    let mut next: u64 = 0;
    let mut msg = Reassembly::default();
    loop {
        let len = match read_frame(stream, &mut buf, None) {
            Ok(n) => n,
            Err(ReadError::BadHeader) => return Fault::BadFrame,
            Err(ReadError::Io(_)) => return Fault::PeerClosed,
        };
        let Some(frame) = buf.get_mut(..len) else { return Fault::BadFrame };
        let opened = match role {
            Role::Client => open_indication(table, frame, &mut scratch),
            Role::Relay => open_request(table, frame, &mut scratch),
        };
        let f = match opened {
            Ok(f) => f,
            Err(r) => {
                return match r.reason {
                    DropReason::AuthFailed => Fault::AuthFailed,
                    DropReason::Replay => Fault::OutOfOrder,
                    _ => Fault::BadFrame,
                }
            }
        };
        if f.len != len {
            return Fault::BadFrame;
        }
        if f.channel != channel::CONSENSUS {
            return Fault::WrongChannel;
        }
        if f.content_kind != share::kind::CONSENSUS {
            return Fault::WrongContentKind;
        }
        if f.counter != next {
            return Fault::OutOfOrder;
        }
        if f.counter > MAX_COUNTER {
            return Fault::Renewal;
        }
        next += 1;
        add(&inner.c.frames_received, 1);
        add(&inner.c.bytes_received, len as u64);
        match msg.push(f.body) {
            Err(fault) => return fault,
            Ok(None) => {}
            Ok(Some(m)) => {
                add(&inner.c.messages_received, 1);
                if inner.inbox.send((peer, m)).is_err() {
                    return Fault::Stopped;
                }
            }
        }
    }
}

fn write_loop(
    inner: &Inner,
    mut stream: TcpStream,
    rx: Receiver<Arc<Vec<u8>>>,
    mut sealer: Sealer,
    spec: FrameSpec,
    closing: &AtomicBool,
) {
    let mut bufs = WriteBufs::default();
    let fault = 'session: loop {
        let Ok(first) = rx.recv() else { break 'session Fault::Stopped };
        let mut next = Some(first);
        let mut done = 0u64;
        while let Some(m) = next.take() {
            // Longer messages never reach a queue (`Links::send`).
            let total = u32::try_from(m.len().min(MAX_MESSAGE)).unwrap_or(0);
            for (offset, bytes) in parts(m.get(..total as usize).unwrap_or(&[])) {
                if let Err(f) = seal_part(&mut sealer, &spec, total, offset, bytes, &mut bufs) {
                    break 'session f;
                }
                bufs.frames += 1;
                if bufs.out.len() >= FLUSH_AT {
                    if let Err(f) = flush(inner, &mut stream, &mut bufs) {
                        break 'session f;
                    }
                }
            }
            done += 1;
            // Gather what else is queued into the same write.
            if bufs.out.len() < FLUSH_AT {
                next = rx.try_recv().ok();
            }
        }
        if let Err(f) = flush(inner, &mut stream, &mut bufs) {
            break 'session f;
        }
        add(&inner.c.messages_sent, done);
    };
    if fault != Fault::Stopped && !closing.swap(true, Ordering::SeqCst) {
        let _ = stream.shutdown(Shutdown::Both);
        if !inner.stopping() {
            inner.count(fault);
        }
    }
}

fn flush(inner: &Inner, stream: &mut TcpStream, bufs: &mut WriteBufs) -> Result<(), Fault> {
    if bufs.out.is_empty() {
        return Ok(());
    }
    stream.write_all(&bufs.out).map_err(|_| Fault::WriteFailed)?;
    add(&inner.c.bytes_sent, bufs.out.len() as u64);
    add(&inner.c.frames_sent, bufs.frames);
    bufs.out.clear();
    bufs.frames = 0;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    const NET: u32 = 0x5eed;

    fn public(seed: [u8; 32]) -> [u8; 32] {
        VerificationKey::from(&SigningKey::from(seed)).into()
    }

    /// `n` node keys `(seed, public)`, sorted by public key.
    fn keys(n: u8, tag: u8) -> Vec<([u8; 32], [u8; 32])> {
        let mut v: Vec<_> = (0..n)
            .map(|i| {
                let mut s = [tag; 32];
                s[0] = i;
                (s, public(s))
            })
            .collect();
        v.sort_by_key(|k| k.1);
        v
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    /// A peer this node never dials (a lower key): its address is not used.
    fn unused() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    fn start(seed: [u8; 32], listen: SocketAddr, peers: Vec<([u8; 32], SocketAddr)>) -> Links {
        Links::start(LinkConfig { key_seed: seed, network_id: NET, listen, peers }).unwrap()
    }

    /// Waits up to 5 s for `f`.
    fn wait(what: &str, f: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn recv(l: &Links) -> ([u8; 32], Vec<u8>) {
        l.recv_timeout(Duration::from_secs(5)).expect("a message within 5 s")
    }

    fn message(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn limits() {
        assert_eq!(MAX_FRAME_BODY, 16337);
        assert_eq!(MAX_CHUNK, 16329);
        assert_eq!(MAX_MESSAGE, (8 << 20) + (64 << 10));
        // The largest part seals into one frame; a byte more does not fit.
        let mut sealer = Sealer::new(1, &[7; 32], 0);
        let spec = frame_spec(Role::Client, 1);
        let mut bufs = WriteBufs::default();
        let chunk = vec![0xa5; MAX_CHUNK];
        seal_part(&mut sealer, &spec, MAX_CHUNK as u32, 0, &chunk, &mut bufs).unwrap();
        assert_eq!(bufs.out.len(), MAX_FRAME_BODY + SEALED_OVERHEAD);
        let over = vec![0xa5; MAX_CHUNK + 1];
        assert!(seal_part(&mut sealer, &spec, 0, 0, &over, &mut bufs).is_err());
        // A sealer past its last counter closes the session.
        let mut old = Sealer::new(1, &[7; 32], MAX_COUNTER + 1);
        assert_eq!(seal_part(&mut old, &spec, 0, 0, &[], &mut bufs), Err(Fault::Renewal));
    }

    /// Messages cut into parts and sealed open and reassemble through the
    /// receiver's code: empty, one byte, a whole chunk, a chunk and a byte,
    /// three chunks and a half.
    #[test]
    fn parts_round_trip() {
        let k = SessionKeys { c2r: [1; 32], r2c: [2; 32] };
        let mut sealer = Sealer::new(1, &k.c2r, 0);
        let mut table = SessionTable::new(Role::Relay);
        table.install(1, &k.c2r, &k.r2c).unwrap();
        let spec = frame_spec(Role::Client, 1);
        let (mut bufs, mut scratch, mut r) = (WriteBufs::default(), Vec::new(), Reassembly::default());
        let lens = [0, 1, MAX_CHUNK, MAX_CHUNK + 1, 3 * MAX_CHUNK + MAX_CHUNK / 2];
        let mut want_frames = 0;
        for (n, len) in lens.iter().enumerate() {
            let m = message(*len, n as u8);
            for (off, b) in parts(&m) {
                seal_part(&mut sealer, &spec, m.len() as u32, off, b, &mut bufs).unwrap();
                want_frames += 1;
            }
        }
        assert_eq!(want_frames, 1 + 1 + 1 + 2 + 4);
        let mut rest = &mut bufs.out[..];
        let mut got = Vec::new();
        let mut counter = 0;
        while !rest.is_empty() {
            let f = open_request(&table, rest, &mut scratch).unwrap();
            assert_eq!((f.counter, f.channel, f.content_kind), (counter, 1006, 0x50));
            counter += 1;
            let len = f.len;
            if let Some(m) = r.push(f.body).unwrap() {
                got.push(m);
            }
            rest = &mut rest[len..];
        }
        let want: Vec<Vec<u8>> = lens.iter().enumerate().map(|(n, l)| message(*l, n as u8)).collect();
        assert_eq!(got, want);
    }

    fn part(total: u32, offset: u32, bytes: &[u8]) -> Vec<u8> {
        let mut b = total.to_le_bytes().to_vec();
        b.extend_from_slice(&offset.to_le_bytes());
        b.extend_from_slice(bytes);
        b
    }

    #[test]
    fn reassembly_rules() {
        let fresh = Reassembly::default;
        assert_eq!(fresh().push(&part(0, 0, &[])), Ok(Some(vec![])));
        assert_eq!(fresh().push(&[0; 7]), Err(Fault::BadPart));
        assert_eq!(fresh().push(&part(MAX_MESSAGE as u32 + 1, 0, b"x")), Err(Fault::Oversize));
        assert_eq!(fresh().push(&part(u32::MAX, 0, b"x")), Err(Fault::Oversize));
        // The first part at offset 0; no empty part in a non-empty message;
        // nothing past the total.
        assert_eq!(fresh().push(&part(4, 1, b"abc")), Err(Fault::BadPart));
        assert_eq!(fresh().push(&part(4, 0, b"")), Err(Fault::BadPart));
        assert_eq!(fresh().push(&part(2, 0, b"abc")), Err(Fault::BadPart));
        assert_eq!(fresh().push(&part(0, 0, b"a")), Err(Fault::BadPart));
        let mut r = fresh();
        assert_eq!(r.push(&part(5, 0, b"ab")), Ok(None));
        // Another total, a gap, an overlap.
        for bad in [part(6, 2, b"cde"), part(5, 3, b"de"), part(5, 1, b"bcde")] {
            let mut r2 = Reassembly { total: r.total, buf: r.buf.clone() };
            assert_eq!(r2.push(&bad), Err(Fault::BadPart));
        }
        assert_eq!(r.push(&part(5, 2, b"cd")), Ok(None));
        assert_eq!(r.push(&part(5, 4, b"e")), Ok(Some(b"abcde".to_vec())));
        // The next message starts again at offset 0.
        assert_eq!(r.push(&part(1, 1, b"z")), Err(Fault::BadPart));
        assert_eq!(r.push(&part(1, 0, b"z")), Ok(Some(b"z".to_vec())));
    }

    #[test]
    fn links_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Links>();
        shared::<LinkCounters>();
    }

    #[test]
    fn counters_json() {
        let c = LinkCounters { wrong_node_key: 3, bytes_sent: 9, ..LinkCounters::default() };
        let j = c.to_json();
        assert_eq!((j["wrong_node_key"].as_u64(), j["bytes_sent"].as_u64()), (Some(3), Some(9)));
        assert_eq!(j.as_object().map(|o| o.len()), Some(43));
    }

    /// Three nodes link in a full mesh; a 3 MiB message and 100 small ones
    /// from one arrive whole and in order at both others with its key, and
    /// a link carries messages both ways.
    #[test]
    fn full_mesh_carries_messages_in_order() {
        let k = keys(3, 1);
        let n2 = start(k[2].0, loopback(), vec![(k[0].1, unused()), (k[1].1, unused())]);
        let n1 = start(k[1].0, loopback(), vec![(k[0].1, unused()), (k[2].1, n2.local_addr())]);
        let n0 = start(k[0].0, loopback(), vec![(k[1].1, n1.local_addr()), (k[2].1, n2.local_addr())]);
        let nodes = [&n0, &n1, &n2];
        wait("the full mesh", || nodes.iter().all(|n| n.connected().len() == 2));
        assert_eq!(n0.connected(), vec![k[1].1, k[2].1]);

        let big = Arc::new(message(3 << 20, 7));
        n1.broadcast(big.clone());
        for i in 0..100u32 {
            n1.broadcast(Arc::new(i.to_le_bytes().to_vec()));
        }
        for n in [&n0, &n2] {
            let (from, m) = recv(n);
            assert_eq!(from, k[1].1);
            assert!(m == *big, "the 3 MiB message arrives whole");
            for i in 0..100u32 {
                assert_eq!(recv(n), (k[1].1, i.to_le_bytes().to_vec()));
            }
        }
        // Both ways on one link (n0 dials n2), and an empty message.
        n2.send(&k[0].1, Arc::new(b"down".to_vec()));
        n0.send(&k[2].1, Arc::new(b"up".to_vec()));
        n0.send(&k[2].1, Arc::new(Vec::new()));
        assert_eq!(recv(&n0), (k[2].1, b"down".to_vec()));
        assert_eq!(recv(&n2), (k[0].1, b"up".to_vec()));
        assert_eq!(recv(&n2), (k[0].1, Vec::new()));
        assert_eq!(n0.try_recv(), None);

        let frames_per_copy = (3u64 << 20).div_ceil(MAX_CHUNK as u64) + 100;
        wait("n1's counts", || {
            let c = n1.counters();
            (c.messages_sent, c.frames_sent) == (2 * 101, 2 * frames_per_copy)
        });
        let c0 = n0.counters();
        assert_eq!(c0.messages_received, 102);
        assert_eq!((c0.sessions, c0.dials, c0.queue_full, c0.bad_frame, c0.auth_failed), (2, 2, 0, 0, 0));
        // Too long to send, and a peer with no session.
        n0.send(&k[1].1, Arc::new(vec![0; MAX_MESSAGE + 1]));
        n0.send(&[9; 32], Arc::new(vec![1]));
        let c0 = n0.counters();
        assert_eq!((c0.send_too_large, c0.not_connected), (1, 1));
        let t = Instant::now();
        drop(n0);
        drop(n1);
        drop(n2);
        assert!(t.elapsed() < Duration::from_secs(1), "stopping took {:?}", t.elapsed());
    }

    /// A node whose key is not among the acceptor's validators gets no
    /// WELCOME, nor does a validator with a higher key (it never dials);
    /// nothing either sends is delivered.
    #[test]
    fn an_unknown_key_is_refused() {
        let k = keys(3, 2);
        // k[1] accepts k[0]'s and k[2]'s keys in no case: k[0] is not a
        // validator for it, k[2] is higher (k[1] dials it, at an address
        // where nothing listens).
        let acceptor = start(k[1].0, loopback(), vec![(k[2].1, unused())]);
        let stranger = start(k[0].0, loopback(), vec![(k[1].1, acceptor.local_addr())]);
        wait("the refusal", || acceptor.counters().peer_unknown >= 1);
        wait("the stranger's count", || stranger.counters().handshake_aborted >= 1);
        stranger.broadcast(Arc::new(b"hello".to_vec()));
        stranger.send(&k[1].1, Arc::new(b"hello".to_vec()));
        let higher = ClientHandshake::new(&SigningKey::from(k[2].0), random32().unwrap(), unix_ms(), NET);
        let mut s = TcpStream::connect(acceptor.local_addr()).unwrap();
        s.write_all(&higher.hello_frame()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(s.read(&mut [0u8; 8]), Ok(0) | Err(_)));
        wait("wrong_direction", || acceptor.counters().wrong_direction == 1);
        assert!(stranger.connected().is_empty() && acceptor.connected().is_empty());
        assert_eq!(acceptor.recv_timeout(Duration::from_millis(200)), None);
        assert_eq!(acceptor.counters().sessions, 0);
        assert_eq!(stranger.counters().not_connected, 1);
    }

    /// A dialer that pins another key for the acceptor refuses its WELCOME.
    #[test]
    fn a_welcome_from_another_key_is_refused() {
        let k = keys(3, 3);
        // k[0] dials k[2]'s address but expects k[1] there (k[1] > k[0]).
        let acceptor = start(k[2].0, loopback(), vec![(k[0].1, unused())]);
        let dialer = start(k[0].0, loopback(), vec![(k[1].1, acceptor.local_addr())]);
        wait("the refusal", || dialer.counters().wrong_node_key >= 1);
        assert!(dialer.connected().is_empty());
        assert_eq!(dialer.counters().sessions, 0);
        dialer.send(&k[1].1, Arc::new(b"x".to_vec()));
        assert_eq!(acceptor.recv_timeout(Duration::from_millis(200)), None);
    }

    /// A raw client: a TCP connection, the handshake as `seed`, and the
    /// sealer for its requests.
    struct Raw {
        s: TcpStream,
        sealer: Sealer,
        spec: FrameSpec,
        buf: Vec<u8>,
        scratch: Vec<u8>,
    }

    impl Raw {
        fn connect(addr: SocketAddr, seed: [u8; 32], acceptor: &[u8; 32]) -> Raw {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let c = ClientHandshake::new(&SigningKey::from(seed), random32().unwrap(), unix_ms(), NET);
            s.write_all(&c.hello_frame()).unwrap();
            let mut buf = Vec::new();
            let len = read_frame(&mut s, &mut buf, None).ok().unwrap();
            let frames = hs::parse_info_frames(&buf[..len]).unwrap();
            let est = c.finish(frames[0].body, acceptor).unwrap();
            let sealer = Sealer::new(est.session_id, &est.keys.c2r, 0);
            Raw { s, sealer, spec: frame_spec(Role::Client, est.session_id), buf: Vec::new(), scratch: Vec::new() }
        }

        fn frame(&mut self, spec: &FrameSpec, body: &[u8]) -> Vec<u8> {
            self.buf.clear();
            self.sealer.seal_frame(spec, body, &mut self.buf, &mut self.scratch).unwrap();
            self.buf.clone()
        }

        fn send(&mut self, bytes: &[u8]) {
            // The acceptor may already have closed: a failed write is fine.
            let _ = self.s.write_all(bytes);
        }

        fn part(&mut self, body: &[u8]) -> Vec<u8> {
            let spec = self.spec;
            self.frame(&spec, body)
        }

        /// The acceptor closed the connection (end of stream or reset, not
        /// a timeout).
        fn closed(mut self) -> bool {
            let mut b = [0u8; 64];
            loop {
                match self.s.read(&mut b) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) => return !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
                }
            }
        }
    }

    /// Hostile bytes close the connection they came on, are counted by
    /// name, and leave the other links alone.
    #[test]
    fn hostile_bytes_close_the_link_and_are_counted() {
        let k = keys(3, 4);
        let (a, b, h) = (k[2], k[1], k[0]);
        let acceptor = start(a.0, loopback(), vec![(b.1, unused()), (h.1, unused())]);
        let honest = start(b.0, loopback(), vec![(a.1, acceptor.local_addr())]);
        wait("the honest link", || acceptor.connected() == vec![b.1]);
        let addr = acceptor.local_addr();
        let counters = || acceptor.counters();

        // Garbage instead of a HELLO.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(s.read(&mut [0u8; 8]), Ok(0) | Err(_)));
        wait("handshake_bad_frame", || counters().handshake_bad_frame == 1);
        // A TPKT header announcing 65535 bytes, then silence: refused when
        // the connection closes (not counted as a frame).
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&[3, 0, 0xff, 0xff, 2, 0xf0]).unwrap();
        drop(s);
        wait("handshake_aborted", || counters().handshake_aborted == 1);

        // A valid message first: delivered with the raw client's key.
        let mut r = Raw::connect(addr, h.0, &a.1);
        let p = r.part(&part(2, 0, b"ok"));
        r.send(&p);
        assert_eq!(recv(&acceptor), (h.1, b"ok".to_vec()));
        // Then a flipped tag bit.
        let mut p = r.part(&part(1, 0, b"x"));
        let last = p.len() - 1;
        p[last] ^= 1;
        r.send(&p);
        assert!(r.closed());
        wait("auth_failed", || counters().auth_failed == 1);

        // A counter skipped.
        let mut r = Raw::connect(addr, h.0, &a.1);
        let p = r.part(&part(1, 0, b"1"));
        r.send(&p);
        r.sealer.take_counter();
        let p = r.part(&part(1, 0, b"2"));
        r.send(&p);
        assert!(r.closed());
        wait("out_of_order", || counters().out_of_order == 1);
        assert_eq!(recv(&acceptor), (h.1, b"1".to_vec()));

        // The same frame twice (a replay).
        let mut r = Raw::connect(addr, h.0, &a.1);
        let p = r.part(&part(1, 0, b"r"));
        r.send(&p);
        r.send(&p);
        assert!(r.closed());
        wait("out_of_order", || counters().out_of_order == 2);
        assert_eq!(recv(&acceptor), (h.1, b"r".to_vec()));

        // Another channel, another content kind, an indication.
        type Count = fn(&LinkCounters) -> u64;
        let cases: [(FrameSpec, Count); 3] = [
            (FrameSpec { channel: channel::MESSAGES, ..frame_spec(Role::Client, 1) }, |c| c.wrong_channel),
            (FrameSpec { content_kind: share::kind::TX_BATCH, ..frame_spec(Role::Client, 1) }, |c| {
                c.wrong_content_kind
            }),
            (frame_spec(Role::Relay, 1), |c| c.bad_frame),
        ];
        for (spec, count) in cases {
            let mut r = Raw::connect(addr, h.0, &a.1);
            let p = r.frame(&spec, &part(1, 0, b"w"));
            r.send(&p);
            assert!(r.closed());
            wait("the named fault", || count(&counters()) == 1);
        }

        // A part too short, one announcing too much, a TPKT header of
        // another version.
        let mut r = Raw::connect(addr, h.0, &a.1);
        let p = r.part(&[1, 2, 3]);
        r.send(&p);
        assert!(r.closed());
        wait("bad_part", || counters().bad_part == 1);
        let mut r = Raw::connect(addr, h.0, &a.1);
        let p = r.part(&part(MAX_MESSAGE as u32 + 1, 0, b"big"));
        r.send(&p);
        assert!(r.closed());
        wait("oversize", || counters().oversize == 1);
        let mut r = Raw::connect(addr, h.0, &a.1);
        r.send(&[4, 0, 0, 20]);
        assert!(r.closed());
        wait("bad_frame", || counters().bad_frame == 2);

        // The same HELLO again is refused.
        let c = ClientHandshake::new(&SigningKey::from(h.0), [0x43; 32], unix_ms(), NET);
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&c.hello_frame()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let _ = read_frame(&mut s, &mut buf, None);
        }
        wait("replayed_hello", || counters().replayed_hello == 1);
        // A stale HELLO.
        let stale = ClientHandshake::new(&SigningKey::from(h.0), [0x44; 32], unix_ms() - 60_000, NET);
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&stale.hello_frame()).unwrap();
        wait("stale_timestamp", || counters().stale_timestamp == 1);

        // The honest link was never touched.
        honest.send(&a.1, Arc::new(b"still here".to_vec()));
        assert_eq!(recv(&acceptor), (b.1, b"still here".to_vec()));
        acceptor.send(&b.1, Arc::new(b"and back".to_vec()));
        assert_eq!(recv(&honest), (a.1, b"and back".to_vec()));
        let hc = honest.counters();
        assert_eq!((hc.sessions, hc.closed, hc.reconnects), (1, 0, 0));
    }

    /// Dropping the links is quick while a dial hangs (a listener whose
    /// backlog is full drops the SYN), a handshake waits for a WELCOME (a
    /// listener that never accepts) and an accepted connection waits for
    /// a HELLO.
    #[test]
    fn stopping_is_quick_whatever_the_links_are_doing() {
        let k = keys(3, 6);
        let silent = TcpListener::bind(loopback()).unwrap();
        let full = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        full.bind(&SockAddr::from(loopback())).unwrap();
        full.listen(0).unwrap();
        let full_addr = full.local_addr().unwrap().as_socket().unwrap();
        let _fillers: Vec<TcpStream> =
            (0..3).filter_map(|_| TcpStream::connect_timeout(&full_addr, Duration::from_millis(100)).ok()).collect();
        let n = start(k[0].0, loopback(), vec![(k[1].1, silent.local_addr().unwrap()), (k[2].1, full_addr)]);
        let _raw = TcpStream::connect(n.local_addr()).unwrap();
        wait("both dials", || n.counters().dials == 2);
        thread::sleep(Duration::from_millis(200));
        // Both dials are still under way: neither failed nor got anywhere.
        let c = n.counters();
        assert_eq!((c.dial_failed, c.sessions, c.accepted), (0, 0, 1));
        let t = Instant::now();
        drop(n);
        assert!(t.elapsed() < Duration::from_secs(1), "stopping took {:?}", t.elapsed());
    }

    /// A restarted acceptor is redialed; a restarted dialer dials again and
    /// replaces its old session; messages flow after each.
    #[test]
    fn links_come_back_after_a_restart() {
        let k = keys(2, 5);
        let (lo, hi) = (k[0], k[1]);
        let b = start(hi.0, loopback(), vec![(lo.1, unused())]);
        let addr = b.local_addr();
        let a = start(lo.0, loopback(), vec![(hi.1, addr)]);
        wait("the link", || a.connected().len() == 1 && b.connected().len() == 1);
        a.send(&hi.1, Arc::new(b"one".to_vec()));
        assert_eq!(recv(&b), (lo.1, b"one".to_vec()));

        drop(b);
        let b = start(hi.0, addr, vec![(lo.1, unused())]);
        wait("the link again", || a.connected().len() == 1 && b.connected().len() == 1);
        a.send(&hi.1, Arc::new(b"two".to_vec()));
        assert_eq!(recv(&b), (lo.1, b"two".to_vec()));
        b.send(&lo.1, Arc::new(b"back".to_vec()));
        assert_eq!(recv(&a), (hi.1, b"back".to_vec()));
        assert!(a.counters().reconnects >= 1);
        assert_eq!(a.counters().sessions, 2);

        drop(a);
        let a = start(lo.0, loopback(), vec![(hi.1, addr)]);
        wait("the new dialer", || a.connected().len() == 1 && b.counters().sessions == 2);
        a.send(&hi.1, Arc::new(b"three".to_vec()));
        assert_eq!(recv(&b), (lo.1, b"three".to_vec()));
        b.send(&lo.1, Arc::new(b"four".to_vec()));
        assert_eq!(recv(&a), (hi.1, b"four".to_vec()));
        wait("one session at b", || b.connected().len() == 1);
    }
}
