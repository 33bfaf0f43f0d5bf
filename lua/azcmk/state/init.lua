--- The CMK state reader: everything Azure says about one registry's customer-managed-key
-- chain - registry, encryption, identity, vault (and where it lives), access in the vault's
-- model, firewall, key and its versions, rotation policy, data plane - read once, through the
-- service clients, as the caller (never as the registry's identity). It returns facts and
-- judges nothing: `show`, `audit`, the doctor's checks and the nginx status judge the same
-- facts with azcmk.state.rules.
--
--   local state = require("azcmk.state")
--   local f = state.read{ pipeline = p, subscription = sub, registry = "myregistry1",
--                         parts = state.parts.show }
--
-- A failed call is a fact too (an `*_err` field holding the structured error); read raises
-- only on programmer errors (options). Every call is recorded (f.calls, with the service's
-- clock and throttle headroom: azcmk.state.trace). No secret is kept: the caller's token is
-- read for its claims (oid, tid, appid) only.
--
-- The facts (each present once read):
--   input = {registry, resource_group, registry_err?, rg_err?}, cloud, subscription
--   caller = {oid, tid, appid, upn} | arm_token_err
--   reg | reg_err, rg, login_server, data_plane = {status, ok, code, message} | data_plane_err
--     (the anonymous GET /v2/), content (the content probe, as the caller: a manifest and a
--     blob read back, and the key version that wraps them: azcmk.state.content_probe)
--   revoked_tag (the registry's revocation tag, state.rules.REVOKED_TAG: "<time> by <who>")
--   cmk, kvp (encryption.keyVaultProperties), key (the parsed key id) | key_err, key_inuse
--   ident = {kind = "system"|"user", value, principal_id, tenant_id, attached, client_id,
--            uai_id, uai_client_id, uai_principal_id}, uai | uai_err, uai_checked,
--            uai_found_detached
--   vault | vault_err, vault_subscription, deleted_vault | deleted_vault_err
--   vault_probe_err, challenge_tenant, role_assignments | role_assignments_err
--   key_bundle (the version in use) | key_bundle_err, key_missing, key_missing_code,
--   deleted_key | deleted_key_err, newest = {kid, version, attributes}, newest_bundle,
--   versions | versions_err, rotation_policy | rotation_policy_err
--   calls, service_now, reads_left, throttled, retried (azcmk.state.trace)
local errors = require("azcmk.errors")
local options = require("azcmk.options")
local ids = require("azcmk.client.ids")
local url = require("azcmk.url")
local client = require("azcmk.client")
local Registries = require("azcmk.client.registries")
local Keys = require("azcmk.client.keys")
local trace = require("azcmk.state.trace")
local rules = require("azcmk.state.rules")

local M = {}

M.VAULT_TYPE = "Microsoft.KeyVault/vaults"

--- What to read beyond the registry and its encryption. Presets for the verbs that judge.
local PARTS = { caller = "boolean?", probe = "boolean?", content = "boolean?",
  identity = "boolean?", detached = "boolean?",
  vault = "boolean?", access = "boolean?", key = "boolean?", versions = "boolean?",
  rotation_policy = "boolean?", deleted = "boolean?" }
M.parts = {
  -- the doctor: everything
  all = { caller = true, probe = true, content = true,
    identity = true, detached = true, vault = true, access = true,
    key = true, versions = true, rotation_policy = true, deleted = true },
  -- `show`: the key's newest version and Key Vault's rotation policy
  show = { key = true, rotation_policy = true },
  -- `audit`, per registry: the identity, the key versions in use and newest, the data plane
  audit = { identity = true, key = true, probe = true },
  -- the writing verbs that act on a registry's chain (revoke, restore): identity and vault
  chain = { detached = true, vault = true },
}

-- ------------------------------------------------------------------ helpers

--- The registry's revocation tag (state.rules.REVOKED_TAG), or nil: the fact the rules judge
-- (for verbs that read the registry themselves: f.revoked_tag = state.revoked_tag(reg)).
function M.revoked_tag(reg)
  return (Registries.tag(reg, rules.REVOKED_TAG))
end

--- The caller's claims from its ARM token: { oid, tid, appid, upn } or nil, err.
function M.caller(p)
  local tok, err = p:token(p.cloud.arm_scope)
  if not tok then return nil, err end
  local ok, crypto = pcall(require, "azcmk.crypto")
  if not ok then return {} end
  local _, claims = crypto.jwt_decode_unverified(tok.token)
  if type(claims) ~= "table" then return {} end
  return { oid = claims.oid, tid = claims.tid, appid = claims.appid or claims.azp, upn = claims.upn }
end

--- Search the generic resource list for the vault `name`: in `subscription`, then in every
-- other subscription the caller sees (vault names are global, and a registry may use a key of
-- a vault in another subscription of its tenant). c: the service clients. Returns
-- { found = resource ({id, resource_group, ...}) or nil, subscription = where it was found,
-- subscriptions = those searched } or nil, err (a failure in `subscription` itself; failures
-- in the others count as "not there").
function M.search_vault(c, name, subscription)
  local subs = { subscription }
  local i = 1
  while i <= #subs do
    local s = subs[i]
    local found, err = c.resources:find({ type = M.VAULT_TYPE, name = name, subscription = s })
    if err and i == 1 then return nil, err end
    if found then return { found = found, subscription = s, subscriptions = subs } end
    if i == 1 then
      for _, id in ipairs(c.subscriptions:ids() or {}) do
        if tostring(id):lower() ~= subscription:lower() then subs[#subs + 1] = id end
      end
    end
    i = i + 1
  end
  return { subscriptions = subs }
end

-- The tenant a vault's 401 challenge named (the pipeline keeps the challenges it saw).
local function challenge_tenant(p, vault_url)
  local pu = url.parse(vault_url)
  local ch = pu and p.challenges and p.challenges:get(url.origin(pu))
  return ch and ch.tenant
end

-- ------------------------------------------------------------------ the stages

local function read_registry(c, f, o)
  if o.reg then f.reg = o.reg; return end   -- as a list answered it: not read again
  if o.id then
    f.reg, f.reg_err = c.registries:get({ id = o.id })
    return
  end
  if o.resource_group then
    f.reg, f.reg_err = c.registries:get({ resource_group = o.resource_group, name = o.registry })
    return
  end
  local found, ferr = c.resources:find({ type = Registries.TYPE, name = o.registry })
  if ferr then f.reg_err = ferr; return end
  if found then f.reg, f.reg_err = c.registries:get({ id = found.id }) end
end

-- A user-assigned identity by id, from its subscription's identity list (one list per
-- subscription and run, in the cache): the identity, nil (not in the list: deleted), or
-- nil, err (the list could not be read).
local function listed_identity(c, cache, uid)
  local parsed = ids.parse_resource_id(uid) or {}
  local sub = tostring(parsed.subscription or ""):lower()
  local byid, err = cache:once("identities " .. sub, function()
    local list, lerr = c.identities:list({ subscription = sub })
    if not list then return nil, lerr end
    local t = {}
    for _, i in ipairs(list) do t[tostring(i.id):lower()] = i end
    return t
  end, c.identities.p.sleep)
  if not byid then return nil, err end
  return byid[uid:lower()]
end

local function read_identity(c, f, parts, cache)
  local ident = tostring(f.kvp.identity or "")
  local ri = f.reg.identity or {}
  local rtype = tostring(ri.type or "None"):lower()
  if ident:lower() == "system" then
    f.ident = { kind = "system", value = "system", principal_id = ri.principalId, tenant_id = ri.tenantId,
      attached = rtype:find("systemassigned", 1, true) ~= nil and ri.principalId ~= nil }
    return
  end
  local uid, v = Registries.user_identity(f.reg, ident)
  f.ident = { kind = "user", value = ident, client_id = ident, uai_id = uid, attached = uid ~= nil,
    principal_id = v and v.principalId }
  -- the user-assigned identity itself (parts.identity): from its subscription's identity list
  -- when a run's cache is given, else read; a detached one is looked up by its client id
  -- (parts.detached)
  if uid then
    if not parts.identity then return end
    if cache then f.uai, f.uai_err = listed_identity(c, cache, uid)
    else f.uai, f.uai_err = c.identities:get({ id = uid }) end
    f.uai_checked = true
  elseif parts.detached then
    f.uai, f.uai_err = c.identities:find({ client_id = ident })
    f.uai_found_detached = f.uai ~= nil
  end
  if f.uai then
    local up = f.uai.properties or {}
    f.ident.uai_id = f.ident.uai_id or f.uai.id
    f.ident.principal_id = f.ident.principal_id or up.principalId
    f.ident.tenant_id = up.tenantId
    f.ident.uai_client_id = up.clientId
    f.ident.uai_principal_id = up.principalId
  end
end

-- The vault: resolvable (the generic resource list) in the registry's subscription, else in
-- the other subscriptions the caller sees; its management-plane GET; or deleted. Returns true
-- when the vault was found.
local function read_vault(c, f, subscription)
  local search, serr = M.search_vault(c, f.key.vault, subscription)
  local subs = search and search.subscriptions or { subscription }
  if serr then
    f.vault_err = serr
  elseif search.found then
    f.vault_subscription = search.subscription
    f.vault, f.vault_err = c.vaults:get({ id = search.found.id })
  end
  if not f.vault and not f.vault_err then
    for _, s in ipairs(subs) do
      local del, derr = c.vaults:find_deleted({ name = f.key.vault, subscription = s })
      if del or (derr and s == subscription) then
        f.deleted_vault, f.deleted_vault_err, f.vault_subscription = del, derr, s
        break
      end
    end
  end
  return f.vault ~= nil
end

local function read_access(c, f, p)
  -- the vault's 401 challenge names the tenant Key Vault wants tokens from
  local _, perr = c.keys:list({ vault_url = f.key.vault_url, max_results = 1 })
  f.vault_probe_err = perr
  f.challenge_tenant = challenge_tenant(p, f.key.vault_url)
  -- the registry identity's role assignments, read from ARM (the policy model is in f.vault)
  local pid = f.ident and f.ident.principal_id
  if pid then
    f.role_assignments, f.role_assignments_err = c.role_assignments:list({ scope = f.vault.id,
      assigned_to = pid })
  end
end

-- The key: its current (newest) version and the version in use; if it is missing, whether it
-- is soft-deleted; its versions and rotation policy.
local function read_key(c, f, parts, rec, cache)
  local k = f.key
  local in_use = (f.key_inuse and f.key_inuse.version) or k.version
  -- a key version: read once per run when a cache is given (the code of a missing one kept)
  local function get(version)
    local function fetch()
      local b, e = c.keys:get({ vault_url = k.vault_url, name = k.name, version = version })
      local last = trace.last(rec)
      return b, e, last and last.code
    end
    if not cache then return fetch() end
    return cache:once("key " .. k.vault_url:lower() .. "/" .. k.name:lower() .. "/" .. tostring(version),
      fetch, c.keys.p.sleep)
  end
  local cur, cerr, code = get(nil)
  if not cur then
    if cerr then f.key_bundle_err = cerr; return end
    f.key_missing = true
    f.key_missing_code = code
    if parts.deleted then
      local del, derr = c.keys:get_deleted({ vault_url = k.vault_url, name = k.name })
      f.deleted_key, f.deleted_key_err = del, derr
    end
    return
  end
  if cur.key then
    f.newest = { kid = cur.key.kid, version = Keys.version_of(cur.key.kid),
      attributes = cur.attributes or {} }
  end
  if not in_use or (f.newest and f.newest.version == in_use) then
    f.key_bundle = cur
  else
    f.key_bundle, f.key_bundle_err = get(in_use)
    if not f.key_bundle and not f.key_bundle_err then
      f.key_bundle_err = errors.new("azure", { status = 404, code = "KeyNotFound",
        message = "version " .. in_use .. " of key " .. k.name .. " was not found" })
    end
  end
  f.newest_bundle = cur
  if f.key_bundle_err then return end
  if parts.versions then
    f.versions, f.versions_err = c.keys:versions({ vault_url = k.vault_url, name = k.name })
  end
  if parts.rotation_policy then
    f.rotation_policy, f.rotation_policy_err = c.keys:get_rotation_policy({ vault_url = k.vault_url,
      name = k.name })
  end
end

-- ------------------------------------------------------------------ read

local OPTIONS = { pipeline = "table", subscription = "string", registry = "string?",
  resource_group = "string?", id = "string?", parts = "table?", reg = "table?", cache = "table?" }

--- read{pipeline, subscription, registry (name) | id (the registry's resource id) | reg (the
-- registry as a list answered it: not read again), resource_group?, parts = state.parts.* or
-- {caller, probe, content, identity, vault, access, key, versions, rotation_policy, deleted},
-- cache = azcmk.state.cache (a run's memo: each key version and each subscription's identity
-- list read once for many registries; identities are then looked up in their subscription's
-- list instead of read one by one)} -> facts (never nil: failures are facts).
function M.read(o)
  options.check(o, OPTIONS, "azcmk.state.read")
  local parts = options.check(o.parts or {}, PARTS, "azcmk.state.read: parts")
  local rec = trace.new()
  local p = trace.view(o.pipeline, rec)
  local c = client.new(p, { subscription = o.subscription })
  local f = { calls = rec.calls, cloud = p.cloud.name, subscription = o.subscription,
    input = { registry = o.registry, resource_group = o.resource_group } }
  local function done()
    f.service_now, f.reads_left, f.throttled, f.retried = rec.service_now, rec.reads_left, rec.throttled,
      rec.retried
    return f
  end

  -- inputs
  if not o.id and not o.reg then
    local ok, verr = ids.check_registry_name(o.registry)
    if not ok then f.input.registry_err = verr; return done() end
    if o.resource_group then
      local rok, rerr = ids.check_resource_group(o.resource_group)
      if not rok then f.input.rg_err = rerr; return done() end
    end
  end

  -- the caller's ARM token
  if parts.caller then
    f.caller, f.arm_token_err = M.caller(p)
    if not f.caller then return done() end
  end

  -- the registry, its data plane, its encryption
  read_registry(c, f, o)
  if not f.reg then return done() end
  f.input.registry = f.input.registry or f.reg.name
  f.rg = (ids.parse_resource_id(f.reg.id) or {}).resource_group
  local props = f.reg.properties or {}
  f.revoked_tag = M.revoked_tag(f.reg)
  f.login_server = props.loginServer
  if parts.probe and f.login_server then
    f.data_plane, f.data_plane_err = c.registries:probe({ login_server = f.login_server })
  end
  if parts.content and f.login_server then
    f.content = require("azcmk.state.content_probe").read(p, f.login_server)
  end
  f.cmk = Registries.cmk_enabled(f.reg)
  if not f.cmk then return done() end
  f.kvp = props.encryption.keyVaultProperties
  f.key, f.key_err = ids.parse_key_id(f.kvp.keyIdentifier or f.kvp.versionedKeyIdentifier, p.cloud)
  if f.kvp.versionedKeyIdentifier then
    f.key_inuse = ids.parse_key_id(f.kvp.versionedKeyIdentifier, p.cloud)
  end

  -- the identity binding (from the registry) and the user-assigned identity itself
  read_identity(c, f, parts, o.cache)
  if not f.key then return done() end

  -- the vault, the access to the key, the key
  if parts.vault then
    if not read_vault(c, f, o.subscription) then return done() end
    if parts.access then read_access(c, f, o.pipeline) end
  end
  if parts.key then read_key(c, f, parts, rec, o.cache) end
  return done()
end

return M
