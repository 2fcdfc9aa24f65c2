//! `attnet node` configuration: a TOML file (every key optional) with a
//! command-line override for every key. Unknown keys and bad values are
//! errors that name the key.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Which receive backend to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// The faster of io_uring and recvmmsg on this machine, by a probe of
    /// a few tens of milliseconds at start (the default; the log says which
    /// and why).
    Auto,
    /// io_uring multishot receive (falls back to recvmmsg if the kernel
    /// refuses it).
    #[value(name = "io_uring")]
    IoUring,
    Recvmmsg,
    /// Offline replay of a capture.
    Pcap,
    /// A DPDK port (kernel bypass); see the `[dpdk]` table.
    Dpdk,
}

/// `log_format`: how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `attnet: message` lines (warnings and errors say so), for terminals.
    #[default]
    Text,
    /// One JSON object a line: time, level, target, message and fields.
    Json,
}

/// The `[dpdk]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkFile {
    /// EAL arguments, e.g. ["-l", "0-2", "-a", "0000:3b:00.0"] or
    /// ["--no-huge", "-m", "512", "--vdev=net_null0"].
    pub eal_args: Option<Vec<String>>,
    /// Device name (as the EAL knows it) or port id.
    pub port: Option<String>,
    pub rx_desc: Option<u16>,
    pub mbufs: Option<u32>,
    /// The node's IPv4 address on the port: ARP requests for it are answered.
    pub ipv4: Option<std::net::Ipv4Addr>,
}

/// Whether threads are pinned when `pin` is not set: only when every data
/// core has a CPU of its own beside the control thread's (cores < CPUs).
/// With as many data cores as CPUs one of them would share CPU 0 with the
/// control thread, and pinned the other cores wait for it; unpinned, the
/// scheduler keeps both CPUs busy (measured: docs/NODE.md, "Data cores").
pub fn default_pin(cores: usize, cpus: usize) -> bool {
    cores < cpus
}

/// The socket receive buffer asked for when `rcvbuf` is not set.
pub const DEFAULT_RCVBUF: usize = 4 << 20;

/// The file format: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub backend: Option<BackendChoice>,
    pub pcap: Option<PathBuf>,
    #[serde(rename = "loop")]
    pub loops: Option<u32>,
    pub listen: Option<String>,
    pub port: Option<u16>,
    pub cores: Option<usize>,
    pub shards: Option<usize>,
    pub keys: Option<PathBuf>,
    pub genesis: Option<PathBuf>,
    pub network_id: Option<u32>,
    pub block_interval_ms: Option<u64>,
    pub propose_timeout_ms: Option<u64>,
    pub block_max_txs: Option<u32>,
    pub empty_blocks: Option<bool>,
    pub throttle_per_s: Option<u32>,
    pub throttle_burst: Option<u32>,
    pub throttle_cooldown_ms: Option<u32>,
    pub duration_s: Option<f64>,
    pub summary_json: Option<PathBuf>,
    pub accepted_ids: Option<PathBuf>,
    pub busy_poll: Option<bool>,
    pub pin: Option<bool>,
    pub live: Option<bool>,
    pub ring_depth: Option<usize>,
    pub uring_buffers: Option<u16>,
    pub rcvbuf: Option<usize>,
    pub stop_after: Option<StopAfterChoice>,
    pub receipts: Option<bool>,
    pub node_key: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub metrics: Option<String>,
    pub admin: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
    pub committed_ids: Option<PathBuf>,
    pub snapshot_txs: Option<u64>,
    pub retain_mb: Option<u64>,
    pub hello_cookie_threshold: Option<u32>,
    pub hello_source_rate: Option<u32>,
    pub sessions_per_source: Option<u32>,
    pub session_idle_s: Option<u32>,
    pub validator_slots: Option<u32>,
    pub query_queue: Option<u32>,
    pub verify_batch: Option<usize>,
    pub verify_budget_us: Option<u64>,
    pub dpdk: Option<DpdkFile>,
}

/// `stop_after`: `full` (default) and `verify` (the same: every stage,
/// signatures included) run everything; `rx` only receives (a receive
/// baseline: nothing reaches the frame path, the ledger or receipts).
/// `decode`, `decrypt` and `decompress` are parsed only to be refused with
/// a clear message: they would hand unverified transactions to the ledger,
/// and stage measurements live in `attnet-bench`, which drives the frame
/// path directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StopAfterChoice {
    Rx,
    Decode,
    Decrypt,
    Decompress,
    Verify,
    Full,
}

