//! A data core on the real pcap backend: a full shard ring, a core that
//! sees only garbage, and a session installed at run time through the
//! control→core ring. Nothing panics or stalls, and every frame and
//! transaction is counted.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dataplane::backend::pcap::PcapReplay;
use dataplane::pipeline::{self, Command, CoreConfig, CoreCounters, CoreSetup, DataCore, Sharder};
use dataplane::replay::ReplayWindow;
use dataplane::session::{Role, RxKey, Session};
use dataplane::{testkit, DropReason, FramePath, TxDrop};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("attnet-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

struct Run {
    counters: CoreCounters,
    /// Transactions that reached the shard ends.
    delivered: usize,
}

/// Runs one data core over `payloads` with `shards` rings of `depth`
/// batches; `drain` says whether the shard side empties its rings (after
/// the core stops, as a stalled control thread would).
fn run_core(name: &str, payloads: &[Vec<u8>], fp: FramePath, depth: usize, commands: Vec<Command>) -> Run {
    run_core_with(name, payloads, fp, depth, commands, false, CoreConfig::default())
}

/// As [`run_core`]; with `slow_drain` a shard-side thread empties the
/// rings while the core runs, pausing 3 ms between rounds (a control
/// thread that keeps being descheduled).
fn run_core_with(
    name: &str,
    payloads: &[Vec<u8>],
    fp: FramePath,
    depth: usize,
    commands: Vec<Command>,
    slow_drain: bool,
    cfg: CoreConfig,
) -> Run {
    let path = tmp(name);
    testkit::write_udp_pcap(&path, payloads).unwrap();
    let q = PcapReplay::open(&path, 7100, 1).unwrap();
    let mut links = Vec::new();
    let mut ends = Vec::new();
    for _ in 0..2 {
        let (l, e, pool) = pipeline::shard_link(depth, 8);
        links.push((l, pool));
        ends.push(e);
    }
    let (mut bus, mut crx) = pipeline::command_bus(1, 16);
    for c in commands {
        bus.send(c).unwrap();
    }
    let published = Arc::new(Mutex::new(CoreCounters::default()));
    let core = DataCore::new(CoreSetup {
        fp,
        queue: Box::new(q),
        links,
        commands: crx.remove(0),
        sharder: Sharder::new(2),
        cfg,
        epoch: Instant::now(),
        stop: Arc::new(AtomicBool::new(false)),
        published: published.clone(),
        exceptions: None,
    });
    // The core ends by itself when the capture is done, full rings or not.
    let core = std::thread::spawn(move || core.run());
    let mut delivered = 0;
    if slow_drain {
        while !core.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(3));
            for e in ends.iter_mut() {
                while let Ok(mut b) = e.from_core.pop() {
                    delivered += b.len();
                    b.clear();
                    let _ = e.give_back.push(b);
                }
            }
        }
    }
    let report = core.join().unwrap();
    for e in ends.iter_mut() {
        while let Ok(b) = e.from_core.pop() {
            delivered += b.len();
        }
    }
    assert_eq!(published.lock().unwrap().frames, report.counters.frames, "published == final");
    Run { counters: report.counters, delivered }
}

#[test]
fn full_rings_drop_batches_as_ring_full_and_count_them() {
    // 300 single-tx frames from 300 accounts: several bursts of 64, rings
    // of one batch that nobody drains.
    let payloads: Vec<Vec<u8>> = (0..300u64)
        .map(|i| {
            let (t, _) = testkit::txs((i % 250) as u8, 1, i as usize % 7, 1);
            testkit::frame(1, i, &t, i % 2 == 0)
        })
        .collect();
    let r = run_core("full.pcap", &payloads, testkit::relay(1), 1, vec![]);
    let f = &r.counters.frames;
    assert!(f.balanced(), "{f:?}");
    assert_eq!(f.frames_received, 300);
    assert_eq!(f.frames_accepted, 300);
    let full = f.tx_drop(TxDrop::RingFull);
    let dup = f.tx_drop(TxDrop::Duplicate);
    assert!(full > 0, "rings of one batch must overflow");
    assert_eq!(f.txs_accepted as usize, r.delivered, "accepted == handed to a shard");
    assert_eq!(f.txs_seen, f.txs_accepted + full + dup);
    assert_eq!(r.counters.rx_packets, 300);
}

