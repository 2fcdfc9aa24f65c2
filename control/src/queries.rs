//! QUERY and ANSWER (`att-wire.md` v1.1): a client asks its relay, sealed
//! in its session, for an account's state (next nonce, balance, staked,
//! minimum fee, height) or a transaction's (unknown, pending, committed at
//! a height, refused with a reason code). The data cores hand the QUERY
//! bodies over on a bounded ring of their own; the control thread answers
//! at most [`QUERY_CHUNK`] of them per loop iteration, from its own tables.
//!
//! Refusal codes of a transaction's state (the project's, documented in
//! docs/PROTOCOL.md): the ledger's [`Refusal::code`].

use std::collections::HashMap;

use attnet_core::wire::query::{self, Answer, AnswerBody, Query, QueryWhat};

use crate::ledger::{Ledger, Refusal};

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

/// The ANSWER to `q`: account state from `ledger` at `height`, a
/// transaction's from `tx_state`.
pub fn answer(q: &Query, ledger: &Ledger, height: u64, tx_state: impl Fn(&[u8; 32]) -> TxState) -> Answer {
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
        QueryWhat::Other(w) => (w, query::status::NOT_SERVED, AnswerBody::None),
    };
    Answer { request_id: q.request_id, what, status, body }
}

#[cfg(test)]
mod tests {
    use super::*;

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
