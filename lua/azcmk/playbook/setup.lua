--- setup: create or reuse everything a CMK-encrypted registry needs: resource group,
-- user-assigned identity, Key Vault with soft delete and purge protection, the identity's
-- access to the key (access policy or RBAC, following the vault), an RSA key, and a Premium
-- registry encrypted with it (versioned or versionless key id).
--
-- validate (the options) -> read (what exists) -> plan (refusals, or the actions) -> apply
-- (azcmk.playbook.plan). Everything that can be known in advance is refused before the first
-- write (names, SKU, key type, an existing registry without CMK, a vault without purge
-- protection, the access model, a vault firewall, soft-deleted vault or key). Every action
-- is an "ensure": a second run plans nothing but reuses and writes nothing, and a run after
-- a failure re-reads and resumes where the first stopped. dry_run = true returns the plan.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")
local plan = require("azcmk.playbook.plan")
local rules = require("azcmk.state.rules")
local cmk_state = require("azcmk.state")
local Vaults = require("azcmk.client.vaults")
local Registries = require("azcmk.client.registries")
local check = common.check

local M = {}

M.IRREVERSIBLE_PURGE_PROTECTION = "enabling purge protection is irreversible: the vault and its keys can "
  .. "then never be purged before their retention period ends, and the vault's name stays taken while it is "
  .. "soft-deleted"

-- A refusal: an input error naming the option (param) and what to do (hint).
local function input(message, code, param, hint, extra)
  local f = { code = code, param = param, hint = hint }
  for k, v in pairs(extra or {}) do f[k] = v end
  return errors.input(message, f)
end

local function refuse(...) return nil, input(...) end

-- ------------------------------------------------------------------ validate

--- Check the inputs; returns normalised options or nil, err.
function M.validate(o)
  local v = {}
  local ok, err = ids.check_registry_name(o.registry or o.name)
  if not ok then return nil, err end
  v.registry = o.registry or o.name
  ok, err = ids.check_resource_group(o.resource_group)
  if not ok then return nil, err end
  v.resource_group = o.resource_group
  -- a name (found in the subscription, else created), or an existing vault's resource id
  -- (possibly in another subscription of the tenant; used, never created)
  local vv
  vv, err = ids.parse_vault(o.vault)
  if not vv then return nil, err end
  v.vault = vv.name
  if vv.kind == "id" then v.vault_id, v.vault_subscription = vv.id, vv.subscription end
  v.key = o.key or (v.registry:lower() .. "-cmk")
  ok, err = ids.check_key_name(v.key)
  if not ok then return nil, err end
  v.identity = o.identity or (v.registry:lower() .. "-identity")
  if v.identity == "[system]" or v.identity == "system" then
    return refuse("a new CMK registry needs a user-assigned identity; the system-assigned identity can only "
      .. "be used later", "SystemIdentityAtCreation", "identity", "run setup with a user-assigned identity "
      .. "(`identity`: a name), then `rotate{registry = \"" .. v.registry
        .. "\", identity = \"[system]\"}` to "
      .. "switch to the system-assigned one")
  end
  -- a name (created when absent), or an existing identity's resource id or client id
  local iv
  iv, err = ids.parse_identity(v.identity)
  if not iv then return nil, err end
  v.identity_kind = iv.kind
  if o.location then
    v.location, err = ids.check_location(o.location)
    if not v.location then return nil, err end
  end
  if o.sku and tostring(o.sku):lower() ~= "premium" then
    return refuse("customer-managed keys need the Premium SKU, not '" .. tostring(o.sku) .. "'",
      "NonPremiumSku", "sku", "use `sku = Premium` (or leave `sku` out)")
  end
  local kty = (o.key_type or "RSA"):upper()
  if kty:match("^EC") then
    return refuse("Azure Container Registry supports only RSA or RSA-HSM keys, not " .. kty,
      "UnsupportedKeyType", "key_type", "use an RSA key (`key_type = RSA` or `key_type = RSA-HSM`)")
  end
  if not rules.supported_kty(kty) or (kty ~= "RSA" and kty ~= "RSA-HSM") then
    return refuse("unknown key type '" .. kty .. "'", "UnsupportedKeyType", "key_type", "use RSA or RSA-HSM")
  end
  v.key_type = kty
  v.key_size = tonumber(o.key_size) or 2048
  if v.key_size ~= 2048 and v.key_size ~= 3072 and v.key_size ~= 4096 then
    return refuse("RSA key size must be 2048, 3072 or 4096, not " .. tostring(o.key_size), "InvalidKeySize",
      "key_size", "use `key_size` 2048, 3072 or 4096")
  end
  if o.access ~= nil and o.access ~= "policy" and o.access ~= "rbac" then
    return refuse("the access model must be policy or rbac, not '" .. tostring(o.access) .. "'",
      "InvalidAccessModel", "access", "use `access = policy` (vault access policy) or `access = rbac` "
        .. "(Azure RBAC)")
  end
  v.access = o.access
  v.versionless = o.versionless == true
  v.enable_purge_protection = o.enable_purge_protection == true
  v.force = o.force == true
  return v
