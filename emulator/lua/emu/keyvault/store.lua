--- emu.keyvault.store: Key Vault state shared by the management plane (emu.arm.vaults), the
-- data plane (emu.services.keyvault) and emu.keyvault.access.
--
-- State keys (prefix "kv:"):
--   kv:n:<lower vault name>   name index: {id = ARM id, deleted = bool} (vault names are global,
--                             soft-deleted ones included)
--   kv:dv:<lower vault name>  a soft-deleted vault: {vault = <ARM resource>, deletionDate,
--                             scheduledPurgeDate (unix s), location}
--   kv:k:<lower vault>:<lower key>  a key: {name, vault, versions = [version...], policy,
--                             deleted = nil | {deletedDate, scheduledPurgeDate}}
--   a version: {v = 32 hex, kty, crv?, size?, key_ops = [...], enabled, nbf?, exp?, created,
--               updated, tags = {}, jwk = {private JWK} | nil while not yet generated}
-- The vault itself is the ARM resource (emu.arm store). Key material is generated lazily
-- (versions made by automatic rotation get their RSA key on first use), outside any lock.
local state = require("emu.state")
local json = require("emu.json")
local clock = require("emu.clock")
local util = require("emu.util")
local hosts = require("emu.hosts")

local M = {}

M.VAULT_TYPE = "Microsoft.KeyVault/vaults"
M.DAY = 86400

-- Seconds a deleted key stays "being deleted" (409 ObjectIsBeingDeleted) before it becomes
-- deleted-recoverable. Changed with POST /_emulator/keyvault {"delete_seconds": N}.
local meta = ngx.shared.emu_meta
function M.delete_seconds()
  return meta:get("kv:delete_seconds") or 1
end
function M.set_delete_seconds(n)
  meta:set("kv:delete_seconds", n)
end

local core
local function C()
  core = core or require("azcmk.core")
  return core
end
M.core = C

-- ---------------------------------------------------------------- vaults

function M.now()
  return clock.time()
end

--- Name index entry of a vault (or nil).
function M.name_entry(name)
  if type(name) ~= "string" then return nil end
  return state.get("kv:n:" .. name:lower())
end

--- Purges a soft-deleted vault whose scheduledPurgeDate has passed (lazy clock-driven purge).
local function expire_deleted_vault(name)
  local lname = name:lower()
  local dv = state.get("kv:dv:" .. lname)
  if dv and ((dv.scheduledPurgeDate and dv.scheduledPurgeDate <= M.now()) or
    (dv.purging and dv.purge_at and dv.purge_at <= M.now())) then
    M.purge_vault_data(lname)
    return nil
  end
  return dv
end

--- The active vault (ARM resource) named `name`, or nil, "not_found" | "deleted". Read-only: the
-- record is shared (emu.state.get_ro), for the access checks every Key Vault and CMK request makes.
function M.vault(name)
  local e = M.name_entry(name)
  if not e then return nil, "not_found" end
  if e.deleted then
    if not expire_deleted_vault(name) then return nil, "not_found" end
    return nil, "deleted"
  end
  local v = state.get_ro("arm:" .. e.id:lower())
  if not v then return nil, "not_found" end
  return v
end

--- The soft-deleted vault record of `name`, or nil.
function M.deleted_vault(name)
  local e = M.name_entry(name)
  if not e or not e.deleted then return nil end
  return expire_deleted_vault(name)
end

--- All soft-deleted vault records (expired ones are purged on the way).
function M.deleted_vaults()
  local out = {}
  for _, k in ipairs(state.keys("kv:dv:")) do
    local dv = expire_deleted_vault(k:sub(7))
    if dv then out[#out + 1] = dv end
  end
  return out
end

--- Removes every trace of a vault name: index, deleted record, keys.
function M.purge_vault_data(lname)
  lname = lname:lower()
  for _, k in ipairs(state.keys("kv:k:" .. lname .. ":")) do state.delete(k) end
  state.delete("kv:dv:" .. lname)
  state.delete("kv:n:" .. lname)
end

--- Vault settings the data plane needs (retention, purge protection, RBAC, network).
function M.props(vault)
  return vault.properties or {}
end

function M.retention_days(vault)
  local p = M.props(vault)
  return tonumber(p.softDeleteRetentionInDays) or 90
end

function M.purge_protected(vault)
  return M.props(vault).enablePurgeProtection == true
end

--- Key Vault's DeletionRecoveryLevel for objects of this vault.
function M.recovery_level(vault)
  local days = M.retention_days(vault)
  local level = days < 90 and "CustomizedRecoverable" or "Recoverable"
  if not M.purge_protected(vault) then level = level .. "+Purgeable" end
  return level
end

--- The vault's region (for Key Vault's error texts).
function M.location(vault)
  return vault.location or "westus"