/// Command-line overrides (same names as the file's keys).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Capture to replay with --backend pcap.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Replay the capture this many times.
    #[arg(long = "loop")]
    pub loops: Option<u32>,
    /// Address to listen on (default 0.0.0.0:7100).
    #[arg(long)]
    pub listen: Option<String>,
    /// UDP destination port of ATT traffic in a capture (default 7100).
    #[arg(long)]
    pub port: Option<u16>,
    /// Data cores (default: all but one, at least one).
    #[arg(long)]
    pub cores: Option<usize>,
    /// Transaction shards (default 4).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Session keys file (same format as `attnet decode --keys`).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Genesis file (balances and network id).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Network id (default 1); with --genesis it must equal the file's.
    #[arg(long)]
    pub network_id: Option<u32>,
    /// Block interval in milliseconds (default 200).
    #[arg(long = "block-interval")]
    pub block_interval_ms: Option<u64>,
    /// A validator's wait for a height's proposal before it votes nil and
    /// the next round's proposer takes over, in milliseconds (default 3000).
    #[arg(long = "propose-timeout")]
    pub propose_timeout_ms: Option<u64>,
    /// Largest block in transactions (default 10000).
    #[arg(long)]
    pub block_max_txs: Option<u32>,
    /// Seal blocks even when no transaction arrived.
    #[arg(long)]
    pub empty_blocks: Option<bool>,
    /// A session's failure budget: failed signatures and ledger refusals a
    /// second it may cause before its frames are dropped as `throttled`
    /// (default 100; 0 turns budgets off).
    #[arg(long)]
    pub throttle_per_s: Option<u32>,
    /// Failures a session may cause at once on top of the rate (default 200).
    #[arg(long)]
    pub throttle_burst: Option<u32>,
    /// How long an over-budget session's frames are dropped, ms (default 1000).
    #[arg(long)]
    pub throttle_cooldown_ms: Option<u32>,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM or,
    /// with pcap, the end of the capture).
    #[arg(long = "duration")]
    pub duration_s: Option<f64>,
    /// Write the summary JSON here too.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Write the ids of the transactions the ledger took (applied or
    /// queued behind a nonce gap), one hex id a line.
    #[arg(long)]
    pub accepted_ids: Option<PathBuf>,
    /// Spin instead of blocking when idle (isolated cores, benchmarks).
    #[arg(long)]
    pub busy_poll: Option<bool>,
    /// Pin data cores and the control thread to CPUs (default true).
    #[arg(long)]
    pub pin: Option<bool>,
    /// Print the live line even when stderr is not a terminal.
    #[arg(long)]
    pub live: Option<bool>,
    /// Batches each core→shard ring holds (default 64).
    #[arg(long)]
    pub ring_depth: Option<usize>,
    /// io_uring provided buffers per queue (default 4096).
    #[arg(long)]
    pub uring_buffers: Option<u16>,
    /// SO_RCVBUF in bytes (default 4 MiB; 0 keeps the kernel's).
    #[arg(long)]
    pub rcvbuf: Option<usize>,
    /// DPDK EAL arguments, space-separated (overrides dpdk.eal_args).
    #[arg(long, allow_hyphen_values = true)]
    pub dpdk_eal: Option<String>,
    /// DPDK device name or port id (overrides dpdk.port).
    #[arg(long)]
    pub dpdk_port: Option<String>,
    /// The node's IPv4 address on the DPDK port, answered to ARP (overrides
    /// dpdk.ipv4).
    #[arg(long)]
    pub dpdk_ipv4: Option<std::net::Ipv4Addr>,
    /// Stop each burst after receiving (`rx`, a benchmark baseline) or run
    /// everything (`full`, default). The stage modes (decode, decrypt,
    /// decompress) are refused: they live in `attnet-bench`.
    #[arg(long, value_enum)]
    pub stop_after: Option<StopAfterChoice>,
    /// Send RECEIPT indications for included transactions back to the
    /// address their datagrams came from (default true on io_uring,
    /// recvmmsg and dpdk; the pcap backend sends none).
    #[arg(long)]
    pub receipts: Option<bool>,
    /// Node key file (`attnet keygen --out FILE`): the relay's identity,
    /// which signs its WELCOMEs and produces its blocks. Without one the
    /// node uses the data directory's `node.key` (generated on first
    /// start); with neither, it negotiates no sessions.
    #[arg(long, value_name = "FILE")]
    pub node_key: Option<PathBuf>,
    /// The data directory: final blocks, state snapshots, the node key,
    /// the admin socket (`docs/STORAGE.md`). Without one nothing persists.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve Prometheus metrics (`/metrics`) and a JSON `/status` on this
    /// address, e.g. 127.0.0.1:7190 (off by default; `docs/OPERATIONS.md`).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// The admin socket (`attnet top`, `attnet query`); default
    /// DIR/admin.sock with a data directory, else /run/attnet/PORT.sock.
    #[arg(long, value_name = "PATH")]
    pub admin: Option<PathBuf>,
    /// Log lines as text (default) or JSON objects (journald, ELK).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log level or filter: error, warn, info (default), debug, trace, or
    /// per target, e.g. `info,control=debug`. SIGHUP re-reads it from the file.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Write the ids of committed transactions (their block durable), one
    /// hex id a line; needs `--data-dir`.
    #[arg(long, value_name = "FILE")]
    pub committed_ids: Option<PathBuf>,
    /// A state snapshot after this many stored transactions (default
    /// 1048576): bounds what a restart replays.
    #[arg(long)]
    pub snapshot_txs: Option<u64>,
    /// Block log kept, in MiB (default 65536; 0 keeps every block).
    #[arg(long)]
    pub retain_mb: Option<u64>,
    /// HELLOs a second above which a HELLO without a valid cookie is
    /// answered with a COOKIE (default 1000; 0 always demands cookies).
    #[arg(long)]
    pub hello_cookie_threshold: Option<u32>,
    /// HELLOs a second from one source address (IPv6 by /64) once cookies
    /// are demanded (default 20).
    #[arg(long)]
    pub hello_source_rate: Option<u32>,
    /// Live negotiated sessions per source address (IPv6 by /64; default 64).
    #[arg(long)]
    pub sessions_per_source: Option<u32>,
    /// Seconds after which an idle negotiated session is evicted (default 300).
    #[arg(long)]
    pub session_idle_s: Option<u32>,
    /// Session ids reserved for validators (default 64).
    #[arg(long)]
    pub validator_slots: Option<u32>,
    /// Queries waiting for an answer before more are dropped as overload
    /// (default 4096).
    #[arg(long)]
    pub query_queue: Option<u32>,
    /// Signatures a data core verifies together, gathered across bursts
    /// (default 256).
    #[arg(long)]
    pub verify_batch: Option<usize>,
    /// Longest a transaction waits for its signature batch, microseconds
    /// (default 500; 0 verifies every burst as it comes).
    #[arg(long)]
    pub verify_budget_us: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub backend: BackendChoice,
    pub pcap: Option<PathBuf>,
    pub loops: u32,
    pub listen: SocketAddr,
    pub port: u16,
    pub cores: usize,
    pub shards: usize,
    pub keys: Option<PathBuf>,
    pub genesis: Option<PathBuf>,
    /// Given on the command line or in the file; without a genesis file it
    /// is the network id (default 1), with one it must match the file's.
    pub network_id: Option<u32>,
    pub block_interval_ms: u64,
    pub propose_timeout_ms: u64,
    pub block_max_txs: u32,
    pub empty_blocks: bool,
    /// Sessions' failure budgets (`None`: off).
    pub budget: Option<dataplane::budget::BudgetConfig>,
    pub duration_s: Option<f64>,
    pub summary_json: Option<PathBuf>,
    pub accepted_ids: Option<PathBuf>,
    pub busy_poll: bool,
    pub pin: bool,
    pub live: bool,
    pub ring_depth: usize,
    pub uring_buffers: u16,
    pub rcvbuf: usize,
    pub stop_after: StopAfterChoice,
    /// Send RECEIPTs (io_uring, recvmmsg and dpdk; always false on pcap).
    pub receipts: bool,
    /// `receipts = true` was asked for on the pcap backend, which sends
    /// none (the node says so once at start).
    pub receipts_ignored: bool,
    /// The node key file (read with `keys::read_node_key`); `None`: the
    /// data directory's, or a fresh one.
    pub node_key: Option<PathBuf>,
    /// Where blocks persist (`None`: in memory only).
    pub data_dir: Option<PathBuf>,
    /// The Prometheus listener (`None`: off).
    pub metrics: Option<SocketAddr>,
    /// The admin socket's path (`None`: the default for the data directory
    /// or the port).
    pub admin: Option<PathBuf>,
    pub log_format: LogFormat,
    /// A `tracing` filter (`info`, `warn,control=debug`).
    pub log_level: String,
    pub committed_ids: Option<PathBuf>,
    pub snapshot_txs: u64,
    pub retain_mb: u64,
    /// HELLOs a second above which HELLOs without a valid cookie get a
    /// COOKIE (0: always).
    pub hello_cookie_threshold: u32,
    /// HELLOs a second per source address (IPv6 grouped by /64) once
    /// cookies are demanded.
    pub hello_source_rate: u32,
    /// Live negotiated sessions per source address (IPv6 grouped by /64).
    pub sessions_per_source: u32,
    /// Idle time after which a negotiated session is evicted, seconds.
    pub session_idle_s: u32,
    /// Session ids reserved for validators.
    pub validator_slots: u32,
    /// Queries waiting for an answer before more are dropped as overload.
    pub query_queue: u32,
    /// Signature batches across bursts.
    pub batch: dataplane::pipeline::BatchPolicy,
    pub dpdk: DpdkFile,
    /// The flags and file this came from, when there is a file: SIGHUP
    /// resolves them again (`crate::reload`).
    pub reload_from: Option<Box<Overrides>>,
}

