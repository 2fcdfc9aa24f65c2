//! The handshake's crypto (`att-wire.md`, "Handshake" and "Under load:
//! cookies"): HELLO signing and strict verification, the relay's WELCOME,
//! the client's check of it, the session key schedule, the cookie, and the
//! INFO frames that carry them on channel 1003.
//!
//! No I/O, no clock, no OS randomness: callers pass the ephemeral X25519
//! secrets, the timestamp and the cookie secret. The HELLO's timestamp
//! window and the replay cache are the relay's (it has the clock); it judges
//! a HELLO cheapest first: [`parse_hello`] (version and parameters), its
//! own timestamp and replay checks, the cookie under load, then
//! [`check_hello_signature`] and [`relay_welcome`].

use ed25519_zebra::{Signature, SigningKey, VerificationKey, VerificationKeyBytes};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::emit::{emit_frame_with, FrameSpec};
use crate::path::frame_header;
use crate::peer::Peer;
use crate::verdict::DropReason;
use crate::verify::{is_acceptable_point, is_canonical_s};
use crate::wire::handshake::{CookieEcho, DomainParams, Hello, Welcome, HELLO_SIG_PREFIX, WELCOME_SIG_PREFIX};
use crate::wire::mcs::{self, channel, MAX_SESSION_ID};
use crate::wire::security;
use crate::wire::share::{self, kind, Compression};

/// HKDF-Expand info of the session keys.
pub const SESSION_INFO: &[u8] = b"ATT-SESSION-v1";

/// The two directional AES-256-GCM keys of a session. `Debug` does not
/// show them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionKeys {
    /// Client-to-relay key.
    pub c2r: [u8; 32],
    /// Relay-to-client key.
    pub r2c: [u8; 32],
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SessionKeys").finish_non_exhaustive()
    }
}

/// Why a handshake step refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeError {
    /// A HELLO or WELCOME body with another version.
    BadVersion,
    /// A HELLO whose domain parameters a relay does not accept
    /// ([`DomainParams::acceptable`]).
    BadParams,
    /// A body of the wrong length (or a WELCOME's session id above 64534,
    /// or a HELLO that does not match its bytes).
    Malformed,
    /// A signature that breaks the strict rules or does not verify.
    BadSignature,
    /// The X25519 exchange gave the all-zero secret (a small-order key).
    ZeroSharedSecret,
    /// The WELCOME's node key is not the one the client pinned.
    WrongNodeKey,
    /// The WELCOME answers another HELLO.
    NotForThisHello,
    /// The echoed cookie is not one the relay made for this address and HELLO.
    BadCookie,
}

impl HandshakeError {
    /// Number of errors.
    pub const COUNT: usize = 8;
    /// Every error, in declaration order.
    pub const ALL: [HandshakeError; Self::COUNT] = [
        HandshakeError::BadVersion,
        HandshakeError::BadParams,
        HandshakeError::Malformed,
        HandshakeError::BadSignature,
        HandshakeError::ZeroSharedSecret,
        HandshakeError::WrongNodeKey,
        HandshakeError::NotForThisHello,
        HandshakeError::BadCookie,
    ];

    /// The name counters and logs use.
    pub const fn as_str(self) -> &'static str {
        match self {
            HandshakeError::BadVersion => "bad_version",
            HandshakeError::BadParams => "bad_params",
            HandshakeError::Malformed => "malformed",
            HandshakeError::BadSignature => "bad_signature",
            HandshakeError::ZeroSharedSecret => "zero_shared_secret",
            HandshakeError::WrongNodeKey => "wrong_node_key",
            HandshakeError::NotForThisHello => "not_for_this_hello",
            HandshakeError::BadCookie => "bad_cookie",
        }
    }
}

impl core::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for HandshakeError {}

fn from_parse(e: DropReason) -> HandshakeError {
    match e {
        DropReason::BadHeader => HandshakeError::BadVersion,
        _ => HandshakeError::Malformed,
    }
}

fn signed_message(prefix: &[u8], network_id: u32, body: &[u8], signed_len: usize) -> Vec<u8> {
    let covered = body.get(..signed_len).unwrap_or(body);
    let mut m = Vec::with_capacity(prefix.len() + 4 + covered.len());
    m.extend_from_slice(prefix);
    m.extend_from_slice(&network_id.to_le_bytes());
    m.extend_from_slice(covered);
    m
}

