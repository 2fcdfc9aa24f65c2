//! A client's end of one ATT session over a kernel UDP socket: the
//! handshake (HELLO, the cookie round trip when the relay asks, a new HELLO
//! after a lost WELCOME, the relay key pinned), sealed requests, QUERYs
//! with retries, transactions and their RECEIPTs.
//!
//! `attnet client`, the traffic generator's `--handshake` mode and the
//! tests all open sessions through [`Connection::connect`]. It is a
//! blocking, one-session-per-socket API: a client sends a handful of
//! frames, not a packet stream.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use attnet_core::emit::{emit_signed_tx, FrameSpec, TxFields};
use attnet_core::handshake::{parse_info_frames, ClientHandshake, HandshakeError, SessionKeys};
use attnet_core::path::open_indication;
use attnet_core::session::{Role, Session, SessionTable};
use attnet_core::wire::handshake::Cookie;
use attnet_core::wire::mcs::channel;
use attnet_core::wire::query::{Answer, Query, QueryWhat};
use attnet_core::wire::receipt::Receipt;
use attnet_core::wire::share::kind;
use attnet_core::wire::tx::Kind;
use ed25519_zebra::SigningKey;

/// The largest datagram a client reads.
const RECV_BUF: usize = 2048;

/// Where and how a client connects.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// The relay's address.
    pub relay: SocketAddr,
    /// The relay's node key: a WELCOME signed by any other is refused.
    pub relay_key: [u8; 32],
    /// The network id HELLOs and transactions are signed for.
    pub network_id: u32,
    /// How many HELLOs to send before giving up (each new one after the
    /// previous one went unanswered; a COOKIE does not use one up).
    pub hellos: u32,
    /// How long to wait for the first answer; doubled after every
    /// unanswered attempt (HELLO, QUERY), up to 8 times this.
    pub wait: Duration,
}

impl ClientConfig {
    /// Five HELLOs, 500 ms for the first answer.
    pub fn new(relay: SocketAddr, relay_key: [u8; 32], network_id: u32) -> Self {
        ClientConfig { relay, relay_key, network_id, hellos: 5, wait: Duration::from_millis(500) }
    }

    /// As many HELLOs as fit in `total` (at least one).
    pub fn hellos_within(mut self, total: Duration) -> Self {
        let (mut n, mut spent) = (0, Duration::ZERO);
        while n < 64 && spent + self.backoff(n) <= total {
            spent += self.backoff(n);
            n += 1;
        }
        self.hellos = n.max(1);
        self
    }

    /// The wait before attempt `n` (0-based): `wait · 2^n`, at most 8 ×.
    pub fn backoff(&self, n: u32) -> Duration {
        self.wait * (1u32 << n.min(3))
    }
}

/// Why a client gave up.
#[derive(Debug)]
pub enum ClientError {
    /// The socket failed.
    Io(io::Error),
    /// Nothing (or nothing usable) came back in time; what was awaited.
    Timeout(&'static str),
    /// The relay's WELCOME failed a check (`WrongNodeKey`: signed by
    /// another key than the pinned one).
    Welcome(HandshakeError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "socket: {e}"),
            ClientError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            ClientError::Welcome(HandshakeError::WrongNodeKey) => {
                f.write_str("the WELCOME is signed by another node key than the pinned relay key")
            }
            ClientError::Welcome(e) => write!(f, "the relay's WELCOME is refused: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// How a handshake went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeStats {
    /// HELLOs sent (1 unless one went unanswered).
    pub hellos: u32,
    /// COOKIEs answered with a COOKIE_ECHO.
    pub cookies: u32,
    /// WELCOMEs for an earlier HELLO of ours, ignored.
    pub late_welcomes: u32,
}

/// One sealed indication the relay sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indication {
    /// Its share-data content kind (RECEIPT, ANSWER, …).
    pub content_kind: u8,
    /// Its (decompressed) body.
    pub body: Vec<u8>,
}

/// Unix time in milliseconds (the HELLO timestamp).
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// An established session with a relay.
pub struct Connection {
    sock: UdpSocket,
    sk: SigningKey,
    network_id: u32,
    session: Session,
    keys: SessionKeys,
    table: SessionTable,
    wait: Duration,
    /// RECEIPTs seen while waiting for something else: (tx id, height).
    receipts: Vec<([u8; 32], u64)>,
    /// Every datagram sent in the session, when recording.
    sent: Option<Vec<Vec<u8>>>,
    request_id: u32,
    /// How the handshake went.
    pub stats: HandshakeStats,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("session", &self.session.id).field("stats", &self.stats).finish()
    }
}

