//! The types the BFT engine is instantiated with: heights, validators keyed
//! by their Ed25519 node keys, block hashes as values, and votes and
//! proposals signed over the encoding in [`super::codec`].
//!
//! The seats vote with equal weight (stake decides who holds a seat, as in
//! delegated proof of stake); the proposer of (height, round) is the seat at
//! `(height + round) mod n` of the set ordered by node key, so every node
//! computes it alike without any local state.

use core::fmt;

use arc_malachitebft_core_types as mt;
use mt::{NilOrVal, Round, SignedExtension, VoteType, VotingPower};

use crate::merkle::Hash;

/// A block height (1 is the first block after genesis).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl mt::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its Ed25519 node key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 32]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first 8 bytes identify a node in logs; the full key is in the genesis.
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl mt::Address for Address {}

/// A block hash: the identity of the value the validators agree on. The
/// block itself travels beside the proposal ([`super::codec::Message::Block`]).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub Hash);

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({self})")
    }
}

impl mt::Value for BlockId {
    type Id = BlockId;

    fn id(&self) -> BlockId {
        *self
    }
}

/// An Ed25519 signature (ordered bytes, as the engine sorts evidence).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sig(pub [u8; 64]);

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({:02x}{:02x}{:02x}{:02x}..)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// A public key as the engine sees it (the address carries the same bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

/// A node's secret key seed; never printed.
#[derive(Clone)]
pub struct PrivateKey(pub [u8; 32]);

/// The signing scheme: Ed25519 (the node keys of the handshake).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

/// A signature or key of the wrong length.
#[derive(Debug)]
pub struct BadLength;

impl fmt::Display for BadLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrong length")
    }
}

impl mt::SigningScheme for Ed25519 {
    type DecodingError = BadLength;
    type Signature = Sig;
    type PublicKey = PublicKey;
    type PrivateKey = PrivateKey;

    fn decode_signature(bytes: &[u8]) -> Result<Sig, BadLength> {
        bytes.try_into().map(Sig).map_err(|_| BadLength)
    }

    fn encode_signature(signature: &Sig) -> Vec<u8> {
        signature.0.to_vec()
    }

    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, BadLength> {
        bytes.try_into().map(PublicKey).map_err(|_| BadLength)
    }

    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.0.to_vec()
    }
}

/// A seat in the validator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    pub address: Address,
    pub public_key: PublicKey,
    pub power: VotingPower,
}

impl Validator {
    /// A seat with one vote, for the node key `key`.
    pub fn seat(key: [u8; 32]) -> Validator {
        Validator { address: Address(key), public_key: PublicKey(key), power: 1 }
    }
}

impl mt::Validator<Ctx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> VotingPower {
        self.power
    }
}

/// The seats of a height, ordered by node key, without duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    seats: Vec<Validator>,
    total: VotingPower,
}

impl ValidatorSet {
    /// Builds a set from seats in any order; a key listed twice keeps its
    /// first entry. `None` for an empty set or a total power that overflows.
    pub fn new(mut seats: Vec<Validator>) -> Option<ValidatorSet> {
        seats.sort_by_key(|v| v.address);
        seats.dedup_by(|a, b| a.address == b.address);
        let total = seats.iter().try_fold(0u64, |t, v| t.checked_add(v.power))?;
        if seats.is_empty() || total == 0 {
            return None;
        }
        Some(ValidatorSet { seats, total })
    }

    /// The seats a genesis lists, one vote each; `None` for an empty list.
    pub fn from_genesis(list: &[crate::genesis::GenesisValidator]) -> Option<ValidatorSet> {
        ValidatorSet::new(list.iter().map(|v| Validator::seat(v.node_key)).collect())
    }

    pub fn seats(&self) -> &[Validator] {
        &self.seats
    }

    pub fn get(&self, address: &Address) -> Option<&Validator> {
        self.seats.binary_search_by(|v| v.address.cmp(address)).ok().and_then(|i| self.seats.get(i))
    }

    pub fn total_power(&self) -> VotingPower {
        self.total
    }

