--- emu.throttle: Azure's request limits, as token buckets shared by every nginx worker
-- (lua_shared_dict emu_throttle; arithmetic in emu.bucket). See docs/emulator.md "Throttling".
--   Resource Manager (after authentication, before anything else): per principal, subscription
--   and operation type (reads 250 +25/s, writes 200 +10/s, deletes 200 +10/s), the
--   subscription-wide "global" buckets (15x, all principals together) and, for requests without
--   a subscription, per principal and tenant. Answers carry x-ms-ratelimit-remaining-*; an
--   empty bucket gives 429 SubscriptionRequestsThrottled / TenantRequestsThrottled + Retry-After.
--   Key Vault data plane: per vault (4,000 weighted transactions per 10 s: a software RSA-2048
--   operation costs 1, an RSA-4096 one 8, a create 200, ...) and per subscription and region
--   (5x); 429 Throttled without Retry-After, as Key Vault answers.
-- Buckets refill on the simulated clock (real time + offset): advancing the clock refills them.
-- Config: POST /_emulator/config {"throttle": {...}} (merged into the current one; refills every
-- bucket); the start config comes from AZCMK_EMULATOR_THROTTLE ("on", "off" or a JSON object
-- merged into the defaults) and POST /_emulator/reset goes back to it.
local json = require("emu.json")
local clock = require("emu.clock")
local state = require("emu.state")
local errors = require("emu.errors")
local bucket = require("emu.bucket")

local M = {}

local meta = ngx.shared.emu_meta
local dict = ngx.shared.emu_throttle

