//! `attnet`: the ATT relay/validator node. This binary holds the CLI, the
//! configuration and the wiring; the packet work lives in `dataplane`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decode;
mod keys;
mod pcap;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "attnet", version, about = "ATT v1 kernel-bypass relay and validator node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Judge ATT v1 datagrams as a relay's transaction path (channels 1004
    /// and 1005). Reads one hex datagram per line on stdin and prints one
    /// JSON verdict per line, or with --pcap prints a JSON summary of a
    /// capture.
    Decode {
        /// Session keys: {"sessions": [{"id": 3, "c2r": "<64 hex>", "r2c": "<64 hex>"}]}
        #[arg(long)]
        keys: std::path::PathBuf,
        /// Network id in the transaction signing message.
        #[arg(long, default_value_t = 1)]
        network_id: u32,
        /// Read a pcap or pcapng capture (Ethernet, optional 802.1Q,
        /// IPv4/IPv6, UDP) instead of stdin.
        #[arg(long)]
        pcap: Option<std::path::PathBuf>,
        /// UDP destination port of ATT traffic in the capture.
        #[arg(long, default_value_t = 7100)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Decode { keys, network_id, pcap: None, .. } => keys::load(&keys, network_id).and_then(decode::run_stdin),
        Cmd::Decode { keys, network_id, pcap: Some(file), port } => {
            keys::load(&keys, network_id).and_then(|fp| pcap::run(fp, &file, port))
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attnet: {e}");
            ExitCode::from(2)
        }
    }
}
