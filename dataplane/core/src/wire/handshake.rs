//! HELLO and WELCOME bodies (`att-wire.md`, "Handshake"), carried in clear
//! (INFO) on channel 1003.

use super::{arr32, byte, le16, le64, put, DropReason, Result};

/// Domain parameters, eight u16 LE (T.125 MCS domain parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainParams {
    pub max_channel_ids: u16,
    pub max_user_ids: u16,
    pub max_token_ids: u16,
    pub num_priorities: u16,
    pub min_throughput: u16,
    pub max_height: u16,
    pub max_pdu_size: u16,
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

pub const VERSION: u8 = 1;
pub const HELLO_SIG_PREFIX: &[u8] = b"ATT-HELLO-v1";
pub const WELCOME_SIG_PREFIX: &[u8] = b"ATT-WELCOME-v1";

/// HELLO body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub params: DomainParams,
    pub account: [u8; 32],
    pub ephemeral: [u8; 32],
    pub timestamp_ms: u64,
    pub signature: [u8; 64],
}

impl Hello {
    pub const LEN: usize = 1 + 16 + 32 + 32 + 8 + 64;
    /// Bytes covered by the signature (after prefix and network id).
    pub const SIGNED_LEN: usize = Self::LEN - 64;

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
    pub params: DomainParams,
    pub node_key: [u8; 32],
    pub ephemeral: [u8; 32],
    pub session_id: u16,
    pub hello_hash: [u8; 32],
    pub signature: [u8; 64],
}

impl Welcome {
    pub const LEN: usize = 1 + 16 + 32 + 32 + 2 + 32 + 64;
    pub const SIGNED_LEN: usize = Self::LEN - 64;

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
}
