//! The state root at 1 M accounts: what the first root costs (every
//! account hashed, at start-up), and what a block's root costs when
//! 1 000, 10 000 or 20 000 accounts changed (their leaves, their buckets,
//! the tree paths above them), against hashing every account from scratch
//! (the baseline an incremental root avoids), same run.
//! `cargo bench -p bench --bench state_root`.

use control::root::AccountRoot;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sha2::{Digest, Sha256};

const ACCOUNTS: u32 = 1_000_000;

fn key(i: u32) -> [u8; 32] {
    Sha256::digest(i.to_le_bytes()).into()
}

/// A leaf as the ledger makes one: SHA-256 over about 110 bytes.
fn leaf(k: &[u8; 32], version: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(k);
    h.update([version.to_le_bytes(); 9].concat());
    h.update([0u8; 2]);
    h.finalize().into()
}

fn state_root(c: &mut Criterion) {
    let keys: Vec<[u8; 32]> = (0..ACCOUNTS).map(key).collect();
    let mut g = c.benchmark_group("state_root_1m");
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_millis(500));
    g.measurement_time(std::time::Duration::from_secs(4));
    g.throughput(Throughput::Elements(u64::from(ACCOUNTS)));
    g.bench_function("first_root_all_accounts", |b| {
        b.iter_batched(
            || {
                let mut r = AccountRoot::new();
                keys.iter().for_each(|k| r.mark(*k));
                r
            },
            |mut r| r.root(|k| Some(leaf(k, 0))),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("baseline_hash_every_account", |b| {
        b.iter(|| {
            let mut all = Sha256::new();
            for k in &keys {
                all.update(leaf(k, 0));
            }
            <[u8; 32]>::from(all.finalize())
        })
    });
    let mut r = AccountRoot::new();
    keys.iter().for_each(|k| r.mark(*k));
    r.root(|k| Some(leaf(k, 0)));
    let mut version = 0u64;
    for changed in [1_000usize, 10_000, 20_000] {
        g.throughput(Throughput::Elements(changed as u64));
        g.bench_function(format!("block_with_{changed}_changed"), |b| {
            b.iter(|| {
                version += 1;
                let start = (version as usize * 7919) % keys.len();
                for i in 0..changed {
                    r.mark(keys[(start + i * 31) % keys.len()]);
                }
                r.root(|k| Some(leaf(k, version)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, state_root);
criterion_main!(benches);
