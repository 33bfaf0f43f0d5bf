#!/bin/bash
# Audit benchmark: 1,000 registries (10 % with CMK) in a private emulator (started and stopped
# here); `azcmk audit`'s parallel fetch vs a sequential loop doing the same GETs, on loopback and
# with a 20 ms delay per request, Lua 5.4 then LuaJIT.
#   bench/audit.sh [registries=1000] [cmk_share=0.1] [delay_ms=20] [concurrency=32]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || make -s all
dir=build/bench/audit-emulator
mkdir -p build/bench
# (throttling off: this measures the fetch itself; behind Azure's limits it would measure waits)
lines=$(AZCMK_EMULATOR_THROTTLE=off ./bin/azcmk emulator start ${BENCH_PORT:+--port "$BENCH_PORT"} --dir "$dir" --only azcmk) || exit 1
eval "$lines"
trap './bin/azcmk emulator stop --dir "$dir" >/dev/null 2>&1' EXIT
echo "--- Lua 5.4"
LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/audit.lua "$@"
echo "--- LuaJIT"
LUA_CPATH="build/jit/?.so;;" luajit bench/audit.lua "$@"
