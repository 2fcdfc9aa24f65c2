//! QUERY and ANSWER bodies (v1.1; `att-wire.md`, "Share-data header and
//! body"): a client asks its relay, sealed in its session on channel 1005,
//! about an account, a transaction, an inbox or connections; the relay
//! answers. Little-endian.
//!
//! The project serves `what` 1 (account) and 2 (transaction) of the spec and
//! two of its own (docs/PROTOCOL.md, "Handshake, cookies and queries:
//! choices", items 4 and 13): 16, an account's inbox, and
//! 17, its connections, both paged: the QUERY names a start index, the
//! ANSWER carries as many whole entries from there as fit one datagram
//! ([`PageWriter`]) and the client asks again from the next index. A query
//! for any other `what` parses as [`QueryWhat::Other`] and is answered with
//! status [`status::NOT_SERVED`].

use super::{arr32, byte, le16, le32, le64, DropReason, Result};

/// `version` of QUERY and ANSWER bodies.
pub const VERSION: u8 = 1;

/// What a query asks about.
pub mod what {
    /// An account: the body carries its 32-byte key.
    pub const ACCOUNT: u8 = 1;
    /// A transaction: the body carries its 32-byte id.
    pub const TRANSACTION: u8 = 2;
    /// The project's own: an account's inbox, from a record index (the
    /// body carries the 32-byte key and a `u64 LE` start index).
    pub const INBOX: u8 = 16;
    /// The project's own: an account's connections and open requests, from
    /// an entry index (the body carries the 32-byte key and a `u64 LE`
    /// start index).
    pub const CONNECTIONS: u8 = 17;
}

/// Flags of an inbox record in an inbox ANSWER.
pub mod record_flag {
    /// The memo is cut: only its first bytes are carried, because the whole
    /// record does not fit the session's largest frame (a session whose
    /// negotiated `max_pdu_size` is below 1170 bytes).
    pub const CUT: u8 = 0x01;
}

/// How an entry of a connections ANSWER relates to the account asked
/// about.
pub mod relation {
    /// Connected (a request accepted, either way).
    pub const CONNECTED: u8 = 0;
    /// The peer asked the account to connect; not accepted yet.
    pub const REQUEST_IN: u8 = 1;
    /// The account asked the peer to connect; not accepted yet.
    pub const REQUEST_OUT: u8 = 2;
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
/// A QUERY for an inbox or connections: the key and a `u64` start index.
pub const QUERY_PAGED_LEN: usize = QUERY_KEYED_LEN + 8;
/// Version, request id, `what` and status: an ANSWER with a non-zero status.
const ANSWER_HEADER_LEN: usize = 1 + 4 + 1 + 1;
/// An account ANSWER: five `u64`.
const ANSWER_ACCOUNT_LEN: usize = ANSWER_HEADER_LEN + 5 * 8;
/// A transaction ANSWER: state, height, reason.
const ANSWER_TRANSACTION_LEN: usize = ANSWER_HEADER_LEN + 1 + 8 + 1;
/// An inbox ANSWER before its records: total, first, at (`u64` each),
/// count (`u16`).
pub const INBOX_HEAD_LEN: usize = ANSWER_HEADER_LEN + 8 + 8 + 8 + 2;
/// An inbox record before its memo: kind, flags, from, nonce, height, memo
/// length.
pub const RECORD_HEAD_LEN: usize = 1 + 1 + 32 + 8 + 8 + 2;
/// The longest memo a record carries (a transaction's memo limit).
pub const MAX_MEMO: usize = 1024;
/// A connections ANSWER before its entries: total, at (`u64` each), count
/// (`u16`).
pub const CONNECTIONS_HEAD_LEN: usize = ANSWER_HEADER_LEN + 8 + 8 + 2;
/// One connections entry: relation and the peer's key.
pub const ENTRY_LEN: usize = 1 + 32;

/// The subject of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryWhat {
    /// `what` 1: the account with this key.
    Account([u8; 32]),
    /// `what` 2: the transaction with this id.
    Transaction([u8; 32]),
    /// `what` 16: the records addressed to `account`, from record index
    /// `start` (records are numbered from the account's first ever).
    Inbox {
        /// The account.
        account: [u8; 32],
        /// The first record index wanted.
        start: u64,
    },
    /// `what` 17: `account`'s connections and open requests, from entry
    /// index `start`.
    Connections {
        /// The account.
        account: [u8; 32],
        /// The first entry index wanted.
        start: u64,
    },
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
            QueryWhat::Inbox { .. } => what::INBOX,
            QueryWhat::Connections { .. } => what::CONNECTIONS,
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
    /// The exact body length of a QUERY for `what`, if `what` is one the
    /// project serves (1 and 2: 38 bytes; 16 and 17: 46); `None` for any
    /// other (only its 6-byte header is read). The data cores judge QUERY
    /// lengths by this (step 10).
    pub fn body_len(what: u8) -> Option<usize> {
        match what {
            what::ACCOUNT | what::TRANSACTION => Some(QUERY_KEYED_LEN),
            what::INBOX | what::CONNECTIONS => Some(QUERY_PAGED_LEN),
            _ => None,
        }
    }

