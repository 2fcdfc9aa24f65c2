//! QUERY and ANSWER bodies (v1.1; `att-wire.md`, "Share-data header and
//! body"): a client asks its relay, sealed in its session on channel 1005,
//! about an account or a transaction; the relay answers. Little-endian.
//!
//! The project serves `what` 1 (account) and 2 (transaction) only; a query
//! for any other `what` parses as [`QueryWhat::Other`] and is answered with
//! status [`status::NOT_SERVED`] (docs/PROTOCOL.md).

use super::{arr32, byte, le32, le64, DropReason, Result};

/// `version` of QUERY and ANSWER bodies.
pub const VERSION: u8 = 1;

/// What a query asks about.
pub mod what {
    /// An account: the body carries its 32-byte key.
    pub const ACCOUNT: u8 = 1;
    /// A transaction: the body carries its 32-byte id.
    pub const TRANSACTION: u8 = 2;
}

/// ANSWER status.
pub mod status {
    /// Answered; the body by `what` follows.
    pub const OK: u8 = 0;
    /// The account does not exist.
    pub const UNKNOWN: u8 = 1;
    /// The relay does not serve this `what`.
    pub const NOT_SERVED: u8 = 2;
}

/// A transaction's state in a transaction ANSWER.
pub mod state {
    /// Never seen.
    pub const UNKNOWN: u8 = 0;
    /// Accepted, not yet in a block.
    pub const PENDING: u8 = 1;
    /// In a block (the answer's height).
    pub const COMMITTED: u8 = 2;
    /// Refused by the ledger (the answer's reason).
    pub const REFUSED: u8 = 3;
}

/// Version, request id and `what`: the shortest QUERY.
const QUERY_HEADER_LEN: usize = 1 + 4 + 1;
/// A QUERY for an account or a transaction.
const QUERY_KEYED_LEN: usize = QUERY_HEADER_LEN + 32;
/// Version, request id, `what` and status: an ANSWER with a non-zero status.
const ANSWER_HEADER_LEN: usize = 1 + 4 + 1 + 1;
/// An account ANSWER: five `u64`.
const ANSWER_ACCOUNT_LEN: usize = ANSWER_HEADER_LEN + 5 * 8;
/// A transaction ANSWER: state, height, reason.
const ANSWER_TRANSACTION_LEN: usize = ANSWER_HEADER_LEN + 1 + 8 + 1;

/// The subject of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryWhat {
    /// `what` 1: the account with this key.
    Account([u8; 32]),
    /// `what` 2: the transaction with this id.
    Transaction([u8; 32]),
    /// Any other `what` (the body after it is not read); the relay answers
    /// status [`status::NOT_SERVED`].
    Other(u8),
}

impl QueryWhat {
    /// The `what` byte.
    pub fn code(&self) -> u8 {
        match self {
            QueryWhat::Account(_) => what::ACCOUNT,
            QueryWhat::Transaction(_) => what::TRANSACTION,
            QueryWhat::Other(w) => *w,
        }
    }
}

/// QUERY body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// The client's id for the request; the ANSWER repeats it.
    pub request_id: u32,
    /// What is asked.
    pub what: QueryWhat,
}

impl Query {
    /// Reads a QUERY body (step 10): a version other than 1, fewer than 6
    /// bytes, or `what` 1 or 2 with a body that is not exactly 38 bytes are
    /// `bad_tx`; any other `what` is [`QueryWhat::Other`] whatever follows.
    pub fn parse(b: &[u8]) -> Result<Query> {
        if b.len() < QUERY_HEADER_LEN || byte(b, 0) != VERSION {
            return Err(DropReason::BadTx);
        }
        let request_id = le32(b, 1);
        let w = byte(b, 5);
        let what = match w {
            what::ACCOUNT | what::TRANSACTION if b.len() != QUERY_KEYED_LEN => return Err(DropReason::BadTx),
            what::ACCOUNT => QueryWhat::Account(arr32(b, 6)),
            what::TRANSACTION => QueryWhat::Transaction(arr32(b, 6)),
            other => QueryWhat::Other(other),
        };
        Ok(Query { request_id, what })
    }

    /// Appends the body to `out` (6 bytes for [`QueryWhat::Other`], 38
    /// otherwise).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.push(self.what.code());
        match &self.what {
            QueryWhat::Account(k) | QueryWhat::Transaction(k) => out.extend_from_slice(k),
            QueryWhat::Other(_) => {}
        }
    }
}

/// What follows an ANSWER's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerBody {
    /// `what` 1, status 0.
    Account {
        /// The committed nonce plus the contiguous pending ones: the nonce
        /// of the client's next transaction.
        next_nonce: u64,
        /// Balance.
        balance: u64,
        /// Amount staked.
        staked: u64,
        /// The smallest fee the relay accepts.
        min_fee: u64,
        /// The chain's height the answer was read at.
        height: u64,
    },
    /// `what` 2, status 0.
    Transaction {
        /// One of [`state`].
        state: u8,
        /// The block height when committed, else 0.
        height: u64,
        /// The refusal reason (the project's codes) when refused, else 0.
        reason: u8,
    },
    /// Nothing: a status other than 0.
    None,
}

/// ANSWER body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The request id of the QUERY answered.
    pub request_id: u32,
    /// The `what` of the QUERY answered.
    pub what: u8,
    /// One of [`status`]; anything but 0 ends the body.
    pub status: u8,
    /// The answer (`AnswerBody::None` unless status is 0).
    pub body: AnswerBody,
}

impl Answer {
    /// An answer with a non-zero status (and so no body) to `q`.
    pub fn refusal(q: &Query, status: u8) -> Answer {
        Answer { request_id: q.request_id, what: q.what.code(), status, body: AnswerBody::None }
    }

