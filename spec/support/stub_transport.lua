--- Scripted transport (and pipeline) for UNIT specs of the pipeline's pure logic (policies,
-- retry loop, challenge flow, LRO state machine). Integration specs use the emulator over real HTTPS instead.
-- new(handler) where handler(req, n) -> res | nil, err ; records every request in .calls.
local M = {}

function M.new(handler)
  local t = { calls = {} }
  function t.request(self, req)
    local r = {}
    for k, v in pairs(req) do r[k] = v end
    r.headers = {}
    for k, v in pairs(req.headers or {}) do r.headers[k] = v end
    self.calls[#self.calls + 1] = r
    local res, err = handler(r, #self.calls)
    if res then
      res.headers = res.headers or {}
      res.body = res.body or ""
    end
    return res, err
  end
  return t
end

--- Handler from a list of responses served in order (the last one repeats).
function M.sequence(list)
  return M.new(function(_, n)
    local r = list[math.min(n, #list)]
    if type(r) == "function" then return r() end
    local c = {}
    for k, v in pairs(r) do c[k] = v end
    if r.headers then c.headers = {}; for k, v in pairs(r.headers) do c.headers[k] = v end end
    return c
  end)
end

--- A scripted pipeline for LRO and paging units: p:send(req) answers from `answers` in order
-- (the last one repeats; { err = e } fails), JSON bodies decoded; p.calls records requests,
-- p.clock is its fake clock.
function M.pipeline(answers)
  local cjson = require("cjson.safe")
  local c = M.clock()
  local p = { calls = {}, now = c.now, sleep = c.sleep, clock = c }
  function p.send(self, req)
    self.calls[#self.calls + 1] = req
    local a = answers[#self.calls] or answers[#answers]
    if a.err then return nil, a.err end
    a.headers = a.headers or {}
    if a.body then a.json = cjson.decode(a.body) end
    a.url = a.url or req.url
    return a
  end
  return p
end

--- A fake clock: now() returns t; sleep(s) advances it and records s.
function M.clock(start)
  local c = { t = start or 1000000, sleeps = {} }
  c.now = function() return c.t end
  c.sleep = function(s) c.sleeps[#c.sleeps + 1] = s; c.t = c.t + s end
  return c
end

return M
