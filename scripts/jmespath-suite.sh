#!/bin/bash
# Prints the directory holding the official JMESPath compliance suite (the jmespath.test
# project's JSON files) for spec/jmespath/compliance_suite.lua, installing it when absent.
# No Debian package ships the files (golang-github-jmespath-go-jmespath-dev, python3-jmespath,
# node-jmespath, ruby-jmespath and jp do not); the JMESPath project's own JavaScript package
# jmespath@0.15.0 on npm does (test/compliance/, its last release that does), so it goes into
# build/jmespath-suite with npm. The files are never committed.
#   JMESPATH_SUITE=DIR  use another copy instead (e.g. a jmespath.test checkout's tests/)
set -eu
cd "$(dirname "$0")/.."
if [ -n "${JMESPATH_SUITE:-}" ]; then echo "$JMESPATH_SUITE"; exit 0; fi
DIR=build/jmespath-suite
SUITE=$DIR/node_modules/jmespath/test/compliance
die() { echo "jmespath-suite: $*" >&2; exit 1; }
if [ ! -f "$SUITE/basic.json" ]; then
  if ! command -v npm >/dev/null; then
    [ "$(id -u)" = 0 ] || die "npm is missing (apt-get install npm)"
    echo "jmespath-suite: installing npm" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null ||
      die "apt-get install npm failed"
  fi
  mkdir -p "$DIR"
  npm install --prefix "$DIR" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    jmespath@0.15.0 >&2 || die "npm install jmespath@0.15.0 failed (is the npm registry reachable?)"
  [ -f "$SUITE/basic.json" ] || die "jmespath@0.15.0 holds no test/compliance/basic.json"
fi
echo "$PWD/$SUITE"
