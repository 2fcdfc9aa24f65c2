#!/usr/bin/env bash
# The test command: installs what it needs, then builds, tests, lints and
# checks formatting of the whole workspace. The shared vectors run through
# the built binary inside cargo test (engine/tests/cli.rs), with the shared
# checker script copied into testdata/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# deps.sh installed DPDK: if the build still cannot find it, fail rather
# than build the DPDK-less stub and skip the DPDK tests.
export ATTNET_REQUIRE_DPDK=1
export CARGO_TERM_COLOR=never
bash scripts/check-core.sh
echo "== build"
cargo build --workspace --all-targets --locked
echo "== test"
cargo test --workspace --locked
bash scripts/tshark-check.sh  # the generator's frames through Wireshark's TPKT/COTP/T.125 dissectors
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== fmt"
cargo fmt --all --check
