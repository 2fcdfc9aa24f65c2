//! `dpdk-testpmd --forward-mode=rxonly` against `attnet node --backend
//! dpdk` on the same virtual device, lcores and memory ([`testpmd`] also
//! runs `txonly`, the baseline of the generator's DPDK output), plus the full
//! pipeline on unique ATT traffic through `net_pcap` (and, optionally,
//! `net_memif` from a DPDK sender in this process) against the frame path
//! alone on the same frames in memory. Rates are steady-state medians of
//! the once-a-second figures each program prints (testpmd's `Rx-pps`,
//! attnet's live line).
//!
//! As root, [`Hugepages::reserve`] reserves 512 2-MiB hugepages (and mounts
//! hugetlbfs on /dev/hugepages if nothing is mounted there), one benchmark
//! process at a time; dropping it removes the files left under the mount,
//! puts `nr_hugepages` back and unmounts what it mounted. Without hugepages the runs use `--no-huge`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::median;

const NR_HUGEPAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
const HUGE_DIR: &str = "/dev/hugepages";
const WANT_PAGES: u64 = 512;

/// Steady state: drop the first two readings (start-up), keep the rest.
fn steady(v: Vec<f64>) -> f64 {
    median(v.into_iter().skip(2).filter(|x| *x > 0.0).collect())
}

/// Whether DPDK can be measured here: `None` if so, else why not.
pub fn unavailable(attnet: &Path) -> Option<String> {
    if !attnet.exists() {
        return Some(format!("{} not found (cargo build --release -p engine)", attnet.display()));
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("dpdk-testpmd").is_file()))
        .unwrap_or(false);
    if !found {
        return Some("dpdk-testpmd not installed (Debian package dpdk)".into());
    }
    if !ffi::AVAILABLE {
        return Some("this build has no DPDK (ffi built without libdpdk)".into());
    }
    None
}

/// 2-MiB hugepages reserved for the run; released on drop.
pub struct Hugepages {
    pub dir: String,
    before: u64,
    mounted: bool,
    /// Held until the pages are released (dropped after `drop` ran).
    _lock: RunLock,
}

/// One benchmark process at a time reserves hugepages and runs DPDK: a
/// second one would restore `nr_hugepages` or unmount under the first,
/// and share its cores. A file created exclusively, holding the owner's
/// pid; a lock whose owner is gone is taken over.
struct RunLock(PathBuf);

