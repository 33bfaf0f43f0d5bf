#!/bin/bash
# Client instructions per request (valgrind callgrind, user space only): azcmk from Lua 5.4
# and LuaJIT vs the plain C libcurl loop, same local nginx and requests as bench/http.sh.
# Instruction counts do not depend on the host's load, unlike req/s. Each figure is
# (Ir of a 1500-request run - Ir of a 500-request run) / 1000, so start-up cancels out.
#   bench/http_ir.sh
#   BASE=REV bench/http_ir.sh    also REV's lua/ (git archive) for azcmk, in the same run
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || make -s all
mkdir -p build/bench
cc -O2 -Wall -Wextra -Werror -o build/bench/curl_loop bench/curl_loop.c -lcurl
. bench/lib/tls_server.sh

ir() {  # ir N CMD... -> total Ir
  local n=$1; shift
  valgrind --tool=callgrind --callgrind-out-file=build/bench/callgrind.out "$@" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' build/bench/callgrind.out
}
per_req() {  # per_req CPATH CMD... (the request count is appended twice: 500 and 1500)
  local cpath=$1; shift
  local a b
  a=$(LUA_CPATH="$cpath" ir 500 "$@" 500 "$ver")
  b=$(LUA_CPATH="$cpath" ir 1500 "$@" 1500 "$ver")
  echo $(( (b - a) / 1000 ))
}
trees=("lua")
if [ -n "${BASE:-}" ]; then
  rm -rf build/bench/base-http && mkdir -p build/bench/base-http
  git archive "$BASE" lua | tar -x -C build/bench/base-http
  trees=("build/bench/base-http/lua" "lua")
fi
printf '%-26s %-26s %12s %12s %7s\n' "sequential GET, keep-alive" "lua tree" "Ir/request" "C libcurl" "C/azcmk"
for ver in 1.1 2; do
  c=$(per_req "" build/bench/curl_loop "$url" "$ca")
  for tree in "${trees[@]}"; do
    export BENCH_LUA_DIR=$tree
    for name in lua54 luajit; do
      if [ $name = lua54 ]; then v=$(per_req "build/5.4/?.so;;" lua5.4 bench/http.lua "$url" "$ca")
      else v=$(per_req "build/jit/?.so;;" luajit bench/http.lua "$url" "$ca"); fi
      printf '%-26s %-26s %12s %12s %7.3f\n' "azcmk $name, HTTP/$ver" "$tree" "$v" "$c" "$(echo "$c / $v" | bc -l)"
    done
  done
done
