--- Transport over the C core's libcurl client (azcmk.http): the transport contract
-- (azcmk.transport.contract) for plain Lua. libcurl's failure codes become the contract's
-- codes here, at the edge; the libcurl name stays in err.curl_code for diagnostics.
local contract = require("azcmk.transport.contract")
local clock = require("azcmk.clock")
local url = require("azcmk.url")

local M = {}

--- libcurl code name -> contract code (anything else is TransportFailed).
M.CODES = {
  CURLE_COULDNT_RESOLVE_HOST = "ResolveFailed", CURLE_COULDNT_RESOLVE_PROXY = "ResolveFailed",
  CURLE_COULDNT_CONNECT = "ConnectFailed",
  CURLE_SSL_CONNECT_ERROR = "TLSHandshakeFailed",
  CURLE_PEER_FAILED_VERIFICATION = "TLSVerificationFailed", CURLE_SSL_CACERT = "TLSVerificationFailed",
  CURLE_SSL_CACERT_BADFILE = "TLSVerificationFailed", CURLE_SSL_ISSUER_ERROR = "TLSVerificationFailed",
  CURLE_SSL_PINNEDPUBKEYNOTMATCH = "TLSVerificationFailed", CURLE_SSL_CRL_BADFILE = "TLSVerificationFailed",
  CURLE_PROXY = "ProxyFailed",
  CURLE_OPERATION_TIMEDOUT = "Timeout",
  CURLE_SEND_ERROR = "SendFailed",
  CURLE_RECV_ERROR = "ReceiveFailed", CURLE_HTTP2 = "ReceiveFailed", CURLE_HTTP2_STREAM = "ReceiveFailed",
  CURLE_GOT_NOTHING = "EmptyReply",
  CURLE_PARTIAL_FILE = "PartialBody",
  CURLE_FILESIZE_EXCEEDED = "BodyTooLarge",
  CURLE_URL_MALFORMAT = "InvalidUrl",
  AZCMK_HTTP_REFUSED = "HttpRefused",
}

--- The contract error for a libcurl failure (message, code name) on a request to url.
function M.error(msg, curl_code, u)
  local p = url.parse(u or "")
  return contract.error(M.CODES[curl_code] or "TransportFailed", msg or curl_code or "transport failure",
    p and p.host, { curl_code = curl_code })
end

local T = {}
T.__index = T

--- New transport. opts: the contract's settings (contract.options: connect_to, ca_file,
-- allow_http, timeout_ms, connect_timeout_ms, env / getenv) plus user_agent, http_version,
-- max_body_bytes, client (an already built azcmk.http client). No I/O happens here; the
-- client (and with it libcurl) is made on the first request.
function M.new(opts)
  local o = contract.options(opts)
  local cfg = {
    ca_file = o.ca_file, connect_to = o.connect_to, allow_http = o.allow_http,
    timeout_ms = o.timeout_ms, connect_timeout_ms = o.connect_timeout_ms,
    user_agent = o.user_agent, http_version = o.http_version, max_body_bytes = o.max_body_bytes,
  }
  return setmetatable({ cfg = cfg, client = o.client, name = "curl" }, T)
end

function T:_client()
  if not self.client then self.client = require("azcmk.core").http_client(self.cfg) end
  return self.client
end

-- the core's answers already have lower-case header names and a body string
local function normalize(res)
  res.headers = res.headers or {}
  res.body = res.body or ""
  return res
end

-- what the core is handed: the contract's request fields only
local function core_request(req)
  return { method = req.method, url = req.url, headers = req.headers, body = req.body,
    timeout_ms = req.timeout_ms }
end

function T:request(req)
  contract.check(req)   -- the core checks method and header names and values itself
  local ok, c = pcall(self._client, self)
  if not ok then
    return nil, contract.error("TransportUnavailable", tostring(c))
  end
  local res, msg, code = c:request(core_request(req))
  if not res then return nil, M.error(msg, code, req.url) end
  return normalize(res)
end

-- the core's outcome as the contract's: res, or false and err
local function outcome(r, u)
  if r and r.status then return normalize(r) end
  return false, M.error(r and r.error, r and r.code, u)
end

--- Parallel requests on the core's multi handle. Returns results (res or false) and errs (err
-- or nil) by index.
function T:batch(reqs, opts)
  for _, r in ipairs(reqs) do contract.check(r) end
  local out = self:_client():batch(reqs, opts)
  local results, errs = {}, {}
  for i = 1, #reqs do results[i], errs[i] = outcome(out[i], reqs[i].url) end
  return results, errs
end

--- The stream (for azcmk.transport.batch): submit(req) starts a request and returns its slot;
-- collect(seconds) waits (at most that long) for answers and returns { [slot] = {res | false,
-- err} } of those that arrived, and how many are still running; abandon() stops whatever is
-- still running.
function T:submit(req)
  contract.check(req)
  self.urls = self.urls or {}
  local slot = self:_client():submit(core_request(req))
  self.urls[slot] = req.url
  return slot
end

function T:collect(seconds)
  local out = {}
  local done, running = self:_client():collect(math.floor((seconds or 1) * 1000 + 0.5))
  for slot, r in pairs(done) do
    out[slot] = { outcome(r, self.urls and self.urls[slot]) }
    if self.urls then self.urls[slot] = nil end
  end
  return out, running
end

function T:abandon()
  if self.client then self.client:abandon() end
  self.urls = nil
end

--- Blocking sleep (plain Lua has nothing else to serve meanwhile).
function T.sleep(_, s) return clock.sleep(s) end

function T:close()
  if self.client and self.client.close then self.client:close() end
  self.client = nil
end

return M
