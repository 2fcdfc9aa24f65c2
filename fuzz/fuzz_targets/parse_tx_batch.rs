//! TX_BATCH bodies and transactions: no panic; every transaction of an
//! accepted batch parses and re-emits to the same bytes; verification of
//! any of them agrees between batch and single.
#![no_main]
use attnet_core::verify::{verify_single, BatchVerifier};
use attnet_core::wire::tx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tx::Transaction::new_checked(data);
    if let Ok(b) = tx::Batch::new_checked(data) {
        let mut bv = BatchVerifier::new(1, [7; 32]);
        let mut n = 0;
        for (_, t) in b.iter() {
            let r = tx::Repr::parse(&tx::Transaction::new_unchecked(t)).expect("checked batch");
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut out).unwrap();
            assert_eq!(out, t);
            bv.queue(t);
            n += 1;
        }
        assert_eq!(n, b.count() as usize);
        let batch = bv.verify().to_vec();
        let single: Vec<bool> = b.iter().map(|(_, t)| verify_single(1, t)).collect();
        assert_eq!(batch, single);
    }
});
