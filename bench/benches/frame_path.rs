//! Per-row criterion groups: raw library baselines and the frame path
//! stage by stage, on the same bytes, in one run. Throughput is in frames.
//! `cargo bench -p bench` then `cargo run -p bench --bin perf_report`.

use std::cell::Cell;

use bench::{names, Workload, BURST, ROWS};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dataplane::{Burst, Depth};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn nonce12(counter: u64) -> [u8; 12] {
    dataplane::crypto::nonce(counter)
}

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
        {
            let k = aws_lc_rs::aead::LessSafeKey::new(
                aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &w.key).unwrap(),
            );
            g.bench_function(names::AES[0].0, |b| {
                b.iter_batched_ref(
                    fresh,
                    |(base, frames)| {
                        for (i, f) in frames.iter_mut().enumerate() {
                            let (aad, io) = f.split_at_mut(w.sealed_at[i]);
                            let n = aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce12(*base + i as u64));
                            k.open_in_place(n, aws_lc_rs::aead::Aad::from(&*aad), io).unwrap();
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        {
            let k =
                ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &w.key).unwrap());
            g.bench_function(names::AES[1].0, |b| {
                b.iter_batched_ref(
                    fresh,
                    |(base, frames)| {
                        for (i, f) in frames.iter_mut().enumerate() {
                            let (aad, io) = f.split_at_mut(w.sealed_at[i]);
                            let n = ring::aead::Nonce::assume_unique_for_key(nonce12(*base + i as u64));
                            k.open_in_place(n, ring::aead::Aad::from(&*aad), io).unwrap();
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        {
            use aes_gcm::aead::{AeadInOut, KeyInit};
            let k = aes_gcm::Aes256Gcm::new((&w.key).into());
            g.bench_function(names::AES[2].0, |b| {
                b.iter_batched_ref(
                    fresh,
                    |(base, frames)| {
                        for (i, f) in frames.iter_mut().enumerate() {
                            let (aad, io) = f.split_at_mut(w.sealed_at[i]);
                            let (ct, tag) = io.split_at_mut(io.len() - 16);
                            let tag = aes_gcm::Tag::try_from(&*tag).unwrap();
                            let n = aes_gcm::Nonce::from(nonce12(*base + i as u64));
                            k.decrypt_inout_detached(&n, aad, ct.into(), &tag).unwrap();
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        if row.lz4 {
            let mut scratch = vec![0u8; 16384];
            g.bench_function(names::LZ4, |b| {
                b.iter(|| {
                    for (wire, body) in w.wire_bodies.iter().zip(&w.bodies) {
                        let n = lz4_flex::block::decompress_into(wire, &mut scratch[..body.len()]).unwrap();
                        assert_eq!(n, body.len());
                    }
                })
            });
        }
        g.bench_function(names::SHA, |b| {
            use sha2::Digest;
            b.iter(|| {
                let mut x = 0u8;
                for ts in &w.txs {
                    for t in ts {
                        let id: [u8; 32] = sha2::Sha256::digest(&t[..t.len() - 64]).into();
                        x ^= id[0];
                    }
                }
                x
            })
        });
        let sigs: Vec<(ed25519_zebra::VerificationKeyBytes, ed25519_zebra::Signature)> = w
            .txs
            .iter()
            .flatten()
            .map(|t| {
                let a: [u8; 32] = t[2..34].try_into().unwrap();
                let s: [u8; 64] = t[t.len() - 64..].try_into().unwrap();
                (a.into(), ed25519_zebra::Signature::from_bytes(&s))
            })
            .collect();
        g.bench_function(names::ED_SINGLE, |b| {
            b.iter(|| {
                for ((a, s), m) in sigs.iter().zip(&w.messages) {
                    ed25519_zebra::VerificationKey::try_from(*a).unwrap().verify(s, m).unwrap();
                }
            })
        });
        g.bench_function(names::ED_BATCH, |b| {
            // The CSPRNG the frame path uses for batch coefficients.
            let mut rng: rand::rngs::StdRng = rand::make_rng();
            b.iter(|| {
                let mut v = ed25519_zebra::batch::Verifier::new();
                for ((a, s), m) in sigs.iter().zip(&w.messages) {
                    v.queue((*a, *s, m));
                }
                v.verify(&mut rng).unwrap();
            })
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
            if depth >= Depth::Decompress {
                assert_eq!(out.txs.len(), w.tx_count());
            }
        }
        g.finish();
    }
}

criterion_group!(benches, rows);
criterion_main!(benches);
