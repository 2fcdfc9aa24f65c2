//! LZ4 block decompression with the exact-length rule: no panic, no
//! out-of-bounds write, and what compresses decompresses to itself.
#![no_main]
use attnet_core::lz4;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let mut out = vec![0u8; n as usize * 64];
    let _ = lz4::decompress_exact(rest, &mut out);
    let mut c = Vec::new();
    lz4::compress_into(rest, &mut c);
    let mut back = vec![0u8; rest.len()];
    assert!(lz4::decompress_exact(&c, &mut back).is_ok());
    assert_eq!(back, rest);
});
