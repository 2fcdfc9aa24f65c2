//! `attnet doctor`: checks the host before the operator blames the node.
//!
//! Each finding says what was found, what it means for attnet, and the
//! command that fixes it. Files are read under a root (`/` by default;
//! `--root DIR` points at a copy of `/proc` and `/sys` files, which is how
//! the tests show cases this machine cannot). The live probes (an
//! io_uring ring, the clock's synchronisation, the data directory's free
//! space, the DPDK library) run only against the real root.
//!
//! Exit code: 0 when every finding is ok or informational, 1 with
//! warnings, 2 with errors (see `docs/OPERATIONS.md`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::json;

/// `attnet doctor`'s arguments.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// The node's configuration file: its `cores`, `pin`, `rcvbuf`,
    /// `backend` and `data_dir` are checked against the host.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The data directory to check (free space, filesystem); overrides the
    /// configuration's.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// One JSON document on stdout instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// An installed service unit (e.g. /etc/systemd/system/attnet.service):
    /// its binary and configuration paths exist, the configuration passes
    /// `check-config`, and its data directory is the unit's state
    /// directory.
    #[arg(long)]
    pub unit: Option<PathBuf>,
    /// Read `proc/` and `sys/` under DIR instead of `/` (fixtures); the
    /// live probes are skipped.
    #[arg(long, hide = true)]
    pub root: Option<PathBuf>,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Info,
    Warn,
    Error,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The check, e.g. `cpu.aes`.
    pub check: &'static str,
    pub level: Level,
    /// What was found.
    pub found: String,
    /// What it means for attnet.
    pub meaning: String,
    /// The command or setting that fixes it (empty when nothing to fix).
    pub fix: String,
}

fn finding(check: &'static str, level: Level, found: impl Into<String>, meaning: impl Into<String>) -> Finding {
    Finding { check, level, found: found.into(), meaning: meaning.into(), fix: String::new() }
}

impl Finding {
    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }
}

/// The node settings the checks compare the host with.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    /// Data cores (default: all CPUs but one).
    pub cores: Option<usize>,
    /// Data cores pinned to CPUs 1..=cores (the node's default).
    pub pin: bool,
    /// The socket receive buffer the node asks for.
    pub rcvbuf: usize,
    /// `dpdk` when the configuration asks for it.
    pub dpdk: bool,
    pub data_dir: Option<PathBuf>,
}

/// Where the checks read the host.
pub struct Host {
    root: PathBuf,
    /// The real root: live probes run.
    live: bool,
}

impl Host {
    pub fn new(root: Option<PathBuf>) -> Host {
        match root {
            Some(r) => Host { root: r, live: false },
            None => Host { root: PathBuf::from("/"), live: true },
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.path(rel)).ok()
    }

    fn read_trim(&self, rel: &str) -> Option<String> {
        self.read(rel).map(|s| s.trim().to_string())
    }

    /// Entry names of a directory, sorted.
    fn list(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(rel))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The last component of a symbolic link's target.
    fn link_name(&self, rel: &str) -> Option<String> {
        let t = std::fs::read_link(self.path(rel)).ok()?;
        t.file_name().map(|n| n.to_string_lossy().into_owned())
    }
}

/// Parses a CPU list such as `1-3,6` (as in `isolcpus=` and sysfs).
pub fn cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // isolcpus flags such as `domain` or `managed_irq` carry no CPUs.
        if let Some((a, b)) = part.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                out.extend(a..=b.min(a + 4096));
            }
        } else if let Ok(c) = part.parse() {
            out.push(c);
        }
    }
    out
}

/// A kernel command line parameter's value (`isolcpus=1,2` → `1,2`).
fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// Runs every check.
pub fn run_checks(h: &Host, w: &Wanted) -> Vec<Finding> {
    let mut out = Vec::new();
    cpu_features(h, &mut out);
    io_uring(h, &mut out);
    limits(h, &mut out);
    socket_buffers(h, w, &mut out);
    hugepages(h, w, &mut out);
    dpdk(h, w, &mut out);
    nics(h, &mut out);
    clock(h, &mut out);
    isolation(h, w, &mut out);
    governor(h, &mut out);
    data_dir(h, w, &mut out);
    out
}

