# Sourced by the HTTP benchmarks (http.sh, http_ir.sh, newconn.sh): starts the specs' local
# TLS nginx (spec/support/tls_nginx.lua) and sets port, ca, dir, pki and url (GET /hello).
# It is stopped and its files removed on exit, with the paths in BENCH_CLEANUP if set.
read -r port ca dir pki < <(lua5.4 -e 'package.path = "spec/?.lua;" .. package.path
  local s = require("support.tls_nginx").start()
  print(s.port, s.ca_file, s.dir, s.pki.dir)')
# shellcheck disable=SC2016,SC2154  # expanded at exit; the variables are set above
trap 'kill "$(cat "$dir/nginx.pid")" 2>/dev/null; sleep 0.2; rm -rf "$dir" "$pki" ${BENCH_CLEANUP:-}' EXIT
url="https://127.0.0.1:$port/hello"
