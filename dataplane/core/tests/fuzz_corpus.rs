//! Every committed frame-path fuzz seed, and every finding saved under
//! fuzz/corpus/frame_path, runs through the fuzz target's body.

use attnet_core::{testkit, Burst};

#[test]
fn frame_path_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/frame_path");
    let mut fp = testkit::relay(1);
    let mut burst = Burst::default();
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        testkit::fuzz_frame_path(&mut fp, &mut burst, &data);
        n += 1;
    }
    assert!(n >= 30, "only {n} seeds");
    assert!(burst.counters.frames_accepted > 0, "the seeds include valid frames");
    assert!(burst.counters.txs_accepted > 0);
}
