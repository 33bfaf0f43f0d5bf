#!/bin/bash
# Instructions per ARM call (valgrind callgrind, user space only) that the pipeline adds to a
# raw azcmk.http GET, Lua 5.4 and LuaJIT, against a private emulator. Instruction counts do
# not move with the host's load, unlike CPU time (bench/pipeline.sh). Each figure is
# (Ir of a 1500-call run - Ir of a 500-call run) / 1000, so start-up cancels out.
#   bench/pipeline_ir.sh              this checkout's lua/
#   BASE=REV bench/pipeline_ir.sh     also REV's lua/ (git archive), measured in the same run
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || make -s all
mkdir -p build/bench
dir=build/bench/pipeline-ir-emulator
lines=$(./bin/azcmk emulator start ${BENCH_PORT:+--port "$BENCH_PORT"} --dir "$dir" --only azcmk) || exit 1
eval "$lines"
trap './bin/azcmk emulator stop --dir "$dir" >/dev/null 2>&1' EXIT
trees=("lua")
if [ -n "${BASE:-}" ]; then
  rm -rf build/bench/base && mkdir -p build/bench/base
  git archive "$BASE" lua | tar -x -C build/bench/base
  trees=("build/bench/base/lua" "lua")
fi

ir() {  # ir CPATH LUA_DIR INTERP MODE N -> total Ir
  BENCH_LUA_DIR=$2 LUA_CPATH="$1" valgrind --tool=callgrind --callgrind-out-file=build/bench/callgrind-p.out \
    "$3" bench/pipeline_ir.lua "$4" "$5" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' build/bench/callgrind-p.out
}
per_call() {  # per_call CPATH LUA_DIR INTERP MODE
  local a b
  a=$(ir "$1" "$2" "$3" "$4" 500)
  b=$(ir "$1" "$2" "$3" "$4" 1500)
  echo $(( (b - a) / 1000 ))
}
printf '%-22s %-8s %12s %12s %12s\n' "lua tree" "interp" "raw Ir/call" "p:arm Ir/call" "pipeline adds"
for tree in "${trees[@]}"; do
  for interp in lua5.4 luajit; do
    if [ $interp = lua5.4 ]; then cpath="build/5.4/?.so;;"; else cpath="build/jit/?.so;;"; fi
    raw=$(per_call "$cpath" "$tree" $interp raw)
    pipe=$(per_call "$cpath" "$tree" $interp pipeline)
    printf '%-22s %-8s %12s %12s %12s\n' "$tree" $interp "$raw" "$pipe" $((pipe - raw))
  done
done
