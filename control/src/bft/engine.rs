//! One validator's consensus: malachite's Tendermint core driven by events
//! (a message in, a block judged, time passing) and answering with
//! [`Output`]s for the host (the control thread, or the simulation).
//!
//! The core is synchronous: each event runs `process!` to completion, and
//! the effects it yields are answered here at once: signing and verifying
//! with the node key, timers on the host's clock (`now_ms` comes with every
//! event; nothing here reads a clock), the write-ahead log, and messages to
//! send, which are queued and handed out only after the event is done, so
//! every log entry an event wrote is durable before anything it implies
//! leaves the node. A log append that fails halts the engine: it never
//! sends a message its log does not hold.
//!
//! Blocks travel beside the proposal: the host sends a proposed block's
//! bytes as [`Message::Block`], judges the blocks it receives (executing
//! them on a throw-away copy of its state) and reports the verdict with
//! [`Engine::block_judged`]; the engine pairs verdicts with signed proposals
//! and feeds them to the core.

use std::collections::{BTreeMap, BTreeSet};

use arc_malachitebft_core_consensus::{self as mc, process, Effect, Input, Params, ProposedValue, Resumable, Resume};
use arc_malachitebft_core_types as mt;
use ed25519_zebra::{SigningKey, VerificationKey};
use mt::{
    CertificateError, CommitCertificate, LinearTimeouts, NilOrVal, Round, SignedMessage, ThresholdParams, Timeout,
    Validity, ValueOrigin, VoteExtensionPolicy, VoteType,
};

use super::codec::{signing_bytes, Message, RoundVote, SignedPart};
use super::context::{Address, BlockId, Ctx, Height, Proposal, Sig, ValidatorSet, Vote};
use crate::merkle::Hash;

/// A write-ahead log of the engine's inputs for the current height.
///
/// Appends may be buffered; [`Wal::sync`] makes everything appended so far
/// durable. The engine syncs once per event, before it hands out any
/// message the event produced (group commit): what this node signed is on
/// disk before it leaves, and an entry lost in a crash was one that nothing
/// had been sent for. An error from either halts the engine.
pub trait Wal {
    /// Appends `entry` for `height`; entries of lower heights may be dropped.
    fn append(&mut self, height: Height, entry: &Input<Ctx>) -> std::io::Result<()>;
    /// Makes every appended entry durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// What the engine asks of its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send to every other validator.
    Broadcast(Message),
    /// This node proposes at (height, round): build a block, send its bytes,
    /// and call [`Engine::propose`] with its hash.
    GetValue { height: Height, round: Round },
    /// Send the bytes of block `value` again (a proposal re-made at `round`).
    Restream { height: Height, round: Round, value: BlockId },
    /// Block `value` is final at `height`: persist it with its certificate,
    /// then call [`Engine::start_height`] for the next height.
    Decided {
        height: Height,
        round: Round,
        value: BlockId,
        signatures: Vec<(Address, Sig)>,
        equivocators: Vec<Address>,
        /// The conflicting pairs behind `equivocators`, each message
        /// encoded as sent ([`Message::encode`]): what a block carries to
        /// slash them ([`equivocation`] checks a pair).
        evidence: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

/// Which seat a pair of signed consensus messages (each as
/// [`Message::encode`] makes it) proves equivocated: two proposals or two
/// votes of the same kind, signer, height and round, for different
/// blocks, both validly signed for network `chain`. `None` otherwise.
/// Whether the signer held a seat is the caller's check.
pub fn equivocation(chain: &Hash, a: &[u8], b: &[u8]) -> Option<(Address, Height)> {
    let (a, b) = (Message::decode(a).ok()?, Message::decode(b).ok()?);
    let signed = |part: SignedPart<'_>, who: &Address, sig: &Sig| -> bool {
        VerificationKey::try_from(who.0)
            .is_ok_and(|vk| vk.verify(&ed25519_zebra::Signature::from(sig.0), &signing_bytes(chain, part)).is_ok())
    };
    match (a, b) {
        (Message::Vote(x, sx), Message::Vote(y, sy))
            if x.voter == y.voter
                && x.kind == y.kind
                && x.height == y.height
                && x.round == y.round
                && x.value != y.value =>
        {
            (signed(SignedPart::Vote(&x), &x.voter, &sx) && signed(SignedPart::Vote(&y), &y.voter, &sy))
                .then_some((x.voter, x.height))
        }
        (Message::Proposal(x, sx), Message::Proposal(y, sy))
            if x.proposer == y.proposer && x.height == y.height && x.round == y.round && x.value != y.value =>
        {
            (signed(SignedPart::Proposal(&x), &x.proposer, &sx) && signed(SignedPart::Proposal(&y), &y.proposer, &sy))
                .then_some((x.proposer, x.height))
        }
        _ => None,
    }
}

/// Counters an operator reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages whose signature failed or whose signer holds no seat.
    pub bad_signatures: u64,
    /// Signed proposals remembered for pairing with blocks.
    pub proposals: u64,
    /// Heights decided.
    pub decided: u64,
    /// Events the core refused with an error (logged; the event is dropped).
    pub core_errors: u64,
    /// Verdicts not kept: a height already held [`PROPOSALS_PER_HEIGHT`]
    /// verdicts and no remembered proposal named the block.
    pub verdicts_dropped: u64,
}

