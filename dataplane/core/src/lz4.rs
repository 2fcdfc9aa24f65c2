//! LZ4 block decompression (`compressed_type` 0x24, no size prefix) into a
//! caller's scratch, with the spec's exact-length rule.

use crate::verdict::DropReason;

/// Decompresses `input` into `out`, which must be exactly the declared
/// uncompressed length; anything else is `bad_compression`.
#[inline]
pub fn decompress_exact(input: &[u8], out: &mut [u8]) -> Result<(), DropReason> {
    match lz4_flex::block::decompress_into(input, out) {
        Ok(n) if n == out.len() => Ok(()),
        _ => Err(DropReason::BadCompression),
    }
}

/// Compresses `input` (block format) appending to `out`; used by emitters.
pub fn compress_into(input: &[u8], out: &mut Vec<u8>) {
    let at = out.len();
    out.resize(at + lz4_flex::block::get_maximum_output_size(input.len()), 0);
    let n = lz4_flex::block::compress_into(input, &mut out[at..]).unwrap_or(0);
    out.truncate(at + n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_length() {
        let data = b"abcabcabcabcabcabcabcabcabcabcabc".repeat(10);
        let mut c = Vec::new();
        compress_into(&data, &mut c);
        let mut out = vec![0u8; data.len()];
        assert_eq!(decompress_exact(&c, &mut out), Ok(()));
        assert_eq!(out, data);
        let mut short = vec![0u8; data.len() - 1];
        assert_eq!(decompress_exact(&c, &mut short), Err(DropReason::BadCompression));
        let mut long = vec![0u8; data.len() + 1];
        assert_eq!(decompress_exact(&c, &mut long), Err(DropReason::BadCompression));
        assert_eq!(decompress_exact(&[0xff, 0xff, 0xff], &mut out), Err(DropReason::BadCompression));
    }
}