end

-- ---------------------------------------------------------------- key identifiers

--- Parses a key URL (versioned or versionless, any cloud, any case, optional :443, trailing
-- slash). Returns {vault = lower vault name, name = key name, version = lower hex or nil,
-- cloud = profile} or nil, reason ("vault" when the host is not a vault, "path").
function M.parse_kid(kid)
  if type(kid) ~= "string" then return nil, "path" end
  local host, path = kid:match("^[Hh][Tt][Tt][Pp][Ss]://([^/%?#]+)(/[^%?#]*)")
  if not host then return nil, "vault" end
  host = host:lower():gsub(":443$", "")
  local kind, cloud, vault = hosts.classify(host, false)
  if kind ~= "vault" or not vault or vault == "" then return nil, "vault" end
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  if #segs < 2 or #segs > 3 or segs[1]:lower() ~= "keys" then return nil, "path" end
  local name, version = segs[2], segs[3]
  if not name:match("^[%w%-]+$") then return nil, "path" end
  if version and not version:match("^%x+$") then return nil, "path" end
  return { vault = vault, name = name, version = version and version:lower(), cloud = cloud }
end

--- https://{vault}{suffix} for a vault name in a cloud profile.
function M.base_url(vault_name, cloud)
  cloud = cloud or hosts.clouds.AzureCloud
  return "https://" .. vault_name:lower() .. cloud.vault_suffix
end

-- ---------------------------------------------------------------- keys

local function kkey(vault_name, key_name)
  return "kv:k:" .. vault_name:lower() .. ":" .. key_name:lower()
end
M.kkey = kkey

--- The key record (any state), or nil. Soft-deleted keys whose purge date passed are purged.
function M.key(vault_name, key_name)
  local k = state.get(kkey(vault_name, key_name))
  if k and k.deleted and k.deleted.scheduledPurgeDate <= M.now() then
    state.delete(kkey(vault_name, key_name))
    return nil
  end
  return k
end

--- Atomic read-modify-write of a key record.
function M.update_key(vault_name, key_name, fn)
  return state.update(kkey(vault_name, key_name), fn)
end