impl Connection {
    /// Opens a session from a new socket on an ephemeral port.
    pub fn connect(cfg: &ClientConfig, sk: SigningKey) -> Result<Connection, ClientError> {
        let any: SocketAddr =
            if cfg.relay.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        Self::connect_from(UdpSocket::bind(any)?, cfg, sk)
    }

    /// Opens a session from `sock`: HELLO; a COOKIE is answered with a
    /// COOKIE_ECHO of the same HELLO; if nothing usable comes back within
    /// the attempt's wait, a new HELLO (new ephemeral key and timestamp:
    /// the relay does not answer a HELLO twice). A WELCOME for an earlier
    /// HELLO is ignored; one from another node key ends the attempt with
    /// [`ClientError::Welcome`].
    pub fn connect_from(sock: UdpSocket, cfg: &ClientConfig, sk: SigningKey) -> Result<Connection, ClientError> {
        let mut stats = HandshakeStats::default();
        Self::connect_counted(sock, cfg, sk, &mut stats)
    }

    /// [`Self::connect_from`], counting what the handshake sent and met in
    /// `stats` whether it succeeds or not (a caller that accounts for every
    /// datagram it sent needs a failed attempt's HELLOs and echoes too).
    pub fn connect_counted(
        sock: UdpSocket,
        cfg: &ClientConfig,
        sk: SigningKey,
        stats: &mut HandshakeStats,
    ) -> Result<Connection, ClientError> {
        sock.connect(cfg.relay)?;
        let mut buf = [0u8; RECV_BUF];
        for attempt in 0..cfg.hellos.max(1) {
            let mut eph = [0u8; 32];
            rand::Rng::fill_bytes(&mut rand::make_rng::<rand::rngs::StdRng>(), &mut eph);
            let hs = ClientHandshake::new(&sk, eph, unix_ms(), cfg.network_id);
            sock.send(&hs.hello_frame())?;
            stats.hellos += 1;
            let until = Instant::now() + cfg.backoff(attempt);
            while let Some(n) = recv_until(&sock, &mut buf, until)? {
                // Anything that is not one of our INFO frames is ignored.
                let Ok(frames) = parse_info_frames(&buf[..n]) else { continue };
                let Some(f) = frames.first() else { continue };
                match f.content_kind {
                    kind::COOKIE => {
                        let Ok(c) = Cookie::parse(f.body) else { continue };
                        if c.hello_hash != hs.hello_hash() || stats.cookies >= 4 * cfg.hellos {
                            continue;
                        }
                        stats.cookies += 1;
                        sock.send(&hs.echo_datagram(&c.cookie))?;
                    }
                    kind::WELCOME => match hs.finish(f.body, &cfg.relay_key) {
                        Ok(est) => {
                            let session =
                                Session::new(Role::Client, u32::from(est.session_id), &est.keys.c2r, &est.keys.r2c, 0)
                                    .map_err(|_| ClientError::Welcome(HandshakeError::Malformed))?;
                            let mut table = SessionTable::new(Role::Client);
                            table.install_rx(&session.rx);
                            return Ok(Connection {
                                sock,
                                sk,
                                network_id: cfg.network_id,
                                session,
                                keys: est.keys,
                                table,
                                wait: cfg.wait,
                                receipts: Vec::new(),
                                sent: None,
                                request_id: 0,
                                stats: *stats,
                            });
                        }
                        Err(HandshakeError::NotForThisHello) => stats.late_welcomes += 1,
                        Err(e) => return Err(ClientError::Welcome(e)),
                    },
                    _ => {}
                }
            }
        }
        Err(ClientError::Timeout("a WELCOME"))
    }

    /// Keeps a copy of every datagram sent from now on ([`Self::sent`]).
    pub fn record(&mut self) {
        self.sent.get_or_insert_with(Vec::new);
    }

    /// The datagrams recorded since [`Self::record`].
    pub fn sent(&self) -> &[Vec<u8>] {
        self.sent.as_deref().unwrap_or(&[])
    }

    /// The session id the relay gave.
    pub fn session_id(&self) -> u16 {
        self.session.id
    }

    /// The session's keys (to seal its frames elsewhere, as the traffic
    /// generator does from its own sockets).
    pub fn keys(&self) -> SessionKeys {
        self.keys
    }

    /// The account key.
    pub fn account(&self) -> [u8; 32] {
        ed25519_zebra::VerificationKeyBytes::from(&self.sk).into()
    }

    /// The socket (its local address, or to aim it elsewhere).
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Seals `body` as one request frame on `channel` and sends it.
    pub fn send_frame(&mut self, channel: u16, content_kind: u8, body: &[u8]) -> Result<(), ClientError> {
        let mut f = Vec::with_capacity(body.len() + 64);
        let spec = FrameSpec { channel, content_kind, ..FrameSpec::tx_batch(self.session.id) };
        self.session
            .tx
            .seal_frame(&spec, body, &mut f, &mut Vec::new())
            .map_err(|_| ClientError::Io(io::Error::other("the session's send counter is spent")))?;
        self.sock.send(&f)?;
        if let Some(s) = &mut self.sent {
            s.push(f);
        }
        Ok(())
    }

