//! `attnet decode --pcap`: replays a capture through the frame path (the
//! node's pcap backend, one pass) and prints a summary whose counters add
//! up, with repeated transactions counted as `duplicate`.

use std::collections::HashSet;
use std::path::Path;

use dataplane::backend::pcap::PcapReplay;
use dataplane::backend::{NotAtt, RxQueue};
use dataplane::{Burst, FramePath, TxDrop};
use serde_json::{json, Map, Value};

pub fn run(mut fp: FramePath, file: &Path, port: u16) -> Result<(), String> {
    let mut q = PcapReplay::open(file, port, 1).map_err(|e| format!("pcap {}: {e}", file.display()))?;
    let mut burst = Burst::default();
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    let mut error = None;
    while !q.finished() {
        let r = q.rx_burst(&mut |bufs: &mut [&mut [u8]]| {
            fp.process(bufs, &mut burst);
            let dup = burst.txs.iter().filter(|t| !seen.insert(t.id)).count() as u64;
            burst.counters.reclassify(TxDrop::Duplicate, dup);
        });
        if let Err(e) = r {
            error = Some(format!("pcap {}: {e}", file.display()));
            break;
        }
    }
    if let Some(e) = error {
        return Err(e);
    }
    let c = &burst.counters;
    let not_att = q.not_att();
    let mut na = Map::new();
    for w in NotAtt::ALL {
        na.insert(w.as_str().into(), json!(not_att[w as usize]));
    }
    let fd: Map<String, Value> = c.frame_drops_named().map(|(k, n)| (k.into(), json!(n))).collect();
    let td: Map<String, Value> = c.tx_drops_named().map(|(k, n)| (k.into(), json!(n))).collect();
    let v: Value = json!({
        "packets": {"received": q.packets(), "not_att": na},
        "frames": {"received": c.frames_received, "accepted": c.frames_accepted, "dropped": fd},
        "txs": {"seen": c.txs_seen, "accepted": c.txs_accepted, "dropped": td},
    });
    println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    Ok(())
}
