//! The DPDK output.

use crate::drive::Sink;
use crate::run::RunConfig;

pub fn sink(dev: &str, _part: usize, _parts: usize, _cfg: &RunConfig) -> Result<Box<dyn Sink + Send>, String> {
    Err(format!("dpdk:{dev}: the DPDK output is not available yet"))
}