fn bad(key: &str, why: impl std::fmt::Display) -> String {
    format!("config key `{key}`: {why}")
}

// The range of every numeric key (docs/NODE.md lists them).
const CORES: RangeInclusive<usize> = 1..=64;
const SHARDS: RangeInclusive<usize> = 1..=256;
const BLOCK_INTERVAL_MS: RangeInclusive<u64> = 1..=3_600_000;
/// Above the longest block interval: the default is the interval + 1 s.
const PROPOSE_TIMEOUT_MS: RangeInclusive<u64> = 10..=3_601_000;
const BLOCK_MAX_TXS: RangeInclusive<u32> = 1..=1_000_000;
/// Batches per core→shard ring; each batch holds up to 256 transactions.
const RING_DEPTH: RangeInclusive<usize> = 1..=4096;
const LOOPS: RangeInclusive<u32> = 1..=1_000_000;
const THROTTLE_PER_S: RangeInclusive<u32> = 0..=10_000_000;
const THROTTLE_BURST: RangeInclusive<u32> = 1..=10_000_000;
const THROTTLE_COOLDOWN_MS: RangeInclusive<u32> = 1..=3_600_000;
const PORT: RangeInclusive<u16> = 1..=65535;
/// `SO_RCVBUF` is a C int that the kernel doubles: 1 GiB at most.
const RCVBUF: RangeInclusive<usize> = 0..=1 << 30;
const URING_BUFFERS: RangeInclusive<u16> = 1..=32768;
const DPDK_RX_DESC: RangeInclusive<u16> = 1..=32768;
const DPDK_MBUFS: RangeInclusive<u32> = 1..=(1 << 24);
const HELLO_COOKIE_THRESHOLD: RangeInclusive<u32> = 0..=1_000_000;
const HELLO_SOURCE_RATE: RangeInclusive<u32> = 1..=100_000;
/// At most every session id (0..=64534) from one source.
const SESSIONS_PER_SOURCE: RangeInclusive<u32> = 1..=64_535;
const SESSION_IDLE_S: RangeInclusive<u32> = 1..=86_400;
const VALIDATOR_SLOTS: RangeInclusive<u32> = 0..=4096;
const QUERY_QUEUE: RangeInclusive<u32> = 1..=1_048_576;
const VERIFY_BATCH: RangeInclusive<usize> = 1..=dataplane::pipeline::BatchPolicy::MAX_SIGS;
const VERIFY_BUDGET_US: RangeInclusive<u64> = 0..=dataplane::pipeline::BatchPolicy::MAX_BUDGET_NS / 1_000;
/// Longest `duration_s`: 10^9 s (about 31 years).
pub const MAX_DURATION_S: f64 = 1e9;

