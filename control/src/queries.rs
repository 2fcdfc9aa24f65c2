//! QUERY and ANSWER (`att-wire.md` v1.1): a client asks its relay, sealed
//! in its session, for an account's state (next nonce, balance, staked,
//! minimum fee, height) or a transaction's (unknown, pending, committed at
//! a height, refused with a reason code), or (the project's own `what` 16
//! and 17, docs/PROTOCOL.md "Queries") a page of an account's inbox or of
//! its connections and open requests. The data cores hand the QUERY
//! bodies over on a bounded ring of their own; the control thread answers
//! at most [`QUERY_CHUNK`] of them per loop iteration, from its own tables.
//!
//! Refusal codes of a transaction's state (the project's, documented in
//! docs/PROTOCOL.md): the ledger's [`Refusal::code`].

use std::collections::HashMap;

use attnet_core::wire::query::{self, Answer, AnswerBody, InboxRecord, PageWriter, Query, QueryWhat};

use crate::ledger::{Ledger, Refusal};
use crate::state::{Link, State};

/// Queries one control-loop iteration answers at most.
pub const QUERY_CHUNK: usize = 1024;

/// What queries did, for the summary: `received == answered +
/// stale_session + malformed` (the cores' overload items are added by the
/// node).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCounters {
    /// Items taken off the cores' query rings.
    pub received: u64,
    /// ANSWERs sealed (`sent` of them left).
    pub answered: u64,
    pub sent: u64,
    /// The session ended (or its id has a new holder) before the answer.
    pub stale_session: u64,
    /// Bodies that do not parse (the cores checked them; never expected).
    pub malformed: u64,
}

impl QueryCounters {
    /// The summary's `queries` object with the cores' counts added.
    pub fn to_json(&self, core_items: u64, core_overload: u64) -> serde_json::Value {
        serde_json::json!({
            "received": core_items,
            "answered": self.answered,
            "sent": self.sent,
            "stale_session": self.stale_session,
            "malformed": self.malformed,
            "overload": core_overload,
        })
    }
}

impl Refusal {
    /// The refusal reason code of a transaction's state in an ANSWER
    /// (`0` means not refused): 1 + the refusal's place in [`Refusal::ALL`]
    /// (`docs/PROTOCOL.md` has the table).
    pub fn code(self) -> u8 {
        // At most 17 refusals: the code fits a byte.
        u8::try_from(self.index() + 1).unwrap_or(u8::MAX)
    }

    /// The refusal of an ANSWER's reason code; `None` for 0 and for codes
    /// this build does not know.
    pub fn from_code(code: u8) -> Option<Refusal> {
        Refusal::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

/// Ids of transactions sealed in blocks, with their heights: the last
/// `cap / 2` to `cap`, in two generations sized at start (as the runner's
/// other tables).
pub struct CommittedIds {
    young: HashMap<[u8; 32], u64>,
    old: HashMap<[u8; 32], u64>,
    half: usize,
}

impl CommittedIds {
    /// Room for `cap` ids, its memory touched.
    pub fn new(cap: usize) -> Self {
        let half = (cap / 2).max(1);
        let mut c = CommittedIds { young: HashMap::with_capacity(half), old: HashMap::with_capacity(half), half };
        for gen in [&mut c.young, &mut c.old] {
            for i in 0..half {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&(i as u64).to_le_bytes());
                gen.insert(k, 0);
            }
            gen.clear();
        }
        c
    }

    /// Records that `id` was sealed at `height`.
    pub fn insert(&mut self, id: [u8; 32], height: u64) {
        if self.young.len() >= self.half {
            self.old.clear();
            std::mem::swap(&mut self.young, &mut self.old);
        }
        self.young.insert(id, height);
    }

    /// The height `id` was sealed at, if remembered.
    pub fn height(&self, id: &[u8; 32]) -> Option<u64> {
        self.young.get(id).or_else(|| self.old.get(id)).copied()
    }
}

/// What the control thread knows of one transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    Unknown,
    Pending,
    Committed(u64),
    Refused(u8),
}