    /// Reads an ANSWER body: a version other than 1, an unknown status, a
    /// non-zero status with bytes after it, a status 0 for a `what` other
    /// than 1 or 2, a body not exactly as long as its `what` says, or a
    /// transaction state above 3 are `bad_tx`.
    pub fn parse(b: &[u8]) -> Result<Answer> {
        if b.len() < ANSWER_HEADER_LEN || byte(b, 0) != VERSION {
            return Err(DropReason::BadTx);
        }
        let request_id = le32(b, 1);
        let w = byte(b, 5);
        let st = byte(b, 6);
        let body = match (st, w) {
            (status::UNKNOWN | status::NOT_SERVED, _) if b.len() == ANSWER_HEADER_LEN => AnswerBody::None,
            (status::OK, what::ACCOUNT) if b.len() == ANSWER_ACCOUNT_LEN => AnswerBody::Account {
                next_nonce: le64(b, 7),
                balance: le64(b, 15),
                staked: le64(b, 23),
                min_fee: le64(b, 31),
                height: le64(b, 39),
            },
            (status::OK, what::TRANSACTION) if b.len() == ANSWER_TRANSACTION_LEN && byte(b, 7) <= state::REFUSED => {
                AnswerBody::Transaction { state: byte(b, 7), height: le64(b, 8), reason: byte(b, 16) }
            }
            _ => return Err(DropReason::BadTx),
        };
        Ok(Answer { request_id, what: w, status: st, body })
    }

    /// Appends the body to `out`: the header, then, with status 0 only,
    /// the fields of `body`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.push(self.what);
        out.push(self.status);
        if self.status != status::OK {
            return;
        }
        match self.body {
            AnswerBody::Account { next_nonce, balance, staked, min_fee, height } => {
                for v in [next_nonce, balance, staked, min_fee, height] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            AnswerBody::Transaction { state, height, reason } => {
                out.push(state);
                out.extend_from_slice(&height.to_le_bytes());
                out.push(reason);
            }
            AnswerBody::None => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn bytes_of(q: &Query) -> Vec<u8> {
        let mut v = Vec::new();
        q.emit(&mut v);
        v
    }

    #[test]
    fn query_rules() {
        let q = Query { request_id: 0x0102_0304, what: QueryWhat::Account([5; 32]) };
        let b = bytes_of(&q);
        assert_eq!(b.len(), 38);
        assert_eq!(&b[..6], &[1, 4, 3, 2, 1, 1]);
        assert_eq!(Query::parse(&b), Ok(q));
        assert_eq!(Query::parse(&b[..37]), Err(DropReason::BadTx));
        let mut long = b.clone();
        long.push(0);
        assert_eq!(Query::parse(&long), Err(DropReason::BadTx));
        let mut v2 = b.clone();
        v2[0] = 2;
        assert_eq!(Query::parse(&v2), Err(DropReason::BadTx));
        let t = Query { request_id: 9, what: QueryWhat::Transaction([6; 32]) };
        assert_eq!(Query::parse(&bytes_of(&t)), Ok(t));
        // Another what: any length from 6 bytes on.
        let o = Query { request_id: 9, what: QueryWhat::Other(16) };
        let ob = bytes_of(&o);
        assert_eq!(ob.len(), 6);
        assert_eq!(Query::parse(&ob), Ok(o));
        let mut ob2 = ob.clone();
        ob2.extend_from_slice(&[0; 50]);
        assert_eq!(Query::parse(&ob2), Ok(o));
        assert_eq!(Query::parse(&ob[..5]), Err(DropReason::BadTx));
        assert_eq!(Query::parse(&[]), Err(DropReason::BadTx));
    }

    #[test]
    fn answer_rules() {
        let acc = Answer {
            request_id: 1,
            what: what::ACCOUNT,
            status: status::OK,
            body: AnswerBody::Account { next_nonce: 5, balance: 6, staked: 7, min_fee: 8, height: 9 },
        };
        let tx = Answer {
            request_id: 2,
            what: what::TRANSACTION,
            status: status::OK,
            body: AnswerBody::Transaction { state: state::REFUSED, height: 0, reason: 4 },
        };
        let q = Query { request_id: 3, what: QueryWhat::Other(17) };
        let ns = Answer::refusal(&q, status::NOT_SERVED);
        for (a, len) in [(acc, 47), (tx, 17), (ns, 7)] {
            let mut b = Vec::new();
            a.emit(&mut b);
            assert_eq!(b.len(), len);
            assert_eq!(Answer::parse(&b), Ok(a));
            assert_eq!(Answer::parse(&b[..len - 1]), Err(DropReason::BadTx));
            b.push(0);
            assert_eq!(Answer::parse(&b), Err(DropReason::BadTx));
        }
        // A non-zero status ends the body whatever `body` holds.
        let mut b = Vec::new();
        Answer { status: status::UNKNOWN, ..acc }.emit(&mut b);
        assert_eq!(b, [1, 1, 0, 0, 0, 1, 1]);
        assert_eq!(Answer::parse(&b).map(|a| a.body), Ok(AnswerBody::None));
        // Unknown status, a state above 3, status 0 for an unserved what, version 2.
        b[6] = 3;
        assert_eq!(Answer::parse(&b), Err(DropReason::BadTx));
        let mut t = Vec::new();
        tx.emit(&mut t);
        t[7] = 4;
        assert_eq!(Answer::parse(&t), Err(DropReason::BadTx));
        assert_eq!(Answer::parse(&[1, 0, 0, 0, 0, 17, 0]), Err(DropReason::BadTx));
        let mut v = Vec::new();
        acc.emit(&mut v);
        v[0] = 2;
        assert_eq!(Answer::parse(&v), Err(DropReason::BadTx));
    }
}