/// How the engine is set up.
#[derive(Clone)]
pub struct Config {
    /// The network: the genesis hash, bound into every signature.
    pub chain: Hash,
    /// The node key's 32-byte seed.
    pub key: [u8; 32],
    /// The seats (the same at every height until elections change them).
    pub validators: ValidatorSet,
    pub timeouts: LinearTimeouts,
}

/// Signed proposals kept per height for pairing with judged blocks, and
/// verdicts kept per height for blocks no remembered proposal names.
pub const PROPOSALS_PER_HEIGHT: usize = 64;
/// How many heights ahead of the current one proposals and verdicts are kept.
const HEIGHTS_AHEAD: u64 = 2;

struct Io<W> {
    chain: Hash,
    key: SigningKey,
    validators: ValidatorSet,
    timeouts: LinearTimeouts,
    now_ms: u64,
    timers: Vec<(Timeout, u64)>,
    out: Vec<Output>,
    wal: W,
    replaying: bool,
    /// Entries appended since the last sync.
    dirty: bool,
    halted: Option<String>,
    stats: Stats,
    /// The last signature checked before the core asked for it again.
    checked: Option<Sig>,
}

/// One validator's consensus engine.
pub struct Engine<W: Wal> {
    state: mc::State<Ctx>,
    io: Io<W>,
    /// Signed proposals by height (verified on arrival), for pairing.
    proposals: BTreeMap<Height, Vec<Proposal>>,
    /// Judged blocks by height: hash → valid.
    verdicts: BTreeMap<Height, BTreeMap<BlockId, bool>>,
    /// (round, block) pairs already fed to the core, per height.
    fed: BTreeMap<Height, BTreeSet<(Round, BlockId)>>,
}

impl<W: Wal> Engine<W> {
    /// An engine for the node `cfg.key`, before any height; call
    /// [`Engine::start_height`] (a fresh node) or [`Engine::recover`] (a
    /// restart) next.
    pub fn new(cfg: Config, wal: W) -> Engine<W> {
        let key = SigningKey::from(cfg.key);
        let me = Address(VerificationKey::from(&key).into());
        let params = Params {
            address: me,
            threshold_params: ThresholdParams::default(),
            value_payload: mt::ValuePayload::ProposalAndParts,
            enabled: true,
        };
        let state = mc::State::new(Ctx, Height(1), cfg.validators.clone(), params, 64, 512);
        Engine {
            state,
            io: Io {
                chain: cfg.chain,
                key,
                validators: cfg.validators,
                timeouts: cfg.timeouts,
                now_ms: 0,
                timers: Vec::new(),
                out: Vec::new(),
                wal,
                replaying: false,
                dirty: false,
                halted: None,
                stats: Stats::default(),
                checked: None,
            },
            proposals: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            fed: BTreeMap::new(),
        }
    }

    /// This node's address (its node key).
    pub fn address(&self) -> Address {
        self.state.params.address
    }

    /// The height being voted on.
    pub fn height(&self) -> Height {
        self.state.height()
    }

    pub fn round(&self) -> Round {
        self.state.round()
    }

    pub fn stats(&self) -> Stats {
        self.io.stats
    }

    /// Why the engine stopped (a log append failed), if it did.
    pub fn halted(&self) -> Option<&str> {
        self.io.halted.as_deref()
    }