/// The message a HELLO's signature covers: [`HELLO_SIG_PREFIX`], the
/// network id (`u32 LE`) and the body's first [`Hello::SIGNED_LEN`] bytes
/// (all of `body` if it is shorter).
pub fn hello_signed_message(network_id: u32, body: &[u8]) -> Vec<u8> {
    signed_message(HELLO_SIG_PREFIX, network_id, body, Hello::SIGNED_LEN)
}

/// The message a WELCOME's signature covers: [`WELCOME_SIG_PREFIX`], the
/// network id (`u32 LE`) and the body's first [`Welcome::SIGNED_LEN`] bytes
/// (all of `body` if it is shorter).
pub fn welcome_signed_message(network_id: u32, body: &[u8]) -> Vec<u8> {
    signed_message(WELCOME_SIG_PREFIX, network_id, body, Welcome::SIGNED_LEN)
}

/// The spec's strict rules: `A` and `R` canonical and not of small order,
/// `S` canonical, then the cofactored equation.
fn verify_strict(key: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> bool {
    let (r, s) = sig.split_at(32);
    let (Ok(r), Ok(s)) = (<[u8; 32]>::try_from(r), <[u8; 32]>::try_from(s)) else { return false };
    if !(is_acceptable_point(key) && is_acceptable_point(&r) && is_canonical_s(&s)) {
        return false;
    }
    VerificationKey::try_from(VerificationKeyBytes::from(*key))
        .and_then(|vk| vk.verify(&Signature::from_bytes(sig), msg))
        .is_ok()
}

/// Parses a HELLO body and checks its version and domain parameters, not
/// its signature: the cheap checks a relay makes first.
pub fn parse_hello(body: &[u8]) -> Result<Hello, HandshakeError> {
    let h = Hello::parse(body).map_err(from_parse)?;
    if !h.params.acceptable() {
        return Err(HandshakeError::BadParams);
    }
    Ok(h)
}

/// Whether a HELLO body's signature holds under the strict rules for
/// `network_id` (false for a body of the wrong length).
pub fn check_hello_signature(network_id: u32, body: &[u8]) -> bool {
    match Hello::parse(body) {
        Ok(h) => verify_strict(&h.account, &h.signature, &hello_signed_message(network_id, body)),
        Err(_) => false,
    }
}

/// [`parse_hello`], then the signature ([`check_hello_signature`]). The
/// timestamp and replay checks are the caller's.
pub fn verify_hello(network_id: u32, body: &[u8]) -> Result<Hello, HandshakeError> {
    let h = parse_hello(body)?;
    if !verify_strict(&h.account, &h.signature, &hello_signed_message(network_id, body)) {
        return Err(HandshakeError::BadSignature);
    }
    Ok(h)
}

pub(crate) fn x25519(secret: [u8; 32], public: [u8; 32]) -> Result<[u8; 32], HandshakeError> {
    let shared = StaticSecret::from(secret).diffie_hellman(&PublicKey::from(public)).to_bytes();
    if shared.iter().all(|b| *b == 0) {
        return Err(HandshakeError::ZeroSharedSecret);
    }
    Ok(shared)
}

/// The key schedule: HKDF-SHA256 with salt SHA-256(HELLO body || WELCOME
/// body), the X25519 secret as input and [`SESSION_INFO`]; the first 32
/// bytes are c2r, the last 32 r2c.
fn derive_keys(hello_body: &[u8], welcome_body: &[u8], shared: &[u8; 32]) -> SessionKeys {
    let salt: [u8; 32] = Sha256::new().chain_update(hello_body).chain_update(welcome_body).finalize().into();
    let mut okm = [0u8; 64];
    // 64 bytes is far below HKDF-SHA256's limit of 255 * 32: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(&salt), shared).expand(SESSION_INFO, &mut okm);
    let (c2r, r2c) = okm.split_at(32);
    let mut keys = SessionKeys { c2r: [0; 32], r2c: [0; 32] };
    keys.c2r.copy_from_slice(c2r);
    keys.r2c.copy_from_slice(r2c);
    keys
}

/// The relay's answer to a HELLO it has judged (see the module's order):
/// the X25519 exchange with `relay_eph_secret` (an all-zero result is
/// `ZeroSharedSecret`), a WELCOME body with the parameters negotiated
/// between `relay_params` and the HELLO's, `session_id` (the caller assigns
/// it, 0..=64534), the SHA-256 of `hello_body`, signed with `node_key`, and
/// the session keys. `hello` must be `hello_body` parsed (else `Malformed`).
pub fn relay_welcome(
    node_key: &SigningKey,
    relay_eph_secret: [u8; 32],
    hello: &Hello,
    hello_body: &[u8],
    session_id: u16,
    relay_params: &DomainParams,
    network_id: u32,
) -> Result<([u8; Welcome::LEN], SessionKeys), HandshakeError> {
    if Hello::parse(hello_body).as_ref() != Ok(hello) || session_id > MAX_SESSION_ID {
        return Err(HandshakeError::Malformed);
    }
    let shared = x25519(relay_eph_secret, hello.ephemeral)?;
    let mut w = Welcome {
        params: relay_params.negotiate(&hello.params),
        node_key: VerificationKeyBytes::from(node_key).into(),
        ephemeral: PublicKey::from(&StaticSecret::from(relay_eph_secret)).to_bytes(),
        session_id,
        hello_hash: Sha256::digest(hello_body).into(),
        signature: [0; 64],
    };
    let mut body = [0u8; Welcome::LEN];
    w.emit(&mut body).map_err(from_parse)?;
    w.signature = node_key.sign(&welcome_signed_message(network_id, &body)).to_bytes();
    w.emit(&mut body).map_err(from_parse)?;
    Ok((body, derive_keys(hello_body, &body, &shared)))
}

/// What a client has after a WELCOME it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Established {
    /// The session id (MCS initiator) to use from now on.
    pub session_id: u16,
    /// The negotiated domain parameters.
    pub params: DomainParams,
    /// The session keys (counters start at 0 in both directions).
    pub keys: SessionKeys,
}

