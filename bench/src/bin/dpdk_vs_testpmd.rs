//! `dpdk-testpmd --forward-mode=rxonly` against `attnet node --backend
//! dpdk` on the same virtual device and cores, in one run, plus the full
//! path on unique ATT traffic (`net_pcap`, `net_memif`), printed as
//! markdown tables with ratios (`bench::dpdk` does the work; `attnet-bench
//! --only dpdk` measures the same into the results file).
//!
//! `cargo run --release -p bench --bin dpdk_vs_testpmd [-- SECONDS]`
//! (needs `cargo build --release -p engine` first, DPDK and dpdk-testpmd;
//! as root it reserves 512 2-MiB hugepages and mounts hugetlbfs if none
//! are, releasing both at the end, else it runs with --no-huge and says so).

use std::path::PathBuf;

use bench::dpdk;

fn main() {
    let secs: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cfg = dpdk::Config { attnet: root.join("target/release/attnet"), secs, unique_frames: 60_000, memif: true };
    if let Some(why) = dpdk::unavailable(&cfg.attnet) {
        eprintln!("dpdk_vs_testpmd: {why}");
        std::process::exit(2);
    }
    let huge = dpdk::Hugepages::reserve();
    let r = dpdk::run(&cfg, huge.as_ref());
    drop(huge);
    let r = r.unwrap_or_else(|e| {
        eprintln!("dpdk_vs_testpmd: {e}");
        std::process::exit(1);
    });
    println!(
        "Memory: {}; lcores 0-1 (testpmd forwards on lcore 1; attnet's data core pinned to CPU 1); {secs} s per run, steady-state medians.\n",
        r.memory
    );
    let tp = r.testpmd_rxonly_pps;
    println!("| run on net_null0 (64-byte frames, not ATT) | Mpps | vs testpmd rxonly |");
    println!("|---|---|---|");
    println!("| dpdk-testpmd --forward-mode=rxonly | {:.2} | 1.00 |", tp / 1e6);
    println!(
        "| attnet --stop-after rx (receive, classify, free) | {:.2} | **{:.2}** (goal >= 0.50) |",
        r.attnet_rx_pps / 1e6,
        r.attnet_rx_pps / tp
    );
    println!(
        "| attnet full pipeline (every packet dropped as not_ip) | {:.2} | {:.2} |",
        r.attnet_full_null_pps / 1e6,
        r.attnet_full_null_pps / tp
    );
    let Some(u) = r.unique else { return };
    println!("\n| {} unique single-transaction frames | k frames/s per core | vs frame path in memory |", u.frames);
    println!("|---|---|---|");
    println!("| frame path alone, bursts of 32 in memory | {:.1} | 1.00 |", u.in_memory_fps / 1e3);
    println!(
        "| attnet --backend dpdk on net_pcap0, full pipeline (median of {} busy seconds) | {:.1} | **{:.2}** |",
        u.pcap_busy_secs,
        u.pcap_fps / 1e3,
        u.pcap_fps / u.in_memory_fps
    );
    match u.memif {
        Some(Ok((sent, accepted, fps, busy))) => println!(
            "| attnet --backend dpdk on net_memif0 from a DPDK sender ({sent} sent, {accepted} accepted; median of {busy} busy seconds) | {:.1} | **{:.2}** |",
            fps / 1e3,
            fps / u.in_memory_fps
        ),
        Some(Err(e)) => println!("\nmemif run failed: {e}"),
        None => {}
    }
}