-- Azure's published numbers (docs/emulator.md cites each source).
M.DEFAULTS = {
  enabled = true,
  scale = 1, -- multiplies every bucket and refill rate (a test suite's budget)
  arm = {
    enabled = true,
    reads = { bucket = 250, refill = 25 },
    writes = { bucket = 200, refill = 10 },
    deletes = { bucket = 200, refill = 10 },
    global = 15, -- the subscription-wide buckets: this many times the principal's
    tenant = {
      reads = { bucket = 250, refill = 25 },
      writes = { bucket = 200, refill = 10 },
      deletes = { bucket = 200, refill = 10 },
    },
  },
  keyvault = {
    enabled = true,
    seconds = 10, -- the limits below are transactions per this many seconds, per vault
    software = { create = 20, rsa2048 = 4000, rsa3072 = 1000, rsa4096 = 500, ec = 4000 },
    hsm = { create = 10, rsa2048 = 2000, rsa3072 = 500, rsa4096 = 250, ec = 2000 },
    vault = 4000, -- transactions on no particular key: lists, deleted keys, restore
    subscription = 5, -- the subscription-wide limit (per region): this many times a vault's
  },
}

local function copy(t) return json.decode(json.encode(t)) end

-- Merges `patch` into `cur` following the shape of `schema` (DEFAULTS); nil, message on a
-- setting that does not exist or has the wrong type.
local function merge(cur, patch, schema, path)
  for k, v in pairs(patch) do
    local s, p = schema[k], path .. "." .. tostring(k)
    if s == nil then return nil, "unknown setting '" .. p .. "'" end
    if type(s) == "table" then
      if type(v) ~= "table" or json.is_array(v) then return nil, "'" .. p .. "' must be an object" end
      local ok, err = merge(cur[k], v, s, p)
      if not ok then return nil, err end
    elseif type(s) == "boolean" then
      if type(v) ~= "boolean" then return nil, "'" .. p .. "' must be true or false" end
      cur[k] = v
    else
      -- a bucket must hold one token, or nothing would ever pass
      local low_ok = type(v) == "number" and (k == "bucket" and v >= 1 or v > 0)
      if not (low_ok and v <= 1e9) then
        return nil, "'" .. p .. "' must be a number " .. (k == "bucket" and "from 1" or "above 0") .. " to 1e9"
      end
      cur[k] = v
    end
  end
  return true
end

-- ---------------------------------------------------------------- configuration

local cache, cache_ver, derived -- per-worker decoded config, refreshed when the version changes

--- The current configuration (a shared table: do not modify).
function M.config()
  local ver = meta:get("throttle:ver") or 0
  if cache and cache_ver == ver then return cache end
  cache = json.decode(meta:get("throttle:config") or "") or copy(M.DEFAULTS)
  cache_ver = ver
  -- Key Vault's limits are weighted: one bucket per vault counts in units of its largest limit.
  local kv, ref = cache.keyvault, cache.keyvault.vault
  for _, kind in ipairs({ "software", "hsm" }) do
    for _, n in pairs(kv[kind]) do if n > ref then ref = n end end
  end
  derived = { kv_units = ref }
  return cache
end

local function save(c)
  meta:set("throttle:config", json.encode(c))
  meta:incr("throttle:ver", 1, 0)
  dict:flush_all() -- every bucket full again
end

--- Merges settings into the current configuration: the new config, or nil, message.
function M.configure(patch)
  if type(patch) ~= "table" or json.is_array(patch) then return nil, "'throttle' must be an object" end
  local c = copy(M.config())
  local ok, err = merge(c, patch, M.DEFAULTS, "throttle")
  if not ok then return nil, err end
  save(c)
  return M.config()
end

--- Reads the start configuration from AZCMK_EMULATOR_THROTTLE (init, in the nginx master):
-- unset / "on" = Azure's numbers, "off" = no throttling, a JSON object = merged into them.
-- A bad value stops the start with a message saying what to give.
function M.init()
  local c = copy(M.DEFAULTS)
  local env = os.getenv("AZCMK_EMULATOR_THROTTLE")
  if env == "off" then
    c.enabled = false
  elseif env and env ~= "" and env ~= "on" then
    local v = json.decode(env)
    local ok, err = false, "not a JSON object"
    if type(v) == "table" and not json.is_array(v) then ok, err = merge(c, v, M.DEFAULTS, "throttle") end
    if not ok then
      error("AZCMK_EMULATOR_THROTTLE: " .. err .. " (give on, off, or a JSON object such as {\"scale\":100})", 0)
    end
  end
  meta:set("throttle:start", json.encode(c))
  meta:set("throttle:epoch", math.floor(ngx.now()))
  meta:set("throttled", 0)
  M.reset()
end

--- Back to the start configuration, every bucket full (POST /_emulator/reset).
function M.reset()
  save(json.decode(meta:get("throttle:start") or "") or copy(M.DEFAULTS))
end

--- 429s the buckets have answered since the start.
function M.count()
  return meta:get("throttled") or 0
end

-- ---------------------------------------------------------------- buckets

-- Takes from every bucket of `list` ({key, cap, rate, cost}) or from none. Returns true; or
-- false, the seconds until all of them could give, and the index of the emptiest. Sets `left`
-- on each bucket (whole tokens after the decision).
local epoch -- times are kept relative to the start: small numbers keep token arithmetic exact
local function take_all(list)
  epoch = epoch or meta:get("throttle:epoch") or 0
  local now = clock.now() - epoch
  return state.with_lock("throttle", function()
    local new, wait, which = {}, nil, nil
    for i, b in ipairs(list) do
      b.full_at = dict:get(b.key)
      local n, w = bucket.take(b.full_at, now, b.cap, b.rate, b.cost)
      new[i] = n
      if not n and (not wait or w > wait) then wait, which = w, i end
    end
    for i, b in ipairs(list) do
      if not wait then
        b.full_at = new[i]
        -- an entry past its full_at is a full bucket: let the dict forget it (real time never
        -- runs ahead of the simulated clock, so this never forgets too early)
        dict:set(b.key, new[i], new[i] - now + 1)
      end
      b.left = bucket.remaining(b.full_at, now, b.cap, b.rate)
    end
    if wait then
      meta:incr("throttled", 1, 0)
      return false, wait, which
    end
    return true
  end)
end

-- ---------------------------------------------------------------- Resource Manager

local OP = { GET = "reads", HEAD = "reads", DELETE = "deletes" } -- everything else writes
local SINGULAR = { reads = "read", writes = "write", deletes = "delete" }

-- Pre-2024 hourly limits minus one: what the headers say with throttling off (as sovereign
-- clouds still answer).
local LEGACY = { reads = "11999", writes = "1199", deletes = "14999" }

local function op_of(method) return OP[method] or "writes" end

--- Counts an authenticated ARM request (req.principal set) or raises ARM's 429. Counted once
-- per client request: a deployment's in-process calls do not count again.
function M.arm(req)
  local ctx = ngx.ctx
  if ctx.ratelimit then return end
  local c = M.config()
  if not (c.enabled and c.arm.enabled) then return end
  local op = op_of(req.method)
  local p = req.principal
  local scale = c.scale
  local sub = req.path:match("^/[sS][uU][bB][sS][cC][rR][iI][pP][tT][iI][oO][nN][sS]/([^/]+)")
  local list
  if sub then
    local b, g = c.arm[op], c.arm.global
    list = {
      { key = "a:p:" .. sub:lower() .. ":" .. p.oid .. ":" .. op, cap = b.bucket * scale, rate = b.refill * scale,
        header = "x-ms-ratelimit-remaining-subscription-" .. op },
      { key = "a:g:" .. sub:lower() .. ":" .. op, cap = b.bucket * g * scale, rate = b.refill * g * scale,
        header = "x-ms-ratelimit-remaining-subscription-global-" .. op, global = true },
    }
  else
    local b = c.arm.tenant[op]
    list = { { key = "a:t:" .. tostring(p.tid) .. ":" .. p.oid .. ":" .. op, cap = b.bucket * scale,
      rate = b.refill * scale, header = "x-ms-ratelimit-remaining-tenant-" .. op } }
  end
  for _, b in ipairs(list) do b.cost = 1 end
  local ok, wait, which = take_all(list)
  local h = {}
  for _, b in ipairs(list) do h[b.header] = tostring(b.left) end
  if ok then
    ctx.ratelimit = h
    return
  end
  local secs = bucket.retry_after(wait)
  h["Retry-After"] = tostring(secs)
  local b = list[which]
  local code, msg
  if not sub then
    code = "TenantRequestsThrottled"
    -- synthetic (Azure's tenant text is not known; worded as its subscription text)
    msg = string.format("Number of '%s' requests for tenant '%s' actor '%s' exceeded.", SINGULAR[op],
      tostring(p.tid), p.oid)
  elseif b.global then
    code = "SubscriptionRequestsThrottled"
    -- synthetic (the subscription-wide text is not known; Azure's per-actor text without the actor)
    msg = string.format("Number of '%s' requests for subscription '%s' exceeded.", SINGULAR[op], sub)
  else
    code = "SubscriptionRequestsThrottled"
    msg = string.format("Number of '%s' requests for subscription '%s' actor '%s' exceeded.", SINGULAR[op], sub,
      p.oid)
  end
  errors.throw(errors.arm(429, code, msg .. string.format(" Please try again after '%d' seconds after " ..
    "additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.", secs), h))
end

--- The x-ms-ratelimit-remaining-* headers of an ARM answer: the request's buckets; the
-- legacy hourly numbers when throttling is off; none when the request was not counted
-- (no principal: 401s, 404s of unknown paths).
function M.arm_headers(req)
  local h = ngx.ctx.ratelimit
  if h then return h end
  local c = M.config()
  if c.enabled and c.arm.enabled then return nil end
  local op = op_of(req.method)
  return { ["x-ms-ratelimit-remaining-subscription-" .. op] = LEGACY[op] }
end

--- ARM's 429 body for a throttled request that did not come from a bucket (an injected fault
-- with status 429): status, body, headers.
function M.arm_fault(req, retry_after, headers)
  local op = SINGULAR[op_of(req.method)]
  local sub = req.path:match("^/[sS][uU][bB][sS][cC][rR][iI][pP][tT][iI][oO][nN][sS]/([^/]+)") or "-"
  -- (faults come before authentication: the actor is not known, so the text names none)
  return errors.arm(429, "SubscriptionRequestsThrottled", string.format("Number of '%s' requests for " ..
    "subscription '%s' exceeded. Please try again after '%d' seconds after additional tokens are " ..
    "available. Refer to https://aka.ms/arm-throttling for additional information.", op, sub,
    math.floor(retry_after or 1)), headers)
end

-- ---------------------------------------------------------------- Key Vault

local function store() return require("emu.keyvault.store") end -- loaded after this module

M.KV_MESSAGE = "Request was not processed because too many requests were received. Reason: "

-- The limit (transactions per `seconds`) that applies to a data-plane request.
local function kv_limit(req, vault, kv)
  local m = req.method
  local name, rest = req.path:match("^/keys/([^/]+)/?(.*)$")
  if not name or (m == "POST" and rest == "") then return kv.vault end -- lists, restore
  local lower_rest = rest:lower()
  local create = (m == "POST" and (lower_rest == "create" or lower_rest == "rotate")) or (m == "PUT" and rest == "")
  local kty, size
  if create and lower_rest ~= "rotate" then
    local b = json.decode(req:body() or "")
    if type(b) == "table" then
      local j = type(b.key) == "table" and b.key or b
      kty = type(j.kty) == "string" and j.kty:upper() or nil
      if b.hsm == true or b.Hsm == true then kty = "RSA-HSM" end
    end
  else
    local k = state.get_ro(store().kkey(vault.name, name))
    local v = k and not k.deleted and type(k.versions) == "table" and k.versions[#k.versions]
    if not v then return kv.vault end
    kty, size = v.kty, v.size
  end
  local t = (kty == "RSA-HSM" or kty == "EC-HSM" or kty == "OCT-HSM") and kv.hsm or kv.software
  if create then return t.create end
  if kty == "EC" or kty == "EC-HSM" then return t.ec end
  return t["rsa" .. tostring(size or 2048)] or t.rsa2048
end

--- Counts an authenticated data-plane request of `vault`: nil, or Key Vault's 429 message
-- (the caller answers 429 Throttled in Key Vault's envelope).
function M.vault(req, vault)
  local c = M.config()
  if not (c.enabled and c.keyvault.enabled) then return nil end
  local kv, scale = c.keyvault, c.scale
  local units = derived.kv_units
  local cost = units / kv_limit(req, vault, kv)
  local cap, rate = units * scale, units * scale / kv.seconds
  local sub = (vault.id or ""):match("^/subscriptions/([^/]+)") or "-"
  local list = {
    { key = "k:v:" .. vault.name:lower(), cap = cap, rate = rate, cost = cost },
    { key = "k:s:" .. sub:lower() .. ":" .. tostring(store().location(vault)), cap = cap * kv.subscription,
      rate = rate * kv.subscription, cost = cost },
  }
  local ok, _, which = take_all(list)
  if ok then return nil end
  -- the vault's reason is Key Vault's; the subscription's is synthetic
  return M.KV_MESSAGE .. (which == 1 and "VaultRequestTypeLimitReached" or "SubscriptionRequestTypeLimitReached")
end

return M
