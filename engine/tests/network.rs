//! A network of four validators, each a separate `attnet node` process on
//! loopback with its own data directory, linked over TCP: transactions
//! sent to different validators become final on all four, in the same
//! blocks; with one validator stopped the other three go on, and the one
//! restarted from its data directory catches up. Processes run one at a
//! time per test and every one is stopped (or killed) within a bounded
//! time.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::client::{ClientConfig, Connection};
use dataplane::emit::TxFields;
use dataplane::wire::tx::Kind;
use ed25519_zebra::SigningKey;
use serde_json::{json, Value};

mod session_common;
use session_common::*;

const VALIDATORS: usize = 4;

/// The networks of this file run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn seed(i: usize) -> [u8; 32] {
    [0x70 + i as u8; 32]
}

fn key_file(d: &Path, i: usize) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = d.join(format!("node{i}.key"));
    let _ = std::fs::remove_file(&path);
    let public = hex::encode(pk(&SigningKey::from(seed(i))));
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
    let body = format!("{{\"secret\": \"{}\", \"public\": \"{public}\"}}\n", hex::encode(seed(i)));
    std::io::Write::write_all(&mut f, body.as_bytes()).unwrap();
    path
}

/// Free loopback TCP ports for the validator links.
fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A genesis (network 1) funding accounts 0..8 and listing the four
/// validators (owners: accounts 100..104) on `ports`.
fn genesis(d: &Path, ports: &[u16]) -> PathBuf {
    genesis_with(d, ports, None)
}

/// [`genesis`] with the election parameters `election`, if given.
fn genesis_with(d: &Path, ports: &[u16], election: Option<Value>) -> PathBuf {
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    genesis_at(d, &addrs, election)
}

/// [`genesis_with`] listing the validators at `addrs` (IP:PORT).
fn genesis_at(d: &Path, addrs: &[String], election: Option<Value>) -> PathBuf {
    let mut accounts: Vec<Value> =
        (0..8).map(|i| json!({"key": hex::encode(pk(&account(i))), "balance": 1_000_000})).collect();
    let mut validators = Vec::new();
    for (i, address) in addrs.iter().enumerate() {
        let owner = hex::encode(pk(&account(100 + i as u32)));
        accounts.push(json!({"key": owner, "balance": 10_000}));
        validators.push(json!({
            "node_key": hex::encode(pk(&SigningKey::from(seed(i)))),
            "owner": owner,
            "bond": 1000,
            "address": address,
        }));
    }
    let g = d.join("genesis.json");
    let mut body = json!({"version": 2, "network_id": 1, "min_fee": 1, "accounts": accounts, "validators": validators});
    if let Some(e) = election {
        body["election"] = e;
    }
    std::fs::write(&g, body.to_string()).unwrap();
    g
}

fn start_validator(d: &Path, i: usize, g: &Path) -> Node {
    start_validator_every(d, i, g, 100)
}

/// A validator proposing every `interval_ms` (milliseconds).
fn start_validator_every(d: &Path, i: usize, g: &Path, interval_ms: u64) -> Node {
    Node::spawn(&mut validator_command(Command::new(BIN), d, i, g, interval_ms))
}

/// `cmd` (the binary, or `ip netns exec NS` and the binary) with the
/// arguments of validator `i`.
fn validator_command(mut cmd: Command, d: &Path, i: usize, g: &Path, interval_ms: u64) -> Command {
    cmd.args(["node", "--backend", "recvmmsg", "--listen", "127.0.0.1:0", "--cores", "1", "--pin", "false"])
        .args(["--block-interval", &interval_ms.to_string(), "--receipts", "true"])
        // A stopped validator's turns cost a proposal timeout each.
        .args(["--propose-timeout", &(interval_ms * 5).max(100).to_string()])
        .arg("--node-key")
        .arg(key_file(d, i))
        .arg("--genesis")
        .arg(g)
        .arg("--data-dir")
        .arg(d.join(format!("data{i}")));
    cmd
}

