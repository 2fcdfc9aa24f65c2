//! HELLO and WELCOME bodies: no panic; a parse re-emits the same bytes.
#![no_main]
use attnet_core::wire::handshake::{Hello, Welcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Hello::parse(data) {
        let mut b = [0u8; Hello::LEN];
        h.emit(&mut b).unwrap();
        assert_eq!(&b[..], data);
    }
    if let Ok(w) = Welcome::parse(data) {
        let mut b = [0u8; Welcome::LEN];
        w.emit(&mut b).unwrap();
        assert_eq!(&b[..], data);
    }
});
