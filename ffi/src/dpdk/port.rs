//! Ethernet ports and their queues.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{c_char, CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::mbuf::{free_bulk, MbufBurst};
use super::{check, lifecycle, running, Eal, Mempool};
use crate::{sys, Error, PortConfig, PortInfo, PortSpec, PortStats};

/// Ports open in this process: DPDK's queue functions are not thread-safe,
/// so each port is opened (and each of its queues handed out) once.
static OPEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// An open, started Ethernet port. Stopped and closed (`rte_eth_dev_stop`,
/// `rte_eth_dev_close`) when it and every queue taken from it are dropped;
/// a closed virtual device is gone for the rest of the process.
pub struct Port {
    inner: Arc<PortInner>,
}

struct PortInner {
    info: PortInfo,
    /// Keeps the receive pool alive while the driver holds its mbufs.
    _pool: Mempool,
    rx_taken: Vec<AtomicBool>,
    tx_taken: Vec<AtomicBool>,
}

impl Port {
    /// Opens `port` (a device name such as `net_null0`, or a port id):
    /// configures `cfg.rx_queues` and `cfg.tx_queues` queues (RSS over IP
    /// addresses and UDP ports when `cfg.rss` and the driver hashes those;
    /// [`PortInfo::rss_hf`] tells), sets each receive queue up to take
    /// mbufs from `pool`, and starts the port.
    ///
    /// The pool needs at least `rx_queues * rx_desc` mbufs for the
    /// descriptor rings, plus what the program holds at once, plus the
    /// per-lcore caches. On failure the device stays as it was left
    /// (configured, not started) and may be opened again.
    pub fn open<'a>(eal: &Eal, port: impl Into<PortSpec<'a>>, cfg: &PortConfig, pool: &Mempool) -> Result<Port, Error> {
        let _ = eal;
        let spec = port.into();
        let mut life = running()?;
        let id = resolve(spec)?;
        let claim = Claim::new(id)?;

        let mut dev: sys::rte_eth_dev_info = Default::default();
        // SAFETY: `id` is a valid port (resolved above) and `dev` a
        // writable rte_eth_dev_info the call fills in.
        check("rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(id, &mut dev) })?;
        let driver_name = if dev.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-NULL driver_name is the driver's static C string.
            unsafe { CStr::from_ptr(dev.driver_name) }.to_string_lossy().into_owned()
        };
        let name = port_name(id).unwrap_or_default();
        if cfg.rx_queues == 0 || cfg.rx_queues > dev.max_rx_queues {
            return Err(Error::InvalidArgument(format!(
                "{name}: {} rx queues asked, driver {driver_name} offers 1..={}",
                cfg.rx_queues, dev.max_rx_queues
            )));
        }
        if cfg.tx_queues > dev.max_tx_queues {
            return Err(Error::InvalidArgument(format!(
                "{name}: {} tx queues asked, driver {driver_name} offers at most {}",
                cfg.tx_queues, dev.max_tx_queues
            )));
        }

        let mut conf: sys::rte_eth_conf = Default::default();
        let mut rss_hf = 0;
        if cfg.rss {
            // SAFETY: a pure function of compile-time constants.
            rss_hf = unsafe { sys::attnet_rss_ip_udp() } & dev.flow_type_rss_offloads;
            if rss_hf != 0 {
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                // A NULL key means the driver's default key.
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            }
        }
        // SAFETY: valid port, not started by us (claimed above, so no other
        // Port uses it); `conf` is a fully initialised rte_eth_conf that the
        // call only reads.
        check("rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) })?;

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid, configured port; both pointers are writable u16s.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc)
        })?;
        // SAFETY: valid port; reads the device's NUMA node.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let queue_socket = if socket < 0 { sys::SOCKET_ID_ANY as u32 } else { socket as u32 };
        for q in 0..cfg.rx_queues {
            // SAFETY: valid, configured, stopped port; queue index below the
            // configured count; NULL rx_conf takes the driver's defaults; the
            // pool is valid and kept alive by the PortInner built below until
            // the port is closed.
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(id, q, rx_desc, queue_socket, std::ptr::null(), pool.as_ptr())
            })?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above, for a transmit queue (NULL: default tx_conf).
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(id, q, tx_desc, queue_socket, std::ptr::null())
            })?;
        }
        if cfg.promiscuous {
            // SAFETY: valid, configured port.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(id) };
            if ret < 0 && ret != -libc::ENOTSUP {
                check("rte_eth_promiscuous_enable", ret)?;
            }
        }
        // SAFETY: valid port with every configured queue set up.
        check("rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(id) })?;

        let info = PortInfo {
            id,
            name,
            driver_name,
            max_rx_queues: dev.max_rx_queues,
            max_tx_queues: dev.max_tx_queues,
            flow_type_rss_offloads: dev.flow_type_rss_offloads,
            rss_hf,
            socket: u32::try_from(socket).ok(),
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            rx_desc,
            tx_desc,
        };
        life.retain();
        claim.keep();
        let flags = |n| (0..n).map(|_| AtomicBool::new(false)).collect();
        Ok(Port {
            inner: Arc::new(PortInner {
                info,
                _pool: pool.clone(),
                rx_taken: flags(cfg.rx_queues),
                tx_taken: flags(cfg.tx_queues),
            }),
        })
    }

    /// DPDK port id.
    pub fn id(&self) -> u16 {
        self.inner.info.id
    }

    /// What the port is and how it was set up.
    pub fn info(&self) -> &PortInfo {
        &self.inner.info
    }

    /// The port's counters (`rte_eth_stats_get`). Any thread may call this
    /// while queues are polled.
    pub fn stats(&self) -> Result<PortStats, Error> {
        let mut s: sys::rte_eth_stats = Default::default();
        // SAFETY: the port is open and started until PortInner drops; `s` is
        // writable. Drivers read their per-queue counters without locks
        // (plain loads, the usual DPDK practice for statistics).
        check("rte_eth_stats_get", unsafe { sys::rte_eth_stats_get(self.id(), &mut s) })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// The port's MAC address (`rte_eth_macaddr_get`).
    pub fn mac_address(&self) -> Result<[u8; 6], Error> {
        let mut a: sys::rte_ether_addr = Default::default();
        // SAFETY: the port is open until PortInner drops; `a` is a writable
        // rte_ether_addr the call fills.
        check("rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(self.id(), &mut a) })?;
        Ok(a.addr_bytes)
    }

    /// Takes receive queue `queue`, once: DPDK's receive function for one
    /// queue must never run on two threads at once.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, Error> {
        take(&self.inner.rx_taken, queue, "rx", &self.inner.info)?;
        Ok(RxQueue { port: self.inner.clone(), queue, packets: 0, _not_sync: PhantomData })
    }

    /// Takes transmit queue `queue`, once.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, Error> {
        take(&self.inner.tx_taken, queue, "tx", &self.inner.info)?;
        Ok(TxQueue { port: self.inner.clone(), queue, sent: 0, dropped: 0, _not_sync: PhantomData })
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port").field("info", &self.inner.info).finish()
    }
}

