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
local plan = require("azcmk.playbook.plan")
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

--- context(o): o.pipeline (required: the face's composition root builds it - azcmk.new(),
-- the command line, nginx), o.subscription (default: the pipeline's, else
-- AZURE_SUBSCRIPTION_ID), o.progress (function(event)). Returns ctx or nil, err.
function M.context(o)
  local p = o.pipeline
  if p == nil then
    local err
    p, err = require("azcmk.compose").pipeline({ getenv = o.getenv })
    if not p then return nil, err end
  end
  local getenv = o.getenv or os.getenv
  local sub = o.subscription or p.subscription or getenv("AZURE_SUBSCRIPTION_ID")
  if type(sub) ~= "string" or sub == "" then
    return nil, errors.input("no subscription given", { code = "MissingSubscription", param = "subscription",
      hint = "pass `subscription` or set AZURE_SUBSCRIPTION_ID" })
  end
  if not ids.is_uuid(sub) then
    return nil, errors.input("the subscription '" .. sub .. "' is not a subscription id (a GUID)",
      { code = "InvalidSubscription", param = "subscription",
        hint = "pass the subscription's id, e.g. from `az account show --query id`" })
  end
  local ctx = setmetatable({ p = p, subscription = sub, steps = {}, progress = o.progress, changed = false,
    warnings = {}, interval = o.interval, timeout = o.timeout }, Ctx)
  local c = client.new(p, { subscription = sub })
  for _, name in ipairs(client.NAMES) do ctx[name] = c[name] end
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
-- subscription). Returns registry, resource group, facts (azcmk.state.read: the registry's
-- own, such as revoked_tag) or nil, err (RegistryNotFound).
function Ctx:find_registry(name, rg)
  local f = self:read(name, rg)
  local reg, rg_or_err = M.registry_of(f)
  if not reg then return nil, rg_or_err end
  return reg, rg_or_err, f
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
-- without CMK (it can only be enabled when a registry is created).
function Ctx:cmk_of(reg, verb)
  local R = Registries
  if not R.cmk_enabled(reg) then
    return nil, errors.input("registry '" .. tostring(reg.name)
      .. "' is not encrypted with a customer-managed "
      .. "key, so " .. (verb or "this") .. " does not apply", { code = "CmkNotEnabled", param = "registry",
      hint = "CMK can only be enabled when a registry is created: create a new Premium registry with "
        .. "`setup{}` and import the images (az acr import)" })
  end
  local enc = reg.properties.encryption
  local kid = enc.keyVaultProperties.keyIdentifier or enc.keyVaultProperties.versionedKeyIdentifier
  local parsed, perr = ids.parse_key_id(kid, self.p.cloud)
  if not parsed then return nil, perr end
  return enc, parsed
end

-- ------------------------------------------------------------------ revocation

local REVOKED_TAG = rules.REVOKED_TAG

--- The refusal of `verb` (what it would do, for the message) on registry `name` whose facts f
-- record a revocation (azcmk.state.rules.reopen_blocked; force = true overrides), or nil.
function M.revoked_refusal(f, name, verb, force)
  local rec = rules.reopen_blocked(f, force)
  if not rec then return nil end
  return errors.input("registry '" .. tostring(name) .. "' was revoked on " .. rec.at .. " by " .. rec.by
    .. " (tag " .. REVOKED_TAG .. "); " .. verb .. " would re-open its key path, so it is refused",
    { code = "RegistryRevoked", status = 409, param = "registry", revoked = { at = rec.at, by = rec.by },
      hint = "end the revocation with `restore{registry = \"" .. tostring(name) .. "\"}`, or pass "
        .. "`force = true` if you mean to re-open it anyway" })
end

--- Who the caller is, for the revocation record: its object id, else "app <app id>".
function Ctx:caller_label()
  local claims, err = state.caller(self.p)
  if not claims then return nil, err end
  return claims.oid or (claims.appid and ("app " .. claims.appid)) or "unknown"
end

-- the registry's other tags (what a tag write must keep)
local function other_tags(reg)
  local keep = {}
  for k, v in pairs(reg.tags or {}) do
    if tostring(k):lower() ~= REVOKED_TAG then keep[k] = v end
  end
  return keep
end

