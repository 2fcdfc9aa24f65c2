/*
 * The DPDK API attnet uses, as one header for bindgen. build.rs allowlists
 * the functions and types below; bindgen's `wrap_static_fns` turns every
 * `static inline` one it binds (DPDK's and the helpers here) into an
 * exported `<name>__extern` function in a generated C file that build.rs
 * compiles with DPDK's own cflags. Nothing of DPDK's is copied by hand.
 */
#ifndef ATTNET_FFI_WRAPPER_H
#define ATTNET_FFI_WRAPPER_H

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_version.h>

/*
 * rte_errno is a per-lcore (thread-local) variable behind a macro; Rust
 * cannot name it, so read and clear it through these.
 */
static inline int attnet_rte_errno(void) { return rte_errno; }
static inline void attnet_rte_errno_clear(void) { rte_errno = 0; }

/*
 * RSS hash types are built from the function-like macro RTE_BIT64, which
 * bindgen cannot evaluate: hand them over as functions.
 */
static inline uint64_t attnet_rss_ip_udp(void) { return RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP; }

/* Data pointer of an mbuf segment (rte_pktmbuf_mtod is a macro). */
static inline void *attnet_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

#endif
