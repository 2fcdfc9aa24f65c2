//! Finds DPDK with pkg-config, checks its version, generates the bindings
//! with bindgen and compiles the wrappers of DPDK's `static inline`
//! functions. Sets `cfg(attnet_dpdk)` only when all of that worked; without
//! DPDK the crate builds a stub whose every constructor returns
//! `Error::Unavailable` naming what to install, unless
//! `ATTNET_REQUIRE_DPDK=1` asks for a hard build failure instead.

use std::env;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Supported DPDK releases: the 22.11 LTS (Debian 12's). Other releases
/// change ethdev/mbuf layouts and inline fast-path code; widen the range
/// only after running the tests on the new release.
const DPDK_MIN: &str = "22.11";
const DPDK_MAX_EXCLUSIVE: &str = "22.12";
const INSTALL_HINT: &str = "install DPDK 22.11 development files, pkg-config and libclang \
     (Debian 12: apt-get install libdpdk-dev pkg-config libclang-dev), then rebuild \
     (`cargo clean -p ffi` first if cargo keeps the build without DPDK)";

/// Exported DPDK functions the safe API calls.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_strerror",
    "rte_version",
    "rte_socket_id",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_pktmbuf_pool_create",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_mempool_free",
    "rte_pktmbuf_free_bulk",
    "rte_eth_dev_count_avail",
    "rte_eth_find_next",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_stats_get",
    "rte_eth_promiscuous_enable",
    "rte_eth_macaddr_get",
];

/// `static inline` functions, wrapped by bindgen's `wrap_static_fns`
/// (DPDK's fast path and attnet's helpers in `src/wrapper.h`).
const STATIC_INLINE: &[&str] = &[
    "rte_eth_rx_burst",
    "rte_eth_tx_burst",
    "rte_pktmbuf_alloc",
    "rte_pktmbuf_alloc_bulk",
    "rte_pktmbuf_append",
    "rte_pktmbuf_free",
    "rte_mbuf_refcnt_read",
    "rte_mbuf_refcnt_set",
    "rte_lcore_id",
    "attnet_.*",
];

/// Types used by value besides those the functions above pull in.
const TYPES: &[&str] = &["rte_eth_rx_mq_mode", "rte_eth_tx_mq_mode"];

/// Constants (integer macros bindgen can evaluate).
const VARS: &[&str] = &[
    "RTE_MAX_ETHPORTS",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_MEMPOOL_CACHE_MAX_SIZE",
    "RTE_MBUF_F_RX_RSS_HASH",
    "RTE_MBUF_F_INDIRECT",
    "RTE_MBUF_F_EXTERNAL",
    "RTE_VER_YEAR",
    "RTE_VER_MONTH",
    "RTE_VER_MINOR",
    "LCORE_ID_ANY",
    "SOCKET_ID_ANY",
];

/// Packed and aligned at once, which Rust cannot express (bindgen would
/// emit a wrong layout or refuse): kept opaque should anything pull them in
/// (rte_ethdev.h includes rte_flow.h, whose items embed them).
const OPAQUE: &[&str] =
    &["rte_arp_hdr", "rte_arp_ipv4", "rte_l2tpv2_combined_msg_hdr", "rte_gtp_psc_generic_hdr", "rte_l2tpv2_msg_.*"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(attnet_dpdk)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/wrapper.h");
    println!("cargo::rerun-if-env-changed=ATTNET_REQUIRE_DPDK");
    let require = env::var("ATTNET_REQUIRE_DPDK").is_ok_and(|v| !v.is_empty() && v != "0");

    match build() {
        Ok(()) => println!("cargo::rustc-cfg=attnet_dpdk"),
        Err(why) => {
            // Build again once DPDK's .pc file appears (installing
            // libdpdk-dev touches these directories).
            for dir in pkg_config_dirs() {
                println!("cargo::rerun-if-changed={dir}");
            }
            let msg = format!("attnet ffi: building without DPDK: {why}; {INSTALL_HINT}");
            if require {
                // A panic prints the message last, where a reader looks.
                panic!("ATTNET_REQUIRE_DPDK is set but DPDK cannot be used: {why}; {INSTALL_HINT}");
            }
            println!("cargo::warning={msg}");
            println!("cargo::rustc-env=ATTNET_DPDK_MISSING={why}; {INSTALL_HINT}");
        }
    }
}

