--- The alternative to azcmk.transport.ngx that docs/openresty.md measured: libcurl (the C
-- core, azcmk.transport.curl) run in ngx.run_worker_thread, so the blocking call happens on a
-- thread of an nginx thread_pool. Main-VM side: M.new{pool=} is a transport; thread side:
-- M.request(req) runs in the thread's own Lua VM (one curl client per thread VM, reused).
local errors = require("azcmk.errors")

local ngx = rawget(_G, "ngx")

local M = {}

local client -- thread VM: one curl transport per VM (its connections are reused)

--- Thread side: one request, plain data in and out.
function M.request(req)
  client = client or require("azcmk.transport.curl").new()
  local res, err = client:request(req)
  if not res then
    return false, { kind = err.kind, code = err.code, message = err.message, retryable = err.retryable,
      phase = err.phase, tls = err.tls }
  end
  return true, { status = res.status, headers = res.headers, body = res.body }
end

local T = {}
T.__index = T

function M.new(opts)
  return setmetatable({ pool = (opts and opts.pool) or "azcmk", name = "thread" }, T)
end

function T:request(req)
  local ok, done, r = ngx.run_worker_thread(self.pool, "openresty.thread_curl", "request",
    { method = req.method, url = req.url, headers = req.headers, body = req.body,
      timeout_ms = req.timeout_ms })
  if not ok then
    return nil, errors.new("network", { code = "WorkerThreadFailed", message = tostring(done),
      retryable = false })
  end
  if not done then return nil, errors.new(r.kind or "network", r) end
  return r
end

function T.batch() error("not used in the bench") end
function T.close() end

return M
