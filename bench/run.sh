#!/bin/bash
# Runs every benchmark script in bench/ (bench/*.sh except this one), one after another.
# `make bench` calls it. Benchmarks are never run inside the specs.
#   bench/run.sh [NAME ...]      e.g. bench/run.sh http startup
set -uo pipefail
cd "$(dirname "$0")/.."
scripts=()
if [ $# -gt 0 ]; then
  for n in "$@"; do scripts+=("bench/${n%.sh}.sh"); done
else
  for f in bench/*.sh; do [ "$(basename "$f")" = run.sh ] || scripts+=("$f"); done
fi
echo "machine: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(uname -sr)"
rc=0
for s in "${scripts[@]}"; do
  echo "=== $s"
  bash "$s" || { echo "--- $s failed"; rc=1; }
done
exit $rc