/// Everything that needs DPDK; an `Err` names what was missing.
fn build() -> Result<(), String> {
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?);
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?);

    // The shared libraries (pkg-config's default, not `--static`): the EAL
    // then loads every PMD from its plugin directory (RTE_EAL_PMD_PATH,
    // Debian: /usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0) at rte_eal_init.
    let lib = pkg_config::Config::new()
        .statik(false)
        .range_version(DPDK_MIN..DPDK_MAX_EXCLUSIVE)
        .cargo_metadata(false)
        .probe("libdpdk")
        .map_err(|e| match e {
            pkg_config::Error::Failure { .. } | pkg_config::Error::ProbeFailure { .. } => match found_version() {
                Some(v) => format!("found DPDK {v}, but attnet supports {DPDK_MIN}.x only"),
                None => "pkg-config cannot find libdpdk".to_string(),
            },
            other => format!("pkg-config: {other}"),
        })?;

    let march = march();
    let mut clang_args: Vec<String> = lib.include_paths.iter().map(|p| format!("-I{}", p.display())).collect();
    for (k, v) in &lib.defines {
        clang_args.push(match v {
            Some(v) => format!("-D{k}={v}"),
            None => format!("-D{k}"),
        });
    }
    if let Some(m) = &march {
        clang_args.push(format!("-march={m}"));
    }

    let header = manifest.join("src/wrapper.h");
    let static_fns = out.join("static_fns");
    let mut builder = bindgen::Builder::default()
        .header(header.to_str().ok_or("non-UTF-8 path")?)
        .clang_args(&clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .wrap_static_fns(true)
        .wrap_static_fns_path(&static_fns)
        // DPDK's comments hold indented text that rustdoc would run as doctests.
        .generate_comments(false)
        .derive_default(true)
        .derive_debug(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .merge_extern_blocks(true)
        .layout_tests(true);
    for f in FUNCTIONS.iter().chain(STATIC_INLINE) {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    for o in OPAQUE {
        builder = builder.opaque_type(o);
    }
    // bindgen panics when it cannot load libclang: report that as a
    // missing package like the rest (build scripts always unwind).
    let bindings = std::panic::catch_unwind(AssertUnwindSafe(move || builder.generate()))
        .map_err(|p| {
            let what = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            format!("bindgen could not run ({what}); is libclang installed?")
        })?
        .map_err(|e| format!("bindgen failed on {}: {e}", header.display()))?;
    bindings.write_to_file(out.join("bindings.rs")).map_err(|e| format!("writing bindings: {e}"))?;

    // The wrappers of the static inline functions, compiled with DPDK's
    // include paths and defines and the same -march as the bindings.
    let mut cc = cc::Build::new();
    cc.file(static_fns.with_extension("c")).include(manifest.join("src")).includes(&lib.include_paths).warnings(false);
    for (k, v) in &lib.defines {
        cc.define(k, v.as_deref());
    }
    if let Some(m) = &march {
        cc.flag(format!("-march={m}"));
    }
    cc.try_compile("attnet_dpdk_inline").map_err(|e| format!("compiling the static inline wrappers: {e}"))?;

    // Link only now that everything else worked: a failed probe must not
    // leave link lines for a stub build.
    // The linker's own directories stay out of rustc's search path: adding
    // them would put every system library ahead of what other crates of
    // the workspace build and link themselves.
    const SYSTEM_DIRS: &[&str] = &["/usr/lib", "/lib", "/usr/lib64", "/lib64"];
    for p in &lib.link_paths {
        // Debian's multiarch directories (/usr/lib/x86_64-linux-gnu) too.
        let multiarch = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("-linux-"));
        let sys_dir = SYSTEM_DIRS.iter().any(|d| p == Path::new(d) || (multiarch && p.parent() == Some(Path::new(d))));
        if !sys_dir {
            println!("cargo::rustc-link-search=native={}", p.display());
        }
    }
    for l in &lib.libs {
        println!("cargo::rustc-link-lib={l}");
    }
    // pkg-config's `-Wl,--as-needed` is rustc's default already.
    Ok(())
}

/// The installed libdpdk version, when pkg-config knows one (for the
/// out-of-range message).
fn found_version() -> Option<String> {
    let out = Command::new(pkg_config_bin()).args(["--modversion", "libdpdk"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// pkg-config's default search directories that exist.
fn pkg_config_dirs() -> Vec<String> {
    let Ok(out) = Command::new(pkg_config_bin()).args(["--variable", "pc_path", "pkg-config"]).output() else {
        return Vec::new();
    };
    let path = String::from_utf8_lossy(&out.stdout).into_owned();
    path.trim().split(':').filter(|d| !d.is_empty() && Path::new(d).is_dir()).map(str::to_string).collect()
}

fn pkg_config_bin() -> String {
    env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string())
}

/// The `-march` for the bindings and the C wrappers. The workspace builds
/// Rust with `-C target-cpu=x86-64-v3` (`.cargo/config.toml`); the C side
/// uses the same CPU so the inlined DPDK fast path (rte_memcpy and friends)
/// picks the same instruction set as the Rust around it. Without a Rust
/// target-cpu, DPDK's own `-march` from its pkg-config cflags (Debian:
/// corei7) is kept: its headers need at least SSE4.2/SSSE3 intrinsics.
fn march() -> Option<String> {
    if let Some(cpu) = rustc_target_cpu() {
        return Some(cpu);
    }
    let out = Command::new(pkg_config_bin()).args(["--cflags", "libdpdk"]).output().ok()?;
    let cflags = String::from_utf8_lossy(&out.stdout).into_owned();
    cflags.split_whitespace().find_map(|f| f.strip_prefix("-march=")).map(str::to_string)
}

/// `-C target-cpu=…` from the flags cargo passes to rustc.
fn rustc_target_cpu() -> Option<String> {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").ok()?;
    let mut cpu = None;
    let mut next_is_codegen = false;
    for f in flags.split('\u{1f}') {
        let opt = if next_is_codegen {
            next_is_codegen = false;
            Some(f)
        } else if f == "-C" || f == "--codegen" {
            next_is_codegen = true;
            None
        } else {
            f.strip_prefix("-C")
        };
        if let Some(v) = opt.and_then(|o| o.strip_prefix("target-cpu=")) {
            cpu = Some(v.to_string());
        }
    }
    cpu
}
