//! The consensus messages between validators: the body of an ATT frame on
//! channel 1006 (content kind 0x50), little-endian like everything inside
//! the security header. Layouts are in `docs/PROTOCOL.md` ("Consensus
//! messages"); [`signing_bytes`] is what a vote or proposal signature covers.
//!
//! Decoding never panics and bounds every length before it allocates.

use arc_malachitebft_core_types::{NilOrVal, Round, VoteType};

use super::context::{Address, BlockId, Height, Proposal, Sig, Vote};
use crate::merkle::Hash;

/// Message type bytes (the first byte of the body).
pub mod kind {
    pub const PROPOSAL: u8 = 0x01;
    pub const VOTE: u8 = 0x02;
    pub const BLOCK: u8 = 0x03;
    pub const STATUS: u8 = 0x04;
    pub const DECIDED: u8 = 0x05;
    pub const POLKA: u8 = 0x06;
    pub const ROUND_CERT: u8 = 0x07;
    pub const TXS: u8 = 0x08;
}

/// Domain separation for consensus signatures: a signature made for one
/// network (genesis hash) never verifies on another.
pub const SIGNING_DOMAIN: &[u8; 16] = b"attnet/bft/v1\0\0\0";

/// The largest block body a message may carry (bytes).
pub const MAX_BODY: usize = 8 << 20;

/// The most commit signatures a certificate may carry (seats are at most
/// this many).
pub const MAX_SIGNATURES: usize = 1024;

/// The most transactions one `Txs` message carries.
pub const MAX_FORWARDED: usize = 4096;

const NIL_ROUND: u32 = u32::MAX;

/// A consensus message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A signed proposal (the block hash; the block travels as `Block`).
    Proposal(Proposal, Sig),
    /// A signed prevote or precommit.
    Vote(Vote, Sig),
    /// A proposed block's bytes; identified by their hash, so unsigned.
    Block { height: Height, body: Vec<u8> },
    /// The sender's current height (it has finalized `height - 1`).
    Status { height: Height },
    /// A finalized block with its commit certificate, for a node catching up.
    Decided { height: Height, round: Round, body: Vec<u8>, signatures: Vec<(Address, Sig)> },
    /// Prevotes of more than 2/3 of the seats for one block in one round
    /// (a polka), so that a peer that missed them can accept a re-proposal.
    Polka { height: Height, round: Round, value: BlockId, signatures: Vec<(Address, Sig)> },
    /// Votes that let a peer skip to `round` (f+1 of any kind: `precommit`
    /// false) or leave it (2f+1 precommits: `precommit` true).
    RoundCert { height: Height, round: Round, precommit: bool, votes: Vec<RoundVote> },
    /// Transactions a validator's clients sent it, forwarded to the other
    /// validators so that whichever proposes next has them. Each is a
    /// whole signed transaction; the receiver checks everything again.
    Txs { txs: Vec<Vec<u8>> },
}

/// One vote of a round certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundVote {
    pub kind: VoteType,
    pub value: NilOrVal<BlockId>,
    pub voter: Address,
    pub sig: Sig,
}

/// Why a body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    UnknownKind(u8),
    BadField,
    TooLarge,
    TrailingBytes,
}

