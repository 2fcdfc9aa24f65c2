//! RECEIPT indications (`att-wire.md`, "RECEIPT body"): when a block is
//! sealed, every client whose transactions it includes is told so, on the
//! channel the transactions came in, sealed with its session's
//! relay-to-client key, to the address its datagrams came from.
//!
//! - [`RouteTable`] remembers, per pending transaction (accepted by the data
//!   plane, applied or waiting in the ledger, not yet sealed), its id, its
//!   receive time and its [`Route`]. Bounded: transactions the ledger refuses
//!   are never entered, and it keeps the last `cap` entries in two
//!   generations of fixed size (an entry whose transaction the ledger later
//!   dropped goes with its generation).
//! - [`ReceiptSender`] groups one block's ids by route, cuts them into frames
//!   of at most [`RECEIPT_MAX_IDS`] ids (one frame per datagram, under 1472
//!   bytes) and sends each through its [`ReplyOut`]: `send_to` from the
//!   node's listening socket, or the reply ring of a data core that owns a
//!   transmit queue (DPDK).
//!   Counters per session start at `unix_seconds << 32` (configured keys,
//!   `att-wire.md` "Counters") and grow by one per frame, sent or not; with
//!   a data directory the configured sessions' counters are also reserved
//!   ahead on disk ([`crate::reserve`]) and a run starts above the last
//!   reservation.

use std::collections::HashMap;
use std::io;
use std::net::UdpSocket;
use std::time::Duration;

use attnet_core::emit::{emit_receipt_body, reply_body_limit, FrameSpec, RECEIPT_MAX_IDS};
use attnet_core::reply::{ReplyProducer, ReplyRefused};
use attnet_core::session::Sealer;
use attnet_core::shard::Route;
use attnet_core::Peer;

use crate::reserve::CounterReservation;

/// What receipts did, for the summary. With receipts on, after a clean stop
/// `ids + no_address` equals the transactions in sealed blocks, and
/// `frames == datagrams + send_errors`. Through a reply ring, `datagrams`
/// are the frames queued to the data core (what became of them is in
/// [`ReplyCounters`] and the core's counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiptCounters {
    /// RECEIPT frames built (each one datagram).
    pub frames: u64,
    /// Transaction ids put in those frames.
    pub ids: u64,
    /// Datagrams the kernel took (or the reply ring).
    pub datagrams: u64,
    /// Ids of sealed transactions that could not be routed: no source
    /// address (pcap), no key for the session, no route remembered (the
    /// table was full or had swept it), or no counter could be reserved
    /// (the reservation's write failed: nothing is sealed unreserved).
    pub no_address: u64,
    /// Datagrams `send_to` (or the reply ring) refused.
    pub send_errors: u64,
}

/// Every reply (WELCOME, COOKIE, RECEIPT, ANSWER) handed to a reply ring:
/// `queued` went onto it, `ring_full` did not. Of the queued ones the data
/// core counts what it sent and what it dropped; `left` were still on the
/// ring when the control thread ended (after every core). So
/// `queued == sent + core drops + left`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyCounters {
    pub queued: u64,
    pub ring_full: u64,
    pub left: u64,
}

/// Where the relay's replies leave: a kernel UDP socket, a data core's
/// reply ring (the core sends them on its transmit queue), or nowhere (a
/// capture replay: replies are built and counted, not sent).
#[derive(Debug, Default)]
pub enum ReplyOut {
    #[default]
    None,
    /// A duplicate of the node's listening socket, so the source address
    /// is the one clients sent to.
    Socket(UdpSocket),
    /// The ring to the data core that transmits (DPDK).
    Ring(ReplyProducer),
}

impl From<Option<UdpSocket>> for ReplyOut {
    fn from(s: Option<UdpSocket>) -> Self {
        s.map_or(ReplyOut::None, ReplyOut::Socket)
    }
}

impl From<ReplyProducer> for ReplyOut {
    fn from(p: ReplyProducer) -> Self {
        ReplyOut::Ring(p)
    }
}

