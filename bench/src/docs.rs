//! docs/PERFORMANCE.md, generated as a whole from a results file: the
//! machine, how to reproduce, the goals and whether this run met them, one
//! table per section, the plot, and the durable method notes
//! (docs/performance-notes.md, included at build time).

use std::fmt::Write;

use crate::report::{Report, Row, Section};

/// The method and policy text that follows the tables.
pub const NOTES: &str = include_str!("../../docs/performance-notes.md");

/// A project goal: a ratio some rows of a section must reach.
pub struct Goal {
    pub what: &'static str,
    pub section: &'static str,
    /// Which of the section's rows the goal is about.
    pub applies: fn(&Row) -> bool,
}

fn baseline_has(r: &Row, s: &str) -> bool {
    r.goal.is_some() && r.baseline_name.as_deref().is_some_and(|b| b.contains(s))
}

/// The goals, in the order the docs list them.
pub const GOALS: [Goal; 13] = [
    Goal {
        what: "frame path without signatures (decode + decrypt + decompress + ids) ≥ 0.90 of its raw parts",
        section: "frame_path",
        applies: |r| r.goal.is_some() && r.name.ends_with("+decompress/ids"),
    },
    Goal {
        what: "full frame path ≥ 0.90 of the ed25519-zebra batch-verify ceiling, one batch of 256 (tx/s)",
        section: "frame_path",
        applies: |r| r.goal.is_some() && r.name.ends_with(": full"),
    },
    Goal {
        what: "committed tx/s (pcap replay, a data core per vCPU) ≥ 0.75 of vCPUs × the batch-of-256 ceiling",
        section: "loopback",
        applies: |r| r.goal.is_some() && r.name.starts_with("committed"),
    },
    Goal {
        what:
            "one validator: finalized tx/s (every block through the BFT engine) ≥ 0.90 of the same replay final at once",
        section: "loopback",
        applies: |r| r.goal.is_some() && r.name.starts_with("one validator"),
    },
    Goal {
        what: "one validator: submit → finality p99 at 50 % of C ≤ the block interval + 100 ms",
        section: "loopback",
        applies: |r| r.goal.is_some() && r.name.contains("one validator: finality p99"),
    },
    Goal {
        what: "4 validators (testnet, 4 processes): finalized tx/s ≥ 0.5 of vCPUs × the batch-of-256 ceiling ÷ 4",
        section: "testnet",
        applies: |r| r.goal.is_some() && r.name.contains("finalized ("),
    },
    Goal {
        what: "4 validators at half the finalized rate: finality p50 ≤ 500 ms",
        section: "testnet",
        applies: |r| r.goal.is_some() && r.name.ends_with("finality p50"),
    },
    Goal {
        what: "4 validators at half the finalized rate: finality p99 ≤ 1 s",
        section: "testnet",
        applies: |r| r.goal.is_some() && r.name.ends_with("finality p99"),
    },
    Goal { what: "io_uring receive ≥ 1.0 of recvmmsg", section: "receive", applies: |r| baseline_has(r, "recvmmsg") },
    Goal {
        what: "DPDK receive (`--stop-after rx`) ≥ 0.50 of dpdk-testpmd rxonly",
        section: "dpdk",
        applies: |r| baseline_has(r, "testpmd rxonly"),
    },
    Goal {
        what: "pktgen UDP output ≥ 0.80 of a bare sendmmsg loop",
        section: "pktgen",
        applies: |r| baseline_has(r, "sendmmsg"),
    },
    Goal {
        what: "pktgen DPDK tx ≥ 0.50 of dpdk-testpmd txonly",
        section: "pktgen",
        applies: |r| baseline_has(r, "txonly"),
    },
    Goal {
        what: "legitimate accepted tx/s under attack ≥ 0.90 of the same capture with the attack datagrams truncated",
        section: "attack",
        applies: |r| baseline_has(r, crate::sections::attack::BASELINE),
    },
];

/// A figure with about three significant digits.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// "≥ 0.90" or "≤ 0.90".
fn goal_text(r: &Row) -> String {
    match r.goal {
        Some(g) => format!("{} {g:.2}", if r.higher_is_better { "≥" } else { "≤" }),
        None => String::new(),
    }
}

/// The ratio cell: bold where there is a goal, with its verdict.
fn ratio_cell(r: &Row) -> String {
    match (r.ratio, r.meets_goal()) {
        (Some(x), Some(true)) => format!("**{x:.2}**"),
        (Some(x), Some(false)) => format!("**{}** (missed)", missed_ratio(x, r.goal)),
        (Some(x), None) => format!("{x:.2}"),
        (None, _) => String::new(),
    }
}

/// A missed ratio with two decimals, or three when two would round it up
/// to its goal (0.746 against 0.75 is not "0.75 (missed)").
fn missed_ratio(x: f64, goal: Option<f64>) -> String {
    let two = format!("{x:.2}");
    match goal {
        Some(g) if two.parse::<f64>().is_ok_and(|t| t >= g) => format!("{x:.3}"),
        _ => two,
    }
}

/// One section's table (or the reason it was skipped).
pub fn section_table(s: &Section) -> String {
    let mut o = String::new();
    if let Some(why) = &s.skipped {
        let _ = writeln!(o, "Skipped: {why}.");
        return o;
    }
    if !s.note.is_empty() {
        let _ = writeln!(o, "{}\n", s.note);
    }
    let _ = writeln!(o, "| figure | value | unit | baseline | baseline value | ratio | goal |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for r in &s.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name.replace('|', "\\|"),
            fmt_num(r.value),
            r.unit,
            r.baseline_name.as_deref().unwrap_or(""),
            r.baseline.map(fmt_num).unwrap_or_default(),
            ratio_cell(r),
            goal_text(r)
        );
    }
    for f in findings(s) {
        let _ = writeln!(o, "\n{f}");
    }
    o
}

