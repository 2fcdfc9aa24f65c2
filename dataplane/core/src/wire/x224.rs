//! X.224 data TPDU header (the paper's "TPTP protocol header"), three bytes
//! after TPKT (`att-wire.md`, "Frame", offsets 4..7).

use super::{byte, put, DropReason, Result};

mod field {
    pub const LI: usize = 0;
    pub const CODE: usize = 1;
    pub const EOT: usize = 2;
}

/// Length of the X.224 data TPDU header.
pub const HEADER_LEN: usize = 3;
/// `x224.li`: the header bytes after the length indicator itself.
pub const LI: u8 = 2;
/// Data TPDU.
pub const CODE_DATA: u8 = 0xF0;
/// End of TSDU: every ATT frame is one whole TSDU.
pub const EOT: u8 = 0x80;

/// A read-only or read/write view of an X.224 data TPDU header.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors return 0 on short input.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks length and the three constant bytes (`bad_header`).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        if p.li() != LI || p.code() != CODE_DATA || p.eot() != EOT {
            return Err(DropReason::BadHeader);
        }
        Ok(p)
    }

    /// `x224.li`: [`LI`] in every ATT frame.
    pub fn li(&self) -> u8 {
        byte(self.buffer.as_ref(), field::LI)
    }
    /// `x224.code`: [`CODE_DATA`] in every ATT frame.
    pub fn code(&self) -> u8 {
        byte(self.buffer.as_ref(), field::CODE)
    }
    /// `x224.eot`: [`EOT`] in every ATT frame.
    pub fn eot(&self) -> u8 {
        byte(self.buffer.as_ref(), field::EOT)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes `x224.li`.
    pub fn set_li(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::LI, &[v]);
    }
    /// Writes `x224.code`.
    pub fn set_code(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::CODE, &[v]);
    }
    /// Writes `x224.eot`.
    pub fn set_eot(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::EOT, &[v]);
    }
}

/// The X.224 DT header carries only constants; its `Repr` is a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr;

impl Repr {
    /// Checks the three constant bytes as [`Packet::new_checked`] does.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        Packet::new_checked(p.buffer.as_ref()).map(|_| Repr)
    }
    /// Bytes the header takes: always [`HEADER_LEN`].
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }
    /// Writes the three constant bytes; `p` must hold at least [`HEADER_LEN`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_li(LI);
        p.set_code(CODE_DATA);
        p.set_eot(EOT);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_constants() {
        let mut b = [0u8; 3];
        Repr.emit(&mut Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, [2, 0xF0, 0x80]);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&b[..])), Ok(Repr));
        for i in 0..3 {
            let mut c = b;
            c[i] ^= 1;
            assert_eq!(Repr::parse(&Packet::new_unchecked(&c[..])), Err(DropReason::BadHeader));
        }
    }
}
