//! A deterministic simulation of 4-7 validators running the consensus
//! engine over a seeded network: message loss, delay and reordering, a
//! partition, and crashes with restarts that replay the write-ahead log.
//! Virtual time; every run is a function of its seed.
//!
//! Invariants checked on every seed:
//! - agreement: at most one block per height across all nodes;
//! - every finalized block carries a commit certificate signed by more than
//!   2/3 of the seats (checked here with the raw Ed25519 library);
//! - no honest node signs two different votes or proposals for one (height,
//!   round, step), across its crashes and restarts;
//! - liveness: once the faults end, every node reaches the target height.
//!
//! `ATTNET_SIM_SEEDS=N` runs N seeds (default 200); `ATTNET_SIM_SEED=S`
//! runs seed S alone and prints its trace of decisions.

use std::cell::RefCell;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::rc::Rc;

use arc_malachitebft_core_consensus::Input;
use arc_malachitebft_core_types::{LinearTimeouts, NilOrVal, Round, VoteType};
use control::bft::codec::{signing_bytes, SignedPart};
use control::bft::context::Vote;
use control::bft::{Address, BlockId, Config, Ctx, Engine, Height, Message, Output, Sig, Validator, ValidatorSet, Wal};
use sha2::{Digest, Sha256};

/// splitmix64: a small seeded generator, so a seed means the same run on
/// every machine and every version of the rand crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The "disk" of a node's log: survives its crashes.
#[derive(Default)]
struct Disk {
    height: Height,
    entries: Vec<Input<Ctx>>,
    /// Entries made durable by the last sync; a crash loses the rest.
    synced: usize,
}

#[derive(Clone, Default)]
struct MemWal(Rc<RefCell<Disk>>);

impl Wal for MemWal {
    fn append(&mut self, height: Height, entry: &Input<Ctx>) -> std::io::Result<()> {
        let mut d = self.0.borrow_mut();
        if height > d.height {
            d.height = height;
            d.entries.clear();
            d.synced = 0;
        }
        if height == d.height {
            d.entries.push(entry.clone());
        }
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        let mut d = self.0.borrow_mut();
        d.synced = d.entries.len();
        Ok(())
    }
}

#[derive(Clone)]
struct Final {
    round: Round,
    value: BlockId,
    signatures: Vec<(Address, Sig)>,
    body: Vec<u8>,
}

