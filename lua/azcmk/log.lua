--- Request logging with redaction by allow-list.
-- AZCMK_LOG=info|debug (or log.new{level=, sink=}). info: one line per HTTP attempt
-- (method, host, path, api-version, status, ms, request ids, attempt). debug adds
-- allow-listed headers and JSON/form bodies with secret fields redacted. Tokens,
-- secrets, assertions and keys never appear.
local cjson = require("cjson.safe")
local url = require("azcmk.url")
local errors = require("azcmk.errors")

local M = {}

local LEVELS = { off = 0, error = 1, warn = 2, info = 3, debug = 4 }

--- Header names whose values may be logged (lower-case). Everything else is REDACTED.
M.header_allow = {}
for _, h in ipairs({
  "x-ms-request-id", "x-ms-client-request-id", "x-ms-return-client-request-id", "traceparent",
  "accept", "cache-control", "connection", "content-length", "content-type", "date", "etag",
  "expires", "if-match", "if-modified-since", "if-none-match", "if-unmodified-since",
  "last-modified", "pragma", "request-id", "retry-after", "server", "transfer-encoding",
  "user-agent", "ms-cv", "www-authenticate", "retry-after-ms", "x-ms-retry-after-ms",
  "x-ms-correlation-request-id", "x-ms-routing-request-id", "x-ms-keyvault-region",
  "x-ms-keyvault-service-version", "x-ms-keyvault-network-info",
}) do M.header_allow[h] = true end

--- Query parameters whose values may be logged.
M.query_allow = { ["api-version"] = true }

--- Form fields whose values may be logged (token requests).
M.form_allow = { grant_type = true, client_id = true, scope = true, client_assertion_type = true,
                 resource = true, ["api-version"] = true }

--- JSON fields that are always redacted (any depth).
M.json_deny = {}
for _, k in ipairs({
  "access_token", "refresh_token", "id_token", "client_secret", "client_assertion", "assertion",
  "password", "secret", "token", "accessToken", "refreshToken",
  "d", "p", "q", "dp", "dq", "qi", "k", "key_hsm", "value",
}) do M.json_deny[k] = true end

local R = "REDACTED"