impl ReplyOut {
    /// Sends (or queues) one datagram to `peer`; false if it did not leave.
    fn send(&mut self, datagram: &[u8], peer: &Peer, c: &mut ReplyCounters) -> bool {
        match self {
            ReplyOut::None => false,
            ReplyOut::Socket(sock) => {
                peer.socket_addr().is_some_and(|a| send_datagram(sock, datagram, a, peer.local_ip()).is_ok())
            }
            ReplyOut::Ring(ring) => match ring.push(peer, datagram) {
                Ok(()) => {
                    c.queued += 1;
                    true
                }
                Err(ReplyRefused::RingFull) => {
                    c.ring_full += 1;
                    false
                }
                Err(ReplyRefused::Unsendable) => false,
            },
        }
    }
}

impl ReceiptCounters {
    /// `{"frames", "ids", "datagrams", "no_address", "send_errors"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "frames": self.frames,
            "ids": self.ids,
            "datagrams": self.datagrams,
            "no_address": self.no_address,
            "send_errors": self.send_errors,
        })
    }
}

/// One pending transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// When its datagram's burst was received (ns since the node's epoch).
    pub rx_ns: u64,
    pub id: [u8; 32],
    pub route: Route,
    /// When it was entered (the control thread's clock, ms).
    pub since_ms: u64,
}

/// Pending transactions by transaction id, in two generations of fixed
/// capacity (`cap / 2` each, sized at start): inserts go to the young one;
/// when `cap / 2` entries were inserted into it the old one is emptied
/// (its unclaimed entries are counted in `swept`) and the two swap. A
/// table that only inserted and removed would fill with tombstones and
/// rehash in place every couple of hundred thousand transactions
/// (milliseconds at a time, the control loop's longest iterations): the
/// swap counts inserts, not entries held (which takes keep low), so a
/// generation is emptied before its free slots run out. An entry lives for
/// between `cap / 2` and `cap` later transactions: at 40 000 a second and
/// the default 2^18, 3 to 6 s, more than a block interval plus the
/// ledger's nonce-gap wait.
#[derive(Debug)]
pub struct RouteTable {
    young: HashMap<[u8; 32], Pending>,
    old: HashMap<[u8; 32], Pending>,
    half: usize,
    /// Inserts into `young` since it was last emptied.
    inserted: usize,
    /// Entries evicted unclaimed (their transactions were dropped by the
    /// ledger later, or waited longer than the table remembers).
    pub swept: u64,
}

