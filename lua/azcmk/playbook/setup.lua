--- setup: create or reuse everything a CMK-encrypted registry needs (DESIGN.md "The job",
-- steps 1-4): resource group, user-assigned identity, Key Vault with soft delete and purge
-- protection, the identity's access to the key (access policy or RBAC, following the vault),
-- an RSA key, and a Premium registry encrypted with it (versioned or versionless key id).
--
-- Everything that can be known in advance is checked before the first write (names, SKU,
-- key type, an existing registry without CMK, a vault without purge protection, the access
-- model, a vault firewall, soft-deleted vault or key). Every step is "ensure": a second run
-- changes nothing, and a run after a failure resumes where the first stopped.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")
local Vaults = require("azcmk.client.vaults")
local Registries = require("azcmk.client.registries")
local check = common.check

local M = {}

M.IRREVERSIBLE_PURGE_PROTECTION = "enabling purge protection is irreversible: the vault and its keys can "
  .. "then never be purged before their retention period ends, and the vault's name stays taken while it is "
  .. "soft-deleted"

local function refuse(message, code, hint, extra)
  local f = { code = code, hint = hint }
  for k, v in pairs(extra or {}) do f[k] = v end
  return nil, errors.input(message, f)
end

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
      .. "be used later", "SystemIdentityAtCreation",
        "run setup with a user-assigned identity (--identity NAME), then "
      .. "`azcmk rotate --identity [system]` to switch to the system-assigned one")
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
      "NonPremiumSku",
      "use --sku Premium (or leave --sku out)")
  end
  local kty = (o.key_type or "RSA"):upper()
  if kty:match("^EC") then
    return refuse("Azure Container Registry supports only RSA or RSA-HSM keys, not " .. kty,
      "UnsupportedKeyType",
      "use an RSA key (--key-type RSA or RSA-HSM)")
  end
  if kty ~= "RSA" and kty ~= "RSA-HSM" then
    return refuse("unknown key type '" .. kty .. "'", "UnsupportedKeyType", "use RSA or RSA-HSM")
  end
  v.key_type = kty
  v.key_size = tonumber(o.key_size) or 2048
  if v.key_size ~= 2048 and v.key_size ~= 3072 and v.key_size ~= 4096 then
    return refuse("RSA key size must be 2048, 3072 or 4096, not " .. tostring(o.key_size), "InvalidKeySize",
      "use --key-size 2048, 3072 or 4096")
  end
  if o.access ~= nil and o.access ~= "policy" and o.access ~= "rbac" then
    return refuse("--access must be policy or rbac, not '" .. tostring(o.access) .. "'", "InvalidAccessModel",
      "use --access policy (vault access policy) or --access rbac (Azure RBAC)")
  end
  v.access = o.access
  v.versionless = o.versionless == true
  v.enable_purge_protection = o.enable_purge_protection == true
  return v
end

M.TAG = "created-by"

--- The existing vault a resource id names (v.vault_id, maybe in another subscription); setup
-- never creates a vault from an id. Refuses an absent (VaultNotFound) or soft-deleted
-- (VaultDeleted) one.
function M.vault_by_id(ctx, v)
  local vault, err = ctx.vaults:get({ id = v.vault_id })
  if vault or err then return vault, err end
  local deleted, derr = ctx.vaults:find_deleted({ name = v.vault, subscription = v.vault_subscription })
  if derr and not errors.is(derr, 404) then return nil, derr end
  local recover = "`azcmk recover --vault " .. v.vault .. " --subscription " .. v.vault_subscription .. "`"
  if deleted then
    return refuse("Key Vault '" .. v.vault .. "' is soft-deleted (its name stays taken)", "VaultDeleted",
      "recover it with " .. recover .. ", or pass another vault", { status = 404 })
  end
  return refuse("Key Vault " .. v.vault_id .. " does not exist; setup creates a vault only from a name, "
    .. "never from a resource id", "VaultNotFound",
    "check the subscription, resource group and name of the id (`az keyvault show --name " .. v.vault
      .. " --query id`), recover a soft-deleted vault with " .. recover .. ", or pass a plain vault name "
      .. "(--vault NAME) to have setup create it in resource group '" .. v.resource_group .. "'",
    { status = 404 })
end

