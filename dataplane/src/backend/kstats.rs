//! Kernel-side receive losses that no socket option reports by itself:
//! the UDP MIB (`RcvbufErrors`, `InErrors` in `/proc/net/snmp`, per network
//! namespace) and the per-CPU backlog drops in `/proc/net/softnet_stat`
//! (machine-wide; `SO_RXQ_OVFL` does not see them). Read at start and end
//! of a run; the node reports the differences.

/// One reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub udp_rcvbuf_errors: u64,
    pub udp_in_errors: u64,
    pub softnet_dropped: u64,
}

impl KernelStats {
    /// Reads the counters; a file that cannot be read counts as zeros.
    pub fn read() -> KernelStats {
        let mut k = KernelStats::default();
        if let Ok(s) = std::fs::read_to_string("/proc/net/snmp") {
            k.parse_snmp(&s);
        }
        if let Ok(s) = std::fs::read_to_string("/proc/net/softnet_stat") {
            k.softnet_dropped = parse_softnet(&s);
        }
        k
    }

    fn parse_snmp(&mut self, s: &str) {
        let udp: Vec<&str> = s.lines().filter(|l| l.starts_with("Udp:")).collect();
        if let [names, values, ..] = udp[..] {
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()).skip(1) {
                let v = v.parse().unwrap_or(0);
                match n {
                    "RcvbufErrors" => self.udp_rcvbuf_errors = v,
                    "InErrors" => self.udp_in_errors = v,
                    _ => {}
                }
            }
        }
    }

    /// Counts since `earlier`.
    pub fn since(&self, earlier: &KernelStats) -> KernelStats {
        KernelStats {
            udp_rcvbuf_errors: self.udp_rcvbuf_errors.saturating_sub(earlier.udp_rcvbuf_errors),
            udp_in_errors: self.udp_in_errors.saturating_sub(earlier.udp_in_errors),
            softnet_dropped: self.softnet_dropped.saturating_sub(earlier.softnet_dropped),
        }
    }
}

/// Sum of the second column (backlog drops, hex) over every CPU's line.
fn parse_softnet(s: &str) -> u64 {
    s.lines().filter_map(|l| l.split_whitespace().nth(1)).filter_map(|x| u64::from_str_radix(x, 16).ok()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_formats() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\nUdp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 10 2 7 9 5 0\nUdpLite: InDatagrams\nUdpLite: 0\n";
        let mut k = KernelStats::default();
        k.parse_snmp(snmp);
        assert_eq!((k.udp_in_errors, k.udp_rcvbuf_errors), (7, 5));
        let softnet = "0000a1b2 00000003 00000000\n00000001 0000000a 00000000\n";
        assert_eq!(parse_softnet(softnet), 13);
        let now = KernelStats::read();
        assert_eq!(now.since(&now), KernelStats::default());
    }
}