fn take(flags: &[AtomicBool], queue: u16, what: &str, info: &PortInfo) -> Result<(), Error> {
    let flag = flags.get(usize::from(queue)).ok_or_else(|| {
        Error::InvalidArgument(format!("{}: {what} queue {queue} of {} configured", info.name, flags.len()))
    })?;
    if flag.swap(true, Ordering::AcqRel) {
        return Err(Error::Busy(format!("{}: {what} queue {queue} already taken", info.name)));
    }
    Ok(())
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // Serialises with opening ports and creating or freeing pools (the
        // pool field is dropped after this function, lock released).
        let mut life = lifecycle();
        let id = self.info.id;
        // SAFETY: the last handle to the port is going: no queue exists, so
        // no burst runs. Stop, then close (frees the queues and the mbufs in
        // their rings back to the pool, still alive through `_pool`).
        // Failures cannot be reported from Drop; the port is unusable
        // afterwards either way.
        unsafe {
            let _ = sys::rte_eth_dev_stop(id);
            let _ = sys::rte_eth_dev_close(id);
        }
        OPEN.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(HashSet::new).remove(&id);
        life.release();
    }
}

/// Marks a port open for the duration of `Port::open`, and for good on
/// success.
struct Claim {
    id: u16,
    kept: bool,
}

impl Claim {
    fn new(id: u16) -> Result<Claim, Error> {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if !open.get_or_insert_with(HashSet::new).insert(id) {
            let name = port_name(id).unwrap_or_else(|| id.to_string());
            return Err(Error::Busy(format!("port {name} is already open")));
        }
        Ok(Claim { id, kept: false })
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.kept {
            OPEN.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(HashSet::new).remove(&self.id);
        }
    }
}

