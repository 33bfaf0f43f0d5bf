--- Policy: retries with backoff and Retry-After within a time budget for the whole call
-- (the rules - which statuses, methods and failures, how long to wait - are azcmk.retry's).
-- Each try gets a copy of the request and a timeout that never reaches past the budget; a
-- server asking to wait beyond the budget gets its answer returned instead. res.attempts /
-- err.attempts count the tries. A request that is not repeatable (azcmk.repeatable) and
-- ends in a failure that may have been applied comes back with outcome = "unknown" (on the
-- error, or on the answer, which the response policy copies to its error).
local rules_m = require("azcmk.retry")
local repeatable = require("azcmk.repeatable")
local clock = require("azcmk.clock")
local errors = require("azcmk.errors")
local url = require("azcmk.url")

local M = {}

-- below this remaining budget a request without its own timeout gets the budget as timeout
M.DEFAULT_TRY_MS = 30000

local P = {}
P.__index = P

--- owner: where the policy finds retry (the rules), now, sleep, log and on_wait when a call
-- runs (a pipeline, or a credential's context). on_wait(w), when set, is called before each
-- wait: w = { method, host, delay (s), why, attempt (the try that failed), status?, code? }.
-- opts (optional) override for this policy alone:
-- rules, budget (seconds), decide = function(req, res, err, attempt, now) -> delay, why.
function M.new(owner, opts)
  return setmetatable({ name = "retry", owner = owner, opts = opts or {} }, P)
end

local function shallow(t)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  return r
end

local function host_of(req)
  local t = req.target or url.parse(req.url or "")
  return t and t.host or "?"
end

function P:send(req, next)
  local o, opts = self.owner, self.opts
  local rules = opts.rules or o.retry or rules_m.new()
  local now = o.now or clock.now
  local sleep = o.sleep or clock.sleep
  local log = o.log
  local budget = opts.budget or rules.budget or 300
  local deadline = now() + budget
  local decide = opts.decide
  local attempt = 0
  while true do
    attempt = attempt + 1
    local remaining = deadline - now()
    if remaining <= 0 then
      return nil, errors.new("timeout", { code = "Timeout", attempts = attempt - 1,
        message = string.format("time budget of %gs for %s %s exhausted", budget, req.method, host_of(req)) })
    end
    local r = shallow(req)
    r.attempt = attempt
    -- per-try timeout: the request's (else the transport's default), never beyond the budget
    local cap_ms = math.max(1, math.floor(remaining * 1000))
    local per_try = r.timeout_ms or rules.try_timeout_ms
    if per_try then
      r.timeout_ms = math.min(per_try, cap_ms)
    elseif cap_ms < M.DEFAULT_TRY_MS then
      r.timeout_ms = cap_ms
    end
    local res, err, raw = next:send(r)
    if r.final then return res, err, raw end  -- a policy below ended the call (no token, ...)
    if res then res.attempts = attempt elseif err then err.attempts = attempt end
    local delay, why
    if decide then delay, why = decide(req, res, err, attempt, now())
    else delay, why = rules:decide(req, res, err, attempt, now()) end
    if not delay then
      if (err or (res and res.status >= 500)) and not rules_m.idempotent(req)
        and not repeatable.not_applied(res, err) and (res or repeatable.ambiguous(err)) then
        if err then err.outcome = "unknown" else res.outcome = "unknown" end
      end
      return res, err, raw
    end
    if now() + delay > deadline then
      if log then
        log:info(string.format("not retrying %s %s: wait %.1fs exceeds the time budget", req.method,
          host_of(req), delay))
      end
      if err then err.budget_exhausted = true else res.budget_exhausted = true end
      return res, err, raw
    end
    if log then
      log:info(string.format("retrying %s %s in %.2fs (%s)", req.method, host_of(req), delay, why))
    end
    -- the face's hook (the command line says a long wait on stderr)
    if o.on_wait then
      o.on_wait({ method = req.method, host = host_of(req), delay = delay, why = why, attempt = attempt,
        status = res and res.status, code = err and err.code })
    end
    sleep(delay)
  end
end

return M
