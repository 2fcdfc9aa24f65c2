//! `attnet-bench`: one command that measures attnet against this machine's
//! limits, every figure next to its same-run baseline. Writes
//! `bench-results/<date>-<host>.json` and `.svg` and regenerates
//! docs/PERFORMANCE.md from them.
//!
//! `cargo build --release --workspace && target/release/attnet-bench [--quick]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bench::measure::Budget;
use bench::report::{machine, Report, VERSION};
use bench::sections::{self, Ctx};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "attnet-bench", about = "Measure attnet against this machine's limits, in one run")]
struct Args {
    /// About 0.3 s per figure and shorter runs (under two minutes on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Directory for the results file and the plot.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Leave docs/PERFORMANCE.md alone.
    #[arg(long)]
    no_docs: bool,
    /// Only these sections (comma-separated: crypto, frame_path, receive,
    /// dpdk, loopback, pktgen); the docs are then left alone.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The attnet binary (default: `attnet` next to this program).
    #[arg(long)]
    engine: Option<PathBuf>,
    /// The traffic generator (default: `attnet-pktgen` next to this program).
    #[arg(long)]
    pktgen: Option<PathBuf>,
    /// Regenerate docs/PERFORMANCE.md (and the plot next to the file) from a
    /// results file, without measuring.
    #[arg(long, value_name = "FILE.json")]
    docs_from: Option<PathBuf>,
    /// Where to write the docs (default: docs/PERFORMANCE.md of the
    /// workspace this program was built in).
    #[arg(long, value_name = "FILE.md")]
    docs_path: Option<PathBuf>,
}

/// The workspace root: two levels above this program (target/release) if
/// that is a checkout, else the one it was built from.
fn workspace_root(exe_dir: &Path) -> PathBuf {
    if let Some(root) = exe_dir.parent().and_then(Path::parent) {
        if root.join("docs").is_dir() && root.join("Cargo.toml").is_file() {
            return root.to_path_buf();
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// How the docs in `docs_dir` link to `file`: relative when both are in
/// `root`, else absolute.
fn link(root: &Path, docs_dir: &Path, file: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (root, docs_dir, file) = (abs(root), abs(docs_dir), abs(file));
    match (file.strip_prefix(&root), docs_dir.strip_prefix(&root)) {
        (Ok(rel), Ok(d)) => {
            let up = "../".repeat(d.components().count());
            format!("{up}{}", rel.display())
        }
        _ => file.display().to_string(),
    }
}

fn write_docs(rep: &Report, root: &Path, docs: &Path, json: &Path, svg: &Path) -> Result<(), String> {
    let docs_dir = docs.parent().unwrap_or(Path::new("."));
    let md = bench::docs::markdown(rep, &link(root, docs_dir, json), &link(root, docs_dir, svg));
    std::fs::write(docs, md).map_err(|e| format!("{}: {e}", docs.display()))?;
    eprintln!("attnet-bench: wrote {}", docs.display());
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let exe_dir = exe.parent().unwrap_or(Path::new(".")).to_path_buf();
    let root = workspace_root(&exe_dir);
    let docs = args.docs_path.clone().unwrap_or_else(|| root.join("docs/PERFORMANCE.md"));

    if let Some(json) = &args.docs_from {
        let rep = Report::read(json)?;
        let svg = json.with_extension("svg");
        bench::plot::write_svg(&rep, &svg)?;
        eprintln!("attnet-bench: wrote {}", svg.display());
        return write_docs(&rep, &root, &docs, json, &svg);
    }
    for s in &args.only {
        if !sections::ALL.contains(&s.as_str()) {
            return Err(format!("--only: unknown section {s:?} (sections: {})", sections::ALL.join(", ")));
        }
    }

    let start = Instant::now();
    let mut budget = if args.quick { Budget::QUICK } else { Budget::FULL };
    if let Some(ms) = env_num("ATTNET_BENCH_ROUND_MS") {
        budget.round = Duration::from_millis(ms);
    }
    if let Some(n) = env_num("ATTNET_BENCH_ROUNDS") {
        budget.rounds = n.max(1) as usize;
    }
    let work = std::env::temp_dir().join(format!("attnet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let ctx = Ctx {
        quick: args.quick,
        budget,
        attnet: args.engine.clone().unwrap_or_else(|| exe_dir.join("attnet")),
        pktgen: args.pktgen.clone().unwrap_or_else(|| exe_dir.join("attnet-pktgen")),
        work: work.clone(),
    };
    eprintln!(
        "attnet-bench: {} run, {} rounds of {} ms per figure",
        if args.quick { "quick" } else { "full" },
        budget.rounds,
        budget.round.as_millis()
    );
    let measured = sections::run(&ctx, &args.only);
    let _ = std::fs::remove_dir_all(&work);

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
        git: machine::git_commit(&root),
        sections: measured,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let json = args.out.join(format!("{}.json", rep.stem()));
    let svg = args.out.join(format!("{}.svg", rep.stem()));
    rep.write(&json)?;
    eprintln!("attnet-bench: wrote {}", json.display());
    bench::plot::write_svg(&rep, &svg)?;
    eprintln!("attnet-bench: wrote {}", svg.display());
    if !args.no_docs && args.only.is_empty() {
        write_docs(&rep, &root, &docs, &json, &svg)?;
    }
    eprintln!("attnet-bench: done in {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("attnet-bench: {e}");
        std::process::exit(1);
    }
}
