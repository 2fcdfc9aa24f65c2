//! TX_BATCH body and transactions (`att-wire.md`, "TX_BATCH body").

use super::{arr32, byte, le16, le64, put, DropReason, Result};

/// Byte offsets of a transaction's fields (`att-wire.md`, "TX_BATCH body");
/// the signature is the last [`SIG_LEN`] bytes ([`signature_range`]).
pub mod field {
    use core::ops::Range;
    /// `version` (1 byte).
    pub const VERSION: usize = 0;
    /// `kind` (1 byte, see [`Kind`](super::Kind)).
    pub const KIND: usize = 1;
    /// `from`: the sender's account, an Ed25519 public key.
    pub const FROM: Range<usize> = 2..34;
    /// `to`: the receiving account (for vote, the producer voted for).
    pub const TO: Range<usize> = 34..66;
    /// `nonce` (LE), per `from` account.
    pub const NONCE: Range<usize> = 66..74;
    /// `amount` (LE).
    pub const AMOUNT: Range<usize> = 74..82;
    /// `fee` (LE).
    pub const FEE: Range<usize> = 82..90;
    /// `memo_len` (LE), at most 1024.
    pub const MEMO_LEN: Range<usize> = 90..92;
    /// Start of the memo (`memo_len` bytes); the signature follows it.
    pub const MEMO: usize = 92;
}

/// The only transaction `version`.
pub const VERSION: u8 = 1;
/// Bytes before the memo.
pub const FIXED_LEN: usize = 92;
/// Length of the Ed25519 signature that ends a transaction.
pub const SIG_LEN: usize = 64;
/// A transaction without memo.
pub const MIN_TX_LEN: usize = FIXED_LEN + SIG_LEN;
/// Largest `memo_len`.
pub const MAX_MEMO: usize = 1024;
/// A transaction with the largest memo.
pub const MAX_TX_LEN: usize = MIN_TX_LEN + MAX_MEMO;
/// Where the signature of a transaction of `len` bytes is (the last
/// [`SIG_LEN`] bytes; empty if `len` is shorter).
#[inline(always)]
pub const fn signature_range(len: usize) -> core::ops::Range<usize> {
    if len < SIG_LEN {
        len..len
    } else {
        len - SIG_LEN..len
    }
}

/// The signed part of a transaction's bytes (everything before the
/// signature; empty if shorter than a signature).
#[inline(always)]
pub fn unsigned_part(tx: &[u8]) -> &[u8] {
    tx.get(..signature_range(tx.len()).start).unwrap_or(&[])
}

/// The signature of a transaction's bytes (empty if too short).
#[inline(always)]
pub fn signature_part(tx: &[u8]) -> &[u8] {
    tx.get(signature_range(tx.len())).unwrap_or(&[])
}

/// The `from` field (the sender's public key) of a transaction's bytes
/// (empty if too short): what transactions are sharded by.
#[inline(always)]
pub fn from_part(tx: &[u8]) -> &[u8] {
    tx.get(field::FROM).unwrap_or(&[])
}

/// Domain separation before the network id in the signing message.
pub const SIGNING_PREFIX: &[u8; 9] = b"ATT-TX-v1";
/// Prefix plus network id.
pub const SIGNING_HEADER_LEN: usize = 13;

/// Transaction kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Kind 0: transfer; moves `amount` from `from` to `to`.
    Transfer = 0,
    /// Kind 1: message; `memo` holds the message text.
    Message = 1,
    /// Kind 2: connect-request; `memo` holds the connection reason.
    ConnectRequest = 2,
    /// Kind 3: connect-accept.
    ConnectAccept = 3,
    /// Kind 4: endpoint-offer; `memo` holds a sealed endpoint.
    EndpointOffer = 4,
    /// Kind 5: stake.
    Stake = 5,
    /// Kind 6: unstake.
    Unstake = 6,
    /// Kind 7: vote; `to` is the producer voted for.
    Vote = 7,
    /// Kind 8: register-producer.
    RegisterProducer = 8,
}

impl Kind {
    /// Every kind, indexed by its byte value.
    pub const ALL: [Kind; 9] = [
        Kind::Transfer,
        Kind::Message,
        Kind::ConnectRequest,
        Kind::ConnectAccept,
        Kind::EndpointOffer,
        Kind::Stake,
        Kind::Unstake,
        Kind::Vote,
        Kind::RegisterProducer,
    ];

    /// The kind with byte value `v`, or `None` for an unknown kind.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.get(v as usize).copied()
    }
}

