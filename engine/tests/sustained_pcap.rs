//! Sustained load through the pcap backend loses nothing (see
//! `sustained_udp.rs` for the live run; each is its own test binary so
//! the two never share the machine).

mod sustained_common;

use std::process::Command;

use serde_json::Value;
use sustained_common::*;

#[test]
fn two_million_unique_frames_through_pcap_lose_nothing() {
    const FRAMES: u64 = 2_000_000;
    let d = tmpdir("pcap");
    let (keys, genesis, pcap, summary) =
        (d.join("keys.json"), d.join("genesis.json"), d.join("t.pcap"), d.join("summary.json"));
    run(Command::new(BIN)
        .args(["pktgen", "--quiet", "--seed", "31", "--accounts", "4096", "--count", &FRAMES.to_string()])
        .args(["--txs-per-frame", "1", "--frames-per-datagram", "1", "--bad", "0", "--lz4", "off"])
        .args(["--pool-cache", "off", "--keys-out", p(&keys), "--genesis-out", p(&genesis)])
        .args(["--out", &format!("pcap:{}", p(&pcap))]));
    run(Command::new(BIN).args(["node", "--backend", "pcap", "--pcap", p(&pcap), "--cores", "1"]).args([
        "--keys",
        p(&keys),
        "--genesis",
        p(&genesis),
        "--summary-json",
        p(&summary),
    ]));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_lossless(&s, FRAMES);
    let _ = std::fs::remove_dir_all(&d);
}
