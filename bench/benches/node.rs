//! The node's pieces against their baselines, in one run:
//! - rings: crossbeam (the design card's) against rtrb (SPSC), items/s
//!   between two threads;
//! - receive: draining the same number of prefilled datagrams from a
//!   loopback socket with the io_uring backend and with recvmmsg;
//! - pipeline: one data core on the pcap backend (rings, dedup, sharding,
//!   a draining shard consumer) against the foundation's frame path alone
//!   on the same unique traffic in memory, and against pcap replay plus
//!   the frame path without the rings.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::backend::pcap::PcapReplay;
use dataplane::backend::RxQueue;
use dataplane::pipeline::{self, CoreConfig, CoreCounters, CoreSetup, DataCore, Sharder};
use dataplane::{testkit, Burst};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RING_ITEMS: u64 = 1 << 20;

fn rings(c: &mut Criterion) {
    let mut g = c.benchmark_group("rings");
    g.throughput(Throughput::Elements(RING_ITEMS));
    g.sample_size(10);
    g.bench_function("rtrb_spsc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (mut p, mut cns) = rtrb::RingBuffer::<u64>::new(1024);
                let t = Instant::now();
                let h = std::thread::spawn(move || {
                    let mut got = 0u64;
                    let mut sum = 0u64;
                    while got < RING_ITEMS {
                        if let Ok(ch) = cns.read_chunk(cns.slots()) {
                            let n = ch.len() as u64;
                            for x in ch {
                                sum = sum.wrapping_add(x);
                            }
                            got += n;
                        } else {
                            std::hint::spin_loop();
                        }
                    }
                    sum
                });
                let mut i = 0u64;
                while i < RING_ITEMS {
                    let n = p.slots().min((RING_ITEMS - i) as usize);
                    if n == 0 {
                        std::hint::spin_loop();
                        continue;
                    }
                    if let Ok(ch) = p.write_chunk_uninit(n) {
                        let k = ch.fill_from_iter(i..i + n as u64);
                        i += k as u64;
                    }
                }
                h.join().unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let q = Arc::new(crossbeam::queue::ArrayQueue::<u64>::new(1024));
                let q2 = q.clone();
                let t = Instant::now();
                let h = std::thread::spawn(move || {
                    let mut got = 0u64;
                    let mut sum = 0u64;
                    while got < RING_ITEMS {
                        match q2.pop() {
                            Some(x) => {
                                sum = sum.wrapping_add(x);
                                got += 1;
                            }
                            None => std::hint::spin_loop(),
                        }
                    }
                    sum
                });
                let mut i = 0u64;
                while i < RING_ITEMS {
                    if q.push(i).is_ok() {
                        i += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
                h.join().unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("crossbeam_channel", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (tx, rx) = crossbeam::channel::bounded::<u64>(1024);
                let t = Instant::now();
                let h = std::thread::spawn(move || {
                    let mut sum = 0u64;
                    for x in rx.iter() {
                        sum = sum.wrapping_add(x);
                    }
                    sum
                });
                for i in 0..RING_ITEMS {
                    tx.send(i).unwrap();
                }
                drop(tx);
                h.join().unwrap();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn receive(c: &mut Criterion) {
    use dataplane::backend::probe::{targets, Sender, PREFILL};
    let mut g = c.benchmark_group("receive");
    g.throughput(Throughput::Elements(PREFILL as u64));
    g.sample_size(30);
    let sender = Sender::new().expect("sender");
    // io_uring, recvmmsg and io_uring in the address mode the node uses
    // for RECEIPTs (multishot recvmsg with a name).
    for mut t in targets().expect("receive queues") {
        g.bench_function(t.name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| sender.prefill_and_drain(&mut t).expect("no kernel drops")).sum())
        });
    }
    g.finish();
}

const FRAMES: usize = 2048;

fn pipeline_vs_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.sample_size(10);
    let frames = bench::unique_frames(FRAMES);
    let path = std::env::temp_dir().join(format!("attnet-bench-{}.pcap", std::process::id()));
    testkit::write_udp_pcap(&path, &frames).unwrap();
    g.bench_function("frame_path_in_memory", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut fp = testkit::relay(1);
                let mut burst = Burst::default();
                let mut ds = frames.clone();
                let t = Instant::now();
                for chunk in ds.chunks_mut(64) {
                    fp.process(chunk, &mut burst);
                }
                total += t.elapsed();
                assert_eq!(burst.counters.txs_accepted as usize, FRAMES);
            }
            total
        })
    });
    g.bench_function("pcap_replay_plus_frame_path", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut fp = testkit::relay(1);
                let mut burst = Burst::default();
                let mut q = PcapReplay::open(&path, 7100, 1).unwrap();
                let t = Instant::now();
                while !q.finished() {
                    q.rx_burst(&mut |bufs: &mut [&mut [u8]]| fp.process(bufs, &mut burst)).unwrap();
                }
                total += t.elapsed();
                assert_eq!(burst.counters.txs_accepted as usize, FRAMES);
            }
            total
        })
    });
    g.bench_function("pipeline_pcap_core", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let q = PcapReplay::open(&path, 7100, 1).unwrap();
                let mut links = Vec::new();
                let mut ends = Vec::new();
                for _ in 0..4 {
                    let (l, e, pool) = pipeline::shard_link(64, 256);
                    links.push((l, pool));
                    ends.push(e);
                }
                let (_bus, mut crx) = pipeline::command_bus(1, 4);
                let core = DataCore::new(CoreSetup {
                    fp: testkit::relay(1),
                    queue: Box::new(q),
                    links,
                    commands: crx.remove(0),
                    sharder: Sharder::new(4),
                    cfg: CoreConfig::default(),
                    epoch: Instant::now(),
                    stop: Arc::new(AtomicBool::new(false)),
                    published: Arc::new(Mutex::new(CoreCounters::default())),
                    exceptions: None,
                });
                let done = Arc::new(AtomicBool::new(false));
                let done2 = done.clone();
                // The shard side: drain and give back, as the control thread does.
                let consumer = std::thread::spawn(move || {
                    let mut n = 0usize;
                    loop {
                        let finished = done2.load(std::sync::atomic::Ordering::Acquire);
                        let mut moved = false;
                        for e in ends.iter_mut() {
                            while let Ok(mut b) = e.from_core.pop() {
                                n += b.len();
                                b.clear();
                                let _ = e.give_back.push(b);
                                moved = true;
                            }
                        }
                        if finished && !moved {
                            return n;
                        }
                        if !moved {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                });
                let t = Instant::now();
                let r = core.run();
                total += t.elapsed();
                done.store(true, std::sync::atomic::Ordering::Release);
                let n = consumer.join().unwrap();
                assert_eq!(n, FRAMES);
                assert_eq!(r.counters.frames.txs_accepted as usize, FRAMES);
            }
            total
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, rings, receive, pipeline_vs_path);
criterion_main!(benches);