    /// The outputs of the events so far, in order.
    pub fn drain(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.io.out)
    }

    /// The earliest timer's deadline (host clock, ms).
    pub fn next_deadline(&self) -> Option<u64> {
        self.io.timers.iter().map(|t| t.1).min()
    }

    /// Starts voting on `height` (the previous height is final and durable).
    pub fn start_height(&mut self, height: Height, now_ms: u64) {
        self.io.now_ms = now_ms;
        self.forget_below(height);
        let input = Input::StartHeight(height, self.io.validators.clone(), false, None, VoteExtensionPolicy::Disabled);
        self.run(input);
        self.feed_matches(height);
    }

    /// Restarts at `height` from the log entries a previous run made
    /// durable for it: the core replays them (re-signing only what it
    /// signed before, so it cannot equivocate) before it takes new input.
    pub fn recover(&mut self, height: Height, entries: &[Input<Ctx>], now_ms: u64) {
        self.io.now_ms = now_ms;
        self.forget_below(height);
        self.state.index_wal_entries(entries.iter());
        self.io.replaying = true;
        let start = Input::StartHeight(height, self.io.validators.clone(), true, None, VoteExtensionPolicy::Disabled);
        self.run(start);
        for e in entries {
            if let Input::Proposal(p) = e {
                self.remember(p.message.clone());
            }
            if let Input::ProposedValue(v, _) = e {
                self.fed.entry(v.height).or_default().insert((v.round, v.value));
                self.verdicts.entry(v.height).or_default().insert(v.value, v.validity.is_valid());
            }
            self.run(e.clone());
        }
        self.state.reset_entries_index();
        self.io.replaying = false;
        self.feed_matches(height);
    }

    /// A consensus message from a peer (already decoded).
    pub fn receive(&mut self, msg: Message, now_ms: u64) {
        self.io.now_ms = now_ms;
        match msg {
            Message::Proposal(p, sig) => {
                if !self.io.check(SignedPart::Proposal(&p), &p.proposer, &sig) {
                    self.io.stats.bad_signatures += 1;
                    return;
                }
                self.io.checked = Some(sig);
                let h = p.height;
                self.remember(p.clone());
                self.run(Input::Proposal(SignedMessage::new(p, sig)));
                self.feed_matches(h);
            }
            Message::Vote(v, sig) => self.run(Input::Vote(SignedMessage::new(v, sig))),
            Message::Polka { height, round, value, signatures } => {
                let polka_signatures = signatures.into_iter().map(|(a, s)| mt::PolkaSignature::new(a, s)).collect();
                self.run(Input::PolkaCertificate(mt::PolkaCertificate {
                    height,
                    round,
                    value_id: value,
                    polka_signatures,
                }));
            }
            Message::RoundCert { height, round, precommit, votes } => {
                let cert_type =
                    if precommit { mt::RoundCertificateType::Precommit } else { mt::RoundCertificateType::Skip };
                let round_signatures =
                    votes.into_iter().map(|v| mt::RoundSignature::new(v.kind, v.value, v.voter, v.sig)).collect();
                self.run(Input::RoundCertificate(mt::RoundCertificate { height, round, cert_type, round_signatures }));
            }
            // Blocks, status and catch-up are the host's.
            Message::Block { .. } | Message::Status { .. } | Message::Decided { .. } | Message::Txs { .. } => {}
        }
    }

    /// The host judged block `value` for `height` (its bytes arrived and were
    /// executed on a copy of the state, or failed to). The bytes must be
    /// durable first: the log records the verdict, and a restarted node may
    /// decide on it.
    pub fn block_judged(&mut self, height: Height, value: BlockId, valid: bool, now_ms: u64) {
        self.io.now_ms = now_ms;
        if height < self.height() || height.0 > self.height().0 + HEIGHTS_AHEAD {
            return;
        }
        // Blocks cost a peer nothing to make: verdicts on blocks that no
        // signed proposal names are bounded per height, and a block that a
        // remembered proposal names is always kept, so a flood of unproposed
        // blocks never crowds out the one being voted on.
        let proposed = self.proposals.get(&height).is_some_and(|ps| ps.iter().any(|p| p.value == value));
        let verdicts = self.verdicts.entry(height).or_default();
        if !proposed && !verdicts.contains_key(&value) && verdicts.len() >= PROPOSALS_PER_HEIGHT {
            self.io.stats.verdicts_dropped += 1;
            return;
        }
        verdicts.insert(value, valid);
        self.feed_matches(height);
    }

    /// Whether a verdict on block `value` at `height` is kept (a host
    /// judges a block once).
    pub fn has_verdict(&self, height: Height, value: BlockId) -> bool {
        self.verdicts.get(&height).is_some_and(|v| v.contains_key(&value))
    }

    /// This node's block for (height, round), asked for by
    /// [`Output::GetValue`]; its bytes go out as [`Message::Block`].
    pub fn propose(&mut self, height: Height, round: Round, value: BlockId, now_ms: u64) {
        self.io.now_ms = now_ms;
        self.verdicts.entry(height).or_default().insert(value, true);
        self.fed.entry(height).or_default().insert((round, value));
        self.run(Input::Propose(mc::LocallyProposedValue::new(height, round, value)));
    }

    /// Fires the timers due at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) {
        self.io.now_ms = now_ms;
        loop {
            let due = self.io.timers.iter().position(|t| t.1 <= now_ms);
            let Some(i) = due else { break };
            let (timeout, _) = self.io.timers.swap_remove(i);
            self.run(Input::TimeoutElapsed(timeout));
        }
    }

    /// Checks a commit certificate (a catch-up block's) against the seats:
    /// distinct seats, valid precommit signatures for (height, round,
    /// value), more than 2/3 of the power.
    pub fn verify_commit(&self, height: Height, round: Round, value: BlockId, signatures: &[(Address, Sig)]) -> bool {
        self.verify_commit_of(&self.io.validators, height, round, value, signatures)
    }

    /// [`verify_commit`](Engine::verify_commit) against seats `set` (those
    /// of an earlier height).
    pub fn verify_commit_of(
        &self,
        set: &ValidatorSet,
        height: Height,
        round: Round,
        value: BlockId,
        signatures: &[(Address, Sig)],
    ) -> bool {
        let cert = CommitCertificate {
            height,
            round,
            value_id: value,
            commit_signatures: signatures.iter().map(|(a, s)| mt::CommitSignature::new(*a, *s)).collect(),
        };
        self.io.verify_certificate(&cert, set, ThresholdParams::default()).is_ok()
    }

    /// The seats for the heights started from now on (an election took
    /// effect); the height being voted on keeps the seats it started with.
    pub fn set_validators(&mut self, set: ValidatorSet) {
        self.io.validators = set;
    }

    /// The seats the next height starts with.
    pub fn validators(&self) -> &ValidatorSet {
        &self.io.validators
    }

    fn forget_below(&mut self, height: Height) {
        self.proposals = self.proposals.split_off(&height);
        self.verdicts = self.verdicts.split_off(&height);
        self.fed = self.fed.split_off(&height);
        self.io.timers.clear();
    }

    fn remember(&mut self, p: Proposal) {
        let cur = self.height();
        if p.height < cur || p.height.0 > cur.0 + HEIGHTS_AHEAD {
            return;
        }
        let list = self.proposals.entry(p.height).or_default();
        if list.len() < PROPOSALS_PER_HEIGHT && !list.contains(&p) {
            list.push(p);
            self.io.stats.proposals += 1;
        }
    }

    /// Feeds the core every (signed proposal, judged block) pair of the
    /// current height not fed yet.
    fn feed_matches(&mut self, height: Height) {
        if height != self.height() {
            return;
        }
        let (Some(props), Some(verdicts)) = (self.proposals.get(&height), self.verdicts.get(&height)) else { return };
        let fed = self.fed.entry(height).or_default();
        let mut todo = Vec::new();
        for p in props {
            if let Some(&valid) = verdicts.get(&p.value) {
                if fed.insert((p.round, p.value)) {
                    todo.push(ProposedValue {
                        height,
                        round: p.round,
                        valid_round: p.pol_round,
                        proposer: p.proposer,
                        value: p.value,
                        validity: Validity::from_bool(valid),
                    });
                }
            }
        }
        for v in todo {
            self.run(Input::ProposedValue(v, ValueOrigin::Consensus));
        }
    }

    fn run(&mut self, input: Input<Ctx>) {
        if self.io.halted.is_some() {
            return;
        }
        let io = &mut self.io;
        let result: Result<(), mc::Error<Ctx>> = process!(
            input: input,
            state: &mut self.state,
            metrics: &(),
            with: effect => io.handle(effect)
        );
        if result.is_err() {
            self.io.stats.core_errors += 1;
        }
        self.io.checked = None;
        if self.io.halted.is_some() {
            self.io.out.clear();
            return;
        }
        if self.io.dirty {
            self.io.dirty = false;
            if let Err(e) = self.io.wal.sync() {
                self.io.halt(format!("consensus log sync failed at height {}: {e}", self.state.height()));
            }
        }
    }
}

