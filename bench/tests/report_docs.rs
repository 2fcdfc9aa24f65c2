//! The results file round-trips, and the docs generator turns a small
//! fixed results file into the expected markdown.

use bench::report::{CpuFlags, Report, Row, Section};

const FIXED: &str = r#"{
  "version": 1,
  "date": "2026-01-02",
  "host": "testhost",
  "cpu": "Test CPU @ 1 GHz",
  "cpu_flags": {"aes": true, "vaes": false, "avx2": true, "avx512f": false, "sha_ni": true},
  "cores": 2,
  "kernel": "6.1.0-test",
  "quick": true,
  "git": "abc1234",
  "sections": [
    {"name": "crypto", "skipped": null, "note": "", "rows": [
      {"name": "256B-1tx-plain: AES-256-GCM open, aws-lc-rs", "value": 2.5, "unit": "GB/s", "baseline_name": null,
       "baseline": null, "ratio": null, "goal": null, "higher_is_better": true},
      {"name": "256B-1tx-plain: AES-256-GCM open, ring", "value": 2.0, "unit": "GB/s", "baseline_name": "aws-lc-rs",
       "baseline": 2.5, "ratio": 0.8, "goal": null, "higher_is_better": true}
    ]},
    {"name": "frame_path", "skipped": null, "note": "Stages against raw parts.", "rows": [
      {"name": "256B-1tx-plain: decode", "value": 2500.0, "unit": "k frames/s", "baseline_name": null,
       "baseline": null, "ratio": null, "goal": null, "higher_is_better": true},
      {"name": "256B-1tx-plain: +decompress/ids", "value": 4.5, "unit": "k frames/s",
       "baseline_name": "raw AES + SHA-256", "baseline": 5.0, "ratio": 0.9, "goal": 0.9, "higher_is_better": true},
      {"name": "256B-1tx-plain: full", "value": 50.0, "unit": "k tx/s", "baseline_name": "raw batch verify",
       "baseline": 62.5, "ratio": 0.8, "goal": 0.9, "higher_is_better": true}
    ]},
    {"name": "dpdk", "skipped": "dpdk-testpmd not installed", "note": "", "rows": []},
    {"name": "loopback", "skipped": null, "note": "Loopback.", "rows": [
      {"name": "25 % of C: accepted", "value": 10.0, "unit": "k tx/s", "baseline_name": "offered",
       "baseline": 10.0, "ratio": 1.0, "goal": null, "higher_is_better": true},
      {"name": "25 % of C: inclusion p50", "value": 150.0, "unit": "ms", "baseline_name": null,
       "baseline": null, "ratio": null, "goal": null, "higher_is_better": false},
      {"name": "25 % of C: inclusion p99", "value": 310.0, "unit": "ms", "baseline_name": null,
       "baseline": null, "ratio": null, "goal": null, "higher_is_better": false}
    ]},
    {"name": "attack", "skipped": null, "note": "Attack.", "rows": [
      {"name": "attack auth_failed", "value": 30.0, "unit": "k tx/s", "baseline_name": "attack datagrams truncated",
       "baseline": 31.0, "ratio": 0.9677, "goal": 0.9, "higher_is_better": true},
      {"name": "attack bad signatures", "value": 5.0, "unit": "k tx/s", "baseline_name": "attack datagrams truncated",
       "baseline": 31.0, "ratio": 0.1613, "goal": 0.9, "higher_is_better": true}
    ]}
  ]
}"#;

