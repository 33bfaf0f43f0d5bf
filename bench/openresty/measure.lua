--- bench/openresty.sh: azcmk inside nginx (Debian nginx + libnginx-mod-http-lua, LuaJIT).
-- 1. The choice of docs/openresty.md: cosockets (azcmk.transport.ngx) vs libcurl (the C core)
--    in ngx.run_worker_thread. One nginx worker (thread_pool azcmk threads=16), the same
--    pipeline and token cache, only the transport differs: n token-cached ARM GETs (a
--    resource group) sequentially (c=1) and 20 at a time (c=20, light threads), ROUNDS rounds
--    in turns, median; then wrk against /one?mode= (one ARM GET per client request); then 40
--    concurrent calls that the emulator holds 1 s each (wall time).
-- 2. Load on the status helper: a CMK registry in the emulator, nginx with 2 workers, wrk
--    against /cmk/status and /cmk/health while the result is cached; errors and non-2xx
--    answers are counted (must be 0).
-- Run from the checkout root after `make`: lua5.4 bench/openresty/measure.lua
-- Env: N (200), ROUNDS (5), WRK_SECONDS (5).
package.path = "lua/?.lua;lua/?/init.lua;emulator/lua/?.lua;spec/?.lua;" .. package.path
package.cpath = "build/5.4/?.so;" .. package.cpath
local E = require("support.emulator")
local W = require("support.cmk_world")
local N = require("support.ngx_harness")

local n = tonumber(os.getenv("N")) or 200
local rounds = tonumber(os.getenv("ROUNDS")) or 5
local secs = tonumber(os.getenv("WRK_SECONDS")) or 5
local root = io.popen("pwd"):read("*l")

local function median(t)
  table.sort(t)
  local m = #t
  if m % 2 == 1 then return t[(m + 1) / 2] end
  return (t[m / 2] + t[m / 2 + 1]) / 2
end

local function wrk(url, c)
  local p = io.popen(string.format("wrk -t2 -c%d -d%ds --latency '%s' 2>&1", c, secs, url))
  local out = p:read("*a")
  p:close()
  local rps = tonumber(out:match("Requests/sec:%s+([%d.]+)"))
  local total = tonumber(out:match("(%d+) requests in"))
  local p50 = out:match("50%%%s+(%S+)")
  local p99 = out:match("99%%%s+(%S+)")
  local non2xx = tonumber(out:match("Non%-2xx or 3xx responses:%s+(%d+)")) or 0
  local sockerr = out:match("Socket errors:([^\n]+)")
  return { rps = rps, total = total, p50 = p50, p99 = p99, non2xx = non2xx, sockerr = sockerr, raw = out }
end

local env = E.ensure()
E.reset()
E.control("POST", "config", { lro = { polls = 1, seconds = 0 } })
local sub = E.seed().subscription_id
local r = E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/benchrg", { location = "westus" },
  { api_version = "2021-04-01" })
assert(r.status == 200 or r.status == 201, r.body)

print(string.format("nginx %s, 1 worker; emulator: 2 workers, same host (%s cores)",
  io.popen("nginx -v 2>&1"):read("*l"):match("[%d.]+$"), io.popen("nproc"):read("*l")))

-- 1. cosockets vs libcurl in ngx.run_worker_thread
local srv = N.start({ workers = 1, env = env, main = "thread_pool azcmk threads=16;",
  lua_path = root .. "/bench/?.lua",
  server = [[
    location = /bench { content_by_lua_block { require("openresty.app").bench() } }
    location = /one { content_by_lua_block { require("openresty.app").one() } }
  ]] })
