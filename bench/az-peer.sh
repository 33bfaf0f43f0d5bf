#!/bin/bash
# Peer benchmark against the article's own tool: the CMK article's flow through Debian's Azure CLI
# (its commands as the article gives them) and through azcmk, against ONE emulator with the same
# long-running-operation pacing (polls 0, Retry-After 0), in one run. Reports wall time, the
# requests each sent (counted in the emulator's request log) and the ratios.
#   bench/az-peer.sh [ROUNDS]   (default 3 rounds; each round runs both flows once, on fresh names)
#
# The job, both sides: resource group, user-assigned identity, Key Vault with purge protection,
# access policy (get, wrapKey, unwrapKey), RSA key, Premium registry with the versioned key,
# encryption show, a new key version, rotation to it.
#   az:    group create, identity create, identity show x2 (the article's $identityID and
#          $identityPrincipalID), keyvault create, keyvault show ($keyvaultID), set-policy, key
#          create and key show ($keyID) - sent by `az rest` because Debian's az 2.45 cannot run
#          `az keyvault key` (conformance/README.md) - acr create, acr encryption show, key create,
#          acr encryption rotate-key (with the client id). 13 az processes. Login is done before,
#          untimed (the article assumes a logged-in az).
#   azcmk: setup, show, rotate. 3 processes.
# Needs Debian's azure-cli (scripts/conformance-az.sh installs it) and `make`.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${1:-${ROUNDS:-3}}
DIR=$(realpath -m "${BENCH_AZ_DIR:-build/bench-az-peer-emulator}")
command -v az >/dev/null || { echo "az is not installed (scripts/conformance-az.sh installs Debian's)"; exit 1; }
[ -f build/5.4/azcmk/core.so ] && [ -f build/jit/azcmk/core.so ] || { echo "run make first"; exit 1; }

./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1
env_lines=$(./bin/azcmk emulator start ${BENCH_AZ_PORT:+--port "$BENCH_AZ_PORT"} --dir "$DIR" 2>/dev/null) ||
  { echo "emulator failed to start"; exit 1; }
eval "$env_lines"
AZURE_CONFIG_DIR=$(mktemp -d)
export AZURE_CONFIG_DIR AZURE_CORE_COLLECT_TELEMETRY=false AZURE_CORE_NO_COLOR=true
trap 'rm -rf "$AZURE_CONFIG_DIR"; "$ROOT/bin/azcmk" emulator stop --dir "$DIR" >/dev/null 2>&1' EXIT

# azcmk connects directly (AZCMK_CONNECT_TO), as its users run it; az goes through the proxy.
azcmk() { env -u HTTPS_PROXY -u https_proxy "$ROOT/bin/azcmk" "$@" >/dev/null 2>"$ROOT/build/bench-az-peer-azcmk.err"; }
emu() { curl -sf "https://management.azure.com/_emulator/$1" "${@:2}"; }
emu config -X POST -H 'Content-Type: application/json' -d '{"lro":{"polls":0,"seconds":0,"retry_after":0}}' \
  >/dev/null || { echo "emulator config failed"; exit 1; }
log_seq() { emu health | sed -E 's/.*"log_seq":([0-9]+).*/\1/'; }
# requests since a log sequence number, control API excluded
requests_since() { emu "log?since=$1" | grep -vc '"path":"/_emulator'; }
now() { date +%s.%N; }

az login --service-principal -u "$AZURE_CLIENT_ID" -p "$AZURE_CLIENT_SECRET" --tenant "$AZURE_TENANT_ID" \
  --output none || { echo "az login failed"; exit 1; }

az_flow() {  # $1: a suffix for fresh names
  local rg=azpeer-rg-$1 id=azpeer-id-$1 kv=azpeerkv$1 reg=azpeerreg$1 kvurl
  az group create --name "$rg" --location westus --output none &&
  az identity create --resource-group "$rg" --name "$id" --output none &&
  identityID=$(az identity show --resource-group "$rg" --name "$id" --query 'id' --output tsv) &&
  identityPrincipalID=$(az identity show --resource-group "$rg" --name "$id" --query 'principalId' --output tsv) &&
  az keyvault create --name "$kv" --resource-group "$rg" --enable-purge-protection --output none &&
  keyvaultID=$(az keyvault show --resource-group "$rg" --name "$kv" --query 'id' --output tsv) &&
  [ -n "$keyvaultID" ] &&
  az keyvault set-policy --resource-group "$rg" --name "$kv" --object-id "$identityPrincipalID" \
    --key-permissions get unwrapKey wrapKey --output none &&
  kvurl="https://$kv.vault.azure.net/keys/cmkkey" &&
  az rest --method post --url "$kvurl/create?api-version=7.4" --resource https://vault.azure.net \
    --body '{"kty":"RSA"}' --output none &&
  keyID=$(az rest --method get --url "$kvurl?api-version=7.4" --resource https://vault.azure.net \
    --query 'key.kid' --output tsv) &&
  az acr create --resource-group "$rg" --name "$reg" --identity "$identityID" --key-encryption-key "$keyID" \
    --sku Premium --output none &&
  az acr encryption show --name "$reg" --output none &&
  newKeyID=$(az rest --method post --url "$kvurl/create?api-version=7.4" --resource https://vault.azure.net \
    --body '{"kty":"RSA"}' --query 'key.kid' --output tsv) &&
  clientID=$(az identity show --resource-group "$rg" --name "$id" --query 'clientId' --output tsv) &&
  az acr encryption rotate-key --name "$reg" --key-encryption-key "$newKeyID" --identity "$clientID" --output none
}

azcmk_flow() {
  local rg=cmkpeer-rg-$1 kv=cmkpeerkv$1 reg=cmkpeerreg$1
  azcmk setup -g "$rg" -n "$reg" --vault "$kv" -l westus &&
  azcmk show -n "$reg" &&
  azcmk rotate -n "$reg"
}

measure() {  # name flow suffix -> "seconds requests"
  local s0 t0 t1
  s0=$(log_seq); t0=$(now)
  "$2" "$3" || { echo "FAILED: $1 flow" >&2; return 1; }
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc) $(requests_since "$s0")"
}

printf '%-6s %10s %9s %10s %9s %8s %8s\n' round "az s" "az req" "azcmk s" "azcmk req" "time x" "req x"
for r in $(seq 1 "$ROUNDS"); do
  sfx=$(printf '%02d%04x' "$r" $((RANDOM)))
  read -r az_s az_n < <(measure az az_flow "$sfx") || exit 1
  read -r cm_s cm_n < <(measure azcmk azcmk_flow "$sfx") || exit 1
  printf '%-6s %10.2f %9d %10.2f %9d %8.1f %8.1f\n' "$r" "$az_s" "$az_n" "$cm_s" "$cm_n" \
    "$(echo "$az_s / $cm_s" | bc -l)" "$(echo "$az_n / $cm_n" | bc -l)"
done
health=$(emu health)
case "$health" in *'"internal_errors":0'*) ;; *) echo "emulator: $health"; exit 1 ;; esac