/// Writes the ANSWER body to `q` into `out`: account state from `ledger`
/// at `height`, a transaction's from `tx_state`, an inbox or connections
/// page from the ledger's state, within `limit` bytes (the session's
/// largest reply body, [`attnet_core::emit::reply_body_limit`]).
pub fn answer(
    q: &Query,
    ledger: &Ledger,
    height: u64,
    tx_state: impl Fn(&[u8; 32]) -> TxState,
    limit: usize,
    out: &mut Vec<u8>,
) {
    let (what, status, body) = match q.what {
        QueryWhat::Account(key) => match ledger.account(&key) {
            Some(a) => (
                query::what::ACCOUNT,
                query::status::OK,
                AnswerBody::Account {
                    next_nonce: ledger.next_nonce(&key),
                    balance: a.balance,
                    staked: a.staked,
                    min_fee: ledger.min_fee(),
                    height,
                },
            ),
            None => (query::what::ACCOUNT, query::status::UNKNOWN, AnswerBody::None),
        },
        QueryWhat::Transaction(id) => {
            let (state, h, reason) = match tx_state(&id) {
                TxState::Unknown => (query::state::UNKNOWN, 0, 0),
                TxState::Pending => (query::state::PENDING, 0, 0),
                TxState::Committed(h) => (query::state::COMMITTED, h, 0),
                TxState::Refused(code) => (query::state::REFUSED, 0, code),
            };
            (query::what::TRANSACTION, query::status::OK, AnswerBody::Transaction { state, height: h, reason })
        }
        QueryWhat::Inbox { account, start } if ledger.account(&account).is_some() => {
            return inbox_page(ledger.state(), q.request_id, &account, start, limit, out);
        }
        QueryWhat::Connections { account, start } if ledger.account(&account).is_some() => {
            return connections_page(ledger.state(), q.request_id, &account, start, limit, out);
        }
        QueryWhat::Inbox { .. } | QueryWhat::Connections { .. } => {
            (q.what.code(), query::status::UNKNOWN, AnswerBody::None)
        }
        QueryWhat::Other(w) => (w, query::status::NOT_SERVED, AnswerBody::None),
    };
    Answer { request_id: q.request_id, what, status, body }.emit(out);
}

/// An inbox page: records numbered from the account's first ever; the page
/// starts at `start`, raised to the oldest record held (those below were
/// evicted), and holds as many whole records as fit `limit`.
fn inbox_page(st: &State, request_id: u32, key: &[u8; 32], start: u64, limit: usize, out: &mut Vec<u8>) {
    let total = st.inbox_received(key);
    let first = total - st.inbox_len(key) as u64;
    let at = start.clamp(first, total);
    let mut w = PageWriter::inbox(out, request_id, total, first, at, limit);
    // `at - first` is below the inbox's length, a usize.
    for r in st.inbox(key).skip((at - first) as usize) {
        let rec =
            InboxRecord { kind: r.kind as u8, flags: 0, from: r.from, nonce: r.nonce, height: r.height, memo: &r.memo };
        if !w.push_record(&rec) {
            break;
        }
    }
}

