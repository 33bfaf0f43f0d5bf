#!/bin/bash
# Sequential keep-alive HTTPS GETs: azcmk from Lua (5.4 and LuaJIT) vs a plain C libcurl loop
# (bench/curl_loop.c), against the same local nginx (spec/support/tls_nginx.lua), over
# HTTP/2 and HTTP/1.1. Rounds alternate between contenders; medians are reported: wall-clock
# throughput, and (with `perf`) the client's CPU time per request, which a busy machine
# disturbs less.
#   bench/http.sh [requests-per-round] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
rounds=${2:-11}
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || make -s all
mkdir -p build/bench
cc -O2 -Wall -Wextra -Werror -o build/bench/curl_loop bench/curl_loop.c -lcurl

. bench/lib/tls_server.sh

have_perf=0
perf stat -x, -e task-clock true >/dev/null 2>&1 && have_perf=1

# one NAME VERSION: one round; appends "req/s cpu_us_per_req" to build/bench/http-NAME-VERSION
one() {
  local name=$1 ver=$2 out cpu=0 cmd
  case $name in
    c) cmd=(build/bench/curl_loop "$url" "$ca" "$n" "$ver") ;;
    lua54) cmd=(env LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/http.lua "$url" "$ca" "$n" "$ver") ;;
    luajit) cmd=(env LUA_CPATH="build/jit/?.so;;" luajit bench/http.lua "$url" "$ca" "$n" "$ver") ;;
  esac
  if [ $have_perf = 1 ]; then
    out=$(perf stat -x, -e task-clock -o build/bench/perf.txt "${cmd[@]}")
    cpu=$(awk -F, -v n="$n" '/task-clock/ {printf "%.2f", $1 * 1000 / (n + 50)}' build/bench/perf.txt)
  else
    out=$("${cmd[@]}")
  fi
  echo "$(awk '{print $3}' <<<"$out") $cpu" >> "build/bench/http-$name-$ver"
}

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
col() { awk -v c="$2" '{print $c}' "build/bench/http-$1" | median; }
# ratio NAME VER: median over rounds of (NAME req/s) / (C req/s) in the same round
ratio() { paste -d' ' "build/bench/http-$1-$2" "build/bench/http-c-$2" | awk '{print $1 / $3}' | median; }

rm -f build/bench/http-*
for ver in 2 1.1; do
  for _ in $(seq "$rounds"); do
    for name in c lua54 luajit; do one "$name" "$ver"; done
  done
done

printf '%-26s %10s %10s %7s   %10s %9s\n' "sequential GET, keep-alive" "req/s" "C libcurl" "ratio" \
  "CPU us/req" "C libcurl"
for ver in 2 1.1; do
  c_rps=$(col "c-$ver" 1); c_cpu=$(col "c-$ver" 2)
  for name in lua54 luajit; do
    printf '%-26s %10.1f %10.1f %7.3f   %10s %9s\n' "azcmk $name, HTTP/$ver" "$(col "$name-$ver" 1)" "$c_rps" \
      "$(ratio "$name" "$ver")" "$(col "$name-$ver" 2)" "$c_cpu"
  done
done
echo "($rounds rounds of $n requests, contenders alternating; medians; ratio = median of per-round"
echo " ratios; CPU = client task-clock incl. start-up; $(curl-config --version), $(nginx -v 2>&1 | sed 's/.*: //'))"
