--- The request pipeline (layer 2): every service call of azcmk goes through p:send.
-- URL + query + api-version -> bearer token (cached; ARM scope, explicit scope, or the Key
-- Vault challenge flow) -> retries with backoff and Retry-After -> logging with redaction ->
-- structured errors. See docs/pipeline.md.
local cjson = require("cjson.safe")
local cloudm = require("azcmk.cloud")
local errors = require("azcmk.errors")
local url = require("azcmk.url")
local retry = require("azcmk.retry")
local sender = require("azcmk.sender")
local token_cache = require("azcmk.token_cache")
local challenge = require("azcmk.challenge")
local clock = require("azcmk.clock")
local logm = require("azcmk.log")
local base = require("azcmk.credential.base")

local M = {}

M.VERSION = "0.1.0"
M.VAULT_API_VERSION = "2025-07-01"

-- Debian's lua-cjson (2.1.0) encodes every empty table as {}; a body that needs [] uses this
-- value, which the encoder below turns into [].
M.EMPTY_ARRAY = "\1azcmk-empty-array\1"
local EMPTY_ARRAY_JSON = '"\\u0001azcmk%-empty%-array\\u0001"'

--- JSON text of a body table, with EMPTY_ARRAY values as [].
function M.encode_json(t)
  local s, err = cjson.encode(t)
  if not s then return nil, err end
  return (s:gsub(EMPTY_ARRAY_JSON, "[]"))
end

local P = {}
P.__index = P

--- New pipeline. opts:
--   cloud        profile table or name (default: AZURE_CLOUD / AZURE_AUTHORITY_HOST)
--   credential   a credential (azcmk.credential.*); nil = only unauthenticated calls
--   transport    t:request(req) (default: azcmk.transport.curl, made lazily)
--   retry        a policy (azcmk.retry.new) or its options table
--   log          a logger (azcmk.log.new), a level string, or nil (AZCMK_LOG)
--   log_sink     function(line) for the default logger
--   user_agent   appended to "azcmk/<version>"
--   now, sleep   clock functions (specs)
--   lro_interval, lro_timeout   defaults for long-running operations (30 s, 3600 s)
--   token_cache  a token_cache (default: one per pipeline)
--   vault_api_version           default api-version for p:vault
--   subscription  default subscription id for service clients (p.subscription)
-- Returns the pipeline, or nil, err when the cloud profile is invalid.
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("azcmk.pipeline.new: options table expected", 2) end
  local cloud = opts.cloud
  if type(cloud) ~= "table" or not cloud.arm_endpoint then
    local c, err = cloudm.from_env({ cloud = opts.cloud, getenv = opts.getenv })
    if not c then return nil, errors.input(err, { code = "InvalidCloud" }) end
    cloud = c
  end
  local log = opts.log
  if type(log) == "string" then log = logm.new({ level = log, sink = opts.log_sink })
  elseif log == nil then log = logm.from_env({ sink = opts.log_sink, getenv = opts.getenv }) end
  local policy = opts.retry
  if policy == nil or getmetatable(policy) == nil then policy = retry.new(policy) end
  local ua = "azcmk/" .. M.VERSION .. (opts.user_agent and (" " .. opts.user_agent) or "")
  -- inside nginx: cosockets and ngx.sleep in request/timer phases, libcurl elsewhere (docs/openresty.md)
  local ngxt = rawget(_G, "ngx") and require("azcmk.transport.ngx")
  local transport = opts.transport or (ngxt and ngxt.auto({ user_agent = ua }))
    or require("azcmk.transport.curl").new({ user_agent = ua })
  local now = opts.now or clock.now
  local sleep = opts.sleep or (ngxt and ngxt.sleep) or clock.sleep
  local p = setmetatable({
    cloud = cloud, credential = opts.credential, transport = transport, log = log, retry = policy,
    user_agent = ua, now = now, sleep = sleep,
    lro_interval = opts.lro_interval, lro_timeout = opts.lro_timeout,
    vault_api_version = opts.vault_api_version or M.VAULT_API_VERSION,
    challenges = challenge.cache(),
    subscription = opts.subscription,
  }, P)
  p.tokens = opts.token_cache or token_cache.new({ now = now, log = log })
  p.ctx = { transport = transport, log = log, retry = policy, now = now, sleep = sleep, cloud = cloud,
            getenv = opts.getenv }
  if p.credential and p.credential.attach then p.credential:attach(p.ctx) end
  return p
