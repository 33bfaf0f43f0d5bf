--- The calls behind a set of facts: every request the state reader sends is recorded with
-- its outcome (status, code, request id), and what the answers' headers tell about the
-- service is kept beside them: its clock (x-ms-routing-request-id, else Date), the lowest
-- read quota left (x-ms-ratelimit-remaining-subscription-reads), 429 answers and retries.
-- The doctor shows these as evidence (throttle headroom) and judges time against the
-- service's clock, not this machine's.
--
--   local rec = trace.new()
--   local v = trace.view(p, rec)      -- a pipeline whose requests are recorded in rec
--   ... clients on v ...
--   rec.calls, rec.service_now, rec.reads_left, rec.throttled, rec.retried
--
-- trace.view is the only place that hooks into the pipeline: it wraps p:send, which every
-- ARM, Key Vault and data-plane call goes through.
local url = require("azcmk.url")
local clock = require("azcmk.clock")

local M = {}

--- The service's clock from x-ms-routing-request-id ("REGION:20261122T050102Z:guid"), else
-- the Date header, else nil.
function M.service_time(headers)
  headers = headers or {}
  local r = headers["x-ms-routing-request-id"]
  if type(r) == "string" then
    local y, mo, d, h, mi, s = r:match(":(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z:")
    if y then
      return clock.timegm(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
    end
  end
  if type(headers.date) == "string" then return clock.parse_http_date(headers.date) end
  return nil
end

--- A new, empty recorder.
function M.new()
  return { calls = {} }
end

-- "GET /subscriptions/.../x" for ARM (the path; a $filter is kept, it says what was asked),
-- "GET https://kv.vault.azure.net/keys/k" for other hosts, "(anonymous)" when sent without a
-- token.
local function describe(req, p)
  local u = url.parse(req.url or "") or {}
  local arm = p and p.cloud and p.cloud.arm_endpoint
  local where = (arm and req.url:sub(1, #arm) == arm) and (u.path or "/")
    or ((u.scheme or "https") .. "://" .. tostring(u.host) .. (u.path or "/"))
  local filter = req.query and req.query["$filter"]
  if filter then where = where .. "?$filter=" .. filter end
  return tostring(req.method):upper() .. " " .. where .. (req.auth == false and " (anonymous)" or "")
end

--- Record one call: req (the p:send request), and what p:send returned (res or nil, err).
function M.record(rec, req, res, err, p)
  rec.calls[#rec.calls + 1] = { call = describe(req, p), status = res and res.status or (err and err.status),
    code = err and err.code or nil, request_id = (res and res.request_id) or (err and err.request_id) }
  if res and res.headers then
    local reads = tonumber(res.headers["x-ms-ratelimit-remaining-subscription-reads"])
    if reads and (not rec.reads_left or reads < rec.reads_left) then rec.reads_left = reads end
    -- the service's clock: ARM's routing header wins over any Date header
    local routed = res.headers["x-ms-routing-request-id"] ~= nil
    local t = M.service_time(res.headers)
    if t and (routed or not rec.service_now_routed) then
      rec.service_now, rec.service_now_routed = t, routed or rec.service_now_routed
    end
  end
  if (res and res.status == 429) or (err and err.status == 429) then
    rec.throttled = (rec.throttled or 0) + 1
  end
  -- the pipeline retried 429s / 5xx on its own: count the extra tries
  local tries = tonumber(res and res.attempts or (err and type(err.attempts) == "number" and err.attempts))
  if tries and tries > 1 then rec.retried = (rec.retried or 0) + tries - 1 end
end

--- The last recorded call (or nil).
function M.last(rec) return rec.calls[#rec.calls] end

--- A view of pipeline p that records every request in rec; everything else is p's own.
function M.view(p, rec)
  return setmetatable({
    send = function(_, req)
      local res, err, raw = p:send(req)
      M.record(rec, req, res, err, p)
      return res, err, raw
    end,
  }, { __index = p })
end

return M
