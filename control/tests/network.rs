//! Validators of one network in one process: real chains (ledger, state,
//! engine, mempool, block spool in a temporary directory), messages passed
//! in memory on a virtual clock. Transactions sent to different validators
//! end in the same final blocks on every node; a node cut off catches up
//! from its peers' certificates; a node restarted from its consensus log
//! rejoins.

use std::collections::VecDeque;
use std::sync::Arc;

use arc_malachitebft_core_types::NilOrVal;
use attnet_core::emit::{emit_signed_tx, TxFields};
use attnet_core::wire::tx::Kind;
use control::bft::codec::{signing_bytes, SignedPart};
use control::bft::{BlockId, Message, Sig, Validator, ValidatorSet};
use control::block::Block;
use control::chain::{Chain, ChainConfig};
use control::election::ElectionParams;
use control::genesis::{Genesis, GenesisAccount, GenesisValidator};
use control::replica::Outgoing;
use control::replica::ReplicaConfig;
use ed25519_zebra::{SigningKey, VerificationKey};
use sha2::{Digest, Sha256};

const NET: u32 = 7;

fn public(seed: [u8; 32]) -> [u8; 32] {
    VerificationKey::from(&SigningKey::from(seed)).into()
}

struct Net {
    genesis: Genesis,
    seeds: Vec<[u8; 32]>,
    chains: Vec<Option<Chain>>,
    /// Messages in flight: (from, to, bytes).
    wire: VecDeque<(usize, usize, Arc<Vec<u8>>)>,
    /// Nodes cut off from everyone.
    cut: Vec<bool>,
    /// Node 0's final blocks: (producer, transactions), and the blocks.
    finals: Vec<([u8; 32], usize)>,
    blocks: Vec<Block>,
    /// A node built to double-sign: each vote it sends goes out with a
    /// conflicting one for another block, signed with its key.
    double_signer: Option<usize>,
    now: u64,
    dir: std::path::PathBuf,
}

impl Net {
    fn new(n: usize, accounts: &[[u8; 32]], tag: &str) -> Net {
        Net::with_election(n, accounts, tag, ElectionParams::default())
    }

