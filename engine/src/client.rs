//! `attnet client`: an account's end of ATT. Opens a session with a relay
//! by a live handshake (the relay's key pinned), asks the account's next
//! nonce, sends one transaction and waits for its RECEIPT; or asks the
//! state of an account or a transaction, or reads an account's inbox or
//! connections page by page.
//!
//! Exit codes: 0 committed (or answered), 1 refused (the reason named),
//! 2 usage (bad arguments, unreadable key file, unresolvable relay),
//! 3 timeout (no WELCOME, no answer, or not committed in time).

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use control::ledger::Refusal;
use dataplane::client::{ClientConfig, ClientError, Connection};
use dataplane::emit::TxFields;
use dataplane::wire::query::{self, connection_entries, inbox_records, Answer, AnswerBody, InboxRecord, QueryWhat};
use dataplane::wire::tx::Kind;
use serde_json::{json, Value};

use crate::keys;

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// The relay's address.
    #[arg(long, value_name = "HOST:PORT")]
    pub relay: String,
    /// The relay's node key (64 hex, as `attnet keygen` printed it): a
    /// WELCOME signed by any other key is refused.
    #[arg(long, value_name = "HEX")]
    pub relay_key: String,
    /// The account's key file: {"secret": "<64 hex>", "public": "<64 hex>"},
    /// mode 0600 (`attnet keygen --out FILE` makes one).
    #[arg(long, value_name = "FILE")]
    pub account_key: PathBuf,
    /// The network id HELLOs and transactions are signed for.
    #[arg(long, default_value_t = 1)]
    pub network_id: u32,
    /// Print one JSON object on stdout instead of a line of text.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for the outcome before giving up (exit 3).
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub timeout: u64,
    #[command(subcommand)]
    pub cmd: ClientCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClientCmd {
    /// Transfer AMOUNT to account PK.
    Send {
        #[arg(long, value_name = "PK")]
        to: String,
        #[arg(long)]
        amount: u64,
        /// Fee (default: the relay's minimum fee).
        #[arg(long)]
        fee: Option<u64>,
    },
    /// A cross-platform message to account PK (at most 1024 bytes).
    Message {
        #[arg(long, value_name = "PK")]
        to: String,
        text: String,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// A connection request to account PK, with a reason.
    Connect {
        #[arg(long, value_name = "PK")]
        to: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// Accept account PK's connection request.
    Accept {
        #[arg(long, value_name = "PK")]
        to: String,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// Offer an endpoint to account PK, sealed so that only PK reads it
    /// (docs/PROTOCOL.md, "Sealed endpoint offers").
    Offer {
        #[arg(long, value_name = "PK")]
        to: String,
        endpoint: String,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// Stake AMOUNT (it counts for the producer this account votes for).
    Stake {
        amount: u64,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// Unstake AMOUNT: spendable again after the genesis' unbonding blocks.
    Unstake {
        amount: u64,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// Vote with this account's stake for the producer owned by PRODUCER
    /// (an account key).
    Vote {
        producer: String,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// Register this account as the owner of a block producer (bonding the
    /// genesis' producer_bond): its node key and network address.
    RegisterProducer {
        #[arg(long, value_name = "HEX")]
        node_key_pub: String,
        #[arg(long, value_name = "HOST:PORT")]
        address: String,
        #[arg(long)]
        fee: Option<u64>,
    },
    /// An account's state (default: this client's account).
    Account { pk: Option<String> },
    /// A transaction's state by id (64 hex).
    Tx { id: String },
    /// The records addressed to an account (default: this client's):
    /// messages, connection requests and acceptances, endpoint offers,
    /// oldest first, read page by page.
    Inbox {
        pk: Option<String>,
        /// The first record index to read (records are numbered from the
        /// account's first ever; default: the oldest still held).
        #[arg(long, default_value_t = 0, value_name = "INDEX")]
        from: u64,
    },
    /// An account's connections and open requests (default: this
    /// client's).
    Connections { pk: Option<String> },
}

/// How a run ended, and its exit code.
enum End {
    /// Printed; exit 0 (or 1 / 3 for a refused or unsettled state).
    Done(Value, u8),
    Usage(String),
    Timeout(String),
    Refused(String),
}

fn hex32(what: &str, s: &str) -> Result<[u8; 32], End> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|e| End::Usage(format!("{what} must be 64 hex digits ({e})")))?;
    Ok(out)
}

fn from_client(e: ClientError) -> End {
    match e {
        ClientError::Timeout(w) => End::Timeout(format!("timed out waiting for {w}")),
        // A WELCOME from another key than the pinned one, or one that
        // fails its checks: the client refuses the relay.
        ClientError::Welcome(_) => End::Refused(e.to_string()),
        ClientError::Io(e) => End::Timeout(format!("socket: {e}")),
    }
}

/// The outcome object of a transaction: `{"tx_id", "status", "height",
/// "reason"}`.
fn tx_outcome(id: &[u8; 32], status: &str, height: Option<u64>, reason: Option<&str>) -> Value {
    json!({"tx_id": hex::encode(id), "status": status, "height": height, "reason": reason})
}

/// A transaction-state ANSWER as an outcome and its exit code.
fn tx_state(id: &[u8; 32], a: &Answer) -> (Value, u8) {
    match a.body {
        AnswerBody::Transaction { state: query::state::COMMITTED, height, .. } => {
            (tx_outcome(id, "committed", Some(height), None), 0)
        }
        AnswerBody::Transaction { state: query::state::REFUSED, reason, .. } => {
            let name = Refusal::from_code(reason).map_or("unknown_reason", Refusal::name);
            (tx_outcome(id, "refused", None, Some(name)), 1)
        }
        AnswerBody::Transaction { state: query::state::PENDING, .. } => (tx_outcome(id, "pending", None, None), 3),
        _ => (tx_outcome(id, "unknown", None, None), 3),
    }
}

fn print(json_out: bool, v: &Value) {
    if json_out {
        println!("{v}");
        return;
    }
    if let Some(records) = v.get("records").and_then(Value::as_array) {
        println!("inbox {}: {} received, from index {}", v["account"].as_str().unwrap_or(""), v["total"], v["first"]);
        for r in records {
            let memo = r["endpoint"].as_str().or(r["memo"].as_str()).unwrap_or("");
            let memo = if memo.is_empty() { r["memo_hex"].as_str().unwrap_or("") } else { memo };
            println!(
                "#{} {} from {} at height {}: {memo}",
                r["index"],
                r["kind"].as_str().unwrap_or(""),
                r["from"].as_str().unwrap_or(""),
                r["height"]
            );
        }
        return;
    }
    if v.get("connected").is_some() {
        for (field, label) in
            [("connected", "connected"), ("requests_in", "request-in"), ("requests_out", "request-out")]
        {
            for k in v[field].as_array().into_iter().flatten() {
                println!("{label} {}", k.as_str().unwrap_or(""));
            }
        }
        return;
    }
    if let Some(id) = v.get("tx_id").and_then(Value::as_str) {
        match v["status"].as_str() {
            Some("committed") => println!("committed {id} at height {}", v["height"]),
            Some("refused") => println!("refused {id}: {}", v["reason"].as_str().unwrap_or("")),
            Some(s) => println!("{s} {id}"),
            None => println!("{v}"),
        }
    } else {
        // An account: one `name value` pair per field.
        let fields: Vec<String> = v
            .as_object()
            .map(|o| {
                o.iter().map(|(k, x)| format!("{k} {}", x.as_str().map_or(x.to_string(), str::to_owned))).collect()
            })
            .unwrap_or_default();
        println!("{}", fields.join("  "));
    }
}

/// Runs `attnet client` and maps its end to an exit code.
pub fn main(a: ClientArgs) -> ExitCode {
    let json_out = a.json;
    match run(a) {
        End::Done(v, code) => {
            print(json_out, &v);
            ExitCode::from(code)
        }
        End::Usage(e) => {
            eprintln!("attnet client: {e}");
            ExitCode::from(2)
        }
        End::Refused(e) => {
            if json_out {
                println!("{}", json!({"status": "refused", "reason": e}));
            }
            eprintln!("attnet client: refused: {e}");
            ExitCode::from(1)
        }
        End::Timeout(e) => {
            if json_out {
                println!("{}", json!({"status": "timeout", "reason": e}));
            }
            eprintln!("attnet client: {e}");
            ExitCode::from(3)
        }
    }
}

fn run(a: ClientArgs) -> End {
    match try_run(a) {
        Ok(end) | Err(end) => end,
    }
}

fn try_run(a: ClientArgs) -> Result<End, End> {
    let relay = a
        .relay
        .to_socket_addrs()
        .map_err(|e| End::Usage(format!("--relay {}: {e}", a.relay)))?
        .next()
        .ok_or_else(|| End::Usage(format!("--relay {}: no address", a.relay)))?;
    let relay_key = hex32("--relay-key", &a.relay_key)?;
    let account = keys::read_account_key(&a.account_key).map_err(End::Usage)?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    // Check every argument before the first datagram.
    let to = match &a.cmd {
        ClientCmd::Send { to, .. }
        | ClientCmd::Message { to, .. }
        | ClientCmd::Connect { to, .. }
        | ClientCmd::Accept { to, .. }
        | ClientCmd::Offer { to, .. } => hex32("--to", to)?,
        ClientCmd::Stake { .. } | ClientCmd::Unstake { .. } => account.public,
        ClientCmd::Vote { producer, .. } => hex32("PRODUCER", producer)?,
        ClientCmd::RegisterProducer { node_key_pub, .. } => hex32("--node-key-pub", node_key_pub)?,
        ClientCmd::Account { pk: Some(pk) } => hex32("PK", pk)?,
        ClientCmd::Account { pk: None } | ClientCmd::Inbox { pk: None, .. } | ClientCmd::Connections { pk: None } => {
            account.public
        }
        ClientCmd::Inbox { pk: Some(pk), .. } | ClientCmd::Connections { pk: Some(pk) } => hex32("PK", pk)?,
        ClientCmd::Tx { id } => hex32("ID", id)?,
    };
    let memo: Vec<u8> = match &a.cmd {
        ClientCmd::Message { text, .. } => text.as_bytes().to_vec(),
        ClientCmd::Connect { reason, .. } => reason.as_bytes().to_vec(),
        ClientCmd::RegisterProducer { address, .. } => {
            if !control::state::valid_address(address.as_bytes()) {
                return Err(End::Usage(format!(
                    "--address {address:?}: not HOST:PORT (port 1-65535, at most 255 bytes)"
                )));
            }
            address.as_bytes().to_vec()
        }
        ClientCmd::Offer { endpoint, .. } => {
            let mut eph = [0u8; 32];
            rand::Rng::fill_bytes(&mut rand::make_rng::<rand::rngs::StdRng>(), &mut eph);
            dataplane::offer::seal(&account.public, &to, endpoint.as_bytes(), eph)
                .map_err(|e| End::Usage(format!("offer: {e}")))?
        }
        _ => Vec::new(),
    };
    if memo.len() > 1024 {
        return Err(End::Usage(format!("the text is {} bytes; a memo holds at most 1024", memo.len())));
    }
    // The handshake's attempts fit in the timeout (0.5 s, 1, 2, 4, 4, ...).
    let cfg = ClientConfig::new(relay, relay_key, a.network_id).hellos_within(Duration::from_secs(a.timeout));
    let mut c = Connection::connect(&cfg, ed25519_zebra::SigningKey::from(account.secret)).map_err(from_client)?;
    eprintln!(
        "attnet client: session {} with {relay} ({} HELLO, {} cookie)",
        c.session_id(),
        c.stats.hellos,
        c.stats.cookies
    );
    let (kind, amount, fee) = match a.cmd {
        ClientCmd::Account { .. } => {
            let ans = c.query(QueryWhat::Account(to), 4).map_err(from_client)?;
            return Ok(match ans.body {
                AnswerBody::Account { next_nonce, balance, staked, min_fee, height } => End::Done(
                    json!({"account": hex::encode(to), "next_nonce": next_nonce, "balance": balance,
                           "staked": staked, "min_fee": min_fee, "height": height}),
                    0,
                ),
                _ => End::Done(json!({"account": hex::encode(to), "status": "unknown"}), 1),
            });
        }
        ClientCmd::Tx { .. } => {
            let ans = c.query(QueryWhat::Transaction(to), 4).map_err(from_client)?;
            let (v, code) = tx_state(&to, &ans);
            return Ok(End::Done(v, code));
        }
        ClientCmd::Inbox { from, .. } => return read_inbox(&mut c, to, from, &account.secret, deadline),
        ClientCmd::Connections { .. } => return read_connections(&mut c, to, deadline),
        ClientCmd::Send { amount, fee, .. } => (Kind::Transfer, amount, fee),
        ClientCmd::Message { fee, .. } => (Kind::Message, 0, fee),
        ClientCmd::Connect { fee, .. } => (Kind::ConnectRequest, 0, fee),
        ClientCmd::Accept { fee, .. } => (Kind::ConnectAccept, 0, fee),
        ClientCmd::Offer { fee, .. } => (Kind::EndpointOffer, 0, fee),
        ClientCmd::Stake { amount, fee } => (Kind::Stake, amount, fee),
        ClientCmd::Unstake { amount, fee } => (Kind::Unstake, amount, fee),
        ClientCmd::Vote { fee, .. } => (Kind::Vote, 0, fee),
        ClientCmd::RegisterProducer { fee, .. } => (Kind::RegisterProducer, 0, fee),
    };
    let me = c.query(QueryWhat::Account(account.public), 4).map_err(from_client)?;
    let AnswerBody::Account { next_nonce, min_fee, .. } = me.body else {
        return Err(End::Refused(format!("no_account: the relay knows no account {}", hex::encode(account.public))));
    };
    let t = TxFields { kind, to, nonce: next_nonce, amount, fee: fee.unwrap_or(min_fee), memo: &memo };
    let (id, body) = c.signed_batch(&t);
    c.send_batch(kind, &body).map_err(from_client)?;
    settle(&mut c, &id, &t, &body, deadline)
}

/// Waits for `id`'s RECEIPT; after each unanswered round asks the
/// transaction's state (a lost RECEIPT is recovered this way, never by
/// sending again what the relay has seen). Rounds last 250 ms, 500 ms,
/// then 1 s: the relay remembers a refusal for 2 s (docs/PROTOCOL.md,
/// "Transaction states"). Only a transaction the relay still does not know
/// from the third round on (its datagram was lost) is sent again: the same
/// bytes, so it can never apply twice), unless the account's nonce has
/// moved past it: another transaction used it (`bad_nonce`, which the
/// relay does not remember).
fn settle(c: &mut Connection, id: &[u8; 32], t: &TxFields<'_>, body: &[u8], deadline: Instant) -> Result<End, End> {
    let mut round = 0u32;
    while Instant::now() < deadline {
        let wait = Duration::from_millis(250) * (1u32 << round.min(2));
        round += 1;
        if let Some(h) = c.wait_receipt(id, (Instant::now() + wait).min(deadline)).map_err(from_client)? {
            return Ok(End::Done(tx_outcome(id, "committed", Some(h), None), 0));
        }
        let ans = match c.query(QueryWhat::Transaction(*id), 2) {
            Ok(a) => a,
            Err(ClientError::Timeout(_)) => continue,
            Err(e) => return Err(from_client(e)),
        };
        let (v, code) = tx_state(id, &ans);
        match v["status"].as_str() {
            Some("committed") | Some("refused") => return Ok(End::Done(v, code)),
            Some("unknown") if round >= 3 => {
                let me = c.account();
                if let Ok(Answer { body: AnswerBody::Account { next_nonce, .. }, .. }) =
                    c.query(QueryWhat::Account(me), 2)
                {
                    if next_nonce > t.nonce {
                        return Ok(End::Done(tx_outcome(id, "refused", None, Some(Refusal::BadNonce.name())), 1));
                    }
                }
                c.send_batch(t.kind, body).map_err(from_client)?;
            }
            _ => {}
        }
    }
    Ok(End::Done(tx_outcome(id, "timeout", None, None), 3))
}

/// The name of an inbox record's kind (`docs/LEDGER.md`).
fn record_kind(kind: u8) -> &'static str {
    match Kind::from_u8(kind) {
        Some(Kind::Message) => "message",
        Some(Kind::ConnectRequest) => "connect-request",
        Some(Kind::ConnectAccept) => "connect-accept",
        Some(Kind::EndpointOffer) => "endpoint-offer",
        _ => "unknown",
    }
}

/// One inbox record as JSON: the memo as text when it is UTF-8, else in
/// hex; an endpoint offer sealed to `me` (this client's seed) opened.
fn record_json(index: u64, r: &InboxRecord<'_>, reader: &[u8; 32], me: &[u8; 32], me_seed: &[u8; 32]) -> Value {
    let text = std::str::from_utf8(r.memo).ok();
    let mut v = json!({"index": index, "kind": record_kind(r.kind), "from": hex::encode(r.from), "nonce": r.nonce,
                       "height": r.height, "memo": text, "cut": r.flags & query::record_flag::CUT != 0});
    if text.is_none() {
        v["memo_hex"] = json!(hex::encode(r.memo));
    }
    if Kind::from_u8(r.kind) == Some(Kind::EndpointOffer) && reader == me {
        let opened = dataplane::offer::open(me_seed, &r.from, r.memo).ok();
        v["endpoint"] = json!(opened.map(|e| String::from_utf8_lossy(&e).into_owned()));
    }
    v
}

/// Pages that make no progress (the relay's pages always hold a record
/// until the end): the reading stops.
fn stuck(what: &str) -> End {
    End::Refused(format!("the relay's {what} page holds nothing before the end"))
}

/// Reads `key`'s inbox from record `from` to the newest, one QUERY per
/// page (each asked up to 4 times), within `deadline`.
fn read_inbox(c: &mut Connection, key: [u8; 32], from: u64, seed: &[u8; 32], deadline: Instant) -> Result<End, End> {
    let me = c.account();
    let (mut start, mut records, mut first_held) = (from, Vec::new(), None);
    loop {
        if Instant::now() >= deadline {
            return Err(End::Timeout("timed out reading the inbox".into()));
        }
        let (a, body) = c.query_body(QueryWhat::Inbox { account: key, start }, 4).map_err(from_client)?;
        let AnswerBody::Inbox { total, first, at, count } = a.body else {
            return Ok(End::Done(json!({"account": hex::encode(key), "status": "unknown"}), 1));
        };
        first_held.get_or_insert(first);
        for (i, r) in (at..).zip(inbox_records(&body)) {
            records.push(record_json(i, &r, &key, &me, seed));
        }
        start = at + u64::from(count);
        if start >= total {
            let v = json!({"account": hex::encode(key), "total": total, "first": first_held.unwrap_or(first),
                           "records": records});
            return Ok(End::Done(v, 0));
        }
        if count == 0 {
            return Err(stuck("inbox"));
        }
    }
}

/// Reads `key`'s connections and open requests, one QUERY per page.
fn read_connections(c: &mut Connection, key: [u8; 32], deadline: Instant) -> Result<End, End> {
    let (mut start, mut lists) = (0, [Vec::new(), Vec::new(), Vec::new()]);
    loop {
        if Instant::now() >= deadline {
            return Err(End::Timeout("timed out reading the connections".into()));
        }
        let (a, body) = c.query_body(QueryWhat::Connections { account: key, start }, 4).map_err(from_client)?;
        let AnswerBody::Connections { total, at, count } = a.body else {
            return Ok(End::Done(json!({"account": hex::encode(key), "status": "unknown"}), 1));
        };
        for (rel, peer) in connection_entries(&body) {
            if let Some(l) = lists.get_mut(usize::from(rel)) {
                l.push(hex::encode(peer));
            }
        }
        start = at + u64::from(count);
        if start >= total {
            let [connected, requests_in, requests_out] = lists;
            let v = json!({"account": hex::encode(key), "connected": connected, "requests_in": requests_in,
                           "requests_out": requests_out});
            return Ok(End::Done(v, 0));
        }
        if count == 0 {
            return Err(stuck("connections"));
        }
    }
}
