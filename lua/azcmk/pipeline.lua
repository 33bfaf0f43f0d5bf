--- The request pipeline (layer 2): every service call of azcmk goes through p:send, which
-- builds the request (URL, query, api-version, JSON body) and hands it to a chain of small
-- policies (lua/azcmk/policy/) in front of a transport:
--   request_id, user_agent, per-call policies, response (JSON, structured errors), retry
--   (backoff, Retry-After, time budget), per-retry policies, challenge (Key Vault), bearer
--   (tokens, where they may go), log -> transport (azcmk.transport.contract).
-- The pipeline's state (cloud, credential, token and challenge caches, logger, retry rules,
-- clock, transport) lives in the pipeline table p, and nowhere else. See docs/pipeline.md.
local cjson = require("cjson.safe")
local cloudm = require("azcmk.cloud")
local errors = require("azcmk.errors")
local url = require("azcmk.url")
local retry = require("azcmk.retry")
local token_cache = require("azcmk.token_cache")
local challenge = require("azcmk.challenge")
local clock = require("azcmk.clock")
local logm = require("azcmk.log")
local headers = require("azcmk.headers")
local base = require("azcmk.credential.base")
local policy = require("azcmk.policy")
local options = require("azcmk.options")

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

--- The User-Agent of azcmk's calls: "azcmk/<version>", then `extra` when given.
function M.user_agent(extra)
  return "azcmk/" .. M.VERSION .. (extra and (" " .. extra) or "")
end

local P = {}
P.__index = P

local function list(v, what)
  if v == nil then return {} end
  if type(v) ~= "table" then error("azcmk.pipeline.new: " .. what .. " must be a list of policies", 3) end
  local out = {}
  for i = 1, #v do out[i] = v[i] end
  return out
end

local function transport_sleep(t)
  if type(t.sleep) == "function" then return function(s) return t:sleep(s) end end
  return clock.sleep
end

