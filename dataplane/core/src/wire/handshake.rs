//! HELLO, WELCOME, COOKIE and COOKIE_ECHO bodies (`att-wire.md`,
//! "Handshake" and "Under load: cookies"), carried in clear (INFO) on
//! channel 1003.

use super::{arr32, byte, le16, le64, put, DropReason, Result};

/// Domain parameters, eight u16 LE (T.125 MCS domain parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainParams {
    /// Most channel ids (T.125 `maxChannelIds`); 34 in a HELLO.
    pub max_channel_ids: u16,
    /// Most user ids (`maxUserIds`); 64535 in a HELLO, one per session id.
    pub max_user_ids: u16,
    /// Most token ids (`maxTokenIds`); 65535 in a HELLO.
    pub max_token_ids: u16,
    /// Number of priorities (`numPriorities`); 1 in a HELLO.
    pub num_priorities: u16,
    /// Minimum throughput (`minThroughput`); 0 in a HELLO.
    pub min_throughput: u16,
    /// Maximum domain height (`maxHeight`); 1 in a HELLO.
    pub max_height: u16,
    /// Largest MCS PDU in bytes (`maxMCSPDUsize`); 65535 in a HELLO.
    pub max_pdu_size: u16,
    /// Protocol version (`protocolVersion`); 2 in a HELLO.
    pub protocol_version: u16,
}

impl Default for DomainParams {
    /// The values the spec lists for a HELLO.
    fn default() -> Self {
        DomainParams {
            max_channel_ids: 34,
            max_user_ids: 64535,
            max_token_ids: 65535,
            num_priorities: 1,
            min_throughput: 0,
            max_height: 1,
            max_pdu_size: 65535,
            protocol_version: 2,
        }
    }
}

impl DomainParams {
    /// Encoded length: eight `u16`.
    pub const LEN: usize = 16;

    fn as_array(&self) -> [u16; 8] {
        [
            self.max_channel_ids,
            self.max_user_ids,
            self.max_token_ids,
            self.num_priorities,
            self.min_throughput,
            self.max_height,
            self.max_pdu_size,
            self.protocol_version,
        ]
    }

    fn from_array(a: [u16; 8]) -> Self {
        let [max_channel_ids, max_user_ids, max_token_ids, num_priorities, min_throughput, max_height, max_pdu_size, protocol_version] =
            a;
        DomainParams {
            max_channel_ids,
            max_user_ids,
            max_token_ids,
            num_priorities,
            min_throughput,
            max_height,
            max_pdu_size,
            protocol_version,
        }
    }

    fn parse(b: &[u8], at: usize) -> Self {
        let mut a = [0u16; 8];
        for (i, v) in a.iter_mut().enumerate() {
            *v = le16(b, at + 2 * i);
        }
        Self::from_array(a)
    }

    fn emit(&self, b: &mut [u8], at: usize) {
        for (i, v) in self.as_array().iter().enumerate() {
            put(b, at + 2 * i, &v.to_le_bytes());
        }
    }

    /// What a relay requires of a HELLO's parameters before it spends any
    /// work on it (the project's rule, docs/PROTOCOL.md): protocol version
    /// 2, at least 4 channel ids (1003..=1006), at least one user id, one
    /// priority and a domain height of at least 1, and PDUs of at least
    /// 1024 bytes. Token ids and throughput are not used and may be
    /// anything.
    pub fn acceptable(&self) -> bool {
        self.protocol_version == 2
            && self.max_channel_ids >= 4
            && self.max_user_ids >= 1
            && self.num_priorities >= 1
            && self.max_height >= 1
            && self.max_pdu_size >= 1024
    }

    /// Each field the smaller of the two sides'.
    pub fn negotiate(&self, other: &DomainParams) -> DomainParams {
        let (a, b) = (self.as_array(), other.as_array());
        let mut out = [0u16; 8];
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            *o = x.min(y);
        }
        Self::from_array(out)
    }
}

/// `version` of HELLO and WELCOME bodies.
pub const VERSION: u8 = 1;
/// Domain separation before the network id in HELLO's signing message.
pub const HELLO_SIG_PREFIX: &[u8] = b"ATT-HELLO-v1";
/// Domain separation before the network id in WELCOME's signing message.
pub const WELCOME_SIG_PREFIX: &[u8] = b"ATT-WELCOME-v1";

/// HELLO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The client's domain parameters (its maxima).
    pub params: DomainParams,
    /// Client account key (Ed25519 public); it signs the HELLO.
    pub account: [u8; 32],
    /// Client ephemeral X25519 public key.
    pub ephemeral: [u8; 32],
    /// The client's clock, Unix milliseconds; a relay answers only a HELLO
    /// within 30 s of its own clock.
    pub timestamp_ms: u64,
    /// Ed25519 signature by `account` over [`HELLO_SIG_PREFIX`], the network id
    /// (`u32 LE`) and the body bytes before the signature.
    pub signature: [u8; 64],
}