--- The key of the setup (or nil when absent); refuses EC, disabled and soft-deleted keys.
function M.check_key(ctx, v)
  local vault_url = ids.vault_url(v.vault, ctx.p.cloud)
  local key, err = ctx.keys:get({ vault_url = vault_url, name = v.key })
  if err then return nil, err end
  if key then
    local kty = tostring((key.key or {}).kty)
    if not kty:match("^RSA") then
      return refuse("key '" .. v.key .. "' is a " .. kty
        .. " key; Azure Container Registry supports only RSA "
        .. "or RSA-HSM keys", "UnsupportedKeyType", "choose another key name (--key) for an RSA key")
    end
    if key.attributes and key.attributes.enabled == false then
      return refuse("key '" .. v.key .. "' is disabled", "KeyDisabled",
        "enable its current version in the vault, or choose another key name (--key)")
    end
    return key
  end
  local deleted, derr = ctx.keys:get_deleted({ vault_url = vault_url, name = v.key })
  if derr and not errors.is(derr, 403) then return nil, derr end
  if deleted then
    return refuse("key '" .. v.key .. "' is soft-deleted in vault '" .. v.vault .. "'", "KeyDeleted",
      "recover it with `azcmk recover --vault " .. v.vault .. " --key " .. v.key
        .. "`, or choose another key name")
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

