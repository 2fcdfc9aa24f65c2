//! `attnet-bench --quick --only crypto` runs (with a tiny time budget) and
//! writes a valid results file and plot; `--docs-from` regenerates the
//! docs from it.

use std::process::Command;

use bench::report::Report;

#[test]
fn quick_crypto_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_attnet-bench"))
        .args(["--quick", "--only", "crypto", "--no-docs", "--out"])
        .arg(dir.path())
        .env("ATTNET_BENCH_ROUND_MS", "2")
        .env("ATTNET_BENCH_ROUNDS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(json.len(), 1, "{json:?}");
    let rep = Report::read(&json[0]).unwrap();
    assert!(rep.quick);
    assert_eq!(rep.sections.len(), 1);
    let s = &rep.sections[0];
    assert_eq!(s.name, "crypto");
    assert!(s.skipped.is_none());
    // 6 rows x (aws-lc-rs, ring, aes-gcm, single, batches of 32, batch
    // of 256, attnet-core's batch with every key decompressed and with
    // keys cached) + 3 LZ4 rows.
    assert_eq!(s.rows.len(), 51, "{:?}", s.rows);
    assert!(s.rows.iter().all(|r| r.value.is_finite() && r.value > 0.0), "{:?}", s.rows);
    assert!(json[0].with_extension("svg").exists());

    let md = dir.path().join("PERFORMANCE.md");
    let st = Command::new(env!("CARGO_BIN_EXE_attnet-bench"))
        .arg("--docs-from")
        .arg(&json[0])
        .arg("--docs-path")
        .arg(&md)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("## `crypto`") && text.contains("256B-1tx-plain: AES-256-GCM open, ring"), "{text}");
}

#[test]
fn unknown_section_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_attnet-bench")).args(["--only", "nope", "--no-docs"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown section"));
}

/// `storage_writer` commits a few blocks into every candidate and writes
/// a results file with one section per scenario, every candidate's rows
/// in it, the other stores' latencies against the log's.
#[test]
fn storage_writer_writes_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_storage_writer"))
        .args(["--secs", "0.2", "--reps", "2", "--scenarios", "20k-200ms,100k-50ms", "--out"])
        .arg(dir.path())
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| 2 | fjall |") && stdout.contains("### 100 k tx/s, a block every 50 ms"), "{stdout}");
    let json: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-storage.json"))
        .collect();
    assert_eq!(json.len(), 1, "{json:?}");
    let rep = Report::read(&json[0]).unwrap();
    let names: Vec<&str> = rep.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["storage 20k-200ms", "storage 100k-50ms"]);
    for s in &rep.sections {
        for c in ["log", "redb", "fjall"] {
            for rep in [1, 2] {
                let blocks = s.rows.iter().find(|r| r.name == format!("rep {rep}: {c} blocks")).unwrap();
                assert!(blocks.value >= 1.0, "{blocks:?}");
            }
        }
        let p99 = s.rows.iter().find(|r| r.name == "rep 2: redb commit p99").unwrap();
        assert_eq!(p99.baseline_name.as_deref(), Some("rep 2: log commit p99"));
        assert!(p99.ratio.is_some_and(|x| x > 0.0), "{p99:?}");
    }
    // The stores' directories are gone; only the results file is left.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn storage_writer_rejects_unknown_candidates() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_storage_writer")).args(["--only", "lmdb", "--no-json"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown candidate"));
}

#[test]
fn recovery_bench_recovers_its_chain_with_and_without_the_newest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("recovery.json");
    let out = Command::new(env!("CARGO_BIN_EXE_recovery_bench"))
        .args(["--txs", "30000", "--accounts", "2000", "--block-txs", "1000", "--warm-only"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = v["recoveries"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    // The chain fits in one snapshot interval: one session, its shutdown
    // snapshot at the tip; without it, the whole chain from the genesis.
    for r in runs {
        assert_eq!(r["height"], 30, "{r}");
        assert_eq!(r["cache"], "warm");
    }
    assert_eq!((runs[0]["snapshot_height"].as_u64(), runs[0]["txs_replayed"].as_u64()), (Some(30), Some(0)));
    assert_eq!((runs[1]["snapshot_height"].as_u64(), runs[1]["txs_replayed"].as_u64()), (Some(0), Some(30_000)));
    assert_eq!(v["sessions"][0]["store"]["txs"], 30_000);
    // The data directory is removed.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the results file is left");
}