#[test]
fn a_slowly_drained_ring_holds_batches_back_instead_of_dropping() {
    // 600 distinct single-tx frames, rings of one batch, a shard side that
    // only drains every 3 ms: batches wait (and grow) instead of dropping.
    let payloads: Vec<Vec<u8>> = (0..600u64)
        .map(|i| {
            let (t, _) = testkit::txs((i % 250) as u8, 1, (i / 250) as usize, 1);
            testkit::frame(1, i + 1, &t, false)
        })
        .collect();
    let r = run_core_with("slow.pcap", &payloads, testkit::relay(1), 1, vec![], true, CoreConfig::default());
    let f = &r.counters.frames;
    assert!(f.balanced(), "{f:?}");
    assert_eq!(f.tx_drop(TxDrop::RingFull), 0, "{f:?}");
    assert_eq!(f.txs_accepted as usize, r.delivered, "accepted == handed to a shard");
    assert_eq!(f.txs_accepted, 600, "{f:?}");
}

/// An offline source waits for the control thread: 3000 distinct
/// single-transaction frames through rings of one batch lose transactions
/// as `ring_full` on a live core whose rings nobody drains (held batches
/// outgrow HOLD_MAX_TXS), and none on a lossless core whose rings are
/// drained only every 3 ms.
#[test]
fn a_lossless_core_waits_for_full_rings_instead_of_dropping() {
    let payloads: Vec<Vec<u8>> = (0..3000u64)
        .map(|i| {
            let (t, _) = testkit::txs((i % 250) as u8, 1, (i / 250) as usize, 1);
            testkit::frame(1, i + 1, &t, false)
        })
        .collect();
    let live = run_core_with("live.pcap", &payloads, testkit::relay(1), 1, vec![], false, CoreConfig::default());
    let f = &live.counters.frames;
    assert!(f.balanced(), "{f:?}");
    assert!(f.tx_drop(TxDrop::RingFull) > 0, "the live core should have dropped: {f:?}");
    let cfg = CoreConfig { lossless: true, ..CoreConfig::default() };
    let offline = run_core_with("offline.pcap", &payloads, testkit::relay(1), 1, vec![], true, cfg);
    let f = &offline.counters.frames;
    assert!(f.balanced(), "{f:?}");
    assert_eq!(f.tx_drop(TxDrop::RingFull), 0, "{f:?}");
    assert_eq!((f.txs_accepted, offline.delivered), (3000, 3000), "{f:?}");
}

#[test]
fn a_core_that_sees_only_garbage_counts_it_all() {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let payloads: Vec<Vec<u8>> = (0..500)
        .map(|i| {
            let len = 1 + (i * 37) % 1400;
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 24) as u8
                })
                .collect()
        })
        .collect();
    let r = run_core("garbage.pcap", &payloads, testkit::relay(1), 4, vec![]);
    let f = &r.counters.frames;
    assert!(f.balanced());
    assert_eq!(f.frames_accepted, 0);
    assert!(f.frames_received >= 500);
    assert_eq!(r.counters.rx_packets, 500);
    assert_eq!(r.delivered, 0);
}

#[test]
fn sessions_installed_through_the_command_ring() {
    let (t, _) = testkit::txs(7, 2, 3, 1);
    let payloads = vec![testkit::frame(9, 1, &t[..1], false), testkit::frame(9, 2, &t[1..], true)];
    // Without the session: unknown_session.
    let r = run_core("nosession.pcap", &payloads, FramePath::new(1, dataplane::testkit::TEST_SEED), 4, vec![]);
    assert_eq!(r.counters.frames.frame_drop(DropReason::UnknownSession), 2);
    // Installed between bursts by the control plane.
    let relay = Session::new(Role::Relay, 9, &testkit::c2r(9), &testkit::r2c(9), 0).unwrap();
    let install = Command::Install(relay.rx);
    let r = run_core("session.pcap", &payloads, FramePath::new(1, dataplane::testkit::TEST_SEED), 4, vec![install]);
    assert_eq!(r.counters.frames.frames_accepted, 2);
    assert_eq!(r.delivered, 2);
}