struct Node {
    key: [u8; 32],
    engine: Option<Engine<MemWal>>,
    wal: MemWal,
    /// Finalized blocks, durable (index h-1 is height h).
    chain: Vec<Final>,
    /// Block bodies this node built or judged, by hash (durable: a node
    /// persists a block before it proposes it or reports a verdict on it).
    bodies: HashMap<BlockId, Vec<u8>>,
    /// Proposals to make when the block interval allows: (due, height, round).
    pending: Vec<(u64, Height, Round)>,
    last_final_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Byzantine {
    /// Proposes blocks that fail validation.
    InvalidBlocks,
    /// Signs a second, conflicting vote for every vote and sends both.
    DoubleSigns,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    at: u64,
    seq: u64,
    to: usize,
    from: usize,
    bytes: Vec<u8>,
}

const CHAIN: [u8; 32] = [0xa7; 32];
const BLOCK_INTERVAL_MS: u64 = 50;

struct Sim {
    rng: Rng,
    nodes: Vec<Node>,
    set: ValidatorSet,
    queue: BinaryHeap<std::cmp::Reverse<Event>>,
    seq: u64,
    now: u64,
    loss: u64,
    max_delay: u64,
    /// (from, to) in ms and the side of each node while it lasts.
    partition: Option<(u64, u64, Vec<bool>)>,
    /// Every signed vote or proposal seen leaving a node: (signer, height,
    /// round, step) → what it signed.
    signed: BTreeMap<(Address, u64, i64, u8), NilOrVal<BlockId>>,
    violations: Vec<String>,
    /// A Byzantine node and how it misbehaves.
    byzantine: Option<(usize, Byzantine)>,
    /// Equivocators named in the decisions of honest nodes.
    reported: std::collections::BTreeSet<Address>,
    trace: bool,
    trace_height: u64,
}

fn timeouts() -> LinearTimeouts {
    use std::time::Duration;
    LinearTimeouts {
        propose: Duration::from_millis(300),
        propose_delta: Duration::from_millis(100),
        prevote: Duration::from_millis(100),
        prevote_delta: Duration::from_millis(50),
        precommit: Duration::from_millis(100),
        precommit_delta: Duration::from_millis(50),
        rebroadcast: Duration::from_millis(400),
        max_timeout: Duration::from_secs(5),
    }
}

fn block_body(height: Height, round: Round, proposer: usize, salt: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(29);
    b.extend_from_slice(&height.0.to_le_bytes());
    b.extend_from_slice(&round.as_u32().unwrap_or(u32::MAX).to_le_bytes());
    b.push(proposer as u8);
    b.extend_from_slice(&salt.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b
}

fn address_of(key: &[u8; 32]) -> Address {
    Address(ed25519_zebra::VerificationKey::from(&ed25519_zebra::SigningKey::from(*key)).into())
}

fn block_id(body: &[u8]) -> BlockId {
    BlockId(Sha256::digest(body).into())
}

/// A block is valid for `height` when it is well formed and names it.
fn block_valid(height: Height, body: &[u8]) -> bool {
    body.len() == 29 && body.get(..8) == Some(&height.0.to_le_bytes()[..])
}

impl Sim {
    fn new(seed: u64, n: usize) -> Sim {
        let mut rng = Rng(seed);
        let keys: Vec<[u8; 32]> = (0..n)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&seed.to_le_bytes());
                k[8] = i as u8;
                k
            })
            .collect();
        let set = ValidatorSet::new(keys.iter().map(|k| Validator::seat(address_of(k).0)).collect()).unwrap();
        let nodes = keys
            .iter()
            .map(|k| Node {
                key: *k,
                engine: None,
                wal: MemWal::default(),
                chain: Vec::new(),
                bodies: HashMap::new(),
                pending: Vec::new(),
                last_final_ms: 0,
            })
            .collect();
        let loss = [0, 5, 10, 20][rng.below(4) as usize];
        let max_delay = [5, 30, 80][rng.below(3) as usize];
        Sim {
            rng,
            nodes,
            set,
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0,
            loss,
            max_delay,
            partition: None,
            signed: BTreeMap::new(),
            violations: Vec::new(),
            byzantine: None,
            reported: Default::default(),
            trace: false,
            trace_height: std::env::var("ATTNET_SIM_TRACE_HEIGHT").ok().and_then(|s| s.parse().ok()).unwrap_or(0),
        }
    }

    fn config(&self, i: usize) -> Config {
        Config { chain: CHAIN, key: self.nodes[i].key, validators: self.set.clone(), timeouts: timeouts() }
    }

    fn boot(&mut self, i: usize) {
        let mut e = Engine::new(self.config(i), self.nodes[i].wal.clone());
        let height = Height(self.nodes[i].chain.len() as u64 + 1);
        let entries = {
            let d = self.nodes[i].wal.0.borrow();
            if d.height == height {
                d.entries.clone()
            } else {
                Vec::new()
            }
        };
        if entries.is_empty() {
            e.start_height(height, self.now);
        } else {
            e.recover(height, &entries, self.now);
        }
        self.nodes[i].engine = Some(e);
        self.nodes[i].pending.clear();
        self.pump(i);
    }

    fn crash(&mut self, i: usize) {
        // Bodies stay: a node persists a block before it reports a verdict
        // on it (the log's verdicts refer to it) or proposes it.
        let node = &mut self.nodes[i];
        node.engine = None;
        node.pending.clear();
        // What was appended but not synced is lost.
        let mut d = node.wal.0.borrow_mut();
        let synced = d.synced;
        d.entries.truncate(synced);
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            Some((from, to, side)) if self.now >= *from && self.now < *to => side[a] == side[b],
            _ => true,
        }
    }

    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        if !self.linked(from, to) || self.rng.chance(self.loss) {
            return;
        }
        let at = self.now + 1 + self.rng.below(self.max_delay);
        self.seq += 1;
        self.queue.push(std::cmp::Reverse(Event { at, seq: self.seq, to, from, bytes }));
    }

    fn broadcast(&mut self, from: usize, m: &Message) {
        if self.byzantine == Some((from, Byzantine::DoubleSigns)) {
            if let Message::Vote(v, _) = m {
                let value = match v.value {
                    NilOrVal::Nil => NilOrVal::Val(BlockId([0xee; 32])),
                    NilOrVal::Val(_) => NilOrVal::Nil,
                };
                let other = Vote { value, ..v.clone() };
                let key = ed25519_zebra::SigningKey::from(self.nodes[from].key);
                let sig = Sig(key.sign(&signing_bytes(&CHAIN, SignedPart::Vote(&other))).into());
                self.send_all(from, &Message::Vote(other, sig));
            }
        } else {
            self.record(from, m);
        }
        self.send_all(from, m);
    }

    fn send_all(&mut self, from: usize, m: &Message) {
        let bytes = m.encode();
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, bytes.clone());
            }
        }
    }

    /// Remembers what an honest node signed; two different things for one
    /// (height, round, step) is an equivocation.
    fn record(&mut self, from: usize, m: &Message) {
        let (key, value) = match m {
            Message::Vote(v, _) => {
                let step = match v.kind {
                    VoteType::Prevote => 1,
                    VoteType::Precommit => 2,
                };
                ((v.voter, v.height.0, v.round.as_i64(), step), v.value)
            }
            Message::Proposal(p, _) => ((p.proposer, p.height.0, p.round.as_i64(), 0), NilOrVal::Val(p.value)),
            _ => return,
        };
        if self.trace && key.1 == self.trace_height && key.2 < 6 {
            eprintln!("{:>6} ms node {from} signs h{} r{} step{} {:?}", self.now, key.1, key.2, key.3, value);
        }
        if let Some(prev) = self.signed.insert(key, value) {
            if prev != value {
                self.violations.push(format!("node {from} signed {prev:?} and {value:?} at {key:?}"));
            }
        }
    }

    /// Handles the outputs of node `i`'s engine until there are none.
    fn pump(&mut self, i: usize) {
        loop {
            let Some(e) = self.nodes[i].engine.as_mut() else { return };
            let outs = e.drain();
            if outs.is_empty() {
                return;
            }
            for o in outs {
                self.output(i, o);
            }
        }
    }

    fn output(&mut self, i: usize, o: Output) {
        match o {
            Output::Broadcast(m) => self.broadcast(i, &m),
            Output::GetValue { height, round } => {
                let due = self.now.max(self.nodes[i].last_final_ms + BLOCK_INTERVAL_MS);
                self.nodes[i].pending.push((due, height, round));
            }
            Output::Restream { height, value, .. } => {
                if let Some(body) = self.nodes[i].bodies.get(&value).cloned() {
                    self.broadcast(i, &Message::Block { height, body });
                }
            }
            Output::Decided { height, round, value, signatures, equivocators, evidence } => {
                if self.byzantine.is_none_or(|b| b.0 != i) {
                    // Every name comes with a pair of messages that proves
                    // it (what a block carries to slash the signer).
                    let proven: Vec<Address> = evidence
                        .iter()
                        .filter_map(|(a, b)| control::bft::equivocation(&CHAIN, a, b))
                        .map(|x| x.0)
                        .collect();
                    if let Some(who) = equivocators.iter().find(|w| !proven.contains(w)) {
                        self.violations.push(format!("node {i} named {who:?} without a pair that proves it"));
                    }
                    self.reported.extend(proven);
                }
                let Some(body) = self.nodes[i].bodies.get(&value).cloned() else {
                    self.violations.push(format!("node {i} decided {value} at {height} without its block"));
                    return;
                };
                self.finalize(i, height, Final { round, value, signatures, body });
            }
        }
    }

    fn finalize(&mut self, i: usize, height: Height, f: Final) {
        if self.trace {
            eprintln!("{:>6} ms node {i} final {height} round {} {}", self.now, f.round, f.value);
        }
        let node = &mut self.nodes[i];
        if height.0 != node.chain.len() as u64 + 1 {
            self.violations.push(format!("node {i} finalized {height} at chain length {}", node.chain.len()));
            return;
        }
        node.chain.push(f);
        node.last_final_ms = self.now;
        node.bodies.retain(|_, b| b.get(..8).is_some_and(|h| u64::from_le_bytes(h.try_into().unwrap()) > height.0));
        node.pending.clear();
        if let Some(e) = node.engine.as_mut() {
            e.start_height(Height(height.0 + 1), self.now);
        }
    }

    fn deliver(&mut self, ev: Event) {
        let i = ev.to;
        if self.nodes[i].engine.is_none() {
            return;
        }
        let msg = match Message::decode(&ev.bytes) {
            Ok(m) => m,
            Err(e) => {
                self.violations.push(format!("undecodable message {e:?}"));
                return;
            }
        };
        let now = self.now;
        match msg {
            Message::Block { height, body } => {
                let id = block_id(&body);
                let valid = block_valid(height, &body);
                let node = &mut self.nodes[i];
                node.bodies.insert(id, body);
                node.engine.as_mut().unwrap().block_judged(height, id, valid, now);
            }
            Message::Status { height } => {
                // The sender needs block `height`: answer it if final here.
                if let Some(f) = self.nodes[i].chain.get(height.0 as usize - 1).cloned() {
                    let m = Message::Decided { height, round: f.round, body: f.body, signatures: f.signatures };
                    self.send(i, ev.from, m.encode());
                }
            }
            Message::Decided { height, round, body, signatures } => {
                let e = self.nodes[i].engine.as_ref().unwrap();
                let value = block_id(&body);
                if height == e.height()
                    && block_valid(height, &body)
                    && e.verify_commit(height, round, value, &signatures)
                {
                    self.nodes[i].bodies.insert(value, body.clone());
                    self.finalize(i, height, Final { round, value, signatures, body });
                }
            }
            m => self.nodes[i].engine.as_mut().unwrap().receive(m, now),
        }
        self.pump(i);
    }

    fn status_round(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].engine.is_some() {
                let h = Height(self.nodes[i].chain.len() as u64 + 1);
                self.broadcast(i, &Message::Status { height: h });
            }
        }
    }

    fn propose_due(&mut self) -> bool {
        for i in 0..self.nodes.len() {
            let Some(pos) = self.nodes[i].pending.iter().position(|p| p.0 <= self.now) else { continue };
            let (_, height, round) = self.nodes[i].pending.swap_remove(pos);
            let salt = self.rng.next();
            let mut body = block_body(height, round, i, salt);
            if self.byzantine == Some((i, Byzantine::InvalidBlocks)) {
                body[0] ^= 0x80; // names another height
            }
            let id = block_id(&body);
            self.nodes[i].bodies.insert(id, body.clone());
            self.broadcast(i, &Message::Block { height, body });
            let now = self.now;
            if let Some(e) = self.nodes[i].engine.as_mut() {
                e.propose(height, round, id, now);
            }
            self.pump(i);
            return true;
        }
        false
    }

    fn next_time(&self, next_status: u64) -> u64 {
        let mut t = next_status;
        if let Some(std::cmp::Reverse(e)) = self.queue.peek() {
            t = t.min(e.at);
        }
        for n in &self.nodes {
            if let Some(e) = &n.engine {
                if let Some(d) = e.next_deadline() {
                    t = t.min(d);
                }
            }
            for p in &n.pending {
                t = t.min(p.0);
            }
        }
        t.max(self.now)
    }

    fn check_certificates(&mut self) {
        for (i, n) in self.nodes.iter().enumerate() {
            for (h, f) in n.chain.iter().enumerate() {
                let height = Height(h as u64 + 1);
                let mut seats = std::collections::BTreeSet::new();
                for (a, s) in &f.signatures {
                    let vote = Vote {
                        kind: VoteType::Precommit,
                        height,
                        round: f.round,
                        value: NilOrVal::Val(f.value),
                        voter: *a,
                    };
                    let ok = self.set.get(a).is_some()
                        && ed25519_zebra::VerificationKey::try_from(a.0).is_ok_and(|vk| {
                            vk.verify(
                                &ed25519_zebra::Signature::from(s.0),
                                &signing_bytes(&CHAIN, SignedPart::Vote(&vote)),
                            )
                            .is_ok()
                        });
                    if ok {
                        seats.insert(*a);
                    }
                }
                if 3 * seats.len() <= 2 * self.set.seats().len() {
                    self.violations.push(format!(
                        "node {i} height {height}: certificate with {} valid seats of {}",
                        seats.len(),
                        self.set.seats().len()
                    ));
                }
                if !block_valid(height, &f.body) {
                    self.violations.push(format!("node {i} height {height}: an invalid block was finalized"));
                }
                if block_id(&f.body) != f.value {
                    self.violations.push(format!("node {i} height {height}: body does not match"));
                }
            }
        }
    }

    fn check_agreement(&mut self) {
        let longest = self.nodes.iter().map(|n| n.chain.len()).max().unwrap_or(0);
        for h in 0..longest {
            let mut values = std::collections::BTreeSet::new();
            for n in &self.nodes {
                if let Some(f) = n.chain.get(h) {
                    values.insert(f.value);
                }
            }
            if values.len() > 1 {
                self.violations.push(format!("height {}: {} different blocks", h + 1, values.len()));
            }
        }
    }
}

