//! The sections of `attnet-bench`, each measured against its baseline in
//! the same run.

use std::path::PathBuf;
use std::time::Instant;

use crate::measure::Budget;
use crate::report::Section;

pub mod attack;
pub mod dpdk;
pub mod loopback;
pub mod path;
pub mod pktgen;
pub mod receive;
pub mod testnet;

/// Every section, in run order.
pub const ALL: [&str; 8] = ["crypto", "frame_path", "receive", "dpdk", "loopback", "testnet", "pktgen", "attack"];

/// What the sections need.
pub struct Ctx {
    pub quick: bool,
    pub budget: Budget,
    /// The `attnet` binary.
    pub attnet: PathBuf,
    /// The `attnet-pktgen` binary.
    pub pktgen: PathBuf,
    /// Scratch directory for captures, keys and summaries.
    pub work: PathBuf,
}

/// A section measured on its own.
type SectionFn = fn(&Ctx) -> Section;

/// Runs the sections named in `only` (all when empty), in [`ALL`]'s order,
/// printing progress on stderr.
pub fn run(ctx: &Ctx, only: &[String]) -> Vec<Section> {
    let want = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    let mut out = Vec::new();
    let names = ALL;
    let total = names.iter().filter(|n| want(n)).count() as u64;
    // Each section's line says how far the run is: sections done of those
    // asked for, the time so far, and the time left at the mean so far.
    let started = Instant::now();
    let mut done = 0u64;
    let mut progress = |s: &Section, t: Instant| {
        let what = match &s.skipped {
            Some(r) => format!("skipped: {r}"),
            None => format!("{} rows", s.rows.len()),
        };
        done += 1;
        let so_far = started.elapsed().as_secs_f64();
        let left = so_far / done as f64 * total.saturating_sub(done) as f64;
        eprintln!(
            "attnet-bench: {} done in {:.1} s ({what}); {done}/{total} sections, {so_far:.0} s so far, about {left:.0} s left",
            s.name,
            t.elapsed().as_secs_f64()
        );
    };
    if want("crypto") || want("frame_path") {
        let t = Instant::now();
        let (c, p) = path::measure(ctx, want("crypto"), want("frame_path"));
        for s in [c, p].into_iter().flatten() {
            progress(&s, t);
            out.push(s);
        }
    }
    let rest: [(&str, SectionFn); 6] = [
        ("receive", receive::section),
        ("dpdk", dpdk::section),
        ("loopback", loopback::section),
        ("testnet", testnet::section),
        ("pktgen", |ctx| match pktgen::pktgen_rows(ctx) {
            Ok(rows) => Section::measured("pktgen", pktgen::NOTE, rows),
            Err(e) => Section::skipped("pktgen", e),
        }),
        ("attack", attack::section),
    ];
    for (name, f) in rest {
        if want(name) {
            let t = Instant::now();
            let s = f(ctx);
            progress(&s, t);
            out.push(s);
        }
    }
    out
}
