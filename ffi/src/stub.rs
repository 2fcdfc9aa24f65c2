//! The API without DPDK: the same types and signatures, every constructor
//! failing with [`Error::Unavailable`]. Values that need a running DPDK
//! hold an uninhabited field, so their methods cannot be reached.
#![forbid(unsafe_code)]

use std::marker::PhantomData;

use crate::{Error, PortConfig, PortInfo, PortSpec, PortStats, MAX_BURST};

/// Set by build.rs: what was missing and how to install it.
const REASON: &str = env!("ATTNET_DPDK_MISSING");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Never {}

fn unavailable() -> Error {
    Error::Unavailable { reason: REASON }
}

/// Why this build has no DPDK.
pub fn unavailable_reason() -> Option<&'static str> {
    Some(REASON)
}

/// The DPDK release at run time; `None` without DPDK.
pub fn dpdk_version() -> Option<&'static str> {
    None
}

/// Mempools leaked because mbufs were out when they were dropped.
pub fn leaked_mempools() -> usize {
    0
}

/// The EAL handle (never exists without DPDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eal {
    never: Never,
}

impl Eal {
    /// Fails: no DPDK in this build.
    pub fn init(args: &[&str]) -> Result<Eal, Error> {
        let _ = args;
        Err(unavailable())
    }

    /// Always `None` without DPDK.
    pub fn get() -> Option<Eal> {
        None
    }

    /// Unreachable without DPDK.
    pub fn args(&self) -> &'static [String] {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn register_thread(&self) -> Result<u32, Error> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn lcore_id(&self) -> Option<u32> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn socket_id(&self) -> Option<u32> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn ports(&self) -> Vec<(u16, String)> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn cleanup(self) -> Result<(), Error> {
        match self.never {}
    }
}

/// An mbuf pool (never exists without DPDK).
#[derive(Debug, Clone)]
pub struct Mempool {
    never: Never,
}

impl Mempool {
    /// Fails: no DPDK in this build.
    pub fn new(name: &str, n_mbufs: u32, cache: u32, data_room: u16, socket: Option<u32>) -> Result<Mempool, Error> {
        let _ = (name, n_mbufs, cache, data_room, socket);
        Err(unavailable())
    }

    /// Unreachable without DPDK.
    pub fn name(&self) -> &str {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn capacity(&self) -> u32 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn avail(&self) -> u32 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn in_use(&self) -> u32 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn alloc(&self) -> Option<Mbuf> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn alloc_bulk(&self, burst: &mut MbufBurst, n: usize) -> bool {
        let _ = (burst, n);
        match self.never {}
    }
}

/// A packet buffer (never exists without DPDK).
#[derive(Debug)]
pub struct Mbuf {
    never: Never,
}

impl Mbuf {
    /// Unreachable without DPDK.
    pub fn data(&self) -> &[u8] {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn data_mut(&mut self) -> &mut [u8] {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn len(&self) -> usize {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn is_empty(&self) -> bool {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn is_contiguous(&self) -> bool {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn segments(&self) -> Segments<'_> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn tailroom(&self) -> usize {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn append(&mut self, len: usize) -> Option<&mut [u8]> {
        let _ = len;
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn rss_hash(&self) -> Option<u32> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn port(&self) -> u16 {
        match self.never {}
    }
}

/// Iterator over the segments of an [`Mbuf`].
pub struct Segments<'a> {
    never: Never,
    _mbuf: PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self.never {}
    }
}

/// A burst of mbufs: always empty without DPDK.
#[derive(Debug, Default)]
pub struct MbufBurst {
    mbufs: Vec<Mbuf>,
}

impl MbufBurst {
    /// An empty burst.
    pub const fn new() -> MbufBurst {
        MbufBurst { mbufs: Vec::new() }
    }

    /// Always 0.
    pub fn len(&self) -> usize {
        self.mbufs.len()
    }

    /// Always true.
    pub fn is_empty(&self) -> bool {
        self.mbufs.is_empty()
    }

    /// Always false.
    pub fn is_full(&self) -> bool {
        self.mbufs.len() == MAX_BURST
    }

    /// Always empty.
    pub fn as_slice(&self) -> &[Mbuf] {
        &self.mbufs
    }

    /// Always empty.
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        &mut self.mbufs
    }

    /// Iterates over nothing.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.mbufs.iter()
    }

    /// Iterates over nothing.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.mbufs.iter_mut()
    }

    /// Unreachable without DPDK (no `Mbuf` exists).
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match m.never {}
    }

    /// Always `None`.
    pub fn pop(&mut self) -> Option<Mbuf> {
        self.mbufs.pop()
    }

    /// Nothing to free.
    pub fn clear(&mut self) {
        self.mbufs.clear();
    }

    /// Calls `f` with no buffers.
    pub fn with_data_mut<R>(&mut self, f: impl FnOnce(&mut [&mut [u8]]) -> R) -> R {
        f(&mut [])
    }
}

/// An open port (never exists without DPDK).
#[derive(Debug)]
pub struct Port {
    never: Never,
}

impl Port {
    /// Fails: no DPDK in this build.
    pub fn open<'a>(eal: &Eal, port: impl Into<PortSpec<'a>>, cfg: &PortConfig, pool: &Mempool) -> Result<Port, Error> {
        let _ = (port.into(), cfg, pool);
        match eal.never {}
    }

    /// Unreachable without DPDK.
    pub fn id(&self) -> u16 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn info(&self) -> &PortInfo {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn stats(&self) -> Result<PortStats, Error> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn mac_address(&self) -> Result<[u8; 6], Error> {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, Error> {
        let _ = queue;
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, Error> {
        let _ = queue;
        match self.never {}
    }
}

/// A receive queue (never exists without DPDK). `Send`, not `Sync`.
pub struct RxQueue {
    never: Never,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl RxQueue {
    /// Unreachable without DPDK.
    pub fn recv_burst(&mut self, out: &mut MbufBurst) -> usize {
        let _ = out;
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn packets(&self) -> u64 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn queue(&self) -> u16 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn port_id(&self) -> u16 {
        match self.never {}
    }
}

/// A transmit queue (never exists without DPDK). `Send`, not `Sync`.
pub struct TxQueue {
    never: Never,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl TxQueue {
    /// Unreachable without DPDK.
    pub fn send_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let _ = burst;
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn try_send(&mut self, burst: &mut MbufBurst) -> usize {
        let _ = burst;
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn sent(&self) -> u64 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn dropped(&self) -> u64 {
        match self.never {}
    }

    /// Unreachable without DPDK.
    pub fn queue(&self) -> u16 {
        match self.never {}
    }
}

// Drop impls keep the API's shape: in the DPDK build these types free
// DPDK resources when dropped.
impl Drop for Mempool {
    fn drop(&mut self) {
        match self.never {}
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        match self.never {}
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        match self.never {}
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        match self.never {}
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        match self.never {}
    }
}
