//! How blocks become final, through the built binary: a genesis that lists
//! the node as its only validator sends every block through the BFT
//! engine; a genesis the node cannot serve is refused at start with the
//! reason. A network of several validators: `network.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_attnet");
const TXS: u64 = 6000;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-consensus-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(d: &Path, args: &[&str]) -> Output {
    Command::new(BIN).current_dir(d).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A node key in `name`, its public key returned.
fn keygen(d: &Path, name: &str) -> String {
    let o = run(d, &["keygen", "--out", name]);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// A capture of single-transaction frames and a genesis listing `validators`.
fn capture(d: &Path, genesis: &str, validators: &[String]) {
    let mut args = vec!["pktgen", "--quiet", "--seed", "5", "--accounts", "256", "--txs-per-frame", "1"];
    args.extend(["--frames-per-datagram", "1", "--bad", "0", "--pool-cache", "off", "--keys-out", "keys.json"]);
    let count = TXS.to_string();
    args.extend(["--count", &count, "--out", "pcap:t.pcap", "--genesis-out", genesis]);
    let v: Vec<String> = validators.iter().map(|k| format!("{k}@127.0.0.1:7100")).collect();
    for x in &v {
        args.extend(["--validator", x]);
    }
    let o = run(d, &args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn node(d: &Path, genesis: &str, key: Option<&str>) -> Output {
    let mut args = vec!["node", "--backend", "pcap", "--pcap", "t.pcap", "--cores", "1", "--keys", "keys.json"];
    args.extend(["--genesis", genesis, "--block-interval", "20", "--summary-json", "s.json"]);
    if let Some(k) = key {
        args.extend(["--node-key", k]);
    }
    run(d, &args)
}

#[test]
fn a_genesis_listing_the_node_as_its_validator_certifies_every_block() {
    let d = tmpdir("lone");
    let me = keygen(&d, "node.json");
    capture(&d, "genesis.json", std::slice::from_ref(&me));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(d.join("genesis.json")).unwrap()).unwrap();
    assert_eq!(g["version"], 2);
    assert_eq!(g["validators"][0]["node_key"], me.as_str());

    let o = node(&d, "genesis.json", Some("node.json"));
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(d.join("s.json")).unwrap()).unwrap();
    assert_eq!(s["consensus"]["mode"], "bft", "{}", s["consensus"]);
    assert_eq!(s["ledger"]["applied"], TXS);
    let blocks = s["blocks"].as_u64().unwrap();
    assert!(blocks > 0);
    assert_eq!(s["certified"].as_u64(), Some(blocks), "every final block certified");
    assert_eq!(s["height"].as_u64(), Some(blocks));
    // The engine's per-step logs stay out of the node's output.
    assert!(!stderr(&o).contains("Starting new round"), "{}", stderr(&o));

    // The same capture without a validator list: final at once, nothing certified.
    capture(&d, "plain.json", &[]);
    let o = node(&d, "plain.json", Some("node.json"));
    assert!(o.status.success(), "{}", stderr(&o));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(d.join("s.json")).unwrap()).unwrap();
    assert_eq!(s["consensus"]["mode"], "final-at-once");
    assert_eq!(s["certified"], 0);
    assert_eq!(s["ledger"]["applied"], TXS);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_genesis_the_node_cannot_serve_is_refused_with_the_reason() {
    let d = tmpdir("refused");
    let me = keygen(&d, "node.json");
    let other = keygen(&d, "other.json");
    capture(&d, "theirs.json", std::slice::from_ref(&other));
    let o = node(&d, "theirs.json", Some("node.json"));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!("this node's key {me} is not the genesis validator {other}")),
        "{}",
        stderr(&o)
    );

    let o = node(&d, "theirs.json", None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("the genesis lists validators: give the node its key"), "{}", stderr(&o));

    // A network of several validators keeps its consensus log on disk.
    capture(&d, "two.json", &[me, other]);
    let o = node(&d, "two.json", Some("node.json"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("keeps its consensus log in the data directory"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}
