//! `stall_probe`: how long this machine keeps a thread that never blocks
//! off its CPU. One spinning thread per CPU reads the monotonic clock in a
//! loop and records every gap between two reads; a gap is time the thread
//! did not run (the host took the virtual CPU, or the kernel ran something
//! else). It is the baseline for the control loop's longest iteration
//! (docs/NODE.md, "control"): an iteration cannot be shorter than the
//! pauses its thread is given. Run it beside the node's measurement, right
//! before and after, on the same machine.
//!
//! `cargo build --release -p bench --bin stall_probe &&
//!  target/release/stall_probe [SECONDS, default 30]`

use std::time::{Duration, Instant};

/// Gap thresholds counted, microseconds.
const OVER_US: [u128; 4] = [1_000, 2_000, 5_000, 10_000];

fn spin(secs: u64) -> (u128, [u64; 4]) {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = Instant::now();
    let (mut max, mut over) = (0u128, [0u64; 4]);
    while last < end {
        let now = Instant::now();
        let gap = now.duration_since(last).as_micros();
        max = max.max(gap);
        for (n, t) in over.iter_mut().zip(OVER_US) {
            *n += u64::from(gap > t);
        }
        last = now;
    }
    (max, over)
}

fn main() {
    let secs: u64 = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 30,
        Some(Ok(s)) if s > 0 && s <= 3_600 => s,
        Some(_) => {
            eprintln!("stall_probe: SECONDS must be 1..=3600");
            std::process::exit(2);
        }
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..cpus).map(|_| std::thread::spawn(move || spin(secs))).collect();
    println!("| thread | longest pause us | > 1 ms | > 2 ms | > 5 ms | > 10 ms |\n|---|---|---|---|---|---|");
    for (i, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok((max, o)) => println!("| {i} | {max} | {} | {} | {} | {} |", o[0], o[1], o[2], o[3]),
            Err(_) => eprintln!("stall_probe: thread {i} failed"),
        }
    }
}
