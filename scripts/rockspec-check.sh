#!/bin/bash
# Checks that the rockspec lists every C source and Lua module, then installs the rock
# offline into throw-away trees for Lua 5.4 and LuaJIT and runs the installed `azcmk`.
set -eu
cd "$(dirname "$0")/.."
spec=azcmk-scm-1.rockspec
missing=0
for c in src/*.c; do
  grep -q "\"$c\"" "$spec" || { echo "rockspec: $c not in sources"; missing=1; }
done
while IFS= read -r f; do
  mod=${f#lua/}; mod=${mod%.lua}; mod=${mod%/init}; mod=${mod//\//.}
  grep -q "\[\"$mod\"\] = \"$f\"" "$spec" || { echo "rockspec: $mod = $f missing"; missing=1; }
done < <(find lua -name '*.lua' | sort)
[ $missing -eq 0 ] || exit 1

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$tmp" 2>/dev/null || cp -r . "$tmp"
cd "$tmp"
luarocks --lua-version=5.4 --tree="$tmp/t54" make --deps-mode=none "$spec" > "$tmp/54.log" 2>&1 || { cat "$tmp/54.log"; exit 1; }
(eval "$(luarocks --lua-version=5.4 --tree="$tmp/t54" path)"; "$tmp/t54/bin/azcmk" --version)
luarocks --lua-version=5.1 --tree="$tmp/tjit" make --deps-mode=none "$spec" \
  LUA_INCDIR=/usr/include/luajit-2.1 LUA=/usr/bin/luajit > "$tmp/jit.log" 2>&1 || { cat "$tmp/jit.log"; exit 1; }
eval "$(luarocks --lua-version=5.1 --tree="$tmp/tjit" path --no-bin | sed 's/^export LUA_PATH=/export LUA_PATH_JIT=/')"
LUA_PATH="$LUA_PATH_JIT;;" LUA_CPATH="$LUA_CPATH;;" luajit -e 'local c = require "azcmk.core"; assert(c.abi == "luajit"); print("luajit rock: azcmk.core " .. c.version)'
