--- Bench handlers inside nginx (bench/openresty.sh). /bench?mode=ngx|thread&n=200&c=1
-- runs n token-cached ARM GETs (a resource group) through a pipeline whose transport is the
-- cosocket one (ngx) or libcurl in ngx.run_worker_thread (thread), c at a time (light
-- threads); answers {mode, n, c, ms, ok, per_s}. /one?mode=... makes one such call (for wrk).
local cjson = require("cjson.safe")

local ngx = rawget(_G, "ngx")

local M = {}

local pipelines = {}

local function pipeline(mode)
  if pipelines[mode] then return pipelines[mode] end
  local transport
  if mode == "thread" then transport = require("openresty.thread_curl").new({ pool = "azcmk" })
  else transport = require("azcmk.transport.ngx").new({}) end
  local p = assert(require("azcmk.ngx").new({ transport = transport, token_dict = false,
    retry = { max_retries = 0 } }))
  pipelines[mode] = p
  return p
end

local function call(p)
  local res = p:arm("GET", "/subscriptions/" .. p.subscription .. "/resourcegroups/benchrg",
    { api_version = "2021-04-01" })
  return res and res.status == 200
end

function M.bench()
  local a = ngx.req.get_uri_args()
  local mode, n, c = a.mode or "ngx", tonumber(a.n) or 200, tonumber(a.c) or 1
  local p = pipeline(mode)
  assert(call(p), "warm-up call failed")                 -- token + connection
  ngx.update_time()
  local t0 = ngx.now()
  local ok, next_i = 0, 0
  local function worker()
    while next_i < n do
      next_i = next_i + 1
      if call(p) then ok = ok + 1 end
    end
  end
  local th = {}
  for i = 1, c do th[i] = ngx.thread.spawn(worker) end
  for i = 1, c do ngx.thread.wait(th[i]) end
  ngx.update_time()
  local ms = (ngx.now() - t0) * 1000
  ngx.say(cjson.encode({ mode = mode, n = n, c = c, ms = ms, ok = ok, per_s = n / (ms / 1000),
    ms_per_call = ms / n }))
end

function M.one()
  local p = pipeline(ngx.var.arg_mode or "ngx")
  if call(p) then ngx.say("ok") else ngx.exit(502) end
end

return M
