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
    // 6 rows x (aws-lc-rs, ring, aes-gcm, single, batch) + 3 LZ4 rows.
    assert_eq!(s.rows.len(), 33, "{:?}", s.rows);
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