/// `attnet query --data-dir DIR ...` as JSON.
fn query_dir(dir: &Path, what: &[&str]) -> Value {
    let o = Command::new(BIN).arg("query").arg("--data-dir").arg(dir).args(what).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Sends `count` transfers from account `from` through validator `addr`
/// and waits for each one's RECEIPT: the height it became final at.
fn transfers(addr: SocketAddr, validator: usize, from: u32, first_nonce: u64, count: u64) -> Vec<u64> {
    let mut cfg = ClientConfig::new(addr, pk(&SigningKey::from(seed(validator))), 1);
    cfg.hellos = 10;
    let mut c = Connection::connect(&cfg, account(from)).unwrap();
    let to = pk(&account(7));
    let ids: Vec<_> = (0..count).map(|k| transfer(&mut c, to, first_nonce + k, 10)).collect();
    let until = Instant::now() + Duration::from_secs(30);
    ids.iter()
        .map(|id| c.wait_receipt(id, until).unwrap().unwrap_or_else(|| panic!("no RECEIPT from {addr}")))
        .collect()
}

fn network(s: &Value) -> &Value {
    &s["consensus"]["network"]
}

/// Every node's blocks 1..=h have the same hash.
fn same_blocks(d: &Path, nodes: &[usize], h: u64) {
    for height in 1..=h {
        let hashes: Vec<Value> = nodes
            .iter()
            .map(|i| query_dir(&d.join(format!("data{i}")), &["block", &height.to_string()])["hash"].clone())
            .collect();
        assert!(hashes[0].is_string(), "block {height}: {hashes:?}");
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "block {height} differs: {hashes:?}");
    }
}

#[test]
fn four_validator_processes_finalize_the_same_blocks_and_a_stopped_one_catches_up() {
    let _one = serial();
    let d = tmpdir("network");
    let ports = free_ports(VALIDATORS);
    let g = genesis(&d, &ports);
    let mut nodes: Vec<Option<Node>> = (0..VALIDATORS).map(|i| Some(start_validator(&d, i, &g))).collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.as_ref().unwrap().addr()).collect();

    // Transactions sent to each validator become final (a RECEIPT each).
    let threads: Vec<_> = (0..VALIDATORS)
        .map(|i| {
            let a = addrs[i];
            std::thread::spawn(move || transfers(a, i, i as u32, 1, 5))
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().iter().all(|h| *h >= 1));
    }

    // One validator stops; three of four go on.
    let s3 = nodes[3].take().unwrap().stop();
    assert!(n(&network(&s3)["replica"]["decided"]) > 0, "{}", network(&s3));
    let heights = transfers(addrs[0], 0, 4, 1, 3);
    let reached = *heights.iter().max().unwrap();
    assert!(reached > n(&s3["height"]), "no block after the stop: {heights:?} vs {}", s3["height"]);

    // Restarted from its data directory, it catches up.
    let back = start_validator(&d, 3, &g);
    let until = Instant::now() + Duration::from_secs(30);
    let mut got = 0;
    while got < reached {
        assert!(Instant::now() < until, "the restarted validator did not catch up ({got} < {reached})");
        std::thread::sleep(Duration::from_millis(200));
        got = n(&query_dir(&d.join("data3"), &["status"])["height"]);
    }
    nodes[3] = Some(back);

    let summaries: Vec<Value> = nodes.into_iter().map(|n| n.unwrap().stop()).collect();
    for (i, s) in summaries.iter().enumerate() {
        let net = network(s);
        assert_eq!(s["consensus"]["mode"], "bft", "node {i}");
        assert_eq!(net["halted"], Value::Null, "node {i}: {net}");
        assert_eq!(n(&net["replica"]["judged_invalid"]), 0, "node {i}: {net}");
        assert_eq!(n(&s["certified"]), n(&s["blocks"]), "node {i}: every final block certified");
    }
    assert!(n(&network(&summaries[3])["replica"]["caught_up"]) > 0, "{}", network(&summaries[3]));
    // Each validator forwarded its clients' transactions and heard some of
    // the others' (node 3's summary covers its second run only; what a
    // node forwarded before its links were up, it proposed itself).
    for (i, s) in summaries.iter().enumerate().take(3) {
        let r = &network(s)["replica"];
        assert!(n(&r["forwarded_sent"]) >= 5, "node {i}: {r}");
        assert!(n(&r["forwarded_received"]) > 0, "node {i}: {r}");
        assert_eq!(
            n(&r["forwarded_received"]),
            n(&r["forwarded_admitted"])
                + n(&r["forwarded_known"])
                + n(&r["forwarded_refused"])
                + n(&r["forwarded_bad_signature"])
                + n(&r["forwarded_blocked"]),
            "node {i}: {r}"
        );
        assert_eq!(n(&r["forwarded_bad_signature"]), 0, "node {i}: {r}");
    }
    let low = summaries.iter().map(|s| n(&s["height"])).min().unwrap();
    assert!(low >= reached);
    same_blocks(&d, &[0, 1, 2, 3], low);
    let _ = std::fs::remove_dir_all(&d);
}

