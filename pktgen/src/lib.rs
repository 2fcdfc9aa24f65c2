//! pktgen: an ATT-aware traffic generator. It builds real, signed, sealed
//! ATT v1 frames with `dataplane`'s emitters, paces them against absolute
//! time, embeds probes for loss and latency, and keeps counters that agree
//! with the receiver's. Filled by the generator work.
#![forbid(unsafe_code)]
