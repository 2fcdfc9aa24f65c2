//! Plain configuration and report types, the same with or without DPDK.

/// Which port to open: by device name (`net_null0`, `0000:01:00.0`) or by
/// DPDK port id. A string of digits that names no device is taken as an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec<'a> {
    /// Device name as given to the EAL (`--vdev=net_null0`) or a PCI address.
    Name(&'a str),
    /// DPDK port id.
    Id(u16),
}

impl<'a> From<&'a str> for PortSpec<'a> {
    fn from(s: &'a str) -> Self {
        PortSpec::Name(s)
    }
}

impl From<u16> for PortSpec<'_> {
    fn from(id: u16) -> Self {
        PortSpec::Id(id)
    }
}

/// How to set a port up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Receive queues (one per data core).
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// Descriptors per receive queue (adjusted to the driver's limits).
    pub rx_desc: u16,
    /// Descriptors per transmit queue (adjusted to the driver's limits).
    pub tx_desc: u16,
    /// Spread flows over the receive queues by an RSS hash of IP addresses
    /// and UDP ports, when the driver supports hashing those (see
    /// [`PortInfo::rss_hf`] for what it got).
    pub rss: bool,
    /// Receive frames for every MAC address. Drivers that cannot say so
    /// (`ENOTSUP`) are accepted as they are.
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: true, promiscuous: false }
    }
}

/// What a port is and how it was set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// DPDK port id.
    pub id: u16,
    /// Device name (`net_null0`, a PCI address).
    pub name: String,
    /// Driver (`net_null`, `net_pcap`, `net_ixgbe`, …).
    pub driver_name: String,
    /// Most receive queues the driver offers.
    pub max_rx_queues: u16,
    /// Most transmit queues the driver offers.
    pub max_tx_queues: u16,
    /// RSS hash types the driver can compute (`RTE_ETH_RSS_*` bits).
    pub flow_type_rss_offloads: u64,
    /// RSS hash types configured (0: no RSS; every packet goes to queue 0
    /// unless the driver spreads them itself, as `net_null` does).
    pub rss_hf: u64,
    /// NUMA socket of the device, when it has one.
    pub socket: Option<u32>,
    /// Receive queues configured.
    pub rx_queues: u16,
    /// Transmit queues configured.
    pub tx_queues: u16,
    /// Descriptors per receive queue, after the driver's adjustment.
    pub rx_desc: u16,
    /// Descriptors per transmit queue, after the driver's adjustment.
    pub tx_desc: u16,
}

/// A port's counters (`rte_eth_stats`), cumulative since the port started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received (some virtual drivers do not count bytes).
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the hardware dropped because no receive descriptor was free
    /// (the cores did not keep up).
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Receive failures for want of an mbuf (pool too small or leaking).
    pub rx_nombuf: u64,
}
