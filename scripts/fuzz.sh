#!/bin/bash
# Builds and runs the libFuzzer targets in fuzz/ (clang, ASan + UBSan).
#   scripts/fuzz.sh [fuzz_NAME ...]     FUZZ_SECONDS per target (default 60)
# Targets are executables, so unlike the module they link liblua to drive the core's
# real Lua entry points. Seeds live in fuzz/corpus/NAME/; new finds go to build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || for f in fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
mkdir -p build/fuzz
for t in "${targets[@]}"; do
  bin=build/fuzz/$t
  clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -I/usr/include/lua5.4 -Isrc "fuzz/$t.c" src/*.c -o "$bin" -llua5.4 -lcurl -lssl -lcrypto -lm
  corpus=build/fuzz/corpus-$t
  mkdir -p "$corpus"
  seeds=fuzz/corpus/$t
  [ -d "$seeds" ] || seeds=
  echo "fuzz: $t for ${secs}s"
  "$bin" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/ -print_final_stats=1 "$corpus" ${seeds:+"$seeds"} 2>&1 | tail -n 12
done