end

local function copy(t)
  local r = {}
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

--- The value of header `name` in h, whatever the case of its key.
local function header(h, name)
  name = name:lower()
  for k, v in pairs(h) do if tostring(k):lower() == name then return v end end
  return nil
end

--- Build the final URL: req.url + req.query (table) + api-version (unless already there).
function P._url(_, req)
  local p, err = url.parse(req.url)
  if not p then return nil, errors.input(err, { code = "InvalidUrl" }) end
  if p.scheme ~= "https" and p.scheme ~= "http" then
    return nil, errors.input("only http(s) URLs: " .. req.url, { code = "InvalidUrl" })
  end
  local q = p.query or ""
  local extra = {}
  if req.query then
    if type(req.query) ~= "table" then error("azcmk.pipeline: req.query must be a table", 3) end
    for k, v in pairs(req.query) do extra[k] = v end
  end
  if req.api_version and not url.query_get(q, "api-version") and extra["api-version"] == nil then
    extra["api-version"] = req.api_version
  end
  local add = url.encode_query(extra)
  if add ~= "" then q = (q ~= "" and (q .. "&") or "") .. add end
  p.query = q
  local built = url.origin(p) .. p.path .. (q ~= "" and ("?" .. q) or "")
  return built, p
end

--- Token for scope (cached), or nil, err.
function P:token(scope, tenant)
  if not self.credential then
    return nil, errors.new("auth", { code = "NoCredential", message = "this pipeline has no credential",
      hint = "pass credential= to pipeline.new, or use azcmk.new() which uses the default credential chain" })
  end
  local ok, serr = base.check_scope(scope)
  if not ok then return nil, serr end
  if tenant ~= nil and not base.valid_tenant(tenant) then
    return nil, errors.input("invalid tenant id", { code = "InvalidTenant" })
  end
  return self.tokens:get(self.credential, scope, { tenant_id = tenant })
end

-- send with a bearer token; on 401 drop the token once and retry with a fresh one
function P:_bearer(r, scope, tenant)
  local tok, terr = self:token(scope, tenant)
  if not tok then return nil, terr end
  r.headers.Authorization = "Bearer " .. tok.token
  local res, err = sender.send(self.ctx, r)
  if res and res.status == 401 then
    if self.tokens:invalidate(self.credential, scope, tenant, tok.token) then
      self.log:info("401 from " .. (url.parse(r.url) or {}).host ..
        ": dropping the cached token and retrying once")
      local tok2, terr2 = self:token(scope, tenant)
      if not tok2 then return nil, terr2 end
      r.headers.Authorization = "Bearer " .. tok2.token
      res, err = sender.send(self.ctx, r)
    end
  end
  return res, err
end

-- Key Vault: elicit the challenge without body and token, verify it, then send for real
function P:_challenge(r, parsed)
  local origin = url.origin(parsed)
  local ch = self.challenges:get(origin)
  if not ch then
    local probe = copy(r)
    probe.headers = copy(r.headers)
    probe.body = nil
    for k in pairs(probe.headers) do
      if tostring(k):lower() == "content-type" then probe.headers[k] = nil end
    end
    local m = r.method:upper()
    if m == "POST" or m == "PUT" or m == "PATCH" then probe.headers["Content-Length"] = "0" end
    local res, err = sender.send(self.ctx, probe)
    if not res then return nil, err end
    if res.status ~= 401 then
      if r.body == nil or res.status >= 300 then return res end
      return nil, errors.new("auth", { code = "ChallengeMissing", status = res.status,
        message = "the vault answered a request without token with " .. res.status ..
          " instead of a 401 challenge",
        request_id = errors.request_id_of(res) })
    end
    local cerr
    ch, cerr = challenge.discover(res.headers["www-authenticate"], parsed.host)
    if not ch then
      self.challenges:evict(origin)
      cerr.request_id = cerr.request_id or errors.request_id_of(res)
      return nil, cerr
    end
    self.challenges:set(origin, ch)
  end
  local res, err = self:_bearer(r, ch.scope, ch.tenant)
  if res and res.status == 401 and res.headers["www-authenticate"] then
    -- the vault may have moved tenant: rediscover once
    local ch2, cerr = challenge.discover(res.headers["www-authenticate"], parsed.host)
    if not ch2 then self.challenges:evict(origin); return nil, cerr end
    if ch2.tenant ~= ch.tenant or ch2.scope ~= ch.scope then
      self.challenges:set(origin, ch2)
      local r2 = copy(r)
      r2.headers = copy(r.headers)
      res, err = self:_bearer(r2, ch2.scope, ch2.tenant)
    end
  end
  return res, err
