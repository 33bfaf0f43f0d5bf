--- One HTTP exchange with retries, time budget and logging, no authentication.
-- Used by the pipeline and by credentials (token endpoints, IMDS, App Service).
-- ctx = { transport = t, log = logger|nil, retry = policy|nil, now = fn|nil, sleep = fn|nil }
local retry = require("azcmk.retry")
local clock = require("azcmk.clock")
local errors = require("azcmk.errors")
local url = require("azcmk.url")

local M = {}

-- below this remaining budget a request without its own timeout gets the budget as timeout
M.DEFAULT_TRY_MS = 30000

local function shallow(t)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  return r
end

--- Send req through ctx.transport with policy (opts.retry or ctx.retry or the default).
-- Returns res (any status; res.attempts set) or nil, err (network/timeout error, with
-- err.attempts). Server-requested waits beyond the remaining budget stop the loop.
function M.send(ctx, req, opts)
  opts = opts or {}
  local transport = ctx.transport
  if not transport then error("azcmk.sender: ctx.transport is required", 2) end
  local policy = opts.retry or ctx.retry or retry.new()
  local now = ctx.now or clock.now
  local sleep = ctx.sleep or clock.sleep
  local start = now()
  local budget = opts.budget or policy.budget or 300
  local deadline = start + budget
  local host = url.parse(req.url or "")
  host = host and host.host
  local decide = opts.decide or function(...) return policy:decide(...) end
  local attempt = 0
  while true do
    attempt = attempt + 1
    local r = shallow(req)
    local remaining = deadline - now()
    if remaining <= 0 then
      return nil, errors.new("timeout", { code = "Timeout", attempts = attempt - 1,
        message = string.format("time budget of %gs for %s %s exhausted", budget, req.method, host or "?") })
    end
    -- per-try timeout: the request's (else the transport's default), never beyond the budget
    local cap_ms = math.max(1, math.floor(remaining * 1000))
    local per_try = r.timeout_ms or policy.try_timeout_ms
    if per_try then
      r.timeout_ms = math.min(per_try, cap_ms)
    elseif cap_ms < M.DEFAULT_TRY_MS then
      r.timeout_ms = cap_ms
    end
    local t0 = clock.ms()
    local res, err = transport:request(r)
    local ms = (res and res.info and res.info.total_ms) or (clock.ms() - t0)
    if ctx.log then ctx.log:request({ req = req, res = res, err = err, ms = ms, attempt = attempt }) end
    if res then res.attempts = attempt elseif err then err.attempts = attempt end
    local delay, why = decide(req, res, err, attempt, now())
    if not delay then return res, err end
    if now() + delay > deadline then
      if ctx.log then
        ctx.log:info(string.format("not retrying %s %s: wait %.1fs exceeds the time budget", req.method,
                                   host or "?", delay))
      end
      if err then err.budget_exhausted = true else res.budget_exhausted = true end
      return res, err
    end
    if ctx.log then
      ctx.log:info(string.format("retrying %s %s in %.2fs (%s)", req.method, host or "?", delay, why))
    end
    if ctx.on_retry then ctx.on_retry(req, res, err, delay, attempt) end
    sleep(delay)
  end
end

return M
