--- Transport over nginx cosockets (OpenResty / Debian's libnginx-mod-http-lua): a small
-- HTTP/1.1 client that keeps the transport contract (azcmk.transport.contract) and never
-- blocks the worker's event loop. docs/openresty.md explains why this, not libcurl in
-- ngx.run_worker_thread.
--
--   local t = require("azcmk.transport.ngx").new{ timeout_ms = 10000 }
--   local res, err = t:request{ method = "GET", url = "https://management.azure.com/..." }
--
-- * Works where cosockets work: rewrite, access, content, timer (and ssl_cert /
--   ssl_session_fetch). Elsewhere request() returns a `network` error (TransportUnavailable);
--   `auto()` picks libcurl there instead.
-- * TLS verification is always on: sslhandshake(nil, <URL host>, true) against nginx's
--   `lua_ssl_trusted_certificate` (there is no per-socket CA: put AZCMK_CA_FILE's certificates
--   into that bundle); `lua_ssl_verify_depth` must cover the chain.
-- * AZCMK_CONNECT_TO rules (HOST:PORT:CONNECT_HOST:CONNECT_PORT, empty HOST or PORT = any):
--   the TCP connection goes to the mapped address; Host, SNI and certificate verification
--   stay on the URL's host. Host names need nginx's `resolver`.
-- * Keep-alive pools per (URL host, port, connect address, TLS settings); bodies with
--   Content-Length, chunked, or until close; 1xx answers skipped; a reused connection that
--   the server had closed is retried once on a fresh one (before any byte of an answer).
-- * HTTPS through an http:// proxy with CONNECT (HTTPS_PROXY / https_proxy, or opts.https_proxy;
--   user:password@ -> Proxy-Authorization: Basic), except for hosts in NO_PROXY / no_proxy
--   (names and domain suffixes, "*" = all), hosts mapped by a connect_to rule, IMDS and
--   loopback. TLS (SNI, verification) is end to end with the URL's host; plain http never
--   goes through the proxy.
-- Errors are the contract's codes (the socket's own error text is in the message), so the
-- pipeline's retry rules apply as with libcurl.
local contract = require("azcmk.transport.contract")
local url = require("azcmk.url")

local ngx = rawget(_G, "ngx")

local M = {}

M.MAX_BODY = 64 * 1024 * 1024

-- phases where cosockets (and ngx.sleep) work
M.YIELDABLE = { rewrite = true, access = true, content = true, timer = true, ssl_cert = true,
  ssl_session_fetch = true, ssl_client_hello = true, server_rewrite = true, preread = true }

--- True when running inside nginx in a phase where cosockets can be used.
function M.yieldable()
  if not ngx or type(ngx.get_phase) ~= "function" then return false end
  return M.YIELDABLE[ngx.get_phase()] == true
end

--- True inside nginx (any phase).
function M.in_nginx()
  return ngx ~= nil and type(ngx.get_phase) == "function"
end

--- Sleep that yields inside nginx (ngx.sleep) and falls back to azcmk.clock.sleep elsewhere.
function M.sleep(s)
  if M.yieldable() then return ngx.sleep(s) end
  return require("azcmk.clock").sleep(s)
end


