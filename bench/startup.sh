#!/bin/bash
# Start-up cost: `require "azcmk"` (target < 5 ms; submodules load lazily) and, for
# reference, `require "azcmk.core"` (loads the C core with libcurl and OpenSSL), each minus
# a bare `lua5.4 -e ''`, measured with hyperfine (medians of many runs).
#   bench/startup.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
[ -f build/5.4/azcmk/core.so ] || make -s all
mkdir -p build/bench
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/5.4/?.so;;"
hyperfine -N --warmup 30 --runs "$runs" --export-json build/bench/startup.json \
  "lua5.4 -e ''" "lua5.4 -e 'require \"azcmk\"'" "lua5.4 -e 'require \"azcmk.core\"'" >/dev/null 2>&1
lua5.4 - build/bench/startup.json <<'LUA'
local cjson = require "cjson"
local f = assert(io.open(arg[1]))
local r = cjson.decode(f:read("*a")).results
f:close()
local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end
local base = median(r[1].times)
print(string.format("%-34s %9s %9s", "start-up (lua5.4, wall)", "median", "minus bare"))
for i, res in ipairs(r) do
  local m = median(res.times)
  local name = res.command:gsub("lua5.4 %-e ", "")
  print(string.format("%-34s %7.2f ms %7.2f ms", name, m * 1e3,
    i == 1 and 0 or (m - base) * 1e3))
end
LUA
# In-process CPU time of the require itself (os.clock in a fresh interpreter each time).
for _ in $(seq 100); do
  lua5.4 -e 'local c = os.clock; local t = c(); require "azcmk"; local a = c() - t
    t = c(); require "azcmk.core"; print(a * 1e3, (c() - t) * 1e3)'
done > build/bench/startup-cpu.txt
med() { awk -v c="$1" '{print $c}' build/bench/startup-cpu.txt | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
printf '%-34s %7.3f ms\n' "require \"azcmk\" (CPU, in-process)" "$(med 1)"
printf '%-34s %7.3f ms\n' "then require \"azcmk.core\" (CPU)" "$(med 2)"
