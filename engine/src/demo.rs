//! `attnet demo`: a node on io_uring bound to loopback, an in-process
//! pktgen sender, and checks that every datagram, frame and transaction is
//! accounted for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pktgen::send::Bad;
use serde_json::Value;

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
    /// Malformed datagrams per thousand.
    #[arg(long, default_value_t = 30)]
    malformed: u32,
    /// Write the node's summary JSON here too.
    #[arg(long)]
    summary_json: Option<std::path::PathBuf>,
}

fn get(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn sum(v: &Value) -> u64 {
    v.as_object().map_or(0, |m| m.values().filter_map(|x| x.as_u64()).sum())
}

pub fn run(a: DemoArgs) -> Result<(), String> {
    if a.backend == BackendChoice::Pcap {
        return Err("the demo runs on a live backend (io_uring or recvmmsg)".into());
    }
    if !(a.duration > 0.0 && a.rate > 0.0) {
        return Err("--duration and --rate must be positive".into());
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
    std::fs::write(&keys, plan.keys_json()).map_err(|e| e.to_string())?;
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
    let scfg = pktgen::SendConfig {
        rate: a.rate,
        duration: Duration::from_secs_f64(a.duration),
        malformed_per_mille: a.malformed,
        ..pktgen::SendConfig::default()
    };
    let sender_stop = AtomicBool::new(false);
    let sent = pktgen::send(&plan, &pool, addr, &scfg, &sender_stop).map_err(|e| format!("sender: {e}"))?;
    // Let the node drain what is in flight, then stop it.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let out = node.wait()?;
    let _ = std::fs::remove_dir_all(&dir);
    let s = &out.summary;
    println!("{}", serde_json::to_string_pretty(s).map_err(|e| e.to_string())?);
    eprintln!(
        "attnet demo: sent {} datagrams ({} frames, {} transactions) at {:.0}/s (asked {:.0}/s)",
        sent.datagrams,
        sent.frames,
        sent.txs,
        sent.achieved_rate(),
        sent.asked_rate
    );
    let received = get(s, &["packets", "received"]);
    let kdrop = get(s, &["packets", "kernel_dropped"]);
    let mut checks: Vec<(String, bool)> = vec![
        (
            format!("datagrams sent {} == received {} + kernel_dropped {}", sent.datagrams, received, kdrop),
            sent.datagrams == received + kdrop,
        ),
        (
            "frames: received == accepted + Σ dropped".into(),
            get(s, &["frames", "received"]) == get(s, &["frames", "accepted"]) + sum(&s["frames"]["dropped"]),
        ),
        (
            "txs: seen == accepted + Σ dropped".into(),
            get(s, &["txs", "seen"]) == get(s, &["txs", "accepted"]) + sum(&s["txs"]["dropped"]),
        ),
    ];
    if kdrop == 0 {
        let fd = &s["frames"]["dropped"];
        for (bad, reason, want) in [
            (Bad::Tampered, "auth_failed", sent.bad_count(Bad::Tampered)),
            (Bad::Truncated, "truncated", sent.bad_count(Bad::Truncated)),
            (Bad::BadVersion, "bad_header", sent.bad_count(Bad::BadVersion)),
            (Bad::UnknownSession, "unknown_session", sent.bad_count(Bad::UnknownSession)),
            (Bad::Replayed, "replay", sent.replayed_frames),
        ] {
            let got = get(fd, &[reason]);
            checks.push((format!("{bad:?} frames sent {want} == {reason} {got}"), got == want));
        }
        let td = &s["txs"]["dropped"];
        checks.push((
            format!("forged sent {} == bad_signature {}", sent.bad_count(Bad::Forged), get(td, &["bad_signature"])),
            sent.bad_count(Bad::Forged) == get(td, &["bad_signature"]),
        ));
        checks.push((
            format!("duplicates sent {} == duplicate {}", sent.bad_count(Bad::Duplicate), get(td, &["duplicate"])),
            sent.bad_count(Bad::Duplicate) == get(td, &["duplicate"]),
        ));
        checks.push((
            format!("transactions sent {} == accepted {}", sent.txs, get(s, &["txs", "accepted"])),
            sent.txs == get(s, &["txs", "accepted"]),
        ));
        checks.push((
            format!("frames sent {} == received {}", sent.frames, get(s, &["frames", "received"])),
            sent.frames == get(s, &["frames", "received"]),
        ));
    } else {
        eprintln!("attnet demo: the kernel dropped {kdrop} datagrams; exact per-reason checks skipped");
    }
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
