//! The admin socket (`D/admin.sock`, mode 0600) and the answers of
//! `attnet query`: one JSON request a line in, one JSON answer a line out.
//!
//! Requests: `{"q": "stats"}` (the node's live counters, `attnet top`'s
//! view; answered with or without a data directory), `{"q": "status"}`, `{"q": "account", "key": HEX}`,
//! `{"q": "inbox", "key": HEX}`, `{"q": "producers"}`,
//! `{"q": "block", "height": N}`, `{"q": "tx", "id": HEX}`. State answers
//! come from the store thread's replica: the state after the last durable
//! block, never a block that could still be lost. Blocks and transactions
//! are read from the log by the admin thread itself, so a long search
//! never delays a commit. A stopped node's directory gets the same answers
//! from a read-only recovery ([`crate::store::recover`]).
// JSON objects are filled by key (`v["k"] = ..`, which inserts): no
// `deny(clippy::indexing_slicing)` here.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::block::Block;
use crate::store::{self, AdminHandle, StoreView};

/// Admin connections served at once; more are answered with an error.
const ADMIN_CONNECTIONS: usize = 8;

/// A request line longer than this is refused.
const REQUEST_MAX: usize = 4096;

fn key_of(req: &Value, field: &str) -> Result<[u8; 32], String> {
    let s = req.get(field).and_then(Value::as_str).ok_or_else(|| format!("`{field}`: a 64-digit hex string needed"))?;
    let v = hex::decode(s).map_err(|e| format!("`{field}`: {e}"))?;
    v.try_into().map_err(|_| format!("`{field}`: 32 bytes (64 hex digits) needed"))
}

/// Whether `req` is answered from the state (on the store thread) rather
/// than from the log.
pub fn is_state_query(req: &Value) -> bool {
    matches!(req.get("q").and_then(Value::as_str), Some("status" | "account" | "inbox" | "producers"))
}

/// Answers a state request from `view`.
pub fn answer_state(view: &StoreView<'_>, req: &Value) -> Value {
    match state_answer(view, req) {
        Ok(v) => v,
        Err(e) => json!({"error": e}),
    }
}

fn state_answer(view: &StoreView<'_>, req: &Value) -> Result<Value, String> {
    let s = view.state;
    Ok(match req.get("q").and_then(Value::as_str) {
        Some("status") => {
            let supply = s.supply();
            json!({
                "height": view.tip.height,
                "hash": hex::encode(view.tip.hash),
                "timestamp_ms": view.tip.timestamp_ms,
                "accounts": s.account_count(),
                "producers": s.producers().count(),
                "supply": {"total": supply.total.to_string(), "holds": supply.holds()},
                "fees_collected": s.fees_collected(),
                "fees_paid": s.fees_paid(),
                "records_evicted": s.records_evicted(),
                "data_dir": view.dir.display().to_string(),
            })
        }
        Some("account") => {
            let k = key_of(req, "key")?;
            match s.account(&k) {
                None => json!({"key": hex::encode(k), "exists": false, "height": view.tip.height}),
                Some(a) => json!({
                    "key": hex::encode(k),
                    "exists": true,
                    "height": view.tip.height,
                    "balance": a.balance,
                    "nonce": a.nonce,
                    "staked": a.staked,
                    "unbonding": a.unbonding,
                    "release_height": a.release_height,
                    "vote": a.vote.map(hex::encode),
                    "staked_since": a.staked_since,
                    "blocks_proposed": a.blocks_proposed,
                    "producer": s.producer(&k).map(|p| json!({
                        "node_key": hex::encode(p.node_key),
                        "address": p.address,
                        "bond": p.bond,
                        "votes": p.votes,
                        "since": p.since,
                    })),
                }),
            }
        }
        Some("inbox") => {
            let k = key_of(req, "key")?;
            let records: Vec<Value> = s
                .inbox(&k)
                .map(|r| {
                    json!({
                        "kind": kind_name(r.kind as u8),
                        "from": hex::encode(r.from),
                        "nonce": r.nonce,
                        "height": r.height,
                        "memo": String::from_utf8_lossy(&r.memo),
                        "memo_hex": hex::encode(&r.memo),
                    })
                })
                .collect();
            json!({"key": hex::encode(k), "height": view.tip.height, "records": records})
        }
        Some("producers") => {
            let mut ps: Vec<(&[u8; 32], &crate::state::Producer)> = s.producers().collect();
            ps.sort_by(|a, b| b.1.votes.cmp(&a.1.votes).then(a.0.cmp(b.0)));
            let list: Vec<Value> = ps
                .into_iter()
                .map(|(owner, p)| {
                    json!({
                        "owner": hex::encode(owner),
                        "node_key": hex::encode(p.node_key),
                        "address": p.address,
                        "bond": p.bond,
                        "votes": p.votes,
                        "since": p.since,
                    })
                })
                .collect();
            json!({"height": view.tip.height, "producers": list})
        }
        other => return Err(format!("unknown query {other:?}")),
    })
}

