//! The command line of `attnet-pktgen` (also `attnet pktgen`): ATT traffic
//! at a chosen rate to UDP, a pcap file or a DPDK port, with the expected
//! counts a correct receiver must report and the receipts it sends back.
//! See docs/PKTGEN.md.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use dataplane::wire::tx::Kind;

use crate::dpdk::DpdkPorts;
use crate::encap::Encap;
use crate::traffic::{Attack, UNKNOWN_SESSION};
use crate::{Lz4, Out, Plan, PoolSpec, Rate, RunConfig, TrafficConfig};

/// The generator's options (`attnet-pktgen` and `attnet pktgen`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// udp:HOST:PORT, pcap:FILE or dpdk:PORT_OR_VDEV. Without it, only the
    /// keys, genesis and transaction pool are written.
    #[arg(long)]
    out: Option<Out>,
    /// Seed every key and transaction derives from (default: random, printed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 1)]
    network_id: u32,
    #[arg(long, default_value_t = 4)]
    sessions: usize,
    #[arg(long, default_value_t = 64)]
    accounts: usize,
    /// Genesis balance of every account.
    #[arg(long, default_value_t = 1_000_000_000_000)]
    balance: u64,
    /// Write the sessions' keys for `attnet node --keys`.
    #[arg(long)]
    keys_out: Option<PathBuf>,
    /// Take the sessions (ids and keys) from this keys file (the format of
    /// --keys-out) instead of deriving them from the seed.
    #[arg(long, conflicts_with_all = ["sessions", "handshake"])]
    keys: Option<PathBuf>,
    /// Open the sessions by real handshakes with the node (UDP output
    /// only; needs --relay-key) before sending, and send on them.
    #[arg(long, requires = "relay_key")]
    handshake: bool,
    /// The node's key (64 hex digits, `attnet keygen`): a WELCOME signed by
    /// another key is refused.
    #[arg(long, requires = "handshake")]
    relay_key: Option<String>,
    /// The receiver has a node key and serves handshakes: `hello` attack
    /// datagrams are counted as handshake items, not `unsupported_channel`
    /// (implied by --handshake).
    #[arg(long)]
    node_handshakes: bool,
    /// Write the genesis for `attnet node --genesis`.
    #[arg(long)]
    genesis_out: Option<PathBuf>,
    /// A validator for the genesis (version 2), NODE_KEY@IP:PORT: the node
    /// key in hex (as `attnet keygen` prints it) and its link address;
    /// each owned by an account of its own holding the genesis'
    /// producer_bond, which it bonds. Repeat for several. Without it the genesis lists no validators.
    #[arg(long, value_name = "NODE_KEY@IP:PORT", requires = "genesis_out")]
    validator: Vec<String>,
    /// Send only slice I of N of the accounts' transactions (accounts
    /// whose index is I modulo N): N generators with the same seed, one
    /// per receiver, share the accounts without sending each other's
    /// transactions. The rate and count are this slice's.
    #[arg(long, value_name = "I/N")]
    slice: Option<String>,
    /// Transactions to pre-sign (default: what the rate and duration or
    /// count need, else 100000).
    #[arg(long)]
    txs: Option<usize>,
    /// Where signed pools are cached ("off" to sign every time).
    #[arg(long)]
    pool_cache: Option<String>,
    /// Transaction kinds, cycled: transfer,message,connect-request,
    /// connect-accept,endpoint-offer,stake,unstake,vote,register-producer.
    /// Only transfers and messages apply from a bare genesis; the other
    /// kinds need ledger state (an open request, a connection, stake, a
    /// producer: docs/LEDGER.md) and are refused without it, which the
    /// expected counts (--expect) do not foresee.
    #[arg(long, default_value = "transfer")]
    kinds: String,
    /// Memo length in bytes, or a range MIN-MAX cycled over the pool.
    #[arg(long, default_value = "19")]
    memo: String,
    /// Transactions per frame, or a range MIN-MAX cycled.
    #[arg(long, default_value = "1-3")]
    txs_per_frame: String,
    #[arg(long, default_value_t = 1)]
    frames_per_datagram: usize,
    /// LZ4 compression of frame bodies: on, off or mix (every other frame).
    #[arg(long, default_value = "mix")]
    lz4: String,
    /// Fraction of datagrams that are hostile, spread over every drop reason.
    #[arg(long, default_value_t = 0.0)]
    bad: f64,
    /// Attack shapes, cycled (comma-separated): junk, unknown, auth, dup,
    /// badsig, hello. See docs/PKTGEN.md.
    #[arg(long)]
    attack: Option<String>,
    /// Share of datagrams that are attack datagrams, above 0 and below 1.
    #[arg(long, default_value_t = 0.5, requires = "attack")]
    attack_share: f64,
    /// Write the counts a correct receiver must report (node summary shape).
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Datagrams per second.
    #[arg(long, conflicts_with_all = ["bps", "percent"])]
    pps: Option<f64>,
    /// Wire bits per second (Ethernet framing, preamble and gap included).
    #[arg(long, conflicts_with = "percent")]
    bps: Option<f64>,
    /// Percent of the link speed (--link-bps).
    #[arg(long)]
    percent: Option<f64>,
    #[arg(long, default_value_t = 10e9)]
    link_bps: f64,
    /// Datagrams that leave together at one due time.
    #[arg(long, default_value_t = 1)]
    burst: usize,
    /// Seconds to send for.
    #[arg(long)]
    duration: Option<f64>,
    /// Datagrams to send.
    #[arg(long)]
    count: Option<u64>,
    /// Sending threads (one socket or queue each; at most --sessions).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Datagrams per send call at most.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Pin sending thread i to CPU i.
    #[arg(long)]
    pin: bool,
    /// Match the node's receipts (UDP) and report submit→inclusion latency.
    #[arg(long)]
    receipts: bool,
    /// Seconds to wait for outstanding receipts after sending.
    #[arg(long, default_value_t = 2.0)]
    receipt_wait: f64,
    /// Source and destination IP for pcap/DPDK frames.
    #[arg(long, default_value = "10.0.0.1")]
    src_ip: std::net::IpAddr,
    #[arg(long, default_value = "10.0.0.2")]
    dst_ip: std::net::IpAddr,
    /// Destination UDP port for pcap/DPDK frames.
    #[arg(long, default_value_t = 7100)]
    dst_port: u16,
    /// One 802.1Q tag with this VLAN id (pcap/DPDK).
    #[arg(long)]
    vlan: Option<u16>,
    /// Destination MAC for DPDK frames (aa:bb:cc:dd:ee:ff).
    #[arg(long)]
    dst_mac: Option<String>,
    /// EAL arguments for the DPDK output, space-separated.
    #[arg(long, allow_hyphen_values = true)]
    eal: Option<String>,
    /// Build N datagrams per thread before sending and send them round and
    /// round (measures the output alone; no expected counts).
    #[arg(long, default_value_t = 0)]
    presealed: usize,
    /// Write the run summary here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No live line.
    #[arg(long)]
    quiet: bool,
}