-- "HOST:PORT:CONNECT_HOST:CONNECT_PORT", hosts may be [IPv6]
local function parse_rule(r)
  local fields, rest = {}, r
  for _ = 1, 4 do
    local f
    if rest:sub(1, 1) == "[" then
      f, rest = rest:match("^(%[[^%]]*%]):?(.*)$")
      if not f then return nil end
    else
      f, rest = rest:match("^([^:]*):?(.*)$")
    end
    fields[#fields + 1] = f
  end
  if rest ~= "" then return nil end
  local function unbracket(h) return (h or ""):gsub("^%[(.*)%]$", "%1"):lower() end
  return { host = unbracket(fields[1]), port = tonumber(fields[2]), to_host = unbracket(fields[3]),
    to_port = tonumber(fields[4]) }
end

M.parse_rule = parse_rule

local T = {}
T.__index = T

--- New transport. opts: the contract's settings (contract.options: connect_to, allow_http,
-- timeout_ms, connect_timeout_ms, https_proxy, no_proxy, env / getenv; ca_file has no
-- effect: see the file header) plus user_agent, keepalive_ms (idle time in the pool, 60000),
-- pool_size (30), max_parallel (batch, 16), max_body_bytes (64 MiB). No I/O here.
function M.new(opts)
  local o = contract.options(opts)
  local parsed = {}
  for _, r in ipairs(o.connect_to) do
    local p = parse_rule(r)
    if not p then error("azcmk.transport.ngx: bad connect_to rule '" .. r .. "'", 2) end
    parsed[#parsed + 1] = p
  end
  local allow = contract.host_set(o.allow_http)
  -- never through a proxy: loopback and the plain-http hosts (their requests carry secrets)
  local direct = contract.host_set(contract.LOOPBACK)
  for h in pairs(allow) do direct[h] = true end
  return setmetatable({
    name = "ngx", rules = parsed, allow_http = allow, direct = direct, proxy = M.parse_proxy(o.https_proxy),
    no_proxy = o.no_proxy, timeout_ms = o.timeout_ms, connect_timeout_ms = o.connect_timeout_ms,
    user_agent = o.user_agent, keepalive_ms = o.keepalive_ms or 60000, pool_size = o.pool_size or 30,
    max_parallel = o.max_parallel or 16, max_body = o.max_body_bytes or M.MAX_BODY,
    stats = { connects = 0, reused = 0, requests = 0 },
  }, T)
end

--- "http://[user:password@]host[:port][/]" -> { host, port, auth } or nil (empty, or not http://)
function M.parse_proxy(s)
  if type(s) ~= "string" or s == "" then return nil end
  if not s:find("://", 1, true) then s = "http://" .. s end
  local scheme, authority = s:match("^(%a[%w+.-]*)://([^/]*)")
  if not scheme or scheme:lower() ~= "http" then return nil end
  local userinfo, hostport = authority:match("^(.*)@([^@]*)$")
  if not userinfo then userinfo, hostport = "", authority end
  local host, port = hostport:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([^:]+):?(%d*)$") end
  if not host then return nil end
  local auth
  if userinfo ~= "" then
    auth = userinfo:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return { host = host:lower(), port = tonumber(port) or 80, auth = auth }
end

--- The proxy to use for host (nil: connect directly).
function T:proxy_for(host)
  if not self.proxy or self.direct[host] then return nil end
  for _, e in ipairs(self.no_proxy) do
    e = e:lower():gsub("^%*?%.", "")
    if e == "*" or host == e or host:sub(-(#e + 1)) == "." .. e then return nil end
  end
  return self.proxy
end

-- the address to connect to for host:port (first matching rule); true when a rule matched
function T:target(host, port)
  for _, r in ipairs(self.rules) do
    if (r.host == "" or r.host == host) and (not r.port or r.port == port) then
      return (r.to_host ~= "" and r.to_host or host), (r.to_port or port), true
    end
  end
  return host, port, false
end

local function fail(code, msg, host)
  return nil, contract.error(code, msg, host)
end

local function ms_now()
  ngx.update_time()
  return ngx.now() * 1000
end

-- socket error text -> contract code
local function io_code(err, default)
  if err == "timeout" then return "Timeout" end
  return default
end

local function connect_code(err)
  err = tostring(err)
  if err == "timeout" then return "Timeout" end
  if err:find("resolve", 1, true) or err:find("no resolver", 1, true) then return "ResolveFailed" end
  return "ConnectFailed"
end

local function tls_code(err)
  err = tostring(err)
  if err == "timeout" then return "Timeout" end
  -- ngx_lua reports verification failures as "<X509 error number>: <text>" or
  -- "certificate host mismatch"
  if err:match("^%d+:") or err:find("certificate", 1, true) or err:find("verify", 1, true) then
    return "TLSVerificationFailed"
  end
  return "TLSHandshakeFailed"
end

-- the request line is written by hand: method and header names must be tokens
local check = contract.check_head

-- the request head (Host, User-Agent, Content-Length added unless given)
function T:_head(req, p)
  local method = req.method:upper()
  local target = p.path .. ((p.query and p.query ~= "") and ("?" .. p.query) or "")
  local lines = { method .. " " .. target .. " HTTP/1.1" }
  local have = {}
  for k, v in pairs(req.headers or {}) do
    local lk = k:lower()
    have[lk] = true
    if v ~= false then lines[#lines + 1] = k .. ": " .. tostring(v) end
  end
  if not have.host then lines[#lines + 1] = "Host: " .. p.authority end
  if not have["user-agent"] and self.user_agent then lines[#lines + 1] = "User-Agent: " .. self.user_agent end
  if not have.accept then lines[#lines + 1] = "Accept: */*" end
  local body = req.body
  if not have["content-length"] and not have["transfer-encoding"] then
    if body then lines[#lines + 1] = "Content-Length: " .. #body
    elseif method == "POST" or method == "PUT" or method == "PATCH" then
      lines[#lines + 1] = "Content-Length: 0"
    end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ""
  return table.concat(lines, "\r\n"), method
end

-- read status line + headers (skipping 1xx). Returns status, headers, keep (bool) or nil, err, code
local function read_head(sock)
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err, "status" end
    local minor, status = line:match("^HTTP/1%.(%d) (%d%d%d)")
    if not status then status = line:match("^HTTP/%d%.?%d? (%d%d%d)") end
    if not status then return nil, "malformed status line", "proto" end
    status = tonumber(status)
    local h, last = {}, nil
    local n, size = 0, 0
    while true do
      local l, herr = sock:receive("*l")
      if not l then return nil, herr, "io" end
      if l == "" then break end
      n = n + 1
      size = size + #l
      if size > 1024 * 1024 then return nil, "header block too large", "proto" end
      if l:match("^[ \t]") and last then
        h[last][#h[last]] = h[last][#h[last]] .. " " .. l:match("^%s*(.-)%s*$")
      else
        local name, value = l:match("^([^:%s]+):%s*(.-)%s*$")
        if name then
          name = name:lower()
          h[name] = h[name] or {}
          h[name][#h[name] + 1] = value
          last = name
        end
      end
    end
    if status >= 200 or status == 101 then
      local out = {}
      for k, vs in pairs(h) do out[k] = table.concat(vs, ", ") end
      return status, out, minor == "0"
    end
    -- 1xx interim answer: read the next head
  end
end

local function read_chunked(sock, limit)
  local parts, total = {}, 0
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    local size = tonumber(line:match("^%s*(%x+)"), 16)
    if not size then return nil, "bad chunk size" end
    if size == 0 then
      -- trailers until the empty line
      repeat
        local t, terr = sock:receive("*l")
        if not t then return nil, terr end
      until t == ""
      return table.concat(parts)
    end
    total = total + size
    if total > limit then return nil, "body too large", "limit" end
    local data, derr = sock:receive(size)
    if not data then return nil, derr end
    parts[#parts + 1] = data
    local crlf, cerr = sock:receive(2)
    if not crlf then return nil, cerr end
  end
end

-- one exchange on a connected socket: returns res, keep or nil, err, code, started (bool: answer begun)
function T:_exchange(sock, head, body, method)
  local bytes, err = sock:send(body and { head, body } or head)
  if not bytes then return nil, err, io_code(err, "SendFailed"), false end
  local status, headers, where = read_head(sock)
  local http10 = status and where
  if not status then
    local e = headers
    if where == "status" then
      return nil, e, io_code(e, (e == "closed" or e == "connection reset by peer") and "EmptyReply"
        or "ReceiveFailed"), false
    end
    return nil, e, io_code(e, "ReceiveFailed"), true
  end
  local conn = (headers.connection or ""):lower()
  -- HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when told so
  local keep = not conn:find("close", 1, true)
  if http10 and not conn:find("keep-alive", 1, true) then keep = false end
  local rbody = ""
  local no_body = method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200)
  if not no_body then
    local te = (headers["transfer-encoding"] or ""):lower()
    local cl = headers["content-length"]
    if te:find("chunked", 1, true) then
      local b, berr, lim = read_chunked(sock, self.max_body)
      if not b then
        if lim then
          return nil, "response body above " .. self.max_body .. " bytes", "BodyTooLarge", true
        end
        return nil, berr, io_code(berr, "PartialBody"), true
      end
      rbody = b
    elseif cl then
      local n = tonumber(cl:match("^%s*(%d+)%s*$"))
      if not n then return nil, "bad Content-Length", "ReceiveFailed", true end
      if n > self.max_body then
        return nil, "response body above " .. self.max_body .. " bytes", "BodyTooLarge", true
      end
      if n > 0 then
        local b, berr = sock:receive(n)
        if not b then return nil, berr, io_code(berr, "PartialBody"), true end
        rbody = b
      end
    else
      -- body until the server closes the connection
      keep = false
      local b, berr, partial = sock:receive("*a")
      if not b then
        if berr ~= "closed" then return nil, berr, io_code(berr, "ReceiveFailed"), true end
        b = partial
      end
      if #b > self.max_body then
        return nil, "response body above " .. self.max_body .. " bytes", "BodyTooLarge", true
      end
      rbody = b
    end
  end
  return { status = status, headers = headers, body = rbody, http_version = "1.1" }, keep
end

-- CONNECT host:port through the proxy on a connected socket
local function tunnel(sock, proxy, host, port)
  local authority = (host:find(":", 1, true) and ("[" .. host .. "]") or host) .. ":" .. port
  local head = "CONNECT " .. authority .. " HTTP/1.1\r\nHost: " .. authority .. "\r\n"
  if proxy.auth then
    head = head .. "Proxy-Authorization: Basic " .. ngx.encode_base64(proxy.auth) .. "\r\n"
  end
  local ok, err = sock:send(head .. "\r\n")
  if not ok then return nil, "proxy CONNECT: " .. tostring(err), io_code(err, "ConnectFailed") end
  local status, herr = read_head(sock)
  if not status then
    return nil, "proxy CONNECT: " .. tostring(herr), io_code(herr, "ConnectFailed")
  end
  if status < 200 or status >= 300 then
    return nil, "proxy CONNECT to " .. authority .. " answered " .. status, "ProxyFailed"
  end
  return true
end

function T:_connect(p, port, timeout_ms)
  local to_host, to_port, mapped = self:target(p.host, port)
  local tls = p.scheme == "https"
  local proxy = tls and not mapped and self:proxy_for(p.host) or nil
  local pool = table.concat({ p.host, port, to_host, to_port, tls and "tls-verify" or "plain" }, ":")
  if proxy then
    to_host, to_port = proxy.host, proxy.port
    pool = pool .. ":via:" .. proxy.host .. ":" .. proxy.port
      .. (proxy.auth and (":" .. ngx.md5(proxy.auth)) or "")
  end
  local sock = ngx.socket.tcp()
  sock:settimeouts(self.connect_timeout_ms < timeout_ms and self.connect_timeout_ms or timeout_ms,
    timeout_ms, timeout_ms)
  local chost = to_host:match("^%[(.*)%]$") or to_host
  local ok, err = sock:connect(chost, to_port, { pool = pool, pool_size = self.pool_size })
  if not ok then return nil, err, connect_code(err) end
  local reused = sock:getreusedtimes() or 0
  if proxy and reused == 0 then
    local tok, terr, tcode = tunnel(sock, proxy, p.host:match("^%[(.*)%]$") or p.host, port)
    if not tok then
      sock:close()
      return nil, terr, tcode
    end
  end
  if tls and reused == 0 then
    local sni = p.host:match("^%[(.*)%]$") or p.host
    -- Never pass `false` as the session argument: with lua-resty-core 0.1.25 + ngx_lua 0.10.23,
    -- when the handshake completes at once but the verification fails, that form returns
    -- true (the failure is only reported by the session query). With nil the same case
    -- raises resty.core's assert() on that query: it is a verification failure.
    local ok2, sess, herr = pcall(sock.sslhandshake, sock, nil, sni, true)
    if not ok2 then
      sock:close()
      return nil, "TLS handshake with " .. p.host .. ": certificate verification failed ("
        .. tostring(sess):match("[^\n]*") .. ")", "TLSVerificationFailed"
    end
    if not sess then
      sock:close()
      return nil, "TLS handshake with " .. p.host .. ": " .. tostring(herr), tls_code(herr)
    end
  end
  return sock, reused
end

function T:request(req)
  check(req)
  -- spaces, CR, LF or other control bytes in the URL would split the request line (header
  -- injection through a server-supplied nextLink or a user's resource id): refuse, as libcurl does
  if req.url:find("[%z\1-\32\127]") then
    return fail("InvalidUrl", "URL contains a space or a control character")
  end
  if not ngx or not M.yieldable() then
    return nil, contract.error("TransportUnavailable", "azcmk.transport.ngx: cosockets are not available "
      .. "in this phase (" .. tostring(ngx and ngx.get_phase and ngx.get_phase()) .. ")", nil,
      { hint = "call from rewrite/access/content/timer phases (an ngx.timer.at(0, ...) from init_worker)" })
  end
  local p, perr = url.parse(req.url)
  if not p then return fail("InvalidUrl", perr) end
  if p.scheme ~= "https" then
    local bare = p.host:match("^%[(.*)%]$") or p.host
    if not (p.scheme == "http" and self.allow_http[bare]) then
      return nil, contract.refused(p.scheme, p.host)
    end
  end
  local port = p.port or (p.scheme == "https" and 443 or 80)
  local timeout_ms = req.timeout_ms or self.timeout_ms
  local t0 = ms_now()
  local head, method = self:_head(req, p)
  self.stats.requests = self.stats.requests + 1
  for try = 1, 2 do
    local sock, reused, code = self:_connect(p, port, timeout_ms)
    if not sock then return fail(code, tostring(reused), p.host) end
    local st = self.stats
    if reused > 0 then st.reused = st.reused + 1 else st.connects = st.connects + 1 end
    local res, keep, ecode, started = self:_exchange(sock, head, req.body, method)
    if res then
      if keep then sock:setkeepalive(self.keepalive_ms, self.pool_size) else sock:close() end
      res.info = { total_ms = ms_now() - t0, num_connects = reused > 0 and 0 or 1, reused = reused > 0 }
      return res
    end
    sock:close()
    -- a pooled connection the server had closed: once more on a fresh one
    if not (reused > 0 and not started and try == 1 and ecode ~= "Timeout") then
      return fail(ecode, tostring(keep), p.host)
    end
  end
end

--- Parallel requests (light threads, at most max_parallel at once). Returns results (res or
-- false) and errs (err or nil) by index, like the curl transport.
function T:batch(reqs, opts)
  for _, r in ipairs(reqs) do check(r) end
  local results, errs = {}, {}
  local maxp = (opts and opts.max_parallel) or self.max_parallel
  local next_i = 0
  local function worker()
    while true do
      next_i = next_i + 1
      local i = next_i
      if i > #reqs then return end
      local res, err = self:request(reqs[i])
      results[i] = res or false
      errs[i] = err
    end
  end
  if not M.yieldable() then
    worker()
    return results, errs
  end
  local threads = {}
  for _ = 1, math.min(maxp, #reqs) do threads[#threads + 1] = ngx.thread.spawn(worker) end
  for _, th in ipairs(threads) do ngx.thread.wait(th) end
  return results, errs
end

--- ngx.sleep where it can yield, else a blocking sleep.
function T.sleep(_, s) return M.sleep(s) end

function T.close() end

-- -------------------------------------------------------------------- phase-aware choice

local A = {}
A.__index = A

--- A transport that uses cosockets where nginx allows them and libcurl (azcmk.transport.curl)
-- elsewhere (plain Lua, or init / init_worker inside nginx). opts go to both.
function M.auto(opts)
  return setmetatable({ name = "auto", opts = opts or {} }, A)
end

function A:pick()
  if M.yieldable() then
    self.ngx_t = self.ngx_t or M.new(self.opts)
    return self.ngx_t
  end
  self.curl_t = self.curl_t or require("azcmk.transport.curl").new(self.opts)
  return self.curl_t
end

function A:request(req) return self:pick():request(req) end
function A:batch(reqs, opts) return self:pick():batch(reqs, opts) end
function A.sleep(_, s) return M.sleep(s) end
function A:close()
  if self.curl_t then self.curl_t:close() end
end

return M