/// A client's side of one handshake: its signed HELLO and the ephemeral
/// secret that goes with it. A client whose WELCOME was lost makes a new
/// one (new ephemeral secret and timestamp): a relay does not answer a
/// repeated HELLO.
pub struct ClientHandshake {
    eph_secret: [u8; 32],
    network_id: u32,
    body: [u8; Hello::LEN],
    hash: [u8; 32],
}

impl core::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("network_id", &self.network_id)
            .field("hello_hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// A HELLO with the spec's parameters ([`DomainParams::default`]) for
    /// `account`, the X25519 public key of `eph_secret` and `timestamp_ms`
    /// (the client's clock, Unix milliseconds), signed for `network_id`.
    pub fn new(account: &SigningKey, eph_secret: [u8; 32], timestamp_ms: u64, network_id: u32) -> ClientHandshake {
        let mut h = Hello {
            params: DomainParams::default(),
            account: VerificationKeyBytes::from(account).into(),
            ephemeral: PublicKey::from(&StaticSecret::from(eph_secret)).to_bytes(),
            timestamp_ms,
            signature: [0; 64],
        };
        let mut body = [0u8; Hello::LEN];
        // The buffer is exactly Hello::LEN bytes: emit cannot fail.
        let _ = h.emit(&mut body);
        h.signature = account.sign(&hello_signed_message(network_id, &body)).to_bytes();
        let _ = h.emit(&mut body);
        let hash = Sha256::digest(body).into();
        ClientHandshake { eph_secret, network_id, body, hash }
    }

    /// The HELLO body.
    pub fn hello_body(&self) -> &[u8] {
        &self.body
    }

    /// SHA-256 of the HELLO body (what WELCOME and COOKIE name).
    pub fn hello_hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The HELLO as one INFO frame (request, initiator 0, channel 1003).
    pub fn hello_frame(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(200);
        info_frame(mcs::KIND_REQUEST, 0, kind::HELLO, &self.body, &mut out);
        out
    }

    /// The answer to a relay's COOKIE: a COOKIE_ECHO frame with `cookie`,
    /// then the same HELLO frame, in one datagram.
    pub fn echo_datagram(&self, cookie: &[u8; 16]) -> Vec<u8> {
        let mut echo = [0u8; CookieEcho::LEN];
        // The buffer is exactly CookieEcho::LEN bytes: emit cannot fail.
        let _ = CookieEcho { cookie: *cookie }.emit(&mut echo);
        let mut out = Vec::with_capacity(256);
        info_frame(mcs::KIND_REQUEST, 0, kind::COOKIE_ECHO, &echo, &mut out);
        info_frame(mcs::KIND_REQUEST, 0, kind::HELLO, &self.body, &mut out);
        out
    }

    /// Checks a WELCOME body against the pinned `node_key` and this HELLO,
    /// then derives the session: wrong length or a session id above 64534
    /// `Malformed`, another version `BadVersion`, another node key
    /// `WrongNodeKey`, another HELLO's hash `NotForThisHello`, a signature
    /// that breaks the strict rules `BadSignature`, an all-zero X25519
    /// result `ZeroSharedSecret`.
    pub fn finish(&self, welcome_body: &[u8], node_key: &[u8; 32]) -> Result<Established, HandshakeError> {
        let w = Welcome::parse(welcome_body).map_err(from_parse)?;
        if w.session_id > MAX_SESSION_ID {
            return Err(HandshakeError::Malformed);
        }
        if &w.node_key != node_key {
            return Err(HandshakeError::WrongNodeKey);
        }
        if w.hello_hash != self.hash {
            return Err(HandshakeError::NotForThisHello);
        }
        if !verify_strict(&w.node_key, &w.signature, &welcome_signed_message(self.network_id, welcome_body)) {
            return Err(HandshakeError::BadSignature);
        }
        let shared = x25519(self.eph_secret, w.ephemeral)?;
        Ok(Established {
            session_id: w.session_id,
            params: w.params,
            keys: derive_keys(&self.body, welcome_body, &shared),
        })
    }
}

