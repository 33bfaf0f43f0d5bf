--- Retry rules: when a call is tried again, and after how long.
-- Retries 408, 429, 500, 502, 503, 504 and connection failures; exponential backoff
-- (0.8 s base, jitter, cap 60 s); honours Retry-After (seconds or HTTP date), retry-after-ms
-- and x-ms-retry-after-ms; a total time budget per call; TLS verification failures never
-- retried. A request that is not repeatable (azcmk.repeatable: a key create, a rotate, ...)
-- is sent again only when the failed try surely was not applied (not connected, or 429);
-- any other failure of it is left to its caller to read back (azcmk.client.reconcile).
local clock = require("azcmk.clock")
local repeatable = require("azcmk.repeatable")

local M = {}

M.DEFAULTS = {
  max_retries = 3,        -- retries after the first attempt (4 attempts for a retryable status)
  base = 0.8,             -- seconds
  cap = 60,               -- seconds, cap on computed backoff
  budget = 300,           -- seconds for the whole call incl. retries and waits
  jitter_min = 0.8, jitter_max = 1.3,
  max_retry_after = nil,  -- optional cap on server-sent delays (nil: bounded by budget)
}

M.RETRY_STATUS = { [408] = true, [429] = true, [500] = true, [502] = true, [503] = true, [504] = true }

--- Delay in seconds requested by a response, or nil. headers have lower-case names.
-- `now` (unix seconds) converts HTTP dates; the result is clamped at >= 0.
function M.retry_after(headers, now)
  if type(headers) ~= "table" then return nil end
  local ra = headers["retry-after"]
  if ra ~= nil then
    ra = tostring(ra):gsub("^%s+", ""):gsub("%s+$", "")
    local n = tonumber(ra)
    if n then return math.max(0, n) end
    local t = clock.parse_http_date(ra)
    if t then return math.max(0, t - (now or clock.now())) end
  end
  for _, name in ipairs({ "retry-after-ms", "x-ms-retry-after-ms" }) do
    local v = tonumber(headers[name])
    if v then return math.max(0, v / 1000) end
  end
  return nil
end

local policy = {}
policy.__index = policy

--- New policy; opts override M.DEFAULTS. opts.random: function() -> [0,1) for jitter.
-- opts.decide: replace the decision function (see policy:decide).
function M.new(opts)
  local p = {}
  for k, v in pairs(M.DEFAULTS) do p[k] = v end
  for k, v in pairs(opts or {}) do p[k] = v end
  p.random = p.random or math.random
  return setmetatable(p, policy)
end

--- Exponential backoff for the n-th retry (1-based): base * (2^n - 1), times jitter, capped.
function policy:backoff(n)
  local d = self.base * (2 ^ n - 1)
  if d > self.cap then d = self.cap end
  local j = self.jitter_min + (self.jitter_max - self.jitter_min) * self.random()
  d = d * j
  if d > self.cap then d = self.cap end
  return d
end

--- Whether req may be sent again after a try whose outcome is unknown (azcmk.repeatable).
function M.idempotent(req)
  return (repeatable.classify(req))
end

--- Decide on a retry after attempt number `attempt` (1 = first try).
-- Returns delay_seconds, reason to retry; or nil, reason to stop.
function policy:decide(req, res, err, attempt, now)
  if attempt > self.max_retries then return nil, "retries exhausted" end
  if err then
    if err.tls then return nil, "TLS verification failed (never retried)" end
    if not err.retryable then return nil, "not retryable" end
    if not repeatable.not_applied(nil, err) and not M.idempotent(req) then
      return nil, "request may have reached the server and is not repeatable"
    end
    return self:backoff(attempt), tostring(err.code or err.kind)
  end
  if not res or res.status < 400 or res.status == 401 then return nil, "not a retryable status" end
  if not repeatable.not_applied(res) and not M.idempotent(req) then
    return nil, "status " .. res.status .. " does not prove the request was not applied, and it is not "
      .. "repeatable"
  end
  local ra = M.retry_after(res.headers, now)
  if ra and self.max_retry_after and ra > self.max_retry_after then ra = self.max_retry_after end
  if ra then return ra, "status " .. res.status .. " with retry-after" end
  if not M.RETRY_STATUS[res.status] then return nil, "not a retryable status" end
  return self:backoff(attempt), "status " .. res.status
end

return M