impl Hello {
    /// Body length in bytes.
    pub const LEN: usize = 1 + 16 + 32 + 32 + 8 + 64;
    /// Bytes covered by the signature (after prefix and network id).
    pub const SIGNED_LEN: usize = Self::LEN - 64;

    /// Reads a body of exactly [`Hello::LEN`] bytes (`bad_length` otherwise;
    /// another version is `bad_header`). Checks neither timestamp nor signature.
    pub fn parse(b: &[u8]) -> Result<Hello> {
        if b.len() != Self::LEN {
            return Err(DropReason::BadLength);
        }
        if byte(b, 0) != VERSION {
            return Err(DropReason::BadHeader);
        }
        Ok(Hello {
            params: DomainParams::parse(b, 1),
            account: arr32(b, 17),
            ephemeral: arr32(b, 49),
            timestamp_ms: le64(b, 81),
            signature: sig(b, Self::SIGNED_LEN),
        })
    }

    /// Writes the body into `b[..Hello::LEN]` and returns its length;
    /// `bad_length` if `b` is shorter.
    pub fn emit(&self, b: &mut [u8]) -> Result<usize> {
        if b.len() < Self::LEN {
            return Err(DropReason::BadLength);
        }
        put(b, 0, &[VERSION]);
        self.params.emit(b, 1);
        put(b, 17, &self.account);
        put(b, 49, &self.ephemeral);
        put(b, 81, &self.timestamp_ms.to_le_bytes());
        put(b, Self::SIGNED_LEN, &self.signature);
        Ok(Self::LEN)
    }
}

/// WELCOME body (the paper's SUCCESS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    /// The negotiated domain parameters (each the smaller of the two sides' maxima).
    pub params: DomainParams,
    /// Relay node key (Ed25519 public); the client checks it against the key it
    /// expects before using the session.
    pub node_key: [u8; 32],
    /// Relay ephemeral X25519 public key.
    pub ephemeral: [u8; 32],
    /// Session id: the initiator the client uses from now on.
    pub session_id: u16,
    /// SHA-256 of the HELLO body answered.
    pub hello_hash: [u8; 32],
    /// Ed25519 signature by `node_key` over [`WELCOME_SIG_PREFIX`], the network
    /// id (`u32 LE`) and the body bytes before the signature.
    pub signature: [u8; 64],
}

impl Welcome {
    /// Body length in bytes.
    pub const LEN: usize = 1 + 16 + 32 + 32 + 2 + 32 + 64;
    /// Bytes covered by the signature (after prefix and network id).
    pub const SIGNED_LEN: usize = Self::LEN - 64;

    /// Reads a body of exactly [`Welcome::LEN`] bytes (`bad_length` otherwise;
    /// another version is `bad_header`). Checks no signature.
    pub fn parse(b: &[u8]) -> Result<Welcome> {
        if b.len() != Self::LEN {
            return Err(DropReason::BadLength);
        }
        if byte(b, 0) != VERSION {
            return Err(DropReason::BadHeader);
        }
        Ok(Welcome {
            params: DomainParams::parse(b, 1),
            node_key: arr32(b, 17),
            ephemeral: arr32(b, 49),
            session_id: le16(b, 81),
            hello_hash: arr32(b, 83),
            signature: sig(b, Self::SIGNED_LEN),
        })
    }

    /// Writes the body into `b[..Welcome::LEN]` and returns its length;
    /// `bad_length` if `b` is shorter.
    pub fn emit(&self, b: &mut [u8]) -> Result<usize> {
        if b.len() < Self::LEN {
            return Err(DropReason::BadLength);
        }
        put(b, 0, &[VERSION]);
        self.params.emit(b, 1);
        put(b, 17, &self.node_key);
        put(b, 49, &self.ephemeral);
        put(b, 81, &self.session_id.to_le_bytes());
        put(b, 83, &self.hello_hash);
        put(b, Self::SIGNED_LEN, &self.signature);
        Ok(Self::LEN)
    }
}

/// COOKIE body (v1.1): a relay under load answers a HELLO with it instead
/// of a WELCOME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    /// SHA-256 of the HELLO body answered.
    pub hello_hash: [u8; 32],
    /// The first 16 bytes of HMAC-SHA256(secret, source address bytes ||
    /// source port `u16 BE` || `hello_hash`).
    pub cookie: [u8; 16],
}

impl Cookie {
    /// Body length in bytes.
    pub const LEN: usize = 1 + 32 + 16;

    /// Reads a body of exactly [`Cookie::LEN`] bytes (`bad_length`
    /// otherwise; another version is `bad_header`).
    pub fn parse(b: &[u8]) -> Result<Cookie> {
        if b.len() != Self::LEN {
            return Err(DropReason::BadLength);
        }
        if byte(b, 0) != VERSION {
            return Err(DropReason::BadHeader);
        }
        Ok(Cookie { hello_hash: arr32(b, 1), cookie: arr16(b, 33) })
    }

    /// Writes the body into `b[..Cookie::LEN]` and returns its length;
    /// `bad_length` if `b` is shorter.
    pub fn emit(&self, b: &mut [u8]) -> Result<usize> {
        if b.len() < Self::LEN {
            return Err(DropReason::BadLength);
        }
        put(b, 0, &[VERSION]);
        put(b, 1, &self.hello_hash);
        put(b, 33, &self.cookie);
        Ok(Self::LEN)
    }
}

