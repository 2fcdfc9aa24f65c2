#!/usr/bin/env bash
# Installs the Debian packages attnet builds with (C compiler for aws-lc
# and mimalloc, pkg-config, Python 3 for the shared vector checker,
# iproute2 and util-linux for the tests' network namespaces, DPDK 22.11
# with libclang for the ffi crate's bindgen, dpdk-dev for dpdk-testpmd,
# tshark for scripts/tshark-check.sh, systemd for systemd-analyze, which
# verifies deploy/attnet.service), as
# root with apt-get, only if something is missing. Rust stable (cargo,
# clippy, rustfmt) must already be installed.
set -euo pipefail
pkgs=(build-essential pkg-config python3 ca-certificates iproute2 util-linux libdpdk-dev libclang-dev dpdk-dev tshark systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "attnet: missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "attnet: installing ${missing[*]} with apt-get"
  apt-get update -q
  # tshark: no setuid dumpcap, and no question asked about it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "attnet: cargo not found: install Rust stable (rustup) first" >&2; exit 1; }
for c in clippy rustfmt; do
  if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "attnet: adding the $c component"
    rustup component add "$c"
  fi
done
