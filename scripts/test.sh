#!/bin/bash
# Runs every test stage of `make test` and ends with one line "N passed, N failed".
# Busted stages count their own tests; other stages (lint, fuzzers, packaging) count as one each.
#   AZCMK_TEST_PORT=N  emulators on fixed ports: N.. (the suite's), N+3.. (conformance),
#                      N+6.. (conformance-az), N+9.. (soak); unset: free ports
#   TEST_ONLY="a b"    run only these stages;  TEST_OUT=DIR  logs there (default build)
set -u
cd "$(dirname "$0")/.."
OUT=${TEST_OUT:-build}
mkdir -p "$OUT"
LOG=$OUT/test.log
: > "$LOG"
passed=0
failed=0
failed_stages=""

# Sums busted's "N successes / N failures / N errors" summary from a stage's output.
count_busted() {
  local out=$1 s f e
  read -r s f e < <(sed 's/\x1b\[[0-9;]*m//g' "$out" | grep -E '^[0-9]+ success' | tail -n 1 |
    sed -E 's/^([0-9]+) successes? \/ ([0-9]+) failures? \/ ([0-9]+) errors?.*/\1 \2 \3/')
  if [ -z "${s:-}" ]; then echo "0 1"; else echo "$s $((f + e))"; fi
}

# stage NAME KIND COMMAND...   KIND is busted (counted from output) or check (one test).
stage() {
  local name=$1 kind=$2; shift 2
  case " ${TEST_ONLY:-$name} " in *" $name "*) ;; *) return 0 ;; esac
  local out="$OUT/stage-$name.out" rc p f
  echo "=== $name: $*" | tee -a "$LOG"
  "$@" > "$out" 2>&1
  rc=$?
  cat "$out" >> "$LOG"
  if [ "$kind" = busted ]; then
    read -r p f < <(count_busted "$out")
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  else
    if [ $rc -eq 0 ]; then p=1; f=0; else p=0; f=1; fi
  fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -ne 0 ] || [ "$f" -ne 0 ]; then
    failed_stages="$failed_stages $name"
    echo "--- $name FAILED (rc=$rc); last lines:"; tail -n 40 "$out"
  else
    echo "--- $name ok: $p passed"
  fi
}

# The https port at offset $1 from AZCMK_TEST_PORT, or nothing (the emulator picks free ports).
port_at() { [ -z "${AZCMK_TEST_PORT:-}" ] || echo $((AZCMK_TEST_PORT + $1)); }

# One emulator serves every integration spec of the run (specs start their own when run alone).
# azcmk's own variables only: the specs talk to it directly, not through its proxy.
EMU_DIR=$OUT/test-emulator
if [ -f lua/azcmk/emulator.lua ]; then
  ./bin/azcmk emulator stop --dir "$EMU_DIR" >/dev/null 2>&1
  p0=$(port_at 0)
  # Throttling: Azure's buckets x1000 (spec/support/emulator_throttle.json; docs/emulator.md)
  if env_lines=$(AZCMK_EMULATOR_THROTTLE="$(cat spec/support/emulator_throttle.json)" \
      ./bin/azcmk emulator start ${p0:+--port "$p0"} --dir "$EMU_DIR" --only azcmk); then
    eval "$env_lines"
    trap './bin/azcmk emulator stop --dir "$EMU_DIR" >/dev/null 2>&1' EXIT
  else
    echo "emulator failed to start"; failed=$((failed + 1)); failed_stages="$failed_stages emulator"
  fi
fi

ASAN_LIBS="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"

stage luacheck check luacheck -q .
# lua/azcmk: no require cycle (lazy requires too), no layer requiring one above it
stage require-graph check ./scripts/require-graph
stage busted-lua54 busted lua5.4 /usr/bin/busted --run=default spec
stage busted-luajit busted luajit /usr/bin/busted --run=jit --exclude-tags=lua54 spec
# The official JMESPath compliance suite, one test per case (scripts/jmespath-suite.sh fetches it).
JP_SUITE=$(./scripts/jmespath-suite.sh) || JP_SUITE=""
for lua in lua5.4 luajit; do
  run=default; [ "$lua" = luajit ] && run=jit
  stage "jmespath-compliance-$lua" busted env JMESPATH_SUITE="$JP_SUITE" "$lua" /usr/bin/busted --run=$run \
    spec/jmespath/compliance_suite.lua
done
stage core-asan busted env LD_PRELOAD="$ASAN_LIBS" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 lua5.4 /usr/bin/busted --run=asan spec/core
stage core-valgrind busted valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  lua5.4 /usr/bin/busted --run=default --exclude-tags=slow spec/core
for t in fuzz/fuzz_*.c; do
  [ -e "$t" ] || continue
  n=$(basename "$t" .c)
  stage "$n" check env FUZZ_SECONDS="${FUZZ_SECONDS:-8}" ./scripts/fuzz.sh "$n"
done
stage rockspec check ./scripts/rockspec-check.sh
# The official Azure SDK for JavaScript runs the CMK job against its own emulator (conformance/README.md).
stage conformance check env CONFORMANCE_PORT="$(port_at 3)" \
  CONFORMANCE_DIR="$OUT/test-conformance-emulator" ./scripts/conformance.sh
# Debian's azure-cli runs the article, the Python SDK the CMK job, recorded Azure traffic is replayed.
stage conformance-az check env CONFORMANCE_AZ_PORT="$(port_at 6)" \
  CONFORMANCE_AZ_DIR="$OUT/test-conformance-az-emulator" ./scripts/conformance-az.sh
# A short soak: the CMK story under random faults and SIGKILLs, 0 duplicates and 0 losses (bench/soak.sh).
stage soak check env SOAK_PORT="$(port_at 9)" SOAK_DIR="$OUT/test-soak-emulator" ./bench/soak.sh --short

# A failed stage's failing cases again at the end, where a truncated CI log still shows them.
for name in $failed_stages; do
  echo "failed stage $name:"
  sed 's/\x1b\[[0-9;]*m//g' "$OUT/stage-$name.out" | grep -E -A3 '^(Failure|Error) ' | head -n 40
done
[ -n "$failed_stages" ] && echo "failed stages:$failed_stages"
echo "$passed passed, $failed failed" | tee "$OUT/test-summary.txt"
[ -z "$failed_stages" ]