--- setup{resource_group, registry (or name), vault, key?, identity?, location?, access?,
-- versionless?, enable_purge_protection?, key_type?, key_size?, sku?, subscription?, pipeline?,
-- progress?} -> result { changed, steps, registry, key_id, identity, vault, encryption } or
-- nil, err.
function M.setup(o)
  check(o, { resource_group = "string?", registry = "string?", name = "string?", vault = "string?",
    key = "string?", identity = "string?", location = "string?", access = "string?", versionless = "boolean?",
    enable_purge_protection = "boolean?", key_type = "string?", key_size = "number?", sku = "string?" },
    "azcmk.playbook.setup")
  local v, verr = M.validate(o)
  if not v then return nil, verr end
  local ctx, cerr = common.context(o)
  if not ctx then return nil, cerr end
  local rgname = v.resource_group

  -- ---------------------------------------------------------------- read and plan
  ctx:say("checking what exists")
  local rg, err = ctx.resource_groups:get({ name = rgname })
  if err then return nil, err end
  local location = v.location or (rg and rg.location)
  if not location then
    return refuse("resource group '" .. rgname .. "' does not exist and no location was given",
      "MissingArgument",
      "pass -l/--location (e.g. westus) to create it")
  end
  local ident
  if v.identity_kind == "name" then
    ident, err = ctx.identities:get({ resource_group = rgname, name = v.identity })
    if err then return nil, err end
  else
    local r
    r, err = ctx:resolve_identity(v.identity, { rg = rgname })
    if not r then return nil, err end
    ident = r.resource   -- resolve_identity read it (a resource id or client id names a user identity)
    v.identity = ident.name
  end

  local reg
  reg, err = ctx.registries:get({ resource_group = rgname, name = v.registry })
  if err then return nil, err end
  reg, err = M.settled(ctx, reg, rgname, v.registry)
  if err then return nil, err end
  if not reg then
    local elsewhere, ferr = ctx.resources:find({ type = Registries.TYPE, name = v.registry })
    if ferr then return nil, ferr end
    if elsewhere then
      return refuse("registry '" .. v.registry .. "' already exists in resource group '"
        .. tostring(elsewhere.resource_group) .. "'", "RegistryInOtherResourceGroup",
        "pass -g " .. tostring(elsewhere.resource_group) .. ", or choose another registry name")
    end
  else
    local sku = reg.sku and reg.sku.name or "?"
    if tostring(sku):lower() ~= "premium" then
      return refuse("registry '" .. v.registry .. "' exists with SKU " .. sku
        .. "; customer-managed keys need "
        .. "Premium and can only be enabled when a registry is created", "NonPremiumSku",
        "create a new Premium registry with CMK (another name) and import the images (az acr import)")
    end
    if not Registries.cmk_enabled(reg) then
      return refuse("registry '" .. v.registry .. "' exists without a customer-managed key; CMK can only be "
        .. "enabled when a registry is created", "CmkOnlyAtCreation",
        "create a new registry with CMK (another name) and import the images (az acr import)")
    end
  end

  local vault
  if v.vault_id then
    vault, err = M.vault_by_id(ctx, v)
    if not vault then return nil, err end
  else
    vault, err = ctx:find_vault(v.vault, rgname)
    if err then return nil, err end
  end
  local key, deferred_key_check
  if vault then
    local props = vault.properties or {}
    if props.enablePurgeProtection ~= true and not v.enable_purge_protection then
      return refuse("Key Vault '" .. v.vault
        .. "' has no purge protection, which a registry's key vault needs",
        "PurgeProtectionRequired", "re-run with --enable-purge-protection to switch it on (" ..
        M.IRREVERSIBLE_PURGE_PROTECTION .. ")")
    end
    local model = common.model(vault)
    if v.access and v.access ~= model then
      return refuse("Key Vault '" .. v.vault .. "' uses the " .. (model == "rbac" and "Azure RBAC"
        or "access policy")
        .. " permission model, not " .. v.access, "AccessModelMismatch",
        "leave --access out to follow the vault's model, or use --access " .. model)
    end
    local acls = props.networkAcls or {}
    if tostring(acls.defaultAction):lower() == "deny"
      or tostring(props.publicNetworkAccess):lower() == "disabled" then
      return refuse("Key Vault '" .. v.vault
        .. "' has its firewall on; a registry's user-assigned identity cannot "
        .. "pass it as a trusted service", "VaultFirewallBlocksUserIdentity",
        "create the registry with a vault whose firewall is off, then `azcmk rotate --identity [system]` and "
          .. "switch the firewall on with 'Allow trusted Microsoft services' (bypass AzureServices)")
    end
    key, err = M.check_key(ctx, v)
    if err then
      -- a run that stopped between creating an RBAC vault and the caller's role: the caller
      -- cannot read keys yet; finish that step first (only for vaults azcmk created)
      if errors.is(err, "ForbiddenByRbac") and model == "rbac" and (vault.tags or {})[M.TAG] == "azcmk" then
        deferred_key_check = true
      else
        return nil, err
      end
    end
  else
    local deleted, derr = ctx.vaults:find_deleted({ name = v.vault })
    if derr and not errors.is(derr, 404) then return nil, derr end
    if deleted then
      return refuse("Key Vault '" .. v.vault .. "' is soft-deleted (its name stays taken)", "VaultDeleted",
        "recover it with `azcmk recover --vault " .. v.vault .. "`, or choose another vault name")
    end
  end
  if reg and ident then
    -- an existing CMK registry: nothing to create; report what it uses
    local enc = reg.properties.encryption
    local kid = enc.keyVaultProperties.keyIdentifier
    local want = ids.vault_url(v.vault, ctx.p.cloud) .. "/keys/" .. v.key
    if type(kid) ~= "string" or kid:lower():sub(1, #want) ~= want:lower() then
      ctx:warn("registry '" .. v.registry .. "' already uses key " .. tostring(kid)
        .. "; setup leaves it as it is "
        .. "(use `azcmk rotate` to change it)")
    end
  end

  -- ---------------------------------------------------------------- writes, each "ensure"
  if rg then
    ctx:step("resource_group", "reused", { name = rgname, id = rg.id })
  else
    rg, err = ctx.resource_groups:create_or_update({ name = rgname, location = location })
    if not rg then return nil, err end
    ctx:step("resource_group", "created", { name = rgname, id = rg.id })
  end

  if ident then
    ctx:step("identity", "reused", { name = v.identity, id = ident.id })
  else
    ident, err = ctx.identities:create({ resource_group = rgname, name = v.identity, location = location })
    if not ident then return nil, err end
    ctx:step("identity", "created", { name = v.identity, id = ident.id })
  end
  local ip = ident.properties or {}

  local caller, created_with_policy
  if not vault then
    caller, err = ctx:caller()
    if not caller then return nil, err end
    local model = v.access or "policy"
    local policies = {}
    if model == "policy" then
      policies = {
        { tenantId = ip.tenantId or caller.tenant_id, objectId = caller.object_id,
          permissions = { keys = Vaults.ADMIN_KEY_PERMISSIONS } },
        { tenantId = ip.tenantId or caller.tenant_id, objectId = ip.principalId,
          permissions = { keys = Vaults.CMK_KEY_PERMISSIONS } },
      }
    end
    ctx:say("creating Key Vault " .. v.vault
      .. " with soft delete (90 days retention) and purge protection (" ..
      M.IRREVERSIBLE_PURGE_PROTECTION .. ")")
    local lo = ctx:lro("vault " .. v.vault)
    vault, err = ctx.vaults:create({ resource_group = rgname, name = v.vault, location = location,
      tenant_id = ip.tenantId or caller.tenant_id, enable_rbac = model == "rbac",
        enable_purge_protection = true, tags = { [M.TAG] = "azcmk" },
      access_policies = policies, progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not vault then return nil, err end
    ctx:step("vault", "created", { name = v.vault, id = vault.id, model = model, purge_protection = true })
    created_with_policy = model == "policy"
    if model == "rbac" then
      -- the creator needs a data-plane role to create the key
      local ok, rerr = ctx.role_assignments:create({ scope = vault.id, principal_id = caller.object_id,
        role = "crypto_officer", principal_type = nil })
      if not ok then return nil, rerr end
      ctx:step("access", "granted", { model = "rbac", principal_id = caller.object_id, name = "caller",
        detail = "role Key Vault Crypto Officer at the vault (to create the key)" })
    end
  else
    if (vault.properties or {}).enablePurgeProtection ~= true then
      ctx:say("enabling purge protection on " .. v.vault .. ": " .. M.IRREVERSIBLE_PURGE_PROTECTION)
      vault, err = ctx.vaults:enable_purge_protection({ id = vault.id })
      if not vault then return nil, err end
      ctx:step("vault", "updated", { name = v.vault, id = vault.id, purge_protection = true,
        detail = "purge protection enabled (irreversible)" })
    else
      ctx:step("vault", "reused", { name = v.vault, id = vault.id, model = common.model(vault) })
    end
    if deferred_key_check then
      caller, err = ctx:caller()
      if not caller then return nil, err end
      local ok, rerr = ctx.role_assignments:create({ scope = vault.id, principal_id = caller.object_id,
        role = "crypto_officer" })
      if not ok then return nil, rerr end
      ctx:step("access", "granted", { model = "rbac", principal_id = caller.object_id, name = "caller",
        detail = "role Key Vault Crypto Officer at the vault (to create the key)" })
      key, err = M.check_key(ctx, v)
      if err then return nil, err end
    end
  end

  if created_with_policy and Vaults.policy_grants(vault, ip.principalId) then
    ctx:step("access", "granted", { model = "policy", principal_id = ip.principalId, name = v.identity,
      detail = "access policy: keys get, wrapKey, unwrapKey (with the vault)" })
  else
    local ok
    ok, err = ctx:grant(vault, ip.principalId, ip.tenantId, v.identity)
    if not ok then return nil, err end
  end

  local vault_url = (vault.properties and vault.properties.vaultUri or ids.vault_url(v.vault, ctx.p.cloud))
    :gsub("/+$", "")
  if key then
    ctx:step("key", "reused", { name = v.key, id = key.key and key.key.kid })
  else
    key, err = ctx.keys:create({ vault_url = vault_url, name = v.key, kty = v.key_type,
      key_size = v.key_size })
    if not key then return nil, err end
    ctx:step("key", "created", { name = v.key, id = key.key and key.key.kid })
  end
  local kid = key.key.kid
  local parsed = ids.parse_key_id(kid, ctx.p.cloud)
  local key_id = v.versionless and parsed.versionless or kid

  if reg then
    ctx:step("registry", "reused", { name = v.registry, id = reg.id })
  else
    ctx:say("creating Premium registry " .. v.registry .. " encrypted with " .. key_id)
    local lo = ctx:lro("registry " .. v.registry)
    reg, err = ctx.registries:create({ resource_group = rgname, name = v.registry, location = location,
      sku = "Premium", identity_id = ident.id, identity_client_id = ip.clientId, key_id = key_id,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not reg then return nil, err end
    ctx:step("registry", "created", { name = v.registry, id = reg.id })
  end

  local enc = Registries.encryption(reg)
  return {
    changed = ctx.changed,
    steps = ctx.steps,
    warnings = ctx.warnings,
    registry = { name = reg.name, id = reg.id, login_server = reg.properties and reg.properties.loginServer,
      resource_group = rgname },
    vault = { name = v.vault, id = vault.id, uri = vault_url, access_model = common.model(vault) },
    identity = { name = ident.name, id = ident.id, client_id = ip.clientId, principal_id = ip.principalId },
    key_id = enc and enc.keyVaultProperties and enc.keyVaultProperties.keyIdentifier or key_id,
    versioned_key_id = enc and enc.keyVaultProperties and enc.keyVaultProperties.versionedKeyIdentifier
      or kid,
    versionless = (enc and enc.keyVaultProperties and enc.keyVaultProperties.keyIdentifier
      or key_id):match("/keys/[^/]+/?$") ~= nil,
    encryption = enc,
  }
end

setmetatable(M, { __call = function(_, o) return M.setup(o) end })
return M
