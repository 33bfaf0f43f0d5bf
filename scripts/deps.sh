#!/bin/sh
# Installs the Debian packages azcmk needs, only those that are missing.
# Used by `make deps` (and so by `make test` and `make demo`).
set -eu
PKGS="gcc make pkg-config clang libclang-rt-14-dev valgrind openssl curl ca-certificates
lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev lua-cjson lua-busted lua-check luarocks
nginx libnginx-mod-http-lua libnginx-mod-stream-js lua-resty-core libcurl4-openssl-dev
libssl-dev wrk hyperfine python3 python3-requests skopeo python3-jmespath lua-yaml
python3-knack python3-tabulate python3-yaml python3-pygments lua-argparse chromium
fonts-dejavu-core"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages:$missing (run as root or install them)" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
