--- Policy: one log line per try, as it leaves for the transport (method, host, path,
-- api-version, status or error, time, request ids, try number), and at debug level the
-- redacted headers and bodies - the logger (azcmk.log) decides what may be shown. Costs
-- nothing when the logger is off.
local clock = require("azcmk.clock")

local M = {}

local P = {}
P.__index = P

--- owner: where the policy finds `log` when a call runs (a pipeline, a credential's context).
function M.new(owner) return setmetatable({ name = "log", owner = owner }, P) end

function P:send(req, next)
  local log = self.owner.log
  if not log or (log.enabled and not log:enabled("info")) then return next:send(req) end
  local t0 = clock.ms()
  local res, err = next:send(req)
  local ms = (res and res.info and res.info.total_ms) or (clock.ms() - t0)
  log:request({ req = req, res = res, err = err, ms = ms, attempt = req.attempt or 1 })
  return res, err
end

return M