struct Outcome {
    heights: Vec<usize>,
    violations: Vec<String>,
    replays: u64,
}

/// One seeded run: faults (loss up to 20 %, a partition, crashes) in the
/// first 3 s, then the network heals (2 % loss stays) and every node must
/// reach `target` blocks past the longest chain at healing.
fn run(seed: u64, trace: bool) -> Outcome {
    let n = 4 + (seed % 4) as usize;
    let mut sim = Sim::new(seed, n);
    sim.trace = trace;
    let f = (n - 1) / 3;
    // The last node is Byzantine on a third of the seeds each way.
    sim.byzantine = match seed % 3 {
        1 => Some((n - 1, Byzantine::InvalidBlocks)),
        2 => Some((n - 1, Byzantine::DoubleSigns)),
        _ => None,
    };
    if sim.rng.chance(50) {
        let side: Vec<bool> = (0..n).map(|_| sim.rng.chance(50)).collect();
        let from = 200 + sim.rng.below(1500);
        sim.partition = Some((from, from + 300 + sim.rng.below(1200), side));
    }
    // Crashes of up to f nodes (one of them possibly twice), restarting
    // from their logs.
    let mut faults: Vec<(u64, usize, bool)> = Vec::new();
    for _ in 0..sim.rng.below(f as u64 + 2) {
        let i = sim.rng.below(f as u64) as usize;
        let down = 100 + sim.rng.below(2500);
        let up = down + 50 + sim.rng.below(600);
        faults.push((down, i, false));
        faults.push((up.min(2990), i, true));
    }
    faults.sort();
    let heal = 3000;
    for i in 0..n {
        sim.boot(i);
    }
    let target = 5;
    let mut next_status = 100;
    let mut goal = None;
    let deadline = heal + 20_000;
    let mut replays = 0;
    while sim.now < deadline {
        let mut t = sim.next_time(next_status);
        if let Some(&(ft, _, _)) = faults.first() {
            t = t.min(ft.max(sim.now));
        }
        if sim.now < heal && t >= heal {
            t = heal;
        }
        sim.now = t;
        if sim.now >= heal && goal.is_none() {
            // Healing: the heavy loss ends; a little stays.
            sim.loss = sim.loss.min(2);
            let longest = sim.nodes.iter().map(|n| n.chain.len()).max().unwrap_or(0);
            goal = Some(longest + target);
        }
        if let Some(g) = goal {
            if sim.nodes.iter().all(|n| n.chain.len() >= g) {
                break;
            }
        }
        if let Some(&(ft, i, up)) = faults.first() {
            if ft <= sim.now {
                faults.remove(0);
                if up {
                    if sim.nodes[i].engine.is_none() {
                        if sim.nodes[i].wal.0.borrow().height.0 == sim.nodes[i].chain.len() as u64 + 1 {
                            replays += 1;
                        }
                        sim.boot(i);
                    }
                } else {
                    sim.crash(i);
                }
                continue;
            }
        }
        if sim.propose_due() {
            continue;
        }
        for i in 0..n {
            let now = sim.now;
            if let Some(e) = sim.nodes[i].engine.as_mut() {
                if e.next_deadline().is_some_and(|d| d <= now) {
                    e.tick(now);
                    sim.pump(i);
                }
            }
        }
        if next_status <= sim.now {
            sim.status_round();
            next_status = sim.now + 100;
        }
        while let Some(std::cmp::Reverse(e)) = sim.queue.peek() {
            if e.at > sim.now {
                break;
            }
            let std::cmp::Reverse(ev) = sim.queue.pop().unwrap();
            sim.deliver(ev);
        }
    }
    if trace {
        for (i, n) in sim.nodes.iter().enumerate() {
            if let Some(e) = &n.engine {
                eprintln!(
                    "node {i}: height {} round {} next timer {:?} pending {:?} {:?}",
                    e.height(),
                    e.round(),
                    e.next_deadline(),
                    n.pending,
                    e.stats()
                );
            }
        }
    }
    sim.check_agreement();
    sim.check_certificates();
    let heights: Vec<usize> = sim.nodes.iter().map(|n| n.chain.len()).collect();
    if let Some(g) = goal {
        if heights.iter().any(|&h| h < g) {
            sim.violations.push(format!("liveness: heights {heights:?} short of {g} 20 s after healing"));
        }
    }
    let byzantine = sim.byzantine.map(|(b, mode)| (address_of(&sim.nodes[b].key), mode));
    if let Some((addr, Byzantine::DoubleSigns)) = byzantine {
        if !sim.reported.contains(&addr) {
            sim.violations.push("the double-signing node was never named as an equivocator".to_string());
        }
    }
    if sim.reported.iter().any(|a| byzantine.is_none_or(|(b, _)| *a != b)) {
        sim.violations.push(format!("an honest node was named as an equivocator: {:?}", sim.reported));
    }
    for (i, node) in sim.nodes.iter().enumerate() {
        if let Some(e) = &node.engine {
            if let Some(why) = e.halted() {
                sim.violations.push(format!("node {i} halted: {why}"));
            }
        }
    }
    Outcome { heights, violations: sim.violations, replays }
}

#[test]
fn validators_agree_under_loss_delay_partition_and_crashes() {
    if let Ok(s) = std::env::var("ATTNET_SIM_SEED") {
        let seed: u64 = s.parse().expect("ATTNET_SIM_SEED is a number");
        let o = run(seed, true);
        assert!(o.violations.is_empty(), "seed {seed}: {:?}", o.violations);
        return;
    }
    let seeds: u64 = std::env::var("ATTNET_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let start = std::time::Instant::now();
    let mut failed = Vec::new();
    let mut blocks = 0;
    let mut replays = 0;
    for seed in 0..seeds {
        let o = run(seed, false);
        blocks += o.heights.iter().min().copied().unwrap_or(0);
        replays += o.replays;
        if !o.violations.is_empty() {
            failed.push((seed, o.violations));
        }
    }
    eprintln!(
        "bft simulation: {seeds} seeds, {blocks} blocks finalized on every node, {replays} restarts replayed a log, {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} of {seeds} seeds failed; first: {:?}",
        failed.len(),
        failed.first().map(|(s, v)| (s, &v[..v.len().min(5)]))
    );
    assert!(replays > 0, "no seed restarted a node from its log: the crash path went untested");
}
