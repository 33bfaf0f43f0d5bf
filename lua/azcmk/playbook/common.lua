--- What every playbook shares: the context (pipeline, subscription, clients), progress and
-- the list of steps a playbook took, finding a registry or vault by name, resolving identity
-- values the way the Azure CLI does, and granting / removing an identity's access to a key
-- in either access model (access policy or RBAC).
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local client = require("azcmk.client")
local Registries = require("azcmk.client.registries")
local Vaults = require("azcmk.client.vaults")
local RoleAssignments = require("azcmk.client.role_assignments")
local state = require("azcmk.state")
local rules = require("azcmk.state.rules")
local options = require("azcmk.options")

local M = {}

--- The options every playbook takes (docs/playbooks.md "Conventions").
M.OPTIONS = { pipeline = "table?", subscription = "string?", progress = "function?", getenv = "function?",
  interval = "number?", timeout = "number?" }

--- check(o, spec, where): the playbook's own keys (spec) plus M.OPTIONS; raises on a wrong
-- type or an unknown key (with a did-you-mean), pointing at the playbook's caller.
function M.check(o, spec, where)
  return options.check(o, options.merge(M.OPTIONS, spec), where, 4)
end


local Ctx = {}
Ctx.__index = Ctx

--- context(o): o.pipeline (default azcmk.new()), o.subscription (default
-- AZURE_SUBSCRIPTION_ID), o.progress (function(event)). Returns ctx or nil, err.
function M.context(o)
  local p = o.pipeline
  if p == nil then
    local err
    p, err = require("azcmk.compose").pipeline({ getenv = o.getenv })
    if not p then return nil, err end
  end
  local getenv = o.getenv or os.getenv
  local sub = o.subscription or getenv("AZURE_SUBSCRIPTION_ID")
  if type(sub) ~= "string" or sub == "" then
    return nil, errors.input("no subscription given", { code = "MissingSubscription",
      hint = "pass --subscription ID (subscription = in Lua) or set AZURE_SUBSCRIPTION_ID" })
  end
  if not ids.is_uuid(sub) then
    return nil, errors.input("the subscription '" .. sub .. "' is not a subscription id (a GUID)",
      { code = "InvalidSubscription",
        hint = "pass the subscription's id, e.g. from `az account show --query id`" })
  end
  local ctx = setmetatable({ p = p, subscription = sub, steps = {}, progress = o.progress, changed = false,
    warnings = {}, interval = o.interval, timeout = o.timeout }, Ctx)
  for name, c in pairs(client.new(p, { subscription = sub })) do ctx[name] = c end
  return ctx
end

--- Report progress (message) to the caller's progress function.
function Ctx:say(message, fields)
  if self.progress then
    local ev = { message = message }
    for k, v in pairs(fields or {}) do ev[k] = v end
    pcall(self.progress, ev)
  end
end