--- The chain of p's policies in front of p.transport (policy.ORDER).
local function chain_of(p)
  local list_ = { require("azcmk.policy.request_id").new(),
    require("azcmk.policy.user_agent").new(p.user_agent) }
  for _, x in ipairs(p.per_call) do list_[#list_ + 1] = x end
  list_[#list_ + 1] = require("azcmk.policy.response").new()
  list_[#list_ + 1] = require("azcmk.policy.retry").new(p)
  for _, x in ipairs(p.per_retry) do list_[#list_ + 1] = x end
  list_[#list_ + 1] = require("azcmk.policy.challenge").new(p)
  list_[#list_ + 1] = require("azcmk.policy.bearer").new(p)
  list_[#list_ + 1] = require("azcmk.policy.log").new(p)
  return policy.chain(list_, p.transport)
end

--- New pipeline. opts:
--   cloud        profile table or name (default: AZURE_CLOUD / AZURE_AUTHORITY_HOST)
--   credential   a credential (azcmk.credential.*); nil = only unauthenticated calls
--   transport    a transport (azcmk.transport.contract; default: azcmk.transport.curl)
--   retry        retry rules (azcmk.retry.new) or their options table
--   log          a logger (azcmk.log.new), a level string, or nil (AZCMK_LOG)
--   log_sink     function(line) for the default logger
--   user_agent   appended to "azcmk/<version>"
--   per_call, per_retry   lists of your own policies (lua/azcmk/policy/init.lua)
--   now, sleep   clock functions (specs; sleep defaults to the transport's)
--   getenv       replaces os.getenv for cloud, logging and the default transport
--   lro_interval, lro_timeout   defaults for long-running operations (30 s, 3600 s)
--   token_cache  a token_cache (default: one per pipeline)
--   vault_api_version           default api-version for p:vault
--   subscription  default subscription id for service clients (p.subscription)
--   operation_id  names the job this run belongs to, the same for every re-run of it
--                 (p.operation_id): steps that create something find what an earlier,
--                 interrupted run made for it (docs/read-back.md)
--   on_wait      function(w) called before each retry wait (azcmk.policy.retry), tokens too
-- Returns the pipeline, or nil, err when the cloud profile is invalid. An unknown key raises
-- (azcmk.options: a typo must not silently fall back to a default).
M.OPTIONS = { cloud = "any?", credential = "table?", transport = "table?", retry = "table?", log = "any?",
  log_sink = "function?", user_agent = "string?", per_call = "table?", per_retry = "table?",
  now = "function?", sleep = "function?", getenv = "function?", lro_interval = "number?",
  lro_timeout = "number?", token_cache = "table?", vault_api_version = "string?", subscription = "string?",
  operation_id = "string?", on_wait = "function?" }

function M.new(opts)
  opts = opts or {}
  options.check(opts, M.OPTIONS, "azcmk.pipeline.new")
  local cloud = opts.cloud
  if type(cloud) ~= "table" or not cloud.arm_endpoint then
    local c, err = cloudm.from_env({ cloud = opts.cloud, getenv = opts.getenv })
    if not c then return nil, errors.input(err, { code = "InvalidCloud", param = "cloud" }) end
    cloud = c
  end
  local log = opts.log
  if type(log) == "string" then log = logm.new({ level = log, sink = opts.log_sink })
  elseif log == nil then log = logm.from_env({ sink = opts.log_sink, getenv = opts.getenv }) end
  local rules = opts.retry
  if rules == nil or getmetatable(rules) == nil then rules = retry.new(rules) end
  local ua = M.user_agent(opts.user_agent)
  local transport = opts.transport
    or require("azcmk.transport.curl").new({ user_agent = ua, getenv = opts.getenv })
  local now = opts.now or clock.now
  local p = setmetatable({
    cloud = cloud, credential = opts.credential, transport = transport, log = log, retry = rules,
    user_agent = ua, now = now, sleep = opts.sleep or transport_sleep(transport), getenv = opts.getenv,
    lro_interval = opts.lro_interval, lro_timeout = opts.lro_timeout,
    vault_api_version = opts.vault_api_version or M.VAULT_API_VERSION,
    challenges = challenge.cache(), subscription = opts.subscription, host_kinds = { 0 },
    operation_id = opts.operation_id,
    on_wait = opts.on_wait,
    per_call = list(opts.per_call, "per_call"), per_retry = list(opts.per_retry, "per_retry"),
  }, P)
  p.tokens = opts.token_cache or token_cache.new({ now = now, log = log })
  p.chain = chain_of(p)
  -- credentials do their I/O (token endpoints, IMDS) through what the pipeline was given
  if p.credential and p.credential.attach then
    p.credential:attach({ transport = transport, log = log, retry = rules, now = now, sleep = p.sleep,
      cloud = cloud, getenv = opts.getenv, on_wait = opts.on_wait })
  end
  return p
end

--- A pipeline made from this one that shares its state (cloud, credential, token and
-- challenge caches, logger, retry rules, subscription) with other parts: opts.transport
-- (and then its sleep unless opts.sleep), opts.sleep, and opts.per_call / opts.per_retry
-- added after p's own policies.
function P:with(opts)
  opts = opts or {}
  local q = {}
  for k, v in pairs(self) do q[k] = v end
  if opts.transport then
    q.transport = opts.transport
    q.sleep = opts.sleep or transport_sleep(opts.transport)
  elseif opts.sleep then
    q.sleep = opts.sleep
  end
  q.per_call, q.per_retry = list(self.per_call), list(self.per_retry)
  for _, x in ipairs(list(opts.per_call, "per_call")) do q.per_call[#q.per_call + 1] = x end
  for _, x in ipairs(list(opts.per_retry, "per_retry")) do q.per_retry[#q.per_retry + 1] = x end
  setmetatable(q, P)
  q.chain = chain_of(q)
  return q
end

local function copy(t)
  local r = {}
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

--- Build the final URL: req.url + req.query (table) + api-version (unless already there).
function P._url(_, req)
  local p, err = url.parse(req.url)
  if not p then return nil, errors.input(err, { code = "InvalidUrl" }) end
  if p.scheme ~= "https" and p.scheme ~= "http" then
    return nil, errors.input("only http(s) URLs: " .. req.url, { code = "InvalidUrl" })
  end
  local q = p.query or ""
  local add
  if req.query then
    if type(req.query) ~= "table" then error("azcmk.pipeline: req.query must be a table", 3) end
    local extra = {}
    for k, v in pairs(req.query) do extra[k] = v end
    if req.api_version and extra["api-version"] == nil and not url.query_get(q, "api-version") then
      extra["api-version"] = req.api_version
    end
    add = url.encode_query(extra)
  elseif req.api_version and (q == "" or not url.query_get(q, "api-version")) then
    add = "api-version=" .. url.encode(req.api_version)     -- the common case, without a table
  end
  if add and add ~= "" then q = (q ~= "" and (q .. "&") or "") .. add end
  p.query = q
  local built = url.origin(p) .. p.path .. (q ~= "" and ("?" .. q) or "")
  return built, p
end

--- The cloud profile's name for host ("arm", "vault", "hsm", "acr", "authority" or false),
-- remembered per host: every call asks.
function P:_host_kind(host)
  local kinds = self.host_kinds     -- host -> kind; [1] counts them (host names are strings)
  local k = kinds[host]
  if k == nil then
    if kinds[1] > 1000 then kinds = { 0 }; self.host_kinds = kinds end
    k = cloudm.host_kind(self.cloud, host) or false
    kinds[host], kinds[1] = k, kinds[1] + 1
  end
  return k or nil
end

local NO_TENANT = {}

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
  return self.tokens:get(self.credential, scope, tenant and { tenant_id = tenant } or NO_TENANT)
end

--- Send one request. req = { method, url, body (table -> JSON, or string), headers, query
-- (table), api_version, scope (optional), auth (false: no token), bearer (a token the call
-- brings itself: a registry's own access token; azcmk.policy.bearer), idempotent, timeout_ms }.
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
  local h = copy(req.headers)
  local body = req.body
  if type(body) == "table" then
    local enc, eerr = M.encode_json(body)
    if not enc then return nil, errors.input("cannot encode body as JSON: " .. tostring(eerr)) end
    body = enc
    if not headers.key(h, "content-type") then h["Content-Type"] = "application/json" end
  elseif body ~= nil and type(body) ~= "string" then
    error("azcmk.pipeline.send: req.body must be a table or a string", 2)
  end
  if not headers.key(h, "accept") then h["Accept"] = "application/json" end
  if req.bearer ~= nil and (type(req.bearer) ~= "string" or req.bearer == "") then
    error("azcmk.pipeline.send: req.bearer must be a non-empty string", 2)
  end
  if headers.key(h, "authorization") then
    return nil, errors.input("do not pass Authorization: the pipeline adds tokens itself",
      { code = "InvalidHeader", hint = "drop the header; pass scope= when a call needs another token, or "
        .. "bearer= when it brings its own (a registry's access token)" })
  end
  return self.chain:send({ method = req.method:upper(), url = full, headers = h, body = body,
    timeout_ms = req.timeout_ms, idempotent = req.idempotent, scope = req.scope, auth = req.auth,
    bearer = req.bearer, target = parsed, host_kind = self:_host_kind(parsed.host) })
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

--- Parallel calls through the batch transport (azcmk.transport.batch): the same request path as
-- p:send for each. p:parallel(tasks, {concurrency=16}) runs functions taking a pipeline and
-- returns what each returned ({n=, ...} by index); p:send_batch(reqs) and p:arm_batch(reqs)
-- (each { method, path, <p:arm options> }) return results (res or false), errs, raws by index.
function P:parallel(tasks, opts)
  return require("azcmk.transport.batch").run(self, tasks, opts)
end

function P:send_batch(reqs, opts)
  return require("azcmk.transport.batch").send_batch(self, reqs, opts)
end

function P:arm_batch(reqs, opts)
  local full = {}
  for i, r in ipairs(reqs) do
    local m = merge(r, r.method or r[1], self:_arm_url(r.path or r[2]))
    m[1], m[2], m.path = nil, nil, nil
    full[i] = m
  end
  return require("azcmk.transport.batch").send_batch(self, full, opts)
end

M.class = P
return M