/// An election over processes: account 0 stakes and votes for validator
/// 3's owner; at the first epoch boundary (height 20) the three seats go
/// to validator 3 and the two genesis validators whose owner keys sort
/// first (the others' scores tie: equal bonds, work under the cap's
/// first step). Every node reports those seats, and with the fourth
/// validator stopped the three seats go on finalizing (three of three).
#[test]
fn an_election_over_stakes_and_votes_seats_the_expected_validators() {
    let _one = serial();
    let d = tmpdir("election");
    let ports = free_ports(VALIDATORS);
    let g = genesis_with(&d, &ports, Some(json!({"seats": 3, "epoch": 20})));
    let mut nodes: Vec<Option<Node>> = (0..VALIDATORS).map(|i| Some(start_validator(&d, i, &g))).collect();
    let addr0 = nodes[0].as_ref().unwrap().addr();
    let owner = |i: usize| pk(&account(100 + i as u32));
    let mut cfg = ClientConfig::new(addr0, pk(&SigningKey::from(seed(0))), 1);
    cfg.hellos = 10;
    let mut c = Connection::connect(&cfg, account(0)).unwrap();
    let me = pk(&account(0));
    let stake = c.submit(&TxFields { kind: Kind::Stake, to: me, nonce: 1, amount: 50_000, fee: 1, memo: &[] }).unwrap();
    let vote = c.submit(&TxFields { kind: Kind::Vote, to: owner(3), nonce: 2, amount: 0, fee: 1, memo: &[] }).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let voted_at =
        [stake, vote].iter().map(|id| c.wait_receipt(id, until).unwrap().expect("no RECEIPT")).max().unwrap();
    assert!(voted_at < 20, "the vote became final at {voted_at}, after the boundary");

    let mut others: Vec<usize> = (0..3).collect();
    others.sort_by_key(|i| owner(*i));
    let (out, expected) = (others[2], [3, others[0], others[1]]);
    let key = |i: usize| hex::encode(pk(&SigningKey::from(seed(i))));
    let until = Instant::now() + Duration::from_secs(60);
    while n(&query_dir(&d.join("data0"), &["status"])["height"]) < 25 {
        assert!(Instant::now() < until, "height 25 not reached");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The validator without a seat stops; the three seats go on.
    let s_out = nodes[out].take().unwrap().stop();
    let seat = expected[1];
    let heights = transfers(nodes[seat].as_ref().unwrap().addr(), seat, 1, 1, 3);
    assert!(*heights.iter().min().unwrap() > n(&s_out["height"]), "{heights:?} vs {}", s_out["height"]);

    let mut summaries: Vec<(usize, Value)> =
        nodes.into_iter().enumerate().filter_map(|(i, n)| n.map(|n| (i, n.stop()))).collect();
    summaries.push((out, s_out));
    for (i, s) in &summaries {
        let net = network(s);
        assert_eq!(net["halted"], Value::Null, "node {i}");
        let seats: Vec<String> = expected.iter().map(|v| key(*v)).collect();
        assert_eq!(net["seats"], json!(seats), "node {i}: {net}");
        assert_eq!(n(&net["replica"]["seat_changes"]), 1, "node {i}: {net}");
        assert_eq!(n(&net["replica"]["judged_invalid"]), 0, "node {i}: {net}");
    }
    same_blocks(&d, &[0, 1, 2, 3], n(&summaries.last().unwrap().1["height"]));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_validator_further_behind_than_peers_keep_in_memory_catches_up_from_their_block_logs() {
    let _one = serial();
    let d = tmpdir("far-behind");
    let ports = free_ports(VALIDATORS);
    let g = genesis(&d, &ports);
    // Short intervals: the heights the peers keep in memory
    // (`RECENT_DECIDED`, 256) pass in seconds.
    const EVERY_MS: u64 = 10;
    let mut nodes: Vec<Option<Node>> =
        (0..VALIDATORS).map(|i| Some(start_validator_every(&d, i, &g, EVERY_MS))).collect();
    let height_of = |i: usize| n(&query_dir(&d.join(format!("data{i}")), &["status"])["height"]);
    let wait_for = |i: usize, h: u64, secs: u64| {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = height_of(i);
            if got >= h {
                return got;
            }
            assert!(Instant::now() < until, "node {i} at {got}, not {h} within {secs} s");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for(3, 5, 30);
    let s3 = nodes[3].take().unwrap().stop();
    let stopped_at = n(&s3["height"]);
    // The three go on past what they keep in memory.
    let went = Instant::now();
    let ahead = wait_for(0, stopped_at + 256 + 64, 120);
    eprintln!("three validators went from {stopped_at} to {ahead} in {:?}", went.elapsed());

    let back = start_validator_every(&d, 3, &g, EVERY_MS);
    let started = Instant::now();
    wait_for(3, ahead, 60);
    let took = started.elapsed();
    nodes[3] = Some(back);

    let summaries: Vec<Value> = nodes.into_iter().map(|n| n.unwrap().stop()).collect();
    for (i, s) in summaries.iter().enumerate() {
        let net = network(s);
        assert_eq!(net["halted"], Value::Null, "node {i}: {net}");
        assert_eq!(n(&s["certified"]), n(&s["blocks"]), "node {i}: every final block certified");
        assert!(n(&s["storage"]["certificates"]) >= n(&s["blocks"]), "node {i}: {}", s["storage"]);
    }
    // The blocks behind the peers' memory came from their logs.
    let from_log: u64 = summaries[..3].iter().map(|s| n(&network(s)["replica"]["served_from_log"])).sum();
    let read: u64 = summaries[..3].iter().map(|s| n(&network(s)["log_reads"]["read"])).sum();
    assert!(from_log > 0 && read >= from_log, "served from log {from_log}, read {read}");
    let r3 = &network(&summaries[3])["replica"];
    assert!(n(&r3["caught_up"]) > ahead - stopped_at - 10, "{r3}");
    assert_eq!(n(&r3["bad_decided"]), 0, "{r3}");
    assert!(n(&r3["catch_ups"]) >= 1, "{r3}");
    let ms = n(&r3["last_catch_up_ms"]);
    assert!(ms > 0 && ms <= took.as_millis() as u64 + 1_000, "catch-up {ms} ms, the test saw {took:?}");
    eprintln!("{} heights caught up in {ms} ms ({} served from the peers' logs)", ahead - stopped_at, from_log);
    eprintln!("node 0: {}", network(&summaries[0])["replica"]);
    // The same blocks where node 3 was stopped, behind the peers' memory,
    // and at the end.
    let low = summaries.iter().map(|s| n(&s["height"])).min().unwrap();
    for h in [stopped_at, stopped_at + 1, stopped_at + 100, ahead, low] {
        let hashes: Vec<Value> = (0..VALIDATORS)
            .map(|i| query_dir(&d.join(format!("data{i}")), &["block", &h.to_string()])["hash"].clone())
            .collect();
        assert!(hashes[0].is_string() && hashes.windows(2).all(|w| w[0] == w[1]), "block {h}: {hashes:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Validator `i` built to double-sign, in this process: the node's own
/// parts (a chain, its replica, the validator links on `ports[i]`) driven
/// by a loop that sends, after each of its votes for a block, a second
/// vote of the same kind and round for another block, signed with its
/// node key. Runs until `stop`; the conflicting votes it sent.
fn double_signer(g: &Path, ports: &[u16], i: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    use control::bft::codec::{signing_bytes, SignedPart};
    use control::bft::link::{LinkConfig, Links};
    use control::bft::{BlockId, Message, NilOrVal, Sig, ValidatorSet};
    use control::chain::{Chain, ChainConfig};
    use control::replica::ReplicaConfig;

    let genesis = control::genesis::Genesis::load(g).unwrap();
    let dir = g.with_file_name(format!("double-signer{i}"));
    let peers = (0..ports.len())
        .filter(|j| *j != i)
        .map(|j| (pk(&SigningKey::from(seed(j))), format!("127.0.0.1:{}", ports[j]).parse().unwrap()))
        .collect();
    let listen = format!("127.0.0.1:{}", ports[i]).parse().unwrap();
    std::thread::spawn(move || {
        let now = dataplane::client::unix_ms;
        let mut chain = Chain::new(&genesis, ChainConfig::default());
        let set = ValidatorSet::from_genesis(genesis.validators()).unwrap();
        let mut cfg = ReplicaConfig::new(genesis.hash(), genesis.network_id(), seed(i), set);
        cfg.dir = Some(dir);
        cfg.block.interval_ms = 100;
        chain.join_network(cfg, now()).unwrap();
        let links =
            Links::start(LinkConfig { key_seed: seed(i), network_id: genesis.network_id(), listen, peers }).unwrap();
        let sk = SigningKey::from(seed(i));
        let (mut conflicting, mut connected) = (0u64, 0usize);
        while !stop.load(Ordering::Relaxed) {
            while let Some((from, bytes)) = links.try_recv() {
                chain.receive(from, &bytes, now());
            }
            chain.durable(u64::MAX, now());
            chain.poll(now());
            if links.connected().len() > connected {
                chain.peer_connected(now());
            }
            connected = links.connected().len();
            for (to, bytes) in chain.take_outgoing() {
                if let Ok(Message::Vote(v, _)) = Message::decode(&bytes) {
                    if let NilOrVal::Val(id) = v.value {
                        let mut other = v.clone();
                        let mut forged = id.0;
                        forged[0] ^= 0xff;
                        other.value = NilOrVal::Val(BlockId(forged));
                        let sig = Sig(sk.sign(&signing_bytes(&genesis.hash(), SignedPart::Vote(&other))).into());
                        let m = Arc::new(Message::Vote(other, sig).encode());
                        match to {
                            Some(p) => links.send(&p, m),
                            None => links.broadcast(m),
                        }
                        conflicting += 1;
                    }
                }
                match to {
                    Some(p) => links.send(&p, bytes),
                    None => links.broadcast(bytes),
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        conflicting
    })
}

#[test]
fn a_double_signing_validator_is_slashed_and_loses_its_seat_at_the_next_epoch() {
    let _one = serial();
    let d = tmpdir("double-signer");
    let ports = free_ports(VALIDATORS);
    const EPOCH: u64 = 30;
    let g = genesis_with(&d, &ports, Some(json!({"seats": 4, "epoch": EPOCH})));
    let bad = hex::encode(pk(&SigningKey::from(seed(3))));
    let mut nodes: Vec<Node> = (0..3).map(|i| start_validator(&d, i, &g)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let signer = double_signer(&g, &ports, 3, stop.clone());
    // Past the boundary after the slashing, and on with three seats.
    let until = Instant::now() + Duration::from_secs(90);
    let mut h = 0;
    while h < 2 * EPOCH + 10 {
        assert!(Instant::now() < until, "height {h}, not {} within 90 s", 2 * EPOCH + 10);
        std::thread::sleep(Duration::from_millis(200));
        h = (0..3).map(|i| n(&query_dir(&d.join(format!("data{i}")), &["status"])["height"])).min().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let conflicting = signer.join().unwrap();
    assert!(conflicting > 0);

    let summaries: Vec<Value> = nodes.drain(..).map(|n| n.stop()).collect();
    for (i, s) in summaries.iter().enumerate() {
        let net = network(s);
        let r = &net["replica"];
        assert_eq!(net["halted"], Value::Null, "node {i}: {net}");
        assert_eq!(n(&net["slashed"]), 1000, "node {i}: the double signer's bond: {net}");
        let seats = net["seats"].as_array().unwrap();
        assert_eq!(seats.len(), 3, "node {i}: {net}");
        assert!(!seats.contains(&json!(bad)), "node {i}: {net}");
        assert!(n(&r["evidence_found"]) >= 1, "node {i}: {r}");
        assert_eq!(n(&r["evidence_final"]), 1, "node {i}: one block carried the evidence: {r}");
        assert!(n(&r["seat_changes"]) >= 1, "node {i}: {r}");
        assert_eq!(n(&r["judged_invalid"]), 0, "node {i}: {r}");
    }
    eprintln!("{conflicting} conflicting votes sent; slashed and unseated by height {h}");
    same_blocks(&d, &[0, 1, 2], summaries.iter().map(|s| n(&s["height"])).min().unwrap());
    let _ = std::fs::remove_dir_all(&d);
}

/// `ip ARGS`, its error with what it said.
fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if o.status.success() {
        return Ok(());
    }
    Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr)))
}

/// Four network namespaces, one per validator (address `10.77.0.<i+1>`
/// on its `eth0`), their veth peers in a fifth, the hub, on bridge `br0`;
/// a partition moves some ports to bridge `br1`. Nothing is made outside
/// the namespaces, and all of them go when it drops.
struct Hub {
    hub: String,
    nodes: Vec<String>,
}

impl Hub {
    fn create(n: usize) -> Hub {
        let pid = std::process::id();
        let h =
            Hub { hub: format!("attnet-p{pid}-hub"), nodes: (0..n).map(|i| format!("attnet-p{pid}-n{i}")).collect() };
        let hub = h.hub.as_str();
        for step in [&["netns", "add", hub][..], &["-n", hub, "link", "set", "lo", "up"]] {
            ip(step).unwrap();
        }
        for br in ["br0", "br1"] {
            ip(&["-n", hub, "link", "add", br, "type", "bridge"]).unwrap();
            ip(&["-n", hub, "link", "set", br, "up"]).unwrap();
        }
        for (i, ns) in h.nodes.iter().enumerate() {
            let port = format!("p{i}");
            let addr = format!("10.77.0.{}/24", i + 1);
            let steps: [&[&str]; 7] = [
                &["netns", "add", ns],
                &["-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", hub],
                &["-n", ns, "addr", "add", &addr, "dev", "eth0"],
                &["-n", ns, "link", "set", "eth0", "up"],
                &["-n", ns, "link", "set", "lo", "up"],
                &["-n", hub, "link", "set", &port, "master", "br0"],
                &["-n", hub, "link", "set", &port, "up"],
            ];
            for s in steps {
                ip(s).unwrap();
            }
        }
        h
    }

    fn address(i: usize) -> String {
        format!("10.77.0.{}:7400", i + 1)
    }

    /// Validators `side` on bridge `br1`, the others on `br0` (an empty
    /// side heals).
    fn split(&self, side: &[usize]) {
        for i in 0..self.nodes.len() {
            let br = if side.contains(&i) { "br1" } else { "br0" };
            ip(&["-n", &self.hub, "link", "set", &format!("p{i}"), "master", br]).unwrap();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain([&self.hub]) {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

#[test]
fn a_two_two_partition_stops_finality_without_conflict_and_heals() {
    let _one = serial();
    // Namespaces need root and iproute2, which the test command installs.
    if !std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n")) {
        panic!("this test builds network namespaces: run it as root (the README's test command does)");
    }
    let d = tmpdir("partition");
    let net = Hub::create(VALIDATORS);
    let addrs: Vec<String> = (0..VALIDATORS).map(Hub::address).collect();
    let g = genesis_at(&d, &addrs, None);
    let mut nodes: Vec<Node> = (0..VALIDATORS)
        .map(|i| {
            let mut ns = Command::new("ip");
            ns.args(["netns", "exec", &net.nodes[i], BIN]);
            Node::spawn(&mut validator_command(ns, &d, i, &g, 100))
        })
        .collect();
    let height_of = |i: usize| n(&query_dir(&d.join(format!("data{i}")), &["status"])["height"]);
    let heights = || (0..VALIDATORS).map(height_of).collect::<Vec<u64>>();
    let all_reach = |h: u64, secs: u64| {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = heights();
            if got.iter().all(|x| *x >= h) {
                return got;
            }
            assert!(Instant::now() < until, "heights {got:?}, not all {h} within {secs} s");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    all_reach(5, 30);

    // {0, 1} | {2, 3}: neither side has more than 2/3 of the seats.
    net.split(&[2, 3]);
    // What was in flight when the link went settles first.
    std::thread::sleep(Duration::from_secs(1));
    let split_at = heights();
    std::thread::sleep(Duration::from_secs(3));
    let later = heights();
    assert_eq!(later, split_at, "a block became final on one side of a 2|2 partition");

    // Healed: finality resumes on all four.
    net.split(&[]);
    let top = *split_at.iter().max().unwrap();
    let healed = Instant::now();
    let after = all_reach(top + 3, 60);
    eprintln!("split at {split_at:?}; healed, all past {} within {:?}: {after:?}", top + 2, healed.elapsed());

    let summaries: Vec<Value> = nodes.drain(..).map(|n| n.stop()).collect();
    for (i, s) in summaries.iter().enumerate() {
        let net = network(s);
        assert_eq!(net["halted"], Value::Null, "node {i}: {net}");
        assert_eq!(n(&net["replica"]["judged_invalid"]), 0, "node {i}: {net}");
        assert_eq!(n(&s["certified"]), n(&s["blocks"]), "node {i}: every final block certified");
    }
    // No conflict: every height final on all four is the same block.
    let low = summaries.iter().map(|s| n(&s["height"])).min().unwrap();
    assert!(low >= top + 3);
    same_blocks(&d, &[0, 1, 2, 3], low);
    drop(net);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn with_two_of_four_stopped_finality_stops_without_conflict_and_resumes_when_one_returns() {
    let _one = serial();
    let d = tmpdir("two-down");
    let ports = free_ports(VALIDATORS);
    let g = genesis(&d, &ports);
    let mut nodes: Vec<Option<Node>> = (0..VALIDATORS).map(|i| Some(start_validator(&d, i, &g))).collect();
    let addr0 = nodes[0].as_ref().unwrap().addr();
    assert!(transfers(addr0, 0, 0, 1, 2).iter().all(|h| *h >= 1));
    for i in [2, 3] {
        nodes[i].take().unwrap().stop();
    }
    // Two of four seats are not more than 2/3: nothing becomes final.
    let mut cfg = ClientConfig::new(addr0, pk(&SigningKey::from(seed(0))), 1);
    cfg.hellos = 10;
    let mut c = Connection::connect(&cfg, account(1)).unwrap();
    let id = transfer(&mut c, pk(&account(7)), 1, 10);
    let stalled = c.wait_receipt(&id, Instant::now() + Duration::from_secs(3)).unwrap();
    assert_eq!(stalled, None, "a block became final with two of four validators");
    let h0 = n(&query_dir(&d.join("data0"), &["status"])["height"]);
    let h1 = n(&query_dir(&d.join("data1"), &["status"])["height"]);

    // One returns: three of four, the waiting transaction becomes final.
    nodes[2] = Some(start_validator(&d, 2, &g));
    let h = c.wait_receipt(&id, Instant::now() + Duration::from_secs(30)).unwrap();
    let h = h.expect("no RECEIPT after the third validator returned");
    assert!(h > h0.max(h1), "final at {h}, stalled at {h0}/{h1}");

    let summaries: Vec<(usize, Value)> =
        nodes.into_iter().enumerate().filter_map(|(i, n)| n.map(|n| (i, n.stop()))).collect();
    for (i, s) in &summaries {
        assert_eq!(network(s)["halted"], Value::Null, "node {i}");
    }
    let low = summaries.iter().map(|(_, s)| n(&s["height"])).min().unwrap();
    assert!(low >= h);
    same_blocks(&d, &[0, 1, 2], low);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn attnet_testnet_runs_four_validators_with_load_and_reports_no_conflict() {
    let _one = serial();
    let d = tmpdir("testnet").join("net");
    let o = Command::new(BIN)
        .args(["testnet", "--nodes", "4", "--duration", "7", "--load", "200", "--keep"])
        .arg(&d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s, file);
    assert_eq!(s["conflicts"], 0);
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    // Each node's clients sent it a slice of the accounts (`--clients
    // spread`, the default): forwarding carried them to the proposers.
    assert_eq!(s["clients"], "spread");
    let offered = n(&s["offered_txs"]);
    assert!(offered > 0);
    let mut sum = 0;
    for (i, node) in nodes.iter().enumerate() {
        assert!(n(&node["height"]) > 0, "node {i}: {node}");
        assert_eq!(n(&node["peers"]), 3, "node {i}: {node}");
        assert!(n(&node["offered"]) > 0, "node {i}: {node}");
        assert_eq!(n(&node["receipts"]), n(&node["offered"]), "node {i}: a RECEIPT for each of its clients'");
        assert!(n(&node["replica"]["forwarded_admitted"]) > 0, "node {i}: {node}");
        assert!(node["finality_p99_ms"].as_f64().unwrap() > 0.0, "node {i}: {node}");
        sum += n(&node["offered"]);
    }
    assert_eq!(sum, offered);
    // Every offered transaction is in the final chain, once.
    assert_eq!(n(&s["finalized_txs"]), offered, "{s}");
    // One live line per node per second on stderr.
    assert!(err.lines().filter(|l| l.starts_with("testnet: node3 height")).count() >= 3, "{err}");
    let _ = std::fs::remove_dir_all(d.parent().unwrap());
}
