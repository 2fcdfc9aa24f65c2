#!/usr/bin/env bash
# The main job for now: build attnet and judge the shipped ATT v1 vectors
# (testdata/) as a relay's transaction path, then replay them from a
# capture and print the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --locked -p engine --examples
bin=target/release/attnet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo run -q --release --locked -p engine --example demo_inputs -- "$work"
echo "== attnet decode: one verdict per datagram (testdata/att-v1-vectors.json)"
"$bin" decode --keys "$work/keys.json" --network-id 1 < "$work/vectors.hex"
echo
echo "== attnet decode --pcap: the same datagrams, a second replayed copy and some non-ATT packets"
"$bin" decode --keys "$work/keys.json" --pcap "$work/demo.pcap"