/// The cookie for a HELLO from `peer`: the first 16 bytes of
/// HMAC-SHA256(`secret`, address bytes (4 for IPv4, 16 for IPv6) || port
/// `u16 BE` || `hello_hash`).
pub fn cookie(secret: &[u8; 32], peer: &Peer, hello_hash: &[u8; 32]) -> [u8; 16] {
    // HMAC takes a key of any length: this never falls back.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else { return [0; 16] };
    mac.update(peer.ip_bytes());
    mac.update(&peer.port().to_be_bytes());
    mac.update(hello_hash);
    let tag = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    for (o, t) in out.iter_mut().zip(tag.iter()) {
        *o = *t;
    }
    out
}

/// Whether `echoed` is the cookie of `peer` and `hello_hash` under one of
/// `secrets` (the current and the previous one): `BadCookie` otherwise.
/// Compares without an early exit.
pub fn check_cookie(
    secrets: &[[u8; 32]],
    peer: &Peer,
    hello_hash: &[u8; 32],
    echoed: &[u8; 16],
) -> Result<(), HandshakeError> {
    let mut ok = false;
    for s in secrets {
        let want = cookie(s, peer, hello_hash);
        let diff = want.iter().zip(echoed).fold(0u8, |d, (a, b)| d | (a ^ b));
        ok |= diff == 0;
    }
    if ok {
        Ok(())
    } else {
        Err(HandshakeError::BadCookie)
    }
}

/// Appends one INFO frame to `out`: MCS `kind`, `initiator`, channel 1003,
/// priority 0x70, `stream_seq` 0, the body uncompressed. A body over 16384
/// bytes (no handshake body comes near) appends nothing.
pub fn info_frame(kind: u8, initiator: u16, content_kind: u8, body: &[u8], out: &mut Vec<u8>) {
    let spec = FrameSpec {
        kind,
        initiator,
        channel: channel::CONTROL,
        priority: mcs::PRIORITY_HIGH,
        long_per: false,
        stream_seq: 0,
        content_kind,
        compress: false,
    };
    let _ = emit_frame_with(&spec, body, None, out, &mut Vec::new());
}

/// One INFO frame of a datagram ([`parse_info_frames`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InfoFrame<'a> {
    /// MCS kind: 0x64 (HELLO, COOKIE_ECHO) or 0x68 (WELCOME, COOKIE).
    pub kind: u8,
    /// MCS initiator: 0, or the session id a WELCOME assigns.
    pub initiator: u16,
    /// Content kind (HELLO, WELCOME, COOKIE or COOKIE_ECHO).
    pub content_kind: u8,
    /// The body, as on the wire.
    pub body: &'a [u8],
}