/// Effects the core yields; answered at once. The certificate checks
/// return the engine's own error type, which is what the core takes back.
#[allow(clippy::result_large_err)]
impl<W: Wal> Io<W> {
    fn sign(&self, part: SignedPart<'_>) -> Sig {
        Sig(self.key.sign(&signing_bytes(&self.chain, part)).into())
    }

    /// A signature by a seat holder over `part`.
    fn check(&self, part: SignedPart<'_>, signer: &Address, sig: &Sig) -> bool {
        self.validators.get(signer).is_some() && self.signed_by(part, signer, sig)
    }

    /// A signature by `signer` over `part` (whether it holds a seat is the
    /// caller's check).
    fn signed_by(&self, part: SignedPart<'_>, signer: &Address, sig: &Sig) -> bool {
        let Ok(vk) = VerificationKey::try_from(signer.0) else { return false };
        vk.verify(&ed25519_zebra::Signature::from(sig.0), &signing_bytes(&self.chain, part)).is_ok()
    }

    fn verify_certificate(
        &self,
        cert: &CommitCertificate<Ctx>,
        set: &ValidatorSet,
        th: ThresholdParams,
    ) -> Result<(), CertificateError<Ctx>> {
        let mut seen = BTreeSet::new();
        let mut signed = 0u64;
        for cs in &cert.commit_signatures {
            let Some(seat) = set.get(&cs.address) else { return Err(CertificateError::UnknownValidator(cs.address)) };
            if !seen.insert(cs.address) {
                return Err(CertificateError::DuplicateVote(cs.address));
            }
            let vote = Vote {
                kind: VoteType::Precommit,
                height: cert.height,
                round: cert.round,
                value: NilOrVal::Val(cert.value_id),
                voter: cs.address,
            };
            if !self.signed_by(SignedPart::Vote(&vote), &cs.address, &cs.signature) {
                return Err(CertificateError::InvalidCommitSignature(cs.clone()));
            }
            signed = signed.saturating_add(seat.power);
        }
        let total = set.total_power();
        if th.quorum.is_met(signed, total) {
            Ok(())
        } else {
            Err(CertificateError::NotEnoughVotingPower { signed, total, expected: th.quorum.min_expected(total) })
        }
    }