/// A view of one transaction. `new_checked` validates version, kind,
/// memo_len and that the buffer holds exactly one transaction.
#[derive(Debug, Clone, Copy)]
pub struct Transaction<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Transaction<T> {
    /// Wraps a buffer without checking it; accessors return 0 on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Transaction { buffer }
    }

    /// Checks version, kind, `memo_len` (at most 1024) and that the buffer is
    /// exactly one transaction; `bad_tx` otherwise.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Transaction { buffer };
        let b = t.buffer.as_ref();
        if b.len() < MIN_TX_LEN || t.version() != VERSION || Kind::from_u8(t.kind_byte()).is_none() {
            return Err(DropReason::BadTx);
        }
        let m = t.memo_len() as usize;
        if m > MAX_MEMO || b.len() != MIN_TX_LEN + m {
            return Err(DropReason::BadTx);
        }
        Ok(t)
    }

    /// `version`: [`VERSION`] in a valid transaction.
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VERSION)
    }
    /// The raw `kind` byte (see [`Kind::from_u8`]).
    pub fn kind_byte(&self) -> u8 {
        byte(self.buffer.as_ref(), field::KIND)
    }
    /// `from`: the sender's account key.
    pub fn from(&self) -> [u8; 32] {
        arr32(self.buffer.as_ref(), field::FROM.start)
    }
    /// `to`: the receiving account.
    pub fn to(&self) -> [u8; 32] {
        arr32(self.buffer.as_ref(), field::TO.start)
    }
    /// `nonce`: the sender's per-account sequence number.
    pub fn nonce(&self) -> u64 {
        le64(self.buffer.as_ref(), field::NONCE.start)
    }
    /// `amount`.
    pub fn amount(&self) -> u64 {
        le64(self.buffer.as_ref(), field::AMOUNT.start)
    }
    /// `fee`.
    pub fn fee(&self) -> u64 {
        le64(self.buffer.as_ref(), field::FEE.start)
    }
    /// `memo_len`: memo length in bytes.
    pub fn memo_len(&self) -> u16 {
        le16(self.buffer.as_ref(), field::MEMO_LEN.start)
    }
    /// The memo (empty if the buffer is shorter than `memo_len` says).
    pub fn memo(&self) -> &[u8] {
        let m = self.memo_len() as usize;
        self.buffer.as_ref().get(field::MEMO..field::MEMO + m).unwrap_or(&[])
    }
    /// Every byte before the signature: what the id hashes and the
    /// signature covers (after the signing header).
    pub fn unsigned(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(..b.len().saturating_sub(SIG_LEN)).unwrap_or(&[])
    }
    /// The signature: the last 64 bytes.
    pub fn signature(&self) -> [u8; 64] {
        let b = self.buffer.as_ref();
        b.get(b.len().saturating_sub(SIG_LEN)..).and_then(|s| s.try_into().ok()).unwrap_or([0; 64])
    }
}

/// Writes the signing message header (`ATT-TX-v1`, network id LE).
pub fn signing_header(network_id: u32) -> [u8; SIGNING_HEADER_LEN] {
    let mut h = [0u8; SIGNING_HEADER_LEN];
    put(&mut h, 0, SIGNING_PREFIX);
    put(&mut h, 9, &network_id.to_le_bytes());
    h
}

/// A transaction as plain values; `memo` borrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Transaction kind.
    pub kind: Kind,
    /// The sender's account, an Ed25519 public key; it signs the transaction.
    pub from: [u8; 32],
    /// The receiving account (for vote, the producer voted for).
    pub to: [u8; 32],
    /// Per-`from` account nonce, strictly increasing by 1.
    pub nonce: u64,
    /// Amount (for a transfer, what moves from `from` to `to`).
    pub amount: u64,
    /// Fee.
    pub fee: u64,
    /// Memo, at most [`MAX_MEMO`] bytes.
    pub memo: &'a [u8],
    /// Ed25519 signature by `from` over the signing message
    /// ([`signing_header`] then every byte before the signature).
    pub signature: [u8; 64],
}

impl<'a> Repr<'a> {
    /// Checks the transaction as [`Transaction::new_checked`] does and reads
    /// its fields.
    pub fn parse(t: &Transaction<&'a [u8]>) -> Result<Repr<'a>> {
        let t = Transaction::new_checked(t.buffer)?;
        let m = t.memo_len() as usize;
        Ok(Repr {
            kind: Kind::from_u8(t.kind_byte()).ok_or(DropReason::BadTx)?,
            from: t.from(),
            to: t.to(),
            nonce: t.nonce(),
            amount: t.amount(),
            fee: t.fee(),
            memo: t.buffer.get(field::MEMO..field::MEMO + m).unwrap_or(&[]),
            signature: t.signature(),
        })
    }

    /// Encoded length: [`MIN_TX_LEN`] plus the memo length.
    pub const fn buffer_len(&self) -> usize {
        MIN_TX_LEN + self.memo.len()
    }

    /// Writes the transaction into `buf[..self.buffer_len()]`, signature
    /// included. Returns the bytes written, or `BadTx` if the memo is over
    /// 1024 bytes or the buffer is short.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let n = self.buffer_len();
        if self.memo.len() > MAX_MEMO || buf.len() < n {
            return Err(DropReason::BadTx);
        }
        put(buf, field::VERSION, &[VERSION]);
        put(buf, field::KIND, &[self.kind as u8]);
        put(buf, field::FROM.start, &self.from);
        put(buf, field::TO.start, &self.to);
        put(buf, field::NONCE.start, &self.nonce.to_le_bytes());
        put(buf, field::AMOUNT.start, &self.amount.to_le_bytes());
        put(buf, field::FEE.start, &self.fee.to_le_bytes());
        put(buf, field::MEMO_LEN.start, &(self.memo.len() as u16).to_le_bytes());
        put(buf, field::MEMO, self.memo);
        put(buf, field::MEMO + self.memo.len(), &self.signature);
        Ok(n)
    }
}