--- All key records of a vault (sorted by lower name).
function M.keys(vault_name)
  local out = {}
  local prefix = "kv:k:" .. vault_name:lower() .. ":"
  for _, sk in ipairs(state.keys(prefix)) do
    local k = M.key(vault_name, sk:sub(#prefix + 1))
    if k then out[#out + 1] = k end
  end
  return out
end

--- "deleting" while a deleted key is still being deleted, "deleted" once recoverable, else nil.
function M.deletion_state(k)
  if not k or not k.deleted then return nil end
  if k.deleted.settle_until and clock.now() < k.deleted.settle_until then return "deleting" end
  return "deleted"
end

--- The newest version (last created) of a key record.
function M.newest(k)
  return k.versions[#k.versions]
end

function M.find_version(k, version)
  if not version or version == "" then return M.newest(k) end
  version = version:lower()
  for _, v in ipairs(k.versions) do
    if v.v == version then return v end
  end
  return nil
end

-- ---------------------------------------------------------------- ISO-8601 durations

-- Sum of "<n><unit>..." parts whose units appear in `order` (each once, in that order), or nil.
local function sum_units(rest, order, units)
  local total, last = 0, 0
  while rest ~= "" do
    local n, unit, r = rest:match("^(%d+)(%a)(.*)$")
    local pos = n and order:find(unit, 1, true)
    if not pos or pos <= last then return nil end
    last = pos
    total = total + tonumber(n) * units[unit]
    rest = r
  end
  return total
end

--- Seconds of an ISO-8601 duration (PnYnMnWnDTnHnMnS; Y = 365 d, M = 30 d), or nil.
function M.duration(s)
  if type(s) ~= "string" then return nil end
  local u = s:upper()
  local date, time = u:match("^P([^T]*)T?(.*)$")
  if not date then return nil end
  if date == "" and time == "" then return nil end
  if u:sub(-1) == "T" then return nil end
  local a = sum_units(date, "YMWD", { Y = 365 * M.DAY, M = 30 * M.DAY, W = 7 * M.DAY, D = M.DAY })
  local b = sum_units(time, "HMS", { H = 3600, M = 60, S = 1 })
  return a and b and a + b
end

-- ---------------------------------------------------------------- key material

local EC_LEN = { ["P-256"] = 32, ["P-384"] = 48, ["P-521"] = 66, ["P-256K"] = 32 }
M.EC_LEN = EC_LEN

--- A private JWK for a version: real RSA from the core; for EC a structurally valid JWK with
-- RANDOM x/y/d of the curve's length (the core has no EC: the point is not on the curve, which
-- is fine: EC keys are only ever refused by ACR and never used for crypto here).
local function rsa_jwk(size)
  local pk = C().rsa_generate(size)
  local jwk = pk:jwk(true)
  pk:close()
  jwk.kty = "RSA"
  return jwk
end

-- Key material comes from outside the request path: `azcmk emulator start` runs a detached,
-- niced generator (see azcmk.emulator) that keeps DIR/keypool/<bits>/<n>.pem topped up
-- (n = 1, 2, ... in the order they were made). A worker claims the next file by renaming it to
-- a name of its own (atomic: a key is handed out once across workers; the index is in the
-- shared dict), reads it and deletes it. Only when the pool is empty does a worker generate
-- the key itself. Without a pool directory (nginx started by hand) a worker-local pool
-- refilled by a timer between requests is used as before.
M.POOL_BITS = { [2048] = true, [3072] = true, [4096] = true }
local function pool_dir()
  local dir = require("emu.seed").dir
  return dir and dir .. "/keypool"
end
M.pool_dir = pool_dir

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- Claims one pre-generated private key of `size` bits from the pool directory; jwk or nil.
function M.claim_pooled(size)
  local dir = pool_dir()
  if not dir or not M.POOL_BITS[size] then return nil end
  local d = dir .. "/" .. size
  local key = "kp:next:" .. size
  for _ = 1, 8 do
    local n = meta:get(key) or 1
    local claimed = string.format("%s/claimed.%d.%d", d, ngx.worker.pid(), n)
    if os.rename(string.format("%s/%d.pem", d, n), claimed) then
      meta:set(key, n + 1)
      local f = io.open(claimed, "rb")
      local pem = f and f:read("a")
      if f then f:close() end
      os.remove(claimed)
      local pk = pem and C().pkey_from_pem(pem)
      if pk then
        local jwk = pk:jwk(true)
        pk:close()
        jwk.kty = "RSA"
        if jwk.d then return jwk end
      end
    elseif (meta:get(key) or 1) == n then
      return nil -- nothing made yet at the claim index: the pool is empty
    end
  end
  return nil
end

local pool, refilling = {}, false
M.POOL_SIZE = 2
local function refill(premature)
  if premature then refilling = false return end
  while #pool < M.POOL_SIZE do
    local ok, jwk = pcall(rsa_jwk, 2048)
    if not ok then break end
    pool[#pool + 1] = jwk
  end
  refilling = false
end
local function schedule_refill()
  if refilling or #pool >= M.POOL_SIZE then return end
  local dir = pool_dir()
  if dir and file_exists(dir .. "/2048/.dir") then return end -- an external generator serves us
  refilling = true
  local ok = ngx.timer and ngx.timer.at(0.05, refill)
  if not ok then refilling = false end
end

function M.generate_jwk(kty, size, crv)
  if kty == "EC" or kty == "EC-HSM" then
    local n = EC_LEN[crv] or 32
    local r = C().random_bytes
    return { kty = "EC", crv = crv, x = C().b64url_encode(r(n)), y = C().b64url_encode(r(n)),
      d = C().b64url_encode(r(n)), synthetic = true }
  end
  size = size or 2048
  local ok, pooled = pcall(M.claim_pooled, size)
  if ok and pooled then return pooled end
  if not ok then ngx.log(ngx.WARN, "emulator: key pool: ", pooled) end
  if size == 2048 then
    local jwk = table.remove(pool)
    schedule_refill()
    if jwk then return jwk end
  end
  return rsa_jwk(size)
end

-- Worker-local LRU of parsed keys: "<vault>/<key>/<version>" -> pkey.
local LRU_MAX = 256
local lru, lru_order = {}, {}
local function lru_get(id)
  local pk = lru[id]
  if pk then
    for i = #lru_order, 1, -1 do
      if lru_order[i] == id then table.remove(lru_order, i) break end
    end
    lru_order[#lru_order + 1] = id
  end
  return pk
end
local function lru_put(id, pk)
  if lru[id] then return end
  lru[id] = pk
  lru_order[#lru_order + 1] = id
  while #lru_order > LRU_MAX do
    local old = table.remove(lru_order, 1)
    local o = lru[old]
    lru[old] = nil
    if o then o:close() end
  end
end

--- Makes sure version `ver` of key (vault_name, key_name) has key material; returns the
-- (possibly refreshed) version table. Generates outside the lock, stores if still absent.
function M.ensure_material(vault_name, key_name, ver)
  if ver.jwk then return ver end
  local jwk = M.generate_jwk(ver.kty, ver.size, ver.crv)
  local out
  M.update_key(vault_name, key_name, function(k)
    if not k then return nil end
    for _, v in ipairs(k.versions) do
      if v.v == ver.v then
        if not v.jwk then v.jwk = jwk end
        out = v
      end
    end
    return k
  end)
  return out or ver
end

--- The pkey (private, RSA) of a version, cached per worker; nil, err for non-RSA.
function M.pkey(vault_name, key_name, ver)
  if ver.kty ~= "RSA" and ver.kty ~= "RSA-HSM" then return nil, "not RSA" end
  local id = vault_name:lower() .. "/" .. key_name:lower() .. "/" .. ver.v
  local pk = lru_get(id)
  if pk then return pk end
  ver = M.ensure_material(vault_name, key_name, ver)
  local j = ver.jwk
  local err
  pk, err = C().pkey_from_jwk({ kty = "RSA", n = j.n, e = j.e, d = j.d, p = j.p, q = j.q, dp = j.dp,
    dq = j.dq, qi = j.qi })
  if not pk then return nil, err end
  lru_put(id, pk)
  return pk
end

--- Forgets cached pkeys of a vault (after purge).
function M.forget(vault_name)
  local prefix = vault_name:lower() .. "/"
  for id, pk in pairs(lru) do
    if id:sub(1, #prefix) == prefix then
      lru[id] = nil
      pk:close()
      for i = #lru_order, 1, -1 do if lru_order[i] == id then table.remove(lru_order, i) end end
    end
  end
end

-- ---------------------------------------------------------------- versions

--- A new version table (no material yet unless jwk is given).
-- o: kty, size, crv, key_ops, enabled, nbf, exp, tags, created, jwk
function M.new_version(o)
  local t = o.created or M.now()
  local ops = o.key_ops
  if not ops then
    if o.kty == "EC" or o.kty == "EC-HSM" then ops = { "sign", "verify" }
    else ops = { "encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey" } end
  end
  return {
    v = util.hex32(), kty = o.kty, size = o.size, crv = o.crv, key_ops = json.array(ops),
    enabled = o.enabled ~= false, nbf = o.nbf, exp = o.exp, tags = o.tags or {},
    created = t, updated = t, jwk = o.jwk,
  }
end

-- ---------------------------------------------------------------- automatic rotation

M.MAX_AUTO_VERSIONS = 200

--- The rotate lifetime action of a policy: trigger table or nil.
local function rotate_trigger(policy)
  if type(policy) ~= "table" or type(policy.lifetimeActions) ~= "table" then return nil end
  for _, la in ipairs(policy.lifetimeActions) do
    if type(la.action) == "table" and type(la.action.type) == "string" and la.action.type:lower() == "rotate" then
      return la.trigger
    end
  end
  return nil
end

--- The expiry (unix s) a rotation gives a new version at time t, from the policy's expiryTime.
function M.policy_exp(policy, t)
  local secs = policy and policy.attributes and M.duration(policy.attributes.expiryTime)
  if secs then return t + secs end
  return nil
end

--- When the newest version `v` is due for automatic rotation under `policy` (unix s), or nil.
local function due_time(policy, v)
  local trig = rotate_trigger(policy)
  if not trig then return nil end
  local after = M.duration(trig.timeAfterCreate)
  if after then return v.created + after end
  local before = M.duration(trig.timeBeforeExpiry)
  if before and v.exp then return v.exp - before end
  return nil
end

--- Adds the versions automatic rotation would have made by now (lazily, on read). A new
-- version copies the newest one's kty/size/crv/key_ops/tags; created = the due time; exp from
-- the policy's expiryTime. Material is generated on first use. Returns the record.
function M.auto_rotate(vault_name, key_name)
  local k = M.key(vault_name, key_name)
  if not k or k.deleted or not rotate_trigger(k.policy) then return k end
  local now = M.now()
  local due = due_time(k.policy, M.newest(k))
  if not due or due > now then return k end
  return M.update_key(vault_name, key_name, function(rec)
    if not rec or rec.deleted then return rec end
    local n = 0
    while n < M.MAX_AUTO_VERSIONS do
      local cur = M.newest(rec)
      local t = due_time(rec.policy, cur)
      if not t or t > now then break end
      if t <= cur.created then t = cur.created + 1 end
      local nv = M.new_version({ kty = cur.kty, size = cur.size, crv = cur.crv, key_ops = cur.key_ops,
        tags = json.copy(cur.tags), created = math.floor(t), exp = M.policy_exp(rec.policy, math.floor(t)) })
      nv.rotated = "policy"
      rec.versions[#rec.versions + 1] = nv
      n = n + 1
    end
    rec.versions = json.array(rec.versions)
    return rec
  end)
end

return M
