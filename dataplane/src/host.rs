//! What the host passes into the core: the wall clock's counter start and
//! seeds drawn from the OS.

use rand::rngs::StdRng;
use rand::Rng;

use crate::FramePath;

/// Where a sender of configured keys starts its counters now
/// ([`attnet_core::crypto::counter_start`] of the wall clock).
pub fn configured_counter_start() -> u64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    attnet_core::crypto::counter_start(d)
}

/// 32 bytes from a generator seeded by the OS: the seed of a batch
/// verifier's coefficients.
pub fn os_seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand::make_rng::<StdRng>().fill_bytes(&mut s);
    s
}

/// A relay's frame path for `network_id` with an OS-seeded verifier.
pub fn frame_path(network_id: u32) -> FramePath {
    FramePath::new(network_id, os_seed())
}

/// The CPU feature flags of the first processor in `/proc/cpuinfo`'s
/// text (`aes`, `avx2`, `sha_ni`, ...); empty when there is no `flags`
/// line.
pub fn cpuinfo_flags(cpuinfo: &str) -> Vec<&str> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split(':').nth(1))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpuinfo_flags_of_the_first_processor() {
        let info = "processor\t: 0\nflags\t\t: fpu aes avx2\nprocessor\t: 1\nflags\t: fpu\n";
        assert_eq!(super::cpuinfo_flags(info), ["fpu", "aes", "avx2"]);
        assert!(super::cpuinfo_flags("model name: x\n").is_empty());
    }

    #[test]
    fn counter_starts_follow_the_clock_and_seeds_differ() {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let a = super::configured_counter_start();
        std::thread::sleep(std::time::Duration::from_micros(50));
        let b = super::configured_counter_start();
        assert!(a >> 32 >= secs && a >> 32 <= secs + 1);
        assert!(b >= a + 12_500, "{a:#x} {b:#x}");
        assert_ne!(super::os_seed(), super::os_seed());
    }
}