/// Sentences computed from a section's rows, printed under its table.
fn findings(s: &Section) -> Vec<String> {
    let mut out = Vec::new();
    if s.name == "crypto" {
        // Per workload row, is aws-lc-rs faster than both other AES libraries?
        let aes: Vec<&Row> = s.rows.iter().filter(|r| r.baseline_name.as_deref() == Some("aws-lc-rs")).collect();
        let mut workloads: Vec<&str> = aes.iter().filter_map(|r| r.name.split(':').next()).collect();
        workloads.dedup();
        let fastest = workloads
            .iter()
            .filter(|w| {
                aes.iter().filter(|r| r.name.starts_with(&format!("{w}:"))).all(|r| r.ratio.is_some_and(|x| x < 1.0))
            })
            .count();
        if !workloads.is_empty() {
            out.push(format!(
                "In this run aws-lc-rs was the fastest AES-256-GCM library on {fastest} of {} rows.",
                workloads.len()
            ));
        }
    }
    out
}

/// The goal table: each goal, whether this run met it, on how many rows.
pub fn goals_table(rep: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| goal | section | this run |");
    let _ = writeln!(o, "|---|---|---|");
    for g in &GOALS {
        let s = rep.sections.iter().find(|s| s.name == g.section);
        let status = match s {
            None => "not run (`--only`)".to_string(),
            Some(s) if s.skipped.is_some() => "not measured (section skipped)".to_string(),
            Some(s) => {
                let rows: Vec<&Row> = s.rows.iter().filter(|r| (g.applies)(r)).collect();
                let met = rows.iter().filter(|r| r.meets_goal() == Some(true)).count();
                let ratios: Vec<f64> = rows.iter().filter_map(|r| r.ratio).collect();
                let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                match rows.len() {
                    0 => "no row".to_string(),
                    1 if met == 1 => format!("**met** ({lo:.2})"),
                    1 => format!("**missed** ({})", missed_ratio(lo, rows.first().and_then(|r| r.goal))),
                    n => format!("met on {met} of {n} rows (ratios {lo:.2}-{hi:.2})"),
                }
            }
        };
        let _ = writeln!(o, "| {} | `{}` | {status} |", g.what, g.section);
    }
    o
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The whole of docs/PERFORMANCE.md. `json` and `svg` are the results and
/// plot files as the docs should link them (relative to docs/).
pub fn markdown(rep: &Report, json: &str, svg: &str) -> String {
    let mut o = String::new();
    let f = &rep.cpu_flags;
    let _ = writeln!(o, "# Performance\n");
    let _ = writeln!(
        o,
        "<!-- Generated by attnet-bench from {json}; do not edit by hand: the prose below the tables is \
         docs/performance-notes.md. -->\n"
    );
    let _ = writeln!(
        o,
        "Every figure below comes from one run of `attnet-bench` on the machine named here and stands next to \
         a baseline measured in the same run, on the same bytes where the baseline is a library: the machine \
         is shared and noisy, so the goals are ratios. Absolute numbers from another day or machine are not \
         comparable.\n"
    );
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| CPU | {} |", rep.cpu);
    let _ = writeln!(
        o,
        "| CPU flags | aes {}, vaes {}, avx2 {}, avx512f {}, sha_ni {} |",
        yes(f.aes),
        yes(f.vaes),
        yes(f.avx2),
        yes(f.avx512f),
        yes(f.sha_ni)
    );
    if !rep.ed25519_backend.is_empty() {
        let _ = writeln!(o, "| Ed25519 backend | {} |", rep.ed25519_backend);
    }
    let _ = writeln!(o, "| cores | {} |", rep.cores);
    let _ = writeln!(o, "| kernel | {} |", rep.kernel);
    let _ = writeln!(o, "| host | {} |", rep.host);
    let _ = writeln!(o, "| date | {} |", rep.date);
    let _ = writeln!(
        o,
        "| run | {} |",
        if rep.quick { "quick (`--quick`: about 0.3 s per figure)" } else { "full (about 2 s per figure)" }
    );
    let _ = writeln!(o, "| commit | {} |", rep.git);
    let _ = writeln!(o, "| results | [{json}]({json}) |\n");
    let _ = writeln!(o, "Reproduce (as root for the DPDK section's hugepages):\n");
    let _ = writeln!(o, "```sh\ncargo build --release --workspace && target/release/attnet-bench [--quick]\n```\n");
    let _ = writeln!(
        o,
        "It writes `bench-results/<date>-<host>.json` and `.svg` and regenerates this file \
         (`--no-docs` leaves it alone; `attnet-bench --docs-from FILE.json` regenerates it without measuring).\n"
    );
    let _ = writeln!(o, "![Ratios of each figure to its same-run baseline]({svg})\n");
    let _ = writeln!(o, "## Goals\n");
    o.push_str(&goals_table(rep));
    o.push('\n');
    for s in &rep.sections {
        let _ = writeln!(o, "## `{}`\n", s.name);
        o.push_str(&section_table(s));
        o.push('\n');
    }
    o.push_str(NOTES.trim_end());
    o.push('\n');
    o
}