impl RouteTable {
    /// Remembers at most the last `cap` entries (at least `cap / 2`).
    pub fn new(cap: usize) -> Self {
        let half = (cap / 2).max(1);
        RouteTable {
            young: HashMap::with_capacity(half),
            old: HashMap::with_capacity(half),
            half,
            inserted: 0,
            swept: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers a transaction the ledger took (applied or waiting).
    pub fn insert(&mut self, key: [u8; 32], p: Pending) {
        if self.inserted >= self.half && !self.young.contains_key(&key) {
            self.swept += self.old.len() as u64;
            self.old.clear();
            std::mem::swap(&mut self.young, &mut self.old);
            self.inserted = 0;
        }
        self.inserted += 1;
        self.young.insert(key, p);
    }

    /// Forgets every entry, keeping the memory.
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.inserted = 0;
    }

    /// Takes a sealed transaction's entry.
    pub fn take(&mut self, key: &[u8; 32]) -> Option<Pending> {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    /// The two generations, to touch their memory at start.
    pub(crate) fn generations(&mut self) -> [&mut HashMap<[u8; 32], Pending>; 2] {
        [&mut self.young, &mut self.old]
    }

    /// Entries a generation holds.
    pub(crate) fn half(&self) -> usize {
        self.half
    }
}

/// The relay's transmit half on the control thread: RECEIPTs, and the
/// WELCOME, COOKIE and ANSWER frames of the handshake and of queries.
/// Without a socket or ring (a capture replay) every reply is built and
/// counted but not sent.
pub struct ReceiptSender {
    out: ReplyOut,
    replies: ReplyCounters,
    /// The one sealer of each session's relay-to-client key, with the
    /// session's generation: a route of another generation is not this
    /// session's.
    sessions: HashMap<u16, (u32, Sealer)>,
    /// The `max_pdu_size` negotiated in each handshake session's WELCOME
    /// (configured sessions negotiated none: the spec's default, 65535).
    max_pdu: HashMap<u16, u16>,
    /// Reused per block: (route, position in the block, id).
    scratch: Vec<(Route, u32, [u8; 32])>,
    ids: Vec<[u8; 32]>,
    body: Vec<u8>,
    frame: Vec<u8>,
    /// Compression scratch (RECEIPTs are sent uncompressed: stays empty).
    scratch_lz4: Vec<u8>,
    counters: ReceiptCounters,
    /// RECEIPTs are sent (the node's `receipts` setting); the other replies
    /// are sent regardless.
    receipts: bool,
    /// The configured sessions' reserved counters (with a data directory).
    reservation: Option<CounterReservation>,
    /// The reservation's first failure, reported once.
    reserve_failed: bool,
}

impl ReceiptSender {
    /// Sends through `out` (a duplicate of the node's listening socket, so
    /// the source address is the one clients sent to, or a data core's
    /// reply ring), sealing with `sealers`: the sending halves of the
    /// relay's sessions, whose counters start at `unix_seconds << 32` for
    /// configured keys. The sender owns them: nothing else seals under
    /// these keys.
    pub fn new(out: impl Into<ReplyOut>, sealers: Vec<Sealer>) -> Self {
        let sessions = sealers.into_iter().map(|s| (s.id(), (0, s))).collect();
        ReceiptSender {
            out: out.into(),
            replies: ReplyCounters::default(),
            sessions,
            max_pdu: HashMap::new(),
            scratch: Vec::new(),
            ids: Vec::with_capacity(RECEIPT_MAX_IDS),
            body: Vec::with_capacity(16 + 32 * RECEIPT_MAX_IDS),
            frame: Vec::with_capacity(1500),
            scratch_lz4: Vec::new(),
            counters: ReceiptCounters::default(),
            receipts: true,
            reservation: None,
            reserve_failed: false,
        }
    }

    /// Seals the configured sessions' frames only under counters that
    /// `r` reserved (their sealers start at the counter `r` returned).
    pub fn with_reservation(mut self, r: CounterReservation) -> Self {
        self.reservation = Some(r);
        self
    }

    /// The reservation, if there is one.
    pub fn reservation(&self) -> Option<&CounterReservation> {
        self.reservation.as_ref()
    }

    /// Sends RECEIPTs (`true`, the default) or only the other replies.
    pub fn with_receipts(mut self, on: bool) -> Self {
        self.receipts = on;
        self
    }

    /// The counter start for configured keys: `unix_seconds << 32`, plus
    /// the sub-second part so that a node restarted within one second
    /// never reuses a counter ([`attnet_core::crypto::counter_start`] of
    /// the wall clock).
    pub fn counter_start_now() -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        attnet_core::crypto::counter_start(now)
    }

    pub fn counters(&self) -> ReceiptCounters {
        self.counters
    }

    /// What the reply ring took and refused (zero without one); `left` is
    /// what it still holds now.
    pub fn reply_counters(&self) -> ReplyCounters {
        let left = match &self.out {
            ReplyOut::Ring(r) => r.queued() as u64,
            _ => 0,
        };
        ReplyCounters { left, ..self.replies }
    }

    /// Takes over a negotiated session's sealer (its counters start at 0)
    /// and the `max_pdu_size` its WELCOME gave: no reply to it is longer.
    pub fn install(&mut self, generation: u32, sealer: Sealer, max_pdu: u16) {
        self.max_pdu.insert(sealer.id(), max_pdu);
        self.sessions.insert(sealer.id(), (generation, sealer));
    }

    /// Forgets a session: nothing more is sealed for it.
    pub fn remove(&mut self, id: u16) {
        self.sessions.remove(&id);
        self.max_pdu.remove(&id);
    }

    /// The largest reply body session `id` takes in one frame and one
    /// datagram ([`reply_body_limit`] of its negotiated `max_pdu_size`).
    pub fn reply_body_limit(&self, id: u16) -> usize {
        reply_body_limit(self.max_pdu.get(&id).copied().unwrap_or(u16::MAX))
    }

    /// Frames sealed for session `id` so far.
    pub fn sealed(&self, id: u16) -> Option<u64> {
        self.sessions.get(&id).map(|(_, s)| s.sealed())
    }

    /// Sends a frame in clear (WELCOME, COOKIE) to `peer`; false if it did
    /// not leave (no address, no socket or ring, or it refused it).
    pub fn send_clear(&mut self, datagram: &[u8], peer: &Peer) -> bool {
        self.out.send(datagram, peer, &mut self.replies)
    }

    /// Seals `body` as an indication of `content_kind` on `channel` for
    /// session `id` of `generation` and sends it to `peer`. `Err` when the
    /// session is not this one (ended, or its id has a new holder) or the
    /// frame cannot be built; `Ok(false)` when it was sealed but did not
    /// leave.
    pub fn send_sealed(
        &mut self,
        id: u16,
        generation: u32,
        channel: u16,
        content_kind: u8,
        body: &[u8],
        peer: &Peer,
    ) -> Option<bool> {
        let (g, s) = self.sessions.get_mut(&id)?;
        if *g != generation {
            return None;
        }
        if !reserved(&mut self.reservation, &mut self.reserve_failed, *g, s) {
            return None;
        }
        self.frame.clear();
        let spec = FrameSpec { stream_seq: s.sealed() as u16, content_kind, ..FrameSpec::receipt(id, channel) };
        s.seal_frame(&spec, body, &mut self.frame, &mut self.scratch_lz4).ok()?;
        Some(self.out.send(&self.frame, peer, &mut self.replies))
    }

    /// Notes one sealed transaction of the block being receipted: its route
    /// (if remembered) and id, at position `at` in the block.
    pub fn add(&mut self, route: Option<Route>, at: u32, id: [u8; 32]) {
        if !self.receipts {
            return;
        }
        match route {
            Some(r) if !r.peer.is_none() && self.sessions.get(&r.session).is_some_and(|(g, _)| *g == r.generation) => {
                self.scratch.push((r, at, id));
            }
            _ => self.counters.no_address += 1,
        }
    }

    /// Sends the receipts of block `height` for everything [`add`]ed since
    /// the last call: per (session, channel, address), the ids in block
    /// order, at most [`RECEIPT_MAX_IDS`] per frame, one frame per datagram.
    ///
    /// [`add`]: Self::add
    pub fn flush(&mut self, height: u64) {
        self.scratch.sort_unstable_by_key(|e| (e.0, e.1));
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut i = 0;
        while i < scratch.len() {
            let route = scratch[i].0;
            let mut j = i;
            while j < scratch.len() && scratch[j].0 == route && j - i < RECEIPT_MAX_IDS {
                j += 1;
            }
            self.ids.clear();
            self.ids.extend(scratch[i..j].iter().map(|e| e.2));
            self.send_one(height, route);
            i = j;
        }
        scratch.clear();
        self.scratch = scratch;
    }

    fn send_one(&mut self, height: u64, route: Route) {
        let (Some((g, s)), false) = (self.sessions.get_mut(&route.session), route.peer.is_none()) else {
            self.counters.no_address += self.ids.len() as u64;
            return;
        };
        if !reserved(&mut self.reservation, &mut self.reserve_failed, *g, s) {
            self.counters.no_address += self.ids.len() as u64;
            return;
        }
        self.body.clear();
        self.frame.clear();
        // At most RECEIPT_MAX_IDS ids: the body and the frame always fit.
        if emit_receipt_body(height, &self.ids, &mut self.body).is_err() {
            self.counters.no_address += self.ids.len() as u64;
            return;
        }
        let spec = FrameSpec { stream_seq: s.sealed() as u16, ..FrameSpec::receipt(route.session, route.channel) };
        if s.seal_frame(&spec, &self.body, &mut self.frame, &mut self.scratch_lz4).is_err() {
            self.counters.no_address += self.ids.len() as u64;
            return;
        }
        self.counters.frames += 1;
        self.counters.ids += self.ids.len() as u64;
        if self.out.send(&self.frame, &route.peer, &mut self.replies) {
            self.counters.datagrams += 1;
        } else {
            self.counters.send_errors += 1;
        }
    }
}

/// Whether `s`'s next counter may be used: always for a negotiated session
/// (generation above 0, counters from 0 under fresh keys) or without a
/// reservation; for a configured one once it is reserved on disk. The
/// first failure is reported on stderr.
fn reserved(r: &mut Option<CounterReservation>, failed: &mut bool, generation: u32, s: &Sealer) -> bool {
    let Some(r) = r.as_mut().filter(|_| generation == 0) else { return true };
    match r.ensure(s.next_counter()) {
        Ok(()) => true,
        Err(e) => {
            if !std::mem::replace(failed, true) {
                eprintln!(
                    "attnet: reserving RECEIPT counters failed, configured sessions' replies are not sealed: {e}"
                );
            }
            false
        }
    }
}

/// The `IP_PKTINFO` / `IPV6_PKTINFO` control message that makes a datagram
/// leave from `local` (a socket bound to a wildcard address would
/// otherwise leave from whatever address the route prefers), laid out as
/// the kernel's `struct cmsghdr` (`size_t` length, `int` level, `int`
/// type) and `struct in_pktinfo` (ifindex, spec_dst, addr) or `struct
/// in6_pktinfo` (addr, ifindex), padded to the cmsg alignment. The kernel
/// copies it before reading it, so the buffer needs no alignment.
fn pktinfo_cmsg(local: std::net::IpAddr) -> ([u8; 40], usize) {
    const W: usize = std::mem::size_of::<usize>();
    let mut c = [0u8; 40];
    let (level, kind, data_len) = match local {
        std::net::IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO, 12),
        std::net::IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, 20),
    };
    let hdr = (W + 8).next_multiple_of(W);
    let len = hdr + data_len;
    if let Some(d) = c.get_mut(..W) {
        d.copy_from_slice(&len.to_ne_bytes());
    }
    if let Some(d) = c.get_mut(W..W + 4) {
        d.copy_from_slice(&level.to_ne_bytes());
    }
    if let Some(d) = c.get_mut(W + 4..W + 8) {
        d.copy_from_slice(&kind.to_ne_bytes());
    }
    match local {
        // in_pktinfo: ifindex 0, spec_dst = the source to use, addr unused.
        std::net::IpAddr::V4(v4) => {
            if let Some(d) = c.get_mut(hdr + 4..hdr + 8) {
                d.copy_from_slice(&v4.octets());
            }
        }
        // in6_pktinfo: addr = the source to use, ifindex 0.
        std::net::IpAddr::V6(v6) => {
            if let Some(d) = c.get_mut(hdr..hdr + 16) {
                d.copy_from_slice(&v6.octets());
            }
        }
    }
    (c, len.next_multiple_of(W))
}

