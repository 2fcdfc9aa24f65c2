//! `pktgen`: the traffic generator against the machine's own limits. To
//! fill in: UDP output against a bare sendmmsg loop (goal >= 0.80), DPDK
//! tx against dpdk-testpmd txonly (goal >= 0.50), the sealing rate.

use super::Ctx;
use crate::report::Row;

/// pktgen's UDP output at >= 0.80 of a bare sendmmsg loop.
pub const GOAL_UDP: f64 = 0.80;
/// pktgen's DPDK tx at >= 0.50 of dpdk-testpmd txonly.
pub const GOAL_DPDK_TX: f64 = 0.50;

/// The section's rows, or why it was skipped.
pub fn pktgen_rows(ctx: &Ctx) -> Result<Vec<Row>, String> {
    let _ = ctx;
    Err("not measured yet: the generator's own benchmarks are still to be written".into())
}

/// What the rows mean.
pub const NOTE: &str = "The traffic generator against the machine's own limits: UDP output against a bare \
sendmmsg loop, DPDK tx against dpdk-testpmd txonly, the sealing rate.";
