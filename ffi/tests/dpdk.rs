//! DPDK integration tests on virtual devices. DPDK's EAL initialises once
//! per process, so every DPDK test lives in this one binary and shares one
//! EAL, started on first use with every vdev the tests need declared up
//! front (each test owns its devices: a closed vdev is gone for good).
//!
//! Without DPDK in the build the tests print why and pass, unless
//! `ATTNET_REQUIRE_DPDK` is set (then they fail).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ffi::{Eal, Error, Mbuf, MbufBurst, Mempool, Port, PortConfig, DEFAULT_DATA_ROOM, MAX_BURST};

/// Packets in the capture replayed through `net_pcap0`.
const RX_PACKETS: usize = 200;
/// A frame longer than one mbuf's data room (2048): arrives as a chain.
const JUMBO_LEN: usize = 3000;
/// Index of the jumbo frame in the capture.
const JUMBO_AT: usize = 100;
/// Packets sent through `net_pcap1` in the transmit test.
const TX_PACKETS: usize = 150;

struct Env {
    eal: Eal,
    /// The frames of the capture `net_pcap0` replays, in order.
    rx_frames: Vec<Vec<u8>>,
    /// Where `net_pcap1` writes what it sends.
    tx_out: PathBuf,
}

/// The shared EAL, or `None` (with the reason printed) when this build has
/// no DPDK and none is required.
fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        if ffi::skip_without_dpdk("the DPDK tests") {
            return None;
        }
        Some(start())
    })
    .as_ref()
}

/// Evaluates to the shared environment, or returns from the test.
macro_rules! dpdk {
    () => {
        match env() {
            Some(e) => e,
            None => return,
        }
    };
}

fn start() -> Env {
    remove_stale_dirs();
    let dir = std::env::temp_dir().join(format!("attnet-ffi-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rx_in = dir.join("rx.pcap");
    let tx_out = dir.join("tx.pcap");
    let rx_frames = capture_frames();
    write_pcap(&rx_in, &rx_frames);

    let file_prefix = format!("--file-prefix=attnet-test-{}", std::process::id());
    let pcap0 = format!("--vdev=net_pcap0,rx_pcap={},tx_pcap={}", rx_in.display(), dir.join("tx0.pcap").display());
    let pcap1 = format!("--vdev=net_pcap1,rx_pcap={},tx_pcap={}", dir.join("empty.pcap").display(), tx_out.display());
    write_pcap(&dir.join("empty.pcap"), &[]);
    let args: Vec<&str> = vec![
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-shconf",
        "--iova-mode=va",
        &file_prefix,
        "--log-level=*:error",
        // (a) receive counting and leaks
        "--vdev=net_null0",
        // (d) two receive queues
        "--vdev=net_null1",
        // (c) transmit on a null device; port errors
        "--vdev=net_null2",
        "--vdev=net_null3",
        // (b) replay; (c) transmit into a capture
        &pcap0,
        &pcap1,
    ];
    eprintln!("EAL args: {}", args.join(" "));
    let cpus = allowed_cpus();
    let eal = Eal::init(&args).unwrap_or_else(|e| panic!("EAL init failed: {e}"));
    assert_eq!(allowed_cpus(), cpus, "Eal::init puts back the CPU set rte_eal_init pinned");
    Env { eal, rx_frames, tx_out }
}

/// The calling thread's allowed CPUs, as the kernel lists them.
fn allowed_cpus() -> String {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status.lines().find(|l| l.starts_with("Cpus_allowed_list:")).unwrap().to_string()
}

/// Removes what earlier runs whose process is gone left behind (a test
/// binary has no hook to run after its last test): capture directories,
/// and the EAL's empty runtime directories (`/var/run/dpdk/<file-prefix>`
/// as root, else under `$XDG_RUNTIME_DIR`).
fn remove_stale_dirs() {
    let dead = |pid: &str| pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists();
    let stale = |dir: &Path, prefix: &str| -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries
            .flatten()
            .filter(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(prefix)).is_some_and(dead))
            .map(|e| e.path())
            .collect()
    };
    for d in stale(&std::env::temp_dir(), "attnet-ffi-test-") {
        let _ = std::fs::remove_dir_all(d);
    }
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    for d in ["/var/run".into()].into_iter().chain(xdg).flat_map(|r: PathBuf| stale(&r.join("dpdk"), "attnet-test-")) {
        // Only if empty: the EAL removes its sockets at exit.
        let _ = std::fs::remove_dir(d);
    }
}

