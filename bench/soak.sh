#!/bin/bash
# Soak: the CMK story (setup, show, rotate, revoke, restore, doctor) run again and again under
# the emulator's random faults and SIGKILLs, checking after each run that nothing was
# duplicated or lost (bench/soak.lua says what is faulted and checked; bench/README.md keeps
# the figures). Starts its own emulator (throttling off: the faults are the point here).
#   bench/soak.sh [RUNS_PER_RATE] [RATES] [KILL]    defaults: 200, "0.2 0.4", 0.1
#   bench/soak.sh --short                           10 runs at 20% (the make test stage)
#   SOAK_PORT=N      the emulator's port (default: a free one);  SOAK_PROGRESS=1: a line per run
#   SOAK_SHARDS=N    N emulators and drivers side by side, RUNS split among them (counts summed)
#   SOAK_DIR=DIR     the emulator's directory (default build/soak-emulator); SOAK_SEED=N: the seed
# Exit 1 when a run found a duplicate or a loss (runs that gave up are counted apart).
set -euo pipefail
cd "$(dirname "$0")/.."
# --short (make test) picks its faults from a fixed seed, so a red run can be replayed
SEED=${SOAK_SEED:-}
if [ "${1:-}" = "--short" ]; then RUNS=10; RATES="0.2"; KILL=0.2; SEED=${SEED:-1}
else RUNS=${1:-200}; RATES=${2:-"0.2 0.4"}; KILL=${3:-0.1}; fi
[ -f build/5.4/azcmk/core.so ] || make -s all
DIR=${SOAK_DIR:-build/soak-emulator}
SHARDS=${SOAK_SHARDS:-1}

# One shard: its own emulator (faults are global to an emulator), RUNS_OF runs per rate.
shard() {  # shard INDEX RUNS_OF OUT
  local d="$DIR" port="${SOAK_PORT:-}" rc=0
  if [ "$SHARDS" -gt 1 ]; then d="$DIR-$1"; port=""; fi
  (
    ./bin/azcmk emulator stop --dir "$d" >/dev/null 2>&1 || true
    eval "$(AZCMK_EMULATOR_THROTTLE=off ./bin/azcmk emulator start ${port:+--port "$port"} --dir "$d" \
      --only azcmk 2>/dev/null)"
    trap './bin/azcmk emulator stop --dir "$d" >/dev/null 2>&1' EXIT
    for rate in $RATES; do
      LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/soak.lua "$2" "$rate" "$KILL" "$(( ${SEED:-$RANDOM} + $1 ))" \
        || rc=1
    done
    exit $rc
  ) >"$3"
}

if [ "$SHARDS" -le 1 ]; then shard 0 "$RUNS" /dev/stdout; exit $?; fi
# Shards run side by side (a run mostly waits: retry back-offs, held answers); their counts add
# up (seconds: the slowest shard's).
per=$(( (RUNS + SHARDS - 1) / SHARDS )) rc=0 pids=()
for i in $(seq 1 "$SHARDS"); do shard "$i" "$per" "$DIR-$i.out" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || rc=1; done
cat "$DIR"-*.out
for rate in $RATES; do
  pct=$(awk -v r="$rate" 'BEGIN { printf "%.0f%%", r * 100 }')
  grep -h "^soak rate=$pct " "$DIR"-*.out | awk -v shards="$SHARDS" '
    { for (i = 1; i <= NF; i++) { t = $i; gsub(/[\[\]]/, "", t)
        if (t ~ /^[a-z_:0-9]+=[0-9]+$/) { split(t, kv, "="); if (!(kv[1] in sum)) order[++n] = kv[1]
          sum[kv[1]] = kv[1] == "seconds" ? (kv[2] > sum[kv[1]] ? kv[2] : sum[kv[1]]) : sum[kv[1]] + kv[2] } }
      head = $2 " " $3 }
    END { line = "soak total (" shards " shards) " head; for (i = 1; i <= n; i++) line = line " " order[i] "=" sum[order[i]]
          print line }'
done
exit $rc
