#!/usr/bin/env bash
# The main job: build attnet and run `attnet demo`: a node on the io_uring
# backend bound to loopback, an in-process sender sealing real signed ATT
# traffic (3 % malformed) for 10 s, the live line, the summary, and checks
# that every datagram, frame and transaction is accounted for. Needs no
# NIC, no DPDK and no root. Extra arguments go to `attnet demo`
# (e.g. --duration 30 --rate 5000 --cores 2 --backend recvmmsg).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --locked -p engine
exec target/release/attnet demo "$@"