#[test]
fn docs_from_fixed_json() {
    let rep = Report::from_json(FIXED).expect("fixed JSON parses");
    let md = bench::docs::markdown(&rep, "../bench-results/x.json", "../bench-results/x.svg");
    for line in [
        "# Performance",
        "| CPU | Test CPU @ 1 GHz |",
        "| CPU flags | aes yes, vaes no, avx2 yes, avx512f no, sha_ni yes |",
        "| cores | 2 |",
        "| kernel | 6.1.0-test |",
        "| date | 2026-01-02 |",
        "| commit | abc1234 |",
        "![Ratios of each figure to its same-run baseline](../bench-results/x.svg)",
        "cargo build --release --workspace && target/release/attnet-bench [--quick]",
        "| 256B-1tx-plain: AES-256-GCM open, ring | 2.00 | GB/s | aws-lc-rs | 2.50 | 0.80 |  |",
        "In this run aws-lc-rs was the fastest AES-256-GCM library on 1 of 1 rows.",
        "## `frame_path`",
        "| figure | value | unit | baseline | baseline value | ratio | goal |",
        "| 256B-1tx-plain: decode | 2500 | k frames/s |  |  |  |  |",
        "| 256B-1tx-plain: +decompress/ids | 4.50 | k frames/s | raw AES + SHA-256 | 5.00 | **0.90** | ≥ 0.90 |",
        "| 256B-1tx-plain: full | 50.0 | k tx/s | raw batch verify | 62.5 | **0.80** (missed) | ≥ 0.90 |",
        "## `dpdk`",
        "Skipped: dpdk-testpmd not installed.",
        "| 25 % of C: accepted | 10.0 | k tx/s | offered | 10.0 | 1.00 |  |",
        "| 25 % of C: inclusion p99 | 310 | ms |  |  |  |  |",
        "| frame path without signatures (decode + decrypt + decompress + ids) ≥ 0.90 of its raw parts | `frame_path` | **met** (0.90) |",
        "| full frame path ≥ 0.90 of the ed25519-zebra batch-verify ceiling, one batch of 256 (tx/s) | `frame_path` | \
         **missed** (0.80) |",
        "| DPDK receive (`--stop-after rx`) ≥ 0.50 of dpdk-testpmd rxonly | `dpdk` | not measured (section skipped) |",
        "| io_uring receive ≥ 1.0 of recvmmsg | `receive` | not run (`--only`) |",
        "## `attack`",
        "| attack bad signatures | 5.00 | k tx/s | attack datagrams truncated | 31.0 | **0.16** (missed) | ≥ 0.90 |",
        "| legitimate accepted tx/s under attack ≥ 0.90 of the same capture with the attack datagrams truncated | \
         `attack` | met on 1 of 2 rows (ratios 0.16-0.97) |",
        "## Build policy",
    ] {
        assert!(md.lines().any(|l| l == line), "missing line {line:?} in:\n{md}");
    }
}

#[test]
fn json_round_trips() {
    let rep = Report::from_json(FIXED).unwrap();
    let again = Report::from_json(&rep.to_json()).unwrap();
    assert_eq!(rep, again);

    let built = Report {
        version: 1,
        date: "2026-11-26".into(),
        host: "h".into(),
        cpu: "c".into(),
        cpu_flags: CpuFlags { aes: true, ..CpuFlags::default() },
        ed25519_backend: String::new(),
        cores: 2,
        kernel: "k".into(),
        quick: false,
        git: "g".into(),
        sections: vec![
            Section::measured(
                "receive",
                "n",
                vec![Row::vs("io_uring", 5.5, "M datagrams/s", "recvmmsg", 5.0).goal(1.0)],
            ),
            Section::skipped("pktgen", "not yet"),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("{}.json", built.stem()));
    built.write(&p).unwrap();
    let back = Report::read(&p).unwrap();
    assert_eq!(built, back);
    assert_eq!(back.sections[0].rows[0].ratio, Some(1.1));
    assert_eq!(back.sections[0].rows[0].meets_goal(), Some(true));
    assert!(Report::from_json(&FIXED.replace("\"version\": 1", "\"version\": 2")).is_err());
}

#[test]
fn plot_writes_svg() {
    let rep = Report::from_json(FIXED).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.svg");
    bench::plot::write_svg(&rep, &p).unwrap();
    let svg = std::fs::read_to_string(&p).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("+decompress/ids vs raw AES + SHA-256"), "{svg}");
}