/// UDP frames over IPv4, IPv6 and 802.1Q of varied sizes, every one
/// different, with one jumbo frame.
fn capture_frames() -> Vec<Vec<u8>> {
    (0..RX_PACKETS)
        .map(|i| {
            let len = if i == JUMBO_AT { JUMBO_LEN - 42 } else { 18 + (i * 37) % 1400 };
            let payload: Vec<u8> = (0..len).map(|j| (i * 7 + j) as u8).collect();
            let eth = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let (a4, b4) = ([192, 0, 2, 1], [192, 0, 2, 2]);
            let (a6, b6) = (
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            );
            let (sport, mut v) = (40000 + i as u16, Vec::new());
            match if i == JUMBO_AT { 0 } else { i % 3 } {
                0 => eth.ipv4(a4, b4, 64).udp(sport, 7100).write(&mut v, &payload).unwrap(),
                1 => eth.ipv6(a6, b6, 64).udp(sport, 7100).write(&mut v, &payload).unwrap(),
                _ => eth
                    .single_vlan(etherparse::VlanId::try_new(42).unwrap())
                    .ipv4(a4, b4, 64)
                    .udp(sport, 7100)
                    .write(&mut v, &payload)
                    .unwrap(),
            }
            v
        })
        .collect()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    let mut w = PcapWriter::with_header(std::fs::File::create(path).unwrap(), PcapHeader::default()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_micros(i as u64), f.len() as u32, f)).unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// The whole packet, all segments.
fn bytes(m: &Mbuf) -> Vec<u8> {
    m.segments().flatten().copied().collect()
}

/// (a) net_null: about a second of receive bursts; what the queue handed
/// over equals the port's `ipackets`, no mbuf was short, and every mbuf is
/// back in the pool once everything is dropped.
#[test]
fn null_rx_counts_add_up_and_nothing_leaks() {
    let env = dpdk!();
    // An lcore id, so the pool's per-lcore cache is used (and must be
    // counted back too).
    let lcore = env.eal.register_thread().unwrap();
    assert_eq!(env.eal.register_thread().unwrap(), lcore, "registering twice gives the same lcore");
    let pool = Mempool::new("t_null_rx", 4095, 256, DEFAULT_DATA_ROOM, None).unwrap();
    let start_avail = pool.avail();
    assert_eq!(start_avail, pool.capacity());
    let cfg = PortConfig { rx_desc: 512, tx_desc: 512, ..Default::default() };
    let port = Port::open(&env.eal, "net_null0", &cfg, &pool).unwrap();
    assert_eq!(port.info().driver_name, "net_null");
    let mut rxq = port.rx_queue(0).unwrap();

    let mut burst = MbufBurst::new();
    let (mut received, mut bursts) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        let n = rxq.recv_burst(&mut burst);
        assert_eq!(n, burst.len());
        received += n as u64;
        bursts += 1;
        if let Some(m) = burst.as_slice().first() {
            // net_null's default packet: 64 bytes, one segment.
            assert_eq!((m.len(), m.data().len(), m.is_contiguous()), (64, 64, true));
        }
        // Free in bulk, or one by one now and then.
        if bursts % 8 == 0 {
            while let Some(m) = burst.pop() {
                drop(m);
            }
        } else {
            burst.clear();
        }
    }
    assert!(received > 10_000, "net_null delivered only {received} packets in 1 s");
    assert_eq!(rxq.packets(), received);
    let stats = port.stats().unwrap();
    eprintln!("net_null0: {received} packets in {bursts} bursts; {stats:?}");
    assert_eq!(stats.ipackets, received, "port ipackets vs what the queue handed over");
    assert_eq!(stats.rx_nombuf, 0);
    assert_eq!(stats.ierrors, 0);
    if stats.ibytes != 0 {
        assert_eq!(stats.ibytes, received * 64);
    }
    drop(rxq);
    drop(port);
    assert_eq!(pool.avail(), start_avail, "mbufs leaked");
    assert_eq!(pool.in_use(), 0);
}