fn kind_name(k: u8) -> &'static str {
    match k {
        0 => "transfer",
        1 => "message",
        2 => "connect_request",
        3 => "connect_accept",
        4 => "endpoint_offer",
        5 => "stake",
        6 => "unstake",
        7 => "vote",
        8 => "register_producer",
        _ => "unknown",
    }
}

fn block_json(b: &Block, with_txs: bool) -> Value {
    let h = b.header();
    let mut v = json!({
        "height": h.height,
        "hash": hex::encode(b.hash()),
        "parent": hex::encode(h.parent),
        "timestamp_ms": h.timestamp_ms,
        "producer": hex::encode(h.producer),
        "tx_count": h.tx_count,
        "tx_root": hex::encode(h.merkle_root),
        "state_root": hex::encode(h.state_root),
    });
    if with_txs {
        v["txs"] = b.txs().map(|t| Value::String(hex::encode(store::tx_id(t)))).collect();
    }
    v
}

/// Answers a log request (`block`, `tx`) from data directory `d`.
pub fn answer_log(d: &Path, req: &Value) -> Value {
    let r = match req.get("q").and_then(Value::as_str) {
        Some("block") => match req.get("height").and_then(Value::as_u64) {
            None => Err("`height`: a block height needed".to_string()),
            Some(n) => store::read_block(d, n).map(|b| match b {
                Some(b) => block_json(&b, true),
                None => json!({"height": n, "found": false}),
            }),
        },
        Some("tx") => key_of(req, "id").and_then(|id| {
            store::find_tx(d, &id).map(|f| match f {
                Some((height, index, tx)) => {
                    let mut v = json!({"id": hex::encode(id), "found": true, "height": height, "index": index});
                    if let Ok(t) = attnet_core::wire::tx::Transaction::new_checked(&tx[..]) {
                        v["kind"] = json!(kind_name(t.kind_byte()));
                        v["from"] = json!(hex::encode(t.from()));
                        v["to"] = json!(hex::encode(t.to()));
                        v["nonce"] = json!(t.nonce());
                        v["amount"] = json!(t.amount());
                        v["fee"] = json!(t.fee());
                    }
                    v
                }
                None => json!({"id": hex::encode(id), "found": false}),
            })
        }),
        other => Err(format!("unknown query {other:?}")),
    };
    r.unwrap_or_else(|e| json!({"error": e}))
}

/// The live figures' answer (`{"q": "stats"}`), given by the node.
pub type StatsFn = Box<dyn Fn() -> Value + Send + Sync>;

/// What the admin socket answers from: the data directory and its store
/// (state and log questions) and the node's live figures (`stats`). A node
/// without a data directory answers `stats` only.
pub struct AdminSources {
    pub dir: Option<(PathBuf, AdminHandle)>,
    pub stats: Option<StatsFn>,
}

