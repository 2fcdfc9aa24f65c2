//! Proof of contribution: which registered producers hold the consensus
//! seats for an epoch, computed from the committed state at the epoch's
//! boundary, the same on every node.
//!
//! A producer's contribution (integers, no floating point, no iteration
//! order in the result):
//!
//! ```text
//! stake   = bond + votes                        (what backs it now)
//! held    = Σ over its voters  staked × min(h − staked_since, cap) / cap
//!           (+ bond × min(h − since, cap) / cap for the owner's bond)
//! work    = min(blocks_proposed + certificates_signed of the owner, work_cap)
//! score   = (stake + held) × (4·work_cap + work) / (4·work_cap)
//! ```
//!
//! Stake counts at once; the same stake counts a second time in proportion
//! to how long it has been held, up to `holding_cap` heights (the white
//! paper's holding amount × holding time, capped so that age alone cannot
//! entrench a producer); work the chain itself proves (blocks it proposed
//! that became final, certificates it signed, both counted by the ledger,
//! never reported by the producer) raises the score by up to a quarter.
//! The top `seats` scores hold the seats (ties: the lower owner key), each
//! with one equal vote in the BFT engine: stake decides who is elected,
//! not how much a seat weighs.

use serde::{Deserialize, Serialize};

use crate::state::State;

/// Election parameters (genesis-wide; the defaults are the documented
/// ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionParams {
    /// Seats to fill (fewer when fewer producers are registered).
    pub seats: usize,
    /// Heights after which held stake counts in full.
    pub holding_cap: u64,
    /// Work (blocks proposed + certificates signed) that earns the full
    /// quarter.
    pub work_cap: u64,
    /// Heights per epoch: seats are elected at every multiple.
    pub epoch: u64,
    /// Minted for each final block with a registered producer, until
    /// `issuance_cap` is reached (0: no issuance).
    pub block_reward: u64,
    /// Most ever minted.
    pub issuance_cap: u64,
}

impl Default for ElectionParams {
    fn default() -> Self {
        // 21 seats as in the white paper's delegated producers; a day of
        // blocks at 5 a second for the holding cap and an epoch of an hour.
        ElectionParams {
            seats: 21,
            holding_cap: 432_000,
            work_cap: 10_000,
            epoch: 18_000,
            block_reward: 0,
            issuance_cap: 0,
        }
    }
}

/// An elected seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    /// The producer's owner account.
    pub owner: [u8; 32],
    /// The node key that votes for the seat.
    pub node_key: [u8; 32],
    pub score: u128,
}

/// The epoch a height belongs to (heights 1..=epoch are epoch 0).
pub fn epoch_of(height: u64, p: &ElectionParams) -> u64 {
    height.saturating_sub(1) / p.epoch.max(1)
}

/// Every registered producer's score at height `h` of `state`, highest
/// first (ties: lower owner key first).
pub fn scores(state: &State, h: u64, p: &ElectionParams) -> Vec<Seat> {
    let cap = u128::from(p.holding_cap.max(1));
    let held_since = |amount: u64, since: u64| -> u128 {
        u128::from(amount) * u128::from(h.saturating_sub(since).min(p.holding_cap.max(1))) / cap
    };
    // An account's `staked_since` of 0 means nothing staked; a producer's
    // `since` of 0 means the genesis, where its bond was held from.
    let aged = |amount: u64, since: u64| -> u128 {
        if since == 0 {
            0
        } else {
            held_since(amount, since)
        }
    };
    let mut held: std::collections::BTreeMap<[u8; 32], u128> = std::collections::BTreeMap::new();
    for (_, a) in state.accounts() {
        if let Some(target) = a.vote {
            if a.staked > 0 {
                *held.entry(target).or_default() += aged(a.staked, a.staked_since);
            }
        }
    }
    let wcap = u128::from(p.work_cap.max(1));
    let mut out: Vec<Seat> = state
        .producers()
        .map(|(owner, pr)| {
            let stake = u128::from(pr.bond) + u128::from(pr.votes);
            let held = held.get(owner).copied().unwrap_or(0) + held_since(pr.bond, pr.since);
            let work = state.account(owner).map_or(0, |a| a.blocks_proposed.saturating_add(a.certificates_signed));
            let work = u128::from(work).min(wcap);
            let score = (stake + held) * (4 * wcap + work) / (4 * wcap);
            Seat { owner: *owner, node_key: pr.node_key, score }
        })
        .collect();
    out.sort_by(|a, b| b.score.cmp(&a.score).then(a.owner.cmp(&b.owner)));
    out
}

