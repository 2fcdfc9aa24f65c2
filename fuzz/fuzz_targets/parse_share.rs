//! Share-data header on arbitrary plaintext, and RECEIPT bodies: no panic;
//! a parse re-emits to the same bytes.
#![no_main]
use attnet_core::wire::{receipt, share};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = share::Packet::new_unchecked(data);
    let _ = (p.check_lengths(), p.check_constants(), p.body());
    if let Ok(r) = share::Repr::parse(&p) {
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut share::Packet::new_unchecked(&mut b[..]));
        assert_eq!(&b[..share::HEADER_LEN], &data[..share::HEADER_LEN]);
    }
    if let Ok(r) = receipt::Receipt::new_checked(data) {
        let ids: Vec<[u8; 32]> = r.ids().collect();
        let mut b = Vec::new();
        receipt::emit(r.height(), &ids, &mut b).unwrap();
        assert_eq!(b, data);
    }
});