    /// Reads a QUERY body (step 10): a version other than 1, fewer than 6
    /// bytes, or a `what` the project serves with a body not exactly
    /// [`Query::body_len`] long are `bad_tx`; any other `what` is
    /// [`QueryWhat::Other`] whatever follows.
    pub fn parse(b: &[u8]) -> Result<Query> {
        if b.len() < QUERY_HEADER_LEN || byte(b, 0) != VERSION {
            return Err(DropReason::BadTx);
        }
        let request_id = le32(b, 1);
        let w = byte(b, 5);
        if Query::body_len(w).is_some_and(|n| n != b.len()) {
            return Err(DropReason::BadTx);
        }
        let what = match w {
            what::ACCOUNT => QueryWhat::Account(arr32(b, 6)),
            what::TRANSACTION => QueryWhat::Transaction(arr32(b, 6)),
            what::INBOX => QueryWhat::Inbox { account: arr32(b, 6), start: le64(b, 38) },
            what::CONNECTIONS => QueryWhat::Connections { account: arr32(b, 6), start: le64(b, 38) },
            other => QueryWhat::Other(other),
        };
        Ok(Query { request_id, what })
    }

    /// Appends the body to `out` (6 bytes for [`QueryWhat::Other`], else
    /// [`Query::body_len`]).
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.push(self.what.code());
        match &self.what {
            QueryWhat::Account(k) | QueryWhat::Transaction(k) => out.extend_from_slice(k),
            QueryWhat::Inbox { account, start } | QueryWhat::Connections { account, start } => {
                out.extend_from_slice(account);
                out.extend_from_slice(&start.to_le_bytes());
            }
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
    /// `what` 16, status 0: the head of an inbox page; `count` records
    /// follow it in the body ([`inbox_records`]).
    Inbox {
        /// Records the account ever received (the next record's index).
        total: u64,
        /// The index of the oldest record still held: those below it were
        /// evicted (the inbox keeps the newest `inbox_capacity`).
        first: u64,
        /// The index of this page's first record: the asked start, raised
        /// to `first`, lowered to `total`.
        at: u64,
        /// Records in this page.
        count: u16,
    },
    /// `what` 17, status 0: the head of a connections page; `count`
    /// entries follow it in the body ([`connection_entries`]).
    Connections {
        /// Entries the account has: connected peers, then requests in, then
        /// requests out, each sorted by key.
        total: u64,
        /// The index of this page's first entry (the asked start, lowered
        /// to `total`).
        at: u64,
        /// Entries in this page.
        count: u16,
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
    /// than 1, 2, 16 or 17, a body not exactly as long as its `what` says,
    /// a transaction state above 3 are `bad_tx`; for 16 and 17 also a page
    /// whose entries do not fill the body exactly, `count` times, each one
    /// valid (an inbox record of kind 1-4, flags 0 or 1, a memo of at most
    /// 1024 bytes; a connections entry with a relation 0-2), or whose
    /// indexes do not add up (`first <= at`, `at + count <= total`).
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
            (status::OK, what::INBOX) if b.len() >= INBOX_HEAD_LEN => {
                let (total, first, at, count) = (le64(b, 7), le64(b, 15), le64(b, 23), le16(b, 31));
                let ends = at.checked_add(u64::from(count)).is_some_and(|end| end <= total);
                if first > at || !ends || !whole(InboxRecords::new(b), count) {
                    return Err(DropReason::BadTx);
                }
                AnswerBody::Inbox { total, first, at, count }
            }
            (status::OK, what::CONNECTIONS) if b.len() >= CONNECTIONS_HEAD_LEN => {
                let (total, at, count) = (le64(b, 7), le64(b, 15), le16(b, 23));
                let ends = at.checked_add(u64::from(count)).is_some_and(|end| end <= total);
                if !ends || !whole(ConnectionEntries::new(b), count) {
                    return Err(DropReason::BadTx);
                }
                AnswerBody::Connections { total, at, count }
            }
            _ => return Err(DropReason::BadTx),
        };
        Ok(Answer { request_id, what: w, status: st, body })
    }

