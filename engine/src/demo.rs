//! `attnet demo`: a node on io_uring bound to loopback, the traffic
//! generator sending to it in-process (with a share of hostile datagrams
//! over every drop reason), and checks that every datagram, frame and
//! transaction is accounted for reason by reason and that receipts come
//! back for every accepted transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pktgen::{Out, Rate, RunConfig, TrafficConfig};

use crate::config::{BackendChoice, NodeConfig, Overrides};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Datagrams per second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Data cores (default: all but one, at least one).
    #[arg(long)]
    cores: Option<usize>,
    #[arg(long, value_enum, default_value = "io_uring")]
    backend: BackendChoice,
    /// Fraction of hostile datagrams.
    #[arg(long, default_value_t = 0.03)]
    bad: f64,
    /// Write the node's summary JSON here too.
    #[arg(long)]
    summary_json: Option<std::path::PathBuf>,
}

pub fn run(a: DemoArgs) -> Result<(), String> {
    if a.backend == BackendChoice::Pcap || a.backend == BackendChoice::Dpdk {
        return Err("the demo runs on a socket backend (io_uring or recvmmsg)".into());
    }
    if !(a.duration > 0.0 && a.rate > 0.0 && (0.0..1.0).contains(&a.bad)) {
        return Err("--duration and --rate must be positive, --bad at least 0 and below 1".into());
    }
    let dir = std::env::temp_dir().join(format!("attnet-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plan = pktgen::Plan::random(1, 4, 64, 1_000_000_000);
    let per_account = ((a.rate * a.duration * 2.2) as usize / plan.accounts.len()).max(1) + 1;
    eprintln!(
        "attnet demo: signing {} transactions from {} accounts",
        per_account * plan.accounts.len(),
        plan.accounts.len()
    );
    let pool = plan.pool(per_account);
    let keys = dir.join("keys.json");
    let genesis = dir.join("genesis.json");
    crate::keys::write_private(&keys, plan.keys_json().as_bytes())?;
    std::fs::write(&genesis, plan.genesis()?.to_json()).map_err(|e| e.to_string())?;
    let cfg = NodeConfig::resolve(Overrides {
        backend: Some(a.backend),
        listen: Some("127.0.0.1:0".into()),
        cores: a.cores,
        keys: Some(keys),
        genesis: Some(genesis),
        live: Some(true),
        summary_json: a.summary_json.clone(),
        ..Overrides::default()
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let node = crate::node::start(cfg, Some(stop.clone()))?;
    let addr = node.addr.ok_or("the node has no socket address")?;
    eprintln!("attnet demo: sending {:.0} datagrams/s for {:.1} s to {addr}", a.rate, a.duration);
    let gcfg = RunConfig {
        out: Out::Udp(addr),
        traffic: TrafficConfig { bad: a.bad, ..TrafficConfig::default() },
        rate: Rate::Pps(a.rate),
        duration: Some(Duration::from_secs_f64(a.duration)),
        threads: 2,
        receipts: true,
        receipt_wait: Duration::from_secs(3),
        live: true,
        ..RunConfig::default()
    };
    let sender_stop = AtomicBool::new(false);
    let sent = pktgen::run(&plan, &pool, &gcfg, &sender_stop)?;
    // Receipts came back for what was included; let the node drain the
    // rest, then stop it.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let out = node.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    let s = &out.summary;
    println!("{}", serde_json::to_string_pretty(s).map_err(|e| e.to_string())?);
    let summary = out.summary.clone();
    out.finish()?;
    let s = &summary;
    let r = &sent.summary;
    eprintln!(
        "attnet demo: sent {} datagrams ({} frames, {} transactions) at {:.0}/s (asked {:.0}/s), {} late",
        sent.sent.datagrams,
        sent.sent.frames,
        sent.sent.txs,
        r["rate"]["achieved_pps"].as_f64().unwrap_or(0.0),
        a.rate,
        sent.sent.late
    );
    let mut checks = pktgen::check::compare(&r["expected"], s);
    if s["packets"]["kernel_dropped"].as_u64().unwrap_or(0) > 0 {
        eprintln!("attnet demo: the kernel dropped datagrams; exact per-reason checks skipped");
    }
    let rc = &r["receipts"];
    let accepted = s["txs"]["accepted"].as_u64().unwrap_or(0);
    let matched = rc["matched"].as_u64().unwrap_or(0);
    checks.push((format!("receipts matched {matched} == transactions accepted {accepted}"), matched == accepted));
    checks.push((
        format!("receipts: duplicate {} unknown {} bad {}", rc["duplicate"], rc["unknown"], rc["bad_frames"]),
        rc["duplicate"] == 0 && rc["unknown"] == 0 && rc["bad_frames"] == 0,
    ));
    eprintln!(
        "attnet demo: submit→inclusion p50 {} us, p99 {} us over {} receipts",
        rc["latency_us"]["p50"], rc["latency_us"]["p99"], matched
    );
    let mut ok = true;
    for (what, pass) in &checks {
        eprintln!("check {}: {}", if *pass { "ok    " } else { "FAILED" }, what);
        ok &= pass;
    }
    if ok {
        Ok(())
    } else {
        Err("demo checks failed".into())
    }
}