function M.redact_query(q)
  if not q or q == "" then return "" end
  local out = {}
  for _, kv in ipairs(url.parse_query(q)) do
    local v = M.query_allow[kv[1]:lower()] and kv[2] or R
    out[#out + 1] = kv[1] .. "=" .. v
  end
  return table.concat(out, "&")
end

--- URL with query values redacted except api-version.
function M.redact_url(u)
  local p = url.parse(u)
  if not p then return "[unparsable url]" end
  local s = url.origin(p) .. p.path
  if p.query ~= "" then s = s .. "?" .. M.redact_query(p.query) end
  return s
end

function M.redact_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do
    local lk = tostring(k):lower()
    out[lk] = M.header_allow[lk] and errors.scrub(tostring(v)) or R
  end
  return out
end

local function redact_tree(v, depth)
  if depth > 32 then return R end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if type(k) == "string" and M.json_deny[k] and type(x) ~= "table" then
      out[k] = R
    elseif type(k) == "string" and M.json_deny[k] and k ~= "value" then
      out[k] = R
    else
      out[k] = redact_tree(x, depth + 1)
    end
  end
  return out
end

--- Body for debug logs: JSON with secret fields redacted, form bodies by allow-list,
-- anything else as its size only. Capped at 4096 characters.
function M.redact_body(body, content_type)
  if body == nil or body == "" then return nil end
  if type(body) == "table" then body = cjson.encode(body) or "" end
  content_type = (content_type or ""):lower()
  local out
  local first = body:match("^%s*(.)")
  if content_type:find("json", 1, true) or first == "{" or first == "[" then
    local j = cjson.decode(body)
    if j == nil then out = "[" .. #body .. " bytes, not JSON]"
    else out = cjson.encode(redact_tree(j, 0)) end
  elseif content_type:find("x-www-form-urlencoded", 1, true) then
    local parts = {}
    for _, kv in ipairs(url.parse_query(body)) do
      parts[#parts + 1] = kv[1] .. "=" .. (M.form_allow[kv[1]] and kv[2] or R)
    end
    out = table.concat(parts, "&")
  else
    out = "[" .. #body .. " bytes]"
  end
  out = errors.scrub(out)
  if #out > 4096 then out = out:sub(1, 4096) .. "...[truncated]" end
  return out
end

local logger = {}
logger.__index = logger

--- New logger. opts.level: "off"|"error"|"warn"|"info"|"debug" (default off);
-- opts.sink: function(line) (default: stderr).
function M.new(opts)
  opts = opts or {}
  local level = opts.level or "off"
  local n = LEVELS[tostring(level):lower()]
  if not n then error("azcmk.log: unknown level " .. tostring(level), 2) end
  return setmetatable({
    level = n,
    sink = opts.sink or function(line) io.stderr:write(line, "\n") end,
  }, logger)
end

--- Logger from AZCMK_LOG (info|debug|...); opts.sink as in new().
function M.from_env(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local lvl = getenv("AZCMK_LOG")
  if lvl == nil or lvl == "" or not LEVELS[lvl:lower()] then lvl = "off" end
  return M.new({ level = lvl, sink = opts.sink })
end

function logger:enabled(level) return self.level >= (LEVELS[level] or 99) end

local function emit(self, line)
  -- last safety net: nothing token-shaped leaves the logger
  self.sink(errors.scrub(line))
end

function logger:log(level, msg)
  if self:enabled(level) then emit(self, "azcmk " .. level .. ": " .. msg) end
end

function logger:info(msg) self:log("info", msg) end
function logger:debug(msg) self:log("debug", msg) end
function logger:warn(msg) self:log("warn", msg) end

--- One HTTP attempt. t = { req = {method,url,headers,body}, res = res|nil, err = err|nil,
-- ms = number, attempt = n }.
function logger:request(t)
  if not self:enabled("info") then return end
  local req, res = t.req, t.res
  local p = url.parse(req.url or "")
  local api = p and url.query_get(p.query, "api-version")
  local parts = { "azcmk http", req.method or "?", p and p.authority or "?", p and p.path or "?" }
  if api then parts[#parts + 1] = "api-version=" .. api end
  if res then
    parts[#parts + 1] = "-> " .. tostring(res.status)
  else
    local e = t.err
    parts[#parts + 1] = "-> " .. (e and (e.kind .. " " .. tostring(e.code or "")) or "error")
  end
  if t.ms then parts[#parts + 1] = string.format("%dms", math.floor(t.ms + 0.5)) end
  local h = res and res.headers or {}
  if h["x-ms-request-id"] then parts[#parts + 1] = "x-ms-request-id=" .. h["x-ms-request-id"] end
  local crid = h["x-ms-client-request-id"] or (req.headers and req.headers["x-ms-client-request-id"])
  if crid then parts[#parts + 1] = "x-ms-client-request-id=" .. crid end
  if t.attempt and t.attempt > 1 then parts[#parts + 1] = "try=" .. t.attempt end
  emit(self, table.concat(parts, " "))
  if self:enabled("debug") then
    local function hdrs(x)
      local r = M.redact_headers(x)
      local ks = {}
      for k in pairs(r) do ks[#ks + 1] = k end
      table.sort(ks)
      local o = {}
      for _, k in ipairs(ks) do o[#o + 1] = k .. ": " .. r[k] end
      return table.concat(o, "; ")
    end
    emit(self, "azcmk debug: > " .. M.redact_url(req.url or "") .. " " .. hdrs(req.headers))
    local qb = M.redact_body(req.body,
      req.headers and (req.headers["Content-Type"] or req.headers["content-type"]))
    if qb then emit(self, "azcmk debug: > body " .. qb) end
    if res then
      emit(self, "azcmk debug: < " .. tostring(res.status) .. " " .. hdrs(res.headers))
      local rb = M.redact_body(res.body, res.headers and res.headers["content-type"])
      if rb then emit(self, "azcmk debug: < body " .. rb) end
    elseif t.err then
      emit(self, "azcmk debug: < " .. tostring(t.err))
    end
  end
end

return M
