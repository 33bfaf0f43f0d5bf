--- Policy: a record of every call made through a pipeline - the evidence trail the doctor
-- shows (which REST call produced which fact). A per-call policy: it sees each call once,
-- after retries, with the structured error of a failed call.
--
--   local trace = require("azcmk.policy.trace").new()
--   local tp = p:with{ per_call = { trace } }   -- tp shares p's credential, tokens, transport
--   tp:arm("GET", ...)
--   for _, c in ipairs(trace.calls) do print(c.call, c.status, c.code, c.request_id) end
--
-- A record: { call = "GET /subscriptions/..." (ARM: the path; other hosts: origin and path;
-- a $filter is kept, it says what was asked; " (anonymous)" when sent with auth = false),
-- method, url (as sent), host, path, query (raw), host_kind, auth (false when sent without
-- a token on purpose), status, code (the error's: Azure's code, or a transport or input
-- code), kind (the error's), request_id, attempts (tries the retry policy made), headers
-- (the answer's, lower-case names; nil without one) }.
local url = require("azcmk.url")

local M = {}

local P = {}
P.__index = P

--- opts.sink: function(record) called for each record, besides keeping it in .calls (and
-- .calls is not kept when opts.keep == false).
function M.new(opts)
  opts = opts or {}
  return setmetatable({ name = "trace", calls = {}, sink = opts.sink, keep = opts.keep ~= false }, P)
end

-- how the doctor names a call: the ARM path, or origin and path elsewhere
local function describe(req, t)
  local where = req.host_kind == "arm" and t.path
    or ((t.scheme and url.origin(t) or "") .. (t.path or req.url))
  local filter = t.query and url.query_get(t.query, "$filter")
  if filter then where = where .. "?$filter=" .. filter end
  return req.method .. " " .. where .. (req.auth == false and " (anonymous)" or "")
end

function P:send(req, next)
  local res, err, raw = next:send(req)
  local t = req.target or url.parse(req.url) or {}
  local answer = res or raw
  local rec = {
    call = describe(req, t), method = req.method, url = req.url, host = t.host, path = t.path,
    query = t.query, host_kind = req.host_kind, auth = req.auth ~= false,
    status = (answer and answer.status) or (err and err.status),
    code = err and err.code or nil, kind = err and err.kind or nil,
    request_id = (res and res.request_id) or (err and err.request_id),
    attempts = tonumber((answer and answer.attempts)
      or (err and type(err.attempts) == "number" and err.attempts)),
    headers = answer and answer.headers,
  }
  if self.keep then self.calls[#self.calls + 1] = rec end
  if self.sink then self.sink(rec) end
  return res, err, raw
end

--- Forget the records kept so far.
function P:clear() self.calls = {} end

return M
