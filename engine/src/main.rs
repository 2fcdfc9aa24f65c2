//! `attnet`: the ATT relay/validator node. This binary holds the CLI, the
//! configuration and the wiring; the packet work lives in `dataplane`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod config;
mod decode;
mod demo;
mod doctor;
mod keygen;
mod keys;
mod logs;
mod metrics;
mod node;
mod output;
mod pcap;
mod query;
mod reload;
mod testnet;
mod top;
mod topology;

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
    /// Run the node: data cores on a backend queue each (io_uring,
    /// recvmmsg or pcap replay), the control thread (ledger, blocks), a
    /// live line, and a JSON summary at the end.
    Node(Box<config::Overrides>),
    /// A local demo: a node on io_uring on loopback and an in-process
    /// sender sealing real signed traffic (a few percent malformed), then
    /// the summary and a check that every datagram is accounted for.
    Demo(demo::DemoArgs),
    /// The traffic generator (the same as `attnet-pktgen`): real signed,
    /// sealed ATT traffic to UDP, a pcap file or a DPDK port at a chosen
    /// rate, hostile datagrams over every drop reason, the counts a
    /// correct receiver must report, and receipt latency.
    Pktgen(Box<pktgen::cli::Args>),
    /// Create a node key: the relay's Ed25519 identity, which signs its
    /// WELCOMEs. Writes {"secret": "<64 hex>", "public": "<64 hex>"} to a
    /// new file of mode 0600 (never overwriting one) and prints the public
    /// key, the one clients pin, on stdout. `attnet node --node-key FILE`
    /// uses it.
    Keygen(keygen::KeygenArgs),
    /// An account's end of ATT: a live handshake with a relay (its node
    /// key pinned), then one transaction (send, message, connect, accept,
    /// offer) waited for until its RECEIPT, or the state of an account or
    /// a transaction. Exit 0 committed, 1 refused, 2 usage, 3 timeout.
    Client(Box<client::ClientArgs>),
    /// A data directory's chain, JSON out: status, account PK, inbox PK,
    /// producers, block N, tx ID. Asks the running node through
    /// DIR/admin.sock, or reads the files when no node runs on DIR.
    Query(query::QueryArgs),
    /// Make a damaged data directory (`attnet node` names the file and
    /// offset) start again: cut the block log at its first bad record,
    /// remove damaged snapshots; prints what it did. The node must be
    /// stopped.
    Repair(query::RepairArgs),
    /// Check the host for the node: CPU features, io_uring, limits, socket
    /// buffers, hugepages, DPDK, NICs and IOMMU, clock, CPU isolation,
    /// governor, the data directory. Each finding says what it means and
    /// how to fix it; exit 0 (ok), 1 (warnings), 2 (errors).
    Doctor(doctor::DoctorArgs),
    /// Check a configuration file as `attnet node` does at start, and print
    /// every problem (key, value, what is allowed, the fix), not only the
    /// first: exit 0 when it is good, 2 when not.
    CheckConfig {
        /// The file (`attnet.example.toml` documents every key).
        file: std::path::PathBuf,
    },
    /// A running node's live view: per-core rates, drop reasons, latency
    /// percentiles and the last minute's traffic, refreshed once a second
    /// from its admin socket. --once prints one snapshot (--json: one JSON
    /// line) instead.
    Top(top::TopArgs),
    /// A local network of validators on loopback: separate node processes
    /// (keys, genesis, data directories generated), optional load spread
    /// over them, one live line per node on stderr, and a summary (per
    /// node height, peers, tx/s, finality; conflicting heights across the
    /// nodes' chains) on stdout and in DIR/summary.json.
    Testnet(testnet::TestnetArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Client(a) => return client::main(*a),
        Cmd::Doctor(a) => return doctor::run(a),
        Cmd::CheckConfig { file } => return config::check_file(&file),
        Cmd::Decode { keys, network_id, pcap: None, .. } => keys::load(&keys, network_id).and_then(decode::run_stdin),
        Cmd::Decode { keys, network_id, pcap: Some(file), port } => {
            keys::load(&keys, network_id).and_then(|fp| pcap::run(fp, &file, port))
        }
        Cmd::Node(o) => config::NodeConfig::resolve(*o).and_then(|cfg| {
            let out = node::start(cfg, None)?.wait()?;
            // Printed first: a summary file that cannot be written, or a
            // thread that failed, still leaves the summary on stdout.
            println!("{}", serde_json::to_string_pretty(&out.summary).map_err(|e| e.to_string())?);
            out.finish()
        }),
        Cmd::Demo(a) => demo::run(a),
        Cmd::Pktgen(a) => pktgen::cli::run(*a),
        Cmd::Keygen(a) => keygen::run(a),
        Cmd::Query(a) => query::run(a),
        Cmd::Repair(a) => query::repair(a),
        Cmd::Top(a) => top::run(a),
        Cmd::Testnet(a) => testnet::run(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attnet: {e}");
            ExitCode::from(2)
        }
    }
}
