//! Per-row criterion groups: raw library baselines and the frame path
//! stage by stage, on the same bytes, in one run. Throughput is in frames.
//! `cargo bench -p bench` then `cargo run -p bench --bin perf_report`.

use std::cell::Cell;

use bench::raw::{self, AesLib, AesOpener};
use bench::{names, Workload, BURST, ROWS};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::{Burst, Depth};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rows(c: &mut Criterion) {
    for row in ROWS {
        let w = Workload::new(row);
        let mut g = c.benchmark_group(row.name);
        g.throughput(Throughput::Elements(BURST as u64));
        g.sample_size(20);
        g.warm_up_time(std::time::Duration::from_millis(700));
        g.measurement_time(std::time::Duration::from_millis(1800));
        let counter = Cell::new(1u64 << 40);
        let fresh = || {
            let base = counter.get();
            counter.set(base + BURST as u64);
            (base, w.burst(base))
        };

        // Raw AES-256-GCM open in place, three libraries, same frames.
        for lib in AesLib::ALL {
            let k = AesOpener::new(lib, &w.key);
            g.bench_function(lib.bench_name(), |b| {
                b.iter_batched_ref(
                    fresh,
                    |(base, frames)| k.open_burst(*base, frames, &w.sealed_at),
                    BatchSize::SmallInput,
                )
            });
        }
        if row.lz4 {
            let mut scratch = raw::lz4_scratch();
            g.bench_function(names::LZ4, |b| b.iter(|| raw::lz4_burst(&w, &mut scratch)));
        }
        g.bench_function(names::SHA, |b| b.iter(|| raw::sha_ids(&w)));
        let sigs = raw::sigs(&w);
        g.bench_function(names::ED_SINGLE, |b| b.iter(|| raw::verify_single(&sigs, &w.messages)));
        g.bench_function(names::ED_BATCH, |b| {
            let mut rng = raw::batch_rng();
            b.iter(|| raw::verify_batch(&sigs, &w.messages, &mut rng))
        });

        // The frame path, stage by stage.
        for (name, depth) in names::PATH.iter().zip([Depth::Decode, Depth::Decrypt, Depth::Decompress, Depth::Full]) {
            let mut fp = w.relay();
            fp.set_depth(depth);
            let mut out = Burst::with_capacity(BURST * 2, BURST * 8, BURST);
            g.bench_function(*name, |b| {
                b.iter_batched_ref(
                    fresh,
                    |(_, frames)| {
                        fp.process(frames, &mut out);
                        assert_eq!(out.counters.frames_accepted, out.counters.frames_received);
                    },
                    BatchSize::SmallInput,
                )
            });
            assert!(out.counters.balanced());
            // A filter that skips this function leaves `out` untouched.
            if depth >= Depth::Decompress && out.counters.frames_received > 0 {
                assert_eq!(out.txs.len(), w.tx_count());
            }
        }
        g.finish();
    }
}

criterion_group!(benches, rows);
criterion_main!(benches);
