//! `attnet-pktgen`: the traffic generator's own binary (the same as
//! `attnet pktgen`). See docs/PKTGEN.md.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "attnet-pktgen", version, about = "ATT v1 traffic generator with exact expected counts")]
struct Cli {
    #[command(flatten)]
    args: pktgen::cli::Args,
}

fn main() {
    if let Err(e) = pktgen::cli::run(Cli::parse().args) {
        eprintln!("attnet-pktgen: {e}");
        std::process::exit(2);
    }
}
