#!/bin/bash
# `make demo`: the CMK story against the local emulator, readably.
# Grows with the project: each part shows what exists.
set -eu
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
az() { echo "\$ azcmk $*"; ./bin/azcmk "$@"; }

say "azcmk $(./bin/azcmk --version | cut -d' ' -f2)"
if [ ! -f lua/azcmk/emulator.lua ]; then
  ./bin/azcmk --help
  echo "(the emulator and the CMK verbs arrive with later parts)"
  exit 0
fi
DIR=build/demo-emulator
./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1 || true
say "start the local Azure emulator"
# free ports unless AZCMK_DEMO_PORT names them (N, N+1, N+2)
eval "$(./bin/azcmk emulator start ${AZCMK_DEMO_PORT:+--port "$AZCMK_DEMO_PORT"} --dir "$DIR" --only azcmk)"
trap './bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1' EXIT
./bin/azcmk emulator status --dir "$DIR"
if [ -f scripts/demo-story.sh ]; then
  # shellcheck source=/dev/null
  . scripts/demo-story.sh
fi