/// A connections page: connected peers, requests in, requests out (each
/// sorted by key), from entry `start`, as many as fit `limit`.
fn connections_page(st: &State, request_id: u32, key: &[u8; 32], start: u64, limit: usize, out: &mut Vec<u8>) {
    let total = st.link_count(key) as u64;
    let at = start.min(total);
    let mut w = PageWriter::connections(out, request_id, total, at, limit);
    // `at` is at most `total`, a usize.
    for (link, peer) in st.links_from(key, at as usize) {
        let rel = match link {
            Link::Connected => query::relation::CONNECTED,
            Link::RequestIn => query::relation::REQUEST_IN,
            Link::RequestOut => query::relation::REQUEST_OUT,
        };
        if !w.push_entry(rel, peer) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{Genesis, GenesisAccount};
    use crate::ledger::LedgerConfig;
    use attnet_core::emit::reply_body_limit;
    use attnet_core::wire::query::{connection_entries, inbox_records, record_flag, relation};
    use attnet_core::wire::tx::{Kind, Repr};

    const A: [u8; 32] = [0xA; 32];
    const B: [u8; 32] = [0xB; 32];
    const C: [u8; 32] = [0xC; 32];
    const D: [u8; 32] = [0x0D; 32];

    fn ledger(inbox_capacity: usize) -> Ledger {
        let accounts = [A, B, C, D].map(|key| GenesisAccount { key, balance: 1_000_000 });
        let g = Genesis::new(1, accounts).unwrap();
        Ledger::new(&g, LedgerConfig { inbox_capacity, ..LedgerConfig::default() })
    }

    fn apply(l: &mut Ledger, kind: Kind, from: [u8; 32], to: [u8; 32], memo: &[u8]) {
        let nonce = l.next_nonce(&from);
        let r = Repr { kind, from, to, nonce, amount: 0, fee: 1, memo, signature: [0x55; 64] };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b).unwrap();
        assert_eq!(l.submit(&b, 0, &mut |_| {}), Ok(()));
    }

    fn ask(l: &Ledger, what: QueryWhat, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        answer(&Query { request_id: 7, what }, l, 3, |_| TxState::Unknown, limit, &mut out);
        assert!(out.len() <= limit, "{} > {limit}", out.len());
        out
    }

    /// Records as (memo, from).
    type Memos = Vec<(Vec<u8>, [u8; 32])>;

    /// Pages through `account`'s inbox from `start` as a client does; the
    /// records and the answers' `(total, first, at)`.
    fn read_inbox(l: &Ledger, account: [u8; 32], limit: usize) -> (Memos, Vec<(u64, u64, u64)>) {
        let (mut got, mut heads, mut start) = (Vec::new(), Vec::new(), 0);
        for _ in 0..100 {
            let b = ask(l, QueryWhat::Inbox { account, start }, limit);
            let a = Answer::parse(&b).unwrap();
            let AnswerBody::Inbox { total, first, at, count } = a.body else { panic!("{a:?}") };
            heads.push((total, first, at));
            got.extend(inbox_records(&b).map(|r| (r.memo.to_vec(), r.from)));
            start = at + u64::from(count);
            if start >= total {
                return (got, heads);
            }
        }
        panic!("no end");
    }

    #[test]
    fn inbox_pages_cover_every_record_held_in_order() {
        let mut l = ledger(8);
        // Twelve messages to B, of 300 bytes each: four go (capacity 8).
        for i in 0..12u8 {
            let from = if i % 2 == 0 { A } else { C };
            apply(&mut l, Kind::Message, from, B, &[b'a' + i; 300]);
        }
        let (got, heads) = read_inbox(&l, B, reply_body_limit(u16::MAX));
        let want: Memos = (4..12u8).map(|i| (vec![b'a' + i; 300], if i % 2 == 0 { A } else { C })).collect();
        assert_eq!(got, want);
        // 1411 bytes hold the 33-byte head and 3 records of 352: three
        // pages; the first starts at the oldest held (4), not at 0.
        assert_eq!(heads, [(12, 4, 4), (12, 4, 7), (12, 4, 10)]);
        // Asked from the end or past it: an empty page at `total`.
        let b = ask(&l, QueryWhat::Inbox { account: B, start: 99 }, 1411);
        let a = Answer::parse(&b).unwrap();
        assert_eq!(a.body, AnswerBody::Inbox { total: 12, first: 4, at: 12, count: 0 });
        // The smallest session budget (max_pdu_size 1024): pages of two.
        let (got_small, heads) = read_inbox(&l, B, reply_body_limit(1024));
        assert_eq!((got_small, heads.len()), (want, 4));
        // A has no records; D none either; an unknown account is status 1.
        assert_eq!(read_inbox(&l, A, 1411), (vec![], vec![(0, 0, 0)]));
        let b = ask(&l, QueryWhat::Inbox { account: [0xEE; 32], start: 0 }, 1411);
        assert_eq!(b, [1, 7, 0, 0, 0, 16, 1]);
    }

    #[test]
    fn a_record_longer_than_a_small_session_budget_comes_cut() {
        let mut l = ledger(4);
        apply(&mut l, Kind::Message, A, B, &[b'x'; 1024]);
        apply(&mut l, Kind::Message, A, B, b"after");
        let b = ask(&l, QueryWhat::Inbox { account: B, start: 0 }, reply_body_limit(1024));
        let r: Vec<_> = inbox_records(&b).collect();
        assert_eq!((r.len(), r[0].flags, r[0].memo.len()), (1, record_flag::CUT, 963 - 33 - 52));
        let b = ask(&l, QueryWhat::Inbox { account: B, start: 0 }, reply_body_limit(u16::MAX));
        let r: Vec<_> = inbox_records(&b).collect();
        assert_eq!((r.len(), r[0].flags, r[0].memo.len(), r[1].memo), (2, 0, 1024, &b"after"[..]));
        assert_eq!((r[0].kind, r[0].nonce, r[0].height, r[1].nonce), (Kind::Message as u8, 1, 1, 2));
    }

    #[test]
    fn connections_list_connected_then_requests_in_then_out() {
        let mut l = ledger(8);
        apply(&mut l, Kind::ConnectRequest, A, B, b"work");
        apply(&mut l, Kind::ConnectAccept, B, A, b"");
        apply(&mut l, Kind::ConnectRequest, C, B, b"hi");
        apply(&mut l, Kind::ConnectRequest, B, D, b"hey");
        // Every start, across the three lists' boundaries, found directly.
        let all: Vec<_> = l.state().links(&B).collect();
        for n in 0..=4 {
            assert_eq!(l.state().links_from(&B, n).collect::<Vec<_>>(), all.get(n..).unwrap_or(&[]), "from {n}");
        }
        let b = ask(&l, QueryWhat::Connections { account: B, start: 0 }, 1411);
        assert_eq!(Answer::parse(&b).map(|a| a.body), Ok(AnswerBody::Connections { total: 3, at: 0, count: 3 }));
        let got: Vec<_> = connection_entries(&b).collect();
        assert_eq!(got, [(relation::CONNECTED, A), (relation::REQUEST_IN, C), (relation::REQUEST_OUT, D)]);
        let b = ask(&l, QueryWhat::Connections { account: A, start: 0 }, 1411);
        assert_eq!(connection_entries(&b).collect::<Vec<_>>(), [(relation::CONNECTED, B)]);
        // From entry 2; a page of one entry; past the end.
        let b = ask(&l, QueryWhat::Connections { account: B, start: 2 }, 1411);
        assert_eq!(connection_entries(&b).collect::<Vec<_>>(), [(relation::REQUEST_OUT, D)]);
        let b = ask(&l, QueryWhat::Connections { account: B, start: 1 }, 25 + 33);
        assert_eq!(Answer::parse(&b).map(|a| a.body), Ok(AnswerBody::Connections { total: 3, at: 1, count: 1 }));
        let b = ask(&l, QueryWhat::Connections { account: B, start: u64::MAX }, 1411);
        assert_eq!(Answer::parse(&b).map(|a| a.body), Ok(AnswerBody::Connections { total: 3, at: 3, count: 0 }));
        let b = ask(&l, QueryWhat::Connections { account: [0xEE; 32], start: 0 }, 1411);
        assert_eq!(Answer::parse(&b).map(|a| a.status), Ok(query::status::UNKNOWN));
    }

    #[test]
    fn many_connections_page_by_42() {
        let keys: Vec<[u8; 32]> = (0..100u8).map(|i| [i; 32]).collect();
        let mut accounts: Vec<GenesisAccount> = keys.iter().map(|&key| GenesisAccount { key, balance: 10 }).collect();
        accounts.push(GenesisAccount { key: [0xFF; 32], balance: 10 });
        let mut l = Ledger::new(&Genesis::new(1, accounts).unwrap(), LedgerConfig::default());
        for k in keys.iter().rev() {
            apply(&mut l, Kind::ConnectRequest, *k, [0xFF; 32], b"");
        }
        let (mut start, mut seen, mut pages) = (0, Vec::new(), 0);
        while pages < 10 {
            let b = ask(&l, QueryWhat::Connections { account: [0xFF; 32], start }, 1411);
            let Ok(Answer { body: AnswerBody::Connections { total, at, count }, .. }) = Answer::parse(&b) else {
                panic!()
            };
            seen.extend(connection_entries(&b).map(|(r, k)| (r, k[0])));
            pages += 1;
            start = at + u64::from(count);
            if start >= total {
                break;
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..100u8).map(|i| (relation::REQUEST_IN, i)).collect::<Vec<_>>(), "sorted by key");
    }

    #[test]
    fn other_whats_are_not_served() {
        let l = ledger(1);
        assert_eq!(ask(&l, QueryWhat::Other(18), 1411), [1, 7, 0, 0, 0, 18, 2]);
    }

    #[test]
    fn committed_ids_keep_two_generations() {
        let mut c = CommittedIds::new(4);
        for i in 0..5u8 {
            c.insert([i; 32], u64::from(i) + 10);
        }
        // Generations of two: [0] and [1] went with the first one.
        assert_eq!(c.height(&[1; 32]), None);
        assert_eq!(c.height(&[2; 32]), Some(12));
        assert_eq!(c.height(&[4; 32]), Some(14));
    }

    #[test]
    fn refusal_codes_round_trip_and_zero_is_none() {
        for code in 1..=Refusal::COUNT as u8 {
            assert_eq!(Refusal::from_code(code).map(Refusal::code), Some(code));
        }
        assert_eq!(Refusal::from_code(0), None);
        assert_eq!(Refusal::from_code(Refusal::COUNT as u8 + 1), None);
        assert_eq!(Refusal::NoAccount.code(), 6, "codes of the first six never change");
    }
}
