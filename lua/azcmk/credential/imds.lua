--- Azure Instance Metadata Service identity endpoint.
-- new{ client_id | object_id | resource_id (sent as msi_res_id), endpoint (default
--      AZURE_POD_IDENTITY_AUTHORITY_HOST or http://169.254.169.254), probe_timeout_ms (1000),
--      gone_delay (10 s), gone_budget (70 s), max_retries (5), base (0.8), cap (60) }
-- First a short probe without the Metadata header (any HTTP answer = IMDS is there), then the
-- real request. Retries: 410 ("updating") linearly every gone_delay up to gone_budget;
-- 404, 408, 429, 5xx and connection failures exponentially. 400 = no (such) identity here:
-- the credential is unavailable, not retried.
local cjson = require("cjson.safe")
local base = require("azcmk.credential.base")
local url = require("azcmk.url")
local sender = require("azcmk.sender")
local retry = require("azcmk.retry")

local C = base.class("ImdsCredential")

local M = {}

M.API_VERSION = "2018-02-01"
M.DEFAULT_ENDPOINT = "http://169.254.169.254"
M.PATH = "/metadata/identity/oauth2/token"

function M.new(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local ep = opts.endpoint or getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST")
  if not ep or ep == "" then ep = M.DEFAULT_ENDPOINT end
  if not ep:match("^%a[%w+.-]*://") then ep = "http://" .. ep end
  ep = ep:gsub("/+$", "")
  local n = (opts.client_id and 1 or 0) + (opts.object_id and 1 or 0) + (opts.resource_id and 1 or 0)
  if n > 1 then error("azcmk.credential.imds: give at most one of client_id, object_id, resource_id", 2) end
  return base.new(C, {
    client_id = opts.client_id, object_id = opts.object_id, resource_id = opts.resource_id,
    endpoint = ep, probe_timeout_ms = opts.probe_timeout_ms or 1000,
    gone_delay = opts.gone_delay or 10, gone_budget = opts.gone_budget or 70,
    policy = retry.new({ max_retries = opts.max_retries or 5, base = opts.base or 0.8, cap = opts.cap or 60,
                         budget = opts.budget or 300 }),
    ctx = opts.ctx or { getenv = getenv },
  })
end

function C:cache_key()
  return self.name .. "|" .. self.endpoint .. "|" .. tostring(self.client_id or self.object_id or
    self.resource_id or "system")
end

function C:_url(resource)
  local q = { ["api-version"] = M.API_VERSION, resource = resource,
              client_id = self.client_id, object_id = self.object_id, msi_res_id = self.resource_id }
  return self.endpoint .. M.PATH .. "?" .. url.encode_query(q)
end

--- Probe once: any HTTP answer means IMDS is reachable.
function C:probe(resource)
  if self.probed ~= nil then return self.probed, self.probe_reason end
  local ctx = self:context()
  local res, err = ctx.transport:request({ method = "GET", url = self:_url(resource), headers = {},
                                           timeout_ms = self.probe_timeout_ms })
  if ctx.log then ctx.log:request({ req = { method = "GET", url = self:_url(resource), headers = {} },
                                    res = res, err = err, attempt = 1 }) end
  if res then
    self.probed = true
  else
    self.probed = false
    self.probe_reason = "IMDS endpoint " .. self.endpoint .. " not reachable (" .. tostring(err.code or
      err.kind) .. ")"
  end
  return self.probed, self.probe_reason
end

--- Retry decision for the IMDS request (see the file header).
function C:_decide(_, res, err, attempt, start, now)
  local p = self.policy
  if err then
    if err.tls or not err.retryable or attempt > p.max_retries then return nil end
    return p:backoff(attempt), tostring(err.code)
  end
  local s = res.status
  if s == 410 then
    self._gone = (self._gone or 0) + 1
    if (now - start) + self.gone_delay > self.gone_budget then return nil, "IMDS still updating" end
    return self.gone_delay, "IMDS updating (410)"
  end
  if s == 404 or s == 408 or s == 429 or (s >= 500 and s <= 599) then
    if attempt > p.max_retries then return nil, "retries exhausted" end
    local ra = retry.retry_after(res.headers, now)
    return ra or p:backoff(attempt), "status " .. s
  end
  return nil
end

function C:get_token(scope)
  local ok, serr = base.check_scope(scope)
  if not ok then return nil, serr end
  local resource = base.scope_to_resource(scope)
  local up, why = self:probe(resource)
  if not up then return nil, base.unavailable(self.name, why) end
  local ctx = self:context()
  local start = ctx.now()
  local res, err = sender.send(ctx, {
    method = "GET", url = self:_url(resource), headers = { Metadata = "true" },
  }, {
    retry = self.policy,
    budget = math.max(self.policy.budget, self.gone_budget + 10),
    decide = function(req, r, e, attempt, now) return self:_decide(req, r, e, attempt, start, now) end,
  })
  if not res then err.credential = self.name; return nil, err end
  if res.status == 400 then
    local j = cjson.decode(res.body or "")
    local desc = type(j) == "table" and (j.error_description or j.error) or "bad request"
    return nil, base.unavailable(self.name,
      "no managed identity available here, or the requested identity is "
      .. "not assigned (IMDS 400: " .. tostring(desc) .. ")")
  end
  local j, jerr = base.token_json(self, res, "IMDS")
  if not j then return nil, jerr end
  local exp = tonumber(j.expires_on)
  if not exp and tonumber(j.expires_in) then exp = ctx.now() + tonumber(j.expires_in) end
  return base.token({ token = j.access_token, expires_on = exp or (ctx.now() + 3600),
                      refresh_on = tonumber(j.refresh_in) and (ctx.now() + tonumber(j.refresh_in)) or nil })
end

M.class = C
return M