--- Record a step: action is "created", "updated", "reused", "granted", "removed", ...
function Ctx:step(step, action, fields)
  local s = { step = step, action = action }
  for k, v in pairs(fields or {}) do s[k] = v end
  self.steps[#self.steps + 1] = s
  if action ~= "reused" and action ~= "unchanged" and action ~= "checked" then self.changed = true end
  self:say(step .. ": " .. action .. (s.name and (" " .. s.name) or ""), s)
  return s
end

function Ctx:warn(message)
  self.warnings[#self.warnings + 1] = message
  self:say("warning: " .. message, { warning = true })
end

--- LRO options for client calls: progress of the operation goes to the caller.
function Ctx:lro(what, extra)
  local o = { progress = function(i)
    self:say(string.format("%s: %s (poll %d, %ds)", what, tostring(i.state), i.polls or 0,
      math.floor(i.elapsed or 0)), { lro = what, state = i.state })
  end, interval = self.interval, timeout = self.timeout }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- The caller's principal (object id, tenant) from its ARM token's claims.
function Ctx:caller()
  if self._caller then return self._caller end
  local claims, err = state.caller(self.p)
  if not claims then return nil, err end
  if not claims.oid then
    return nil, errors.new("auth", { code = "NoObjectId",
      message = "the caller's token carries no object id (oid)",
      hint = "use a credential of a service principal, user or managed identity" })
  end
  self._caller = { object_id = claims.oid, tenant_id = claims.tid }
  return self._caller
end

-- ------------------------------------------------------------------ finding resources

--- The registry of facts f (azcmk.state.read): registry, resource group, or nil, err - the
-- input error of an invalid name, the error of the read, or RegistryNotFound.
function M.registry_of(f)
  local input = f.input or {}
  if input.registry_err or input.rg_err then return nil, input.registry_err or input.rg_err end
  if f.reg then return f.reg, f.rg end
  if f.reg_err then return nil, f.reg_err end
  local name, rg = tostring(input.registry), input.resource_group
  if rg then
    return nil, errors.new("azure", { status = 404, code = "RegistryNotFound", param = "registry",
      message = "registry '" .. name .. "' not found in resource group '" .. rg .. "'",
      hint = "check `registry` and `resource_group` (or leave `resource_group` out to search the "
        .. "subscription)" })
  end
  return nil, errors.new("azure", { status = 404, code = "RegistryNotFound", param = "registry",
    message = "registry '" .. name .. "' not found in subscription " .. tostring(f.subscription),
    hint = "check `registry` and `subscription`" })
end

--- Read the facts of registry `name` (in rg when given, else found by name in the
-- subscription): parts as azcmk.state.read (default: the registry only).
function Ctx:read(name, rg, parts)
  return state.read({ pipeline = self.p, subscription = self.subscription, registry = name,
    resource_group = rg, parts = parts })
end

--- The registry `name` (in resource_group when given, else found by name in the
-- subscription). Returns registry, resource group or nil, err (RegistryNotFound).
function Ctx:find_registry(name, rg)
  return M.registry_of(self:read(name, rg))
end

--- The vault `name` (in rg when given and present there, else anywhere in the subscription;
-- with anywhere = true also in the other subscriptions the caller sees: the vault of a
-- registry's key). Returns vault or nil (absent), or nil, err.
function Ctx:find_vault(name, rg, anywhere)
  if rg then
    local v, err = self.vaults:get({ resource_group = rg, name = name })
    if v or err then return v, err end
  end
  local found, ferr
  if anywhere then
    local r
    r, ferr = state.search_vault(self, name, self.subscription)
    found = r and r.found
  else
    found, ferr = self.resources:find({ type = state.VAULT_TYPE, name = name })
  end
  if ferr then return nil, ferr end
  if not found then return nil end
  return self.vaults:get({ id = found.id })
end

--- The registry's CMK settings: encryption table, parsed key id. Refuses registries
-- without CMK (reliability.md §4 item 1).
function Ctx:cmk_of(reg, verb)
  local R = Registries
  if not R.cmk_enabled(reg) then
    return nil, errors.input("registry '" .. tostring(reg.name)
      .. "' is not encrypted with a customer-managed "
      .. "key, so " .. (verb or "this") .. " does not apply", { code = "CmkNotEnabled",
      hint = "CMK can only be enabled when a registry is created: create a new Premium registry with "
        .. "`azcmk setup` and import the images (az acr import)" })
  end
  local enc = reg.properties.encryption
  local kid = enc.keyVaultProperties.keyIdentifier or enc.keyVaultProperties.versionedKeyIdentifier
  local parsed, perr = ids.parse_key_id(kid, self.p.cloud)
  if not parsed then return nil, perr end
  return enc, parsed
end

-- ------------------------------------------------------------------ identities

--- Resolve an identity value as the Azure CLI takes it. opts: rg (for names), registry (its
-- identity map is searched first). Returns { kind = "system" } or { kind = "user", id, name,
-- client_id, principal_id, tenant_id } or nil, err. A UUID is a client id; a UUID that is the
-- principal id of a known identity is refused (reliability.md §4 item 8).
function Ctx:resolve_identity(value, opts)
  opts = opts or {}
  local v, err = ids.parse_identity(value)
  if not v then return nil, err end
  if v.kind == "system" then return { kind = "system" } end
  local R = Registries
  local function from(res)
    local pr = res.properties or {}
    return { kind = "user", id = res.id, name = res.name, client_id = pr.clientId,
      principal_id = pr.principalId,
      tenant_id = pr.tenantId, resource = res }
  end
  if v.kind == "client_id" then
    if opts.registry then
      local rid, rv = R.user_identity(opts.registry, v.value)
      if rid then
        local res = self.identities:get({ id = rid })
        if res then return from(res) end
        return { kind = "user", id = rid, client_id = rv.clientId, principal_id = rv.principalId }
      end
      local pid = R.user_identity(opts.registry, nil, v.value)
      if pid then
        return nil, M.principal_refusal(v.value, pid)
      end
    end
    local list, lerr = self.identities:list({})
    if not list then return nil, lerr end
    for _, i in ipairs(list) do
      local pr = i.properties or {}
      if tostring(pr.clientId):lower() == v.value then return from(i) end
    end
    for _, i in ipairs(list) do
      local pr = i.properties or {}
      if tostring(pr.principalId):lower() == v.value then return nil, M.principal_refusal(v.value, i.id) end
    end
    if opts.registry and opts.registry.identity
      and tostring(opts.registry.identity.principalId):lower() == v.value then
      return nil, errors.input("'" .. value
        .. "' is the principal id of the registry's system-assigned identity",
        { code = "PrincipalIdGiven", hint = "pass --identity [system] for the system-assigned identity" })
    end
    return nil, errors.input("no user-assigned identity with client id '" .. value .. "' in subscription "
      .. self.subscription, { code = "IdentityNotFound",
      hint = "pass the identity's name (with -g), its resource id, or its client id (not its principal id)" })
  end
  local res, gerr
  if v.kind == "id" then
    res, gerr = self.identities:get({ id = v.value })
  else
    if not opts.rg then
      return nil, errors.input("the identity name '" .. value .. "' needs a resource group",
        { code = "MissingArgument", hint = "pass -g/--resource-group, or the identity's resource id" })
    end
    res, gerr = self.identities:get({ resource_group = opts.rg, name = v.value })
  end
  if gerr then return nil, gerr end
  if not res then
    return nil, errors.input("user-assigned identity '" .. value .. "' not found" ..
      (v.kind == "name" and (" in resource group '" .. opts.rg .. "'") or ""), { code = "IdentityNotFound",
      hint = "create it (azcmk setup creates one) or pass an existing identity's name, resource id or "
        .. "client id" })
  end
  return from(res)
end

function M.principal_refusal(uuid, id)
  return errors.input("'" .. uuid .. "' is the principal (object) id of identity " .. tostring(id)
    .. ", not its client id", { code = "PrincipalIdGiven",
    hint = "pass the identity's client id, its name or its resource id (the registry's encryption needs the "
      .. "client id; the Azure CLI would take this UUID as a client id and fail)" })
end

-- ------------------------------------------------------------------ access to the key

--- The access model of a vault: "rbac" or "policy".
M.model = rules.access_model

local ENCRYPTION_USER = RoleAssignments.ROLES.crypto_service_encryption_user

--- Does principal reach the key through the vault's model (azcmk.state.rules.has_access)?
-- Returns true/false, or nil, err when its role assignments cannot be read.
function Ctx:has_access(vault, principal_id)
  if M.model(vault) == "policy" then return rules.has_access(vault, principal_id) end
  local list, err = self.role_assignments:list({ scope = vault.id, principal_id = principal_id })
  if not list then return nil, err end
  return rules.has_access(vault, principal_id, list)
end

--- Give principal get/wrapKey/unwrapKey on the vault's keys (policy) or the role "Key Vault
-- Crypto Service Encryption User" at the vault (RBAC). Idempotent. Returns action
-- ("granted" | "reused") or nil, err.
function Ctx:grant(vault, principal_id, tenant_id, label)
  local has, err = self:has_access(vault, principal_id)
  if has == nil then return nil, err end
  local model = M.model(vault)
  if has then
    self:step("access", "reused", { model = model, principal_id = principal_id, name = label })
    return "reused"
  end
  local ok, gerr
  if model == "policy" then
    ok, gerr = self.vaults:add_access_policy({ id = vault.id, tenant_id = tenant_id
      or vault.properties.tenantId,
      object_id = principal_id })
  else
    ok, gerr = self.role_assignments:create({ scope = vault.id, principal_id = principal_id,
      role = ENCRYPTION_USER })
  end
  if not ok then return nil, gerr end
  self:step("access", "granted", { model = model, principal_id = principal_id, name = label,
    detail = model == "policy" and "access policy: keys get, wrapKey, unwrapKey"
      or "role Key Vault Crypto Service Encryption User at the vault" })
  return "granted"
end

--- What removing principal's access would do: a list of { model, action, id?, keys?, note? }.
-- Only what gives the use of the key is removed — the key permissions get/wrapKey/unwrapKey
-- (and "all"), or role assignments whose role grants keys read + wrap + unwrap — so that
-- restore gives back what revoke took; anything restore cannot give back is said in a note.
function Ctx:revoke_plan(vault, principal_id)
  local model = M.model(vault)
  local plan = {}
  if model == "policy" then
    local ap = Vaults.policy_of(vault, principal_id)
    local cmk = {}
    for _, k in ipairs(Vaults.CMK_KEY_PERMISSIONS) do cmk[k:lower()] = k end
    cmk.all = "all"
    local keys, note = {}, nil
    for _, k in ipairs(ap and (ap.permissions or {}).keys or {}) do
      if cmk[tostring(k):lower()] then keys[#keys + 1] = k end
      if tostring(k):lower() == "all" then
        note = "the entry grants keys 'all'; restore gives back get, wrapKey, unwrapKey only"
      end
    end
    if #keys > 0 then
      plan[#plan + 1] = { model = model, action = "remove access policy", object_id = principal_id,
        keys = keys, note = note }
    end
  else
    local list, err = self.role_assignments:list({ scope = vault.id, principal_id = principal_id })
    if not list then return nil, err end
    local vid = vault.id:lower()
    for _, a in ipairs(list) do
      local props = a.properties or {}
      local role = RoleAssignments.key_use_role(props.roleDefinitionId)
      local sc = tostring(props.scope or "")
      local at_vault = sc:lower() == vid or sc:lower():sub(1, #vid + 1) == vid .. "/"
      if role and at_vault then
        plan[#plan + 1] = { model = model, action = "delete role assignment", id = a.id,
          role = props.roleDefinitionId, scope = sc,
          note = role ~= RoleAssignments.KEY_USE_ROLES[ENCRYPTION_USER]
            and ("restore grants Key Vault Crypto Service Encryption User, not " .. role) or nil }
      elseif role then
        self:warn("the identity keeps the use of the key through role " .. role .. " at " .. sc
          .. " (above the vault): azcmk does not remove assignments above the vault, so the revoke"
          .. " is not complete until that assignment is removed")
      end
    end
  end
  for _, item in ipairs(plan) do
    if item.note then self:warn(item.note) end
  end
  return plan
end

--- Carry out a revoke plan. Returns true or nil, err.
function Ctx:revoke(vault, principal_id, plan, label)
  for _, item in ipairs(plan) do
    local ok, err
    if item.action == "remove access policy" then
      ok, err = self.vaults:remove_access_policy({ id = vault.id, tenant_id = vault.properties.tenantId,
        object_id = principal_id, keys = item.keys })
    else
      ok, err = self.role_assignments:delete({ id = item.id })
    end
    if not ok then return nil, err end
    self:step("access", "removed", { model = item.model, principal_id = principal_id, id = item.id,
      name = label, detail = item.action == "remove access policy" and "access policy removed"
        or ("role assignment " .. tostring(item.id):match("[^/]+$") .. " deleted") })
  end
  return true
end

return M