/// Whether a content kind goes with an MCS kind on channel 1003.
fn control_kind_ok(mcs_kind: u8, content_kind: u8) -> bool {
    matches!(
        (mcs_kind, content_kind),
        (mcs::KIND_REQUEST, kind::HELLO | kind::COOKIE_ECHO) | (mcs::KIND_INDICATION, kind::WELCOME | kind::COOKIE)
    )
}

/// Every frame of a handshake datagram, in order, judged with the spec's
/// order of checks for INFO frames (steps 1-5 and 9; 6-8 do not apply):
/// TPKT, X.224 and MCS headers and lengths, channel 1003 only
/// (`unsupported_channel`), INFO security, the share-data lengths and
/// constants, and a content kind that goes with the MCS kind
/// (`bad_header`). An LZ4 body is `bad_compression` (no handshake body is
/// compressed). The first failure is the answer. For clients and tests;
/// a relay's data path parses for itself.
pub fn parse_info_frames(datagram: &[u8]) -> Result<Vec<InfoFrame<'_>>, DropReason> {
    let mut frames = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let h = frame_header(rest)?;
        let frame = rest.get(..h.len).ok_or(DropReason::Truncated)?;
        if h.channel != channel::CONTROL {
            return Err(DropReason::UnsupportedChannel);
        }
        if h.kind != mcs::KIND_REQUEST && h.kind != mcs::KIND_INDICATION {
            return Err(DropReason::BadHeader);
        }
        let sec = security::Packet::new_checked(frame.get(h.ud_at..).unwrap_or(&[]), true)?;
        let sd = share::Packet::new_unchecked(sec.clear_payload());
        let r = share::Repr::parse(&sd)?;
        if r.compression != Compression::None {
            return Err(DropReason::BadCompression);
        }
        if !control_kind_ok(h.kind, r.content_kind) {
            return Err(DropReason::BadHeader);
        }
        // The plaintext fills the frame after the INFO header (its
        // total_length was checked against it): the body is the frame's tail.
        let body = frame.get(h.ud_at + security::BASE_LEN + share::HEADER_LEN..).unwrap_or(&[]);
        frames.push(InfoFrame { kind: h.kind, initiator: h.session, content_kind: r.content_kind, body });
        rest = rest.get(h.len..).unwrap_or(&[]);
    }
    Ok(frames)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn error_names() {
        let names: Vec<_> = HandshakeError::ALL.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            names,
            [
                "bad_version",
                "bad_params",
                "malformed",
                "bad_signature",
                "zero_shared_secret",
                "wrong_node_key",
                "not_for_this_hello",
                "bad_cookie"
            ]
        );
    }

    #[test]
    fn keys_are_not_printed() {
        let k = SessionKeys { c2r: [0xab; 32], r2c: [0xcd; 32] };
        let s = format!("{k:?}");
        assert!(!s.contains("171") && !s.contains("ab") && !s.contains("205"), "{s}");
        let c = ClientHandshake::new(&SigningKey::from([1; 32]), [0x5a; 32], 1, 1);
        assert!(!format!("{c:?}").contains("90, 90"));
    }

    /// A client and a relay meet: the relay accepts the HELLO, the client
    /// the WELCOME, and both hold the same keys; the relay refuses a HELLO
    /// whose ephemeral key is of small order (all-zero secret).
    #[test]
    fn both_ends_derive_the_same_keys() {
        let account = SigningKey::from([3; 32]);
        let node = SigningKey::from([4; 32]);
        let node_pub: [u8; 32] = VerificationKeyBytes::from(&node).into();
        let c = ClientHandshake::new(&account, [5; 32], 1_790_000_000_000, 9);
        let hello = verify_hello(9, c.hello_body()).unwrap();
        assert_eq!(verify_hello(1, c.hello_body()), Err(HandshakeError::BadSignature));
        let relay_params = DomainParams { max_pdu_size: 16384, ..DomainParams::default() };
        let (w, keys) = relay_welcome(&node, [6; 32], &hello, c.hello_body(), 12, &relay_params, 9).unwrap();
        let est = c.finish(&w, &node_pub).unwrap();
        assert_eq!((est.session_id, est.keys, est.params.max_pdu_size), (12, keys, 16384));
        assert_ne!(keys.c2r, keys.r2c);
        // The relay signed for network 9: a client on network 1 refuses.
        let c1 = ClientHandshake { network_id: 1, ..ClientHandshake::new(&account, [5; 32], 1_790_000_000_000, 9) };
        assert_eq!(c1.finish(&w, &node_pub), Err(HandshakeError::BadSignature));
        // A HELLO whose ephemeral key is the identity (u = 0).
        let mut body = c.hello_body().to_vec();
        body[49..81].fill(0);
        let zero = Hello::parse(&body).unwrap();
        assert_eq!(
            relay_welcome(&node, [6; 32], &zero, &body, 12, &relay_params, 9).err(),
            Some(HandshakeError::ZeroSharedSecret)
        );
        // hello and hello_body must agree; session ids stop at 64534.
        assert_eq!(
            relay_welcome(&node, [6; 32], &zero, c.hello_body(), 12, &relay_params, 9).err(),
            Some(HandshakeError::Malformed)
        );
        assert_eq!(
            relay_welcome(&node, [6; 32], &hello, c.hello_body(), 64535, &relay_params, 9).err(),
            Some(HandshakeError::Malformed)
        );
    }

    #[test]
    fn cookie_checks() {
        let c = ClientHandshake::new(&SigningKey::from([3; 32]), [5; 32], 1, 1);
        let peer = Peer::v4([10, 0, 0, 1], 5000);
        let (old, cur) = ([1u8; 32], [2u8; 32]);
        let k = cookie(&old, &peer, &c.hello_hash());
        assert_eq!(check_cookie(&[cur, old], &peer, &c.hello_hash(), &k), Ok(()));
        assert_eq!(check_cookie(&[cur], &peer, &c.hello_hash(), &k), Err(HandshakeError::BadCookie));
        let other_port = Peer::v4([10, 0, 0, 1], 5001);
        assert_eq!(check_cookie(&[old], &other_port, &c.hello_hash(), &k), Err(HandshakeError::BadCookie));
        assert_eq!(check_cookie(&[old], &peer, &[0; 32], &k), Err(HandshakeError::BadCookie));
        let v6 = Peer::v6([0; 16], 5000, 0);
        assert_ne!(cookie(&old, &v6, &c.hello_hash()), cookie(&old, &Peer::v4([0; 4], 5000), &c.hello_hash()));
    }

    #[test]
    fn info_frames_refused_in_order() {
        let c = ClientHandshake::new(&SigningKey::from([3; 32]), [5; 32], 1, 1);
        let d = c.echo_datagram(&[7; 16]);
        let f = parse_info_frames(&d).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].content_kind, f[1].content_kind), (kind::COOKIE_ECHO, kind::HELLO));
        assert_eq!(f[1].body, c.hello_body());
        let hello = c.hello_frame();
        // Truncated datagram.
        assert_eq!(parse_info_frames(&hello[..hello.len() - 1]), Err(DropReason::Truncated));
        // Another channel.
        let mut b = hello.clone();
        b[11] = 0xec;
        assert_eq!(parse_info_frames(&b), Err(DropReason::UnsupportedChannel));
        // ENCRYPT flags on 1003.
        let mut b = hello.clone();
        let ud = 15; // two-byte PER length
        b[ud] = 0x08;
        assert_eq!(parse_info_frames(&b), Err(DropReason::BadSecurity));
        // A HELLO sent as an indication.
        let mut b = hello.clone();
        b[7] = mcs::KIND_INDICATION;
        assert_eq!(parse_info_frames(&b), Err(DropReason::BadHeader));
        // A TX_BATCH content kind on 1003.
        let mut b = Vec::new();
        info_frame(mcs::KIND_REQUEST, 0, kind::TX_BATCH, &[0, 0], &mut b);
        assert_eq!(parse_info_frames(&b), Err(DropReason::BadHeader));
        // share-data lengths before constants.
        let mut b = hello.clone();
        b[ud + 4] ^= 1; // total_length
        assert_eq!(parse_info_frames(&b), Err(DropReason::BadCompression));
        // The first frame good, the second bad: the datagram is refused.
        let mut b = d.clone();
        b.extend_from_slice(&[3, 0]);
        assert_eq!(parse_info_frames(&b), Err(DropReason::Truncated));
        assert_eq!(parse_info_frames(&[]), Ok(Vec::new()));
    }
}
