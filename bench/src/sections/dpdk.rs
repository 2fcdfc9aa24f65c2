//! `dpdk`: dpdk-testpmd rxonly against `attnet node --backend dpdk` on the
//! same net_null vdev, and the full pipeline on unique ATT traffic against
//! the frame path in memory (`bench::dpdk` runs them).

use super::Ctx;
use crate::dpdk;
use crate::report::{Row, Section};

/// attnet's receive stage at >= 0.50 of testpmd rxonly.
pub const GOAL_RX: f64 = 0.50;

pub fn section(ctx: &Ctx) -> Section {
    if let Some(why) = dpdk::unavailable(&ctx.attnet) {
        return Section::skipped("dpdk", why);
    }
    let cfg = dpdk::Config {
        attnet: ctx.attnet.clone(),
        secs: if ctx.quick { 7 } else { 10 },
        unique_frames: if ctx.quick { 60_000 } else { 150_000 },
        memif: !ctx.quick,
    };
    let huge = dpdk::Hugepages::reserve();
    let r = dpdk::run(&cfg, huge.as_ref());
    drop(huge);
    let r = match r {
        Ok(r) => r,
        Err(e) => return Section::skipped("dpdk", e),
    };
    let tp = r.testpmd_rxonly_pps / 1e6;
    let mut rows = vec![
        Row::plain("dpdk-testpmd rxonly, net_null0", tp, "Mpps", true),
        Row::vs("attnet --stop-after rx, net_null0", r.attnet_rx_pps / 1e6, "Mpps", "testpmd rxonly", tp).goal(GOAL_RX),
        Row::vs(
            "attnet full pipeline, net_null0 (all not_ip)",
            r.attnet_full_null_pps / 1e6,
            "Mpps",
            "testpmd rxonly",
            tp,
        ),
    ];
    let mut note = format!(
        "dpdk-testpmd --forward-mode=rxonly and attnet node --backend dpdk on the same virtual device, lcores 0-1 \
         (forwarding/data core on CPU 1) and memory ({}); {} s per run; rates are steady-state medians of the \
         once-a-second figures each program prints. net_null hands out 64-byte non-ATT mbufs as fast as the PMD can.",
        r.memory, cfg.secs
    );
    if let Some(u) = r.unique {
        let mem = u.in_memory_fps / 1e3;
        note.push_str(&format!(
            " Unique rows: {} single-transaction frames, every one a fresh counter and a new transaction, through \
             net_pcap{} against the frame path alone on the same frames in memory (bursts of 32, one core).",
            u.frames,
            if cfg.memif { " and net_memif (a DPDK sender in the benchmark process)" } else { "" }
        ));
        rows.push(Row::plain("frame path alone in memory, unique frames", mem, "k frames/s", true));
        rows.push(Row::vs(
            "attnet dpdk net_pcap0, full pipeline",
            u.pcap_fps / 1e3,
            "k frames/s",
            "frame path in memory",
            mem,
        ));
        match u.memif {
            Some(Ok((_, _, fps, _))) => rows.push(Row::vs(
                "attnet dpdk net_memif0, full pipeline",
                fps / 1e3,
                "k frames/s",
                "frame path in memory",
                mem,
            )),
            Some(Err(e)) => note.push_str(&format!(" The memif run failed: {e}.")),
            None => {}
        }
    }
    Section::measured("dpdk", note, rows)
}