fn cpu_features(h: &Host, out: &mut Vec<Finding>) {
    let info = h.read("proc/cpuinfo").unwrap_or_default();
    let flags = dataplane::host::cpuinfo_flags(&info);
    if flags.is_empty() {
        out.push(finding(
            "cpu.features",
            Level::Warn,
            "no CPU flags in /proc/cpuinfo",
            "the fast paths cannot be checked",
        ));
        return;
    }
    let has = |f: &str| flags.contains(&f);
    out.push(if has("aes") && has("pclmulqdq") {
        finding("cpu.aes", Level::Ok, "AES-NI and CLMUL", "AES-256-GCM runs in hardware")
    } else {
        finding(
            "cpu.aes",
            Level::Error,
            "no AES-NI or CLMUL",
            "AES-256-GCM falls back to software, about 10x slower per frame",
        )
        .fix("run on a CPU (or a VM CPU model) that exposes aes and pclmulqdq, e.g. QEMU -cpu host")
    });
    out.push(if has("avx2") {
        finding("cpu.avx2", Level::Ok, "AVX2", "the x86-64-v3 build baseline is met")
    } else {
        finding("cpu.avx2", Level::Error, "no AVX2", "the release build targets x86-64-v3 and stops with an illegal instruction")
            .fix("run on an x86-64-v3 CPU (Haswell, Zen 1 or later) or rebuild without the target-cpu setting in .cargo/config.toml")
    });
    out.push(if has("sha_ni") {
        finding("cpu.sha_ni", Level::Ok, "SHA-NI", "transaction ids, Ed25519 and the state root hash in hardware")
    } else {
        finding(
            "cpu.sha_ni",
            Level::Info,
            "no SHA-NI",
            "SHA-256 and SHA-512 run on AVX2: transaction ids and roots cost more",
        )
    });
    out.push(if has("vaes") && has("vpclmulqdq") {
        finding("cpu.vaes", Level::Ok, "VAES and VPCLMULQDQ", "AES-GCM processes several blocks per instruction")
    } else {
        finding("cpu.vaes", Level::Info, "no VAES", "AES-GCM uses 128-bit AES-NI (still hardware)")
    });
    out.push(if has("avx512ifma") {
        finding("cpu.avx512ifma", Level::Ok, "AVX-512 IFMA", "batched Ed25519 verification can use the IFMA backend")
    } else {
        finding("cpu.avx512ifma", Level::Info, "no AVX-512 IFMA", "batched Ed25519 verification uses AVX2")
    });
}