--- The action that records the revocation on registry reg (the tag REVOKED_TAG = "<now> by
-- <caller>", the other tags kept), or nil, err when the caller cannot be named.
function Ctx:record_revocation_action(reg)
  local who, err = self:caller_label()
  if not who then return nil, err end
  local value = rules.revocation_value(self.p.now(), who)
  return plan.action({ step = "revocation", action = "record", kind = "record_revocation", name = reg.name,
    id = reg.id, detail = REVOKED_TAG .. " = " .. value,
    description = "tag registry " .. reg.name .. " " .. REVOKED_TAG .. " = " .. value
      .. " (its other tags kept)",
    reason = "the revocation is recorded on Azure, so that rotate, identity assign, setup and the doctor's "
      .. "repairs do not undo it",
    request = "PATCH " .. reg.id, args = { value = value, keep = other_tags(reg) } })
end

--- The action that removes the revocation record of registry reg (rec: rules.revocation);
-- why: its reason.
function M.clear_revocation_action(reg, rec, why)
  return plan.action({ step = "revocation", action = "clear", kind = "clear_revocation", name = reg.name,
    id = reg.id, detail = REVOKED_TAG .. " removed",
    description = "remove the tag " .. REVOKED_TAG .. " (" .. rec.value .. ") from registry " .. reg.name
      .. " (its other tags kept)",
    reason = why, request = "PATCH " .. reg.id, args = { keep = other_tags(reg) } })
end

-- Reads back the registry after a tag write: the revocation tag as wanted (value, or absent)
-- and the other tags as they were. Returns true or nil, err.
local function tags_read_back(reg, want, keep)
  local have = Registries.tag(reg, REVOKED_TAG)
  local lost = {}
  for k, v in pairs(keep) do
    if Registries.tag(reg, k) ~= v then lost[#lost + 1] = k end
  end
  if have == want and #lost == 0 then return true end
  table.sort(lost)
  return nil, errors.new("azure", { code = "RevocationTagNotApplied", param = "registry",
    message = "registry " .. tostring(reg.name) .. " reads back with " .. REVOKED_TAG .. " = "
      .. tostring(have) .. " (expected " .. tostring(want) .. ")"
      .. (#lost > 0 and ("; tags changed meanwhile: " .. table.concat(lost, ", ")) or ""),
    hint = "another writer may have changed the registry's tags at the same time: check them "
      .. "(`az acr show --query tags`) and run the verb again" })
end

--- When registry reg's last operation failed (provisioningState Failed) and actions send it no
-- PATCH, appends one that sends its tags back unchanged: the same write again is how a
-- resource leaves Failed (a failed tag write whose change had landed through an earlier,
-- re-sent try leaves the tags right and the registry Failed). Returns actions.
function M.reapply_if_failed(actions, reg)
  if not rules.registry_failed(reg) then return actions end
  for _, a in ipairs(actions) do
    if a.kind == "record_revocation" or a.kind == "clear_revocation" then return actions end
  end
  actions[#actions + 1] = plan.action({ step = "registry", action = "reapply", kind = "reapply_registry",
    name = reg.name, id = reg.id, detail = "provisioningState Failed -> Succeeded",
    description = "send registry " .. reg.name .. " its tags again (its last operation failed)",
    reason = "the registry's provisioningState is Failed: the same write again brings it back",
    request = "PATCH " .. reg.id, args = { keep = other_tags(reg) } })
  return actions
end

--- The handlers of the registry's tag writes: the revocation record, a re-apply
-- (azcmk.playbook.plan.apply).
M.REVOCATION = {
  reapply_registry = function(ctx, a)
    local lo = ctx:lro("registry " .. a.name .. " tags")
    local after, err = ctx.registries:set_tags({ id = a.id, progress = lo.progress, interval = lo.interval,
      timeout = lo.timeout })
    if not after then return nil, err end
    local now = tostring((after.properties or {}).provisioningState)
    if now ~= "Succeeded" then
      return nil, errors.new("azure", { code = "RegistryNotSucceeded", param = "registry",
        message = "registry " .. a.name .. " is still " .. now .. " after its tags were sent again",
        hint = "look at the registry's last operation in the activity log of " .. a.id
          .. " and run the command again" })
    end
    return {}
  end,
  record_revocation = function(ctx, a)
    local lo = ctx:lro("registry " .. a.name .. " tags")
    local after, err = ctx.registries:set_tags({ id = a.id, set = { [REVOKED_TAG] = a.args.value },
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not after then return nil, err end
    local ok, rerr = tags_read_back(after, a.args.value, a.args.keep)
    if not ok then return nil, rerr end
    return {}
  end,
  clear_revocation = function(ctx, a)
    local lo = ctx:lro("registry " .. a.name .. " tags")
    local after, err = ctx.registries:set_tags({ id = a.id, remove = { REVOKED_TAG },
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not after then return nil, err end
    local ok, rerr = tags_read_back(after, nil, a.args.keep)
    if not ok then return nil, rerr end
    return {}
  end,
}

-- ------------------------------------------------------------------ identities

--- Resolve an identity value as the Azure CLI takes it. opts: rg (for names), registry (its
-- identity map is searched first). Returns { kind = "system" } or { kind = "user", id, name,
-- client_id, principal_id, tenant_id } or nil, err. A UUID is a client id; a UUID that is the
-- principal id of a known identity is refused (the Azure CLI would take it as a client id
-- and fail).
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
        { code = "PrincipalIdGiven", param = "identity",
          hint = "pass `identity = [system]` for the system-assigned identity" })
    end
    return nil, errors.input("no user-assigned identity with client id '" .. value .. "' in subscription "
      .. self.subscription, { code = "IdentityNotFound", param = "identity",
      hint = "pass the identity's name (with `resource_group`), its resource id, or its client id (not its "
        .. "principal id)" })
  end
  local res, gerr
  if v.kind == "id" then
    res, gerr = self.identities:get({ id = v.value })
  else
    if not opts.rg then
      return nil, errors.input("the identity name '" .. value .. "' needs a resource group",
        { code = "MissingArgument", param = "resource_group",
          hint = "pass `resource_group`, or the identity's resource id" })
    end
    res, gerr = self.identities:get({ resource_group = opts.rg, name = v.value })
  end
  if gerr then return nil, gerr end
  if not res then
    return nil, errors.input("user-assigned identity '" .. value .. "' not found" ..
      (v.kind == "name" and (" in resource group '" .. opts.rg .. "'") or ""), { code = "IdentityNotFound",
      param = "identity", hint = "create it (setup creates one) or pass an existing identity's name, "
        .. "resource id or client id" })
  end
  return from(res)
end

function M.principal_refusal(uuid, id)
  return errors.input("'" .. uuid .. "' is the principal (object) id of identity " .. tostring(id)
    .. ", not its client id", { code = "PrincipalIdGiven", param = "identity",
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

local GRANT = { policy = "access policy: keys get, wrapKey, unwrapKey",
  rbac = "role Key Vault Crypto Service Encryption User at the vault" }

--- The action that gives principal (label: how steps name it) the use of the key in the
-- vault's model: "reuse" when it has it, else "grant" - get/wrapKey/unwrapKey in an access
-- policy, or the role Key Vault Crypto Service Encryption User at the vault (RBAC).
-- principal_id nil: a principal that does not exist yet (a new identity); the grant's
-- handler takes it from the apply's state. Returns the action or nil, err.
function Ctx:access_action(vault, principal_id, tenant_id, label)
  local model = M.model(vault)
  local has = false
  if principal_id and vault.id then
    local err
    has, err = self:has_access(vault, principal_id)
    if has == nil then return nil, err end
  end
  if has then
    return plan.action({ step = "access", action = "reuse", name = label, model = model, id = vault.id,
      principal_id = principal_id, reason = "it has it",
      description = label .. " already has the use of the key (" .. GRANT[model] .. ")" })
  end
  return plan.action({ step = "access", action = "grant", kind = "grant", name = label, model = model,
    principal_id = principal_id, detail = GRANT[model], id = vault.id,
    description = "give " .. label .. " the use of the key in vault " .. tostring(vault.name) .. " ("
      .. GRANT[model] .. ")",
    reason = principal_id and "the identity has no access to the key" or "the identity is new",
    request = "PUT " .. (model == "policy" and ids.access_policy_path(vault.id, "add")
      or ids.role_assignment_id(vault.id)),
    args = { vault = vault, tenant_id = tenant_id } })
end

--- The write of a grant (ctx, vault, principal_id, tenant_id): true or nil, err. Idempotent on
-- the service side too (accessPolicies/add merges; the role assignment has a stable name).
function M.grant_write(ctx, vault, principal_id, tenant_id)
  if M.model(vault) == "policy" then
    return ctx.vaults:add_access_policy({ id = vault.id, tenant_id = tenant_id or vault.properties.tenantId,
      object_id = principal_id })
  end
  return ctx.role_assignments:create({ scope = vault.id, principal_id = principal_id,
    role = ENCRYPTION_USER })
end

--- The handlers of the access actions (azcmk.playbook.plan.apply): grant, and the removals of
-- revoke. A grant whose vault or principal was not known when it was planned takes them from
-- the apply's state (state.vault, state.principal_id, state.tenant_id).
M.ACCESS = {
  grant = function(ctx, a, st)
    local vault = a.args.vault.id and a.args.vault or st.vault
    local pid = a.principal_id or st.principal_id
    local ok, err = M.grant_write(ctx, vault, pid, a.args.tenant_id or st.tenant_id)
    if not ok then return nil, err end
    return { principal_id = pid }
  end,
  remove_policy = function(ctx, a)
    local v = a.args.vault
    local ok, err = ctx.vaults:remove_access_policy({ id = v.id, tenant_id = v.properties.tenantId,
      object_id = a.principal_id, keys = a.keys })
    if not ok then return nil, err end
    return { detail = "access policy removed" }
  end,
  delete_assignment = function(ctx, a)
    local ok, err = ctx.role_assignments:delete({ id = a.id })
    if not ok then return nil, err end
    return { detail = "role assignment " .. tostring(a.id):match("[^/]+$") .. " deleted" }
  end,
}

--- Give principal the use of the key now (plan and apply in one): "granted" | "reused", or
-- nil, err. Records the step.
function Ctx:grant(vault, principal_id, tenant_id, label)
  local a, err = self:access_action(vault, principal_id, tenant_id, label)
  if not a then return nil, err end
  local ok, aerr = plan.apply(self, { a }, M.ACCESS, {})
  if not ok then return nil, aerr end
  return a.done
end

--- What removing principal's (label's) access would do: the actions. Only what gives the use
-- of the key is removed - the key permissions get/wrapKey/unwrapKey (and "all"), or role
-- assignments whose role grants keys read + wrap + unwrap - so that restore gives back what
-- revoke took; anything restore cannot give back is said in a note (and a warning).
-- Assignments above the vault are not removed: a warning says the revoke is incomplete.
function Ctx:revoke_actions(vault, principal_id, label)
  local model = M.model(vault)
  local actions = {}
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
      actions[#actions + 1] = plan.action({ step = "access", action = "remove", kind = "remove_policy",
        model = model, id = vault.id, name = label, principal_id = principal_id, keys = keys, note = note,
        irreversible = true,
        description = "remove the key permissions " .. table.concat(keys, ", ") .. " of " .. label
          .. " (object id " .. principal_id .. ") from the access policies of Key Vault " .. vault.name,
        request = "PUT " .. ids.access_policy_path(vault.id, "remove"), args = { vault = vault },
        reason = "the access policy gives the identity the use of the key" })
    end
  else
    local list, err = self.role_assignments:list({ scope = vault.id, principal_id = principal_id })
    if not list then return nil, err end
    local vid = vault.id:lower()
    for _, ra in ipairs(list) do
      local props = ra.properties or {}
      local role = RoleAssignments.key_use_role(props.roleDefinitionId)
      local sc = tostring(props.scope or "")
      local at_vault = sc:lower() == vid or sc:lower():sub(1, #vid + 1) == vid .. "/"
      if role and at_vault then
        actions[#actions + 1] = plan.action({ step = "access", action = "remove", kind = "delete_assignment",
          model = model, name = label, principal_id = principal_id, id = ra.id, irreversible = true,
          description = "delete role assignment " .. tostring(ra.id) .. " (" .. role .. ")",
          reason = "the role gives the identity the use of the key",
          request = "DELETE " .. tostring(ra.id),
          note = role ~= RoleAssignments.KEY_USE_ROLES[ENCRYPTION_USER]
            and ("restore grants Key Vault Crypto Service Encryption User, not " .. role) or nil })
      elseif role then
        self:warn("the identity keeps the use of the key through role " .. role .. " at " .. sc
          .. " (above the vault): azcmk does not remove assignments above the vault, so the revoke"
          .. " is not complete until that assignment is removed")
      end
    end
  end
  for _, a in ipairs(actions) do
    if a.note then
      self:warn(a.note)
      a.description = a.description .. " - note: " .. a.note
    end
  end
  return actions
end

return M