    fn with_election(n: usize, accounts: &[[u8; 32]], tag: &str, election: ElectionParams) -> Net {
        let seeds: Vec<[u8; 32]> = (0..n).map(|i| [0x40 + i as u8; 32]).collect();
        let validators = seeds
            .iter()
            .enumerate()
            .map(|(i, s)| GenesisValidator {
                node_key: public(*s),
                owner: public([0x60 + i as u8; 32]),
                bond: 1000,
                address: format!("127.0.0.1:{}", 7200 + i).parse().unwrap(),
            })
            .collect();
        let mut accts: Vec<GenesisAccount> =
            accounts.iter().map(|a| GenesisAccount { key: public(*a), balance: 1_000_000 }).collect();
        accts.extend((0..n).map(|i| GenesisAccount { key: public([0x60 + i as u8; 32]), balance: 10_000 }));
        let genesis =
            Genesis::new(NET, accts).unwrap().with_validators(validators).unwrap().with_election(election).unwrap();
        let dir = std::env::temp_dir().join(format!("attnet-net-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut net = Net {
            genesis,
            seeds,
            chains: Vec::new(),
            wire: VecDeque::new(),
            cut: vec![false; n],
            finals: Vec::new(),
            blocks: Vec::new(),
            double_signer: None,
            now: 1,
            dir,
        };
        for i in 0..n {
            let c = net.boot(i);
            net.chains.push(Some(c));
        }
        net
    }

    fn boot(&mut self, i: usize) -> Chain {
        let mut chain = Chain::new(&self.genesis, ChainConfig::default());
        let set = ValidatorSet::from_genesis(self.genesis.validators()).unwrap();
        let mut cfg = ReplicaConfig::new(self.genesis.hash(), NET, self.seeds[i], set);
        cfg.dir = Some(self.dir.join(format!("node{i}")));
        cfg.block.interval_ms = 50;
        chain.join_network(cfg, self.now).unwrap();
        chain
    }

    fn key(&self, i: usize) -> [u8; 32] {
        public(self.seeds[i])
    }

    /// One step of 10 ms: every node polls, its messages go out, every
    /// message in flight is delivered.
    fn step(&mut self) {
        self.now += 10;
        let n = self.chains.len();
        for i in 0..n {
            let now = self.now;
            let Some(c) = self.chains[i].as_mut() else { continue };
            c.durable(u64::MAX, now);
            let finals = c.poll(now);
            if i == 0 {
                self.finals.extend(finals.iter().map(|b| (b.header().producer, b.len())));
                self.blocks.extend(finals);
            }
            let mut out = c.take_outgoing();
            if self.double_signer == Some(i) {
                out = self.equivocate(i, out);
            }
            for (to, bytes) in out {
                for j in 0..n {
                    let target = self.seeds.get(j).map(|s| public(*s));
                    if j != i && (to.is_none() || to == target) {
                        self.wire.push_back((i, j, bytes.clone()));
                    }
                }
            }
        }
        while let Some((from, to, bytes)) = self.wire.pop_front() {
            if self.cut[from] || self.cut[to] {
                continue;
            }
            let key = self.key(from);
            let now = self.now;
            if let Some(c) = self.chains[to].as_mut() {
                c.receive(key, &bytes, now);
                let mut out = c.take_outgoing();
                if self.double_signer == Some(to) {
                    out = self.equivocate(to, out);
                }
                for (t, b) in out {
                    for j in 0..self.seeds.len() {
                        if j != to && (t.is_none() || t == Some(public(self.seeds[j]))) {
                            self.wire.push_back((to, j, b.clone()));
                        }
                    }
                }
            }
        }
    }

    /// Node `i`'s messages with, after each vote for a block, a second
    /// vote of the same kind and round for another block, signed with its
    /// key.
    fn equivocate(&self, i: usize, out: Vec<Outgoing>) -> Vec<Outgoing> {
        let sk = SigningKey::from(self.seeds[i]);
        let mut all = Vec::with_capacity(2 * out.len());
        for (to, bytes) in out {
            if let Ok(Message::Vote(v, _)) = Message::decode(&bytes) {
                if let NilOrVal::Val(id) = v.value {
                    let mut other = v.clone();
                    other.value = NilOrVal::Val(BlockId(Sha256::digest(id.0).into()));
                    let sig = Sig(sk.sign(&signing_bytes(&self.genesis.hash(), SignedPart::Vote(&other))).into());
                    all.push((to, Arc::new(Message::Vote(other, sig).encode())));
                }
            }
            all.push((to, bytes));
        }
        all
    }

    fn heights(&self) -> Vec<u64> {
        self.chains.iter().map(|c| c.as_ref().map_or(0, |c| c.height())).collect()
    }
}

fn transfers(sender: [u8; 32], to: [u8; 32], nonces: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
    let sk = SigningKey::from(sender);
    nonces
        .map(|nonce| {
            let mut out = Vec::new();
            emit_signed_tx(
                &sk,
                NET,
                &TxFields { kind: Kind::Transfer, to, nonce, amount: 3, fee: 1, memo: b"" },
                &mut out,
            );
            out
        })
        .collect()
}

#[test]
fn four_validators_finalize_the_same_blocks_with_transactions_sent_to_each() {
    let senders: Vec<[u8; 32]> = (0..4).map(|i| [0x10 + i as u8; 32]).collect();
    let mut net = Net::new(4, &senders, "same");
    let dest = public([0x99; 32]);
    let per = 50u64;
    let mut sent = 0;
    for (i, s) in senders.iter().enumerate() {
        for tx in transfers(*s, dest, 1..=per) {
            let now = net.now;
            net.chains[i].as_mut().unwrap().submit(&tx, now).unwrap();
            sent += 1;
        }
    }
    let mut steps = 0;
    while net.chains.iter().any(|c| c.as_ref().unwrap().counters().block_txs < sent) {
        net.step();
        steps += 1;
        assert!(steps < 5_000, "not every transaction became final: heights {:?}", net.heights());
    }
    // Every node holds the same chain and the same state.
    let tips: Vec<_> = net
        .chains
        .iter_mut()
        .map(|c| {
            let c = c.as_mut().unwrap();
            (c.height(), c.last_hash(), c.state_root())
        })
        .collect();
    assert!(tips.windows(2).all(|w| w[0] == w[1]), "{tips:?}");
    for c in net.chains.iter().flatten() {
        let k = c.counters();
        assert_eq!(k.block_txs, sent);
        assert_eq!(k.certified, k.blocks, "every final block went through the engine");
        assert_eq!(k.ledger.applied, per, "each node's own transactions are all in final blocks");
        assert_eq!(k.ledger.submitted, k.ledger.applied + k.ledger.queued + k.ledger.dropped());
        let r = c.replica().unwrap().counters();
        assert_eq!(r.judged_invalid, 0);
        // Each node forwarded its own 50 and heard the others' 150 (some
        // after a block already held them).
        assert_eq!(r.forwarded_sent, per, "{r:?}");
        assert_eq!(r.forwarded_received, 3 * per, "{r:?}");
        assert_eq!(r.forwarded_admitted + r.forwarded_known, 3 * per, "{r:?}");
        assert_eq!((r.forwarded_refused, r.forwarded_bad_signature), (0, 0));
        assert_eq!(c.ledger().account(&dest).unwrap().balance, 3 * sent);
    }
    let _ = std::fs::remove_dir_all(&net.dir);
}

#[test]
fn a_node_cut_off_catches_up_from_certificates_and_a_restarted_node_rejoins() {
    let senders: Vec<[u8; 32]> = (0..3).map(|i| [0x20 + i as u8; 32]).collect();
    let mut net = Net::new(4, &senders, "catch");
    let dest = public([0x98; 32]);
    net.cut[3] = true;
    // Sent over time (forwarding would otherwise put them all in one
    // block) until the others are a few heights ahead: three of four seats
    // are more than 2/3, so they go on alone.
    let mut nonce = 0;
    while nonce < 20 || net.chains[0].as_ref().unwrap().height() < 4 {
        nonce += 1;
        assert!(nonce <= 300, "three of four did not finalize: {:?}", net.heights());
        for (i, s) in senders.iter().enumerate() {
            let now = net.now;
            net.chains[i].as_mut().unwrap().submit(&transfers(*s, dest, nonce..=nonce)[0], now).unwrap();
        }
        for _ in 0..5 {
            net.step();
        }
    }
    let sent = 3 * nonce;
    let mut steps = 0;
    while net.chains[..3].iter().any(|c| c.as_ref().unwrap().counters().block_txs < sent) {
        net.step();
        steps += 1;
        assert!(steps < 5_000, "three of four did not finalize: {:?}", net.heights());
    }
    assert_eq!(net.chains[3].as_ref().unwrap().height(), 0);
    let ahead = net.chains[0].as_ref().unwrap().height();
    assert!(ahead >= 3, "{ahead}");
    net.cut[3] = false;
    let mut steps = 0;
    while net.chains[3].as_ref().unwrap().height() < ahead {
        net.step();
        steps += 1;
        assert!(steps < 2_000, "the node did not catch up: {:?}", net.heights());
    }
    let r = net.chains[3].as_ref().unwrap().replica().unwrap().counters();
    assert!(r.caught_up > 0, "{r:?}");
    assert_eq!(r.bad_decided, 0);

    // Node 1 stops; its data directory keeps the consensus log and spool.
    // A fresh chain would have to replay blocks from a store, which this
    // test has not got: the restarted node catches up from genesis instead
    // and then votes again.
    net.chains[1] = None;
    let more = transfers(senders[0], dest, nonce + 1..=nonce + 10);
    for tx in &more {
        let now = net.now;
        net.chains[0].as_mut().unwrap().submit(tx, now).unwrap();
    }
    let mut steps = 0;
    while net.chains[0].as_ref().unwrap().counters().block_txs < sent + 10 {
        net.step();
        steps += 1;
        assert!(steps < 5_000, "three live nodes stalled: {:?}", net.heights());
    }
    let c = net.boot(1);
    net.chains[1] = Some(c);
    let target = net.chains[0].as_ref().unwrap().height();
    let mut steps = 0;
    while net.chains[1].as_ref().unwrap().height() < target {
        net.step();
        steps += 1;
        assert!(steps < 3_000, "the restarted node did not catch up: {:?}", net.heights());
    }
    let tips: Vec<_> = net
        .chains
        .iter_mut()
        .map(|c| {
            let c = c.as_mut().unwrap();
            (c.height() >= target, c.state_root())
        })
        .collect();
    let _ = std::fs::remove_dir_all(&net.dir);
    let h0 = net.chains[0].as_ref().unwrap().height();
    for c in net.chains.iter().flatten() {
        assert!(c.height() >= target);
        if c.height() == h0 {
            assert_eq!(c.last_hash(), net.chains[0].as_ref().unwrap().last_hash());
        }
    }
    assert!(tips.iter().all(|t| t.0), "{tips:?}");
}

/// A client sends to one validator only: forwarding gives its transactions
/// to the others, whose proposals include them; only the receiving node
/// counts them in its ledger counters (its clients' RECEIPTs). A forged
/// copy forwarded by a peer is refused by its signature and nothing else
/// changes.
#[test]
fn transactions_sent_to_one_validator_are_proposed_by_the_others() {
    let sender = [0x31; 32];
    let mut net = Net::new(4, &[sender], "fwd");
    let dest = public([0x97; 32]);
    let txs = transfers(sender, dest, 1..=200);
    // Sent over time, so that every validator has a turn to propose some.
    let mut steps = 0;
    let mut next = 0;
    while net.chains[0].as_ref().unwrap().counters().block_txs < txs.len() as u64 {
        if let Some(tx) = txs.get(next) {
            let now = net.now;
            net.chains[0].as_mut().unwrap().submit(tx, now).unwrap();
            next += 1;
        }
        net.step();
        steps += 1;
        assert!(steps < 5_000, "not final: {:?}", net.heights());
    }
    let me = net.key(0);
    let by_others: usize = net.finals.iter().filter(|(p, _)| *p != me).map(|(_, n)| n).sum();
    assert!(by_others > 0, "no other validator proposed a forwarded transaction: {:?}", net.finals);
    for (i, c) in net.chains.iter().enumerate() {
        let c = c.as_ref().unwrap();
        let (k, r) = (c.counters(), c.replica().unwrap().counters());
        assert_eq!(k.block_txs, 200);
        if i == 0 {
            assert_eq!((k.ledger.submitted, k.ledger.applied, r.forwarded_sent), (200, 200, 200));
        } else {
            assert_eq!((k.ledger.submitted, k.ledger.applied, k.ledger.queued), (0, 0, 0), "node {i}");
            assert_eq!(r.forwarded_received, 200, "node {i}: {r:?}");
            assert_eq!(r.forwarded_admitted + r.forwarded_known, 200, "node {i}: {r:?}");
            assert!(r.forwarded_admitted > 0, "node {i}: {r:?}");
        }
    }
    // Node 1 forwards a forgery of the next transaction to node 2.
    let mut forged = transfers(sender, dest, 201..=201).remove(0);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let msg = control::bft::Message::Txs { txs: vec![forged] }.encode();
    let (now, k1) = (net.now, net.key(1));
    net.chains[2].as_mut().unwrap().receive(k1, &msg, now);
    // Checked with the next batch: within FORWARD_VERIFY_WAIT_MS.
    net.step();
    net.step();
    let r = net.chains[2].as_ref().unwrap().replica().unwrap().counters();
    assert_eq!(r.forwarded_bad_signature, 1, "{r:?}");
    assert_eq!(r.forward_peers_blocked, 0, "one forgery is within the budget: {r:?}");

    // A flood of forgeries from node 1: past FORGED_PER_S in a second its
    // forwards are refused unchecked; node 3's still count.
    let flood: Vec<Vec<u8>> = transfers(sender, dest, 202..=241)
        .into_iter()
        .map(|mut t| {
            let last = t.len() - 1;
            t[last] ^= 1;
            t
        })
        .collect();
    let msg = control::bft::Message::Txs { txs: flood }.encode();
    let now = net.now;
    net.chains[2].as_mut().unwrap().receive(k1, &msg, now);
    net.step();
    net.step();
    let r = net.chains[2].as_ref().unwrap().replica().unwrap().counters();
    assert_eq!((r.forwarded_bad_signature, r.forward_peers_blocked), (41, 1), "{r:?}");
    let genuine = transfers(sender, dest, 201..=201);
    let msg = control::bft::Message::Txs { txs: genuine }.encode();
    let (now, k3) = (net.now, net.key(3));
    let before = r.forwarded_received;
    net.chains[2].as_mut().unwrap().receive(k1, &msg, now);
    net.chains[2].as_mut().unwrap().receive(k3, &msg, now);
    net.step();
    net.step();
    let r = net.chains[2].as_ref().unwrap().replica().unwrap().counters();
    assert_eq!(r.forwarded_received, before + 2);
    assert_eq!(r.forwarded_blocked, 1, "node 1's copy refused unchecked: {r:?}");
    assert_eq!(
        r.forwarded_received,
        r.forwarded_admitted
            + r.forwarded_known
            + r.forwarded_refused
            + r.forwarded_bad_signature
            + r.forwarded_blocked,
        "{r:?}"
    );
    let _ = std::fs::remove_dir_all(&net.dir);
}

/// A signed staking transaction (`Stake` of `amount` to itself, or `Vote`
/// for producer `to`).
fn staking(sender: [u8; 32], kind: Kind, to: [u8; 32], amount: u64, nonce: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let fields = TxFields { kind, to, nonce, amount, fee: 1, memo: b"" };
    emit_signed_tx(&SigningKey::from(sender), NET, &fields, &mut out);
    out
}

fn owner(i: usize) -> [u8; 32] {
    public([0x60 + i as u8; 32])
}

fn set_hash(net: &Net, seats: &[usize]) -> [u8; 32] {
    ValidatorSet::new(seats.iter().map(|i| Validator::seat(net.key(*i))).collect()).unwrap().hash()
}

/// The seats of the engine change at the epoch boundary to the election's:
/// stake voted for validators 2 and 3 gives them the two seats from
/// height 21 on. Headers name the seats that vote on them, commits of the
/// new epoch carry only the new seats' signatures, the nodes without a
/// seat follow, and the two seats alone go on deciding while the others
/// are cut off (the four genesis seats could not: 2 of 4 is no quorum).
#[test]
fn an_election_at_the_epoch_boundary_becomes_the_engine_seats() {
    let (a, b) = ([0x21; 32], [0x22; 32]);
    let p = ElectionParams { seats: 2, epoch: 20, holding_cap: 1_000, ..ElectionParams::default() };
    let mut net = Net::with_election(4, &[a, b], "elect", p);
    let txs = [
        staking(a, Kind::Stake, public(a), 5_000, 1),
        staking(a, Kind::Vote, owner(3), 0, 2),
        staking(b, Kind::Stake, public(b), 3_000, 1),
        staking(b, Kind::Vote, owner(2), 0, 2),
    ];
    for tx in &txs {
        let now = net.now;
        net.chains[0].as_mut().unwrap().submit(tx, now).unwrap();
    }
    let mut steps = 0;
    while net.heights().iter().any(|h| *h < 30) {
        net.step();
        steps += 1;
        if steps == 9_999 {
            for c in net.chains.iter().flatten() {
                eprintln!(
                    "{:?} {:?} {:?}",
                    c.replica().unwrap(),
                    c.replica().unwrap().engine_stats(),
                    c.replica().unwrap().halted()
                );
            }
        }
        assert!(steps < 10_000, "stalled: {:?}", net.heights());
    }
    let (all, two) = (set_hash(&net, &[0, 1, 2, 3]), set_hash(&net, &[2, 3]));
    let new_seats = [net.key(2), net.key(3)];
    for blk in &net.blocks {
        let h = blk.header();
        if h.height <= 20 {
            assert_eq!(h.validator_set_hash, all, "block {} before the boundary", h.height);
        } else {
            assert_eq!(h.validator_set_hash, two, "block {} after the boundary", h.height);
            assert!(new_seats.contains(&h.producer), "block {} proposed by a node without a seat", h.height);
        }
        // Blocks carry the previous block's commit: from block 22 on only
        // the new seats signed.
        if let Some((_, sigs)) = &blk.extension().commit {
            assert!(sigs.len() >= if h.height <= 21 { 3 } else { 2 }, "block {}: {sigs:?}", h.height);
            if h.height >= 22 {
                assert!(sigs.iter().all(|(k, _)| new_seats.contains(k)), "block {}", h.height);
            }
        }
    }
    assert!(net.blocks.iter().filter(|b| b.extension().commit.is_some()).count() >= 25);
    for (i, c) in net.chains.iter().enumerate() {
        let c = c.as_ref().unwrap();
        let seats: Vec<[u8; 32]> = c.ledger().state().seats().iter().map(|s| s.owner).collect();
        assert_eq!(seats, vec![owner(3), owner(2)], "node {i}: the higher score first");
        assert_eq!(c.replica().unwrap().counters().seat_changes, 1, "node {i}");
        // Signing certificates is work the chain proved.
        let work = c.ledger().state().account(&owner(3)).unwrap().certificates_signed;
        assert!(work >= 20, "node {i}: {work}");
    }
    // Every node executed every block to the state root its header names
    // (a block that does not halts the node).
    assert!(net.chains.iter().all(|c| c.as_ref().unwrap().replica().unwrap().halted().is_none()));

    // The two seats decide alone; the followers catch up after.
    let before = net.heights()[2];
    net.cut[0] = true;
    net.cut[1] = true;
    for _ in 0..300 {
        net.step();
    }
    let h = net.heights();
    assert!(h[2] >= before + 5 && h[3] >= before + 5, "the elected seats stalled: {h:?}");
    assert!(h[0] < h[2] && h[1] < h[2], "{h:?}");
    net.cut = vec![false; 4];
    let mut steps = 0;
    while net.heights().iter().min() < net.heights()[2..].iter().max().map(|x| x - 1).as_ref() {
        net.step();
        steps += 1;
        assert!(steps < 5_000, "followers did not catch up: {:?}", net.heights());
    }
    let _ = std::fs::remove_dir_all(&net.dir);
}

/// A validator that signs two votes for every vote it casts is caught by
/// the honest engines; a block carries the evidence, the producer's bond
/// leaves the supply, its record goes, and the next election seats the
/// other three, which then decide without it.
#[test]
fn a_double_signer_is_slashed_and_loses_its_seat_at_the_next_epoch() {
    let p = ElectionParams { epoch: 30, ..ElectionParams::default() };
    let mut net = Net::with_election(4, &[], "slash", p);
    net.double_signer = Some(3);
    let bad = net.key(3);
    let supply_before = net.chains[0].as_ref().unwrap().ledger().state().supply();
    let mut steps = 0;
    while net.heights()[..3].iter().any(|h| *h < 35) {
        net.step();
        steps += 1;
        assert!(steps < 20_000, "stalled: {:?}", net.heights());
    }
    let carried: Vec<u64> =
        net.blocks.iter().filter(|b| !b.extension().evidence.is_empty()).map(|b| b.header().height).collect();
    assert_eq!(carried.len(), 1, "the evidence went into exactly one final block: {carried:?}");
    assert!(carried[0] < 30, "slashed within the epoch: {carried:?}");
    for i in 0..3 {
        let c = net.chains[i].as_ref().unwrap();
        let st = c.ledger().state();
        assert_eq!(st.producer_of(&bad), None, "node {i}: the producer record is gone");
        assert_eq!(st.slashed(), 1000, "node {i}");
        let s = st.supply();
        assert!(s.holds(), "node {i}: {s:?}");
        assert_eq!(s.total + 1000, supply_before.total, "node {i}: the bond left the supply");
        assert_eq!(s.bonds + 1000, supply_before.bonds, "node {i}");
        let seats: Vec<[u8; 32]> = st.seats().iter().map(|s| s.node_key).collect();
        assert_eq!(seats.len(), 3, "node {i}: {seats:?}");
        assert!(!seats.contains(&bad), "node {i}");
        let r = c.replica().unwrap().counters();
        assert!(r.evidence_found >= 1, "node {i}: {r:?}");
        assert_eq!((r.evidence_final, r.seat_changes), (1, 1), "node {i}: {r:?}");
    }
    // After the boundary the three seats decide without the double signer.
    let before = net.heights()[0];
    net.cut[3] = true;
    for _ in 0..300 {
        net.step();
    }
    let h = net.heights();
    assert!(h[..3].iter().all(|x| *x >= before + 5), "{h:?}");
    let _ = std::fs::remove_dir_all(&net.dir);
}