/// (b) net_pcap: every frame of the capture arrives, byte for byte and in
/// order, and `ipackets` counts them.
#[test]
fn pcap_rx_replays_the_capture_exactly() {
    let env = dpdk!();
    let pool = Mempool::new("t_pcap_rx", 1023, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let port = Port::open(&env.eal, "net_pcap0", &PortConfig { rss: false, ..Default::default() }, &pool).unwrap();
    assert_eq!(port.info().driver_name, "net_pcap");
    let mut rxq = port.rx_queue(0).unwrap();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut burst = MbufBurst::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut idle_polls = 0;
    while Instant::now() < deadline && idle_polls < 1000 {
        if rxq.recv_burst(&mut burst) == 0 {
            idle_polls += 1;
            continue;
        }
        idle_polls = 0;
        for m in burst.iter() {
            let i = got.len();
            if i == JUMBO_AT {
                assert!(!m.is_contiguous(), "a {JUMBO_LEN}-byte frame in 2048-byte mbufs is a chain");
                assert_eq!(m.len(), JUMBO_LEN);
                assert!(m.data().len() < JUMBO_LEN);
                assert_eq!(m.data(), &env.rx_frames[i][..m.data().len()], "first segment");
            } else {
                assert!(m.is_contiguous());
                assert_eq!(m.data().len(), m.len());
            }
            got.push(bytes(m));
        }
        burst.clear();
    }
    assert_eq!(got.len(), env.rx_frames.len(), "frames received");
    for (i, (g, want)) in got.iter().zip(&env.rx_frames).enumerate() {
        assert!(g == want, "frame {i} differs ({} vs {} bytes)", g.len(), want.len());
    }
    let stats = port.stats().unwrap();
    assert_eq!(stats.ipackets, RX_PACKETS as u64);
    assert_eq!(stats.ibytes, env.rx_frames.iter().map(|f| f.len() as u64).sum::<u64>());
    drop(rxq);
    drop(port);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}

/// A UDP frame numbered `i` for the transmit tests.
fn tx_frame(i: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..(20 + i % 300)).map(|j| (i + j) as u8).collect();
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([192, 0, 2, 2], [192, 0, 2, 1], 64)
        .udp(7100, 40000)
        .write(&mut v, &payload)
        .unwrap();
    v
}

/// Builds frames `from..to` into `burst` with alloc + append.
fn fill(pool: &Mempool, burst: &mut MbufBurst, from: usize, to: usize) {
    for i in from..to {
        let mut m = pool.alloc().expect("pool empty");
        let f = tx_frame(i);
        m.append(f.len()).expect("room").copy_from_slice(&f);
        assert_eq!(m.data(), &f[..]);
        burst.push(m).expect("burst full");
    }
}