local ok, err = pcall(function()
  print(string.format("\n%d token-cached ARM GETs per round, %d rounds in turns, median:", n, rounds))
  print(string.format("%-34s %12s %10s", "transport", "ms/call", "calls/s"))
  for _, c in ipairs({ 1, 20 }) do
    local res = { ngx = {}, thread = {} }
    for _ = 1, rounds do
      for _, mode in ipairs({ "ngx", "thread" }) do
        local b = srv:get("/bench?mode=" .. mode .. "&n=" .. n .. "&c=" .. c)
        assert(b.json and b.json.ok == n, "bench failed: " .. b.body)
        table.insert(res[mode], b.json.ms)
      end
    end
    for _, mode in ipairs({ "ngx", "thread" }) do
      local ms = median(res[mode])
      print(string.format("%-34s %12.3f %10.0f", (mode == "ngx" and "cosockets" or "libcurl in worker thread")
        .. " c=" .. c, ms / n, n / (ms / 1000)))
    end
  end
  print(string.format("\nwrk -t2 -c20 -d%ds, one ARM GET per client request:", secs))
  print(string.format("%-34s %10s %9s %9s %7s", "transport", "req/s", "p50", "p99", "errors"))
  for _, mode in ipairs({ "ngx", "thread" }) do
    local w = wrk(srv.base .. "/one?mode=" .. mode, 20)
    local label = mode == "ngx" and "cosockets" or "libcurl in worker thread"
    print(string.format("%-34s %10.0f %9s %9s %7s", label, w.rps or -1, w.p50 or "?", w.p99 or "?",
      tostring(w.non2xx + (w.sockerr and 1 or 0))))
  end
  -- a slow Azure: every call held 1 s by the emulator (delay fault), 40 at once
  print("\n40 concurrent ARM GETs, each held 1 s by the emulator (thread_pool threads=16):")
  print(string.format("%-34s %12s", "transport", "wall ms"))
  for _, mode in ipairs({ "ngx", "thread" }) do
    E.control("POST", "faults", { rules = { { host = "management.azure.com",
      path = "/subscriptions/" .. sub .. "/resourcegroups/benchrg", method = "GET", delay_ms = 1000,
      count = 41 } } })
    local b = srv:get("/bench?mode=" .. mode .. "&n=40&c=40")
    E.control("DELETE", "faults")
    assert(b.json and b.json.ok == 40, "bench failed: " .. b.body)
    local label = mode == "ngx" and "cosockets" or "libcurl in worker thread"
    print(string.format("%-34s %12.0f", label, b.json.ms))
  end
end)
srv:stop()
if not ok then error(err) end

-- 2. the status helper under load (cached results)
local w = W.world()
local srv2 = N.start({ workers = 2, env = env, init_worker = string.format([[
  require("azcmk.ngx.status").start{ registries = { %q }, period = 30 }
]], w.rg .. "/" .. w.reg) })
ok, err = pcall(function()
  local first = srv2:get("/cmk/health")
  assert(first.status == 200, first.body)
  local seq0 = E.log_seq()
  print(string.format("\nstatus helper, 2 workers, 1 CMK registry, result cached (period 30 s), "
    .. "wrk -t2 -d%ds:", secs))
  print(string.format("%-22s %5s %10s %9s %9s %8s %8s", "location", "conns", "req/s", "p50", "p99", "non-2xx",
    "sockerr"))
  for _, loc in ipairs({ "/cmk/status", "/cmk/health" }) do
    for _, c in ipairs({ 10, 100 }) do
      local x = wrk(srv2.base .. loc, c)
      print(string.format("%-22s %5d %10.0f %9s %9s %8d %8s", loc, c, x.rps or -1, x.p50 or "?", x.p99 or "?",
        x.non2xx, x.sockerr and x.sockerr:gsub("^%s+", "") or "0"))
    end
  end
  -- how many Azure requests did that load cause? (a refresh may fall inside the window)
  local azure = 0
  for _, e in ipairs(E.log(seq0)) do if not e.path:find("^/_emulator") then azure = azure + 1 end end
  print(string.format("Azure requests made while serving them: %d (only the periodic refresh)", azure))
end)
srv2:stop()
if not ok then error(err) end
