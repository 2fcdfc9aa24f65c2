//! Benchmarks of attnet against the machine's own limits, measured in the
//! same run: criterion micro-benchmarks of every frame-path stage next to
//! the raw libraries it uses (AES-256-GCM backends, LZ4, SHA-256, Ed25519
//! single and batch verification), in `benches/`. Shared traffic builders
//! for those benchmarks live here.
#![forbid(unsafe_code)]
