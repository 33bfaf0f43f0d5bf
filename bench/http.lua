--- bench/http.lua: sequential keep-alive HTTPS GETs through azcmk's client from Lua.
-- Usage: lua5.4 bench/http.lua URL CA_FILE REQUESTS [1.1|2]   (prints "requests seconds req/s";
-- run by bench/http.sh, which starts the local nginx and builds the C baseline).
-- BENCH_LUA_DIR (default lua) is the tree of azcmk's Lua modules, to compare revisions
local dir = os.getenv("BENCH_LUA_DIR") or "lua"
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
local http = require "azcmk.http"

local url, ca, total, version = arg[1], arg[2], tonumber(arg[3]) or 10000, arg[4] or "2"
local c = http.new({ ca_file = ca, http_version = version, user_agent = "azcmk-bench" }, {})
local req = { url = url }

-- wall clock (os.clock is CPU time; a request mostly waits): two forks per run
local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

for _ = 1, 50 do assert(c:request(req)) end -- warm-up: connect, TLS
local t0 = now()
for _ = 1, total do
  local r, err = c:request(req)
  if not r or r.status ~= 200 then error("request failed: " .. tostring(err)) end
end
local t = now()
print(string.format("%d %.3f %.1f", total, t - t0, total / (t - t0)))
c:close()
