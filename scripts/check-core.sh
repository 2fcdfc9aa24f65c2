#!/usr/bin/env bash
# The core crate (dataplane/core, package attnet-core) holds the protocol
# and no I/O: this check fails if it gains a dependency on io-uring, ffi,
# DPDK, an async runtime or a direct one on libc, or if its sources (outside
# their #[cfg(test)] modules) use the clock, OS randomness, threads, sockets,
# files, processes or the environment. docs/ARCHITECTURE.md says why.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

tree=$(cargo tree -p attnet-core -e normal,build --prefix none --locked --offline 2>/dev/null \
    || cargo tree -p attnet-core -e normal,build --prefix none --locked)
for bad in io-uring ffi dpdk mio tokio getrandom socket2 nix; do
    if grep -qE "^${bad} v" <<<"$tree"; then
        echo "check-core: attnet-core depends on ${bad}" >&2
        fail=1
    fi
done
direct=$(cargo tree -p attnet-core -e normal --depth 1 --prefix none --locked)
if grep -qE "^libc v" <<<"$direct"; then
    echo "check-core: attnet-core depends on libc directly" >&2
    fail=1
fi

# control/ (sessions, ledger, consensus) builds on the core, not on the I/O.
ctree=$(cargo tree -p control -e normal,build --prefix none --locked)
for bad in dataplane io-uring ffi; do
    if grep -qE "^${bad} v" <<<"$ctree"; then
        echo "check-core: control depends on ${bad}" >&2
        fail=1
    fi
done

pattern='SystemTime|Instant|getrandom|OsRng|SysRng|make_rng|thread_rng|rand::rng\(|from_entropy|from_os_rng|RandomState|std::thread|thread::spawn|UdpSocket|TcpStream|TcpListener|std::fs|std::process|std::env|libc::|extern "C"'
for f in $(find dataplane/core/src -name '*.rs' | sort); do
    # Everything from the first #[cfg(test)] line on is test code.
    hits=$(awk '/^ *#\[cfg\(test\)\]/ { exit } { print FILENAME ":" FNR ": " $0 }' "$f" \
        | grep -E "$pattern" | grep -vE '^[^:]+:[0-9]+: *//' || true)
    if [[ -n "$hits" ]]; then
        echo "check-core: I/O, clock or OS randomness in the core:" >&2
        echo "$hits" >&2
        fail=1
    fi
done
if ! grep -q '^#!\[forbid(unsafe_code)\]' dataplane/core/src/lib.rs; then
    echo "check-core: dataplane/core/src/lib.rs lost #![forbid(unsafe_code)]" >&2
    fail=1
fi
if [[ $fail -ne 0 ]]; then exit 1; fi
echo "check-core: attnet-core has no I/O, clock or OS-random dependency or use"
