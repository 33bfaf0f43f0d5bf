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
# Both rocks side by side in one tree, as users install them: the `azcmk` command is the
# wrapper of the last install and must work for either runtime, without `luarocks path`, and
# also with a shell prepared by `luarocks path` for the other Lua.
tree="$tmp/tree"
install54() { luarocks --lua-version=5.4 --tree="$tree" make --deps-mode=none "$spec" > "$tmp/54.log" 2>&1 ||
  { cat "$tmp/54.log"; exit 1; }; }
installjit() { luarocks --lua-version=5.1 --tree="$tree" make --deps-mode=none "$spec" \
  LUA_INCDIR=/usr/include/luajit-2.1 > "$tmp/jit.log" 2>&1 || { cat "$tmp/jit.log"; exit 1; }; }
echo 'print(rawget(_G, "jit") and "LuaJIT" or _VERSION)' > "$tmp/which.lua"
expect_runtime() {   # expect_runtime WANT [VAR=VALUE...]: the installed command's interpreter
  local got
  got=$(env -u LUA_PATH -u LUA_CPATH -u LUA_INIT "${@:2}" "$tree/bin/azcmk" run "$tmp/which.lua") ||
    { echo "rockspec: installed azcmk failed ($1 expected)"; exit 1; }
  [ "$got" = "$1" ] || { echo "rockspec: installed azcmk runs on $got, $1 expected"; exit 1; }
}
paths54=$(luarocks --lua-version=5.4 --tree="$tree" path)
lp54=$(sed -n "s/^export LUA_PATH='\(.*\)'$/\1/p" <<< "$paths54")
lcp54=$(sed -n "s/^export LUA_CPATH='\(.*\)'$/\1/p" <<< "$paths54")
install54
"$tree/bin/azcmk" --version
expect_runtime "Lua 5.4"
installjit
expect_runtime LuaJIT
expect_runtime LuaJIT LUA_PATH="$lp54" LUA_CPATH="$lcp54"
# the verbs that broke under the 5.1 interpreter: emulator start (io.read "a") and show
# (string.format with a table), through the installed command and its copy of the emulator
emu="$tmp/emu"
exports=$("$tree/bin/azcmk" emulator start --dir "$emu") || { echo "rockspec: emulator start failed"; exit 1; }
trap '"$tree/bin/azcmk" emulator stop --dir "$emu" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
shown=$(eval "$exports"; "$tree/bin/azcmk" show -n nosuchregistry 2>&1) && { echo "rockspec: show found nothing?"; exit 1; }
grep -q RegistryNotFound <<< "$shown" || { echo "rockspec: installed show: $shown"; exit 1; }
"$tree/bin/azcmk" emulator stop --dir "$emu" >/dev/null
install54
expect_runtime "Lua 5.4"
echo "rockspec: one tree, both runtimes: azcmk works after either install"
eval "$(luarocks --lua-version=5.1 --tree="$tree" path --no-bin | sed 's/^export LUA_PATH=/export LUA_PATH_JIT=/')"
LUA_PATH="$LUA_PATH_JIT;;" LUA_CPATH="$LUA_CPATH;;" luajit -e 'local c = require "azcmk.core"; assert(c.abi == "luajit"); print("luajit rock: azcmk.core " .. c.version)'
