#!/bin/bash
# How long `azcmk emulator start` takes (target: well under a second), with a fresh and with a
# reused directory. hyperfine runs each several times; each run stops the emulator it started
# (in --prepare of the next run), so only the start is timed.
set -eu
cd "$(dirname "$0")/.."
PORT=${BENCH_EMU_PORT:-47443}
DIR=$(mktemp -d)
stop_all() { ./bin/azcmk emulator stop --dir "$DIR/fresh" >/dev/null 2>&1 || true
             ./bin/azcmk emulator stop --dir "$DIR/reused" >/dev/null 2>&1 || true; }
trap 'stop_all; rm -rf "$DIR"' EXIT
./bin/azcmk emulator start --port "$PORT" --dir "$DIR/reused" >/dev/null
./bin/azcmk emulator stop --dir "$DIR/reused" >/dev/null
hyperfine -N --warmup 1 --runs "${RUNS:-5}" \
  --prepare "sh -c './bin/azcmk emulator stop --dir $DIR/fresh; ./bin/azcmk emulator stop --dir $DIR/reused; rm -rf $DIR/fresh' >/dev/null 2>&1" \
  -n "start (fresh dir)" "./bin/azcmk emulator start --port $PORT --dir $DIR/fresh" \
  -n "start (reused dir)" "./bin/azcmk emulator start --port $PORT --dir $DIR/reused"
