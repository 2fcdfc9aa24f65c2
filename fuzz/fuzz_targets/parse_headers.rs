//! TPKT, X.224, MCS and security-header views and Reprs on arbitrary bytes:
//! no panic, and a successful parse re-emits to the same bytes.
#![no_main]
use attnet_core::wire::{mcs, security, tpkt, x224};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = tpkt::Repr::parse(&tpkt::Packet::new_unchecked(data)) {
        let mut b = [0u8; 4];
        r.emit(&mut tpkt::Packet::new_unchecked(&mut b[..]));
        assert_eq!(&b[..], &data[..4]);
    }
    let _ = x224::Repr::parse(&x224::Packet::new_unchecked(data));
    if let Ok(r) = mcs::Repr::parse(&mcs::Packet::new_unchecked(data)) {
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut mcs::Packet::new_unchecked(&mut b[..]));
        assert_eq!(&b[..r.header_len()], &data[..r.header_len()]);
        assert_eq!(r.buffer_len(), data.len());
    }
    let p = mcs::Packet::new_unchecked(data);
    let _ = (p.user_data(), p.per(), p.initiator(), p.channel());
    for control in [false, true] {
        if let Ok(s) = security::Packet::new_checked(data, control) {
            let _ = (s.counter(), s.clear_payload());
        }
    }
    if let Ok(r) = security::Repr::parse(&security::Packet::new_unchecked(data)) {
        let mut b = vec![0u8; r.header_len()];
        r.emit(&mut security::Packet::new_unchecked(&mut b[..]));
        assert_eq!(&b[..], &data[..r.header_len()]);
    }
});
