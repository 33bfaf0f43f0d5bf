#!/bin/bash
# `make conformance`: the official Azure SDK for JavaScript (pinned in conformance/package-lock.json)
# runs the CMK job (conformance/cmk-flow.mjs) against a dedicated emulator, then a few calls the
# way any user would, through the emulator's HTTPS proxy (conformance/proxy-check.mjs).
#   CONFORMANCE_PORT   https port of that emulator (http PORT+1, proxy PORT+2; default: free ports)
#   CONFORMANCE_DIR    its directory (default build/conformance-emulator)
#   CONFORMANCE_KEEP=1 leave the emulator running afterwards (for poking at it)
#   CONFORMANCE_INSTALL_ONLY=1  only install the SDKs (bench/conformance.sh uses it)
# Fails loudly (exit 1) when node/npm are missing or `npm ci` cannot reach the registry.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=${CONFORMANCE_PORT:-}
DIR=$(realpath -m "${CONFORMANCE_DIR:-build/conformance-emulator}")

die() { echo "conformance: $*" >&2; exit 1; }

command -v node >/dev/null || die "node is not installed (Node >= 20 needed)"
command -v npm >/dev/null || die "npm is not installed"
[ -f build/jit/azcmk/core.so ] || die "build/jit/azcmk/core.so missing: run make first"

# Install the pinned SDKs once; again only when the lock file changes.
STAMP=conformance/node_modules/.azcmk-lock.sha256
want=$(sha256sum conformance/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "conformance: npm ci (pinned Azure SDK for JavaScript)"
  if ! (cd conformance && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>../build/conformance-npm.err); then
    cat build/conformance-npm.err >&2
    die "npm ci failed (is the npm registry reachable?); the conformance run cannot start"
  fi
  echo "$want" > "$STAMP"
fi
[ -z "${CONFORMANCE_INSTALL_ONLY:-}" ] || exit 0

# A fresh emulator of our own: clean state, new secrets, its own internal_errors count.
./bin/azcmk emulator stop --dir "$DIR" >/dev/null 2>&1
env_lines=$(./bin/azcmk emulator start ${PORT:+--port "$PORT"} --dir "$DIR" --only azcmk) ||
  die "emulator failed to start${PORT:+ on port $PORT}"
eval "$env_lines"
[ -n "${CONFORMANCE_KEEP:-}" ] || trap '"$ROOT/bin/azcmk" emulator stop --dir "$DIR" >/dev/null 2>&1' EXIT

# Only loopback: no proxy, Azure names resolve to 127.0.0.1 and ports 443/80 map to the
# emulator (conformance/loopback.cjs); the SDK trusts the emulator's CA.
unset HTTPS_PROXY HTTP_PROXY ALL_PROXY https_proxy http_proxy all_proxy NO_PROXY no_proxy
unset AZURE_CLIENT_CERTIFICATE_PATH AZURE_FEDERATED_TOKEN_FILE IDENTITY_ENDPOINT IDENTITY_HEADER MSI_ENDPOINT
export NODE_EXTRA_CA_CERTS=$AZCMK_CA_FILE
export AZURE_AUTHORITY_HOST=https://login.microsoftonline.com
export AZURE_LOG_LEVEL=${AZURE_LOG_LEVEL:-}
[ -n "$AZURE_LOG_LEVEL" ] || unset AZURE_LOG_LEVEL

cd conformance || exit 1
node --require "$ROOT/conformance/loopback.cjs" cmk-flow.mjs
rc=$?
# The same SDK as any user runs it: only the variables `azcmk emulator start` prints for other
# tools (HTTPS_PROXY, NODE_EXTRA_CA_CERTS), no preload: through the emulator's proxy.
tools=$("$ROOT/bin/azcmk" emulator env --dir "$DIR" --only tools) || exit 1
(eval "$tools" && unset AZCMK_CONNECT_TO AZURE_AUTHORITY_HOST && node proxy-check.mjs) || rc=1
exit $rc
