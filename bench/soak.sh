#!/bin/bash
# Soak: the CMK story (setup, show, rotate, revoke, restore, doctor) run again and again under
# the emulator's random faults and SIGKILLs, checking after each run that nothing was
# duplicated or lost (bench/soak.lua says what is faulted and checked; bench/README.md keeps
# the figures). Starts its own emulator (throttling off: the faults are the point here).
#   bench/soak.sh [RUNS_PER_RATE] [RATES] [KILL]    defaults: 100, "0.2 0.4", 0.1
#   bench/soak.sh --short                           10 runs at 20% (the make test stage)
#   SOAK_PORT=N      the emulator's port (default: a free one);  SOAK_PROGRESS=1: a line per run
#   SOAK_DIR=DIR     the emulator's directory (default build/soak-emulator); SOAK_SEED=N: the seed
# Exit 1 when a run found a duplicate or a loss (runs that gave up are counted apart).
set -euo pipefail
cd "$(dirname "$0")/.."
# --short (make test) picks its faults from a fixed seed, so a red run can be replayed
SEED=${SOAK_SEED:-}
if [ "${1:-}" = "--short" ]; then RUNS=10; RATES="0.2"; KILL=0.2; SEED=${SEED:-1}
else RUNS=${1:-100}; RATES=${2:-"0.2 0.4"}; KILL=${3:-0.1}; fi
[ -f build/5.4/azcmk/core.so ] || make -s all
DIR=${SOAK_DIR:-build/soak-emulator}
./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1 || true
eval "$(AZCMK_EMULATOR_THROTTLE=off ./bin/azcmk emulator start ${SOAK_PORT:+--port "$SOAK_PORT"} --dir "$DIR" \
  --only azcmk 2>/dev/null)"
trap './bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1' EXIT
rc=0
for rate in $RATES; do
  LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/soak.lua "$RUNS" "$rate" "$KILL" "${SEED:-$RANDOM}" || rc=1
done
exit $rc
