--- The transport contract: what every transport (azcmk.transport.curl over libcurl,
-- azcmk.transport.ngx over nginx cosockets, the parallel batch's azcmk.transport.batch)
-- promises the pipeline, and the pieces they share: the settings read from the
-- environment, the hosts allowed plain http, and the error codes.
--
--   t.name                      "curl", "ngx", "auto", "batch", ...
--   t:request(req) -> res | nil, err
--     req = { method (a token, any case), url (absolute; https, or http to an allowed host),
--             headers = { Name = "value" } | nil, body = string | nil, timeout_ms = n | nil }
--     res = { status, headers (lower-case names, repeated ones joined ", "), body (string, ""
--             when none), http_version?, info = { total_ms, reused?, ... }? }
--     err = M.error(code, ...): a structured error (azcmk.errors) whose code is one of M.CODES,
--           with kind, retryable, phase ("connect": nothing reached the server; "io": the
--           request may have reached it) and tls (verification failed: never retried)
--   t:batch(reqs [, {max_parallel = n}]) -> results, errs   (by index: res or false, err or nil)
--   optional, a stream (azcmk.transport.curl): t:submit(req) -> slot; t:collect(seconds) ->
--     { [slot] = { res | false, err } } of the answers that arrived; t:abandon()
--   t:sleep(seconds)            wait without blocking what the transport serves
--   t:close()
-- A request table that is not one (no method or url, a method or header name that is not a
-- token, a header value with CR/LF/NUL) is a programmer error: request() raises.
-- Redirects are never followed; a 3xx is an answer like any other.
local errors = require("azcmk.errors")
local url = require("azcmk.url")

local M = {}

M.IMDS = "169.254.169.254"
M.LOOPBACK = { "127.0.0.1", "localhost", "::1" }

--- The only hosts a transport talks plain http to (IMDS and loopback: the managed-identity
-- endpoints); everything else is https. Also never sent through a proxy.
M.ALLOW_HTTP = { M.IMDS, M.LOOPBACK[1], M.LOOPBACK[2], M.LOOPBACK[3] }

M.TIMEOUT_MS = 30000
M.CONNECT_TIMEOUT_MS = 5000

-- ------------------------------------------------------------------ settings

local function list(v, what)
  if v == nil then return {} end
  if type(v) == "string" then return url.split_list(v) end
  if type(v) ~= "table" then error("azcmk.transport: '" .. what .. "' must be a list or a string", 3) end
  local out = {}
  for i = 1, #v do out[i] = v[i] end
  return out
end

--- A getenv function from transport options: opts.getenv, else a table opts.env (nginx strips
-- the environment; specs pass their own), else os.getenv. Empty values count as unset.
function M.getenv_of(opts)
  local raw = opts.getenv or (opts.env and function(k) return opts.env[k] end) or os.getenv
  return function(k)
    local v = raw(k)
    if v == "" then return nil end
    return v
  end
end

--- The settings of a transport: opts merged with the environment, resolved once here for
-- every transport. Returns a new table:
--   connect_to   opts.connect_to rules, then AZCMK_CONNECT_TO's (HOST:PORT:CONNECT_HOST:CONNECT_PORT,
--                comma-separated; the first matching rule wins)
--   ca_file      opts.ca_file, else AZCMK_CA_FILE (extra CAs to trust)
--   https_proxy  opts.https_proxy, else HTTPS_PROXY / https_proxy
--   no_proxy     opts.no_proxy, else NO_PROXY / no_proxy (a list)
--   allow_http   opts.allow_http, else M.ALLOW_HTTP
--   timeout_ms, connect_timeout_ms   opts' or the defaults
-- and every other option as given (user_agent, http_version, max_body_bytes, ...).
-- libcurl reads the proxy variables itself (it also knows all_proxy and http_proxy); the
-- cosocket transport uses https_proxy and no_proxy from here.
function M.options(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("azcmk.transport: options table expected", 2) end
  local getenv = M.getenv_of(opts)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.env, o.getenv = nil, nil
  local rules = list(opts.connect_to, "connect_to")
  for _, r in ipairs(url.split_list(getenv("AZCMK_CONNECT_TO"))) do rules[#rules + 1] = r end
  o.connect_to = rules
  if o.ca_file == nil then o.ca_file = getenv("AZCMK_CA_FILE") end
  if o.https_proxy == nil then o.https_proxy = getenv("HTTPS_PROXY") or getenv("https_proxy") end
  o.no_proxy = list(opts.no_proxy or getenv("NO_PROXY") or getenv("no_proxy"), "no_proxy")
  o.allow_http = list(opts.allow_http or M.ALLOW_HTTP, "allow_http")
  o.timeout_ms = opts.timeout_ms or M.TIMEOUT_MS
  o.connect_timeout_ms = opts.connect_timeout_ms or M.CONNECT_TIMEOUT_MS
  return o
end

--- A set of host names (lower-case, IPv6 without brackets) from a list.
function M.host_set(hosts)
  local s = {}
  for _, h in ipairs(hosts or {}) do s[(h:gsub("^%[(.*)%]$", "%1")):lower()] = true end
  return s
end

-- ------------------------------------------------------------------ requests

local TOKEN = "^[!#$%%&'*+%-.^_`|~%w]+$"

--- Raises on a request that is not a table with string method and url (the caller's caller
-- is blamed). Cheap: run on every request.
function M.check(req)
  if type(req) ~= "table" then error("azcmk.transport: request table expected", 3) end
  if type(req.method) ~= "string" or type(req.url) ~= "string" then
    error("azcmk.transport: req.method and req.url must be strings", 3)
  end
end

--- M.check, plus: the method and the header names are tokens and no header value holds CR,
-- LF or NUL. For transports that write the request head themselves (libcurl's core checks
-- the same in C).
function M.check_head(req)
  local level = 3
  if type(req) ~= "table" then error("azcmk.transport: request table expected", level) end
  if type(req.method) ~= "string" or type(req.url) ~= "string" then
    error("azcmk.transport: req.method and req.url must be strings", level)
  end
  if not req.method:match(TOKEN) then
    error("azcmk.transport: bad method " .. string.format("%q", req.method), level)
  end
  for k, v in pairs(req.headers or {}) do
    if type(k) ~= "string" or not k:match(TOKEN) then
      error("azcmk.transport: bad header name " .. tostring(k), level)
    end
    if v ~= false and (type(v) ~= "string" and type(v) ~= "number" or tostring(v):find("[\r\n%z]")) then
      error("azcmk.transport: bad value for header " .. k, level)
    end
  end
end

-- ------------------------------------------------------------------ errors

--- The error codes of a transport: kind, and for network failures whether a retry may help
-- (retryable) and how far the request got (phase). A transport maps its own failures
-- (libcurl's CURLE_* codes, cosocket error texts) to these, keeping its own detail in the
-- error (err.curl_code, err.detail) for diagnostics.
M.CODES = {
  ResolveFailed = { kind = "network", phase = "connect", retryable = true,
    hint = "check the host name and DNS, or AZCMK_CONNECT_TO if you route the host elsewhere" },
  ConnectFailed = { kind = "network", phase = "connect", retryable = true,
    hint = "check that the host is reachable from here (network, firewall, HTTPS_PROXY); for the "
      .. "emulator, that it runs (azcmk emulator status) and AZCMK_CONNECT_TO names its port" },
  TLSHandshakeFailed = { kind = "network", phase = "connect", retryable = true },
  TLSVerificationFailed = { kind = "network", retryable = false, tls = true },
  ProxyFailed = { kind = "network", retryable = false },
  Timeout = { kind = "timeout", phase = "io", retryable = true },
  SendFailed = { kind = "network", phase = "io", retryable = true },
  ReceiveFailed = { kind = "network", phase = "io", retryable = true },
  EmptyReply = { kind = "network", phase = "io", retryable = true },
  PartialBody = { kind = "network", phase = "io", retryable = true },
  BodyTooLarge = { kind = "network", retryable = false },
  InvalidUrl = { kind = "input", retryable = false },
  HttpRefused = { kind = "input", retryable = false },
  TransportUnavailable = { kind = "network", retryable = false },
  TransportFailed = { kind = "network", retryable = false },
}

--- A transport error: code (a key of M.CODES), message, host (named in the message) and
-- extra fields (curl_code, detail, hint).
function M.error(code, message, host, fields)
  local c = M.CODES[code]
  if not c then error("azcmk.transport: unknown error code " .. tostring(code), 2) end
  local f = {}
  for k, v in pairs(fields or {}) do f[k] = v end
  f.code = code
  f.message = tostring(message or code) .. (host and (" (" .. host .. ")") or "")
  f.retryable, f.phase, f.tls = c.retryable, c.phase, c.tls
  if f.hint == nil then f.hint = c.hint end   -- what to do next, unless the transport knows better
  return errors.new(c.kind, f)
end

--- The error for a request the transport refuses before any I/O because it is plain http
-- to a host outside allow_http (or another scheme).
function M.refused(scheme, host)
  return M.error("HttpRefused", "refusing " .. tostring(scheme) .. "://" .. tostring(host)
    .. " (only https; plain http only to IMDS and loopback)", nil,
    { hint = "use an https:// URL" })
end

return M