impl RunLock {
    fn acquire() -> Option<RunLock> {
        let path = std::env::temp_dir().join("attnet-bench-dpdk.lock");
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut said = false;
        loop {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    let _ = write!(f, "{}", std::process::id());
                    return Some(RunLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner.trim().parse::<u32>().is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                    if !alive && !owner.is_empty() {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                    if Instant::now() > deadline {
                        return None;
                    }
                    if !said {
                        eprintln!("attnet-bench: waiting for another benchmark's DPDK runs ({})", path.display());
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_nr() -> Option<u64> {
    std::fs::read_to_string(NR_HUGEPAGES).ok()?.trim().parse().ok()
}

impl Hugepages {
    /// Reserves the pages; `None` when that is impossible (not root, no
    /// memory), in which case nothing was changed.
    pub fn reserve() -> Option<Hugepages> {
        let lock = RunLock::acquire()?;
        let before = read_nr()?;
        if before < WANT_PAGES {
            std::fs::write(NR_HUGEPAGES, WANT_PAGES.to_string()).ok()?;
        }
        let mut h = Hugepages { dir: HUGE_DIR.into(), before, mounted: false, _lock: lock };
        if read_nr()? < WANT_PAGES / 2 {
            return None; // drop puts nr_hugepages back
        }
        let mounted = std::fs::read_to_string("/proc/mounts")
            .ok()?
            .lines()
            .any(|l| l.contains("hugetlbfs") && l.contains(HUGE_DIR));
        if !mounted {
            std::fs::create_dir_all(HUGE_DIR).ok()?;
            let ok = Command::new("mount")
                .args(["-t", "hugetlbfs", "nodev", HUGE_DIR])
                .stderr(Stdio::null())
                .status()
                .ok()?
                .success();
            if !ok {
                return None;
            }
            h.mounted = true;
        }
        Some(h)
    }
}

impl Drop for Hugepages {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        if read_nr() != Some(self.before) {
            let _ = std::fs::write(NR_HUGEPAGES, self.before.to_string());
        }
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).stderr(Stdio::null()).status();
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `attnet` binary.
    pub attnet: PathBuf,
    /// Seconds per net_null run.
    pub secs: u64,
    /// Unique single-transaction frames for the full-path rows (0: none).
    pub unique_frames: usize,
    /// Also feed the node over memif from a DPDK sender in this process
    /// (initialises DPDK here; once per process).
    pub memif: bool,
}

/// Results; rates in packets or frames per second.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// How memory was set up.
    pub memory: String,
    pub testpmd_rxonly_pps: f64,
    pub attnet_rx_pps: f64,
    pub attnet_full_null_pps: f64,
    pub unique: Option<Unique>,
}

#[derive(Debug, Clone, Default)]
pub struct Unique {
    pub frames: usize,
    pub in_memory_fps: f64,
    pub pcap_fps: f64,
    pub pcap_busy_secs: usize,
    /// (sent, accepted, frames/s, busy seconds), or why it did not run.
    pub memif: Option<Result<(usize, u64, f64, usize), String>>,
}

/// What dpdk-testpmd forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// `--forward-mode=rxonly`: receive and free; rate from `Rx-pps`.
    RxOnly,
    /// `--forward-mode=txonly --txpkts=LEN`: build and send LEN-byte
    /// frames; rate from `Tx-pps`.
    TxOnly { len: usize },
}

/// Runs dpdk-testpmd for `secs` with one forwarding core and returns its
/// steady-state packets per second.
pub fn testpmd(eal: &[String], secs: u64, mode: Forward) -> Result<f64, String> {
    let (fwd, key) = match mode {
        Forward::RxOnly => (vec!["--forward-mode=rxonly".to_string()], "Rx-pps:"),
        Forward::TxOnly { len } => (vec!["--forward-mode=txonly".to_string(), format!("--txpkts={len}")], "Tx-pps:"),
    };
    let out = Command::new("timeout")
        .arg(secs.to_string())
        .arg("dpdk-testpmd")
        .args(eal)
        .arg("--")
        .args(&fwd)
        .args(["--auto-start", "--stats-period=1", "--nb-cores=1", "--total-num-mbufs=16384"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("dpdk-testpmd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pps: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    let r = steady(pps);
    if r <= 0.0 {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("dpdk-testpmd printed no {key} {}", err.lines().last().unwrap_or("")));
    }
    Ok(r)
}

/// EAL memory arguments: `huge`'s hugepages, or `--no-huge` without.
pub fn memory_args(huge: Option<&Hugepages>) -> Vec<String> {
    match huge {
        Some(h) => vec!["--huge-dir".into(), h.dir.clone(), "-m".into(), "512".into()],
        None => vec!["--no-huge".into(), "-m".into(), "1024".into()],
    }
}

/// The EAL arguments every DPDK run of the benchmark uses: lcores 0-1
/// (main on CPU 0, the forwarding or data core on CPU 1), `mem`, no PCI,
/// its own file prefix, one virtual device.
pub fn eal_args(mem: &[String], prefix: &str, vdev: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["-l".into(), "0-1".into()];
    a.extend(mem.iter().cloned());
    a.extend(
        [
            "--no-pci",
            "--no-shconf",
            "--log-level=*:error",
            &format!("--file-prefix={prefix}"),
            &format!("--vdev={vdev}"),
        ]
        .map(String::from),
    );
    a
}

/// How memory was set up, for the notes.
pub fn memory_note(huge: Option<&Hugepages>) -> String {
    huge.map_or("--no-huge (no hugepages could be reserved)".to_string(), |h| {
        format!("{WANT_PAGES} 2-MiB hugepages on {}", h.dir)
    })
}

/// A node run's once-a-second Mpps and frames/s readings and its summary.
struct NodeRun {
    mpps: Vec<f64>,
    fps: Vec<f64>,
    summary: serde_json::Value,
}

fn attnet(bin: &Path, eal: &[String], port: &str, secs: u64, extra: &[&str]) -> Result<NodeRun, String> {
    let out = Command::new(bin)
        .args(["node", "--backend", "dpdk", "--dpdk-port", port, "--live", "true", "--busy-poll", "true"])
        .arg(format!("--dpdk-eal={}", eal.join(" ")))
        .args(["--duration", &secs.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let mut mpps = Vec::new();
    let mut fps = Vec::new();
    for l in err.lines().filter(|l| l.contains(" Mpps ")) {
        let w: Vec<&str> = l.split_whitespace().collect();
        if let Some(x) = w.get(1).and_then(|x| x.parse().ok()) {
            mpps.push(x);
        }
        if let Some(i) = w.iter().position(|x| *x == "frames/s") {
            if let Some(x) = i.checked_sub(1).and_then(|i| w.get(i)).and_then(|x| x.parse().ok()) {
                fps.push(x);
            }
        }
    }
    let summary = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("attnet node on {port} failed: {}", err.lines().last().unwrap_or("")))?;
    Ok(NodeRun { mpps, fps, summary })
}

/// The once-a-second frame rates of the seconds the node was busy: at
/// least half the busiest second's (a second that the run started or
/// ended in is only partly busy).
fn busy_seconds(fps: Vec<f64>) -> Vec<f64> {
    let top = fps.iter().copied().fold(0.0f64, f64::max);
    fps.into_iter().filter(|x| *x > 1000.0 && *x >= top / 2.0).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs everything `cfg` asks for. `huge` is the reservation to use (see
/// [`Hugepages::reserve`]); `None` runs with `--no-huge`.
pub fn run(cfg: &Config, huge: Option<&Hugepages>) -> Result<Results, String> {
    let secs = cfg.secs;
    let mem = memory_args(huge);
    let eal = |prefix: &str, vdev: &str| eal_args(&mem, prefix, vdev);
    let mut res = Results { memory: memory_note(huge), ..Results::default() };
    let bin = &cfg.attnet;
    res.testpmd_rxonly_pps = testpmd(&eal("bench-tp", "net_null0"), secs, Forward::RxOnly)?;
    let rx = attnet(bin, &eal("bench-rx", "net_null0"), "net_null0", secs, &["--stop-after", "rx"])?;
    if rx.summary["packets"]["nic"]["ipackets"] != rx.summary["packets"]["received"] {
        return Err(format!("attnet --stop-after rx: nic.ipackets != packets.received: {}", rx.summary));
    }
    res.attnet_rx_pps = steady(rx.mpps) * 1e6;
    let full = attnet(bin, &eal("bench-fn", "net_null0"), "net_null0", secs, &[])?;
    res.attnet_full_null_pps = steady(full.mpps) * 1e6;
    if cfg.unique_frames == 0 {
        return Ok(res);
    }

    // Full path on unique traffic: every frame a fresh counter, every
    // transaction new (signing is the slow part of building the file).
    let n = cfg.unique_frames;
    let dir = std::env::temp_dir().join(format!("attnet-dpdk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = unique_rows(cfg, &dir, n, &eal, &mem);
    let _ = std::fs::remove_dir_all(&dir);
    res.unique = Some(out?);
    Ok(res)
}

fn unique_rows(
    cfg: &Config,
    dir: &Path,
    n: usize,
    eal: &dyn Fn(&str, &str) -> Vec<String>,
    mem: &[String],
) -> Result<Unique, String> {
    let pcap = dir.join("unique.pcap");
    let frames = crate::unique_frames(n);
    dataplane::testkit::write_udp_pcap(&pcap, &frames).map_err(|e| format!("{}: {e}", pcap.display()))?;
    // The foundation's single-core frame path on the same frames, in memory.
    let in_memory_fps = {
        let mut fp = dataplane::testkit::relay(1);
        let mut burst = dataplane::Burst::default();
        let mut ds = frames.clone();
        let t = Instant::now();
        for chunk in ds.chunks_mut(crate::BURST) {
            fp.process(chunk, &mut burst);
        }
        let dt = t.elapsed().as_secs_f64();
        if burst.counters.txs_accepted as usize != n {
            return Err(format!("frame path accepted {} of {n}", burst.counters.txs_accepted));
        }
        n as f64 / dt
    };
    let keys = dir.join("keys.json");
    std::fs::write(
        &keys,
        format!(
            r#"{{"sessions": [{{"id": 1, "c2r": "{}", "r2c": "{}"}}]}}"#,
            hex(&dataplane::testkit::c2r(1)),
            hex(&dataplane::testkit::r2c(1))
        ),
    )
    .map_err(|e| format!("{}: {e}", keys.display()))?;
    let keys = keys.to_string_lossy().into_owned();
    let genesis = dir.join("genesis.json");
    std::fs::write(&genesis, crate::unique_genesis()).map_err(|e| format!("{}: {e}", genesis.display()))?;
    let genesis = genesis.to_string_lossy().into_owned();
    let vdev = format!("net_pcap0,rx_pcap={}", pcap.display());
    let run_secs = (n as u64 / 30_000).max(2) + 3;
    let node_args = ["--keys", &keys, "--genesis", &genesis];
    let r = attnet(&cfg.attnet, &eal("bench-fp", &vdev), "net_pcap0", run_secs, &node_args)?;
    let busy = busy_seconds(r.fps);
    if r.summary["frames"]["accepted"].as_u64() != Some(n as u64) {
        return Err(format!("net_pcap: the node accepted {} of {n} frames", r.summary["frames"]["accepted"]));
    }
    let mut u = Unique { frames: n, in_memory_fps, pcap_busy_secs: busy.len(), pcap_fps: median(busy), memif: None };
    if cfg.memif {
        u.memif = Some(memif(cfg, dir, &frames, eal, mem, run_secs + 2, &node_args));
    }
    Ok(u)
}

/// The same unique frames from a DPDK sender in this process (memif
/// server) to the node (memif client), as fast as the ring takes them.
fn memif(
    cfg: &Config,
    dir: &Path,
    frames: &[Vec<u8>],
    eal: &dyn Fn(&str, &str) -> Vec<String>,
    mem: &[String],
    secs: u64,
    node_args: &[&str],
) -> Result<(usize, u64, f64, usize), String> {
    let sock = dir.join("memif.sock");
    let mut margs: Vec<String> = vec!["attnet-bench".into(), "-l".into(), "0".into()];
    margs.extend(mem.iter().cloned());
    margs.extend([
        "--no-pci".to_string(),
        "--no-shconf".to_string(),
        "--log-level=*:error".to_string(),
        "--file-prefix=bench-ms".to_string(),
        format!("--vdev=net_memif0,role=server,socket={},socket-abstract=no", sock.display()),
    ]);
    let margs_ref: Vec<&str> = margs.iter().map(|s| s.as_str()).collect();
    let eal_s = ffi::Eal::init(&margs_ref).map_err(|e| format!("sender EAL: {e}"))?;
    let pool = ffi::Mempool::new("bench_tx", 8191, 256, ffi::DEFAULT_DATA_ROOM, None)
        .map_err(|e| format!("sender pool: {e}"))?;
    let pcfg = ffi::PortConfig { rx_queues: 1, tx_queues: 1, rss: false, ..ffi::PortConfig::default() };
    let port = ffi::Port::open(&eal_s, "net_memif0", &pcfg, &pool).map_err(|e| format!("memif server port: {e}"))?;
    let mut txq = port.tx_queue(0).map_err(|e| format!("tx queue: {e}"))?;
    let client = format!("net_memif0,role=client,socket={},socket-abstract=no", sock.display());
    let ethernet: Vec<Vec<u8>> = frames.iter().map(|f| dataplane::testkit::udp4_packet(7100, f)).collect();
    let node_eal = eal("bench-mc", &client);
    let reg = eal_s;
    let sender = std::thread::spawn(move || {
        let _ = reg.register_thread();
        let mut sent = 0usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut b = ffi::MbufBurst::new();
        while sent < ethernet.len() && Instant::now() < deadline {
            while b.len() < 32 && sent + b.len() < ethernet.len() {
                let f = &ethernet[sent + b.len()];
                let Some(mut m) = pool.alloc() else { break };
                if let Some(d) = m.append(f.len()) {
                    d.copy_from_slice(f);
                }
                let _ = b.push(m);
            }
            // Unsent mbufs stay in the burst (link not up yet, ring full).
            let k = txq.try_send(&mut b);
            sent += k;
            if k == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        b.clear();
        // The port stays up until the node has drained the ring: closing
        // the server side would drop what is still in it.
        (sent, txq, pool)
    });
    let node = attnet(&cfg.attnet, &node_eal, "net_memif0", secs, node_args);
    let (sent, txq, pool) = sender.join().map_err(|_| "memif sender panicked".to_string())?;
    drop(txq);
    drop(port);
    drop(pool);
    // Releases the hugepage files this process holds.
    let _ = eal_s.cleanup();
    let node = node?;
    let busy = busy_seconds(node.fps);
    let got = node.summary["packets"]["nic"]["ipackets"].as_u64().unwrap_or(0);
    if got as usize != sent {
        return Err(format!("memif: sent {sent}, the node's NIC counted {got}"));
    }
    let accepted = node.summary["frames"]["accepted"].as_u64().unwrap_or(0);
    Ok((sent, accepted, median(busy.clone()), busy.len()))
}