    /// Appends the body to `out`: the header, then, with status 0 only,
    /// the fields of `body`. For an inbox or connections page that is the
    /// head alone; its `count` entries must follow ([`PageWriter`] writes
    /// head and entries together).
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
            AnswerBody::Inbox { total, first, at, count } => {
                for v in [total, first, at] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&count.to_le_bytes());
            }
            AnswerBody::Connections { total, at, count } => {
                for v in [total, at] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out.extend_from_slice(&count.to_le_bytes());
            }
            AnswerBody::None => {}
        }
    }
}

/// Whether `it` yields exactly `count` entries and ends the body with the
/// last of them.
fn whole<I: Iterator + Tail>(mut it: I, count: u16) -> bool {
    for _ in 0..count {
        if it.next().is_none() {
            return false;
        }
    }
    it.rest_is_empty()
}

/// Whether a page reader consumed its whole body.
trait Tail {
    fn rest_is_empty(&self) -> bool;
}

/// One record of an inbox ANSWER (`docs/PROTOCOL.md`, "Queries"): kind
/// (`u8`: 1 message, 2 connect-request, 3 connect-accept, 4
/// endpoint-offer), flags (`u8`, [`record_flag`]), from (32), the sender's
/// nonce (`u64 LE`), the height of its block (`u64 LE`), the memo's length
/// (`u16 LE`) and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxRecord<'a> {
    /// The transaction kind (1..=4).
    pub kind: u8,
    /// [`record_flag`] bits.
    pub flags: u8,
    /// The sender.
    pub from: [u8; 32],
    /// The sender's nonce (with `from`, names the transaction).
    pub nonce: u64,
    /// The height of the block the transaction is in.
    pub height: u64,
    /// The memo (cut when [`record_flag::CUT`] is set).
    pub memo: &'a [u8],
}

impl InboxRecord<'_> {
    /// Its length in an ANSWER.
    pub fn wire_len(&self) -> usize {
        RECORD_HEAD_LEN + self.memo.len()
    }
}

/// The records of an inbox ANSWER body, in order. On a body
/// [`Answer::parse`] accepted it yields exactly `count` records; on any
/// other it stops at the first that does not parse (never panics).
#[derive(Debug, Clone)]
pub struct InboxRecords<'a> {
    rest: &'a [u8],
}

impl<'a> InboxRecords<'a> {
    fn new(body: &'a [u8]) -> Self {
        InboxRecords { rest: body.get(INBOX_HEAD_LEN..).unwrap_or(&[]) }
    }
}

impl Tail for InboxRecords<'_> {
    fn rest_is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