/// The problems found so far.
#[derive(Default)]
struct Checker {
    problems: Vec<String>,
}

impl Checker {
    /// `v`, and a problem naming the key, the value and the range when it
    /// lies outside `r`.
    fn range<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, v: T, r: RangeInclusive<T>) -> T {
        if let Err(e) = in_range(key, &v, &r) {
            self.fail(e);
        }
        v
    }

    fn fail(&mut self, problem: String) {
        self.problems.push(problem);
    }
}

/// `Ok` when `v` lies in `r`, else an error naming the key, the value, the
/// range and the fix.
fn in_range<T: PartialOrd + std::fmt::Display>(key: &str, v: &T, r: &RangeInclusive<T>) -> Result<(), String> {
    if r.contains(v) {
        Ok(())
    } else {
        let (a, b) = (r.start(), r.end());
        Err(bad(key, format!("{v} is not in {a}..={b}; set a value in {a}..={b}, or remove the key for the default")))
    }
}

/// `attnet check-config FILE`: every problem on stderr and exit 2, or the
/// file's name and `ok` on stdout and exit 0.
pub fn check_file(file: &std::path::Path) -> std::process::ExitCode {
    match NodeConfig::check(Overrides { config: Some(file.to_path_buf()), ..Overrides::default() }) {
        Ok(_) => {
            println!("{}: ok", file.display());
            std::process::ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{}: {p}", file.display());
            }
            eprintln!("{}: {} problem(s)", file.display(), problems.len());
            std::process::ExitCode::from(2)
        }
    }
}