/// COOKIE_ECHO body (v1.1): the cookie a client sends, in the same
/// datagram, before the HELLO it resends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieEcho {
    /// The cookie bytes of the relay's COOKIE.
    pub cookie: [u8; 16],
}

impl CookieEcho {
    /// Body length in bytes.
    pub const LEN: usize = 1 + 16;

    /// Reads a body of exactly [`CookieEcho::LEN`] bytes (`bad_length`
    /// otherwise; another version is `bad_header`).
    pub fn parse(b: &[u8]) -> Result<CookieEcho> {
        if b.len() != Self::LEN {
            return Err(DropReason::BadLength);
        }
        if byte(b, 0) != VERSION {
            return Err(DropReason::BadHeader);
        }
        Ok(CookieEcho { cookie: arr16(b, 1) })
    }

    /// Writes the body into `b[..CookieEcho::LEN]` and returns its length;
    /// `bad_length` if `b` is shorter.
    pub fn emit(&self, b: &mut [u8]) -> Result<usize> {
        if b.len() < Self::LEN {
            return Err(DropReason::BadLength);
        }
        put(b, 0, &[VERSION]);
        put(b, 1, &self.cookie);
        Ok(Self::LEN)
    }
}

fn arr16(b: &[u8], at: usize) -> [u8; 16] {
    b.get(at..at + 16).and_then(|s| s.try_into().ok()).unwrap_or([0; 16])
}

fn sig(b: &[u8], at: usize) -> [u8; 64] {
    b.get(at..at + 64).and_then(|s| s.try_into().ok()).unwrap_or([0; 64])
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        let h = Hello {
            params: DomainParams::default(),
            account: [1; 32],
            ephemeral: [2; 32],
            timestamp_ms: 1_790_000_000_000,
            signature: [3; 64],
        };
        let mut b = [0u8; Hello::LEN];
        h.emit(&mut b).unwrap();
        assert_eq!(Hello::parse(&b), Ok(h));
        assert_eq!(Hello::parse(&b[1..]), Err(DropReason::BadLength));
    }

    #[test]
    fn welcome_round_trip_and_negotiation() {
        let mine = DomainParams { max_pdu_size: 16384, ..DomainParams::default() };
        let w = Welcome {
            params: mine.negotiate(&DomainParams::default()),
            node_key: [4; 32],
            ephemeral: [5; 32],
            session_id: 7,
            hello_hash: [6; 32],
            signature: [7; 64],
        };
        assert_eq!(w.params.max_pdu_size, 16384);
        let mut b = [0u8; Welcome::LEN];
        w.emit(&mut b).unwrap();
        assert_eq!(Welcome::parse(&b), Ok(w));
    }

    #[test]
    fn cookie_and_echo_round_trip() {
        let c = Cookie { hello_hash: [8; 32], cookie: [9; 16] };
        let mut b = [0u8; Cookie::LEN];
        assert_eq!(c.emit(&mut b), Ok(49));
        assert_eq!((b[0], b[1], b[33], b[48]), (1, 8, 9, 9));
        assert_eq!(Cookie::parse(&b), Ok(c));
        assert_eq!(Cookie::parse(&b[..48]), Err(DropReason::BadLength));
        assert_eq!(c.emit(&mut [0u8; 48]), Err(DropReason::BadLength));
        b[0] = 2;
        assert_eq!(Cookie::parse(&b), Err(DropReason::BadHeader));

        let e = CookieEcho { cookie: [10; 16] };
        let mut b = [0u8; CookieEcho::LEN + 1];
        assert_eq!(e.emit(&mut b), Ok(17));
        assert_eq!(CookieEcho::parse(&b[..17]), Ok(e));
        assert_eq!(CookieEcho::parse(&b), Err(DropReason::BadLength));
        assert_eq!(e.emit(&mut [0u8; 16]), Err(DropReason::BadLength));
        b[0] = 0;
        assert_eq!(CookieEcho::parse(&b[..17]), Err(DropReason::BadHeader));
    }

    #[test]
    fn params_acceptable() {
        let d = DomainParams::default();
        assert!(d.acceptable());
        let min = DomainParams {
            max_channel_ids: 4,
            max_user_ids: 1,
            max_token_ids: 0,
            num_priorities: 1,
            min_throughput: 0,
            max_height: 1,
            max_pdu_size: 1024,
            protocol_version: 2,
        };
        assert!(min.acceptable());
        for bad in [
            DomainParams { protocol_version: 1, ..d },
            DomainParams { protocol_version: 3, ..d },
            DomainParams { max_channel_ids: 3, ..d },
            DomainParams { max_user_ids: 0, ..d },
            DomainParams { num_priorities: 0, ..d },
            DomainParams { max_height: 0, ..d },
            DomainParams { max_pdu_size: 1023, ..d },
        ] {
            assert!(!bad.acceptable(), "{bad:?}");
        }
    }
}