end

M.TAG = "created-by"

-- ------------------------------------------------------------------ read

--- The key of the setup in vault_url: key, deleted (its soft-deleted record when absent), or
-- nil, nil, err.
local function read_key(ctx, v, vault_url)
  local key, err = ctx.keys:get({ vault_url = vault_url, name = v.key })
  if err then return nil, nil, err end
  if key then return key end
  local deleted, derr = ctx.keys:get_deleted({ vault_url = vault_url, name = v.key })
  if derr and not errors.is(derr, 403) then return nil, nil, derr end
  return nil, deleted
end

--- Why the key of the setup cannot be used (an EC key, a disabled one, a soft-deleted one),
-- or nil.
local function key_refusal(v, key, deleted)
  if key then
    local kty = tostring((key.key or {}).kty)
    if not rules.supported_kty(kty) then
      return input("key '" .. v.key .. "' is a " .. kty .. " key; Azure Container Registry "
        .. "supports only RSA or RSA-HSM keys", "UnsupportedKeyType", "key",
        "choose another key name (`key`) for an RSA key")
    end
    if key.attributes and key.attributes.enabled == false then
      return input("key '" .. v.key .. "' is disabled", "KeyDisabled", "key",
        "enable its current version in the vault, or choose another key name (`key`)")
    end
  elseif deleted then
    return input("key '" .. v.key .. "' is soft-deleted in vault '" .. v.vault .. "'", "KeyDeleted",
      "key", "recover it with `recover{vault = \"" .. v.vault .. "\", key = \"" .. v.key
        .. "\"}`, or choose another key name")
  end
  return nil
end

--- A registry still being created or updated (a run interrupted while polling) is waited
-- for; one whose creation failed without encryption counts as absent (it is created again).
function M.settled(ctx, reg, rg, name)
  local waited = 0
  local limit = ctx.timeout or 600
  while reg do
    local state = tostring((reg.properties or {}).provisioningState or "Succeeded"):lower()
    if state == "failed" and not Registries.cmk_enabled(reg) then
      ctx:say("registry " .. name .. " failed to provision before; it is created again")
      return nil
    end
    if state ~= "creating" and state ~= "updating" then return reg end
    if waited >= limit then
      return nil, errors.new("timeout", { code = "LroTimeout", message = "registry " .. name .. " is still "
        .. state, hint = "wait until its operation ends, then run setup again" })
    end
    ctx:say("registry " .. name .. " is " .. state .. " (an earlier run); waiting")
    local step = ctx.interval or 2
    ctx.p.sleep(step)
    waited = waited + step
    local err
    reg, err = ctx.registries:get({ resource_group = rg, name = name })
    if err then return nil, err end
  end
  return nil
end

