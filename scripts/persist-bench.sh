#!/usr/bin/env bash
# The node with a data directory against the node without one, in the same
# run, at the node's own capacity (docs/PERFORMANCE.md, "Persistence"):
# one capture (attnet pktgen, single-transaction frames from 1024 accounts
# over 4 sessions, nothing malformed) replayed by `attnet node --backend
# pcap --cores 1`, runs alternating without / with `--data-dir` (a fresh
# directory on the temp file system each run, default snapshot policy),
# REPS of each. Per run: applied tx/s (ledger.applied / duration_s) and,
# with the data directory, the summary's storage.commit_us (sealed ->
# durable, per block). Every run must apply every transaction of the
# capture, or the script fails. Prints a markdown table with the ratio of
# each pair (with / without) and writes the summaries' figures as JSON.
#
#   cargo build --release -p engine --bin attnet
#   scripts/persist-bench.sh [OUT_JSON] [TXS] [REPS]
#     (defaults: bench-results/<date>-persist.json, 600000, 3; ATTNET=path
#     to the binary, default target/release/attnet; TMPDIR for the data)
set -euo pipefail
cd "$(dirname "$0")/.."
attnet="${ATTNET:-target/release/attnet}"
out="${1:-bench-results/$(date -u +%F)-persist.json}"
txs="${2:-600000}"
reps="${3:-3}"
[ -x "$attnet" ] || { echo "persist-bench: $attnet not found (cargo build --release -p engine --bin attnet)" >&2; exit 1; }
command -v jq >/dev/null || { echo "persist-bench: jq is not installed" >&2; exit 1; }

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
(
  cd "$dir"
  "$OLDPWD/$attnet" pktgen --quiet --seed 7 --accounts 1024 --sessions 4 --count "$txs" \
    --txs-per-frame 1 --frames-per-datagram 1 --bad 0 --pool-cache off \
    --keys-out keys.json --genesis-out genesis.json --out pcap:t.pcap
)

run() { # run N with|without
  local n="$1" mode="$2" extra=()
  rm -rf "$dir/data"
  if [ "$mode" = with ]; then extra=(--data-dir "$dir/data"); fi
  (cd "$dir" && "$OLDPWD/$attnet" node --backend pcap --pcap t.pcap --cores 1 \
    --keys keys.json --genesis genesis.json "${extra[@]}" \
    --summary-json "s-$n-$mode.json" >/dev/null 2>"err-$n-$mode.txt") ||
    { cat "$dir/err-$n-$mode.txt" >&2; exit 1; }
  local s="$dir/s-$n-$mode.json" applied
  applied="$(jq .ledger.applied "$s")"
  [ "$applied" = "$txs" ] || { echo "persist-bench: run $n $mode applied $applied of $txs" >&2; exit 1; }
  jq -c --arg mode "$mode" --argjson rep "$n" '{rep: $rep, mode: $mode, applied: .ledger.applied,
      duration_s: .duration_s, tx_per_s: (.ledger.applied / .duration_s), height: .height,
      commit_us: (.storage.commit_us // null), sync_us: (.storage.sync_us // null),
      snapshot_us: (.storage.snapshot_us // null),
      syncs: (.storage.syncs // null), bytes: (.storage.bytes // null)}' "$s"
}

# One untimed run first (page cache, CPU frequency), then ABAB.
run 0 with >/dev/null
rows=()
for n in $(seq 1 "$reps"); do
  rows+=("$(run "$n" without)")
  rows+=("$(run "$n" with)")
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
printf '%s\n' "${rows[@]}" | jq -s --arg cpu "$cpu" --arg date "$(date -u +%F)" --argjson txs "$txs" \
  --arg git "$(git rev-parse --short HEAD)" --argjson cores "$(nproc)" \
  '{date: $date, cpu: $cpu, cores: $cores, git: $git, txs: $txs, runs: .}' >"$out"

echo "| rep | without: tx/s | with: tx/s | with / without | commit p50 ms | commit p99 ms | commit max ms | fdatasync p50 / max ms | fsyncs |"
echo "|---|---|---|---|---|---|---|---|---|"
jq -r '.runs | group_by(.rep)[] | (map(select(.mode=="without"))[0]) as $a | (map(select(.mode=="with"))[0]) as $b |
  "| \($a.rep) | \($a.tx_per_s|round) | \($b.tx_per_s|round) | \(($b.tx_per_s/$a.tx_per_s*100|round)/100) | \($b.commit_us.p50/1000) | \($b.commit_us.p99/1000) | \($b.commit_us.max/1000) | \($b.sync_us.p50/1000) / \($b.sync_us.max/1000) | \($b.syncs) |"' "$out"
echo "persist-bench: $cpu, $(nproc) cores; wrote $out" >&2