impl<'a> Iterator for InboxRecords<'a> {
    type Item = InboxRecord<'a>;

    fn next(&mut self) -> Option<InboxRecord<'a>> {
        let b = self.rest;
        let (kind, flags) = (*b.first()?, *b.get(1)?);
        let memo_len = usize::from(le16(b, 50));
        if b.len() < RECORD_HEAD_LEN
            || !(1..=4).contains(&kind)
            || flags & !record_flag::CUT != 0
            || memo_len > MAX_MEMO
        {
            return None;
        }
        let memo = b.get(RECORD_HEAD_LEN..RECORD_HEAD_LEN + memo_len)?;
        self.rest = b.get(RECORD_HEAD_LEN + memo_len..)?;
        Some(InboxRecord { kind, flags, from: arr32(b, 2), nonce: le64(b, 34), height: le64(b, 42), memo })
    }
}

/// The records of an inbox ANSWER's body `b` (see [`InboxRecords`]).
pub fn inbox_records(b: &[u8]) -> InboxRecords<'_> {
    InboxRecords::new(b)
}

/// The entries of a connections ANSWER body: (relation, peer key), in
/// order. On a body [`Answer::parse`] accepted it yields exactly `count`;
/// on any other it stops at the first that does not parse.
#[derive(Debug, Clone)]
pub struct ConnectionEntries<'a> {
    rest: &'a [u8],
}

impl<'a> ConnectionEntries<'a> {
    fn new(body: &'a [u8]) -> Self {
        ConnectionEntries { rest: body.get(CONNECTIONS_HEAD_LEN..).unwrap_or(&[]) }
    }
}

impl Tail for ConnectionEntries<'_> {
    fn rest_is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

impl Iterator for ConnectionEntries<'_> {
    type Item = (u8, [u8; 32]);

    fn next(&mut self) -> Option<(u8, [u8; 32])> {
        let b = self.rest;
        let rel = *b.first()?;
        if b.len() < ENTRY_LEN || rel > relation::REQUEST_OUT {
            return None;
        }
        self.rest = b.get(ENTRY_LEN..)?;
        Some((rel, arr32(b, 1)))
    }
}

/// The entries of a connections ANSWER's body `b` (see
/// [`ConnectionEntries`]).
pub fn connection_entries(b: &[u8]) -> ConnectionEntries<'_> {
    ConnectionEntries::new(b)
}

/// Writes an inbox or connections ANSWER (status 0): the head, then whole
/// entries while the body stays within `limit` bytes; `count` in the head
/// follows every push. The one exception: an inbox record too long to fit
/// even alone is carried with its memo cut ([`record_flag::CUT`]), so a
/// client paging through always moves on.
#[derive(Debug)]
pub struct PageWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Where the body starts in `out`.
    start: usize,
    /// Where the head's `count` is.
    count_at: usize,
    count: u16,
    limit: usize,
}

impl<'a> PageWriter<'a> {
    /// Starts an inbox page (see [`AnswerBody::Inbox`]) in `out`.
    pub fn inbox(out: &'a mut Vec<u8>, request_id: u32, total: u64, first: u64, at: u64, limit: usize) -> Self {
        let body = AnswerBody::Inbox { total, first, at, count: 0 };
        Self::begin(out, request_id, what::INBOX, body, INBOX_HEAD_LEN - 2, limit)
    }

    /// Starts a connections page (see [`AnswerBody::Connections`]) in `out`.
    pub fn connections(out: &'a mut Vec<u8>, request_id: u32, total: u64, at: u64, limit: usize) -> Self {
        let body = AnswerBody::Connections { total, at, count: 0 };
        Self::begin(out, request_id, what::CONNECTIONS, body, CONNECTIONS_HEAD_LEN - 2, limit)
    }

    fn begin(out: &'a mut Vec<u8>, request_id: u32, w: u8, body: AnswerBody, count_off: usize, limit: usize) -> Self {
        let start = out.len();
        Answer { request_id, what: w, status: status::OK, body }.emit(out);
        PageWriter { out, start, count_at: start + count_off, count: 0, limit }
    }

