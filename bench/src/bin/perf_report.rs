//! Reads criterion's results (target/criterion) from the last
//! `cargo bench -p bench` and prints the markdown tables of
//! docs/PERFORMANCE.md, every figure next to its same-run baseline.

use std::path::{Path, PathBuf};

use bench::{names, Workload, BURST, ROWS};

fn median_ns(root: &Path, group: &str, name: &str) -> Option<f64> {
    let p = root.join(group).join(name).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let root: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"));
    let get = |g: &str, n: &str| -> f64 {
        median_ns(&root, g, n)
            .unwrap_or_else(|| panic!("no result for {g}/{n} under {}: run cargo bench -p bench", root.display()))
    };
    println!("CPU: {}; burst of {BURST} frames; medians of criterion samples; ns per frame unless noted.\n", cpu());
    println!("### AES-256-GCM open, raw libraries\n");
    println!(
        "| row | frame B | aws-lc-rs ns | ring ns | aes-gcm ns | aws-lc-rs GB/s | ring GB/s | aes-gcm GB/s | fastest |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for row in ROWS {
        let w = Workload::new(row);
        let len = w.frame_len() as f64;
        let aes: Vec<f64> = names::AES.iter().map(|(n, _)| get(row.name, n) / BURST as f64).collect();
        let (best_i, best) =
            aes.iter().copied().enumerate().fold((0, f64::MAX), |a, (i, x)| if x < a.1 { (i, x) } else { a });
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            row.name,
            len,
            aes[0],
            aes[1],
            aes[2],
            len / aes[0],
            len / aes[1],
            len / aes[2],
            names::AES[best_i].1
        );
        rows.push((row, w, best));
    }
    println!("\n### Frame path stage by stage against its raw parts\n");
    println!("Goal 1: path without signatures (decode+decrypt+decompress+ids) >= 90 % of the raw parts' throughput (fastest AES + LZ4 where used + SHA-256 ids).\n");
    println!("| row | decode | +decrypt | +decompress/ids | raw AES | raw LZ4 | raw SHA-256 | raw sum | raw sum / path (goal >= 0.90) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (row, _, best) in &rows {
        let p: Vec<f64> = names::PATH.iter().map(|n| get(row.name, n) / BURST as f64).collect();
        let lz4 = if row.lz4 { get(row.name, names::LZ4) / BURST as f64 } else { 0.0 };
        let sha = get(row.name, names::SHA) / BURST as f64;
        let sum = best + lz4 + sha;
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {:.0} | **{:.2}** |",
            row.name,
            p[0],
            p[1],
            p[2],
            best,
            if row.lz4 { format!("{lz4:.0}") } else { "-".into() },
            sha,
            sum,
            sum / p[2]
        );
    }
    println!("\nGoal 2: full path (with batched signature verification) >= 90 % of the raw Ed25519 batch-verify ceiling, in transactions per second.\n");
    println!("| row | txs/burst | raw single verify ns/tx | raw batch verify ns/tx | full path ns/tx | full path ktx/s | batch ceiling ktx/s | path / ceiling (goal >= 0.90) | batch / single speed-up |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (row, w, _) in &rows {
        let n = w.tx_count() as f64;
        let single = get(row.name, names::ED_SINGLE) / n;
        let batch = get(row.name, names::ED_BATCH) / n;
        let full = get(row.name, names::PATH[3]) / n;
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | **{:.2}** | {:.2} |",
            row.name,
            w.tx_count(),
            single,
            batch,
            full,
            1e6 / full,
            1e6 / batch,
            batch / full,
            single / batch
        );
    }
    node_rows(&root);
}

/// Rows of `benches/node.rs`, if it ran.
fn node_rows(root: &Path) {
    let get = |g: &str, n: &str| median_ns(root, g, n);
    let (Some(rtrb), Some(cbq), Some(cbc)) =
        (get("rings", "rtrb_spsc"), get("rings", "crossbeam_array_queue"), get("rings", "crossbeam_channel"))
    else {
        return;
    };
    let items = (1u64 << 20) as f64;
    println!("\n### Shard rings: items between two threads\n");
    println!("| ring | M items/s | time vs rtrb |");
    println!("|---|---|---|");
    for (name, t) in
        [("rtrb (SPSC, chunked)", rtrb), ("crossbeam ArrayQueue (MPMC)", cbq), ("crossbeam channel (bounded)", cbc)]
    {
        println!("| {name} | {:.1} | {:.2}x |", items / t * 1e3, t / rtrb);
    }
    if let (Some(u), Some(r)) = (get("receive", "io_uring"), get("receive", "recvmmsg")) {
        let n = 128.0;
        println!("\n### Receive: draining 128 prefilled 256-byte datagrams from a loopback socket\n");
        println!("| backend | ns per datagram | M datagrams/s | rate vs recvmmsg (goal >= 1.0) |");
        println!("|---|---|---|---|");
        println!(
            "| io_uring (multishot recvmsg, buffer ring) | {:.0} | {:.2} | **{:.2}** |",
            u / n,
            n / u * 1e3,
            r / u
        );
        println!("| recvmmsg | {:.0} | {:.2} | 1.00 |", r / n, n / r * 1e3);
    }
    if let (Some(mem), Some(pcap), Some(pipe)) = (
        get("pipeline", "frame_path_in_memory"),
        get("pipeline", "pcap_replay_plus_frame_path"),
        get("pipeline", "pipeline_pcap_core"),
    ) {
        let n = 2048.0;
        println!("\n### Pipeline: one data core on 2048 unique single-transaction frames\n");
        println!("| stage | us per frame | k frames/s | throughput vs frame path in memory |");
        println!("|---|---|---|---|");
        println!("| frame path alone, datagrams in memory | {:.2} | {:.1} | 1.00 |", mem / n / 1e3, n / mem * 1e6);
        println!("| pcap replay + frame path | {:.2} | {:.1} | {:.2} |", pcap / n / 1e3, n / pcap * 1e6, mem / pcap);
        println!(
            "| pcap replay + frame path + dedup + sharding + rings (data core) | {:.2} | {:.1} | {:.2} |",
            pipe / n / 1e3,
            n / pipe * 1e6,
            mem / pipe
        );
        println!("\nCost of rings, dedup and sharding: the data core runs at **{:.2}** of pcap replay + frame path (goal >= 0.80).", pcap / pipe);
    }
}
