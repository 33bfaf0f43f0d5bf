#!/bin/bash
# Emulator throughput: wrk over keep-alive HTTPS (HTTP/1.1) on loopback against
#   1. GET /_emulator/health                         (routing + JSON, no auth)
#   2. GET /subscriptions/{sub}?api-version=...       (cheap authenticated ARM GET: bearer token
#                                                      check, RBAC lookup in the shared dict, JSON)
#   3. GET .../resourcegroups/{rg}?api-version=...    (authenticated GET of a stored resource)
# Target: >= 5,000 requests/s for the simple GETs. Starts its own emulator (2 workers).
#   bench/emulator.sh [seconds] [connections]      (defaults 10 s, 32 connections, 2 wrk threads)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-32}
command -v wrk >/dev/null || { echo "wrk not installed (scripts/deps.sh)"; exit 1; }
[ -f build/jit/azcmk/core.so ] || make -s all
PORT=${BENCH_EMULATOR_PORT:-18743}
DIR=build/bench-emulator
./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1 || true
# Throttling off: one principal at thousands of requests/s would only measure 429s. The last
# case turns it on with a budget no run meets, to show what counting costs per request.
eval "$(AZCMK_EMULATOR_THROTTLE=off ./bin/azcmk emulator start --port "$PORT" --dir "$DIR" --only azcmk 2>/dev/null)"
C=(curl -sS --cacert "$AZCMK_CA_FILE" --connect-to "::127.0.0.1:$PORT")
# Secrets never go on a command line (argv is world-readable in /proc): the client secret and the
# bearer header are read from 0600 files by curl, and by wrk's Lua script from the environment.
SECRETS=$(umask 077 && mktemp -d)
trap 'rm -rf "$SECRETS"; ./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1' EXIT
printf %s "$AZURE_CLIENT_SECRET" > "$SECRETS/client_secret"
TOKEN=$("${C[@]}" "https://login.microsoftonline.com/$AZURE_TENANT_ID/oauth2/v2.0/token" \
  -d grant_type=client_credentials -d "client_id=$AZURE_CLIENT_ID" --data-urlencode "client_secret@$SECRETS/client_secret" \
  -d scope=https://management.azure.com/.default | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
printf 'Authorization: Bearer %s\n' "$TOKEN" > "$SECRETS/auth-header"
export BENCH_BEARER=$TOKEN
cat > "$SECRETS/auth.lua" <<'EOF'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_BEARER")
EOF
RG="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourcegroups/bench"
"${C[@]}" -o /dev/null -X PUT "https://management.azure.com$RG?api-version=2024-11-01" \
  -H @"$SECRETS/auth-header" -H 'Content-Type: application/json' -d '{"location":"westus"}'

# CPU time (utime + stime, clock ticks) of the emulator's nginx workers: CPU cost per request
# is a steadier figure than req/s on a shared machine.
MASTER=$(cat "$DIR/nginx.pid")
TICK=$(getconf CLK_TCK)
worker_ticks() {
  local t=0 p
  for p in $(pgrep -P "$MASTER"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}

run() {
  local name=$1 url=$2; shift 2
  # warm-up, then the measured run
  wrk -t2 -c"$CONNS" -d3s "$@" "$url" >/dev/null
  local out rps t0 t1 reqs
  t0=$(worker_ticks)
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency "$@" "$url")
  t1=$(worker_ticks)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  local p50 p99 non2xx us
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  us=$(awk -v d=$((t1 - t0)) -v n="$reqs" -v hz="$TICK" 'BEGIN { printf "%.0f", d / hz * 1e6 / n }')
  printf "%-44s %10s req/s   p50 %-8s p99 %-8s non-2xx %-3s nginx CPU %s us/req\n" "$name" "$rps" "$p50" "$p99" \
    "${non2xx:-0}" "$us"
}
echo "emulator bench: ${SECS}s per case, $CONNS keep-alive connections, 2 wrk threads, 2 nginx workers"
run "GET /_emulator/health" "https://127.0.0.1:$PORT/_emulator/health" -H "Host: management.azure.com"
run "GET /subscriptions/{sub} (authenticated)" "https://127.0.0.1:$PORT/subscriptions/$AZURE_SUBSCRIPTION_ID?api-version=2022-12-01" \
  -H "Host: management.azure.com" -s "$SECRETS/auth.lua"
run "GET resource group (authenticated)" "https://127.0.0.1:$PORT$RG?api-version=2024-11-01" \
  -H "Host: management.azure.com" -s "$SECRETS/auth.lua"
"${C[@]}" -o /dev/null https://management.azure.com/_emulator/config -d '{"throttle":{"enabled":true,"scale":1e6}}'
run "GET resource group (throttling counts)" "https://127.0.0.1:$PORT$RG?api-version=2024-11-01" \
  -H "Host: management.azure.com" -s "$SECRETS/auth.lua"
errs=$("${C[@]}" https://management.azure.com/_emulator/health | sed 's/.*"internal_errors":\([0-9]*\).*/\1/')
echo "internal errors after the run: $errs"
