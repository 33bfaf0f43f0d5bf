#!/bin/bash
# RSA-2048 through azcmk from Lua (5.4 and LuaJIT) vs `openssl speed -seconds N rsa2048`.
#   bench/crypto.sh [seconds]     (default 3) prints a table with azcmk/openssl ratios
# What is compared with what:
# - openssl speed "sign/s" is one RSA private-key op (PKCS#1 v1.5 over a SHA-256-sized
#   digest): RS256 sign through azcmk (SHA-256 of the JWS input + the same op) against it.
# - openssl speed "verify/s" is one RSA public-key op (PKCS#1 v1.5 verify). RSA-OAEP-256
#   encrypt is one public-key op too, but adds OAEP padding (a fresh random seed, the label
#   hash and two MGF1-SHA256 masks) that verify does not do. The table therefore also shows
#   azcmk's RS256 verify (the like-for-like public-key op) and OpenSSL's own RSA-OAEP-256
#   encrypt called directly from C (bench/crypto_ref.c), which openssl speed cannot measure.
# Every figure is the best of REPEAT runs (default 3), measured in turns, so that a load
# spike from other processes hits neither side alone; still, prefer an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
repeat=${REPEAT:-3}
make -s all >/dev/null
mkdir -p build/bench
cc -O2 -o build/bench/crypto_ref bench/crypto_ref.c -lcrypto

best() {  # best() NAME VALUE...: prints the largest VALUE
  local m=0 x
  for x in "$@"; do m=$(echo "if ($x > $m) $x else $m" | bc -l); done
  echo "$m"
}
get() { awk -v k="$2" '$1 == k {print $2}' <<<"$1"; }
os=() ov=() cr=() declare -A az
for _ in $(seq "$repeat"); do
  read -r s v < <(openssl speed -seconds "$secs" rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $(NF-1), $NF}')
  os+=("$s"); ov+=("$v")
  cr+=("$(build/bench/crypto_ref "$secs" | awk '{print $2}')")
  for v in 5.4 jit; do
    if [ $v = jit ]; then out=$(LUA_CPATH="build/jit/?.so;;" luajit bench/crypto.lua "$secs")
    else out=$(LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/crypto.lua "$secs"); fi
    for k in azcmk_rs256_sign azcmk_oaep256_encrypt azcmk_rs256_verify azcmk_rsa15_encrypt; do
      az[$v.$k]="${az[$v.$k]:-} $(get "$out" $k)"
    done
  done
done
ossl_sign=$(best "${os[@]}"); ossl_verify=$(best "${ov[@]}"); cref=$(best "${cr[@]}")
# shellcheck disable=SC2086
pick() { best ${az[$1.$2]}; }
row() { printf '%-36s %10.1f  %-26s %10.1f %7.3f\n' "$1" "$2" "$3" "$4" "$(echo "$2 / $4" | bc -l)"; }

printf '%-36s %10s  %-26s %10s %7s\n' "azcmk (RSA-2048, 1 thread)" "ops/s" "reference" "ops/s" "ratio"
for v in 5.4 jit; do
  row "RS256 sign (lua$v)" "$(pick $v azcmk_rs256_sign)" "openssl speed sign/s" "$ossl_sign"
  row "RSA-OAEP-256 encrypt (lua$v)" "$(pick $v azcmk_oaep256_encrypt)" "openssl speed verify/s" "$ossl_verify"
  row "RSA-OAEP-256 encrypt (lua$v)" "$(pick $v azcmk_oaep256_encrypt)" "OpenSSL from C, OAEP-256" "$cref"
  row "RS256 verify (lua$v)" "$(pick $v azcmk_rs256_verify)" "openssl speed verify/s" "$ossl_verify"
  row "RSA1_5 encrypt (lua$v)" "$(pick $v azcmk_rsa15_encrypt)" "openssl speed verify/s" "$ossl_verify"
done
echo "best of $repeat runs of ${secs}s each"
echo "$(openssl version); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
