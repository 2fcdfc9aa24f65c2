#!/usr/bin/env bash
# The test command: installs what it needs, then builds, tests, lints and
# checks formatting of the whole workspace, and runs the shared vectors
# through the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
export CARGO_TERM_COLOR=never
echo "== build"
cargo build --workspace --all-targets --locked
echo "== test"
cargo test --workspace --locked
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== fmt"
cargo fmt --all --check
echo "== shared vectors through the release binary"
cargo build --release --locked -p engine
checker=../shared/tools/check_vectors.py
if [ -f "$checker" ]; then
  python3 "$checker" target/release/attnet testdata/att-v1-vectors.json
else
  # Outside the project's checkout layout the same check runs in
  # engine/tests/cli.rs (shared_vectors_all_match) above.
  echo "no $checker beside this checkout: the vectors were checked by cargo test (engine/tests/cli.rs)"
fi
