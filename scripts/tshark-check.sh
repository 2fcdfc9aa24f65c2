#!/usr/bin/env bash
# Checks that Wireshark's standard dissectors recognise the generator's
# frames: attnet-pktgen writes a small pcap to UDP port 7100, a two-line Lua
# script hands that port to the TPKT dissector, and every packet must come
# out as TPKT version 3 / COTP DT (data) / T.125 MCS send-data request on
# the transaction channel (1004). See docs/PKTGEN.md, "Standard dissectors".
#
#   scripts/tshark-check.sh [PATH_TO_ATTNET_PKTGEN]   (default target/debug/attnet-pktgen)
set -euo pipefail
cd "$(dirname "$0")/.."
pktgen="${1:-${ATTNET_PKTGEN:-target/debug/attnet-pktgen}}"
count=20
port=7100
channel=1004

command -v tshark >/dev/null || { echo "tshark-check: tshark is not installed (apt-get install tshark)" >&2; exit 1; }
[ -x "$pktgen" ] || { echo "tshark-check: $pktgen not found (cargo build -p pktgen)" >&2; exit 1; }

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
# Readable by an unprivileged user too (see the fallback below).
chmod 755 "$dir"

# Transfers only (channel 1004), one frame per datagram, nothing hostile.
"$pktgen" --seed 7 --sessions 2 --accounts 8 --out "pcap:$dir/att.pcap" --count "$count" \
  --dst-port "$port" --kinds transfer --frames-per-datagram 1 --bad 0 --pool-cache off --quiet
chmod 644 "$dir/att.pcap"

cat >"$dir/tpkt.lua" <<EOF
local tpkt = Dissector.get("tpkt")
DissectorTable.get("udp.port"):add($port, tpkt)
EOF
chmod 644 "$dir/tpkt.lua"

fields=(-T fields -E separator=, -e tpkt.version -e cotp.type -e t124.DomainMCSPDU -e t124.channelId
  -e frame.protocols)
dissect() {
  "$@" tshark -n -r "$dir/att.pcap" -X "lua_script:$dir/tpkt.lua" "${fields[@]}" 2>"$dir/err"
}
out="$(dissect)" || true
how="as $(id -un)"
# Some builds refuse Lua scripts as root (init.lua's
# run_user_scripts_when_superuser): then dissect as nobody.
if ! grep -q ',tpkt\|:tpkt:' <<<"$out" && [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then
  out="$(dissect runuser -u nobody --)" || true
  how="as nobody (Lua refused for root)"
fi

want="3,0x0f,25,$channel,eth:ethertype:ip:udp:tpkt:cotp:t125"
lines="$(grep -c . <<<"$out" || true)"
good="$(grep -c -x -F "$want" <<<"$out" || true)"
if [ "$lines" != "$count" ] || [ "$good" != "$count" ]; then
  echo "tshark-check: FAILED: $good of $count packets dissected as TPKT v3 / COTP DT / T.125 sendDataRequest on channel $channel ($lines lines)" >&2
  echo "want: $want" >&2
  head -5 <<<"$out" >&2
  grep -v 'Running as user' "$dir/err" | head -5 >&2 || true
  exit 1
fi
echo "tshark-check: ok: $count of $count packets are TPKT v3 / COTP DT / T.125 sendDataRequest on channel $channel ($(tshark --version 2>/dev/null | head -1), $how)"