/// (c) transmit into net_pcap1: `opackets` counts what was sent, the
/// capture it writes holds exactly those frames, and no mbuf leaks.
#[test]
fn pcap_tx_writes_what_was_sent() {
    let env = dpdk!();
    let pool = Mempool::new("t_pcap_tx", 511, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let port = Port::open(&env.eal, "net_pcap1", &PortConfig { rss: false, ..Default::default() }, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let mut burst = MbufBurst::new();
    let mut i = 0;
    while i < TX_PACKETS {
        let to = (i + MAX_BURST).min(TX_PACKETS);
        fill(&pool, &mut burst, i, to);
        let n = burst.len();
        // Retry until the driver took all: the capture must be complete.
        let mut sent = 0;
        while !burst.is_empty() {
            sent += txq.try_send(&mut burst);
        }
        assert_eq!(sent, n);
        i = to;
    }
    assert_eq!(txq.sent(), TX_PACKETS as u64);
    assert_eq!(txq.dropped(), 0);
    let stats = port.stats().unwrap();
    assert_eq!(stats.opackets, TX_PACKETS as u64);
    let want: Vec<Vec<u8>> = (0..TX_PACKETS).map(tx_frame).collect();
    assert_eq!(stats.obytes, want.iter().map(|f| f.len() as u64).sum::<u64>());
    drop(txq);
    drop(port); // closes the capture
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
    let written = read_pcap(&env.tx_out);
    assert_eq!(written.len(), TX_PACKETS);
    assert!(written == want, "the capture differs from what was sent");
}

/// (c) transmit on net_null with `send_burst`: sent + dropped adds up to
/// what was offered, `opackets` equals sent, and every mbuf comes back.
#[test]
fn null_tx_counts_add_up_and_nothing_leaks() {
    let env = dpdk!();
    let pool = Mempool::new("t_null_tx", 1023, 32, DEFAULT_DATA_ROOM, None).unwrap();
    let start = pool.avail();
    let port = Port::open(&env.eal, "net_null2", &PortConfig { tx_queues: 1, ..Default::default() }, &pool).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let mut burst = MbufBurst::new();
    let mut offered = 0u64;
    for round in 0..100 {
        if round % 2 == 0 {
            assert!(pool.alloc_bulk(&mut burst, MAX_BURST));
            for m in burst.iter_mut() {
                m.append(60).unwrap().fill(round as u8);
            }
        } else {
            fill(&pool, &mut burst, 0, 40);
        }
        offered += burst.len() as u64;
        txq.send_burst(&mut burst);
        assert!(burst.is_empty());
    }
    assert_eq!(txq.sent() + txq.dropped(), offered);
    assert_eq!(port.stats().unwrap().opackets, txq.sent());
    drop(txq);
    drop(port);
    assert_eq!(pool.avail(), start, "mbufs leaked");
}

/// (d) net_null1 with two receive queues, each polled by its own
/// registered thread: both deliver, and together they make `ipackets`.
#[test]
fn null_two_rx_queues_both_deliver() {
    let env = dpdk!();
    let pool = Mempool::new("t_null_2q", 4095, 64, DEFAULT_DATA_ROOM, None).unwrap();
    let cfg = PortConfig { rx_queues: 2, tx_queues: 1, rx_desc: 256, tx_desc: 256, rss: true, promiscuous: true };
    let port = Port::open(&env.eal, "net_null1", &cfg, &pool).unwrap();
    assert!(port.info().max_rx_queues >= 2);
    eprintln!("net_null1: {:?}", port.info());
    let queues = [port.rx_queue(0).unwrap(), port.rx_queue(1).unwrap()];
    let eal = env.eal;
    let counts: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = queues
            .into_iter()
            .map(|mut q| {
                s.spawn(move || {
                    let lcore = eal.register_thread().unwrap();
                    let mut burst = MbufBurst::new();
                    let deadline = Instant::now() + Duration::from_millis(300);
                    while Instant::now() < deadline {
                        q.recv_burst(&mut burst);
                        burst.clear();
                    }
                    eprintln!("queue {} on lcore {lcore}: {} packets", q.queue(), q.packets());
                    q.packets()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(counts.iter().all(|&c| c > 0), "a queue delivered nothing: {counts:?}");
    assert_eq!(port.stats().unwrap().ipackets, counts.iter().sum::<u64>());
    drop(port);
    assert_eq!(pool.in_use(), 0, "mbufs leaked");
}

/// Init is once per process: the same arguments give the same handle,
/// others a clear error; registered threads get distinct lcore ids.
#[test]
fn eal_is_initialised_once() {
    let env = dpdk!();
    let args: Vec<&str> = env.eal.args().iter().map(String::as_str).collect();
    assert_eq!(Eal::init(&args).unwrap(), env.eal);
    assert_eq!(Eal::get(), Some(env.eal));
    match Eal::init(&["--no-huge"]) {
        Err(Error::AlreadyInitialized { args: first }) => assert_eq!(first, env.eal.args()),
        other => panic!("second init with other args: {other:?}"),
    }
    // While this thread holds its lcore id, another thread gets another.
    let here = env.eal.register_thread().unwrap();
    let there = std::thread::spawn(move || env.eal.register_thread().unwrap()).join().unwrap();
    assert_ne!(here, there);
    assert_eq!(env.eal.lcore_id(), Some(here));
    // Every vdev declared is a port until its test closes it.
    assert!(env.eal.ports().iter().all(|(_, name)| name.starts_with("net_")));
    assert!(ffi::dpdk_version().unwrap().contains("22.11"));
}

/// Opening and queue mistakes are errors, not crashes: unknown ports, a
/// port opened twice, a queue taken twice or out of range, more queues
/// than the driver has; an mbuf refuses to grow past its room; cleanup is
/// refused while pools live.
#[test]
fn misuse_is_an_error() {
    let env = dpdk!();
    let pool = Mempool::new("t_misuse", 511, 0, DEFAULT_DATA_ROOM, None).unwrap();
    let cfg = PortConfig::default();
    assert!(matches!(Port::open(&env.eal, "net_nosuch9", &cfg, &pool), Err(Error::NoSuchPort(_))));
    assert!(matches!(Port::open(&env.eal, 999u16, &cfg, &pool), Err(Error::NoSuchPort(_))));
    let too_many = PortConfig { rx_queues: 4096, ..cfg };
    assert!(matches!(Port::open(&env.eal, "net_null3", &too_many, &pool), Err(Error::InvalidArgument(_))));
    let port = Port::open(&env.eal, "net_null3", &cfg, &pool).unwrap();
    let by_id = Port::open(&env.eal, port.id(), &cfg, &pool);
    assert!(matches!(by_id, Err(Error::Busy(_))), "{by_id:?}");
    let q = port.rx_queue(0).unwrap();
    assert!(matches!(port.rx_queue(0), Err(Error::Busy(_))));
    assert!(matches!(port.rx_queue(1), Err(Error::InvalidArgument(_))));
    assert!(matches!(port.tx_queue(7), Err(Error::InvalidArgument(_))));
    drop(q);

    let mut m = pool.alloc().unwrap();
    assert!(m.is_empty());
    let room = m.tailroom();
    assert_eq!(room, 2048);
    assert!(m.append(room + 1).is_none());
    assert!(m.is_empty());
    m.append(10).unwrap().copy_from_slice(b"0123456789");
    m.data_mut()[0] = b'x';
    assert_eq!(m.data(), b"x123456789");
    assert_eq!(pool.in_use(), 1);
    drop(m);

    // Errors carry rte_strerror(rte_errno).
    let long = Mempool::new("t_a_name_of_26_bytes_long_", 63, 0, DEFAULT_DATA_ROOM, None).unwrap_err();
    assert!(matches!(&long, Error::Dpdk { code: 36, message, .. } if message == "File name too long"), "{long}");
    let dup = Mempool::new("t_misuse", 511, 0, DEFAULT_DATA_ROOM, None);
    assert!(matches!(dup, Err(Error::Dpdk { .. })), "{dup:?}");
    eprintln!("duplicate pool name: {}", dup.unwrap_err());
    assert!(matches!(env.eal.cleanup(), Err(Error::Busy(_))));
    drop(port);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(ffi::leaked_mempools(), 0);
}
