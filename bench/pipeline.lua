-- Pipeline overhead against the emulator: the same ARM GET sent (a) raw through azcmk.http
-- with a bearer token, (b) through p:arm (token cache, URL building, client request id,
-- retry loop, logging off, JSON decode). Also token-cache hits per second.
--   lua bench/pipeline.lua N        (AZCMK_CONNECT_TO / AZCMK_CA_FILE / AZURE_* of an emulator)
-- BENCH_LUA_DIR (default lua) is the tree of azcmk's Lua modules, to compare revisions
local dir = os.getenv("BENCH_LUA_DIR") or "lua"
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
local n = tonumber(arg[1]) or 2000
local azcmk = require("azcmk")
local http = require("azcmk.http")
local cjson = require("cjson.safe")
local clock = os.clock

local sub = assert(os.getenv("AZURE_SUBSCRIPTION_ID"), "run against an emulator (eval azcmk emulator start)")
local p = assert(azcmk.new({ log = "off" }))
local path = "/subscriptions/" .. sub .. "/resourcegroups"
assert(p:arm("GET", path, { api_version = "2021-04-01" }))
local tok = assert(p:token("https://management.azure.com/.default")).token
local c = http.new({})
local url = "https://management.azure.com" .. path .. "?api-version=2021-04-01"
local function now() local f = io.popen("date +%s.%N"); local t = tonumber(f:read("*a")); f:close(); return t
  end

local function run(name, fn)
  for _ = 1, 50 do fn() end
  local t0, c0 = now(), clock()
  for _ = 1, n do fn() end
  local dt, dc = now() - t0, clock() - c0
  print(string.format("%-28s %8.0f req/s   %6.1f us CPU/req", name, n / dt, dc / n * 1e6))
  return dc / n
end

local raw = run("raw azcmk.http GET", function()
  local r = assert(c:request({ method = "GET", url = url, headers = { Authorization = "Bearer " .. tok,
    Accept = "application/json" } }))
  assert(r.status == 200 and cjson.decode(r.body))
end)
local pipe = run("pipeline p:arm GET", function()
  assert(p:arm("GET", path, { api_version = "2021-04-01" }))
end)
print(string.format("pipeline overhead: %.1f us CPU per call", (pipe - raw) * 1e6))

local cred = p.credential
local m = n * 50
local c0 = clock()
for _ = 1, m do p.tokens:get(cred, "https://management.azure.com/.default") end
print(string.format("%-28s %8.0f hits/s", "token cache hit", m / (clock() - c0)))