fn kernel_version(h: &Host) -> Option<(u32, u32)> {
    let r = h.read_trim("proc/sys/kernel/osrelease")?;
    let mut it = r.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn io_uring(h: &Host, out: &mut Vec<Finding>) {
    let disabled = h.read_trim("proc/sys/kernel/io_uring_disabled").unwrap_or_else(|| "0".into());
    if disabled != "0" {
        out.push(
            finding(
                "io_uring",
                Level::Error,
                format!("kernel.io_uring_disabled = {disabled}"),
                "the io_uring backend cannot open a ring; the node needs --backend recvmmsg or dpdk",
            )
            .fix("sysctl -w kernel.io_uring_disabled=0 (and in /etc/sysctl.d/ to keep it)"),
        );
        return;
    }
    let kernel = kernel_version(h);
    if let Some((maj, min)) = kernel {
        if (maj, min) < (6, 0) {
            out.push(
                finding(
                    "io_uring",
                    Level::Error,
                    format!("Linux {maj}.{min}"),
                    "the io_uring backend needs Linux 6.0 (multishot receive, provided buffer rings)",
                )
                .fix("upgrade the kernel (Debian 12 ships 6.1), or run --backend recvmmsg"),
            );
            return;
        }
    }
    if !h.live {
        let found = kernel.map_or_else(|| "kernel version unknown".to_string(), |(a, b)| format!("Linux {a}.{b}"));
        out.push(finding(
            "io_uring",
            Level::Ok,
            found,
            "the kernel is recent enough (live probe skipped under --root)",
        ));
        return;
    }
    out.push(match dataplane::backend::uring::supported() {
        Ok(flags) => finding(
            "io_uring",
            Level::Ok,
            format!("a ring opens (setup flags {flags}), multishot receive and provided buffers work"),
            "the io_uring backend runs here",
        ),
        Err(e) => finding("io_uring", Level::Error, e.to_string(), "the io_uring backend cannot run here")
            .fix("check seccomp (containers often block io_uring_setup: docker --security-opt seccomp=...) or run --backend recvmmsg"),
    });
}

/// A limit's soft value from `/proc/self/limits` (`None`: unlimited).
fn soft_limit(limits: &str, name: &str) -> Option<Option<u64>> {
    let line = limits.lines().find(|l| l.starts_with(name))?;
    let soft = line.get(name.len()..)?.split_whitespace().next()?;
    Some(if soft == "unlimited" { None } else { soft.parse().ok() })
}

fn limits(h: &Host, out: &mut Vec<Finding>) {
    let Some(l) = h.read("proc/self/limits") else {
        out.push(finding("limits", Level::Warn, "no /proc/self/limits", "the limits cannot be checked"));
        return;
    };
    // Root holds CAP_IPC_LOCK: its locked memory is not limited.
    let root = h
        .read("proc/self/status")
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    match soft_limit(&l, "Max locked memory") {
        Some(None) => {
            out.push(finding("limits.memlock", Level::Ok, "unlimited", "buffer rings and DPDK memory can be locked"))
        }
        Some(Some(b)) if b >= 64 << 20 => {
            out.push(finding("limits.memlock", Level::Ok, format!("{} MiB", b >> 20), "enough for the receive buffers"))
        }
        Some(Some(b)) if root => out.push(finding(
            "limits.memlock",
            Level::Ok,
            format!("{} KiB, running as root", b >> 10),
            "root locks memory regardless (CAP_IPC_LOCK); a service user would be held to this limit",
        )),
        Some(Some(b)) => out.push(
            finding(
                "limits.memlock",
                Level::Warn,
                format!("{} KiB", b >> 10),
                "io_uring buffer rings and DPDK lock memory; many cores or buffers may fail to register",
            )
            .fix("ulimit -l unlimited, or LimitMEMLOCK=infinity in the service unit"),
        ),
        None => {}
    }
    match soft_limit(&l, "Max open files") {
        Some(Some(n)) if n < 4096 => out.push(
            finding(
                "limits.nofile",
                Level::Warn,
                format!("{n}"),
                "each admin connection, segment and socket takes a file",
            )
            .fix("ulimit -n 1048576, or LimitNOFILE=1048576 in the service unit"),
        ),
        Some(n) => out.push(finding(
            "limits.nofile",
            Level::Ok,
            n.map_or_else(|| "unlimited".into(), |n| n.to_string()),
            "enough open files",
        )),
        None => {}
    }
}

fn socket_buffers(h: &Host, w: &Wanted, out: &mut Vec<Finding>) {
    let Some(max) = h.read_trim("proc/sys/net/core/rmem_max").and_then(|s| s.parse::<usize>().ok()) else { return };
    out.push(if max >= w.rcvbuf {
        finding(
            "net.rmem_max",
            Level::Ok,
            format!("{max}"),
            format!("the node's rcvbuf of {} bytes is granted", w.rcvbuf),
        )
    } else {
        finding(
            "net.rmem_max",
            Level::Warn,
            format!("{max}"),
            format!(
                "the node asks for rcvbuf {} bytes and gets {max} (the kernel caps it): bursts overflow the socket \
                 (packets.kernel_dropped)",
                w.rcvbuf
            ),
        )
        .fix(format!("sysctl -w net.core.rmem_max={} (and in /etc/sysctl.d/)", w.rcvbuf))
    });
}

fn hugepages(h: &Host, w: &Wanted, out: &mut Vec<Finding>) {
    let meminfo = h.read("proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> Option<u64> {
        meminfo.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("HugePages_Total:").unwrap_or(0);
    let size_kb = field("Hugepagesize:").unwrap_or(2048);
    let mounted =
        h.read("proc/mounts").unwrap_or_default().lines().any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"));
    let nodes: Vec<String> = h
        .list("sys/devices/system/node")
        .into_iter()
        .filter(|n| n.starts_with("node"))
        .map(|n| {
            let p = format!("sys/devices/system/node/{n}/hugepages/hugepages-{size_kb}kB/nr_hugepages");
            format!("{n}: {}", h.read_trim(&p).unwrap_or_else(|| "?".into()))
        })
        .collect();
    let found = format!(
        "{total} pages of {size_kb} kB{}{}",
        if nodes.is_empty() { String::new() } else { format!(" ({})", nodes.join(", ")) },
        if mounted { ", hugetlbfs mounted" } else { ", no hugetlbfs mount" }
    );
    let level = if w.dpdk { Level::Error } else { Level::Info };
    out.push(if total > 0 && mounted {
        finding("hugepages", Level::Ok, found, "DPDK can allocate its memory from hugepages")
    } else {
        finding("hugepages", level, found, "the DPDK backend needs hugepages (io_uring and recvmmsg do not)").fix(
            format!(
                "echo 1024 > /sys/kernel/mm/hugepages/hugepages-{size_kb}kB/nr_hugepages; mkdir -p /dev/hugepages; \
             mount -t hugetlbfs nodev /dev/hugepages"
            ),
        )
    });
}

fn dpdk(h: &Host, w: &Wanted, out: &mut Vec<Finding>) {
    if !h.live {
        return;
    }
    out.push(match ffi::dpdk_version() {
        Some(v) => finding("dpdk", Level::Ok, v.to_string(), "this build runs the DPDK backend"),
        None => finding(
            "dpdk",
            if w.dpdk { Level::Error } else { Level::Info },
            ffi::unavailable_reason().unwrap_or("no DPDK").to_string(),
            "this build has no DPDK backend; io_uring and recvmmsg work",
        )
        .fix("install DPDK (scripts/deps.sh) and rebuild"),
    });
}

fn nics(h: &Host, out: &mut Vec<Finding>) {
    let mut found = Vec::new();
    for n in h.list("sys/class/net") {
        // Virtual interfaces (lo, veth, bridges) have no device.
        let Some(driver) = h.link_name(&format!("sys/class/net/{n}/device/driver")) else { continue };
        let numa = h.read_trim(&format!("sys/class/net/{n}/device/numa_node")).unwrap_or_else(|| "-1".into());
        found.push(format!("{n} ({driver}, NUMA node {numa})"));
    }
    let vfio = h.list("sys/bus/pci/drivers/vfio-pci").into_iter().filter(|e| e.contains(':')).collect::<Vec<_>>();
    for d in &vfio {
        found.push(format!("{d} (vfio-pci)"));
    }
    let groups = h.list("sys/kernel/iommu_groups").len();
    let noiommu = h.read_trim("sys/module/vfio/parameters/enable_unsafe_noiommu_mode").is_some_and(|v| v == "Y");
    out.push(if found.is_empty() {
        finding(
            "nics",
            Level::Info,
            "no physical NIC",
            "only virtual devices: the DPDK backend runs on vdevs (net_null, net_pcap...)",
        )
    } else {
        finding("nics", Level::Ok, found.join("; "), "the NICs and their drivers")
    });
    if !vfio.is_empty() {
        out.push(if groups > 0 {
            finding("iommu", Level::Ok, format!("{groups} IOMMU groups"), "vfio-pci devices are isolated by the IOMMU")
        } else if noiommu {
            finding(
                "iommu",
                Level::Warn,
                "no IOMMU, vfio no-IOMMU mode",
                "DMA is not isolated: the device can write anywhere",
            )
            .fix("enable the IOMMU: intel_iommu=on or amd_iommu=on iommu=pt on the kernel command line")
        } else {
            finding("iommu", Level::Error, "no IOMMU groups", "vfio-pci cannot give the devices to DPDK").fix(
                "enable the IOMMU: intel_iommu=on or amd_iommu=on iommu=pt on the kernel command line, then reboot",
            )
        });
    }
}

fn clock(h: &Host, out: &mut Vec<Finding>) {
    if !h.live {
        return;
    }
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let meaning = "a HELLO whose timestamp is more than 30 s off the relay's clock is refused (stale_timestamp)";
    let fix = "apt-get install chrony (or timedatectl set-ntp true)";
    let synced = run("timedatectl", &["show", "-p", "NTPSynchronized", "--value"])
        .map(|s| (s.trim() == "yes", "timedatectl"))
        .or_else(|| run("chronyc", &["-n", "tracking"]).map(|s| (s.contains("Normal"), "chronyc")));
    out.push(match synced {
        Some((true, how)) => finding("clock", Level::Ok, format!("synchronised ({how})"), meaning),
        Some((false, how)) => finding("clock", Level::Warn, format!("not synchronised ({how})"), meaning).fix(fix),
        None => finding("clock", Level::Warn, "no time synchronisation service found (timedatectl, chronyc)", meaning)
            .fix(fix),
    });
}

fn isolation(h: &Host, w: &Wanted, out: &mut Vec<Finding>) {
    let cpus = cpu_list(&h.read_trim("sys/devices/system/cpu/online").unwrap_or_default()).len().max(1);
    let cores = w.cores.unwrap_or(cpus.saturating_sub(1).max(1));
    // The node pins data core i to CPU (i + 1) mod cpus, the control
    // thread to CPU 0 (docs/NODE.md, "Topology").
    let data: Vec<usize> = (0..cores).map(|i| (i + 1) % cpus).collect();
    let cmdline = h.read_trim("proc/cmdline").unwrap_or_default();
    let isolated = cpu_list(cmdline_value(&cmdline, "isolcpus").unwrap_or(""));
    let nohz = cpu_list(cmdline_value(&cmdline, "nohz_full").unwrap_or(""));
    let missing: Vec<String> = data.iter().filter(|c| !isolated.contains(c)).map(|c| c.to_string()).collect();
    let list = data.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let found = format!(
        "data cores on CPUs {list}{}; isolcpus={} nohz_full={}",
        if w.pin { "" } else { " (not pinned)" },
        cmdline_value(&cmdline, "isolcpus").unwrap_or("none"),
        cmdline_value(&cmdline, "nohz_full").unwrap_or("none")
    );
    out.push(if missing.is_empty() && data.iter().all(|c| nohz.contains(c)) {
        finding("cpus.isolation", Level::Ok, found, "the data cores' CPUs are isolated from the scheduler and the tick")
    } else {
        finding(
            "cpus.isolation",
            Level::Info,
            found,
            "the data cores share their CPUs with other work: fine with the default idle policy, but --busy-poll \
             and tail latency want isolated CPUs",
        )
        .fix(format!("add isolcpus={list} nohz_full={list} rcu_nocbs={list} to the kernel command line"))
    });
}

fn governor(h: &Host, out: &mut Vec<Finding>) {
    let govs: Vec<String> = h
        .list("sys/devices/system/cpu")
        .into_iter()
        .filter(|c| c.starts_with("cpu") && c[3..].chars().all(|d| d.is_ascii_digit()) && c.len() > 3)
        .filter_map(|c| h.read_trim(&format!("sys/devices/system/cpu/{c}/cpufreq/scaling_governor")))
        .collect();
    out.push(if govs.is_empty() {
        finding(
            "cpu.governor",
            Level::Info,
            "no cpufreq",
            "no frequency scaling exposed (a virtual machine, or fixed clocks)",
        )
    } else if govs.iter().all(|g| g == "performance") {
        finding("cpu.governor", Level::Ok, "performance", "the CPUs stay at full clock")
    } else {
        let mut g = govs.clone();
        g.dedup();
        finding(
            "cpu.governor",
            Level::Warn,
            g.join(","),
            "CPUs clock down when idle: the first packets of a burst wait",
        )
        .fix("cpupower frequency-set -g performance")
    });
}

fn data_dir(h: &Host, w: &Wanted, out: &mut Vec<Finding>) {
    let Some(d) = &w.data_dir else { return };
    // The filesystem: the longest mount point that holds the directory.
    let abs = if h.live { std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()) } else { d.clone() };
    let mounts = h.read("proc/mounts").unwrap_or_default();
    let fs = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, at, kind) = (f.next()?, f.next()?, f.next()?);
            abs.starts_with(at).then(|| (at.len(), kind.to_string()))
        })
        .max()
        .map(|(_, k)| k)
        .unwrap_or_else(|| "unknown".into());
    if matches!(fs.as_str(), "tmpfs" | "ramfs") {
        out.push(
            finding("data_dir.filesystem", Level::Error, fs, "blocks on a memory filesystem do not survive a reboot")
                .fix("put the data directory on a disk (ext4 or xfs)"),
        );
    } else {
        out.push(finding("data_dir.filesystem", Level::Ok, fs, "blocks and snapshots persist here"));
    }
    if !h.live {
        return;
    }
    let free = std::process::Command::new("df").args(["-P", "-B1"]).arg(&abs).output().ok().and_then(|o| {
        String::from_utf8_lossy(&o.stdout).lines().nth(1)?.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    // docs/STORAGE.md: a day at 20 000 tx/s is about 449 GB of log.
    let day = 449_000_000_000u64;
    out.push(match free {
        None => finding("data_dir.free", Level::Warn, format!("{}: df failed", d.display()), "free space unknown"),
        Some(f) if f < 1 << 30 => {
            finding("data_dir.free", Level::Error, gib(f), "the node stops when a write fails for lack of space")
                .fix("free space, or set retain_mb lower (docs/STORAGE.md)")
        }
        Some(f) if f < day => finding(
            "data_dir.free",
            Level::Warn,
            gib(f),
            format!("less than a day of log at 20 000 tx/s ({}); retain_mb bounds the log", gib(day)),
        )
        .fix("set retain_mb below the free space (docs/STORAGE.md, Retention)"),
        Some(f) => finding("data_dir.free", Level::Ok, gib(f), "room for more than a day of log at 20 000 tx/s"),
    });
}

/// `--unit FILE`: the paths the unit names and what the configuration
/// it starts says.
pub fn unit_checks(unit: &std::path::Path, out: &mut Vec<Finding>) {
    let text = match std::fs::read_to_string(unit) {
        Ok(t) => t,
        Err(e) => {
            out.push(
                finding("unit", Level::Error, format!("{}: {e}", unit.display()), "the unit cannot be read")
                    .fix("install deploy/attnet.service there, or give its path"),
            );
            return;
        }
    };
    let value = |key: &str| text.lines().find_map(|l| l.trim().strip_prefix(key).map(str::trim).map(String::from));
    let Some(exec) = value("ExecStart=") else {
        out.push(
            finding("unit", Level::Error, "no ExecStart=", "systemd has nothing to start")
                .fix("see deploy/attnet.service"),
        );
        return;
    };
    let words: Vec<&str> = exec.split_whitespace().collect();
    let bin = words.first().map(|b| b.trim_start_matches(['-', '@', '+', '!'])).unwrap_or_default();
    let runs = std::fs::metadata(bin).is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    });
    if !runs {
        out.push(
            finding("unit.exec", Level::Error, format!("{bin} is not an executable file"), "the service cannot start")
                .fix(format!("install the attnet binary as {bin}")),
        );
    } else if words.get(1) != Some(&"node") {
        out.push(
            finding("unit.exec", Level::Error, exec.clone(), "ExecStart does not run `attnet node`")
                .fix("ExecStart=BIN node --config FILE"),
        );
    } else {
        out.push(finding("unit.exec", Level::Ok, exec.clone(), "the binary is there"));
    }
    let config = words.windows(2).find(|w| w[0] == "--config").map(|w| PathBuf::from(w[1]));
    let Some(config) = config else {
        out.push(
            finding("unit.config", Level::Warn, "no --config", "the node runs on defaults and flags only")
                .fix("ExecStart=BIN node --config /etc/attnet/attnet.toml"),
        );
        return;
    };
    match crate::config::NodeConfig::check(crate::config::Overrides {
        config: Some(config.clone()),
        ..Default::default()
    }) {
        Err(problems) => out.push(
            finding(
                "unit.config",
                Level::Error,
                problems.join("; "),
                "the node refuses to start on this configuration",
            )
            .fix(format!("attnet check-config {} lists every problem", config.display())),
        ),
        Ok(c) => {
            out.push(finding(
                "unit.config",
                Level::Ok,
                config.display().to_string(),
                "the configuration passes the node's check",
            ));
            let state = value("StateDirectory=")
                .map(|s| PathBuf::from("/var/lib").join(s.split_whitespace().next().unwrap_or("")));
            match (&c.data_dir, state) {
                (None, _) => out.push(
                    finding(
                        "unit.data_dir",
                        Level::Warn,
                        "no data_dir",
                        "blocks are kept in memory only and lost at every restart",
                    )
                    .fix("data_dir = \"/var/lib/attnet\" in the configuration"),
                ),
                (Some(d), Some(s)) if !d.starts_with(&s) => out.push(
                    finding(
                        "unit.data_dir",
                        Level::Warn,
                        format!("data_dir {} is not the unit's state directory {}", d.display(), s.display()),
                        "with ProtectSystem=strict the node can write only its state directory and ReadWritePaths",
                    )
                    .fix(format!("data_dir = \"{}\", or add the directory to ReadWritePaths=", s.display())),
                ),
                (Some(d), _) => {
                    out.push(finding("unit.data_dir", Level::Ok, d.display().to_string(), "blocks persist there"))
                }
            }
        }
    }
}