end

--- Send one request. req = { method, url, body (table -> JSON, or string), headers, query
-- (table), api_version, scope (optional), auth (false: no token), idempotent, timeout_ms }.
-- Returns res { status, headers, body, json, request_id, client_request_id, url } for 2xx,
-- else nil, err (structured), res.
function P:send(req)
  if type(req) ~= "table" then error("azcmk.pipeline.send: request table expected", 2) end
  if type(req.method) ~= "string" then error("azcmk.pipeline.send: req.method must be a string", 2) end
  if type(req.url) ~= "string" then error("azcmk.pipeline.send: req.url must be a string", 2) end
  if req.headers ~= nil and type(req.headers) ~= "table" then
    error("azcmk.pipeline.send: req.headers must be a table", 2) end
  local full, parsed = self:_url(req)
  if not full then return nil, parsed end
  local headers = copy(req.headers)
  local body = req.body
  if type(body) == "table" then
    local enc, eerr = M.encode_json(body)
    if not enc then return nil, errors.input("cannot encode body as JSON: " .. tostring(eerr)) end
    body = enc
    if header(headers, "content-type") == nil then headers["Content-Type"] = "application/json" end
  elseif body ~= nil and type(body) ~= "string" then
    error("azcmk.pipeline.send: req.body must be a table or a string", 2)
  end
  if header(headers, "accept") == nil then headers["Accept"] = "application/json" end
  if header(headers, "user-agent") == nil then headers["User-Agent"] = self.user_agent end
  local crid = header(headers, "x-ms-client-request-id")
  if not crid then crid = base.uuid(); headers["x-ms-client-request-id"] = crid end
  if header(headers, "authorization") ~= nil then
    return nil, errors.input("do not pass Authorization: the pipeline adds tokens itself",
      { code = "InvalidHeader", hint = "drop the header; pass scope= when a call needs another token" })
  end

  -- which authentication, and is the target trusted with a token?
  local kind = cloudm.host_kind(self.cloud, parsed.host)
  local mode = "none"
  if req.auth ~= false then
    if req.scope then mode = "bearer"
    elseif kind == "arm" then mode = "bearer"
    elseif kind == "vault" or kind == "hsm" then mode = "challenge" end
  end
  if mode ~= "none" then
    if parsed.scheme ~= "https" then
      return nil, errors.input("bearer tokens are only sent over https: " .. logm.redact_url(full),
                               { code = "InsecureTokenTarget" })
    end
    if kind ~= "arm" and kind ~= "vault" and kind ~= "hsm" and kind ~= "acr" then
      return nil,
        errors.input("refusing to send a token to " .. parsed.host .. ", which is not a host of the "
        .. self.cloud.name .. " cloud profile (ARM, Key Vault, ACR)", { code = "UntrustedTokenTarget",
        hint = "use a custom cloud profile (cloud = {...}) for other endpoints" })
    end
  end

  local r = { method = req.method:upper(), url = full, headers = headers, body = body,
              timeout_ms = req.timeout_ms, idempotent = req.idempotent }
  local res, err
  if mode == "bearer" then
    res, err = self:_bearer(r, req.scope or self.cloud.arm_scope, nil)
  elseif mode == "challenge" then
    res, err = self:_challenge(r, parsed)
  else
    res, err = sender.send(self.ctx, r)
  end
  if not res then
    if type(err) == "table" then
      err.client_request_id = err.client_request_id or crid
      err.request_id = err.request_id or crid
    end
    return nil, err
  end
  res.client_request_id = crid
  res.request_id = res.headers["x-ms-request-id"] or res.headers["x-ms-client-request-id"] or crid
  res.url = full
  res.method = r.method
  local ct = (res.headers["content-type"] or ""):lower()
  local first = res.body and res.body:match("^%s*(.)")
  if res.body and res.body ~= "" and (ct:find("json", 1, true) or first == "{" or first == "[") then
    res.json = cjson.decode(res.body)
  end
  if res.status >= 200 and res.status < 300 then return res end
  local e = errors.from_response(res)
  e.client_request_id = crid
  e.request_id = e.request_id or crid
  e.operation = r.method .. " " .. parsed.path
  return nil, e, res
