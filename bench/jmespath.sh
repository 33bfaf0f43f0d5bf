#!/bin/bash
# JMESPath (--query) on a 1,000-registry audit result: azcmk.jmespath (Lua 5.4, LuaJIT) vs the
# Python jmespath the Azure CLI runs (Debian's python3-jmespath, /usr/bin/python3) and the
# JavaScript jmespath.js (the npm package scripts/jmespath-suite.sh installs), same data, same
# queries, CPU time per search of a compiled query and per compile, in one run.
#   bench/jmespath.sh [registries=1000] [seconds=2]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
secs=${2:-2}
mkdir -p build/bench
data=build/bench/jmespath-audit.json
mapfile -t queries < <(lua5.4 bench/jmespath.lua write "$data" "$n")
suite=$(./scripts/jmespath-suite.sh)
jsmod=${suite%/test/compliance}

out=build/bench/jmespath.out
{
lua5.4 bench/jmespath.lua run "$n" "$secs"
luajit bench/jmespath.lua run "$n" "$secs"

/usr/bin/python3 - "$data" "$secs" "${queries[@]}" <<'PY'
import json, sys, time
import jmespath
data = json.load(open(sys.argv[1]))
secs = float(sys.argv[2])
for expr in sys.argv[3:]:
    q = jmespath.compile(expr)
    q.search(data)
    count, t0 = 0, time.process_time()
    while time.process_time() - t0 < secs:
        for _ in range(10):
            q.search(data)
        count += 10
    per = (time.process_time() - t0) / count
    # jmespath.compile caches parsed expressions: parse with a fresh Parser to time the work
    from jmespath.parser import Parser
    c0, compiles = time.process_time(), 0
    while time.process_time() - c0 < secs / 4:
        for _ in range(100):
            Parser()._parse(expr)
        compiles += 100
    print("%-8s search %9.1f us  compile %6.1f us  %s" % ("Python", per * 1e6,
          (time.process_time() - c0) / compiles * 1e6, expr))
PY

node - "$data" "$secs" "$jsmod" "${queries[@]}" <<'JS'
const [data, secs, mod, ...queries] = process.argv.slice(2);
const jmespath = require(mod);
const value = JSON.parse(require("fs").readFileSync(data, "utf8"));
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
for (const expr of queries) {
  const ast = jmespath.compile(expr);
  const tree = () => jmespath.search(value, expr);
  tree();
  let count = 0; const t0 = cpu();
  while (cpu() - t0 < Number(secs)) { for (let i = 0; i < 10; i++) jmespath.search(value, expr); count += 10; }
  const per = (cpu() - t0) / count;
  let compiles = 0; const c0 = cpu();
  while (cpu() - c0 < Number(secs) / 4) { for (let i = 0; i < 100; i++) jmespath.compile(expr); compiles += 100; }
  void ast;
  console.log(`${"Node".padEnd(8)} search ${(per * 1e6).toFixed(1).padStart(9)} us  compile ${((cpu() - c0) / compiles * 1e6).toFixed(1).padStart(6)} us  ${expr}`);
}
JS
} | tee "$out"

# Python's CPU time per search / each implementation's (above 1: faster than az's jmespath)
echo "--- speed-up over the Python jmespath (search of a compiled query)"
awk '{ impl = $1; if ($1 == "Lua") impl = "Lua5.4"; t = (impl == "Lua5.4") ? $4 : $3
       q = (impl == "Lua5.4") ? 9 : 8; expr = ""; for (i = q; i <= NF; i++) expr = expr " " $i
       time[impl, expr] = t; if (!(expr in seen)) { seen[expr] = 1; order[++n] = expr } }
     END { for (i = 1; i <= n; i++) { e = order[i]
             printf "Lua 5.4 %5.2fx  LuaJIT %5.2fx  Node %5.2fx  %s\n", time["Python", e] / time["Lua5.4", e],
               time["Python", e] / time["LuaJIT", e], time["Python", e] / time["Node", e], e } }' "$out"
