--- Policy: paces Resource Manager reads by the budget Azure reports, so that a run that fits
-- the budget meets no 429 and one that does not waits before it sends instead of after a
-- refusal. ARM throttles each principal per subscription with a token bucket (reads: 250,
-- refilled at 25 per second) and says on every answer how many reads are left
-- (x-ms-ratelimit-remaining-subscription-reads; -tenant-reads for calls without a
-- subscription). The pacer keeps, per bucket, the last count seen, when it was seen and the
-- reads in flight; before a read it estimates what is left now (the count, plus the refill
-- since, minus what is in flight) and, when that would take the last tokens, waits until the
-- refill gives them. A 429 sets the bucket empty until its Retry-After (the retry policy
-- above still waits and sends again: nothing is lost).
--
--   local pacer = require("azcmk.policy.pace").new()          -- shared by a run's tasks
--   local v = p:with{ per_retry = { pacer:bind(p.sleep) } }    -- sleep: how this task waits
--
-- A per-retry policy: it sees every try with its raw status. Writes are not paced (a
-- different bucket, and azcmk's writes are few).
local clock = require("azcmk.clock")
local retry = require("azcmk.retry")

local M = {}

M.RATE = 25    -- reads per second a principal's bucket refills (Azure's published number)
M.RESERVE = 1  -- tokens left untouched for what the estimate cannot see (other clients)

local Pacer = {}
Pacer.__index = Pacer

--- opts: rate (reads per second, default M.RATE), reserve (M.RESERVE), now (clock).
function M.new(opts)
  opts = opts or {}
  return setmetatable({ rate = opts.rate or M.RATE, reserve = opts.reserve or M.RESERVE,
    now = opts.now or clock.now, buckets = {}, waits = 0, waited = 0, throttled = 0 }, Pacer)
end

-- which bucket a request draws from: "sub <id>", "tenant", or nil (not an ARM read)
local function bucket_of(req)
  if req.host_kind ~= "arm" then return nil end
  local m = req.method
  if m ~= "GET" and m ~= "HEAD" then return nil end
  local path = req.target and req.target.path or req.url
  local sub = tostring(path):match("^/[Ss][Uu][Bb][Ss][Cc][Rr][Ii][Pp][Tt][Ii][Oo][Nn][Ss]/([^/?]+)")
  return sub and ("sub " .. sub:lower()) or "tenant", sub ~= nil
end

-- seconds to wait before a read of bucket b may go (0: now). A header counts the tokens left
-- after its request, so the bucket holds at least the most ever seen + 1 (b.max + 1); the
-- reserve is kept only when the bucket is known to be larger than it (a tiny bucket still
-- moves).
function Pacer:delay(b)
  local t = self.now()
  if b.blocked and t < b.blocked then return b.blocked - t end
  if not b.left then return 0 end
  local size = b.max + 1
  local est = math.min(b.left + (t - b.at) * self.rate, size) - b.inflight
  local need = 1 + math.min(self.reserve, size - 1)
  if est >= need then return 0 end
  return (need - est) / self.rate
end

--- The policy for one task (sleep: that task's way of waiting).
function Pacer:bind(sleep)
  local pacer = self
  return { name = "pace", send = function(_, req, next)
    local key, per_sub = bucket_of(req)
    if not key then return next:send(req) end
    local b = pacer.buckets[key]
    if not b then
      b = { inflight = 0, max = 0 }
      pacer.buckets[key] = b
    end
    local d = pacer:delay(b)
    while d > 0 do
      pacer.waits, pacer.waited = pacer.waits + 1, pacer.waited + d
      sleep(d)
      d = pacer:delay(b)
    end
    b.inflight = b.inflight + 1
    local res, err, raw = next:send(req)
    b.inflight = b.inflight - 1
    local h = res and res.headers
    if h then
      local left = tonumber(h[per_sub and "x-ms-ratelimit-remaining-subscription-reads"
        or "x-ms-ratelimit-remaining-tenant-reads"])
      if left then
        b.left, b.at = left, pacer.now()
        if left > b.max then b.max = left end
      end
      if res.status == 429 then
        pacer.throttled = pacer.throttled + 1
        local ra = retry.retry_after(h)
        b.left, b.at = 0, pacer.now()
        b.blocked = pacer.now() + (tonumber(ra) or 1)
      end
    end
    return res, err, raw
  end }
end

return M
