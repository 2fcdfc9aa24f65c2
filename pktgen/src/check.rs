//! Compares a receiver's summary (`attnet node`'s JSON) with the expected
//! counts, reason by reason.

use serde_json::Value;

/// One comparison: what, and whether it held.
pub type Check = (String, bool);

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn num(v: &Value, path: &[&str]) -> u64 {
    get(v, path).as_u64().unwrap_or(0)
}

fn sum(v: &Value) -> u64 {
    v.as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

/// Every count of `expected` (the shape of [`crate::Expected::to_json`])
/// against `summary`, and the summary's handshake identity (`received ==
/// welcomed + cookies_sent + Σ refused`). When the kernel dropped datagrams before the
/// receiver read them (`packets.kernel_dropped`), only what drops cannot
/// change is compared: received + kernel-dropped = sent, and the
/// receiver's own identities.
pub fn compare(expected: &Value, summary: &Value) -> Vec<Check> {
    let received = num(summary, &["packets", "received"]);
    let kdrop = num(summary, &["packets", "kernel_dropped"]);
    let sent = num(expected, &["packets", "received"]);
    let mut out: Vec<Check> = vec![
        (format!("datagrams sent {sent} == received {received} + kernel_dropped {kdrop}"), sent == received + kdrop),
        (
            "frames: received == accepted + Σ dropped".into(),
            num(summary, &["frames", "received"])
                == num(summary, &["frames", "accepted"]) + sum(get(summary, &["frames", "dropped"])),
        ),
        (
            "txs: seen == accepted + Σ dropped".into(),
            num(summary, &["txs", "seen"])
                == num(summary, &["txs", "accepted"]) + sum(get(summary, &["txs", "dropped"])),
        ),
    ];
    if summary["handshake"].is_object() {
        let h = &summary["handshake"];
        let settled = num(h, &["welcomed"]) + num(h, &["cookies_sent"]) + sum(&h["refused"]);
        out.push((
            format!("handshake: received {} == welcomed + cookies_sent + Σ refused {settled}", num(h, &["received"])),
            num(h, &["received"]) == settled,
        ));
    }
    if kdrop > 0 {
        return out;
    }
    // A session over its failure budget has its authenticated frames
    // dropped as `throttled` before their signatures are checked: frames
    // that would have been accepted and held only bad signatures (the
    // generator's sessions that send bad signatures send nothing valid, so
    // legitimate counts stay exact).
    let throttled = num(summary, &["frames", "dropped", "throttled"]);
    let expected_throttled = num(expected, &["frames", "dropped", "throttled"]);
    let absorbed = throttled.saturating_sub(expected_throttled);
    let bad_sig = num(expected, &["txs", "dropped", "bad_signature"]);
    if absorbed > 0 {
        out.push((format!("throttled frames {absorbed} <= expected bad signatures {bad_sig}"), absorbed <= bad_sig));
    }
    let mut exact = |path: &[&str]| {
        let (want, got) = (num(expected, path), num(summary, path));
        let joined = path.join(".");
        let (holds, how) = match joined.as_str() {
            // Each throttled frame moves out of `accepted`...
            _ if absorbed == 0 => (want == got, "=="),
            "frames.accepted" => (want == got + absorbed, "== throttled +"),
            "frames.dropped.throttled" => (true, "(throttled)"),
            // ...and its transactions (all bad signatures) are never seen.
            "txs.seen" | "txs.dropped.bad_signature" => (got <= want && want - got <= bad_sig, ">="),
            _ => (want == got, "=="),
        };
        out.push((format!("{joined} expected {want} {how} {got}"), holds));
    };
    exact(&["frames", "received"]);
    exact(&["frames", "accepted"]);
    exact(&["txs", "seen"]);
    exact(&["txs", "accepted"]);
    exact(&["ledger", "applied"]);
    if expected["handshake"].is_object() {
        exact(&["handshake", "received"]);
        exact(&["handshake", "welcomed"]);
    }
    for (group, reasons) in
        [("frames", get(expected, &["frames", "dropped"])), ("txs", get(expected, &["txs", "dropped"]))]
    {
        if let Some(m) = reasons.as_object() {
            for k in m.keys() {
                exact(&[group, "dropped", k]);
            }
        }
    }
    out
}

/// True if every check held.
pub fn all_hold(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.1)
}