fn range(s: &str, what: &str) -> Result<(usize, usize), String> {
    let parse = |x: &str| x.trim().parse::<usize>().map_err(|_| format!("--{what} {s}: expected N or MIN-MAX"));
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(s)?, parse(s)?),
    };
    if a > b {
        return Err(format!("--{what} {s}: MIN above MAX"));
    }
    Ok((a, b))
}

fn kind(s: &str) -> Result<Kind, String> {
    Ok(match s.trim() {
        "transfer" => Kind::Transfer,
        "message" => Kind::Message,
        "connect-request" => Kind::ConnectRequest,
        "connect-accept" => Kind::ConnectAccept,
        "endpoint-offer" => Kind::EndpointOffer,
        "stake" => Kind::Stake,
        "unstake" => Kind::Unstake,
        "vote" => Kind::Vote,
        "register-producer" => Kind::RegisterProducer,
        o => return Err(format!("--kinds: unknown kind {o:?}")),
    })
}

fn mac(s: &str) -> Result<[u8; 6], String> {
    let v: Vec<u8> = s.split(':').map(|x| u8::from_str_radix(x, 16)).collect::<Result<_, _>>().map_err(|_| s)?;
    v.try_into().map_err(|_| format!("--dst-mac {s}: expected six hex bytes"))
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes secret keys: the file is created mode 0600 (and an existing
/// one is narrowed to 0600 before the keys go in).
fn write_secret(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// `--relay-key`: 64 hex digits.
fn relay_key(s: &str) -> Result<[u8; 32], String> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut k).map_err(|e| format!("--relay-key {s}: expected 64 hex digits ({e})"))?;
    Ok(k)
}

/// The largest datagram rate accepted (`--pps`).
const MAX_PPS: f64 = 1e9;
/// The largest bit rate accepted (`--bps`, `--link-bps`): 1 Tbit/s.
const MAX_BPS: f64 = 1e12;

/// `x` if it is finite and within `(0, max]`, else a one-line error.
fn positive(what: &str, x: f64, max: f64) -> Result<f64, String> {
    if x.is_finite() && x > 0.0 && x <= max {
        Ok(x)
    } else {
        Err(format!("--{what} {x}: expected a number above 0 and at most {max:e}"))
    }
}

/// `n` if it is at least 1, else a one-line error.
fn at_least_one(what: &str, n: usize) -> Result<usize, String> {
    if n == 0 {
        return Err(format!("--{what} 0: expected at least 1"));
    }
    Ok(n)
}

/// Seconds as a `Duration`, refusing what does not fit (negative, NaN,
/// infinite, too large).
fn seconds(what: &str, x: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(x).map_err(|e| format!("--{what} {x}: not a number of seconds ({e})"))
}

/// Options that must hold before anything is signed or sent.
fn check_args(a: &Args) -> Result<(), String> {
    at_least_one("threads", a.threads)?;
    at_least_one("sessions", a.sessions)?;
    at_least_one("accounts", a.accounts)?;
    at_least_one("burst", a.burst)?;
    at_least_one("frames-per-datagram", a.frames_per_datagram)?;
    if a.txs == Some(0) {
        return Err("--txs 0: expected at least 1".into());
    }
    if !(1..=64).contains(&a.batch) {
        return Err(format!("--batch {}: expected 1 to 64", a.batch));
    }
    if let Some(p) = a.pps {
        positive("pps", p, MAX_PPS)?;
    }
    if let Some(b) = a.bps {
        positive("bps", b, MAX_BPS)?;
    }
    if let Some(p) = a.percent {
        positive("percent", p, 100.0)?;
    }
    positive("link-bps", a.link_bps, MAX_BPS)?;
    if let Some(d) = a.duration {
        if seconds("duration", d)?.is_zero() {
            return Err(format!("--duration {d}: expected more than 0 seconds"));
        }
    }
    seconds("receipt-wait", a.receipt_wait)?;
    if !(a.bad.is_finite() && (0.0..1.0).contains(&a.bad)) {
        return Err(format!("--bad {}: expected at least 0 and below 1", a.bad));
    }
    if !(a.attack_share.is_finite() && a.attack_share > 0.0 && a.attack_share < 1.0) {
        return Err(format!("--attack-share {}: expected above 0 and below 1", a.attack_share));
    }
    Ok(())
}

/// Transactions signed when nothing says how many are needed.
const DEFAULT_POOL: usize = 100_000;
/// The largest pool signed without an explicit `--txs`.
const MAX_DEFAULT_POOL: usize = 5_000_000;

/// Runs the generator as its command line asks.
pub fn run(a: Args) -> Result<(), String> {
    check_args(&a)?;
    let memo = range(&a.memo, "memo")?;
    if memo.1 > 1024 {
        return Err("--memo: at most 1024 bytes".into());
    }
    let tpf = range(&a.txs_per_frame, "txs-per-frame")?;
    if tpf.0 == 0 {
        return Err(format!("--txs-per-frame {}: expected at least 1", a.txs_per_frame));
    }
    let lz4 = match a.lz4.as_str() {
        "on" => Lz4::On,
        "off" => Lz4::Off,
        "mix" => Lz4::Mix,
        o => return Err(format!("--lz4 {o}: expected on, off or mix")),
    };
    let kinds = a.kinds.split(',').map(kind).collect::<Result<Vec<_>, _>>()?;
    let attack = a.attack.as_deref().map(Attack::parse_list).transpose()?.unwrap_or_default();
    let slice = match a.slice.as_deref() {
        None => (0, 1),
        Some(t) => {
            let bad = || format!("--slice {t}: expected I/N with 0 <= I < N <= --accounts");
            let (i, n) = t.split_once('/').ok_or_else(bad)?;
            let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
            if n == 0 || i >= n || n > a.accounts {
                return Err(bad());
            }
            (i, n)
        }
    };
    let traffic = TrafficConfig {
        slice,
        txs_per_frame: tpf,
        frames_per_datagram: a.frames_per_datagram,
        lz4,
        bad: a.bad,
        attack,
        attack_share: a.attack_share,
        handshakes: a.node_handshakes || a.handshake,
    };
    let max_dg = crate::traffic::max_datagram(&traffic, 156 + memo.1);
    if max_dg > dataplane::backend::BUF_SIZE {
        return Err(format!(
            "datagrams could reach {max_dg} bytes, over the receiver's {} (fewer --txs-per-frame, \
             --frames-per-datagram or a shorter --memo)",
            dataplane::backend::BUF_SIZE
        ));
    }
    // Each is checked above: finite, positive, within its bound.
    let rate = match (a.pps, a.bps, a.percent) {
        (Some(p), _, _) => Rate::Pps(p),
        (_, Some(b), _) => Rate::Bps(b),
        (_, _, Some(p)) => Rate::percent(p, a.link_bps),
        (None, None, None) => Rate::Unlimited,
    };
    if a.sessions > 64000 {
        return Err("--sessions: at most 64000 (64000 is the unknown session of hostile frames)".into());
    }
    let relay_key = a.relay_key.as_deref().map(relay_key).transpose()?;
    let relay = match (&a.out, a.handshake) {
        (Some(Out::Udp(addr)), true) => Some(*addr),
        (_, true) => return Err("--handshake needs a UDP output (--out udp:HOST:PORT)".into()),
        _ => None,
    };
    let seed = a.seed.unwrap_or_else(crate::plan::random_seed);
    let mut plan = Plan::from_seed(seed, a.network_id, a.sessions, a.accounts, a.balance);
    if let Some(p) = &a.keys {
        let sessions = crate::plan::read_keys(p)?;
        if sessions.is_empty() {
            return Err(format!("keys file {}: no sessions", p.display()));
        }
        if let Some(k) = sessions.iter().find(|k| k.id >= UNKNOWN_SESSION) {
            return Err(format!(
                "keys file {}: session {}: at most {} here ({UNKNOWN_SESSION} and up are the unknown sessions of \
                 hostile frames)",
                p.display(),
                k.id,
                UNKNOWN_SESSION - 1
            ));
        }
        plan = plan.with_sessions(sessions);
    }
    if let Some(p) = &a.keys_out {
        write_secret(p, &plan.keys_json())?;
    }
    if let Some(p) = &a.genesis_out {
        let mut validators = Vec::with_capacity(a.validator.len());
        for v in &a.validator {
            let (key, addr) = v.split_once('@').ok_or_else(|| format!("--validator {v}: expected NODE_KEY@IP:PORT"))?;
            let mut node_key = [0u8; 32];
            hex::decode_to_slice(key, &mut node_key)
                .map_err(|e| format!("--validator {v}: node key must be 64 hex digits ({e})"))?;
            let address = addr.parse().map_err(|e| format!("--validator {v}: {e}"))?;
            validators.push((node_key, address));
        }
        write(p, &plan.genesis_with_validators(&validators)?.to_json())?;
    }
    // Enough transactions for what is asked: datagrams × frames × the
    // transactions a frame carries on average (the sizes cycle), for the
    // part with the fewest accounts (accounts are split over threads).
    let threads = a.threads;
    let slices = traffic.slice.1;
    if plan.accounts.len() < threads * slices {
        return Err(format!(
            "--accounts {} is fewer than --threads {threads} times the slices ({slices})",
            plan.accounts.len()
        ));
    }
    let per_dg = traffic.frames_per_datagram as f64 * (tpf.0 + tpf.1) as f64 / 2.0;
    let dgs = match (a.count, rate, a.duration) {
        (Some(c), _, _) => Some(c as f64),
        (None, Rate::Pps(p), Some(d)) => Some(p * d),
        (None, Rate::Bps(b), Some(d)) => {
            Some(b * d / crate::sched::wire_bits(61 + 2 + tpf.0 * (156 + memo.0), 0) as f64)
        }
        _ => None,
    };
    let per_account = match (a.txs, dgs) {
        (Some(t), _) => t.div_ceil(plan.accounts.len()),
        (None, Some(d)) => {
            let part_txs = (d / threads as f64).ceil() * per_dg * 1.02 + 8.0;
            (part_txs / (plan.accounts.len() / threads / slices) as f64).ceil() as usize
        }
        (None, None) => DEFAULT_POOL.div_ceil(plan.accounts.len()),
    };
    let total = per_account * plan.accounts.len();
    if a.txs.is_none() && total > MAX_DEFAULT_POOL {
        return Err(format!(
            "this run needs {total} pre-signed transactions (about {} MB, signed once and cached); \
             ask for them with --txs {total}, or shorten --duration / --count",
            total * (160 + memo.1) / 1_000_000
        ));
    }
    let spec = PoolSpec { per_account: per_account.max(1), kinds, memo };
    let cache = match a.pool_cache.as_deref() {
        Some("off") => None,
        Some(d) => Some(PathBuf::from(d)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("attnet-pktgen")),
    };
    let t = std::time::Instant::now();
    let mut bar =
        (!a.quiet).then(|| crate::progress::Progress::new("attnet-pktgen: signing", total as u64, "transactions"));
    let mut report = |done: u64, _total: u64| {
        if let Some(b) = bar.as_mut() {
            b.set(done);
        }
    };
    let (pool, fresh) = plan
        .cached_pool_progress(&spec, cache.as_deref(), &mut report)
        .map_err(|e| format!("transaction pool: {e}"))?;
    if let Some(b) = bar {
        b.finish();
    }
    if !a.quiet {
        eprintln!(
            "attnet-pktgen: seed {seed}, {} sessions, {} accounts, {} transactions {} in {:.1} s",
            plan.sessions.len(),
            plan.accounts.len(),
            pool.len(),
            if fresh { "signed" } else { "from the cache" },
            t.elapsed().as_secs_f64()
        );
    }
    let Some(out) = a.out else { return Ok(()) };
    // The sessions, by handshakes with the node.
    let mut opened = None;
    if let (Some(relay), Some(key)) = (relay, relay_key) {
        let (sessions, report) = crate::handshake::open_sessions(&plan, plan.sessions.len(), relay, key);
        if !a.quiet {
            eprintln!(
                "attnet-pktgen: {} of {} handshakes in {:.3} s ({:.1}/s), {} HELLOs, {} cookies{}",
                report.opened,
                report.asked,
                report.seconds,
                report.per_second(),
                report.hellos,
                report.cookies,
                if report.failed.is_empty() { String::new() } else { format!(", failed {:?}", report.failed) }
            );
        }
        if sessions.len() < threads {
            return Err(format!(
                "{relay}: {} of {} handshakes succeeded (failed: {:?}), fewer than --threads {threads}",
                report.opened, report.asked, report.failed
            ));
        }
        plan = plan.with_sessions(sessions);
        opened = Some(report);
    }
    let mut encap =
        Encap { src_ip: a.src_ip, dst_ip: a.dst_ip, dst_port: a.dst_port, vlan: a.vlan, ..Encap::default() };
    if let Some(m) = &a.dst_mac {
        encap.dst_mac = mac(m)?;
    }
    // The process's DPDK ports: opened by the run, closed below.
    let dpdk = Arc::new(DpdkPorts::new());
    let cfg = RunConfig {
        out,
        traffic,
        rate,
        burst: a.burst,
        count: a.count,
        duration: a.duration.map(|d| seconds("duration", d)).transpose()?,
        threads: a.threads,
        batch: a.batch,
        pin: a.pin,
        receipts: a.receipts,
        receipt_wait: seconds("receipt-wait", a.receipt_wait)?,
        encap,
        link_bps: a.link_bps,
        live: !a.quiet,
        eal_args: a.eal.as_deref().map(|e| e.split_whitespace().map(String::from).collect()).unwrap_or_default(),
        dpdk: dpdk.clone(),
        presealed: a.presealed,
        opened,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }
    let r = crate::run(&plan, &pool, &cfg, &stop);
    if matches!(cfg.out, Out::Dpdk(_)) {
        // Closes the port (a capture device's file is complete) and
        // releases the EAL's memory.
        if let Err(e) = dpdk.shutdown() {
            eprintln!("attnet-pktgen: {e}");
        }
    }
    let r = r?;
    let text = serde_json::to_string_pretty(&r.summary).map_err(|e| e.to_string())?;
    if let Some(p) = &a.expect {
        write(p, &serde_json::to_string_pretty(&r.summary["expected"]).map_err(|e| e.to_string())?)?;
    }
    if let Some(p) = &a.json {
        write(p, &text)?;
    }
    if !a.quiet {
        println!("{text}");
    }
    if r.summary["ended"] == "stalled" {
        return Err(format!("{}: the port took nothing for 5 s (link down?); sending stopped", cfg.out));
    }
    if r.sent.refused {
        return Err(format!("{}: the receiver refused (port unreachable); sending stopped", cfg.out));
    }
    Ok(())
}