--- read(ctx, v) -> facts { rg, ident, reg, revoked_tag, elsewhere, vault, vault_deleted, key, key_deleted,
-- key_unreadable, key_err, caller } or nil, err. Reads only (and waits for a registry an earlier run
-- left being created).
function M.read(ctx, v)
  local f = {}
  local err
  ctx:say("checking what exists")
  f.rg, err = ctx.resource_groups:get({ name = v.resource_group })
  if err then return nil, err end
  if v.identity_kind == "name" then
    f.ident, err = ctx.identities:get({ resource_group = v.resource_group, name = v.identity })
    if err then return nil, err end
  else
    local r
    r, err = ctx:resolve_identity(v.identity, { rg = v.resource_group })
    if not r then return nil, err end
    f.ident = r.resource   -- resolve_identity read it (a resource id or client id names a user identity)
    v.identity = f.ident.name
  end
  f.reg, err = ctx.registries:get({ resource_group = v.resource_group, name = v.registry })
  if err then return nil, err end
  f.reg, err = M.settled(ctx, f.reg, v.resource_group, v.registry)
  if err then return nil, err end
  f.revoked_tag = f.reg and cmk_state.revoked_tag(f.reg)
  if not f.reg then
    f.elsewhere, err = ctx.resources:find({ type = Registries.TYPE, name = v.registry })
    if err then return nil, err end
  end
  if v.vault_id then
    -- an existing vault by id (maybe in another subscription); never created from an id
    f.vault, err = ctx.vaults:get({ id = v.vault_id })
    if err then return nil, err end
  else
    f.vault, err = ctx:find_vault(v.vault, v.resource_group)
    if err then return nil, err end
  end
  if not f.vault then
    f.vault_deleted, err = ctx.vaults:find_deleted({ name = v.vault, subscription = v.vault_subscription })
    if err and not errors.is(err, 404) then return nil, err end
  else
    f.key, f.key_deleted, err = read_key(ctx, v, ids.vault_url(v.vault, ctx.p.cloud))
    if err then
      -- a run that stopped between creating an RBAC vault and the caller's role: the caller
      -- cannot read keys yet; that step comes first (only for vaults azcmk created)
      if errors.is(err, "ForbiddenByRbac") and common.model(f.vault) == "rbac"
        and (f.vault.tags or {})[M.TAG] == "azcmk" then
        f.key_unreadable = true
      else
        f.key_err = err   -- the vault's own refusals (model, firewall) come first
      end
    end
  end
  if not f.vault or f.key_unreadable then
    f.caller, err = ctx:caller()
    if not f.caller then return nil, err end
  end
  return f
end

-- ------------------------------------------------------------------ plan

-- Refusals that need the facts; nil when there is none.
local function refusal(v, f)
  if f.reg then
    local sku = f.reg.sku and f.reg.sku.name or "?"
    if tostring(sku):lower() ~= "premium" then
      return input("registry '" .. v.registry .. "' exists with SKU " .. sku
        .. "; customer-managed keys need "
        .. "Premium and can only be enabled when a registry is created", "NonPremiumSku", "registry",
        "create a new Premium registry with CMK (another name) and import the images (az acr import)")
    end
    if not Registries.cmk_enabled(f.reg) then
      return input("registry '" .. v.registry .. "' exists without a customer-managed key; CMK can only be "
        .. "enabled when a registry is created", "CmkOnlyAtCreation", "registry",
        "create a new registry with CMK (another name) and import the images (az acr import)")
    end
  -- (a registry that failed to provision in this group is created again: not elsewhere)
  elseif f.elsewhere and tostring(f.elsewhere.resource_group):lower() ~= v.resource_group:lower() then
    return input("registry '" .. v.registry .. "' already exists in resource group '"
      .. tostring(f.elsewhere.resource_group) .. "'", "RegistryInOtherResourceGroup", "resource_group",
      "pass `resource_group = " .. tostring(f.elsewhere.resource_group)
        .. "`, or choose another registry name")
  end
  local vault = f.vault
  if not vault then
    if v.vault_id then
      local recover = "`recover{vault = \"" .. v.vault .. "\", subscription = \"" .. v.vault_subscription
        .. "\"}`"
      if f.vault_deleted then
        return input("Key Vault '" .. v.vault .. "' is soft-deleted (its name stays taken)", "VaultDeleted",
          "vault",
          "recover it with " .. recover .. ", or pass another vault", { status = 404 })
      end
      return input("Key Vault " .. v.vault_id .. " does not exist; setup creates a vault only from a name, "
        .. "never from a resource id", "VaultNotFound", "vault",
        "check the subscription, resource group and name of the id (`az keyvault show --query id --name "
          .. v.vault .. "`), recover a soft-deleted vault with " .. recover .. ", or pass a plain vault name "
          .. "(`vault`) to have setup create it in resource group '" .. v.resource_group .. "'",
            { status = 404 })
    end
    if f.vault_deleted then
      return input("Key Vault '" .. v.vault .. "' is soft-deleted (its name stays taken)", "VaultDeleted",
        "vault",
        "recover it with `recover{vault = \"" .. v.vault .. "\"}`, or choose another vault name")
    end
    return nil
  end
  if not rules.purge_protected(vault) and not v.enable_purge_protection then
    return input("Key Vault '" .. v.vault .. "' has no purge protection, which a registry's key vault needs",
      "PurgeProtectionRequired", "enable_purge_protection", "re-run with `enable_purge_protection = true` "
        .. "to switch it on (" .. M.IRREVERSIBLE_PURGE_PROTECTION .. ")")
  end
  local model = common.model(vault)
  if v.access and v.access ~= model then
    return input("Key Vault '" .. v.vault .. "' uses the " .. (model == "rbac" and "Azure RBAC"
      or "access policy") .. " permission model, not " .. v.access, "AccessModelMismatch", "access",
      "leave `access` out to follow the vault's model, or use `access = " .. model .. "`")
  end
  if rules.network_blocks(vault, "user") then
    return input("Key Vault '" .. v.vault .. "' has its firewall on; a registry's user-assigned identity "
      .. "cannot pass it as a trusted service", "VaultFirewallBlocksUserIdentity", "vault",
      "create the registry with a vault whose firewall is off, then `rotate{registry = \"" .. v.registry
        .. "\", identity = \"[system]\"}` and switch the firewall on with 'Allow trusted Microsoft services' "
        .. "(bypass AzureServices)")
  end
  if f.key_err then return f.key_err end
  if not f.key_unreadable then return key_refusal(v, f.key, f.key_deleted) end
  return nil