    /// The next sealed indication before `until`; datagrams that do not
    /// open under the session are skipped. RECEIPTs are also remembered
    /// for [`Self::wait_receipt`].
    pub fn recv_until(&mut self, until: Instant) -> Result<Option<Indication>, ClientError> {
        let mut buf = [0u8; RECV_BUF];
        let mut scratch = Vec::new();
        while let Some(n) = recv_until(&self.sock, &mut buf, until)? {
            let Ok(ind) = open_indication(&self.table, &mut buf[..n], &mut scratch) else { continue };
            let ind = Indication { content_kind: ind.content_kind, body: ind.body.to_vec() };
            if ind.content_kind == kind::RECEIPT {
                if let Ok(r) = Receipt::new_checked(&ind.body[..]) {
                    let h = r.height();
                    self.receipts.extend(r.ids().map(|id| (id, h)));
                }
            }
            return Ok(Some(ind));
        }
        Ok(None)
    }

    /// Asks `what` and returns the ANSWER. An unanswered QUERY is sent
    /// again (the same request id) with a doubling wait, `tries` times in
    /// all.
    pub fn query(&mut self, what: QueryWhat, tries: u32) -> Result<Answer, ClientError> {
        self.query_body(what, tries).map(|(a, _)| a)
    }

    /// [`Self::query`], with the ANSWER's whole body: an inbox or
    /// connections page's entries follow its head there
    /// ([`attnet_core::wire::query::inbox_records`],
    /// [`attnet_core::wire::query::connection_entries`]).
    pub fn query_body(&mut self, what: QueryWhat, tries: u32) -> Result<(Answer, Vec<u8>), ClientError> {
        self.request_id = self.request_id.wrapping_add(1);
        let id = self.request_id;
        let mut body = Vec::with_capacity(48);
        Query { request_id: id, what }.emit(&mut body);
        for attempt in 0..tries.max(1) {
            self.send_frame(channel::MESSAGES, kind::QUERY, &body)?;
            let until = Instant::now() + self.wait * (1u32 << attempt.min(3));
            while let Some(ind) = self.recv_until(until)? {
                if ind.content_kind != kind::ANSWER {
                    continue;
                }
                match Answer::parse(&ind.body) {
                    Ok(a) if a.request_id == id => return Ok((a, ind.body)),
                    _ => continue,
                }
            }
        }
        Err(ClientError::Timeout("an ANSWER"))
    }

    /// A TX_BATCH body holding `t` alone, signed for the session's
    /// network, and the transaction's id. Sending the same body again
    /// (after a lost datagram) sends the same transaction.
    pub fn signed_batch(&self, t: &TxFields<'_>) -> ([u8; 32], Vec<u8>) {
        let mut body = Vec::with_capacity(2 + 156 + t.memo.len());
        body.extend_from_slice(&1u16.to_le_bytes());
        let id = emit_signed_tx(&self.sk, self.network_id, t, &mut body);
        (id, body)
    }

    /// Sends a TX_BATCH body: transfers on channel 1004, the other kinds
    /// on 1005 (the messages channel).
    pub fn send_batch(&mut self, tx_kind: Kind, body: &[u8]) -> Result<(), ClientError> {
        let chan = if tx_kind == Kind::Transfer { channel::TRANSACTIONS } else { channel::MESSAGES };
        self.send_frame(chan, kind::TX_BATCH, body)
    }

    /// Signs and sends `t` alone in a TX_BATCH frame; its id.
    pub fn submit(&mut self, t: &TxFields<'_>) -> Result<[u8; 32], ClientError> {
        let (id, body) = self.signed_batch(t);
        self.send_batch(t.kind, &body)?;
        Ok(id)
    }

    /// The height of the block a RECEIPT names `id` in, if one arrives
    /// before `until` (or arrived earlier).
    pub fn wait_receipt(&mut self, id: &[u8; 32], until: Instant) -> Result<Option<u64>, ClientError> {
        loop {
            if let Some(&(_, h)) = self.receipts.iter().find(|(x, _)| x == id) {
                return Ok(Some(h));
            }
            if self.recv_until(until)?.is_none() {
                return Ok(None);
            }
        }
    }
}

/// One datagram from `sock` before `until`, or `None` once it has passed.
fn recv_until(sock: &UdpSocket, buf: &mut [u8], until: Instant) -> Result<Option<usize>, ClientError> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if is_timeout(&e) => return Ok(None),
            // An ICMP port unreachable from an earlier send: keep waiting.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
