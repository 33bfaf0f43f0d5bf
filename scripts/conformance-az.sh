#!/bin/bash
# `make conformance-az`: the tools people already use, unmodified, against a dedicated emulator
# through its HTTPS proxy (conformance/README.md):
#   1. Debian's Azure CLI runs the CMK article's commands as written (conformance/python/az_flow.py);
#   2. the Azure SDK for Python (Debian's python3-azure) runs the CMK job (cmk_flow.py);
#   3. recorded Azure traffic is replayed and compared (replay.py, conformance/recorded/).
#   CONFORMANCE_AZ_PORT  https port of the emulator (http +1, proxy +2; default: free ports)
#   CONFORMANCE_AZ_DIR   its directory (default build/conformance-az-emulator)
#   CONFORMANCE_KEEP=1   leave it running afterwards
# Installs Debian's azure-cli (which brings python3-azure) when az is missing; never patches it.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${CONFORMANCE_AZ_PORT:-}
DIR=$(realpath -m "${CONFORMANCE_AZ_DIR:-build/conformance-az-emulator}")
PY=/usr/bin/python3 # Debian's, where python3-azure lives (not a pyenv or venv python first on PATH)

die() { echo "conformance-az: $*" >&2; exit 1; }

[ -f build/jit/azcmk/core.so ] || die "build/jit/azcmk/core.so missing: run make first"
if ! command -v az >/dev/null || ! dpkg-query -W -f='${Status}' azure-cli 2>/dev/null | grep -q "ok installed"; then
  [ "$(id -u)" = 0 ] || die "Debian's azure-cli is not installed (apt-get install azure-cli, as root)"
  echo "conformance-az: installing Debian's azure-cli (and python3-azure)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends azure-cli >/dev/null ||
    die "apt-get install azure-cli failed"
fi
$PY -c "import azure.mgmt.containerregistry, azure.keyvault.keys, azure.identity, requests" 2>/dev/null ||
  die "python3-azure is not importable by $PY"

./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1
env_lines=$(./bin/azcmk emulator start ${PORT:+--port "$PORT"} --dir "$DIR") ||
  die "emulator failed to start${PORT:+ on port $PORT}"
eval "$env_lines" # azcmk's variables and the tools' (HTTPS_PROXY, REQUESTS_CA_BUNDLE, ...)
AZURE_CONFIG_DIR=$(mktemp -d)
export AZURE_CONFIG_DIR AZURE_CORE_COLLECT_TELEMETRY=false AZURE_CORE_NO_COLOR=true
cleanup() {
  rm -rf "$AZURE_CONFIG_DIR"
  [ -n "${CONFORMANCE_KEEP:-}" ] || "$ROOT/bin/azcmk" emulator stop --dir "$DIR" >/dev/null 2>&1
}
trap cleanup EXIT

rc=0
for part in "az_flow.py:the article through Debian's azure-cli" "cmk_flow.py:the CMK job through the Python SDK" \
  "replay.py:recorded Azure traffic"; do
  echo "== ${part#*:} (conformance/python/${part%%:*})"
  $PY "conformance/python/${part%%:*}" || rc=1
done
health=$(curl -sS https://management.azure.com/_emulator/health)
case "$health" in *'"internal_errors":0'*) ;; *) echo "emulator: $health"; rc=1 ;; esac
exit $rc
