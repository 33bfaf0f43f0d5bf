#!/bin/sh
# azcmk inside nginx: cosockets vs libcurl in ngx.run_worker_thread (the choice in
# docs/openresty.md), and wrk against the status helper's cached locations. Needs nginx,
# libnginx-mod-http-lua, wrk and `make` (build/jit, build/5.4). See bench/README.md.
# Env: N (calls per round, 200), ROUNDS (5), WRK_SECONDS (5).
set -eu
cd "$(dirname "$0")/.."
exec lua5.4 bench/openresty/measure.lua
