#!/bin/bash
# Fleet audit benchmark: a private emulator (started and stopped here) throttling at Azure's
# numbers with a modelled round trip; the fleet seeded through ARM, then `azcmk audit -o ndjson`
# timed as a process (bench/audit.lua; bench/README.md, "Audit").
#   bench/audit.sh [subs=100] [per_sub=100] [cmk_share=0.1] [keys=20] [latency_ms=20] [concurrency=32]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || make -s all
dir=build/bench/audit-emulator
mkdir -p build/bench
# Azure's limits (on = the published numbers; docs/emulator.md, "Throttling")
lines=$(AZCMK_EMULATOR_THROTTLE=on ./bin/azcmk emulator start ${BENCH_PORT:+--port "$BENCH_PORT"} --dir "$dir" --only azcmk) || exit 1
eval "$lines"
trap './bin/azcmk emulator stop --dir "$dir" >/dev/null 2>&1' EXIT
BENCH_OUT=build/bench LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/audit.lua "$@"