/// The text report.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        let _ = writeln!(s, "[{tag:>5}] {:<20} {}", f.check, f.found);
        if f.level != Level::Ok {
            let _ = writeln!(s, "        {:<20} {}", "", f.meaning);
        }
        if !f.fix.is_empty() && f.level >= Level::Info {
            let _ = writeln!(s, "        {:<20} fix: {}", "", f.fix);
        }
    }
    s
}

/// 0, 1 (warnings) or 2 (errors).
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.level).max() {
        Some(Level::Error) => 2,
        Some(Level::Warn) => 1,
        _ => 0,
    }
}

fn wanted(a: &DoctorArgs) -> Result<Wanted, String> {
    let file = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("config {}: {e}", p.display()))?;
            toml::from_str::<crate::config::FileConfig>(&text).map_err(|e| format!("config {}: {e}", p.display()))?
        }
        None => crate::config::FileConfig::default(),
    };
    Ok(Wanted {
        cores: file.cores,
        pin: file.pin.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            crate::config::default_pin(file.cores.unwrap_or(cpus.saturating_sub(1).max(1)), cpus)
        }),
        rcvbuf: file.rcvbuf.unwrap_or(crate::config::DEFAULT_RCVBUF),
        dpdk: matches!(file.backend, Some(crate::config::BackendChoice::Dpdk)),
        data_dir: a.data_dir.clone().or(file.data_dir),
    })
}

