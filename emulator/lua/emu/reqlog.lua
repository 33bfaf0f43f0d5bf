--- emu.reqlog: the request log behind GET /_emulator/log. One JSON object per request:
-- seq, ts (simulated ISO time), method, host, path, query (secret values redacted), status,
-- ms, principal (object id of the authenticated caller), kind, request_id, `error` for
-- internal errors (status 500 from a Lua error in a handler), and for an injected fault `fault`
-- (the rule's id) and `fault_action` ("status:503", "drop", "drop_after", "delay", ...). Never tokens, secrets,
-- assertions, keys or identity headers: only the fields above are written.
local json = require("emu.json")
local clock = require("emu.clock")

local M = {}

local logdict = ngx.shared.emu_log
local MAX = 50000

-- Query parameters whose values never reach the log.
local SECRET = {
  client_secret = true, client_assertion = true, assertion = true, access_token = true,
  refresh_token = true, id_token = true, code = true, password = true, secret = true,
  sig = true, token = true, ["x-identity-header"] = true, identity_header = true,
}

--- The query string with secret values replaced by REDACTED (also for unknown *secret* keys).
function M.redact_query(args)
  if not args or args == "" then return "" end
  local parts = {}
  for pair in args:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local lk = (ngx.unescape_uri(k) or k):lower()
    if SECRET[lk] or lk:find("secret", 1, true) or lk:find("password", 1, true)
      or lk:find("assertion", 1, true) or lk:find("token", 1, true) then
      v = "REDACTED"
    end
    parts[#parts + 1] = v ~= "" and (k .. "=" .. v) or k
  end
  return table.concat(parts, "&")
end

--- Called from log_by_lua for every request.
function M.record()
  local ctx = ngx.ctx
  local t0 = ngx.req.start_time()
  local seq = logdict:incr("seq", 1, 0)
  local entry = {
    seq = seq,
    ts = clock.iso(),
    method = ngx.req.get_method(),
    host = (ngx.var.host or ""):lower(),
    path = ngx.var.uri,
    query = M.redact_query(ngx.var.args),
    status = ngx.status,
    ms = math.floor((ngx.now() - t0) * 1000 + 0.5),
    principal = ctx.principal,
    kind = ctx.kind,
    request_id = ctx.request_id,
    error = ctx.internal_error,
    fault = ctx.fault,
    fault_action = ctx.fault_action,
  }
  logdict:set("e:" .. seq, json.encode(entry))
  if seq > MAX then logdict:delete("e:" .. (seq - MAX)) end
end

--- Log entries as JSON lines (strings), those with seq > since, oldest first.
function M.lines(since)
  local last = logdict:get("seq") or 0
  local first = math.max((since or 0) + 1, last - MAX + 1, logdict:get("floor") or 1)
  local out = {}
  for i = first, last do
    local s = logdict:get("e:" .. i)
    if s then out[#out + 1] = s end
  end
  return out
end

--- Number of the last entry written.
function M.last_seq()
  return logdict:get("seq") or 0
end

--- Forgets the entries written so far (sequence numbers keep counting).
function M.clear()
  local last = logdict:get("seq") or 0
  logdict:set("floor", last + 1)
  for i = math.max(1, last - MAX + 1), last do logdict:delete("e:" .. i) end
end

return M