pub(crate) fn put_round(out: &mut Vec<u8>, r: Round) {
    out.extend_from_slice(&r.as_u32().unwrap_or(NIL_ROUND).to_le_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &NilOrVal<BlockId>) {
    match v {
        NilOrVal::Nil => out.extend_from_slice(&[0; 33]),
        NilOrVal::Val(id) => {
            out.push(1);
            out.extend_from_slice(&id.0);
        }
    }
}

fn vote_kind(k: VoteType) -> u8 {
    match k {
        VoteType::Prevote => 1,
        VoteType::Precommit => 2,
    }
}

fn put_signatures(out: &mut Vec<u8>, signatures: &[(Address, Sig)]) {
    out.extend_from_slice(&(signatures.len() as u16).to_le_bytes());
    for (a, s) in signatures {
        out.extend_from_slice(&a.0);
        out.extend_from_slice(&s.0);
    }
}

fn proposal_fields(out: &mut Vec<u8>, p: &Proposal) {
    out.push(kind::PROPOSAL);
    out.extend_from_slice(&p.height.0.to_le_bytes());
    put_round(out, p.round);
    put_round(out, p.pol_round);
    out.extend_from_slice(&p.value.0);
    out.extend_from_slice(&p.proposer.0);
}

fn vote_fields(out: &mut Vec<u8>, v: &Vote) {
    out.push(kind::VOTE);
    out.push(vote_kind(v.kind));
    out.extend_from_slice(&v.height.0.to_le_bytes());
    put_round(out, v.round);
    put_value(out, &v.value);
    out.extend_from_slice(&v.voter.0);
}

/// The bytes a signature covers: the domain, the network's genesis hash,
/// then the message's fields as encoded (without the signature).
pub fn signing_bytes(chain: &Hash, msg: SignedPart<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(SIGNING_DOMAIN);
    out.extend_from_slice(chain);
    match msg {
        SignedPart::Proposal(p) => proposal_fields(&mut out, p),
        SignedPart::Vote(v) => vote_fields(&mut out, v),
    }
    out
}

/// The signer of an encoded proposal or vote, without checking its
/// signature; `None` for anything else.
pub fn signer(bytes: &[u8]) -> Option<[u8; 32]> {
    match Message::decode(bytes).ok()? {
        Message::Vote(v, _) => Some(v.voter.0),
        Message::Proposal(p, _) => Some(p.proposer.0),
        _ => None,
    }
}

/// What a consensus signature is made over.
#[derive(Clone, Copy, Debug)]
pub enum SignedPart<'a> {
    Proposal(&'a Proposal),
    Vote(&'a Vote),
}

/// The body of a [`Message::Txs`] of the transactions `txs` yields, at
/// most [`MAX_FORWARDED`] of them (the rest are left out), without
/// copying them into a message first; and how many it holds.
pub fn encode_txs<'a>(txs: impl Iterator<Item = &'a [u8]>) -> (Vec<u8>, usize) {
    let mut out = vec![kind::TXS, 0, 0];
    let mut n = 0u16;
    for t in txs.take(MAX_FORWARDED) {
        out.extend_from_slice(&(t.len() as u16).to_le_bytes());
        out.extend_from_slice(t);
        n += 1;
    }
    out[1..3].copy_from_slice(&n.to_le_bytes());
    (out, usize::from(n))
}

impl Message {
    /// The body of a channel-1006 frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        match self {
            Message::Proposal(p, s) => {
                proposal_fields(&mut out, p);
                out.extend_from_slice(&s.0);
            }
            Message::Vote(v, s) => {
                vote_fields(&mut out, v);
                out.extend_from_slice(&s.0);
            }
            Message::Block { height, body } => {
                out.reserve(body.len());
                out.push(kind::BLOCK);
                out.extend_from_slice(&height.0.to_le_bytes());
                out.extend_from_slice(&(body.len() as u32).to_le_bytes());
                out.extend_from_slice(body);
            }
            Message::Status { height } => {
                out.push(kind::STATUS);
                out.extend_from_slice(&height.0.to_le_bytes());
            }
            Message::Decided { height, round, body, signatures } => {
                out.reserve(body.len() + signatures.len() * 96);
                out.push(kind::DECIDED);
                out.extend_from_slice(&height.0.to_le_bytes());
                put_round(&mut out, *round);
                out.extend_from_slice(&(body.len() as u32).to_le_bytes());
                out.extend_from_slice(body);
                put_signatures(&mut out, signatures);
            }
            Message::Polka { height, round, value, signatures } => {
                out.push(kind::POLKA);
                out.extend_from_slice(&height.0.to_le_bytes());
                put_round(&mut out, *round);
                out.extend_from_slice(&value.0);
                put_signatures(&mut out, signatures);
            }
            Message::RoundCert { height, round, precommit, votes } => {
                out.reserve(votes.len() * 130);
                out.push(kind::ROUND_CERT);
                out.extend_from_slice(&height.0.to_le_bytes());
                put_round(&mut out, *round);
                out.push(u8::from(*precommit));
                out.extend_from_slice(&(votes.len() as u16).to_le_bytes());
                for v in votes {
                    out.push(vote_kind(v.kind));
                    put_value(&mut out, &v.value);
                    out.extend_from_slice(&v.voter.0);
                    out.extend_from_slice(&v.sig.0);
                }
            }
            Message::Txs { txs } => {
                out.reserve(3 + txs.iter().map(|t| 2 + t.len()).sum::<usize>());
                out.push(kind::TXS);
                out.extend_from_slice(&(txs.len() as u16).to_le_bytes());
                for t in txs {
                    out.extend_from_slice(&(t.len() as u16).to_le_bytes());
                    out.extend_from_slice(t);
                }
            }
        }
        out
    }

    /// Parses a channel-1006 body. Every byte must be used.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader(bytes);
        let msg = match r.u8()? {
            kind::PROPOSAL => {
                let height = Height(r.u64()?);
                let round = r.round()?;
                let pol_round = r.round()?;
                let value = BlockId(r.array()?);
                let proposer = Address(r.array()?);
                if !round.is_defined() {
                    return Err(DecodeError::BadField);
                }
                Message::Proposal(Proposal { height, round, value, pol_round, proposer }, Sig(r.array()?))
            }
            kind::VOTE => {
                let kind = r.vote_kind()?;
                let height = Height(r.u64()?);
                let round = r.round()?;
                let value = r.value()?;
                let voter = Address(r.array()?);
                if !round.is_defined() {
                    return Err(DecodeError::BadField);
                }
                Message::Vote(Vote { kind, height, round, value, voter }, Sig(r.array()?))
            }
            kind::BLOCK => {
                let height = Height(r.u64()?);
                let body = r.body()?;
                Message::Block { height, body }
            }
            kind::STATUS => Message::Status { height: Height(r.u64()?) },
            kind::DECIDED => {
                let height = Height(r.u64()?);
                let round = r.round()?;
                if !round.is_defined() {
                    return Err(DecodeError::BadField);
                }
                let body = r.body()?;
                let signatures = r.signatures()?;
                Message::Decided { height, round, body, signatures }
            }
            kind::POLKA => {
                let height = Height(r.u64()?);
                let round = r.defined_round()?;
                let value = BlockId(r.array()?);
                let signatures = r.signatures()?;
                Message::Polka { height, round, value, signatures }
            }
            kind::ROUND_CERT => {
                let height = Height(r.u64()?);
                let round = r.defined_round()?;
                let precommit = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::BadField),
                };
                let n = r.count(1 + 33 + 32 + 64)?;
                let mut votes = Vec::with_capacity(n);
                for _ in 0..n {
                    votes.push(RoundVote {
                        kind: r.vote_kind()?,
                        value: r.value()?,
                        voter: Address(r.array()?),
                        sig: Sig(r.array()?),
                    });
                }
                Message::RoundCert { height, round, precommit, votes }
            }
            kind::TXS => {
                let n = usize::from(u16::from_le_bytes(r.array()?));
                if n > MAX_FORWARDED {
                    return Err(DecodeError::TooLarge);
                }
                // Each transaction takes at least its 2-byte length.
                if r.0.len() < n * 2 {
                    return Err(DecodeError::Truncated);
                }
                let mut txs = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = usize::from(u16::from_le_bytes(r.array()?));
                    txs.push(r.take(len)?.to_vec());
                }
                Message::Txs { txs }
            }
            k => return Err(DecodeError::UnknownKind(k)),
        };
        if !r.0.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(msg)
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.take(N)?.try_into().map_err(|_| DecodeError::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn round(&mut self) -> Result<Round, DecodeError> {
        match u32::from_le_bytes(self.array()?) {
            NIL_ROUND => Ok(Round::Nil),
            r if r <= i32::MAX as u32 => Ok(Round::new(r)),
            _ => Err(DecodeError::BadField),
        }
    }

    pub(crate) fn defined_round(&mut self) -> Result<Round, DecodeError> {
        let r = self.round()?;
        if r.is_defined() {
            Ok(r)
        } else {
            Err(DecodeError::BadField)
        }
    }

    pub(crate) fn vote_kind(&mut self) -> Result<VoteType, DecodeError> {
        match self.u8()? {
            1 => Ok(VoteType::Prevote),
            2 => Ok(VoteType::Precommit),
            _ => Err(DecodeError::BadField),
        }
    }

    pub(crate) fn value(&mut self) -> Result<NilOrVal<BlockId>, DecodeError> {
        match (self.u8()?, self.array::<32>()?) {
            (0, id) if id == [0; 32] => Ok(NilOrVal::Nil),
            (1, id) => Ok(NilOrVal::Val(BlockId(id))),
            _ => Err(DecodeError::BadField),
        }
    }

    /// A u16 count of items of `size` bytes, checked against the bound and
    /// the bytes left before anything is allocated.
    pub(crate) fn count(&mut self, size: usize) -> Result<usize, DecodeError> {
        let n = usize::from(u16::from_le_bytes(self.array()?));
        if n > MAX_SIGNATURES {
            return Err(DecodeError::TooLarge);
        }
        if self.0.len() < n * size {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    pub(crate) fn signatures(&mut self) -> Result<Vec<(Address, Sig)>, DecodeError> {
        let n = self.count(96)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((Address(self.array()?), Sig(self.array()?)));
        }
        Ok(v)
    }

    pub(crate) fn body(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len > MAX_BODY {
            return Err(DecodeError::TooLarge);
        }
        Ok(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        let p = Proposal {
            height: Height(7),
            round: Round::new(2),
            value: BlockId([3; 32]),
            pol_round: Round::Nil,
            proposer: Address([4; 32]),
        };
        let v = Vote {
            kind: VoteType::Precommit,
            height: Height(7),
            round: Round::new(2),
            value: NilOrVal::Val(BlockId([3; 32])),
            voter: Address([5; 32]),
        };
        let nil = Vote { kind: VoteType::Prevote, value: NilOrVal::Nil, ..v.clone() };
        vec![
            Message::Proposal(p, Sig([9; 64])),
            Message::Vote(v, Sig([8; 64])),
            Message::Vote(nil, Sig([7; 64])),
            Message::Block { height: Height(7), body: vec![1, 2, 3] },
            Message::Status { height: Height(12) },
            Message::Decided {
                height: Height(7),
                round: Round::new(0),
                body: vec![6; 40],
                signatures: vec![(Address([1; 32]), Sig([2; 64]))],
            },
            Message::Polka {
                height: Height(7),
                round: Round::new(1),
                value: BlockId([3; 32]),
                signatures: vec![(Address([1; 32]), Sig([2; 64])); 3],
            },
            Message::RoundCert {
                height: Height(7),
                round: Round::new(4),
                precommit: false,
                votes: vec![
                    RoundVote {
                        kind: VoteType::Prevote,
                        value: NilOrVal::Nil,
                        voter: Address([1; 32]),
                        sig: Sig([2; 64]),
                    },
                    RoundVote {
                        kind: VoteType::Precommit,
                        value: NilOrVal::Val(BlockId([3; 32])),
                        voter: Address([4; 32]),
                        sig: Sig([5; 64]),
                    },
                ],
            },
            Message::Txs { txs: vec![vec![1, 2, 3], vec![], vec![9; 300]] },
            Message::Txs { txs: vec![] },
        ]
    }

    #[test]
    fn every_message_round_trips_and_every_truncation_is_refused() {
        for m in samples() {
            let b = m.encode();
            assert_eq!(Message::decode(&b), Ok(m.clone()));
            for cut in 0..b.len() {
                assert!(Message::decode(&b[..cut]).is_err(), "{m:?} cut at {cut}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(Message::decode(&longer), Err(DecodeError::TrailingBytes));
        }
    }

    #[test]
    fn a_signature_covers_the_network_and_every_field() {
        let chain = [1; 32];
        let Message::Vote(v, _) = &samples()[1] else { unreachable!() };
        let base = signing_bytes(&chain, SignedPart::Vote(v));
        assert_ne!(base, signing_bytes(&[2; 32], SignedPart::Vote(v)));
        let other = Vote { round: Round::new(3), ..v.clone() };
        assert_ne!(base, signing_bytes(&chain, SignedPart::Vote(&other)));
        let prevote = Vote { kind: VoteType::Prevote, ..v.clone() };
        assert_ne!(base, signing_bytes(&chain, SignedPart::Vote(&prevote)));
    }

    #[test]
    fn lengths_are_bounded_before_allocation() {
        let mut b = vec![kind::BLOCK];
        b.extend_from_slice(&7u64.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Message::decode(&b), Err(DecodeError::TooLarge));
        assert_eq!(Message::decode(&[0xee]), Err(DecodeError::UnknownKind(0xee)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Any bytes: a message or a refusal, never a panic; what decodes
        /// encodes back to the same bytes (one encoding per message).
        #[test]
        fn any_bytes_decode_or_are_refused_and_decoding_is_canonical(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), kind in 1u8..=7) {
            let mut bytes = b;
            if let Some(first) = bytes.first_mut() {
                *first = kind;
            }
            if let Ok(m) = Message::decode(&bytes) {
                proptest::prop_assert_eq!(m.encode(), bytes);
            }
        }

        /// A valid message with one byte changed: refused, or another
        /// message whose encoding is exactly the changed bytes.
        #[test]
        fn a_changed_byte_is_refused_or_read_canonically(which in 0usize..8, at in 0usize..400, x in 1u8..=255) {
            let all = samples();
            let mut bytes = all[which % all.len()].encode();
            let i = at % bytes.len();
            bytes[i] ^= x;
            if let Ok(m) = Message::decode(&bytes) {
                proptest::prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