/// The same frames reach two cores (a replay sent from another source
/// port is hashed to another queue): each core has its own session table
/// with its own key schedule, the replay window is shared, and every
/// counter is accepted exactly once in total.
#[test]
fn one_frame_on_two_cores_is_accepted_once() {
    let window = Arc::new(ReplayWindow::new());
    let (t, _) = testkit::txs(3, 1, 0, 1);
    let frames: Vec<Vec<u8>> = (0..400u64).map(|c| testkit::frame(2, c, &t, c % 2 == 0)).collect();
    let run = |frames: Vec<Vec<u8>>, window: Arc<ReplayWindow>| {
        std::thread::spawn(move || {
            let mut fp = FramePath::new(1, dataplane::testkit::TEST_SEED);
            fp.sessions.install_rx(&RxKey { id: 2, key: testkit::c2r(2), window, generation: 0 });
            let mut burst = dataplane::Burst::default();
            let mut accepted = Vec::new();
            for mut f in frames {
                fp.process(std::slice::from_mut(&mut f), &mut burst);
                assert!(burst.counters.balanced());
                accepted.push(burst.frames[0].verdict.is_ok());
            }
            (accepted, burst.counters)
        })
    };
    let a = run(frames.clone(), window.clone());
    let b = run(frames, window);
    let (ra, ca) = a.join().unwrap();
    let (rb, cb) = b.join().unwrap();
    for (i, (x, y)) in ra.iter().zip(&rb).enumerate() {
        assert!(x ^ y, "frame {i}: accepted on {} cores", *x as u8 + *y as u8);
    }
    assert_eq!(ca.frames_accepted + cb.frames_accepted, 400);
    assert_eq!(ca.frame_drop(DropReason::Replay) + cb.frame_drop(DropReason::Replay), 400);
}

/// As above with bursts of 32: two cores judging the same frames in
/// bursts at once accept every counter exactly once in total.
#[test]
fn one_frame_on_two_cores_in_bursts_is_accepted_once() {
    let window = Arc::new(ReplayWindow::new());
    let (t, _) = testkit::txs(3, 1, 0, 1);
    // Fewer counters than the window: none can fall out of it, so each
    // is accepted on exactly one core.
    let frames: Vec<Vec<u8>> = (0..2000u64).map(|c| testkit::frame(2, c, &t, c % 3 == 0)).collect();
    // Both cores start together, so their bursts overlap.
    let start = Arc::new(std::sync::Barrier::new(2));
    let run = |frames: Vec<Vec<u8>>, window: Arc<ReplayWindow>, start: Arc<std::sync::Barrier>| {
        std::thread::spawn(move || {
            let mut fp = FramePath::new(1, dataplane::testkit::TEST_SEED);
            fp.sessions.install_rx(&RxKey { id: 2, key: testkit::c2r(2), window, generation: 0 });
            let mut burst = dataplane::Burst::default();
            let mut accepted = Vec::new();
            start.wait();
            for chunk in frames.chunks(32) {
                let mut chunk = chunk.to_vec();
                fp.process(&mut chunk, &mut burst);
                assert!(burst.counters.balanced());
                // Accepted as a frame (its transaction may be a copy of
                // the one an earlier frame of the burst carried).
                accepted.extend(burst.frames.iter().map(|f| !matches!(f.verdict, dataplane::Verdict::Dropped(_))));
            }
            (accepted, burst.counters)
        })
    };
    let a = run(frames.clone(), window.clone(), start.clone());
    let b = run(frames, window, start);
    let (ra, ca) = a.join().unwrap();
    let (rb, cb) = b.join().unwrap();
    assert_eq!(ra.len(), 2000);
    for (i, (x, y)) in ra.iter().zip(&rb).enumerate() {
        assert!(x ^ y, "frame {i}: accepted on {} cores", *x as u8 + *y as u8);
    }
    assert_eq!(ca.frames_accepted + cb.frames_accepted, 2000);
    assert_eq!(ca.frame_drop(DropReason::Replay) + cb.frame_drop(DropReason::Replay), 2000);
}

/// A queue that hands over one burst of datagrams with the given source
/// addresses, then is finished.
struct Scripted {
    datagrams: Vec<Vec<u8>>,
    peers: Vec<dataplane::backend::Peer>,
    done: bool,
}

impl dataplane::backend::RxQueue for Scripted {
    fn rx_burst_peers(&mut self, f: &mut dataplane::backend::BurstFn<'_>) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        self.done = true;
        let mut bufs: Vec<&mut [u8]> = self.datagrams.iter_mut().map(|d| &mut d[..]).collect();
        f(&mut bufs, &self.peers);
        Ok(bufs.len())
    }