    /// Stops the engine: nothing not yet handed out leaves it (the event
    /// under way ends with its outputs dropped) and every later event is
    /// ignored.
    fn halt(&mut self, why: String) {
        self.halted = Some(why);
        self.out.clear();
    }

    fn send(&mut self, m: Message) {
        if self.halted.is_some() {
            return;
        }
        self.out.push(Output::Broadcast(m));
    }

    fn handle(&mut self, effect: Effect<Ctx>) -> Result<Resume<Ctx>, std::convert::Infallible> {
        Ok(match effect {
            Effect::CancelAllTimeouts(r) => {
                self.timers.clear();
                r.resume_with(())
            }
            Effect::CancelTimeout(t, r) => {
                self.timers.retain(|x| x.0 != t);
                r.resume_with(())
            }
            Effect::ScheduleTimeout(t, r) => {
                let ms = u64::try_from(self.timeouts.duration_for(t).as_millis()).unwrap_or(u64::MAX);
                self.timers.retain(|x| x.0 != t);
                self.timers.push((t, self.now_ms.saturating_add(ms)));
                r.resume_with(())
            }
            Effect::StartRound(_, _, _, _, r) => r.resume_with(()),
            Effect::PublishConsensusMsg(m, r) => {
                match m {
                    mc::SignedConsensusMsg::Vote(v) => self.send(Message::Vote(v.message, v.signature)),
                    mc::SignedConsensusMsg::Proposal(p) => self.send(Message::Proposal(p.message, p.signature)),
                }
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(m, r) => {
                match m {
                    mc::LivenessMsg::Vote(v) => self.send(Message::Vote(v.message, v.signature)),
                    mc::LivenessMsg::PolkaCertificate(c) => self.send(Message::Polka {
                        height: c.height,
                        round: c.round,
                        value: c.value_id,
                        signatures: c.polka_signatures.into_iter().map(|s| (s.address, s.signature)).collect(),
                    }),
                    mc::LivenessMsg::SkipRoundCertificate(c) => self.send(round_cert(c)),
                }
                r.resume_with(())
            }
            Effect::RepublishVote(v, r) => {
                self.send(Message::Vote(v.message, v.signature));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(c, r) => {
                self.send(round_cert(c));
                r.resume_with(())
            }
            Effect::GetValue(height, round, _, r) => {
                self.out.push(Output::GetValue { height, round });
                r.resume_with(())
            }
            Effect::RestreamProposal(height, round, _pol, _addr, value, r) => {
                self.out.push(Output::Restream { height, round, value });
                r.resume_with(())
            }
            Effect::CertVerifiedSyncValue(_, _, r) | Effect::CertRejectedSyncValue(_, _, _, r) => r.resume_with(()),
            Effect::Decide(_, _, r) => r.resume_with(()),
            // A halted engine still answers (the core needs a signed value
            // to go on), but `send` drops what it would publish.
            Effect::SignVote(v, r) => {
                let s = self.sign(SignedPart::Vote(&v));
                r.resume_with(SignedMessage::new(v, s))
            }
            Effect::SignProposal(p, r) => {
                let s = self.sign(SignedPart::Proposal(&p));
                r.resume_with(SignedMessage::new(p, s))
            }
            Effect::VerifySignature(m, _pk, r) => {
                let ok = match &m.message {
                    mc::ConsensusMsg::Vote(v) => self.check(SignedPart::Vote(v), &v.voter, &m.signature),
                    mc::ConsensusMsg::Proposal(p) => {
                        self.checked == Some(m.signature)
                            || self.check(SignedPart::Proposal(p), &p.proposer, &m.signature)
                    }
                };
                if !ok {
                    self.stats.bad_signatures += 1;
                }
                r.resume_with(ok)
            }
            Effect::VerifyCommitCertificate(c, set, th, r) => r.resume_with(self.verify_certificate(&c, &set, th)),
            Effect::VerifyExtendedCommitCertificate(c, set, th, _, r) => {
                let plain = CommitCertificate {
                    height: c.height,
                    round: c.round,
                    value_id: c.value_id,
                    commit_signatures: c
                        .commit_signatures
                        .iter()
                        .map(|s| mt::CommitSignature::new(s.address, s.signature))
                        .collect(),
                };
                r.resume_with(self.verify_certificate(&plain, &set, th))
            }
            Effect::VerifyPolkaCertificate(c, set, th, r) => {
                let votes = c.polka_signatures.iter().map(|s| {
                    (
                        Vote {
                            kind: VoteType::Prevote,
                            height: c.height,
                            round: c.round,
                            value: NilOrVal::Val(c.value_id),
                            voter: s.address,
                        },
                        s.signature,
                    )
                });
                r.resume_with(self.verify_votes(votes, &set, th.quorum))
            }
            Effect::VerifyRoundCertificate(c, set, th, r) => {
                let precommit = c.cert_type == mt::RoundCertificateType::Precommit;
                if let Some(s) = c.round_signatures.iter().find(|s| precommit && s.vote_type == VoteType::Prevote) {
                    r.resume_with(Err(CertificateError::InvalidVoteType(s.address)))
                } else {
                    let votes = c.round_signatures.iter().map(|s| {
                        (
                            Vote {
                                kind: s.vote_type,
                                height: c.height,
                                round: c.round,
                                value: s.value_id,
                                voter: s.address,
                            },
                            s.signature,
                        )
                    });
                    // Skipping a round takes f+1 seats (one honest); leaving
                    // it on precommits takes a quorum.
                    r.resume_with(self.verify_votes(votes, &set, if precommit { th.quorum } else { th.honest }))
                }
            }
            Effect::WalAppend(height, entry, r) => {
                if !self.replaying && self.halted.is_none() {
                    match self.wal.append(height, &entry) {
                        Ok(()) => self.dirty = true,
                        Err(e) => self.halt(format!("consensus log append failed at height {height}: {e}")),
                    }
                }
                r.resume_with(())
            }
            Effect::ExtendVote(_, _, _, _, r) => r.resume_with(None),
            Effect::VerifyVoteExtension(_, _, _, _, _, _, r) => r.resume_with(Ok(())),
            Effect::Finalize(cert, _, evidence, r) => {
                let mut equivocators: Vec<Address> =
                    evidence.proposals.iter().map(|e| *e.0).chain(evidence.votes.iter().map(|e| *e.0)).collect();
                equivocators.sort();
                equivocators.dedup();
                let votes = evidence.votes.iter().flat_map(|(_, pairs)| pairs.iter()).map(|(x, y)| {
                    (
                        Message::Vote(x.message.clone(), x.signature).encode(),
                        Message::Vote(y.message.clone(), y.signature).encode(),
                    )
                });
                let proposals = evidence.proposals.iter().flat_map(|(_, pairs)| pairs.iter()).map(|(x, y)| {
                    (
                        Message::Proposal(x.message.clone(), x.signature).encode(),
                        Message::Proposal(y.message.clone(), y.signature).encode(),
                    )
                });
                let evidence = votes.chain(proposals).collect();
                self.stats.decided += 1;
                self.out.push(Output::Decided {
                    height: cert.height,
                    round: cert.round,
                    value: cert.value_id,
                    signatures: cert.commit_signatures.iter().map(|s| (s.address, s.signature)).collect(),
                    equivocators,
                    evidence,
                });
                r.resume_with(())
            }
        })
    }

    fn verify_votes(
        &self,
        votes: impl Iterator<Item = (Vote, Sig)>,
        set: &ValidatorSet,
        threshold: mt::ThresholdParam,
    ) -> Result<(), CertificateError<Ctx>> {
        let mut seen = BTreeSet::new();
        let mut signed = 0u64;
        for (v, s) in votes {
            let Some(seat) = set.get(&v.voter) else { return Err(CertificateError::UnknownValidator(v.voter)) };
            if !seen.insert(v.voter) {
                return Err(CertificateError::DuplicateVote(v.voter));
            }
            if !self.check(SignedPart::Vote(&v), &v.voter, &s) {
                return Err(CertificateError::VerificationError(None));
            }
            signed = signed.saturating_add(seat.power);
        }
        let total = set.total_power();
        if threshold.is_met(signed, total) {
            Ok(())
        } else {
            Err(CertificateError::NotEnoughVotingPower { signed, total, expected: threshold.min_expected(total) })
        }
    }
}

/// A round certificate as a message.
pub(crate) fn round_cert(c: mt::RoundCertificate<Ctx>) -> Message {
    Message::RoundCert {
        height: c.height,
        round: c.round,
        precommit: c.cert_type == mt::RoundCertificateType::Precommit,
        votes: c
            .round_signatures
            .into_iter()
            .map(|s| RoundVote { kind: s.vote_type, value: s.value_id, voter: s.address, sig: s.signature })
            .collect(),
    }
}

/// A round-certificate message as the core's type.
pub(crate) fn round_cert_back(m: Message) -> Option<mt::RoundCertificate<Ctx>> {
    let Message::RoundCert { height, round, precommit, votes } = m else { return None };
    let cert_type = if precommit { mt::RoundCertificateType::Precommit } else { mt::RoundCertificateType::Skip };
    let round_signatures =
        votes.into_iter().map(|v| mt::RoundSignature::new(v.kind, v.value, v.voter, v.sig)).collect();
    Some(mt::RoundCertificate { height, round, cert_type, round_signatures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bft::context::{proposer, Validator};
    use crate::bft::wal::FileWal;

    struct NoWal;
    impl Wal for NoWal {
        fn append(&mut self, _: Height, _: &Input<Ctx>) -> std::io::Result<()> {
            Ok(())
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A log whose disk is gone.
    struct BrokenWal;
    impl Wal for BrokenWal {
        fn append(&mut self, _: Height, _: &Input<Ctx>) -> std::io::Result<()> {
            Err(std::io::Error::other("no space left on device"))
        }
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn addr(seed: [u8; 32]) -> Address {
        Address(VerificationKey::from(&SigningKey::from(seed)).into())
    }

    fn config(seeds: &[[u8; 32]], me: usize) -> Config {
        let set = ValidatorSet::new(seeds.iter().map(|s| Validator::seat(addr(*s).0)).collect()).unwrap();
        Config { chain: [7; 32], key: seeds[me], validators: set, timeouts: LinearTimeouts::default() }
    }

    #[test]
    fn a_lone_validator_decides_its_own_block_with_a_certificate() {
        let mut e = Engine::new(config(&[[1; 32]], 0), NoWal);
        e.start_height(Height(1), 0);
        assert_eq!(e.drain(), vec![Output::GetValue { height: Height(1), round: Round::new(0) }]);
        let id = BlockId([9; 32]);
        e.propose(Height(1), Round::new(0), id, 1);
        let out = e.drain();
        let sent = out.iter().filter(|o| matches!(o, Output::Broadcast(_))).count();
        assert_eq!(sent, 3, "a proposal, a prevote and a precommit: {out:?}");
        // The core publishes its own messages after it has fed them back
        // to itself, so the decision comes first.
        let decided = out.iter().find(|o| matches!(o, Output::Decided { .. }));
        let Some(Output::Decided { height, round, value, signatures, equivocators, evidence }) = decided else {
            panic!("{out:?}")
        };
        assert_eq!((*height, *round, *value), (Height(1), Round::new(0), id));
        assert!(equivocators.is_empty() && evidence.is_empty());
        assert!(e.verify_commit(Height(1), Round::new(0), id, signatures));
        assert!(!e.verify_commit(Height(1), Round::new(0), BlockId([8; 32]), signatures));
        assert!(!e.verify_commit(Height(1), Round::new(0), id, &[]));
        assert_eq!(e.stats().decided, 1);
    }

    #[test]
    fn a_failing_log_halts_the_engine_before_anything_is_sent() {
        let mut e = Engine::new(config(&[[1; 32]], 0), BrokenWal);
        e.start_height(Height(1), 0);
        e.drain();
        e.propose(Height(1), Round::new(0), BlockId([9; 32]), 1);
        let out = e.drain();
        assert!(out.is_empty(), "{out:?}");
        assert!(e.halted().is_some_and(|w| w.contains("no space left")));
        e.tick(1_000_000);
        assert!(e.drain().iter().all(|o| !matches!(o, Output::Broadcast(_))));
    }

    /// A node prevotes a block, stops, and restarts from its log file: it
    /// votes the same again and nothing else, even when the proposer
    /// offers another block in the same round.
    #[test]
    fn a_node_restarted_from_its_log_file_does_not_vote_twice() {
        let seeds: Vec<[u8; 32]> = (1..=4).map(|i| [i; 32]).collect();
        let prop_addr = proposer(&config(&seeds, 0).validators, Height(1), Round::new(0)).address;
        let prop_seed = *seeds.iter().find(|s| addr(**s) == prop_addr).unwrap();
        let mine = seeds.iter().position(|s| addr(*s) != prop_addr).unwrap();
        let cfg = config(&seeds, mine);
        let me = addr(seeds[mine]);
        assert_ne!(me, prop_addr, "the node under test must not be the proposer");
        let signed = |value: BlockId| {
            let p =
                Proposal { height: Height(1), round: Round::new(0), value, pol_round: Round::Nil, proposer: prop_addr };
            let s = Sig(SigningKey::from(prop_seed).sign(&signing_bytes(&cfg.chain, SignedPart::Proposal(&p))).into());
            Message::Proposal(p, s)
        };
        let my_votes = |out: &[Output]| -> Vec<Vote> {
            out.iter()
                .filter_map(|o| match o {
                    Output::Broadcast(Message::Vote(v, _)) if v.voter == me => Some(v.clone()),
                    _ => None,
                })
                .collect()
        };
        let dir = std::env::temp_dir().join(format!("attnet-engine-restart-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("consensus.wal");

        let (wal, _) = FileWal::open(&path).unwrap();
        let mut e = Engine::new(cfg.clone(), wal);
        e.start_height(Height(1), 0);
        e.receive(signed(BlockId([1; 32])), 5);
        e.block_judged(Height(1), BlockId([1; 32]), true, 6);
        let before = my_votes(&e.drain());
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].value, NilOrVal::Val(BlockId([1; 32])));
        drop(e);

        let (wal, rec) = FileWal::open(&path).unwrap();
        assert_eq!(rec.height, Height(1));
        let mut e = Engine::new(cfg.clone(), wal);
        e.recover(Height(1), &rec.entries, 10);
        e.receive(signed(BlockId([2; 32])), 11);
        e.block_judged(Height(1), BlockId([2; 32]), true, 12);
        e.tick(60_000);
        let after = my_votes(&e.drain());
        for v in after.iter().filter(|v| v.kind == VoteType::Prevote && v.round == Round::new(0)) {
            assert_eq!(v.value, before[0].value, "the restarted node changed its prevote: {after:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Block bytes cost a peer nothing: a flood of blocks that no proposal
    /// names keeps a bounded number of verdicts, and the proposed block's
    /// verdict is still taken afterwards and voted for.
    #[test]
    fn unproposed_blocks_are_bounded_and_never_crowd_out_the_proposed_one() {
        let seeds: Vec<[u8; 32]> = (1..=4).map(|i| [i; 32]).collect();
        let prop_addr = proposer(&config(&seeds, 0).validators, Height(1), Round::new(0)).address;
        let prop_seed = *seeds.iter().find(|s| addr(**s) == prop_addr).unwrap();
        let mine = seeds.iter().position(|s| addr(*s) != prop_addr).unwrap();
        let cfg = config(&seeds, mine);
        let me = addr(seeds[mine]);
        let mut e = Engine::new(cfg.clone(), NoWal);
        e.start_height(Height(1), 0);
        e.drain();
        let flood = 10_000u32;
        for i in 0..flood {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id[31] = 0xee;
            e.block_judged(Height(1), BlockId(id), true, 1);
        }
        assert_eq!(e.stats().verdicts_dropped, u64::from(flood) - PROPOSALS_PER_HEIGHT as u64);
        assert_eq!(e.verdicts.get(&Height(1)).map_or(0, |v| v.len()), PROPOSALS_PER_HEIGHT);
        // A kept verdict is judged once: asking again changes nothing.
        let mut first = [0u8; 32];
        first[31] = 0xee;
        assert!(e.has_verdict(Height(1), BlockId(first)));
        e.block_judged(Height(1), BlockId(first), true, 1);
        assert_eq!(e.stats().verdicts_dropped, u64::from(flood) - PROPOSALS_PER_HEIGHT as u64);

        let real = BlockId([0x42; 32]);
        let p = Proposal {
            height: Height(1),
            round: Round::new(0),
            value: real,
            pol_round: Round::Nil,
            proposer: prop_addr,
        };
        let s = Sig(SigningKey::from(prop_seed).sign(&signing_bytes(&cfg.chain, SignedPart::Proposal(&p))).into());
        e.receive(Message::Proposal(p, s), 2);
        assert!(
            e.drain().iter().all(|o| !matches!(o, Output::Broadcast(Message::Vote(..)))),
            "no vote before the verdict"
        );
        e.block_judged(Height(1), real, true, 3);
        assert!(e.has_verdict(Height(1), real));
        let out = e.drain();
        let prevoted = out.iter().any(|o| {
            matches!(o, Output::Broadcast(Message::Vote(v, _))
                if v.voter == me && v.kind == VoteType::Prevote && v.value == NilOrVal::Val(real))
        });
        assert!(prevoted, "the proposed block lost its vote to the flood: {out:?}");
    }
}
