//! Helpers of the sustained-load tests (one test binary each, so that
//! they never run at the same time).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_attnet");

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-sustained-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

pub fn run(cmd: &mut Command) -> std::process::Output {
    let o = cmd.output().expect("runs");
    assert!(o.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    o
}

pub fn n(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or_else(|| panic!("{} missing in {v}", path.join(".")))
}

/// The equalities of a run that lost nothing.
pub fn assert_lossless(s: &Value, frames: u64) {
    let accepted = n(s, &["frames", "accepted"]);
    assert_eq!(accepted, frames, "{s}");
    assert_eq!(n(s, &["txs", "accepted"]), accepted, "{s}");
    assert_eq!(n(s, &["ledger", "applied"]), accepted, "{s}");
    assert_eq!(n(s, &["txs", "dropped", "ring_full"]), 0, "{s}");
    assert_eq!(n(s, &["ledger", "dropped", "nonce_gap"]), 0, "{s}");
    let loop_max = n(s, &["control", "loop_us", "max"]);
    assert!(loop_max > 0, "the longest control-loop iteration is reported: {s}");
    eprintln!(
        "{frames} frames: control loop p99 {} us, max {loop_max} us; {} blocks",
        n(s, &["control", "loop_us", "p99"]),
        n(s, &["blocks"])
    );
}