    fn used(&self) -> usize {
        self.out.len() - self.start
    }

    fn counted(&mut self) {
        self.count += 1;
        if let Some(c) = self.out.get_mut(self.count_at..self.count_at + 2) {
            c.copy_from_slice(&self.count.to_le_bytes());
        }
    }

    /// Appends `r` if it fits whole (or, as the page's first record, cut to
    /// what fits); false if nothing was written: the page is full. A memo
    /// over 1024 bytes is cut to 1024 (no transaction carries one).
    pub fn push_record(&mut self, r: &InboxRecord<'_>) -> bool {
        let room = self.limit.saturating_sub(self.used());
        if self.count == u16::MAX || room < RECORD_HEAD_LEN {
            return false;
        }
        let mut memo = r.memo.get(..MAX_MEMO).unwrap_or(r.memo);
        let mut flags = r.flags & record_flag::CUT;
        if RECORD_HEAD_LEN + memo.len() > room {
            if self.count > 0 {
                return false;
            }
            memo = memo.get(..room - RECORD_HEAD_LEN).unwrap_or(&[]);
            flags |= record_flag::CUT;
        }
        if memo.len() < r.memo.len() {
            flags |= record_flag::CUT;
        }
        self.out.push(r.kind);
        self.out.push(flags);
        self.out.extend_from_slice(&r.from);
        self.out.extend_from_slice(&r.nonce.to_le_bytes());
        self.out.extend_from_slice(&r.height.to_le_bytes());
        self.out.extend_from_slice(&(memo.len() as u16).to_le_bytes());
        self.out.extend_from_slice(memo);
        self.counted();
        true
    }

    /// Appends one connections entry if it fits; false if the page is full.
    pub fn push_entry(&mut self, rel: u8, peer: &[u8; 32]) -> bool {
        if self.count == u16::MAX || self.used() + ENTRY_LEN > self.limit {
            return false;
        }
        self.out.push(rel);
        self.out.extend_from_slice(peer);
        self.counted();
        true
    }

    /// Entries written so far.
    pub fn count(&self) -> u16 {
        self.count
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
        let o = Query { request_id: 9, what: QueryWhat::Other(18) };
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
        let q = Query { request_id: 3, what: QueryWhat::Other(19) };
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

    fn rec(kind: u8, from: u8, nonce: u64, memo: &[u8]) -> InboxRecord<'_> {
        InboxRecord { kind, flags: 0, from: [from; 32], nonce, height: nonce + 100, memo }
    }

    #[test]
    fn paged_queries_are_46_bytes_exactly() {
        for what in [
            QueryWhat::Inbox { account: [7; 32], start: 0x0102_0304_0506_0708 },
            QueryWhat::Connections { account: [8; 32], start: 3 },
        ] {
            let q = Query { request_id: 77, what };
            let b = bytes_of(&q);
            assert_eq!(b.len(), QUERY_PAGED_LEN);
            assert_eq!(Query::body_len(what.code()), Some(46));
            assert_eq!(Query::parse(&b), Ok(q));
            for n in [6, 38, 45] {
                assert_eq!(Query::parse(&b[..n]), Err(DropReason::BadTx), "{n} bytes");
            }
            let mut long = b.clone();
            long.push(0);
            assert_eq!(Query::parse(&long), Err(DropReason::BadTx));
        }
        let b = bytes_of(&Query { request_id: 1, what: QueryWhat::Inbox { account: [7; 32], start: 258 } });
        assert_eq!((b[5], &b[38..]), (16, &[2, 1, 0, 0, 0, 0, 0, 0][..]));
        assert_eq!(Query::body_len(18), None);
    }