    /// The hash written into block headers (`validator_set_hash`): SHA-256
    /// over "attnet/validators/v1", then each seat's key and power (LE).
    pub fn hash(&self) -> Hash {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"attnet/validators/v1");
        for v in &self.seats {
            h.update(v.address.0);
            h.update(v.power.to_le_bytes());
        }
        h.finalize().into()
    }
}

impl mt::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.seats.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.total
    }

    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.get(address)
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.seats.get(index)
    }
}

/// A proposal: the block hash a proposer offers for (height, round), with
/// the round of the polka that justifies it (`pol_round`, nil for a new block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub height: Height,
    pub round: Round,
    pub value: BlockId,
    pub pol_round: Round,
    pub proposer: Address,
}

impl mt::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &BlockId {
        &self.value
    }

    fn take_value(self) -> BlockId {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit for a block hash or for nil.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub kind: VoteType,
    pub height: Height,
    pub round: Round,
    pub value: NilOrVal<BlockId>,
    pub voter: Address,
}

impl mt::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<BlockId> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<BlockId> {
        self.value
    }

    fn vote_type(&self) -> VoteType {
        self.kind
    }

    fn validator_address(&self) -> &Address {
        &self.voter
    }

    // Votes carry no extensions.
    fn extension(&self) -> Option<&SignedExtension<Ctx>> {
        None
    }

    fn take_extension(&mut self) -> Option<SignedExtension<Ctx>> {
        None
    }

    fn extend(self, _extension: SignedExtension<Ctx>) -> Self {
        self
    }
}

/// The engine's proposal-part type. Blocks travel as
/// [`super::codec::Message::Block`] beside the proposal, not through the
/// engine, so a part is the whole block: first and last at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WholeBlock;

impl mt::ProposalPart<Ctx> for WholeBlock {
    fn is_first(&self) -> bool {
        true
    }

    fn is_last(&self) -> bool {
        true
    }
}

/// The context: the node's types for the engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ctx;

impl mt::Context for Ctx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = WholeBlock;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = mt::LinearTimeouts;
    type Value = BlockId;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(&self, set: &'a ValidatorSet, height: Height, round: Round) -> &'a Validator {
        proposer(set, height, round)
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockId,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal { height, round, value, pol_round, proposer: address }
    }

    fn new_prevote(&self, height: Height, round: Round, value: NilOrVal<BlockId>, address: Address) -> Vote {
        Vote { kind: VoteType::Prevote, height, round, value, voter: address }
    }

    fn new_precommit(&self, height: Height, round: Round, value: NilOrVal<BlockId>, address: Address) -> Vote {
        Vote { kind: VoteType::Precommit, height, round, value, voter: address }
    }
}

/// The proposer of (height, round): seat `(height + round) mod n`.
pub fn proposer(set: &ValidatorSet, height: Height, round: Round) -> &Validator {
    let n = set.seats.len() as u64;
    let r = round.as_u32().map_or(0, u64::from);
    let i = ((height.0 % n + r % n) % n) as usize;
    // `new` refuses an empty set and i < n.
    #[allow(clippy::indexing_slicing)]
    &set.seats[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: u8) -> ValidatorSet {
        ValidatorSet::new((0..n).map(|i| Validator::seat([i; 32])).collect()).unwrap()
    }

    #[test]
    fn the_proposer_rotates_over_every_seat_by_height_and_round() {
        let s = set(4);
        let by_height: Vec<u8> = (1..=4).map(|h| proposer(&s, Height(h), Round::new(0)).address.0[0]).collect();
        assert_eq!(by_height, vec![1, 2, 3, 0]);
        let by_round: Vec<u8> = (0..4).map(|r| proposer(&s, Height(1), Round::new(r)).address.0[0]).collect();
        assert_eq!(by_round, vec![1, 2, 3, 0]);
    }

    #[test]
    fn a_set_is_ordered_deduplicated_and_never_empty() {
        let s = ValidatorSet::new(vec![Validator::seat([9; 32]), Validator::seat([1; 32]), Validator::seat([9; 32])])
            .unwrap();
        assert_eq!(s.seats().len(), 2);
        assert_eq!(s.seats()[0].address, Address([1; 32]));
        assert_eq!(s.total_power(), 2);
        assert!(ValidatorSet::new(Vec::new()).is_none());
        assert_ne!(s.hash(), set(2).hash());
    }
}