/// `duration_s` as a `Duration`: a number of seconds in (0, 10^9].
pub fn duration(d: f64) -> Result<Duration, String> {
    let why = || bad("duration_s", format!("{d} is not a number of seconds in (0, {MAX_DURATION_S:.0}]"));
    if !(d > 0.0 && d <= MAX_DURATION_S) {
        return Err(why());
    }
    Duration::try_from_secs_f64(d).map_err(|_| why())
}

impl NodeConfig {
    /// The configuration from the flags over the file over the defaults,
    /// or the first problem found (every problem, one per line).
    pub fn resolve(o: Overrides) -> Result<NodeConfig, String> {
        NodeConfig::check(o).map_err(|e| e.join("\n"))
    }

    /// The configuration, or every problem found: each names the key, the
    /// value, what is allowed and how to fix it. A file that does not
    /// parse (bad TOML, a wrong type, an unknown key) is one problem.
    pub fn check(o: Overrides) -> Result<NodeConfig, Vec<String>> {
        let reload_from = o.config.is_some().then(|| Box::new(o.clone()));
        let file = match &o.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| vec![format!("config {}: {e}", p.display())])?;
                toml::from_str::<FileConfig>(&text).map_err(|e| vec![format!("config {}: {e}", p.display())])?
            }
            None => FileConfig::default(),
        };
        let mut ck = Checker::default();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let backend = o.backend.or(file.backend).unwrap_or(BackendChoice::Auto);
        let pcap = o.pcap.or(file.pcap);
        if backend == BackendChoice::Pcap && pcap.is_none() {
            ck.fail(bad("pcap", "the pcap backend needs a capture file (--pcap FILE, or `pcap` in the file)"));
        }
        let listen_s = o.listen.or(file.listen).unwrap_or_else(|| "0.0.0.0:7100".into());
        let listen: SocketAddr = listen_s.parse().unwrap_or_else(|e| {
            ck.fail(bad("listen", format!("`{listen_s}` is not IP:PORT ({e}); e.g. 0.0.0.0:7100")));
            SocketAddr::from(([0, 0, 0, 0], 7100))
        });
        let metrics = o.metrics.or(file.metrics).and_then(|m| match m.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                ck.fail(bad("metrics", format!("`{m}` is not IP:PORT ({e}); e.g. 127.0.0.1:7190")));
                None
            }
        });
        let log_level = o.log_level.or(file.log_level).unwrap_or_else(|| "info".into());
        if let Err(e) = crate::logs::filter(&log_level) {
            ck.fail(bad("log_level", format!("`{log_level}` {e}; e.g. info, warn, or info,control=debug")));
        }
        let cores = ck.range("cores", o.cores.or(file.cores).unwrap_or(cpus.saturating_sub(1).max(1)), CORES);
        // A replay defaults to one data core (every flow in capture order);
        // asked for more, the capture's flows are spread over them.
        let cores = if backend == BackendChoice::Pcap && o.cores.or(file.cores).is_none() { 1 } else { cores };
        let shards = ck.range("shards", o.shards.or(file.shards).unwrap_or(4), SHARDS);
        let block_interval_ms = ck.range(
            "block_interval_ms",
            o.block_interval_ms.or(file.block_interval_ms).unwrap_or(200),
            BLOCK_INTERVAL_MS,
        );
        // A proposer waits out the block interval before it proposes: the
        // default gives it a second more than that (at least 3 s).
        // (An interval out of its range is reported already: the default
        // then follows the default interval.)
        let interval_ok = BLOCK_INTERVAL_MS.contains(&block_interval_ms);
        let given_timeout = o.propose_timeout_ms.or(file.propose_timeout_ms);
        let propose_timeout_ms = ck.range(
            "propose_timeout_ms",
            given_timeout.unwrap_or(if interval_ok { block_interval_ms } else { 200 }.saturating_add(1_000).max(3_000)),
            PROPOSE_TIMEOUT_MS,
        );
        if interval_ok && given_timeout.is_some() && propose_timeout_ms <= block_interval_ms {
            ck.fail(bad(
                "propose_timeout_ms",
                format!(
                    "{propose_timeout_ms} ms is not longer than the block interval ({block_interval_ms} ms): every \
                     round would end before its proposer is due"
                ),
            ));
        }
        let block_max_txs =
            ck.range("block_max_txs", o.block_max_txs.or(file.block_max_txs).unwrap_or(10_000), BLOCK_MAX_TXS);
        let duration_s = o.duration_s.or(file.duration_s);
        if let Some(d) = duration_s {
            if let Err(e) = duration(d) {
                ck.fail(e);
            }
        }
        let ring_depth = ck.range("ring_depth", o.ring_depth.or(file.ring_depth).unwrap_or(64), RING_DEPTH);
        let dflt = dataplane::budget::BudgetConfig::default();
        let throttle_per_s =
            ck.range("throttle_per_s", o.throttle_per_s.or(file.throttle_per_s).unwrap_or(dflt.per_s), THROTTLE_PER_S);
        let budget = dataplane::budget::BudgetConfig {
            per_s: throttle_per_s,
            burst: ck.range(
                "throttle_burst",
                o.throttle_burst.or(file.throttle_burst).unwrap_or(dflt.burst),
                THROTTLE_BURST,
            ),
            cooldown_ms: ck.range(
                "throttle_cooldown_ms",
                o.throttle_cooldown_ms.or(file.throttle_cooldown_ms).unwrap_or(dflt.cooldown_ms),
                THROTTLE_COOLDOWN_MS,
            ),
        };
        let loops = ck.range("loop", o.loops.or(file.loops).unwrap_or(1), LOOPS);
        let port = ck.range("port", o.port.or(file.port).unwrap_or(7100), PORT);
        let rcvbuf = ck.range("rcvbuf", o.rcvbuf.or(file.rcvbuf).unwrap_or(DEFAULT_RCVBUF), RCVBUF);
        let mut dpdk = file.dpdk.clone().unwrap_or_default();
        if let Some(a) = o.dpdk_eal {
            dpdk.eal_args = Some(a.split_whitespace().map(String::from).collect());
        }
        if let Some(p) = o.dpdk_port {
            dpdk.port = Some(p);
        }
        if let Some(a) = o.dpdk_ipv4 {
            dpdk.ipv4 = Some(a);
        }
        if backend == BackendChoice::Dpdk && dpdk.eal_args.as_ref().is_none_or(|a| a.is_empty()) {
            ck.fail(bad(
                "dpdk.eal_args",
                "the dpdk backend needs EAL arguments (--dpdk-eal \"...\", or `eal_args` in [dpdk])",
            ));
        }
        let uring_buffers =
            ck.range("uring_buffers", o.uring_buffers.or(file.uring_buffers).unwrap_or(4096), URING_BUFFERS);
        if !uring_buffers.is_power_of_two() {
            ck.fail(bad("uring_buffers", format!("{uring_buffers} is not a power of two in 1..=32768 (e.g. 4096)")));
        }
        if let Some(n) = dpdk.rx_desc {
            ck.range("dpdk.rx_desc", n, DPDK_RX_DESC);
        }
        if let Some(n) = dpdk.mbufs {
            ck.range("dpdk.mbufs", n, DPDK_MBUFS);
        }
        let stop_after = o.stop_after.or(file.stop_after).unwrap_or(StopAfterChoice::Full);
        if let StopAfterChoice::Decode | StopAfterChoice::Decrypt | StopAfterChoice::Decompress = stop_after {
            ck.fail(bad(
                "stop_after",
                format!(
                    "`{}` is a measurement mode that skips signature checks; attnet node runs `full` (or `rx`), stage measurements live in attnet-bench",
                    format!("{stop_after:?}").to_lowercase()
                ),
            ));
        }
        let hello_cookie_threshold = ck.range(
            "hello_cookie_threshold",
            o.hello_cookie_threshold.or(file.hello_cookie_threshold).unwrap_or(1000),
            HELLO_COOKIE_THRESHOLD,
        );
        let hello_source_rate = ck.range(
            "hello_source_rate",
            o.hello_source_rate.or(file.hello_source_rate).unwrap_or(20),
            HELLO_SOURCE_RATE,
        );
        let sessions_per_source = ck.range(
            "sessions_per_source",
            o.sessions_per_source.or(file.sessions_per_source).unwrap_or(64),
            SESSIONS_PER_SOURCE,
        );
        let session_idle_s =
            ck.range("session_idle_s", o.session_idle_s.or(file.session_idle_s).unwrap_or(300), SESSION_IDLE_S);
        let validator_slots =
            ck.range("validator_slots", o.validator_slots.or(file.validator_slots).unwrap_or(64), VALIDATOR_SLOTS);
        let query_queue = ck.range("query_queue", o.query_queue.or(file.query_queue).unwrap_or(4096), QUERY_QUEUE);
        let dflt = dataplane::pipeline::BatchPolicy::default();
        let batch = dataplane::pipeline::BatchPolicy {
            max_sigs: ck.range(
                "verify_batch",
                o.verify_batch.or(file.verify_batch).unwrap_or(dflt.max_sigs),
                VERIFY_BATCH,
            ),
            budget_ns: ck.range(
                "verify_budget_us",
                o.verify_budget_us.or(file.verify_budget_us).unwrap_or(dflt.budget_ns / 1_000),
                VERIFY_BUDGET_US,
            ) * 1_000,
        };
        // Every backend but a capture replay has a transmit path.
        let transmits = backend != BackendChoice::Pcap;
        let receipts_asked = o.receipts.or(file.receipts);
        if !ck.problems.is_empty() {
            return Err(ck.problems);
        }
        Ok(NodeConfig {
            receipts: receipts_asked.unwrap_or(true) && transmits,
            receipts_ignored: receipts_asked == Some(true) && !transmits,
            backend,
            pcap,
            loops,
            listen,
            port,
            cores,
            shards,
            keys: o.keys.or(file.keys),
            genesis: o.genesis.or(file.genesis),
            network_id: o.network_id.or(file.network_id),
            block_interval_ms,
            propose_timeout_ms,
            block_max_txs,
            empty_blocks: o.empty_blocks.or(file.empty_blocks).unwrap_or(false),
            budget: (throttle_per_s > 0).then_some(budget),
            duration_s,
            summary_json: o.summary_json.or(file.summary_json),
            accepted_ids: o.accepted_ids.or(file.accepted_ids),
            // DPDK applications busy-poll by default; the adaptive idle
            // policy stays one setting away for shared machines and tests.
            busy_poll: o.busy_poll.or(file.busy_poll).unwrap_or(backend == BackendChoice::Dpdk),
            pin: o.pin.or(file.pin).unwrap_or(default_pin(cores, cpus)),
            live: o.live.or(file.live).unwrap_or(false),
            ring_depth,
            uring_buffers,
            rcvbuf,
            stop_after,
            node_key: o.node_key.or(file.node_key),
            data_dir: o.data_dir.or(file.data_dir),
            metrics,
            admin: o.admin.or(file.admin),
            log_format: o.log_format.or(file.log_format).unwrap_or_default(),
            log_level,
            committed_ids: o.committed_ids.or(file.committed_ids),
            snapshot_txs: o.snapshot_txs.or(file.snapshot_txs).unwrap_or(1 << 20).max(1),
            retain_mb: o.retain_mb.or(file.retain_mb).unwrap_or(64 << 10),
            hello_cookie_threshold,
            hello_source_rate,
            sessions_per_source,
            session_idle_s,
            validator_slots,
            query_queue,
            batch,
            dpdk,
            reload_from,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys `FileConfig` accepts, from serde's own list (the error of
    /// an unknown key names every expected one).
    fn accepted_keys() -> Vec<String> {
        let e = toml::from_str::<FileConfig>("no_such_key = 1").unwrap_err().to_string();
        let list = e.split("expected one of ").nth(1).unwrap_or_else(|| panic!("{e}"));
        let list = list.lines().next().unwrap();
        list.split(", ").map(|k| k.trim().trim_matches('`').to_string()).collect()
    }

    #[test]
    fn the_example_documents_every_key_and_passes_the_check() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../attnet.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // Keys set, or shown commented out (`# key = value`).
        let documented: Vec<&str> = text
            .lines()
            .map(|l| l.trim_start_matches('#').trim_start())
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        let keys = accepted_keys();
        assert!(keys.len() > 30, "{keys:?}");
        let missing: Vec<&String> = keys.iter().filter(|k| *k != "dpdk" && !documented.contains(&k.as_str())).collect();
        assert!(missing.is_empty(), "attnet.example.toml does not document {missing:?}");
        assert!(text.contains("[dpdk]"));
        let c = NodeConfig::check(Overrides { config: Some(path.into()), ..Overrides::default() });
        assert!(c.is_ok(), "{:?}", c.err());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let d = std::env::temp_dir().join(format!("attnet-config-{}-problems", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("bad.toml");
        std::fs::write(&p, "cores = 0\nshards = 1000\nlisten = \"nowhere\"\nuring_buffers = 100\nbackend = \"pcap\"\n")
            .unwrap();
        let e = NodeConfig::check(Overrides { config: Some(p.clone()), ..Overrides::default() }).unwrap_err();
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].starts_with("config key `pcap`"), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`cores`: 0 is not in 1..=64; set a value in 1..=64")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`shards`: 1000 is not in 1..=256")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`listen`: `nowhere` is not IP:PORT")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`uring_buffers`: 100 is not a power of two")), "{e:#?}");
        // An unknown key is an error naming it.
        std::fs::write(&p, "corez = 2\n").unwrap();
        let e = NodeConfig::check(Overrides { config: Some(p), ..Overrides::default() }).unwrap_err();
        assert!(e.len() == 1 && e[0].contains("unknown field `corez`"), "{e:#?}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_propose_timeout_follows_the_block_interval_and_must_exceed_it() {
        let c = NodeConfig::resolve(Overrides::default()).unwrap();
        assert_eq!((c.block_interval_ms, c.propose_timeout_ms), (200, 3_000));
        let c = NodeConfig::resolve(Overrides { block_interval_ms: Some(5_000), ..Overrides::default() }).unwrap();
        assert_eq!(c.propose_timeout_ms, 6_000);
        let c = NodeConfig::resolve(Overrides {
            block_interval_ms: Some(10),
            propose_timeout_ms: Some(100),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.propose_timeout_ms, 100);
        let e = NodeConfig::check(Overrides {
            block_interval_ms: Some(500),
            propose_timeout_ms: Some(500),
            ..Overrides::default()
        })
        .unwrap_err();
        assert!(e.len() == 1 && e[0].contains("`propose_timeout_ms`") && e[0].contains("block interval"), "{e:#?}");
        // The longest interval has a default timeout in range; an interval
        // out of range is the one problem named.
        let c = NodeConfig::resolve(Overrides { block_interval_ms: Some(3_600_000), ..Overrides::default() }).unwrap();
        assert_eq!(c.propose_timeout_ms, 3_601_000);
        let e = NodeConfig::check(Overrides { block_interval_ms: Some(u64::MAX), ..Overrides::default() }).unwrap_err();
        assert!(e.len() == 1 && e[0].contains("`block_interval_ms`"), "{e:#?}");
    }

    #[test]
    fn handshake_settings_default_and_follow_file_and_flags() {
        let c = NodeConfig::resolve(Overrides::default()).unwrap();
        assert_eq!(c.node_key, None);
        let got = (
            c.hello_cookie_threshold,
            c.hello_source_rate,
            c.sessions_per_source,
            c.session_idle_s,
            c.validator_slots,
            c.query_queue,
        );
        assert_eq!(got, (1000, 20, 64, 300, 64, 4096));

        let d = std::env::temp_dir().join(format!("attnet-config-{}-handshake", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("n.toml");
        std::fs::write(
            &p,
            "node_key = \"node.json\"\nhello_cookie_threshold = 0\nhello_source_rate = 100000\n\
             sessions_per_source = 64535\nsession_idle_s = 86400\nvalidator_slots = 0\nquery_queue = 1\n",
        )
        .unwrap();
        let c = NodeConfig::resolve(Overrides { config: Some(p.clone()), ..Overrides::default() }).unwrap();
        assert_eq!(c.node_key.as_deref(), Some(std::path::Path::new("node.json")));
        let got = (
            c.hello_cookie_threshold,
            c.hello_source_rate,
            c.sessions_per_source,
            c.session_idle_s,
            c.validator_slots,
            c.query_queue,
        );
        assert_eq!(got, (0, 100_000, 64_535, 86_400, 0, 1));
        // A flag wins over the file.
        let c = NodeConfig::resolve(Overrides {
            config: Some(p),
            node_key: Some("other.json".into()),
            query_queue: Some(1_048_576),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.node_key.as_deref(), Some(std::path::Path::new("other.json")));
        assert_eq!(c.query_queue, 1_048_576);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn handshake_settings_out_of_range_are_refused() {
        let o = Overrides::default;
        for (over, want) in [
            (
                Overrides { hello_cookie_threshold: Some(1_000_001), ..o() },
                "`hello_cookie_threshold`: 1000001 is not in 0..=1000000",
            ),
            (Overrides { hello_source_rate: Some(0), ..o() }, "`hello_source_rate`: 0 is not in 1..=100000"),
            (Overrides { hello_source_rate: Some(100_001), ..o() }, "`hello_source_rate`: 100001 is not in 1..=100000"),
            (Overrides { sessions_per_source: Some(0), ..o() }, "`sessions_per_source`: 0 is not in 1..=64535"),
            (
                Overrides { sessions_per_source: Some(64_536), ..o() },
                "`sessions_per_source`: 64536 is not in 1..=64535",
            ),
            (Overrides { session_idle_s: Some(0), ..o() }, "`session_idle_s`: 0 is not in 1..=86400"),
            (Overrides { session_idle_s: Some(86_401), ..o() }, "`session_idle_s`: 86401 is not in 1..=86400"),
            (Overrides { validator_slots: Some(4097), ..o() }, "`validator_slots`: 4097 is not in 0..=4096"),
            (Overrides { query_queue: Some(0), ..o() }, "`query_queue`: 0 is not in 1..=1048576"),
            (Overrides { query_queue: Some(1_048_577), ..o() }, "`query_queue`: 1048577 is not in 1..=1048576"),
        ] {
            let e = NodeConfig::resolve(over).unwrap_err();
            assert!(e.starts_with(&format!("config key {want}; set a value in")), "{e}");
        }
    }
}
