#!/bin/bash
# Pipeline overhead per ARM call and token-cache hits, Lua 5.4 and LuaJIT, against a private
# emulator (started and stopped here).   bench/pipeline.sh [calls]    BASE=REV: REV's lua/ too
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || make -s all
dir=build/bench/pipeline-emulator
mkdir -p build/bench
lines=$(./bin/azcmk emulator start ${BENCH_PORT:+--port "$BENCH_PORT"} --dir "$dir" --only azcmk) || exit 1
eval "$lines"
trap './bin/azcmk emulator stop --dir "$dir" >/dev/null 2>&1' EXIT
trees=("lua")
if [ -n "${BASE:-}" ]; then     # BASE=REV: also REV's lua/ (git archive), taken in turns
  rm -rf build/bench/base-pipeline && mkdir -p build/bench/base-pipeline
  git archive "$BASE" lua | tar -x -C build/bench/base-pipeline
  trees=("build/bench/base-pipeline/lua" "lua")
fi
for tree in "${trees[@]}"; do
  export BENCH_LUA_DIR=$tree
  echo "--- Lua 5.4 ($tree)"
  LUA_CPATH="build/5.4/?.so;;" lua5.4 bench/pipeline.lua "$n"
  echo "--- LuaJIT ($tree)"
  LUA_CPATH="build/jit/?.so;;" luajit bench/pipeline.lua "$n"
done
