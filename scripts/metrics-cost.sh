#!/usr/bin/env bash
# What scraping costs the node (docs/OPERATIONS.md, "Metrics"): one capture
# (attnet pktgen, single-transaction frames from 1024 accounts over 4
# sessions, nothing malformed) replayed by `attnet node --backend pcap
# --cores 1`, runs alternating without the metrics listener and with it
# scraped HZ times a second by curl (Prometheus scrapes every 15 s or so:
# the default 10/s is 150 times that), REPS of each. Per run: applied tx/s
# (ledger.applied / duration_s), and with the listener the scrapes served
# and their median time. Every run must apply every transaction. Prints a
# markdown table with the ratio of each pair (with / without).
#
#   cargo build --release -p engine --bin attnet
#   scripts/metrics-cost.sh [TXS] [REPS] [HZ]   (defaults 400000, 3, 10;
#     ATTNET=path to the binary, default target/release/attnet)
set -euo pipefail
cd "$(dirname "$0")/.."
attnet="$(realpath "${ATTNET:-target/release/attnet}")"
txs="${1:-400000}"
reps="${2:-3}"
hz="${3:-10}"
[ -x "$attnet" ] || { echo "metrics-cost: $attnet not found (cargo build --release -p engine --bin attnet)" >&2; exit 1; }
for c in jq curl; do command -v "$c" >/dev/null || { echo "metrics-cost: $c is not installed" >&2; exit 1; }; done

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$attnet" pktgen --quiet --seed 7 --accounts 1024 --sessions 4 --count "$txs" \
  --txs-per-frame 1 --frames-per-datagram 1 --bad 0 --pool-cache off \
  --keys-out keys.json --genesis-out genesis.json --out pcap:t.pcap

run() { # run N with|without
  local n="$1" mode="$2" extra=() port scraper="" scrapes=0 median=null
  if [ "$mode" = with ]; then
    port=$((20000 + RANDOM % 20000))
    extra=(--metrics "127.0.0.1:$port")
    : >"times-$n.txt"
    ( while sleep "$(awk -v hz="$hz" 'BEGIN { print 1 / hz }')"; do
        curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics" >>"times-$n.txt" 2>/dev/null || true
      done ) &
    scraper=$!
  fi
  "$attnet" node --backend pcap --pcap t.pcap --cores 1 --keys keys.json --genesis genesis.json \
    "${extra[@]}" --summary-json "s-$n-$mode.json" >/dev/null 2>"err-$n-$mode.txt" ||
    { cat "err-$n-$mode.txt" >&2; exit 1; }
  if [ -n "$scraper" ]; then
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
    # Scrapes that reached the node (a refused connection prints 0).
    scrapes="$(awk '$1 > 0' "times-$n.txt" | wc -l)"
    median="$(awk '$1 > 0' "times-$n.txt" | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)] * 1000; else print "null"}')"
  fi
  local s="s-$n-$mode.json" applied
  applied="$(jq .ledger.applied "$s")"
  [ "$applied" = "$txs" ] || { echo "metrics-cost: run $n $mode applied $applied of $txs" >&2; exit 1; }
  jq -c --arg mode "$mode" --argjson rep "$n" --argjson scrapes "$scrapes" --argjson median "$median" \
    '{rep: $rep, mode: $mode, tx_per_s: (.ledger.applied / .duration_s), duration_s: .duration_s,
      scrapes: $scrapes, scrape_ms_p50: $median}' "$s"
}

run 0 without >/dev/null
rows=()
for n in $(seq 1 "$reps"); do
  rows+=("$(run "$n" without)")
  rows+=("$(run "$n" with)")
done
echo "| rep | without: tx/s | scraped $hz/s: tx/s | with / without | scrapes served | scrape p50 ms |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}" | jq -s -r 'group_by(.rep)[] | (map(select(.mode=="without"))[0]) as $a |
  (map(select(.mode=="with"))[0]) as $b |
  "| \($a.rep) | \($a.tx_per_s|round) | \($b.tx_per_s|round) | \(($b.tx_per_s/$a.tx_per_s*1000|round)/1000) | \($b.scrapes) | \($b.scrape_ms_p50) |"'
echo "metrics-cost: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores" >&2
