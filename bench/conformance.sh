#!/bin/bash
# Peer benchmark: the CMK job end to end (process start included) through the official Azure SDK
# for JavaScript (conformance/cmk-flow.mjs) and through azcmk's pipeline
# (bench/conformance-flow.lua, Lua 5.4 and LuaJIT), against the same emulator, with hyperfine.
#   bench/conformance.sh [RUNS]     (default 10 runs per command after 2 warm-ups; ROUNDS=5)
#   BENCH_CONF_PORT (19543), BENCH_CONF_DIR (build/bench-conformance-emulator)
#
# Before every run (outside the timing) the emulator is reset (POST /_emulator/reset) so each
# run meets the same state, and set to Retry-After: 0 on LROs and no "being deleted" phase for
# deleted keys (delete_seconds 0), so the figures measure the clients, not waits the service
# asks for; then it gets BENCH_CONF_SETTLE seconds (1.5) to settle. The job creates three RSA
# keys: the emulator takes them from DIR/keypool, which its background generator (nice 19,
# outside nginx) keeps at 32 spare keys, so no key is generated inside a run (bench/README.md).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-${RUNS:-10}}
PORT=${BENCH_CONF_PORT:-19543}
DIR=$(realpath -m "${BENCH_CONF_DIR:-build/bench-conformance-emulator}")
OUT=build/bench-conformance.json

command -v hyperfine >/dev/null || { echo "hyperfine is not installed"; exit 1; }
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || { echo "run make first"; exit 1; }
CONFORMANCE_INSTALL_ONLY=1 ./scripts/conformance.sh || exit 1

./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1
# throttling off: the timed job, not Azure's limits (the conformance stage of make test keeps them on)
env_lines=$(AZCMK_EMULATOR_THROTTLE=off ./bin/azcmk emulator start --port "$PORT" --dir "$DIR" --only azcmk 2>/dev/null) ||
  { echo "emulator failed to start"; exit 1; }
eval "$env_lines"
trap '"$ROOT/bin/azcmk" emulator stop --dir "$DIR" >/dev/null 2>&1' EXIT
unset HTTPS_PROXY HTTP_PROXY ALL_PROXY https_proxy http_proxy all_proxy NO_PROXY no_proxy AZCMK_LOG AZURE_LOG_LEVEL
export NODE_EXTRA_CA_CERTS=$AZCMK_CA_FILE AZURE_AUTHORITY_HOST=https://login.microsoftonline.com
export CMK_FLOW_CORE=1   # the JS flow does exactly the CMK job of bench/conformance-flow.lua

control() {
  curl -sf --connect-to "::127.0.0.1:$PORT" --cacert "$AZCMK_CA_FILE" -X "$1" \
    -H 'Content-Type: application/json' ${3:+-d "$3"} "https://management.azure.com/_emulator/$2"
}
control POST config '{"lro":{"polls":0,"seconds":0,"retry_after":0}}' >/dev/null || { echo "emulator config failed"; exit 1; }
# POST /_emulator/reset also resets the LRO config: set it again after every reset (untimed).
PREPARE_SH=$ROOT/build/bench-conformance-prepare.sh
cat > "$PREPARE_SH" <<EOF
#!/bin/bash
c() { curl -sf --connect-to ::127.0.0.1:$PORT --cacert $AZCMK_CA_FILE -X POST -H 'Content-Type: application/json' "\$@"; }
c https://management.azure.com/_emulator/reset >/dev/null &&
  c -d '{"lro":{"polls":0,"seconds":0,"retry_after":0}}' https://management.azure.com/_emulator/config >/dev/null &&
  c -d '{"delete_seconds":0}' https://management.azure.com/_emulator/keyvault >/dev/null &&
  sleep \${BENCH_CONF_SETTLE:-1.5}
EOF
PREPARE="bash $PREPARE_SH"

JS="node --require $ROOT/conformance/loopback.cjs $ROOT/conformance/cmk-flow.mjs"
L54="lua5.4 $ROOT/bench/conformance-flow.lua"
LJ="luajit $ROOT/bench/conformance-flow.lua"
JS0="node --require $ROOT/conformance/loopback.cjs $ROOT/conformance/imports-only.mjs"   # baseline: start + imports

# Both sides must pass the whole job before they are timed.
for c in "$JS" "$L54" "$LJ"; do
  $PREPARE || { echo "emulator reset failed"; exit 1; }
  out=$(cd conformance && $c 2>&1) || { echo "$out" | grep -v '^ok '; echo "--- '$c' failed; not benchmarking"; exit 1; }
done

# The machine is shared (other jobs come and go), so the runs are interleaved: ROUNDS rounds
# (default 5), each timing every command RUNS/ROUNDS times; medians are over all rounds.
ROUNDS=${ROUNDS:-5}
PER=$(( (RUNS + ROUNDS - 1) / ROUNDS ))
rm -f build/bench-conformance-round-*.json
for r in $(seq 1 "$ROUNDS"); do
  hyperfine -N --style none --warmup $([ "$r" = 1 ] && echo 2 || echo 0) --runs "$PER" --prepare "$PREPARE" \
    --export-json "build/bench-conformance-round-$r.json" \
    -n "js-sdk (node $(node --version))" "$JS" -n "azcmk (Lua 5.4)" "$L54" -n "azcmk (LuaJIT)" "$LJ" \
    -n "js-sdk start + imports only (no requests)" "$JS0" || exit 1
done
python3 - "$OUT" build/bench-conformance-round-*.json <<'EOF'
import json, sys
merged = None
for f in sys.argv[2:]:
    res = json.load(open(f))["results"]
    if merged is None:
        merged = [dict(command=r["command"], times=[], user=[], system=[]) for r in res]
    for m, r in zip(merged, res):
        m["times"] += r["times"]; m["user"].append(r["user"]); m["system"].append(r["system"])
for m in merged:
    m["user"] = sum(m["user"]) / len(m["user"]); m["system"] = sum(m["system"]) / len(m["system"])
json.dump({"results": merged}, open(sys.argv[1], "w"), indent=1)
EOF

health=$(control GET health)
python3 - "$OUT" "$health" <<'EOF'
import json, sys, statistics
res = json.load(open(sys.argv[1]))["results"]
js = res[0]
js_med = statistics.median(js["times"])
js_cpu = js["user"] + js["system"]
print("\n| client | median wall (ms) | min | max | runs | JS SDK / client (wall) | client CPU user+sys (ms, mean) | JS SDK / client (CPU) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in res:
    m = statistics.median(r["times"])
    cpu = r["user"] + r["system"]
    print(f"| {r['command']} | {m*1000:.0f} | {min(r['times'])*1000:.0f} | {max(r['times'])*1000:.0f} | "
          f"{len(r['times'])} | {js_med/m:.1f}x | {cpu*1000:.0f} | {js_cpu/cpu:.1f}x |")
h = json.loads(sys.argv[2])
print(f"\nemulator internal_errors: {h['internal_errors']}")
sys.exit(1 if h["internal_errors"] else 0)
EOF