/// A TX_BATCH body: `u16 LE count`, then `count` transactions and nothing
/// after the last one.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    body: &'a [u8],
    count: u16,
}

impl<'a> Batch<'a> {
    /// Step 10's frame-level rules: every transaction well-formed and the
    /// body exactly used up; anything else is `bad_tx` for the whole frame.
    pub fn new_checked(body: &'a [u8]) -> Result<Self> {
        let count = le16(body, 0);
        if body.len() < 2 {
            return Err(DropReason::BadTx);
        }
        let mut off = 2usize;
        for _ in 0..count {
            let rest = body.get(off..).unwrap_or(&[]);
            if rest.len() < MIN_TX_LEN {
                return Err(DropReason::BadTx);
            }
            let m = le16(rest, field::MEMO_LEN.start) as usize;
            let n = MIN_TX_LEN + m;
            let tx = rest.get(..n).ok_or(DropReason::BadTx)?;
            Transaction::new_checked(tx)?;
            off += n;
        }
        if off != body.len() {
            return Err(DropReason::BadTx);
        }
        Ok(Batch { body, count })
    }

    /// Number of transactions in the batch.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The transactions with their offsets in the body.
    pub fn iter(&self) -> BatchIter<'a> {
        BatchIter { body: self.body, off: 2, left: self.count }
    }
}

/// Iterates `(offset in body, transaction bytes)` of a checked batch.
pub struct BatchIter<'a> {
    body: &'a [u8],
    off: usize,
    left: u16,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let rest = self.body.get(self.off..)?;
        let n = MIN_TX_LEN + le16(rest, field::MEMO_LEN.start) as usize;
        let tx = rest.get(..n)?;
        let at = self.off;
        self.off += n;
        Some((at, tx))
    }
}

/// Writes a TX_BATCH body from already emitted transactions.
pub fn emit_batch<'t>(txs: impl IntoIterator<Item = &'t [u8]>, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut n = 0u16;
    for t in txs {
        out.extend_from_slice(t);
        n += 1;
    }
    put(out, at, &n.to_le_bytes());
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn sample(memo: &[u8]) -> Repr<'_> {
        Repr {
            kind: Kind::Message,
            from: [1; 32],
            to: [2; 32],
            nonce: 7,
            amount: 1000,
            fee: 3,
            memo,
            signature: [9; 64],
        }
    }

    #[test]
    fn round_trip_every_kind() {
        for k in Kind::ALL {
            let r = Repr { kind: k, ..sample(b"hello") };
            let mut b = vec![0u8; r.buffer_len()];
            assert_eq!(r.emit(&mut b), Ok(161));
            assert_eq!(Repr::parse(&Transaction::new_unchecked(&b[..])), Ok(r));
        }
    }

    #[test]
    fn batch_rules() {
        let r = sample(b"");
        let mut t = vec![0u8; r.buffer_len()];
        r.emit(&mut t).unwrap();
        let mut body = Vec::new();
        emit_batch([&t[..], &t[..]], &mut body);
        let b = Batch::new_checked(&body).unwrap();
        assert_eq!(b.iter().map(|(o, x)| (o, x.len())).collect::<Vec<_>>(), vec![(2, 156), (158, 156)]);
        // count lies (too many), trailing byte, bad version, bad kind, memo over 1024
        let mut lie = body.clone();
        lie[0] = 3;
        assert_eq!(Batch::new_checked(&lie).err(), Some(DropReason::BadTx));
        let mut tail = body.clone();
        tail.push(0);
        assert_eq!(Batch::new_checked(&tail).err(), Some(DropReason::BadTx));
        let mut v = body.clone();
        v[2] = 2;
        assert_eq!(Batch::new_checked(&v).err(), Some(DropReason::BadTx));
        let mut k = body.clone();
        k[3] = 9;
        assert_eq!(Batch::new_checked(&k).err(), Some(DropReason::BadTx));
        let big = vec![0u8; 1025];
        let r = sample(&big);
        assert_eq!(r.emit(&mut vec![0u8; 4096]), Err(DropReason::BadTx));
        assert_eq!(Batch::new_checked(&[0, 0]).map(|b| b.count()), Ok(0));
        assert_eq!(Batch::new_checked(&[0]).err(), Some(DropReason::BadTx));
    }
}