/// `send_to` (or, with `local`, `sendmsg` with a pktinfo control message
/// so that the datagram leaves from the address the client sent to),
/// retried briefly while the socket's send buffer is full (the socket
/// shares the receive socket's non-blocking mode).
fn send_datagram(
    sock: &UdpSocket,
    d: &[u8],
    to: std::net::SocketAddr,
    local: Option<std::net::IpAddr>,
) -> io::Result<()> {
    // A local address of the other family (an IPv4-mapped peer on an IPv6
    // socket) cannot be given: the kernel chooses.
    let local = local.filter(|l| l.is_ipv4() == to.is_ipv4());
    let to_addr = socket2::SockAddr::from(to);
    let mut tries = 0;
    loop {
        let sent = match local {
            None => sock.send_to(d, to),
            Some(l) => {
                let (ctrl, len) = pktinfo_cmsg(l);
                let bufs = [io::IoSlice::new(d)];
                let msg = socket2::MsgHdr::new()
                    .with_addr(&to_addr)
                    .with_buffers(&bufs)
                    .with_control(ctrl.get(..len).unwrap_or(&ctrl));
                socket2::SockRef::from(sock).sendmsg(&msg, 0)
            }
        };
        match sent {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use attnet_core::peer::Peer;
    use attnet_core::testkit;
    use attnet_core::wire::receipt::Receipt;

    fn pending(i: u8, since_ms: u64) -> Pending {
        Pending { rx_ns: 0, id: [i; 32], route: Route::default(), since_ms }
    }

    #[test]
    fn route_table_keeps_two_generations() {
        let mut t = RouteTable::new(6);
        for i in 0..3 {
            t.insert([i; 32], pending(i, 0));
        }
        assert_eq!(t.take(&[1; 32]).map(|p| p.id), Some([1; 32]));
        assert_eq!(t.take(&[1; 32]), None);
        // Replacing an entry that is there is not growth.
        t.insert([0; 32], pending(0, 5));
        assert_eq!(t.len(), 2);
        // The young generation is full (3 with [1] taken and re-counted as
        // 2 + the next): the next inserts start a new one.
        for i in 3..6 {
            t.insert([i; 32], pending(i, 0));
        }
        assert_eq!(t.take(&[0; 32]).map(|p| p.since_ms), Some(5), "the old generation is still read");
        for i in 6..9 {
            t.insert([i; 32], pending(i, 0));
        }
        // Entries 2 (unclaimed) went with the first generation.
        assert!(t.take(&[2; 32]).is_none());
        assert!(t.swept >= 1, "{}", t.swept);
        assert!(t.take(&[8; 32]).is_some());
        assert!(t.len() <= 6);
    }

    /// Generations turn over by inserts, not by entries held: with every
    /// entry taken soon after its insert (what sealing does), a generation
    /// is still emptied after `cap / 2` inserts, so its tombstones never
    /// exhaust the table's free slots (which would rehash it in place).
    #[test]
    fn route_table_turns_over_by_inserts_when_entries_are_taken() {
        let mut t = RouteTable::new(8);
        for i in 0..3u8 {
            t.insert([i; 32], pending(i, 0));
            assert!(t.take(&[i; 32]).is_some());
        }
        t.insert([3; 32], pending(3, 0));
        // The fifth insert starts a new generation; 3 is in the old one.
        t.insert([4; 32], pending(4, 0));
        assert_eq!(t.len(), 2);
        for i in 5..9u8 {
            t.insert([i; 32], pending(i, 0));
        }
        // Four more inserts: the generation holding 3 is gone, unclaimed.
        assert!(t.take(&[3; 32]).is_none());
        assert_eq!(t.swept, 1);
        // Many turns over: the table keeps the capacity it was given.
        let cap = t.young.capacity().max(t.old.capacity());
        for i in 0..100_000u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            t.insert(k, pending(0, 0));
            t.take(&k);
        }
        assert_eq!(t.young.capacity().max(t.old.capacity()), cap);
        assert!(t.inserted <= t.half);
    }

    /// Ids are grouped by route, in block order, 40 per frame; counters per
    /// session grow by one per frame from the start; unroutable ids count
    /// as no_address.
    #[test]
    fn sender_groups_cuts_and_counts() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let start = 1_700_000_000u64 << 32;
        let sealers = [1, 2].map(|id| Sealer::new(id, &testkit::r2c(id), start)).into();
        let mut tx = ReceiptSender::new(Some(relay), sealers);
        let ra = Route { session: 1, channel: 1004, peer: Peer::from(a.local_addr().unwrap()), generation: 0 };
        let ra5 = Route { channel: 1005, ..ra };
        let rb = Route { session: 2, channel: 1004, peer: Peer::from(b.local_addr().unwrap()), generation: 0 };
        let mut want_a = Vec::new();
        let mut want_b = Vec::new();
        for i in 0..90u32 {
            let id = [i as u8; 32];
            match i % 3 {
                0 | 1 => {
                    tx.add(Some(ra), i, id);
                    want_a.push(id);
                }
                _ => {
                    tx.add(Some(rb), i, id);
                    want_b.push(id);
                }
            }
        }
        tx.add(Some(ra5), 90, [90; 32]);
        tx.add(None, 91, [91; 32]);
        tx.add(Some(Route { peer: Peer::NONE, ..ra }), 92, [92; 32]);
        tx.add(Some(Route { session: 3, ..ra }), 93, [93; 32]);
        // A route of another holder of session 1's id: not this session's.
        tx.add(Some(Route { generation: 9, ..ra }), 94, [94; 32]);
        tx.flush(7);
        let c = tx.counters();
        // a: 60 ids on 1004 (40 + 20) and 1 on 1005; b: 30.
        assert_eq!(c, ReceiptCounters { frames: 4, ids: 91, datagrams: 4, no_address: 4, send_errors: 0 });
        let recv = |s: &UdpSocket, key: u16, height: u64| {
            let mut buf = [0u8; 2048];
            let n = s.recv(&mut buf).unwrap();
            assert!(n < 1472, "{n} bytes");
            let o = testkit::open_frame(&buf[..n], &testkit::r2c(key)).expect("opens with the session's r2c key");
            assert_eq!((o.kind, o.session, o.content_kind), (0x68, key, 0x43));
            let r = Receipt::new_checked(&o.body).unwrap();
            assert_eq!(r.height(), height);
            (o.counter, o.channel, r.ids().collect::<Vec<_>>())
        };
        let mut got_a = Vec::new();
        let mut counters = Vec::new();
        for _ in 0..3 {
            let (counter, channel, ids) = recv(&a, 1, 7);
            counters.push(counter);
            if channel == 1005 {
                assert_eq!(ids, vec![[90u8; 32]]);
            } else {
                assert_eq!(channel, 1004);
                assert!(ids.len() <= 40);
                got_a.extend(ids);
            }
        }
        counters.sort_unstable();
        assert_eq!(counters, vec![start, start + 1, start + 2]);
        assert_eq!(got_a, want_a);
        let (counter, channel, ids) = recv(&b, 2, 7);
        assert_eq!((counter, channel, ids), (start, 1004, want_b));
        // The next block continues each session's counter.
        tx.add(Some(rb), 0, [200; 32]);
        tx.flush(8);
        assert_eq!(recv(&b, 2, 8).0, start + 1);
    }

    /// With a reservation, no configured session's frame is sealed under a
    /// counter that is not reserved on disk first; negotiated sessions
    /// need none; a restart with the clock an hour back starts above
    /// every counter the last run sealed.
    #[test]
    fn configured_sessions_seal_only_reserved_counters() {
        let d = std::env::temp_dir().join(format!("attnet-receipts-reserve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = Peer::from(client.local_addr().unwrap());
        let on_disk = || -> u64 {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join(crate::reserve::RESERVE_FILE)).unwrap()).unwrap();
            v["below"].as_u64().unwrap()
        };
        let t1 = 1_790_000_000u64 << 32;
        let run = |now: u64, frames: u64| -> (u64, u64) {
            let (r, start) = CounterReservation::open(&d, now, 8).unwrap();
            let sealers = [1, 2].map(|id| Sealer::new(id, &testkit::r2c(id), start)).into();
            let mut tx = ReceiptSender::new(Some(UdpSocket::bind("127.0.0.1:0").unwrap()), sealers).with_reservation(r);
            tx.install(3, Sealer::new(9, &testkit::r2c(9), 0), 1400);
            let mut last = 0;
            for i in 0..frames {
                let id = 1 + (i % 3 == 2) as u16;
                tx.add(Some(Route { session: id, channel: 1004, peer: to, generation: 0 }), 0, [i as u8; 32]);
                tx.flush(i);
                let mut buf = [0u8; 2048];
                let n = client.recv(&mut buf).unwrap();
                let o = testkit::open_frame(&buf[..n], &testkit::r2c(id)).unwrap();
                assert!(o.counter < on_disk(), "counter {} sealed before it was reserved", o.counter);
                last = last.max(o.counter);
                // A negotiated session's counters (from 0) need no reservation.
                assert_eq!(tx.send_sealed(9, 3, 1005, 0x49, b"x", &to), Some(true));
                let n = client.recv(&mut buf).unwrap();
                assert_eq!(testkit::open_frame(&buf[..n], &testkit::r2c(9)).unwrap().counter, i);
            }
            assert_eq!(tx.counters().no_address, 0);
            (start, last)
        };
        let (start, last) = run(t1, 30);
        assert_eq!((start, last), (t1, t1 + 19), "session 1 sealed 20 frames");
        assert_eq!(on_disk(), t1 + 24, "blocks of 8: reserved from t1, t1 + 8, t1 + 16");
        let (start, _) = run(t1 - (3600 << 32), 3);
        assert!(start > last, "{start} > {last}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A reply to a session is limited by the max_pdu_size its WELCOME
    /// negotiated (and always by one datagram): a body of the limit seals
    /// into a frame within both.
    #[test]
    fn reply_limits_follow_the_negotiated_pdu_size() {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let to = Peer::from(client.local_addr().unwrap());
        let mut tx = ReceiptSender::new(
            Some(UdpSocket::bind("127.0.0.1:0").unwrap()),
            vec![Sealer::new(1, &testkit::r2c(1), 0)],
        );
        // A configured session negotiated nothing: one datagram.
        assert_eq!(tx.reply_body_limit(1), 1411);
        tx.install(4, Sealer::new(2, &testkit::r2c(2), 0), 1024);
        tx.install(5, Sealer::new(3, &testkit::r2c(3), 0), 1300);
        assert_eq!((tx.reply_body_limit(2), tx.reply_body_limit(3)), (963, 1239));
        for (id, generation, pdu) in [(1u16, 0u32, 1472usize), (2, 4, 1024), (3, 5, 1300)] {
            let body = vec![7u8; tx.reply_body_limit(id)];
            assert_eq!(tx.send_sealed(id, generation, 1005, 0x49, &body, &to), Some(true));
            let mut buf = [0u8; 2048];
            let n = client.recv(&mut buf).unwrap();
            assert!(n <= pdu && n + 1 >= pdu, "session {id}: a {n}-byte frame for {pdu}");
            assert_eq!(testkit::open_frame(&buf[..n], &testkit::r2c(id)).map(|o| o.body.len()), Some(body.len()));
        }
        tx.remove(2);
        assert_eq!(tx.reply_body_limit(2), 1411, "forgotten with its session");
    }

    /// Through a reply ring every reply is queued with its destination; a
    /// full ring refuses and counts it; what the core has not taken is
    /// `left`.
    #[test]
    fn a_reply_ring_carries_clear_and_sealed_replies() {
        let (ring, mut core) = attnet_core::reply::reply_link(3);
        let start = 1_700_000_000u64 << 32;
        let mut tx = ReceiptSender::new(ring, vec![Sealer::new(1, &testkit::r2c(1), start)]);
        let to = Peer::v4([10, 9, 0, 2], 40001);
        assert!(tx.send_clear(b"cookie", &to));
        assert!(!tx.send_clear(b"cookie", &Peer::NONE), "no address, nothing queued");
        let r = Route { session: 1, channel: 1004, peer: to, generation: 0 };
        tx.add(Some(r), 0, [5; 32]);
        tx.flush(3);
        assert_eq!(tx.send_sealed(1, 0, 1004, 0x4a, &[1, 2], &to), Some(true));
        assert_eq!(tx.send_sealed(1, 0, 1004, 0x4a, &[1, 2], &to), Some(false), "the ring is full");
        assert_eq!(tx.reply_counters(), ReplyCounters { queued: 3, ring_full: 1, left: 3 });
        let c = tx.counters();
        assert_eq!((c.frames, c.ids, c.datagrams, c.send_errors), (1, 1, 1, 0));
        let first = core.pop().unwrap();
        assert_eq!((first.peer, first.payload()), (to, &b"cookie"[..]));
        let receipt = core.pop().unwrap();
        assert_eq!(receipt.peer, to);
        let o = testkit::open_frame(receipt.payload(), &testkit::r2c(1)).expect("a sealed RECEIPT");
        assert_eq!(Receipt::new_checked(&o.body).unwrap().ids().collect::<Vec<_>>(), vec![[5u8; 32]]);
        assert_eq!(o.counter, start);
        assert_eq!(tx.reply_counters().left, 1);
    }
}
