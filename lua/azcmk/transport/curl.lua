--- Transport over the C core's libcurl client (require "azcmk.http").
-- The transport interface, shared by every transport (an nginx cosocket one later):
--   t:request(req) -> res | nil, err
--     req = { method, url, headers = {Name = value}, body = string|nil, timeout_ms = n|nil }
--     res = { status, headers (lower-case names), body, info = {total_ms=...}|nil }
--     err = structured error (azcmk.errors): kind network|timeout|input, retryable, phase, tls
--   t:batch(reqs) -> { res_or_false, ... }, { err_or_nil, ... }
--   t:close()
-- Settings come from options, else the environment: AZCMK_CONNECT_TO (comma-separated
-- HOST:PORT:CONNECT_HOST:CONNECT_PORT), AZCMK_CA_FILE.
local errors = require("azcmk.errors")
local url = require("azcmk.url")

local M = {}

M.ALLOW_HTTP = { "169.254.169.254", "127.0.0.1", "localhost", "::1" }

local T = {}
T.__index = T

local function split_list(s)
  local out = {}
  if type(s) == "table" then return s end
  if not s or s == "" then return out end
  for part in s:gmatch("[^,%s]+") do out[#out + 1] = part end
  return out
end

local function make_client(cfg, env)
  local ok, http = pcall(require, "azcmk.http")
  if ok and type(http) == "table" and type(http.new) == "function" then
    return http.new(cfg, env)     -- adds AZCMK_CONNECT_TO / AZCMK_CA_FILE / allow_http defaults
  end
  local core = require("azcmk.core")
  return core.http_client(cfg)
end

--- New transport. opts: ca_file, connect_to (list or comma string), timeout_ms (default
-- 30000), connect_timeout_ms (default 5000), allow_http (list; default IMDS + loopback),
-- user_agent, http_version, client (an already built azcmk.http client), env (a table
-- replacing os.getenv for AZCMK_CONNECT_TO / AZCMK_CA_FILE, e.g. inside nginx).
-- No I/O happens here; the client is made on the first request.
function M.new(opts)
  opts = opts or {}
  local cfg = {
    ca_file = opts.ca_file,
    connect_to = opts.connect_to and split_list(opts.connect_to) or nil,
    timeout_ms = opts.timeout_ms or 30000,
    connect_timeout_ms = opts.connect_timeout_ms or 5000,
    allow_http = opts.allow_http or M.ALLOW_HTTP,
    user_agent = opts.user_agent,
    http_version = opts.http_version,
  }
  return setmetatable({ cfg = cfg, env = opts.env, client = opts.client, name = "curl" }, T)
end

function T:_client()
  if not self.client then self.client = make_client(self.cfg, self.env) end
  return self.client
end

local function host_of(u)
  local p = url.parse(u or "")
  return p and p.host
end

local function normalize(res)
  local h = {}
  for k, v in pairs(res.headers or {}) do h[tostring(k):lower()] = v end
  res.headers = h
  res.body = res.body or ""
  return res
end

local function check(req)
  if type(req) ~= "table" then error("azcmk.transport: request table expected", 3) end
  if type(req.method) ~= "string" or type(req.url) ~= "string" then
    error("azcmk.transport: req.method and req.url must be strings", 3)
  end
end

function T:request(req)
  check(req)
  local ok, c = pcall(self._client, self)
  if not ok then
    return nil, errors.new("network", { code = "TransportUnavailable", message = tostring(c),
      retryable = false })
  end
  local res, msg, code = c:request({
    method = req.method, url = req.url, headers = req.headers, body = req.body, timeout_ms = req.timeout_ms,
  })
  if not res then return nil, errors.from_transport(msg, code, host_of(req.url)) end
  return normalize(res)
end

--- Parallel requests. Returns results (res or false) and errs (err or nil) by index.
function T:batch(reqs, opts)
  for _, r in ipairs(reqs) do check(r) end
  local c = self:_client()
  local out = c:batch(reqs, opts)
  local results, errs = {}, {}
  for i = 1, #reqs do
    local r = out[i]
    if r and r.status then
      results[i] = normalize(r)
    else
      results[i] = false
      errs[i] = errors.from_transport(r and r.error, r and r.code, host_of(reqs[i].url))
    end
  end
  return results, errs
end

function T:close()
  if self.client and self.client.close then self.client:close() end
  self.client = nil
end

return M
