//! `storage_writer`: the synthetic block writer of docs/STORAGE.md. Final
//! blocks of random 256-byte transactions on a fixed schedule, committed
//! durably one by one into each candidate store (`bench::storage`), the
//! candidates one after the other in the same run, repeated. Prints
//! markdown tables and writes `bench-results/<date>-<host>-storage.json`.
//!
//! `cargo build --release -p bench --bin storage_writer &&
//!  target/release/storage_writer [--secs 20] [--reps 3] [--dir /tmp]`

use std::path::PathBuf;
use std::time::Instant;

use bench::report::{machine, Report, VERSION};
use bench::storage::{self, Candidate, Run, Scenario};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "storage_writer", about = "Measure durable block commits of the block-storage candidates")]
struct Args {
    /// Seconds of blocks per candidate, scenario and repetition.
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
    /// Repetitions (the candidates' order rotates between them).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// 2 s a run, one repetition (about 20 s in all).
    #[arg(long)]
    quick: bool,
    /// Where the stores are written (on the filesystem the node's
    /// --data-dir would use); default: the temp directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Candidates (comma-separated: log, redb, fjall).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Scenarios (comma-separated: 100k-200ms, 20k-200ms, 100k-50ms).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Directory for the results file.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Print the tables only.
    #[arg(long)]
    no_json: bool,
}

fn run(args: Args) -> Result<(), String> {
    let candidates: Vec<Candidate> = if args.only.is_empty() {
        Candidate::ALL.to_vec()
    } else {
        args.only
            .iter()
            .map(|s| Candidate::parse(s).ok_or_else(|| format!("--only: unknown candidate {s:?} (log, redb, fjall)")))
            .collect::<Result<_, _>>()?
    };
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|s| {
                Scenario::ALL
                    .into_iter()
                    .find(|x| x.key() == *s)
                    .ok_or_else(|| format!("--scenarios: unknown scenario {s:?} (100k-200ms, 20k-200ms, 100k-50ms)"))
            })
            .collect::<Result<_, _>>()?
    };
    let (secs, reps) = if args.quick { (2.0, 1) } else { (args.secs, args.reps.max(1)) };
    if !secs.is_finite() || secs <= 0.0 {
        return Err("--secs must be a positive number".into());
    }
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let start = Instant::now();
    // runs[scenario][rep]
    let mut runs: Vec<Vec<Vec<Run>>> = vec![Vec::new(); scenarios.len()];
    for rep in 0..reps {
        for (si, s) in scenarios.iter().enumerate() {
            let mut these = Vec::new();
            for k in 0..candidates.len() {
                let c = candidates[(k + rep) % candidates.len()];
                let r = storage::run(c, *s, s.blocks_in(secs), &base).map_err(|e| format!("{}: {e}", c.name()))?;
                eprintln!(
                    "storage_writer: rep {} {} {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {:.2}x written",
                    rep + 1,
                    s.key(),
                    c.name(),
                    r.p50_ms(),
                    r.p99_ms(),
                    r.max_ms(),
                    r.amplification()
                );
                these.push(r);
            }
            these.sort_by_key(|r| candidates.iter().position(|c| *c == r.candidate));
            runs[si].push(these);
        }
    }
    println!(
        "{} on {} ({} cores, kernel {}); stores under {}; {secs} s a run, {reps} repetition(s); {:.0} s in all.\n",
        machine::cpu(),
        machine::hostname(),
        machine::cores(),
        machine::kernel(),
        base.display(),
        start.elapsed().as_secs_f64()
    );
    for (s, r) in scenarios.iter().zip(&runs) {
        println!("{}", storage::table(*s, r));
    }
    if args.no_json {
        return Ok(());
    }
    let rep = Report {
        version: VERSION,
        date: machine::today(),
        host: machine::hostname(),
        cpu: machine::cpu(),
        cpu_flags: machine::cpu_flags(),
        ed25519_backend: dataplane::host::ed25519_backend().into(),
        cores: machine::cores(),
        kernel: machine::kernel(),
        quick: args.quick,
        git: machine::git_commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
        sections: scenarios.iter().zip(&runs).map(|(s, r)| storage::section(*s, r, secs)).collect(),
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let json = args.out.join(format!("{}-storage.json", rep.stem()));
    rep.write(&json)?;
    eprintln!("storage_writer: wrote {}", json.display());
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("storage_writer: {e}");
        std::process::exit(1);
    }
}
