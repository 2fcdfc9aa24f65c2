//! Share-data header on arbitrary plaintext: no panic; a parse re-emits to
//! the same header bytes.
#![no_main]
use dataplane::wire::share;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = share::Packet::new_unchecked(data);
    let _ = (p.check_lengths(), p.check_constants(), p.body());
    if let Ok(r) = share::Repr::parse(&p) {
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut share::Packet::new_unchecked(&mut b[..]));
        assert_eq!(&b[..share::HEADER_LEN], &data[..share::HEADER_LEN]);
    }
});