    fn wait(&mut self, _: std::time::Duration) -> std::io::Result<()> {
        Ok(())
    }

    fn stats(&self) -> dataplane::backend::QueueStats {
        dataplane::backend::QueueStats {
            packets: self.datagrams.len() as u64,
            finished: self.done,
            ..Default::default()
        }
    }
}

/// Every transaction reaches its shard with the session and channel of its
/// frame and the source address of its datagram; a datagram with two frames
/// of two sessions routes each frame's transactions to its own session, and
/// a batch stores a route once per run of transactions that share it.
#[test]
fn transactions_carry_their_route() {
    use dataplane::backend::Peer;
    use dataplane::pipeline::Route;
    let a: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let b: std::net::SocketAddr = "[::1]:40002".parse().unwrap();
    // Datagram 0 from a: session 1 on 1004 (two txs), then session 2 on 1005
    // (one tx). Datagram 1 from b: session 3 on 1004 (three txs). Datagram 2
    // carries no address.
    let (t1, id1) = testkit::txs(1, 2, 0, 1);
    let (t2, id2) = testkit::txs(2, 1, 5, 1);
    let (t3, id3) = testkit::txs(3, 3, 9, 1);
    let (t4, id4) = testkit::txs(4, 1, 0, 1);
    let mut d0 = testkit::frame_on(1004, 1, 1, &t1, false);
    d0.extend(testkit::frame_on(1005, 2, 1, &t2, true));
    let d1 = testkit::frame_on(1004, 3, 1, &t3, false);
    let d2 = testkit::frame_on(1005, 4, 1, &t4, false);
    let want: Vec<([u8; 32], Route)> = id1
        .iter()
        .map(|id| (*id, Route { session: 1, channel: 1004, peer: Peer::from(a), generation: 0 }))
        .chain(id2.iter().map(|id| (*id, Route { session: 2, channel: 1005, peer: Peer::from(a), generation: 0 })))
        .chain(id3.iter().map(|id| (*id, Route { session: 3, channel: 1004, peer: Peer::from(b), generation: 0 })))
        .chain(id4.iter().map(|id| (*id, Route { session: 4, channel: 1005, peer: Peer::NONE, generation: 0 })))
        .collect();
    let q =
        Scripted { datagrams: vec![d0, d1, d2], peers: vec![Peer::from(a), Peer::from(b), Peer::NONE], done: false };
    // One shard, so every transaction lands in one batch in order.
    let (l, mut e, pool) = pipeline::shard_link(4, 8);
    let (_bus, mut crx) = pipeline::command_bus(1, 4);
    let core = DataCore::new(CoreSetup {
        fp: testkit::relay(1),
        queue: Box::new(q),
        links: vec![(l, pool)],
        commands: crx.remove(0),
        sharder: Sharder::new(1),
        cfg: CoreConfig::default(),
        epoch: Instant::now(),
        stop: Arc::new(AtomicBool::new(false)),
        published: Arc::new(Mutex::new(CoreCounters::default())),
        exceptions: None,
    });
    let report = std::thread::spawn(move || core.run()).join().unwrap();
    assert_eq!(report.counters.frames.txs_accepted, 7);
    let batch = e.from_core.pop().expect("one batch");
    assert!(e.from_core.pop().is_err(), "one burst, one shard: one batch");
    let got: Vec<([u8; 32], Route)> = batch.txs.iter().map(|t| (t.id, batch.route(t).expect("routed"))).collect();
    assert_eq!(got, want);
    assert_eq!(batch.routes.len(), 4, "one stored route per run: {:?}", batch.routes);
    assert_eq!(std::mem::size_of::<dataplane::pipeline::ShardTx>(), 56);
}

