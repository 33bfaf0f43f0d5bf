--- emu.faults: injected failures (POST/DELETE /_emulator/faults). Rules live in the shared
-- dict so every worker applies them. A rule matches on host (exact or "*.suffix"), path
-- prefix (case-insensitive), method; then it either delays (delay_ms), drops the connection
-- (drop = true -> nginx 444, no response at all) or answers with `status` (+ Retry-After) in
-- the envelope of the service the host plays. `count` limits how often it fires, `ratio`
-- (0..1) makes it fire at random. `headers` adds response headers to a status answer (e.g.
-- an HTTP-date Retry-After, retry-after-ms, or a WWW-Authenticate naming a foreign resource).
-- Control API paths (/_emulator/) are never faulted.
local json = require("emu.json")
local errors = require("emu.errors")

local M = {}

local meta = ngx.shared.emu_meta
local KEY = "faults"

local cache, cache_ver -- per-worker decoded copy, refreshed when the version changes

local function load()
  local ver = meta:get("faults:ver") or 0
  if cache and cache_ver == ver then return cache end
  cache = json.decode(meta:get(KEY) or "[]") or {}
  cache_ver = ver
  return cache
end

function M.list()
  return load()
end

local FIELDS = { host = "string", path = "string", method = "string", status = "number",
  retry_after = "number", delay_ms = "number", drop = "boolean", count = "number", ratio = "number",
  code = "string", message = "string", headers = "table" }

--- Validates and appends rules; returns the full list or nil, message.
function M.add(rules)
  if type(rules) ~= "table" or #rules == 0 then return nil, "'rules' must be a non-empty array" end
  local list = load()
  local out = json.array({})
  for _, r in ipairs(list) do out[#out + 1] = r end
  for i, r in ipairs(rules) do
    if type(r) ~= "table" then return nil, "rule " .. i .. " is not an object" end
    for k, v in pairs(r) do
      if not FIELDS[k] then return nil, "rule " .. i .. ": unknown field '" .. tostring(k) .. "'" end
      if type(v) ~= FIELDS[k] then return nil, "rule " .. i .. ": '" .. k .. "' must be a " .. FIELDS[k] end
    end
    if not (r.status or r.drop or r.delay_ms) then
      return nil, "rule " .. i .. ": give 'status', 'drop' or 'delay_ms'"
    end
    if r.status and not (r.status >= 100 and r.status <= 599) then return nil, "rule " .. i .. ": bad status" end
    for _, k in ipairs({ "retry_after", "delay_ms", "count" }) do
      if r[k] and not (r[k] >= 0 and r[k] <= 3600000) then
        return nil, "rule " .. i .. ": '" .. k .. "' must be from 0 to 3600000"
      end
    end
    if r.ratio and not (r.ratio >= 0 and r.ratio <= 1) then return nil, "rule " .. i .. ": ratio must be 0..1" end
    if r.headers then
      if not r.status then return nil, "rule " .. i .. ": 'headers' needs 'status'" end
      for k, v in pairs(r.headers) do
        if type(k) ~= "string" or not k:match("^[%w%-]+$") or type(v) ~= "string" or v:find("[\r\n]") then
          return nil, "rule " .. i .. ": 'headers' must map header names to one-line strings"
        end
      end
    end
    local rule = {}
    for k, v in pairs(r) do rule[k] = v end
    if rule.status then rule.status = math.floor(rule.status) end
    rule.id = meta:incr("faults:seq", 1, 0)
    out[#out + 1] = rule
  end
  meta:set(KEY, json.encode(out))
  meta:incr("faults:ver", 1, 0)
  return out
end

function M.clear()
  meta:set(KEY, "[]")
  meta:incr("faults:ver", 1, 0)
end

local function host_match(pat, host)
  pat = pat:lower()
  if pat:sub(1, 2) == "*." then return host:sub(-(#pat - 1)) == pat:sub(2) end
  return pat == host
end

--- The first rule that fires for req, or nil. Counts the firing.
function M.match(req)
  local rules = load()
  if #rules == 0 then return nil end
  for _, r in ipairs(rules) do
    if (not r.host or host_match(r.host, req.host))
      and (not r.path or req.path:lower():sub(1, #r.path) == r.path:lower())
      and (not r.method or r.method:upper() == req.method)
      and (not r.ratio or math.random() < r.ratio) then
      local fired = meta:incr("faults:fired:" .. r.id, 1, 0)
      if not r.count or fired <= r.count then return r end
    end
  end
  return nil
end

--- Applies a matching rule: nil to continue normally, or the response triple.
function M.apply(req)
  local r = M.match(req)
  if not r then return nil end
  ngx.ctx.fault = r.id
  if r.delay_ms and r.delay_ms > 0 then ngx.sleep(r.delay_ms / 1000) end
  if r.drop then return ngx.exit(444) end
  if not r.status then return nil end
  local headers = {}
  if r.retry_after then headers["Retry-After"] = tostring(math.floor(r.retry_after)) end
  for k, v in pairs(r.headers or {}) do headers[k] = v end
  return errors.for_kind(req.kind, r.status, r.code, r.message, headers)
end

return M