/// The admin socket's thread: serves until `stop` is set.
pub struct AdminServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds the socket at `path` (a stale one from a node that died is
    /// replaced: the caller holds the data directory's or the port's lock)
    /// with mode 0600, its directory created if missing, and serves
    /// requests on a thread of its own.
    pub fn start(path: &Path, src: AdminSources) -> Result<AdminServer, String> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        l.set_nonblocking(true).map_err(|e| format!("{}: {e}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let src = Arc::new(src);
        // Each connection on a thread of its own (`attnet top` keeps one
        // open), at most ADMIN_CONNECTIONS at once.
        let open = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("attnet-admin".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Ok((s, _)) = l.accept() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    if open.fetch_add(1, Ordering::AcqRel) >= ADMIN_CONNECTIONS {
                        open.fetch_sub(1, Ordering::AcqRel);
                        let _ = s.set_nonblocking(false);
                        let _ = writeln!(&s, "{}", json!({"error": "too many admin connections"}));
                        continue;
                    }
                    let (src, stop, open2) = (src.clone(), stop2.clone(), open.clone());
                    let spawned = std::thread::Builder::new().name("attnet-admin-conn".into()).spawn(move || {
                        serve(s, &src, &stop);
                        open2.fetch_sub(1, Ordering::AcqRel);
                    });
                    if spawned.is_err() {
                        open.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })
            .map_err(|e| format!("admin thread: {e}"))?;
        Ok(AdminServer { path: path.to_path_buf(), stop, thread: Some(thread) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Answers every request line of one connection, until it closes, stays
/// idle for 2 s between requests (`attnet top` asks once a second), or
/// the node stops.
fn serve(s: UnixStream, src: &AdminSources, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let Ok(w) = s.try_clone() else { return };
    let mut w = std::io::BufWriter::new(w);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match (&mut r).take(REQUEST_MAX as u64 + 1).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = if line.len() > REQUEST_MAX {
            json!({"error": "request too long"})
        } else {
            match serde_json::from_str::<Value>(&line) {
                Err(e) => json!({"error": format!("not JSON: {e}")}),
                Ok(req) => answer(src, &req),
            }
        };
        if line.len() > REQUEST_MAX || writeln!(w, "{answer}").and_then(|_| w.flush()).is_err() {
            return;
        }
    }
}

fn answer(src: &AdminSources, req: &Value) -> Value {
    if req.get("q").and_then(Value::as_str) == Some("stats") {
        return match &src.stats {
            Some(f) => f(),
            None => json!({"error": "no live figures here"}),
        };
    }
    let Some((d, handle)) = &src.dir else {
        return json!({"error": "this node has no data directory: only `stats` is answered"});
    };
    if is_state_query(req) {
        let q = req.clone();
        handle
            .ask(Box::new(move |v| answer_state(v, &q)), Duration::from_secs(5))
            .unwrap_or_else(|| json!({"error": "the store thread did not answer"}))
    } else {
        answer_log(d, req)
    }
}

/// Asks a running node through the admin socket at `path`.
pub fn ask_path(path: &Path, req: &Value) -> Result<Value, String> {
    let s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    writeln!(w, "{req}").map_err(|e| format!("{}: {e}", path.display()))?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&line).map_err(|e| format!("{}: bad answer: {e}", path.display()))
}

/// Asks a running node through its admin socket (`D/admin.sock`).
pub fn ask_socket(d: &Path, req: &Value) -> Result<Value, String> {
    ask_path(&d.join("admin.sock"), req)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection held open (as `attnet top` holds one) does not keep
    /// another client waiting; connections beyond the limit are told so.
    #[test]
    fn a_held_connection_does_not_block_others() {
        let d = std::env::temp_dir().join(format!("attnet-admin-{}", std::process::id()));
        let path = d.join("admin.sock");
        let src = AdminSources { dir: None, stats: Some(Box::new(|| json!({"height": 7}))) };
        let server = AdminServer::start(&path, src).unwrap();
        let held = UnixStream::connect(&path).unwrap();
        writeln!(&held, "{}", json!({"q": "stats"})).unwrap();
        let mut line = String::new();
        BufReader::new(&held).read_line(&mut line).unwrap();
        assert!(line.contains("\"height\":7"), "{line}");
        let t = std::time::Instant::now();
        assert_eq!(ask_path(&path, &json!({"q": "stats"})).unwrap()["height"], 7);
        assert!(t.elapsed() < Duration::from_secs(1), "answered while another connection is open");
        let no_dir = ask_path(&path, &json!({"q": "account", "key": "00"})).unwrap();
        assert!(no_dir["error"].as_str().unwrap().contains("no data directory"), "{no_dir}");
        let mut more: Vec<UnixStream> = Vec::new();
        for _ in 0..ADMIN_CONNECTIONS + 2 {
            let s = UnixStream::connect(&path).unwrap();
            writeln!(&s, "{}", json!({"q": "stats"})).unwrap();
            more.push(s);
        }
        let answers: Vec<String> = more
            .iter()
            .map(|s| {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut l = String::new();
                let _ = BufReader::new(s).read_line(&mut l);
                l
            })
            .collect();
        assert!(answers.iter().any(|a| a.contains("too many admin connections")), "{answers:?}");
        assert!(answers.iter().filter(|a| a.contains("\"height\":7")).count() >= ADMIN_CONNECTIONS - 1, "{answers:?}");
        drop(server);
        assert!(!path.exists(), "the socket is removed");
        let _ = std::fs::remove_dir_all(&d);
    }
}
