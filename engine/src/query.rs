//! `attnet query` and `attnet repair`: a data directory's chain, read
//! through the running node's admin socket or, when no node runs on it,
//! from the files (a read-only recovery).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use control::admin;
use control::store::{self, StoreView};

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The node's data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Height, tip hash, accounts, producers, supply.
    Status,
    /// An account's balance, nonce, stake, vote and producer record.
    Account { key: String },
    /// The records other accounts addressed to an account.
    Inbox { key: String },
    /// Registered producers, most votes first.
    Producers,
    /// A block's header and transaction ids.
    Block { height: u64 },
    /// Where a transaction is: its block and index.
    Tx { id: String },
}

fn request(w: &What) -> Value {
    match w {
        What::Status => json!({"q": "status"}),
        What::Account { key } => json!({"q": "account", "key": key}),
        What::Inbox { key } => json!({"q": "inbox", "key": key}),
        What::Producers => json!({"q": "producers"}),
        What::Block { height } => json!({"q": "block", "height": height}),
        What::Tx { id } => json!({"q": "tx", "id": id}),
    }
}

/// Answers `req` about `d`: through the admin socket while a node holds
/// the directory, else from the files.
pub fn ask(d: &Path, req: &Value) -> Result<Value, String> {
    if store::is_locked(d) {
        let mut v = admin::ask_socket(d, req)?;
        v["running"] = json!(true);
        return Ok(v);
    }
    let mut v = if admin::is_state_query(req) {
        let g = store::dir_genesis(d)?;
        let inbox = control::ledger::LedgerConfig::default().inbox_capacity;
        let r = store::recover(d, &g, inbox, true)?;
        admin::answer_state(&StoreView { dir: d, state: &r.state, tip: r.tip }, req)
    } else {
        admin::answer_log(d, req)
    };
    v["running"] = json!(false);
    Ok(v)
}

pub fn run(a: QueryArgs) -> Result<(), String> {
    let v = ask(&a.data_dir, &request(&a.what))?;
    let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
    // A reader that went away (`| head`) is not an error.
    let _ = writeln!(std::io::stdout(), "{text}");
    match v.get("error").and_then(Value::as_str) {
        Some(e) => Err(e.to_string()),
        None => Ok(()),
    }
}

#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    /// The data directory of a stopped node.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

/// Cuts a damaged block log at its first bad record and removes damaged
/// snapshots (`docs/STORAGE.md`), printing what it did.
pub fn repair(a: RepairArgs) -> Result<(), String> {
    let g = store::dir_genesis(&a.data_dir)?;
    let lock = store::lock(&a.data_dir)?;
    let r = store::repair(&lock, &g)?;
    if r.actions.len() == 1 {
        println!("attnet repair: nothing was damaged");
    }
    for line in &r.actions {
        println!("attnet repair: {line}");
    }
    Ok(())
}
