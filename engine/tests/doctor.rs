//! `attnet doctor` on this machine: its real findings, as JSON, agree with
//! the exit code, and every finding that is not ok says what it means and
//! (for warnings and errors) how to fix it. The cases this machine cannot
//! show are the unit tests' fixtures (`engine/src/doctor.rs`).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");

#[test]
fn doctor_reports_this_machine() {
    let dir = std::env::temp_dir().join(format!("attnet-doctor-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = Command::new(BIN).args(["doctor", "--json", "--data-dir"]).arg(&dir).output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", o));
    let findings = v["findings"].as_array().unwrap();
    let level =
        |check: &str| findings.iter().find(|f| f["check"] == check).map(|f| f["level"].as_str().unwrap().to_string());
    // The project's tests run the io_uring backend here, so the probe
    // must find it working; the AES-GCM and x86-64-v3 paths run here too.
    assert_eq!(level("io_uring").as_deref(), Some("ok"), "{v}");
    assert_eq!(level("cpu.aes").as_deref(), Some("ok"), "{v}");
    assert_eq!(level("cpu.avx2").as_deref(), Some("ok"), "{v}");
    for check in ["limits.memlock", "net.rmem_max", "hugepages", "dpdk", "nics", "clock", "cpus.isolation"] {
        assert!(level(check).is_some(), "{check} missing: {v}");
    }
    assert!(level("data_dir.filesystem").is_some() && level("data_dir.free").is_some(), "{v}");
    let (mut warns, mut errors) = (0, 0);
    for f in findings {
        let l = f["level"].as_str().unwrap();
        assert!(!f["meaning"].as_str().unwrap().is_empty(), "{f}");
        if l == "warn" || l == "error" {
            assert!(!f["fix"].as_str().unwrap().is_empty(), "a {l} without a fix: {f}");
        }
        warns += usize::from(l == "warn");
        errors += usize::from(l == "error");
    }
    assert_eq!((v["warnings"].as_u64(), v["errors"].as_u64()), (Some(warns as u64), Some(errors as u64)));
    let code = if errors > 0 {
        2
    } else if warns > 0 {
        1
    } else {
        0
    };
    assert_eq!(o.status.code(), Some(code), "{v}");
    assert_eq!(v["exit"], code);
    // The text report says the same, one line per finding.
    let t = Command::new(BIN).args(["doctor", "--data-dir"]).arg(&dir).output().unwrap();
    assert_eq!(t.status.code(), Some(code));
    let text = String::from_utf8(t.stdout).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with('[')).count(), findings.len(), "{text}");
    // A configuration file it cannot read is an error, exit 2.
    let bad = Command::new(BIN).args(["doctor", "--config", "/nonexistent/attnet.toml"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/attnet.toml"));
    std::fs::remove_dir_all(dir).unwrap();
}