pub fn run(a: DoctorArgs) -> ExitCode {
    let w = match wanted(&a) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("attnet doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let h = Host::new(a.root.clone());
    let mut findings = run_checks(&h, &w);
    if let Some(u) = &a.unit {
        unit_checks(u, &mut findings);
    }
    let code = exit_code(&findings);
    if a.json {
        let errors = findings.iter().filter(|f| f.level == Level::Error).count();
        let warnings = findings.iter().filter(|f| f.level == Level::Warn).count();
        println!("{}", json!({"findings": findings, "errors": errors, "warnings": warnings, "exit": code}));
    } else {
        print!("{}", render(&findings));
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(files: &[(&str, &str)], links: &[(&str, &str)]) -> (PathBuf, Host) {
        let dir = std::env::temp_dir().join(format!(
            "attnet-doctor-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        for (p, text) in files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        for (p, target) in links {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, f).unwrap();
        }
        let h = Host::new(Some(dir.clone()));
        (dir, h)
    }

    fn get<'a>(f: &'a [Finding], check: &str) -> &'a Finding {
        f.iter().find(|x| x.check == check).unwrap_or_else(|| panic!("no {check} in {f:?}"))
    }

    const LIMITS_LOW: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max open files            1024                 4096                 files     \n\
        Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn a_bare_old_host_gets_every_fix() {
        let (dir, h) = fixture(
            &[
                ("proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu sse2 ssse3\n"),
                ("proc/sys/kernel/osrelease", "5.10.0-28-amd64\n"),
                ("proc/sys/kernel/io_uring_disabled", "0\n"),
                ("proc/self/limits", LIMITS_LOW),
                ("proc/sys/net/core/rmem_max", "212992\n"),
                ("proc/meminfo", "MemTotal: 1000 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n"),
                ("proc/mounts", "/dev/vda / ext4 rw 0 0\ntmpfs /var/lib/attnet tmpfs rw 0 0\n"),
                ("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda\n"),
                ("sys/devices/system/cpu/online", "0-3\n"),
                ("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "powersave\n"),
                ("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "powersave\n"),
                ("sys/bus/pci/drivers/vfio-pci/0000:3b:00.0/x", ""),
                ("sys/class/net/eth0/device/numa_node", "1\n"),
            ],
            &[("sys/class/net/eth0/device/driver", "../../../bus/pci/drivers/ixgbe")],
        );
        let w = Wanted { rcvbuf: 4 << 20, dpdk: true, data_dir: Some("/var/lib/attnet/d".into()), ..Wanted::default() };
        let f = run_checks(&h, &w);
        assert_eq!(get(&f, "cpu.aes").level, Level::Error);
        assert_eq!(get(&f, "cpu.avx2").level, Level::Error);
        assert_eq!(get(&f, "cpu.sha_ni").level, Level::Info);
        let u = get(&f, "io_uring");
        assert_eq!((u.level, u.found.as_str()), (Level::Error, "Linux 5.10"));
        assert_eq!(get(&f, "limits.memlock").level, Level::Warn);
        assert_eq!(get(&f, "limits.nofile").found, "1024");
        assert_eq!(get(&f, "limits.nofile").level, Level::Warn);
        let r = get(&f, "net.rmem_max");
        assert_eq!(r.level, Level::Warn);
        assert!(r.fix.contains("net.core.rmem_max=4194304"), "{}", r.fix);
        let hp = get(&f, "hugepages");
        assert_eq!(hp.level, Level::Error, "dpdk asked for");
        assert!(hp.found.contains("no hugetlbfs mount"));
        assert!(get(&f, "nics").found.contains("eth0 (ixgbe, NUMA node 1)"));
        assert!(get(&f, "nics").found.contains("0000:3b:00.0 (vfio-pci)"));
        assert_eq!(get(&f, "iommu").level, Level::Error);
        let iso = get(&f, "cpus.isolation");
        assert!(iso.found.starts_with("data cores on CPUs 1,2,3 (not pinned);"), "{}", iso.found);
        assert!(iso.fix.contains("isolcpus=1,2,3"));
        assert_eq!(get(&f, "cpu.governor").found, "powersave");
        assert_eq!(get(&f, "data_dir.filesystem").level, Level::Error);
        assert_eq!(exit_code(&f), 2);
        let text = render(&f);
        assert!(text.contains("[ERROR] io_uring") && text.contains("fix: sysctl -w net.core.rmem_max"), "{text}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_tuned_host_is_clean() {
        let (dir, h) = fixture(
            &[
                ("proc/cpuinfo", "flags\t: aes pclmulqdq avx2 sha_ni vaes vpclmulqdq avx512ifma\n"),
                ("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n"),
                ("proc/self/limits", "Max open files            1048576   1048576   files\nMax locked memory         unlimited unlimited bytes\n"),
                ("proc/sys/net/core/rmem_max", "33554432\n"),
                ("proc/meminfo", "HugePages_Total:    1024\nHugepagesize:       2048 kB\n"),
                ("proc/mounts", "nodev /dev/hugepages hugetlbfs rw 0 0\n/dev/nvme0n1 /srv xfs rw 0 0\n"),
                ("proc/cmdline", "root=/dev/nvme0n1 isolcpus=1-2 nohz_full=1-2 intel_iommu=on\n"),
                ("sys/devices/system/cpu/online", "0-2\n"),
                ("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n"),
                ("sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", "1024\n"),
                ("sys/bus/pci/drivers/vfio-pci/0000:3b:00.0/x", ""),
                ("sys/kernel/iommu_groups/7/x", ""),
            ],
            &[],
        );
        let w = Wanted {
            rcvbuf: 4 << 20,
            dpdk: true,
            pin: true,
            data_dir: Some("/srv/attnet".into()),
            ..Wanted::default()
        };
        let f = run_checks(&h, &w);
        assert!(f.iter().all(|x| x.level == Level::Ok), "{}", render(&f));
        assert!(get(&f, "hugepages").found.contains("node0: 1024"));
        assert_eq!(get(&f, "data_dir.filesystem").found, "xfs");
        assert_eq!(exit_code(&f), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_unit_is_checked_against_its_paths_and_configuration() {
        let (dir, _) = fixture(&[("attnet.toml", "data_dir = \"/var/lib/attnet\"\ncores = 1\n")], &[]);
        let unit = dir.join("attnet.service");
        let bin = std::env::current_exe().unwrap();
        let write = |exec: String| {
            std::fs::write(&unit, format!("[Service]\nExecStart={exec}\nStateDirectory=attnet\n")).unwrap();
            let mut f = Vec::new();
            unit_checks(&unit, &mut f);
            f
        };
        let conf = dir.join("attnet.toml");
        let f = write(format!("{} node --config {}", bin.display(), conf.display()));
        assert!(f.iter().all(|x| x.level == Level::Ok), "{}", render(&f));
        let f = write(format!("/nonexistent/attnet node --config {}", conf.display()));
        assert_eq!(get(&f, "unit.exec").level, Level::Error);
        std::fs::write(&conf, "cores = 0\n").unwrap();
        let f = write(format!("{} node --config {}", bin.display(), conf.display()));
        let c = get(&f, "unit.config");
        assert_eq!(c.level, Level::Error);
        assert!(c.found.contains("`cores`: 0"), "{}", c.found);
        std::fs::write(&conf, "cores = 1\n").unwrap();
        assert_eq!(
            get(&write(format!("{} node --config {}", bin.display(), conf.display())), "unit.data_dir").level,
            Level::Warn
        );
        let mut f = Vec::new();
        unit_checks(&dir.join("missing.service"), &mut f);
        assert_eq!(get(&f, "unit").level, Level::Error);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn io_uring_disabled_and_cpu_lists() {
        let (dir, h) = fixture(&[("proc/sys/kernel/io_uring_disabled", "2\n")], &[]);
        let mut f = Vec::new();
        io_uring(&h, &mut f);
        assert_eq!(f[0].level, Level::Error);
        assert!(f[0].fix.contains("kernel.io_uring_disabled=0"));
        assert_eq!(cpu_list("1-3,6,domain,managed_irq,8"), [1, 2, 3, 6, 8]);
        assert_eq!(cmdline_value("a isolcpus=domain,2-3 b", "isolcpus"), Some("domain,2-3"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
