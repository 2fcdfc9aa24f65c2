//! Executing a block of 20 000 transfers among 100 000 accounts, with the
//! block's journal open (what the node does: the block can be undone
//! until it is final) against the same execution without a journal (the
//! baseline: what recovery cost before blocks were journaled), same run.
//! `cargo bench -p bench --bench ledger`.

use control::genesis::{Genesis, GenesisAccount};
use control::state::State;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::wire::tx::{Kind, Repr, Transaction};
use sha2::{Digest, Sha256};

const ACCOUNTS: u32 = 100_000;
const BLOCK: u32 = 20_000;

fn key(i: u32) -> [u8; 32] {
    Sha256::digest(i.to_le_bytes()).into()
}

fn block(c: &mut Criterion) {
    let g = Genesis::new(1, (0..ACCOUNTS).map(|i| GenesisAccount { key: key(i), balance: 1 << 40 })).unwrap();
    let base = State::new(&g, 16);
    // Block: sender i sends to i + 1 with nonce 1.
    let txs: Vec<Vec<u8>> = (0..BLOCK)
        .map(|i| {
            let r = Repr {
                kind: Kind::Transfer,
                from: key(i),
                to: key(i + 1),
                nonce: 1,
                amount: 10,
                fee: 1,
                memo: b"",
                signature: [0; 64],
            };
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b).unwrap();
            b
        })
        .collect();
    let mut grp = c.benchmark_group("execute_block_20k_transfers");
    grp.sample_size(20);
    grp.throughput(Throughput::Elements(u64::from(BLOCK)));
    for journaled in [false, true] {
        let name = if journaled { "journaled" } else { "baseline_no_journal" };
        grp.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut s = base.clone();
                    // The node's journal keeps its memory from block to
                    // block.
                    s.reserve_journal(2 * BLOCK as usize);
                    s
                },
                |mut s| {
                    if journaled {
                        s.begin();
                    }
                    for t in &txs {
                        let t = Transaction::new_checked(&t[..]).unwrap();
                        s.execute(&t).unwrap();
                    }
                    if journaled {
                        s.commit_oldest();
                    }
                    s
                },
                BatchSize::LargeInput,
            )
        });
    }
    grp.finish();
}

criterion_group!(benches, block);
criterion_main!(benches);