end

local function merge(opts, method, u)
  local r = copy(opts)
  r.method = method
  r.url = u
  return r
end

function P:_arm_url(path)
  if type(path) ~= "string" then error("azcmk.pipeline: path must be a string", 3) end
  if path:match("^https://") then return path end
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  return self.cloud.arm_endpoint .. path
end

--- ARM call: p:arm("GET", "/subscriptions/.../resourceGroups/rg", { api_version = "...",
-- body = {...}, query = {...}, headers = {...} }).
function P:arm(method, path, opts)
  return self:send(merge(opts or {}, method, self:_arm_url(path)))
end

--- ARM call that waits for the long-running operation. opts as p:arm plus lro options
-- (interval, timeout, progress, final_state_via). Returns the final response or nil, err.
function P:arm_lro(method, path, opts)
  opts = opts or {}
  local res, err, raw = self:arm(method, path, opts)
  if not res then return nil, err, raw end
  return require("azcmk.lro").poll(self, res, { method = res.method, url = res.url }, opts)
end

--- Iterator over the items of an ARM list (nextLink paging): for item, err in p:arm_pages(...)
function P:arm_pages(path, opts)
  return require("azcmk.paging").items(self, merge(opts or {}, "GET", self:_arm_url(path)), opts)
end

function P:_vault_url(vault_url, path)
  if type(vault_url) ~= "string" then error("azcmk.pipeline: vault_url must be a string", 3) end
  if not vault_url:match("^%a[%w+.-]*://") then vault_url = "https://" .. vault_url end
  local p = url.parse(vault_url)
  if not p or p.scheme ~= "https" then
    return nil, errors.input("vault URL must be https: " .. vault_url, { code = "InvalidVaultUrl" })
  end
  local kind = cloudm.host_kind(self.cloud, p.host)
  if kind ~= "vault" and kind ~= "hsm" then
    return nil, errors.input(p.host .. " is not a Key Vault host of the " .. self.cloud.name .. " cloud ("
      .. self.cloud.vault_suffix .. ")", { code = "InvalidVaultUrl" })
  end
  path = path or "/"
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  return url.origin(p) .. path
end

--- Key Vault data-plane call: p:vault("POST", "https://kv.vault.azure.net", "/keys/k/create",
-- { body = {...} }). api_version defaults to pipeline.VAULT_API_VERSION.
function P:vault(method, vault_url, path, opts)
  local u, err = self:_vault_url(vault_url, path)
  if not u then return nil, err end
  local r = merge(opts or {}, method, u)
  r.api_version = r.api_version or self.vault_api_version
  return self:send(r)
end

--- Iterator over the items of a Key Vault list.
function P:vault_pages(vault_url, path, opts)
  local u, err = self:_vault_url(vault_url, path)
  if not u then
    local done = false
    return function() if done then return nil end; done = true; return false, err end
  end
  local r = merge(opts or {}, "GET", u)
  r.api_version = r.api_version or self.vault_api_version
  return require("azcmk.paging").items(self, r, opts)
end

--- Parallel calls through the transport's batch (azcmk.batch): the same request path as
-- p:send for each. p:parallel(tasks, {concurrency=16}) runs functions taking a pipeline and
-- returns what each returned ({n=, ...} by index); p:send_batch(reqs) and p:arm_batch(reqs)
-- (each { method, path, <p:arm options> }) return results (res or false), errs, raws by index.
function P:parallel(tasks, opts)
  return require("azcmk.batch").run(self, tasks, opts)
end

function P:send_batch(reqs, opts)
  return require("azcmk.batch").send_batch(self, reqs, opts)
end

function P:arm_batch(reqs, opts)
  local full = {}
  for i, r in ipairs(reqs) do
    local m = merge(r, r.method or r[1], self:_arm_url(r.path or r[2]))
    m[1], m[2], m.path = nil, nil, nil
    full[i] = m
  end
  return require("azcmk.batch").send_batch(self, full, opts)
end

M.class = P
return M
