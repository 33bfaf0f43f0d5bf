--- bench/pipeline_ir.lua: N token-cached ARM GETs of one kind, for instruction counting
-- (bench/pipeline_ir.sh runs it under callgrind). MODE is
--   raw       azcmk.http GET with a bearer token, then the JSON decode
--   pipeline  p:arm GET (the whole policy chain, logging off)
-- Usage: lua bench/pipeline_ir.lua MODE N   (against an emulator: AZCMK_CONNECT_TO, AZURE_*)
-- BENCH_LUA_DIR (default lua) is the tree of azcmk's Lua modules, to compare revisions.
local dir = os.getenv("BENCH_LUA_DIR") or "lua"
package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
local mode, n = arg[1], tonumber(arg[2]) or 1000
local azcmk = require("azcmk")
local cjson = require("cjson.safe")

local sub = assert(os.getenv("AZURE_SUBSCRIPTION_ID"), "run against an emulator (eval azcmk emulator start)")
local p = assert(azcmk.new({ log = "off" }))
local path = "/subscriptions/" .. sub .. "/resourcegroups"
assert(p:arm("GET", path, { api_version = "2021-04-01" }))   -- token cached, connection open

local call
if mode == "raw" then
  local tok = assert(p:token("https://management.azure.com/.default")).token
  local c = require("azcmk.http").new({})
  local url = "https://management.azure.com" .. path .. "?api-version=2021-04-01"
  assert(c:request({ method = "GET", url = url }))
  call = function()
    local r = assert(c:request({ method = "GET", url = url, headers = { Authorization = "Bearer " .. tok,
      Accept = "application/json" } }))
    assert(r.status == 200 and cjson.decode(r.body))
  end
elseif mode == "pipeline" then
  call = function() assert(p:arm("GET", path, { api_version = "2021-04-01" })) end
else
  error("mode: raw or pipeline")
end
for _ = 1, n do call() end
