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

/// The field arithmetic curve25519-dalek (under ed25519-zebra's signature
/// checks) runs on this CPU: `avx512ifma` when the build compiled that
/// backend in (`--cfg curve25519_dalek_backend="avx512"`,
/// `.cargo/config.toml`) and the CPU has AVX-512 IFMA and VL, else `avx2`
/// when it has AVX2, else `serial`. The crate picks by CPUID at run time
/// and says nothing; this applies its rule (the same two feature tests).
pub fn ed25519_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(curve25519_dalek_backend = "avx512")
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

/// The CPU features the fast paths use, each with whether this CPU has
/// it (CPUID, as the crates test them at run time): AES-NI and CLMUL
/// (AES-GCM), VAES and VPCLMULQDQ (wider AES-GCM), SHA-NI (hashes), AVX2
/// and AVX-512 IFMA (Ed25519).
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        vec![
            ("aes", has!("aes") && has!("pclmulqdq")),
            ("vaes", has!("vaes") && has!("vpclmulqdq")),
            ("sha_ni", has!("sha")),
            ("avx2", has!("avx2")),
            ("avx512ifma", has!("avx512ifma") && has!("avx512vl")),
        ]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
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

    /// The backend named agrees with the kernel's view of the CPU and
    /// with how this tree builds (the IFMA backend compiled in).
    #[test]
    fn the_ed25519_backend_follows_the_cpu_and_the_build() {
        const {
            assert!(
                cfg!(curve25519_dalek_backend = "avx512"),
                "the build compiles the IFMA backend in (.cargo/config.toml)"
            )
        };
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags = super::cpuinfo_flags(&info);
        let want = if flags.contains(&"avx512ifma") && flags.contains(&"avx512vl") {
            "avx512ifma"
        } else if flags.contains(&"avx2") {
            "avx2"
        } else {
            "serial"
        };
        assert_eq!(super::ed25519_backend(), want, "{flags:?}");
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