    #[test]
    fn an_inbox_page_round_trips_and_holds_whole_records() {
        let memos: Vec<Vec<u8>> = (0..30u8).map(|i| vec![b'a' + i % 26; 100 + usize::from(i)]).collect();
        let mut out = Vec::new();
        let mut w = PageWriter::inbox(&mut out, 5, 40, 10, 12, 1411);
        let mut pushed = 0;
        for (i, m) in memos.iter().enumerate() {
            if !w.push_record(&rec(1 + (i % 4) as u8, i as u8, i as u64, m)) {
                break;
            }
            pushed += 1;
        }
        assert_eq!(w.count(), pushed);
        // 33 + n × (52 + ~100) within 1411: 8 records.
        assert_eq!(pushed, 8);
        assert!(out.len() <= 1411 && out.len() + 52 + 108 > 1411, "{}", out.len());
        let a = Answer::parse(&out).unwrap();
        assert_eq!(a.body, AnswerBody::Inbox { total: 40, first: 10, at: 12, count: 8 });
        let got: Vec<InboxRecord<'_>> = inbox_records(&out).collect();
        assert_eq!(got.len(), 8);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(*r, rec(1 + (i % 4) as u8, i as u8, i as u64, &memos[i]));
        }
        // Emitting the head again gives the same head.
        let mut head = Vec::new();
        a.emit(&mut head);
        assert_eq!(head, out[..INBOX_HEAD_LEN]);
    }

    #[test]
    fn a_record_too_long_for_the_frame_is_cut_only_when_alone() {
        let memo = [b'm'; 1024];
        let mut out = Vec::new();
        // The smallest budget of a session (max_pdu_size 1024): 963 bytes.
        let mut w = PageWriter::inbox(&mut out, 1, 3, 0, 0, 963);
        assert!(w.push_record(&rec(1, 1, 1, &memo)));
        assert!(!w.push_record(&rec(1, 1, 2, b"x")), "the page is full");
        assert_eq!(out.len(), 963);
        let r = inbox_records(&out).next().unwrap();
        assert_eq!((r.flags, r.memo.len()), (record_flag::CUT, 963 - INBOX_HEAD_LEN - RECORD_HEAD_LEN));
        assert!(Answer::parse(&out).is_ok());
        // Second in a page: not written, the next page carries it.
        let mut out = Vec::new();
        let mut w = PageWriter::inbox(&mut out, 1, 3, 0, 0, 963);
        assert!(w.push_record(&rec(1, 1, 1, b"short")));
        assert!(!w.push_record(&rec(1, 1, 2, &memo)));
        assert_eq!(w.count(), 1);
        // Within 1411 bytes the longest record fits whole.
        let mut out = Vec::new();
        let mut w = PageWriter::inbox(&mut out, 1, 1, 0, 0, 1411);
        assert!(w.push_record(&rec(4, 1, 1, &memo)));
        assert_eq!(inbox_records(&out).next().map(|r| (r.flags, r.memo.len())), Some((0, 1024)));
        // A budget below one record head writes nothing.
        let mut out = Vec::new();
        let mut w = PageWriter::inbox(&mut out, 1, 1, 0, 0, INBOX_HEAD_LEN + 10);
        assert!(!w.push_record(&rec(1, 1, 1, b"")));
        assert_eq!(Answer::parse(&out).map(|a| a.body), Ok(AnswerBody::Inbox { total: 1, first: 0, at: 0, count: 0 }));
    }

    #[test]
    fn a_connections_page_round_trips() {
        let mut out = Vec::new();
        let mut w = PageWriter::connections(&mut out, 9, 100, 50, 1411);
        let mut n = 0u8;
        while w.push_entry(n % 3, &[n; 32]) {
            n += 1;
        }
        // (1411 - 25) / 33 entries.
        assert_eq!(n, 42);
        let a = Answer::parse(&out).unwrap();
        assert_eq!(a.body, AnswerBody::Connections { total: 100, at: 50, count: 42 });
        let got: Vec<(u8, [u8; 32])> = connection_entries(&out).collect();
        assert_eq!(got, (0..42u8).map(|i| (i % 3, [i; 32])).collect::<Vec<_>>());
    }

    #[test]
    fn hostile_pages_are_bad_tx_never_a_panic() {
        let mut good = Vec::new();
        let mut w = PageWriter::inbox(&mut good, 1, 5, 1, 2, 1411);
        w.push_record(&rec(1, 1, 1, b"hello"));
        w.push_record(&rec(2, 2, 2, b"connect?"));
        assert!(Answer::parse(&good).is_ok());
        // Every cut of the body, and one byte more.
        for n in 0..good.len() {
            assert_eq!(Answer::parse(&good[..n]), Err(DropReason::BadTx), "{n} bytes");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Answer::parse(&long), Err(DropReason::BadTx));
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            Answer::parse(&b)
        };
        // A count above what follows, a huge count, a count below.
        assert_eq!(bad(&|b| b[31] = 3), Err(DropReason::BadTx));
        assert_eq!(bad(&|b| b[31..33].copy_from_slice(&u16::MAX.to_le_bytes())), Err(DropReason::BadTx));
        assert_eq!(bad(&|b| b[31] = 1), Err(DropReason::BadTx));
        // A memo length beyond the body, or above 1024.
        assert_eq!(bad(&|b| b[33 + 50] = 200), Err(DropReason::BadTx));
        assert_eq!(bad(&|b| b[33 + 50..33 + 52].copy_from_slice(&1025u16.to_le_bytes())), Err(DropReason::BadTx));
        // A kind outside 1..=4, a flag other than CUT.
        assert_eq!(bad(&|b| b[33] = 0), Err(DropReason::BadTx));
        assert_eq!(bad(&|b| b[33] = 5), Err(DropReason::BadTx));
        assert_eq!(bad(&|b| b[34] = 2), Err(DropReason::BadTx));
        // Indexes that do not add up: at + count > total, first > at,
        // at + count overflowing.
        assert_eq!(bad(&|b| b[7] = 3), Err(DropReason::BadTx));
        assert_eq!(bad(&|b| b[15] = 3), Err(DropReason::BadTx));
        assert_eq!(
            bad(&|b| {
                b[7..15].copy_from_slice(&u64::MAX.to_le_bytes());
                b[23..31].copy_from_slice(&u64::MAX.to_le_bytes());
            }),
            Err(DropReason::BadTx)
        );
        // The reader stops at the first broken record.
        let mut b = good.clone();
        b[33 + 52 + 5] = 9;
        assert_eq!(inbox_records(&b).count(), 1);
        assert_eq!(inbox_records(&b[..40]).count(), 0);
        assert_eq!(inbox_records(&[]).count(), 0);
        // Connections: a relation above 2, an entry cut short.
        let mut c = Vec::new();
        let mut w = PageWriter::connections(&mut c, 1, 2, 0, 1411);
        w.push_entry(relation::CONNECTED, &[1; 32]);
        w.push_entry(relation::REQUEST_OUT, &[2; 32]);
        assert!(Answer::parse(&c).is_ok());
        let mut r = c.clone();
        r[25 + 33] = 3;
        assert_eq!(Answer::parse(&r), Err(DropReason::BadTx));
        assert_eq!(connection_entries(&r).count(), 1);
        assert_eq!(Answer::parse(&c[..c.len() - 1]), Err(DropReason::BadTx));
        let mut r = c.clone();
        r[7] = 1;
        assert_eq!(Answer::parse(&r), Err(DropReason::BadTx), "at + count above total");
        // Pseudo-random bodies behind a valid header: parse and read, no
        // panic.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400usize {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for what in [what::INBOX, what::CONNECTIONS] {
                if b.len() >= 7 {
                    b[..7].copy_from_slice(&[1, 0, 0, 0, 0, what, 0]);
                }
                let _ = Answer::parse(&b);
                let _ = inbox_records(&b).count();
                let _ = connection_entries(&b).count();
                let _ = Query::parse(&b);
            }
        }
    }
}
