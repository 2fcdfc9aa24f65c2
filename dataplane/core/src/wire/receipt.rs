//! RECEIPT body (`att-wire.md`, "RECEIPT body"): `u64 LE` block height,
//! `u16 LE` count, then `count` 32-byte transaction ids, nothing after.

use super::{le16, le64, put, DropReason, Result};

/// Bytes before the ids: the height (8) and the count (2).
pub const HEADER_LEN: usize = 10;
/// Length of one transaction id.
pub const ID_LEN: usize = 32;

/// A view of a RECEIPT body whose length has been checked.
#[derive(Debug, Clone, Copy)]
pub struct Receipt<'a> {
    body: &'a [u8],
}

impl<'a> Receipt<'a> {
    /// The count must match the body exactly (`bad_length` otherwise).
    pub fn new_checked(body: &'a [u8]) -> Result<Self> {
        if body.len() < HEADER_LEN {
            return Err(DropReason::BadLength);
        }
        let n = le16(body, 8) as usize;
        if body.len() != HEADER_LEN + n * ID_LEN {
            return Err(DropReason::BadLength);
        }
        Ok(Receipt { body })
    }

    /// Height of the block that included the transactions.
    pub fn height(&self) -> u64 {
        le64(self.body, 0)
    }

    /// Number of ids.
    pub fn count(&self) -> u16 {
        le16(self.body, 8)
    }

    /// The transaction ids, in body order.
    pub fn ids(&self) -> impl Iterator<Item = [u8; 32]> + 'a {
        let b = self.body;
        (0..self.count() as usize).map(move |i| super::arr32(b, HEADER_LEN + i * ID_LEN))
    }
}

/// Appends a RECEIPT body.
pub fn emit(height: u64, ids: &[[u8; 32]], out: &mut Vec<u8>) -> Result<usize> {
    if ids.len() > u16::MAX as usize {
        return Err(DropReason::BadLength);
    }
    let at = out.len();
    let n = HEADER_LEN + ids.len() * ID_LEN;
    out.resize(at + n, 0);
    let b = out.get_mut(at..).unwrap_or(&mut []);
    put(b, 0, &height.to_le_bytes());
    put(b, 8, &(ids.len() as u16).to_le_bytes());
    for (i, id) in ids.iter().enumerate() {
        put(b, HEADER_LEN + i * ID_LEN, id);
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ids = [[1u8; 32], [2; 32], [3; 32]];
        let mut b = Vec::new();
        assert_eq!(emit(77, &ids, &mut b), Ok(106));
        let r = Receipt::new_checked(&b).unwrap();
        assert_eq!((r.height(), r.count()), (77, 3));
        assert_eq!(r.ids().collect::<Vec<_>>(), ids);
        assert_eq!(Receipt::new_checked(&b[..105]).err(), Some(DropReason::BadLength));
        assert_eq!(Receipt::new_checked(&b[..9]).err(), Some(DropReason::BadLength));
        let mut empty = Vec::new();
        emit(0, &[], &mut empty).unwrap();
        assert_eq!(Receipt::new_checked(&empty).map(|r| r.count()), Ok(0));
    }
}
