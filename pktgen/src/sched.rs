//! Rate control. Datagram `i` is due at `start + units_before(i) / rate`,
//! computed from `i` (never by adding intervals, so there is no cumulative
//! drift); a late datagram goes at once and the ones after it keep their
//! own due times. With `burst = b`, datagrams leave in groups of `b` that
//! share the due time of the group's first datagram.
//!
//! Units are datagrams for `--pps` and wire bits for `--bps`/`--percent`
//! (each datagram costs its Ethernet frame on the wire: UDP payload plus
//! UDP, IP, Ethernet, FCS, preamble and inter-frame gap).

/// Bytes a UDP datagram adds on an Ethernet wire besides its payload:
/// UDP 8 + IPv4 20 + Ethernet 14 + FCS 4 + preamble 8 + gap 12.
pub const WIRE_OVERHEAD_V4: u64 = 66;
/// Ethernet's minimum frame (60 bytes before the FCS) still applies.
const MIN_FRAME: u64 = 60;

/// Wire bits of one datagram of `payload` bytes (`extra` for IPv6's 20
/// more header bytes and a VLAN tag's 4).
pub fn wire_bits(payload: usize, extra: u64) -> u64 {
    let frame = (payload as u64 + 8 + 20 + 14 + extra).max(MIN_FRAME);
    (frame + 4 + 20) * 8
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Unlimited,
    /// Datagrams per second.
    Pps(f64),
    /// Wire bits per second.
    Bps(f64),
}

impl Rate {
    /// `percent` of a link of `link_bps`.
    pub fn percent(percent: f64, link_bps: f64) -> Rate {
        Rate::Bps(link_bps * percent / 100.0)
    }
}

/// The schedule of one sender.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Nanoseconds per unit, as a fraction: `num / den`.
    num: u128,
    den: u128,
    bits: bool,
    burst: u64,
    /// Units of every datagram scheduled so far, and of the current group's start.
    units: u128,
    group_units: u128,
    i: u64,
}

impl Pacer {
    pub fn new(rate: Rate, burst: usize) -> Pacer {
        // Rates are kept to a thousandth of a unit per second.
        let (per_s, bits) = match rate {
            Rate::Unlimited => (0.0, false),
            Rate::Pps(r) => (r, false),
            Rate::Bps(r) => (r, true),
        };
        let milli = (per_s * 1000.0).round().max(0.0) as u128;
        Pacer { num: 1_000_000_000_000, den: milli, bits, burst: burst.max(1) as u64, units: 0, group_units: 0, i: 0 }
    }

    pub fn unlimited(&self) -> bool {
        self.den == 0
    }

    /// Nanoseconds the rate gives everything scheduled so far (the end of
    /// the last datagram's interval; 0 when unlimited).
    pub fn span_ns(&self) -> u64 {
        if self.den == 0 {
            return 0;
        }
        (self.units * self.num / self.den).min(u128::from(u64::MAX)) as u64
    }

    /// Due time (ns after start) of the next datagram, whose payload is
    /// `payload` bytes (`extra` wire bytes as in [`wire_bits`]); then
    /// counts it as scheduled.
    pub fn next_due(&mut self, payload: usize, extra: u64) -> u64 {
        if self.i.is_multiple_of(self.burst) {
            self.group_units = self.units;
        }
        self.i += 1;
        self.units += if self.bits { u128::from(wire_bits(payload, extra)) } else { 1 };
        if self.den == 0 {
            return 0;
        }
        (self.group_units * self.num / self.den).min(u128::from(u64::MAX)) as u64
    }
}

/// Sleeps or spins until `due`: sleeps while more than 200 µs remain, then
/// yields. Never waits when late.
pub fn wait_until(due: std::time::Instant) {
    loop {
        let now = std::time::Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > std::time::Duration::from_micros(200) {
            std::thread::sleep(left - std::time::Duration::from_micros(100));
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pps_schedule_is_exact() {
        let mut p = Pacer::new(Rate::Pps(1000.0), 1);
        for i in 0..10_000u64 {
            assert_eq!(p.next_due(100, 0), i * 1_000_000);
        }
        // A rate that is not a divisor of a second: 3 per second.
        let mut p = Pacer::new(Rate::Pps(3.0), 1);
        let due: Vec<u64> = (0..7).map(|_| p.next_due(1, 0)).collect();
        assert_eq!(due, [0, 333_333_333, 666_666_666, 1_000_000_000, 1_333_333_333, 1_666_666_666, 2_000_000_000]);
        // No drift after a million datagrams at 1.5 Mpps: exactly 2/3 s.
        let mut p = Pacer::new(Rate::Pps(1_500_000.0), 1);
        let mut last = 0;
        for _ in 0..1_000_001 {
            last = p.next_due(64, 0);
        }
        assert_eq!(last, 666_666_666);
    }

    #[test]
    fn span_covers_the_last_interval() {
        let mut p = Pacer::new(Rate::Pps(4.0), 1);
        assert_eq!(p.span_ns(), 0);
        p.next_due(10, 0);
        assert_eq!(p.span_ns(), 250_000_000);
        p.next_due(10, 0);
        assert_eq!(p.span_ns(), 500_000_000);
    }

    #[test]
    fn bursts_share_their_first_due_time() {
        let mut p = Pacer::new(Rate::Pps(100.0), 4);
        let due: Vec<u64> = (0..10).map(|_| p.next_due(1, 0)).collect();
        let ms = 1_000_000;
        assert_eq!(due, [0, 0, 0, 0, 40 * ms, 40 * ms, 40 * ms, 40 * ms, 80 * ms, 80 * ms]);
    }

    #[test]
    fn bit_rates_count_wire_bytes() {
        // 1000-byte payloads are 1066-byte frames on the wire: 8528 bits.
        assert_eq!(wire_bits(1000, 0), 8528);
        // Small payloads pad to the 64-byte minimum frame (+ preamble, gap).
        assert_eq!(wire_bits(1, 0), 84 * 8);
        let mut p = Pacer::new(Rate::Bps(8_528_000.0), 1);
        let due: Vec<u64> = (0..4).map(|_| p.next_due(1000, 0)).collect();
        assert_eq!(due, [0, 1_000_000, 2_000_000, 3_000_000]);
        // 10 % of 10 Gbit/s.
        assert_eq!(Rate::percent(10.0, 10e9), Rate::Bps(1e9));
    }

    #[test]
    fn unlimited_is_always_due() {
        let mut p = Pacer::new(Rate::Unlimited, 32);
        assert!(p.unlimited());
        assert!((0..100).all(|_| p.next_due(100, 0) == 0));
    }
}