/// The control thread's command ring on two running cores polling real
/// sockets: a session installed while they run is live on both once both
/// have acknowledged its sequence number, and its first frames are accepted
/// on whichever core the kernel hands them to; removed, its frames are
/// unknown again. Every frame is counted.
#[test]
fn sessions_installed_and_removed_on_two_running_cores() {
    use dataplane::backend::recvmmsg::RecvmmsgQueue;
    use dataplane::backend::UdpConfig;
    use std::net::UdpSocket;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    let udp = UdpConfig { listen: "127.0.0.1:0".parse().unwrap(), queues: 2, rcvbuf: 1 << 20 };
    let queues = RecvmmsgQueue::open(&udp).unwrap();
    let addr = queues[0].local_addr();
    let (mut bus, crxs) = pipeline::command_bus(2, 16);
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let mut published = Vec::new();
    let mut threads = Vec::new();
    let mut ends = Vec::new();
    for (q, commands) in queues.into_iter().zip(crxs) {
        let (l, e, pool) = pipeline::shard_link(64, 64);
        ends.push(e);
        let p = Arc::new(Mutex::new(CoreCounters::default()));
        published.push(p.clone());
        let core = DataCore::new(CoreSetup {
            fp: FramePath::new(1, testkit::TEST_SEED),
            queue: Box::new(q),
            links: vec![(l, pool)],
            commands,
            sharder: Sharder::new(1),
            cfg: CoreConfig {
                idle_wait: Duration::from_millis(1),
                publish_every: Duration::from_millis(1),
                ..CoreConfig::default()
            },
            epoch,
            stop: stop.clone(),
            published: p,
            exceptions: None,
        });
        threads.push(std::thread::spawn(move || core.run()));
    }
    let per_core = |published: &[Arc<Mutex<CoreCounters>>]| -> Vec<CoreCounters> {
        published.iter().map(|p| *p.lock().unwrap()).collect()
    };
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let until = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let received = |published: &[Arc<Mutex<CoreCounters>>]| -> u64 {
        per_core(published).iter().map(|c| c.frames.frames_received).sum()
    };
    // Sixteen senders: sixteen source ports, spread by the kernel over the
    // two sockets of the SO_REUSEPORT group.
    let senders: Vec<UdpSocket> = (0..16).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let (t, _) = testkit::txs(21, 18, 0, 1);
    let frame = |counter: u64| testkit::frame(9, counter, &t[counter as usize..counter as usize + 1], false);

    // Not installed yet: unknown_session.
    senders[0].send_to(&frame(0), addr).unwrap();
    wait_for("the first frame", &|| received(&published) == 1);
    let sum = |cs: &[CoreCounters], f: &dyn Fn(&CoreCounters) -> u64| cs.iter().map(f).sum::<u64>();
    let cs = per_core(&published);
    assert_eq!(sum(&cs, &|c| c.frames.frame_drop(DropReason::UnknownSession)), 1);

    // Installed at run time; acknowledged by both cores.
    let relay = Session::new(Role::Relay, 9, &testkit::c2r(9), &testkit::r2c(9), 0).unwrap();
    let (rx, _sealer) = relay.split();
    let seq = bus.install(&rx).unwrap();
    wait_for("both cores to apply the install", &|| bus.applied_by_all(seq));
    assert_eq!((bus.applied(0), bus.applied(1)), (seq, seq));
    for (i, s) in senders.iter().enumerate() {
        s.send_to(&frame(1 + i as u64), addr).unwrap();
    }
    wait_for("sixteen more frames", &|| received(&published) == 17);
    let cs = per_core(&published);
    assert_eq!(sum(&cs, &|c| c.frames.frames_accepted), 16, "{cs:?}");
    for (i, c) in cs.iter().enumerate() {
        assert!(c.frames.frames_accepted >= 1, "core {i} accepted none of the session's first frames: {cs:?}");
    }

    // Removed: the next frame is unknown again, whichever core gets it.
    let seq = bus.remove(9).unwrap();
    wait_for("both cores to apply the removal", &|| bus.applied_by_all(seq));
    senders[3].send_to(&frame(17), addr).unwrap();
    wait_for("the last frame", &|| received(&published) == 18);
    stop.store(true, Ordering::Relaxed);
    let mut total = CoreCounters::default();
    for h in threads {
        total.add(&h.join().unwrap().counters);
    }
    let f = &total.frames;
    assert!(f.balanced());
    assert_eq!(f.frames_received, 18);
    assert_eq!(f.frames_accepted, 16);
    assert_eq!(f.frame_drop(DropReason::UnknownSession), 2);
    let delivered: usize =
        ends.iter_mut().map(|e| std::iter::from_fn(|| e.from_core.pop().ok()).map(|b| b.len()).sum::<usize>()).sum();
    assert_eq!(delivered, 16);
}