/// The seats for the epoch that starts after height `h` (an epoch
/// boundary): the top `seats` scores.
pub fn elect(state: &State, h: u64, p: &ElectionParams) -> Vec<Seat> {
    let mut s = scores(state, h, p);
    s.truncate(p.seats);
    s
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::genesis::{Genesis, GenesisAccount};
    use crate::ledger::Refusal;
    use attnet_core::wire::tx::{Kind, Repr, Transaction};

    fn key(i: u8) -> [u8; 32] {
        [i; 32]
    }

    /// A ledger driven block by block with unsigned transactions (the
    /// state executes what the data plane verified).
    struct Chain {
        s: State,
        h: u64,
    }

    impl Chain {
        fn new(n: u8) -> Chain {
            let accounts = (1..=n).map(|i| GenesisAccount { key: key(i), balance: 1_000_000 });
            let g = Genesis::new(1, accounts).unwrap().with_staking(5, 1000).unwrap();
            Chain { s: State::new(&g, 8), h: 0 }
        }

        /// One block with `txs` (kind, from, to, amount), produced by
        /// `producer` (a node key).
        fn block(&mut self, txs: &[(Kind, u8, [u8; 32], u64)], producer: Option<[u8; 32]>) {
            self.h += 1;
            self.s.begin();
            let mut fees = 0;
            for &(kind, from, to, amount) in txs {
                let nonce = self.s.account(&key(from)).map_or(1, |a| a.nonce + 1);
                let memo: &[u8] = if kind == Kind::RegisterProducer { b"127.0.0.1:7100" } else { b"" };
                let r = Repr { kind, from: key(from), to, nonce, amount, fee: 1, memo, signature: [0; 64] };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut b).unwrap();
                let t = Transaction::new_checked(&b[..]).unwrap();
                assert_eq!(self.s.execute(&t), Ok(()), "{kind:?} from {from} at {}", self.h);
                fees += 1;
            }
            self.s.end_block(self.h, producer, fees);
            assert!(self.s.commit_oldest());
        }

        fn idle(&mut self, blocks: u64) {
            for _ in 0..blocks {
                self.block(&[], None);
            }
        }
    }

    fn owners(seats: &[Seat]) -> Vec<u8> {
        seats.iter().map(|s| s.owner[0]).collect()
    }

    /// A scripted history of registrations, stakes, votes, held time and
    /// proposed blocks gives the producers the formula names, in order.
    #[test]
    fn a_scripted_history_elects_the_expected_producers() {
        let p = ElectionParams { seats: 3, holding_cap: 100, work_cap: 40, epoch: 50, ..ElectionParams::default() };
        let mut c = Chain::new(9);
        // Producers owned by accounts 1..=4, node keys 0x81..=0x84.
        let reg: Vec<_> = (1..=4).map(|i| (Kind::RegisterProducer, i, key(0x80 + i), 0)).collect();
        c.block(&reg, None);
        let s = elect(&c.s, c.h, &p);
        assert_eq!(owners(&s), vec![1, 2, 3], "equal bonds: ties go to the lower owner key");
        assert_eq!(s[0].node_key, key(0x81));

        // Account 5 stakes 3000 on producer 4; 6 stakes 2000 on producer 3
        // and holds it; later 7 stakes 2500 on producer 2 (fresh).
        c.block(&[(Kind::Stake, 5, key(5), 3000), (Kind::Vote, 5, key(4), 0)], None);
        c.block(&[(Kind::Stake, 6, key(6), 2000), (Kind::Vote, 6, key(3), 0)], None);
        c.idle(100);
        c.block(&[(Kind::Stake, 7, key(7), 2500), (Kind::Vote, 7, key(2), 0)], None);
        let s = scores(&c.s, c.h, &p);
        // 4: (1000 + 3000) + held (3000 + 1000, both past the cap) = 8000.
        // 3: (1000 + 2000) + (2000 + 1000) = 6000.
        // 2: (1000 + 2500) + (0 + 1000) = 4500; 1: 1000 + 1000 = 2000.
        assert_eq!(owners(&s), vec![4, 3, 2, 1]);
        assert_eq!(s.iter().map(|x| x.score).collect::<Vec<_>>(), vec![8000, 6000, 4500, 2000]);

        // Producer 1 proposes 40 final blocks (the work cap): +25 %.
        for _ in 0..40 {
            c.block(&[], Some(key(0x81)));
        }
        let s = scores(&c.s, c.h, &p);
        let one = s.iter().find(|x| x.owner == key(1)).unwrap();
        assert_eq!(one.score, 2500);
        // Producer 2's fresh stake has aged 40 of 100 heights: 3500 + 1000 + 1000.
        let two = s.iter().find(|x| x.owner == key(2)).unwrap();
        assert_eq!(two.score, 3500 + 1000 + 1000);

        // Account 5 unstakes: producer 4 falls to its bond (2000) and out
        // of the seats, below producer 1 (2500, its work).
        c.block(&[(Kind::Unstake, 5, key(5), 3000)], None);
        let s = elect(&c.s, c.h, &p);
        assert_eq!(owners(&s), vec![3, 2, 1]);
        assert_eq!(scores(&c.s, c.h, &p).last().map(|x| (x.owner, x.score)), Some((key(4), 2000)));

        // The same state elects the same seats, whatever the order the
        // maps were filled in: a replay of the same blocks agrees.
        assert_eq!(elect(&c.s, c.h, &p), elect(&c.s, c.h, &p));
        assert_eq!(epoch_of(50, &p), 0);
        assert_eq!(epoch_of(51, &p), 1);
    }

    /// Slashing takes the whole bond out of the supply, removes the
    /// producer from the next election and for good (neither its owner nor
    /// its node key registers again), and is undone with its block.
    /// Validators 1..=3 of a genesis: node key `key(0x80 + i)`, owner
    /// `key(i)`, a bond of 1000.
    fn genesis_validators() -> Vec<crate::genesis::GenesisValidator> {
        (1..=3)
            .map(|i| crate::genesis::GenesisValidator {
                node_key: key(0x80 + i),
                owner: key(i),
                bond: 1000,
                address: "127.0.0.1:7100".parse().unwrap(),
            })
            .collect()
    }

    #[test]
    fn a_slashed_producer_leaves_the_supply_and_the_elections() {
        let p = ElectionParams { seats: 3, holding_cap: 100, work_cap: 40, epoch: 10, ..ElectionParams::default() };
        let mut c = Chain::new(5);
        c.s = {
            let accounts = (1..=5).map(|i| GenesisAccount { key: key(i), balance: 1_000_000 });
            let g = Genesis::new(1, accounts).unwrap().with_staking(5, 1000).unwrap();
            let vals = genesis_validators();
            State::new(&g.with_validators(vals).unwrap().with_election(p).unwrap(), 8)
        };
        assert_eq!(owners(c.s.seats()), vec![1, 2, 3], "the genesis validators sit first");
        assert_eq!(c.s.account(&key(1)).unwrap().balance, 1_000_000 - 1000, "the bond left the balance");
        c.block(&[(Kind::RegisterProducer, 4, key(0x84), 0)], None);
        let before = c.s.supply();
        assert!(before.holds());

        // Undone with its block.
        c.s.begin();
        assert_eq!(c.s.slash(&key(0x82)), 1000);
        c.s.rollback();
        assert_eq!(c.s.supply(), before);
        assert!(c.s.producer_of(&key(0x82)).is_some());

        c.s.begin();
        assert_eq!(c.s.slash(&key(0x82)), 1000);
        assert_eq!(c.s.slash(&key(0x82)), 0, "once");
        c.h += 1;
        c.s.end_block(c.h, None, 0);
        assert!(c.s.commit_oldest());
        let after = c.s.supply();
        assert!(after.holds(), "{after:?}");
        assert_eq!((after.total + 1000, after.bonds + 1000, c.s.slashed()), (before.total, before.bonds, 1000));
        assert_eq!(owners(c.s.seats()), vec![1, 2, 3], "the seat is kept to the end of the epoch");

        // Neither the owner nor the node key comes back.
        let reg = |from: u8, nk: [u8; 32], nonce: u64| {
            let r = Repr {
                kind: Kind::RegisterProducer,
                from: key(from),
                to: nk,
                nonce,
                amount: 0,
                fee: 1,
                memo: b"127.0.0.1:7100",
                signature: [0; 64],
            };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b).unwrap();
            b
        };
        let again = reg(2, key(0x92), 1);
        assert_eq!(c.s.execute(&Transaction::new_checked(&again[..]).unwrap()), Err(Refusal::AlreadyProducer));
        let stolen = reg(5, key(0x82), 1);
        assert_eq!(c.s.execute(&Transaction::new_checked(&stolen[..]).unwrap()), Err(Refusal::NodeKeyTaken));

        // The boundary seats the others.
        c.idle(10 - c.h % 10);
        assert_eq!(owners(c.s.seats()), vec![1, 3, 4]);
        assert!(
            c.s.voted().iter().any(|s| s.owner == key(2)),
            "the last block of the epoch was voted on by the old seats"
        );
        c.idle(1);
        assert_eq!(c.s.voted(), c.s.seats());
    }

    /// Block rewards: minted per block of a registered producer up to the
    /// cap, the owner's share by its bond, the voters' pool paid at the
    /// boundary by stake; `genesis + minted − slashed` equals every
    /// balance, stake, unbonding amount, bond and unpaid share at every
    /// height, and a block rolled back takes its rewards with it.
    #[test]
    fn rewards_are_capped_and_the_supply_holds_at_every_height() {
        let p =
            ElectionParams { seats: 3, epoch: 10, block_reward: 100, issuance_cap: 1_050, ..ElectionParams::default() };
        let accounts = (1..=4).map(|i| GenesisAccount { key: key(i), balance: 100_000 });
        let g = Genesis::new(1, accounts).unwrap().with_staking(5, 1000).unwrap();
        let vals = genesis_validators();
        let g = g.with_validators(vals).unwrap().with_election(p).unwrap();
        let mut c = Chain { s: State::new(&g, 8), h: 0 };
        let genesis_total = u128::from(g.total_supply());
        let check = |c: &Chain| {
            let s = c.s.supply();
            assert!(s.holds(), "height {}: {s:?}", c.h);
            assert_eq!(s.total, genesis_total + u128::from(c.s.minted()) - u128::from(c.s.slashed()), "height {}", c.h);
        };
        // Block 1 has no producer: nothing minted, its fees stay unpaid.
        c.block(&[(Kind::Stake, 4, key(4), 3000), (Kind::Vote, 4, key(1), 0)], None);
        check(&c);
        let owner_after_1 = c.s.account(&key(1)).unwrap().balance;
        assert_eq!((owner_after_1, c.s.minted()), (100_000 - 1000, 0), "the bond left the owner's balance");
        for _ in 2..=9 {
            c.block(&[], Some(key(0x81)));
            check(&c);
        }
        // Bond 1000 of 4000 backing: 25 to the owner, 75 to the pool.
        assert_eq!(c.s.account(&key(1)).unwrap().balance, owner_after_1 + 8 * 25);
        assert_eq!(c.s.supply().rewards_unpaid, 8 * 75);
        let voter = c.s.account(&key(4)).unwrap().balance;

        // The boundary pays the pool; undone with its block, then again.
        c.s.begin();
        c.s.end_block(10, Some(key(0x81)), 0);
        assert_eq!(c.s.account(&key(4)).unwrap().balance, voter + 9 * 75);
        assert!(c.s.rollback());
        assert_eq!((c.s.account(&key(4)).unwrap().balance, c.s.minted()), (voter, 800));
        check(&c);
        c.block(&[], Some(key(0x81)));
        check(&c);
        assert_eq!(c.s.account(&key(4)).unwrap().balance, voter + 9 * 75);
        assert_eq!(c.s.supply().rewards_unpaid, 0);

        // A producer that is not registered mints nothing; then 100, the
        // 50 left under the cap, and nothing after.
        c.block(&[], Some(key(0x99)));
        assert_eq!(c.s.minted(), 900);
        c.block(&[], Some(key(0x81)));
        c.block(&[], Some(key(0x81)));
        c.block(&[], Some(key(0x81)));
        check(&c);
        assert_eq!(c.s.minted(), 1_050);
        assert_eq!(c.s.supply().rewards_unpaid, 75 + 37, "50 × 3000 / 4000 rounded down");
    }

    #[test]
    fn fewer_producers_than_seats_fill_fewer_seats() {
        let mut c = Chain::new(3);
        c.block(&[(Kind::RegisterProducer, 1, key(0x81), 0)], None);
        let s = elect(&c.s, c.h, &ElectionParams::default());
        assert_eq!(s.len(), 1);
        assert!(elect(&Chain::new(2).s, 0, &ElectionParams::default()).is_empty());
    }
}
