#!/bin/bash
# New TLS connections against the system's CAs: azcmk vs the curl command line (libcurl's
# defaults), every request on a new connection (Connection: close) to the same local nginx.
# A CMK job opens one connection per host: login, ARM, each vault. Reports client CPU/request.
# The test CA is made a system CA inside a private mount namespace only (unshare -m; a copy of
# /etc/ssl/certs with the CA added to the bundle and hashed into the directory is bind-mounted
# over it), so the machine's trust is never changed. Needs root (CI and the dev box are).
#   bench/newconn.sh [requests]     (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
[ -f build/5.4/azcmk/core.so ] || make -s all
mkdir -p build/bench
certs=$(mktemp -d)
BENCH_CLEANUP=$certs
. bench/lib/tls_server.sh
cp -a /etc/ssl/certs/. "$certs/"
rm -f "$certs/ca-certificates.crt"
cat /etc/ssl/certs/ca-certificates.crt "$ca" > "$certs/ca-certificates.crt"
cp "$ca" "$certs/azcmk-bench-ca.pem"
openssl rehash "$certs" 2>/dev/null

args=()
for _ in $(seq "$n"); do args+=(-o /dev/null "$url"); done
# in the namespace where the test CA is a system CA
SYS=(unshare -m sh -c 'mount --bind "$0" /etc/ssl/certs && shift && exec "$@"' "$certs" _)
cpu_of() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1 | awk -v n="$n" '{printf "%.3f", ($1 + $2) * 1000 / n}'; }
azcmk() { "${SYS[@]}" env LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/newconn.lua "$url" "$1" "$n" | awk '{print $2}'; }

printf '%-58s %s\n' "new connection per request ($(grep -c 'BEGIN CERT' "$certs/ca-certificates.crt") system CAs)" \
  "client CPU ms/request"
printf '%-58s %s\n' "curl CLI, system CAs (libcurl: bundle + directory)" \
  "$(cpu_of "${SYS[@]}" curl -s --http1.1 -H 'Connection: close' "${args[@]}")"
printf '%-58s %s\n' "azcmk (Lua 5.4), system CAs (the directory)" "$(azcmk -)"
printf '%-58s %s\n' "azcmk (Lua 5.4), AZCMK_CA_FILE = the test CA (+ directory)" "$(azcmk "$ca")"