end

local function caller_role(vault_name, vault_id)
  return plan.action({ step = "access", action = "grant", kind = "grant_caller", name = "caller",
    model = "rbac",
    detail = "role Key Vault Crypto Officer at the vault (to create the key)",
    description = "give the caller the role Key Vault Crypto Officer at vault " .. vault_name
      .. " (to create the key)", request = "PUT " .. ids.role_assignment_id(vault_id),
    reason = "the caller needs a data-plane role to create the key in an RBAC vault" })
end

--- plan(ctx, v, f) -> actions (in order: resource group, identity, vault, access, key,
-- registry), or nil, err (a refusal).
function M.plan(ctx, v, f)
  local location = v.location or (f.rg and f.rg.location)
  if not location then
    return refuse("resource group '" .. v.resource_group .. "' does not exist and no location was given",
      "MissingArgument", "location", "pass `location` (e.g. westus) to create it")
  end
  local denied = refusal(v, f)
  if denied then return nil, denied end
  -- a revoked registry stays revoked: a re-run would give its identity the key again
  if f.reg then
    denied = common.revoked_refusal(f, v.registry, "setup", v.force)
    if denied then return nil, denied end
  end
  local err
  if f.reg and f.ident then
    -- an existing CMK registry: nothing to create; report what it uses
    local kid = f.reg.properties.encryption.keyVaultProperties.keyIdentifier
    local want = ids.key_url(ids.vault_url(v.vault, ctx.p.cloud), v.key)
    if type(kid) ~= "string" or kid:lower():sub(1, #want) ~= want:lower() then
      ctx:warn("registry '" .. v.registry .. "' already uses key " .. tostring(kid)
        .. "; setup leaves it as it "
        .. "is (use `rotate{registry = \"" .. v.registry .. "\"}` to change it)")
    end
  end
  local rgid = ids.resource_group_id(ctx.subscription, v.resource_group)
  local vault_id = f.vault and f.vault.id
    or ids.resource_id(ctx.subscription, v.resource_group, "vault", v.vault)
  local actions = {}
  local function add(a) actions[#actions + 1] = plan.action(a) end

  if f.rg then
    add({ step = "resource_group", action = "reuse", name = v.resource_group, id = f.rg.id,
      description = "resource group " .. v.resource_group .. " exists", reason = "it exists" })
  else
    add({ step = "resource_group", action = "create", kind = "create_rg", name = v.resource_group, id = rgid,
      description = "create resource group " .. v.resource_group .. " in " .. location,
      request = "PUT " .. rgid, args = { location = location }, reason = "it does not exist" })
  end

  if f.ident then
    add({ step = "identity", action = "reuse", name = v.identity, id = f.ident.id,
      description = "user-assigned identity " .. v.identity .. " exists", reason = "it exists" })
  else
    local id = ids.resource_id(ctx.subscription, v.resource_group, "identity", v.identity)
    add({ step = "identity", action = "create", kind = "create_identity", name = v.identity, id = id,
      description = "create user-assigned identity " .. v.identity .. " in " .. location,
      request = "PUT " .. id, args = { location = location },
      reason = "the registry's encryption needs a user-assigned identity, and this one does not exist" })
  end

  local vault = f.vault
  local model = vault and common.model(vault) or (v.access or "policy")
  if not vault then
    add({ step = "vault", action = "create", kind = "create_vault", name = v.vault, model = model,
      id = vault_id,
      reason = "it does not exist (nor soft-deleted)",
      irreversible = true, detail = "soft delete (90 days) and purge protection (irreversible)",
      description = "create Key Vault " .. v.vault .. " (" .. (model == "rbac" and "Azure RBAC"
        or "access policies") .. ") with soft delete (90 days retention) and purge protection ("
        .. M.IRREVERSIBLE_PURGE_PROTECTION .. ")",
      request = "PUT " .. vault_id, args = { location = location, model = model } })
    if model == "rbac" then actions[#actions + 1] = caller_role(v.vault, vault_id) end
  elseif not rules.purge_protected(vault) then
    add({ step = "vault", action = "update", kind = "enable_purge_protection", name = v.vault, id = vault.id,
      irreversible = true, detail = "purge protection enabled (irreversible)",
      reason = "a registry's key vault needs purge protection (`enable_purge_protection = true`)",
      description = "enable purge protection on Key Vault " .. v.vault .. ": "
        .. M.IRREVERSIBLE_PURGE_PROTECTION,
      request = "PATCH " .. vault.id })
  else
    add({ step = "vault", action = "reuse", name = v.vault, id = vault.id, model = model,
      description = "Key Vault " .. v.vault .. " exists (" .. model .. "), with purge protection",
      reason = "it exists with purge protection" })
  end
  if f.key_unreadable then actions[#actions + 1] = caller_role(v.vault, vault_id) end

  -- the identity's use of the key: in a new access-policy vault's own PUT, else its own grant
  local ip = f.ident and f.ident.properties or {}
  if not vault and model == "policy" then
    add({ step = "access", action = "grant", kind = "with_vault", name = v.identity, model = "policy",
      detail = "access policy: keys get, wrapKey, unwrapKey (with the vault)",
      description = "give " .. v.identity
        .. " keys get, wrapKey, unwrapKey in the new vault's access policies "
        .. "(in its PUT)", request = "PUT " .. vault_id .. " (the vault's own request)", id = vault_id,
      reason = "the registry's identity needs the use of the key" })
  else
    local a
    a, err = ctx:access_action(vault or { name = v.vault,
      properties = { enableRbacAuthorization = model == "rbac" } },
      ip.principalId, ip.tenantId, v.identity)
    if not a then return nil, err end
    if not vault then   -- a new RBAC vault: its id is known, the assignment's name is not
      a.id, a.request = vault_id, "PUT " .. ids.role_assignment_id(vault_id)
    end
    actions[#actions + 1] = a
  end

  local vault_url = ids.vault_url(v.vault, ctx.p.cloud)
  if f.key then
    add({ step = "key", action = "reuse", name = v.key, id = f.key.key and f.key.key.kid,
      description = "key " .. v.key .. " exists (" .. tostring((f.key.key or {}).kty) .. ")",
      reason = "it exists" })
  else
    add({ step = "key", action = "create", kind = f.key_unreadable and "ensure_key" or "create_key",
      name = v.key,
      description = "create the " .. v.key_type .. " " .. v.key_size .. "-bit key " .. v.key .. " in vault "
        .. v.vault .. (f.key_unreadable and " unless it exists (it can be read once the caller has its role)"
          or ""),
      request = "POST " .. ids.key_url(vault_url, v.key, "create"), id = ids.key_url(vault_url, v.key),
      reason = f.key_unreadable and "the caller cannot read the vault's keys before its role"
        or "it does not exist" })
  end

  if f.reg then
    add({ step = "registry", action = "reuse", name = v.registry, id = f.reg.id,
      description = "registry " .. v.registry .. " exists with a customer-managed key",
      reason = "it exists" })
    -- forced on a revoked registry: the access is back, so the record goes
    local rec = rules.revocation(f)
    if rec then
      actions[#actions + 1] = common.clear_revocation_action(f.reg, rec,
        "`force = true`: setup re-opened the key path")
    end
  else
    local id = ids.resource_id(ctx.subscription, v.resource_group, "registry", v.registry)
    add({ step = "registry", action = "create", kind = "create_registry", name = v.registry, id = id,
      reason = "it does not exist; CMK can only be enabled when a registry is created",
      description = "create Premium registry " .. v.registry .. " in " .. location .. ", encrypted with the "
        .. (v.versionless and "versionless" or "versioned") .. " id of key " .. v.key .. " through identity "
        .. v.identity, request = "PUT " .. id,
      args = { location = location } })
  end
  return actions
end

-- ------------------------------------------------------------------ apply

local function vault_url_of(ctx, st, v)
  return (((st.vault.properties and st.vault.properties.vaultUri) or ids.vault_url(v.vault, ctx.p.cloud))
    :gsub("/+$", ""))
end

local function create_key(ctx, st, v)
  local key, err = ctx.keys:create({ vault_url = vault_url_of(ctx, st, v), name = v.key, kty = v.key_type,
    key_size = v.key_size })
  if not key then return nil, err end
  st.key = key
  return { id = key.key and key.key.kid }
end

--- The handlers (azcmk.playbook.plan.apply). state: v (the options), rg, ident, vault, key,
-- reg, caller; principal_id / tenant_id of the identity for its grant.
M.HANDLERS = {
  clear_revocation = common.REVOCATION.clear_revocation,
  create_rg = function(ctx, a, st)
    local rg, err = ctx.resource_groups:create_or_update({ name = a.name, location = a.args.location })
    if not rg then return nil, err end
    st.rg = rg
    return { id = rg.id }
  end,
  create_identity = function(ctx, a, st)
    local ident, err = ctx.identities:create({ resource_group = st.v.resource_group, name = a.name,
      location = a.args.location })
    if not ident then return nil, err end
    st.ident = ident
    local ip = ident.properties or {}
    st.principal_id, st.tenant_id = ip.principalId, ip.tenantId
    return { id = ident.id }
  end,
  create_vault = function(ctx, a, st)
    local ip, caller = st.ident.properties or {}, st.caller
    local tenant = ip.tenantId or caller.tenant_id
    local policies = {}
    if a.args.model == "policy" then
      policies = {
        { tenantId = tenant, objectId = caller.object_id,
          permissions = { keys = Vaults.ADMIN_KEY_PERMISSIONS } },
        { tenantId = tenant, objectId = ip.principalId, permissions = { keys = Vaults.CMK_KEY_PERMISSIONS } },
      }
    end
    ctx:say("creating Key Vault " .. a.name .. " with soft delete (90 days retention) and purge protection ("
      .. M.IRREVERSIBLE_PURGE_PROTECTION .. ")")
    local lo = ctx:lro("vault " .. a.name)
    local vault, err = ctx.vaults:create({ resource_group = st.v.resource_group, name = a.name,
      location = a.args.location, tenant_id = tenant, enable_rbac = a.args.model == "rbac",
      enable_purge_protection = true, tags = { [M.TAG] = "azcmk" }, access_policies = policies,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not vault then return nil, err end
    st.vault = vault
    return { id = vault.id, purge_protection = true }
  end,
  enable_purge_protection = function(ctx, a, st)
    ctx:say("enabling purge protection on " .. a.name .. ": " .. M.IRREVERSIBLE_PURGE_PROTECTION)
    local vault, err = ctx.vaults:enable_purge_protection({ id = a.id })
    if not vault then return nil, err end
    st.vault = vault
    return { purge_protection = true }
  end,
  -- the creator of an RBAC vault needs a data-plane role to create the key
  grant_caller = function(ctx, _, st)
    local ok, err = ctx.role_assignments:create({ scope = st.vault.id, principal_id = st.caller.object_id,
      role = "crypto_officer" })
    if not ok then return nil, err end
    return { principal_id = st.caller.object_id }
  end,
  -- a new access-policy vault has the identity's policy from its PUT (checked, else granted)
  with_vault = function(ctx, _, st)
    if not Vaults.policy_grants(st.vault, st.principal_id) then
      local ok, err = common.grant_write(ctx, st.vault, st.principal_id, st.tenant_id)
      if not ok then return nil, err end
    end
    return { principal_id = st.principal_id }
  end,
  grant = common.ACCESS.grant,
  create_key = function(ctx, _, st) return create_key(ctx, st, st.v) end,
  -- the key of an RBAC vault the caller could not read before its role: reuse or create
  ensure_key = function(ctx, _, st)
    local key, deleted, err = read_key(ctx, st.v, vault_url_of(ctx, st, st.v))
    if err then return nil, err end
    local denied = key_refusal(st.v, key, deleted)
    if denied then return nil, denied end
    if not key then return create_key(ctx, st, st.v) end
    st.key = key
    return { id = key.key and key.key.kid, action = "reused" }
  end,
  create_registry = function(ctx, a, st)
    local kid = st.key.key.kid
    local key_id = st.v.versionless and ids.parse_key_id(kid, ctx.p.cloud).versionless or kid
    local ip = st.ident.properties or {}
    ctx:say("creating Premium registry " .. a.name .. " encrypted with " .. key_id)
    local lo = ctx:lro("registry " .. a.name)
    local reg, err = ctx.registries:create({ resource_group = st.v.resource_group, name = a.name,
      location = a.args.location, sku = "Premium", identity_id = st.ident.id,
        identity_client_id = ip.clientId,
      key_id = key_id, progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not reg then return nil, err end
    st.reg = reg
    return { id = reg.id }
  end,
}

-- ------------------------------------------------------------------ setup

--- setup{resource_group, registry (or name), vault, key?, identity?, location?, access?,
-- versionless?, enable_purge_protection?, key_type?, key_size?, sku?, force? (re-run on a
-- revoked registry), dry_run?, subscription?,
-- pipeline?, progress?} -> result { changed, steps, plan, registry, key_id, identity, vault,
-- encryption } (dry_run: { dry_run, changes, plan, ... } and nothing written) or nil, err.
function M.setup(o)
  check(o, { resource_group = "string?", registry = "string?", name = "string?", vault = "string?",
    key = "string?", identity = "string?", location = "string?", access = "string?", versionless = "boolean?",
    enable_purge_protection = "boolean?", key_type = "string?", key_size = "number?", sku = "string?",
    dry_run = "boolean?", force = "boolean?" }, "azcmk.playbook.setup")
  local v, err = M.validate(o)
  if not v then return nil, err end
  local ctx
  ctx, err = common.context(o)
  if not ctx then return nil, err end
  local f
  f, err = M.read(ctx, v)
  if not f then return nil, err end
  local actions
  actions, err = M.plan(ctx, v, f)
  if not actions then return nil, err end
  if o.dry_run then
    return plan.dry_result(ctx, actions, { registry = { name = v.registry,
      resource_group = v.resource_group },
      vault = { name = v.vault }, identity = { name = v.identity }, key = v.key,
        versionless = v.versionless })
  end
  local st = { v = v, rg = f.rg, ident = f.ident, vault = f.vault, key = f.key, reg = f.reg,
    caller = f.caller }
  local ip = f.ident and f.ident.properties or {}
  st.principal_id, st.tenant_id = ip.principalId, ip.tenantId
  local ok
  ok, err = plan.apply(ctx, actions, M.HANDLERS, st)
  if not ok then return nil, err end

  local reg, vault, ident = st.reg, st.vault, st.ident
  ip = ident.properties or {}
  local kid = st.key.key.kid
  local enc = Registries.encryption(reg)
  local kvp = enc and enc.keyVaultProperties or {}
  local key_id = kvp.keyIdentifier or (v.versionless and ids.parse_key_id(kid,
    ctx.p.cloud).versionless or kid)
  return {
    changed = ctx.changed, steps = ctx.steps, warnings = ctx.warnings, plan = plan.view(actions),
    registry = { name = reg.name, id = reg.id, login_server = reg.properties and reg.properties.loginServer,
      resource_group = v.resource_group },
    vault = { name = v.vault, id = vault.id, uri = vault_url_of(ctx, st, v),
      access_model = common.model(vault) },
    identity = { name = ident.name, id = ident.id, client_id = ip.clientId, principal_id = ip.principalId },
    key_id = key_id, versioned_key_id = kvp.versionedKeyIdentifier or kid,
    versionless = (ids.parse_key_id(key_id, ctx.p.cloud) or {}).version == nil,
    encryption = enc,
  }
end

setmetatable(M, { __call = function(_, o) return M.setup(o) end })
return M
