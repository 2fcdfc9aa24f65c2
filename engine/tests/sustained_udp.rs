//! Sustained live load over io_uring loses nothing (see
//! `sustained_pcap.rs`; each is its own test binary so the two never
//! share the machine).

mod sustained_common;

use std::process::Command;

use serde_json::Value;
use sustained_common::*;

/// Live, in a private network namespace: the generator sends 615 000
/// single-transaction datagrams at 15 000 a second to a one-core node on
/// io_uring (about half of a release node's one-core capacity on the
/// 2-vCPU machines this runs on; the test build is slower, so this is
/// nearer its capacity) and the node loses none of them.
#[test]
fn loopback_at_half_capacity_loses_nothing() {
    const PPS: u64 = 15_000;
    const SECONDS: u64 = 41;
    let d = tmpdir("udp");
    let (keys, genesis, node, gen) =
        (d.join("keys.json"), d.join("genesis.json"), d.join("node.json"), d.join("g.json"));
    let common = format!("--seed 32 --sessions 4 --accounts 4096 --pool-cache {}", p(&d.join("cache")));
    run(Command::new("sh").arg("-c").arg(format!(
        "{BIN} pktgen --quiet {common} --keys-out {} --genesis-out {}",
        p(&keys),
        p(&genesis)
    )));
    let script = format!(
        "ip link set lo up && \
         ({BIN} node --backend io_uring --listen 127.0.0.1:7100 --cores 1 --keys {k} --genesis {g} \
            --rcvbuf 67108864 --summary-json {node} > /dev/null 2> {d}/node.err & echo $! > {d}/node.pid) && \
         sleep 0.7 && \
         {BIN} pktgen --quiet {common} --out udp:127.0.0.1:7100 --pps {PPS} --duration {SECONDS} \
            --txs-per-frame 1 --frames-per-datagram 1 --bad 0 --lz4 off --json {gen} && \
         sleep 1 && kill -TERM $(cat {d}/node.pid) && \
         while [ ! -s {node} ]; do sleep 0.2; done",
        k = p(&keys),
        g = p(&genesis),
        node = p(&node),
        d = p(&d),
        gen = p(&gen),
    );
    // Signing the generator's pool comes first and takes a while in a
    // test build; the whole run is still bounded.
    let o =
        Command::new("timeout").args(["300", "unshare", "--net", "sh", "-c", &script]).output().expect("unshare runs");
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(d.join("node.err")).unwrap_or_default()
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&node).unwrap()).unwrap();
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&gen).unwrap()).unwrap();
    let sent = n(&s, &["packets", "received"]) + n(&s, &["packets", "kernel_dropped"]);
    assert!(sent >= 600_000, "{s}\n{g}");
    if n(&s, &["packets", "kernel_dropped"]) == 0 {
        assert_lossless(&s, sent);
    } else {
        // Datagrams the kernel dropped never reached the node (and strand
        // their accounts' later nonces for a bounded time); what did reach
        // it is applied or named, and nothing is lost to a full ring.
        eprintln!("kernel dropped {} datagrams", n(&s, &["packets", "kernel_dropped"]));
        assert_eq!(n(&s, &["txs", "dropped", "ring_full"]), 0, "{s}");
        assert_eq!(
            n(&s, &["ledger", "applied"]) + n(&s, &["ledger", "dropped", "nonce_gap"]),
            n(&s, &["txs", "accepted"]),
            "{s}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