/// The port id for a name or id.
fn resolve(spec: PortSpec<'_>) -> Result<u16, Error> {
    match spec {
        PortSpec::Id(id) => {
            // SAFETY: only reads the ethdev table.
            if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 1 {
                Ok(id)
            } else {
                Err(Error::NoSuchPort(id.to_string()))
            }
        }
        PortSpec::Name(name) => {
            let cname = CString::new(name).map_err(|_| Error::NoSuchPort(name.to_string()))?;
            let mut id = 0u16;
            // SAFETY: `cname` is a valid C string and `id` writable; the
            // call only reads the ethdev table.
            if unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) } == 0 {
                return Ok(id);
            }
            match name.parse::<u16>() {
                Ok(id) => resolve(PortSpec::Id(id)),
                Err(_) => Err(Error::NoSuchPort(name.to_string())),
            }
        }
    }
}

/// The device name of a port.
pub(super) fn port_name(id: u16) -> Option<String> {
    let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: `buf` holds RTE_ETH_NAME_MAX_LEN bytes, the size the call
    // requires; it writes a NUL-terminated name into it.
    if unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: NUL-terminated within `buf` (see above).
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// One receive queue of a port, polled by one thread at a time: `Send`, not
/// `Sync`, handed out once ([`Port::rx_queue`]). Keeps the port open.
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
    packets: u64,
    /// `Cell` is `Send + !Sync`: the queue may move to its polling thread
    /// but never be shared.
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Receives into the free room of `out` (up to [`crate::MAX_BURST`] in
    /// all) without blocking (`rte_eth_rx_burst`); returns how many mbufs
    /// were added.
    #[inline]
    pub fn recv_burst(&mut self, out: &mut MbufBurst) -> usize {
        let room = out.spare() as u16;
        if room == 0 {
            return 0;
        }
        // SAFETY: the port is started and stays so while this queue exists
        // (it holds the PortInner); the queue index was configured; this
        // queue is owned by one thread (not Sync, taken once, `&mut self`),
        // as rte_eth_rx_burst requires. It writes at most `room` mbuf
        // pointers at `spare_ptr`, each an mbuf now owned by us (reference
        // count 1, direct buffer).
        unsafe {
            let n = usize::from(sys::rte_eth_rx_burst(self.port.info.id, self.queue, out.spare_ptr(), room));
            out.commit(n);
            self.packets += n as u64;
            n
        }
    }

    /// Packets this queue received, cumulative.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The queue's index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The port's id.
    pub fn port_id(&self) -> u16 {
        self.port.info.id
    }
}

/// One transmit queue of a port: `Send`, not `Sync`, handed out once
/// ([`Port::tx_queue`]). Keeps the port open.
pub struct TxQueue {
    port: Arc<PortInner>,
    queue: u16,
    sent: u64,
    dropped: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Sends the mbufs of `burst` (`rte_eth_tx_burst`); those the driver
    /// did not take (its ring was full) are freed and counted in
    /// [`dropped`](Self::dropped). The burst is empty afterwards. Returns
    /// how many were sent.
    #[inline]
    pub fn send_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let sent = self.try_send(burst);
        let left = burst.len();
        if left > 0 {
            // SAFETY: the first `left` entries are the owned, unsent mbufs,
            // forgotten by the burst right after.
            unsafe { free_bulk(burst.raw_ptr(), left) };
            burst.forget_all();
            self.dropped += left as u64;
        }
        sent
    }

    /// Sends what the driver takes now and leaves the rest, in order, in
    /// `burst` to retry (a generator that must not lose packets). Returns
    /// how many were sent.
    #[inline]
    pub fn try_send(&mut self, burst: &mut MbufBurst) -> usize {
        let n = burst.len() as u16;
        if n == 0 {
            return 0;
        }
        // SAFETY: the port is started while this queue exists; one thread
        // owns the queue (as for RxQueue). The driver takes ownership of the
        // first `sent` mbufs (it frees them once transmitted), so the burst
        // drops them without freeing; the others stay ours.
        let sent = usize::from(unsafe { sys::rte_eth_tx_burst(self.port.info.id, self.queue, burst.raw_ptr(), n) });
        burst.keep_unsent(sent);
        self.sent += sent as u64;
        sent
    }

    /// Packets handed to the driver, cumulative.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Packets [`send_burst`](Self::send_burst) freed unsent, cumulative.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The queue's index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}
