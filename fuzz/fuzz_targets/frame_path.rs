//! The whole frame path on raw bursts and on sealed arbitrary plaintexts
//! (see `attnet_core::testkit::fuzz_frame_path`); the corpus also runs as a
//! regression test (`dataplane/core/tests/fuzz_corpus.rs`).
#![no_main]
use attnet_core::{testkit, Burst, FramePath};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static STATE: RefCell<(FramePath, Burst)> = RefCell::new((testkit::relay(1), Burst::default()));
}

fuzz_target!(|data: &[u8]| {
    STATE.with(|s| {
        let (fp, burst) = &mut *s.borrow_mut();
        testkit::fuzz_frame_path(fp, burst, data);
    });
});
