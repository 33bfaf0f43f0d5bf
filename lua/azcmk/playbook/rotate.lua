--- rotate: `az acr encryption rotate-key`, checked. Rotate to a new version of the current
-- key (default), to another key (key = name, created when absent), or to a given key id
-- (key_id); with the current identity, another user-assigned identity, or the registry's
-- system-assigned identity ("[system]": enabled first, then given access to the key). After
-- the PATCH the registry is read back and must report the expected version.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")
local Registries = require("azcmk.client.registries")
local Keys = require("azcmk.client.keys")
local check = common.check

local M = {}

--- rotate{registry (or name), resource_group?, key_id? | key? (name in vault, or the current
-- vault) | new_version? (default when neither), vault?, identity?, versionless?, pipeline?,
-- subscription?, progress?} -> result { changed, steps, before, after, key_id,
-- versioned_key_id, identity, verified } or nil, err.
function M.rotate(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", key_id = "string?",
    key = "string?", vault = "string?", identity = "string?", versionless = "boolean?",
    new_version = "boolean?", disable = "boolean?" }, "azcmk.playbook.rotate")
  if o.disable then
    return nil,
      errors.input("encryption with a customer-managed key cannot be disabled once a registry has it",
      { code = "CmkCannotBeDisabled",
        hint = "to stop using the key, create a new registry without CMK and import "
        .. "the images (az acr import); to change the key, rotate to another key instead" })
  end
  if o.key_id and (o.key or o.vault) then
    return nil,
      errors.input("pass either a key id (--key-encryption-key) or a key name (--key/--vault), not both",
      { code = "ConflictingArguments", hint = "use --key-encryption-key alone, or --key [--vault]" })
  end
  if o.key then
    local ok, kerr = ids.check_key_name(o.key)
    if not ok then return nil, kerr end
  end
  if o.vault then
    local ok, verr = ids.check_vault_name(o.vault)
    if not ok then return nil, verr end
  end
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local given
  if o.key_id then
    given, err = ids.parse_key_id(o.key_id, ctx.p.cloud)
    if not given then return nil, err end
  end
  if o.identity then
    local _, ierr = ids.parse_identity(o.identity)
    if ierr then return nil, ierr end
  end
  local reg, rg = ctx:find_registry(o.registry or o.name, o.resource_group)
  if not reg then return nil, rg end
  local enc, current = ctx:cmk_of(reg, "key rotation")
  if not enc then return nil, current end
  local before = enc

  -- which identity
  local ident
  local kvp_ident = tostring(enc.keyVaultProperties.identity or "")
  if o.identity then
    ident, err = ctx:resolve_identity(o.identity, { rg = rg, registry = reg })
    if not ident then return nil, err end
  elseif kvp_ident:lower() == "system" then
    ident = { kind = "system" }
  else
    local id, v = Registries.user_identity(reg, kvp_ident)
    if not id then
      return nil, errors.input("the registry's encryption identity " .. kvp_ident .. " is not attached to it",
        { code = "IdentityNotAssigned", hint = "re-attach it first: azcmk identity assign -n " .. reg.name ..
          " --identity <its resource id>, then rotate" })
    end
    ident = { kind = "user", id = id, name = tostring(id):match("[^/]+$"), client_id = v.clientId,
      principal_id = v.principalId }
  end

  -- which key: target vault and name
  local target = given or { vault = o.vault or current.vault, name = o.key or current.name }
  if not given then
    target.vault_url = ids.vault_url(target.vault, ctx.p.cloud)
    target.versionless = target.vault_url .. "/keys/" .. target.name
  end
  local vault, verr = ctx:find_vault(target.vault, rg, true)
  if verr then return nil, verr end
  if not vault then
    return nil, errors.input("Key Vault '" .. target.vault .. "' was not found in subscription "
      .. ctx.subscription .. " nor in another subscription the caller sees",
      { code = "VaultNotFound", hint = "check the vault name; a soft-deleted vault can be recovered with "
        .. "`azcmk recover --vault " .. target.vault .. "`" })
  end
  if (vault.properties or {}).enablePurgeProtection ~= true then
    return nil, errors.input("Key Vault '" .. target.vault
      .. "' has no purge protection, which a registry's key "
      .. "vault needs", { code = "PurgeProtectionRequired", hint = "switch it on first (irreversible): "
      .. "azcmk setup ... --enable-purge-protection, or az keyvault update --enable-purge-protection" })
  end
  local existing
  existing, err = ctx.keys:get({ vault_url = target.vault_url, name = target.name, version = given
    and given.version })
  if err then return nil, err end
  if existing then
    local kty = tostring((existing.key or {}).kty)
    if not kty:match("^RSA") then
      return nil, errors.input("key '" .. target.name .. "' is a " .. kty .. " key; Azure Container Registry "
        .. "supports only RSA or RSA-HSM keys", { code = "UnsupportedKeyType",
          hint = "rotate to an RSA key" })
    end
  elseif given or not (o.key or o.vault) then
    return nil, errors.input("the key " .. (given and given.id or target.versionless) .. " does not exist",
      { code = "KeyNotFound", hint = "check the key id; a deleted key can be recovered with `azcmk recover "
        .. "--vault " .. target.vault .. " --key " .. target.name .. "`" })
  end
  local acls = (vault.properties or {}).networkAcls or {}
  if ident.kind == "user" and tostring(acls.defaultAction):lower() == "deny" then
    return nil, errors.input("Key Vault '" .. target.vault
      .. "' has its firewall on; a user-assigned identity "
      .. "cannot pass it as a trusted service", { code = "VaultFirewallBlocksUserIdentity",
      hint = "rotate with --identity [system] (and keep 'Allow trusted Microsoft services' on)" })
  end
  if ident.kind == "system" and tostring(acls.defaultAction):lower() == "deny"
    and tostring(acls.bypass):lower() ~= "azureservices" then
    return nil, errors.input("Key Vault '" .. target.vault .. "' has its firewall on without 'Allow trusted "
      .. "Microsoft services'", { code = "VaultFirewallNoTrustedServices",
      hint = "set the vault's network bypass to AzureServices, then rotate again" })
  end

  -- writes: identity, access, key version, PATCH
  if ident.kind == "system" then
    local principal = reg.identity and reg.identity.principalId
    local t = tostring(reg.identity and reg.identity.type or ""):lower()
    if not t:find("systemassigned", 1, true) or not principal then
      local lo = ctx:lro("registry " .. reg.name .. " identity")
      reg, err = ctx.registries:assign_identity({ id = reg.id, system = true, registry = reg,
        progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
      if not reg then return nil, err end
      principal = reg.identity and reg.identity.principalId
      ctx:step("identity", "enabled", { name = "[system]", principal_id = principal })
    else
      ctx:step("identity", "reused", { name = "[system]", principal_id = principal })
    end
    ident.principal_id = principal
    ident.tenant_id = reg.identity and reg.identity.tenantId
  elseif not Registries.user_identity(reg, ident.client_id) then
    local lo = ctx:lro("registry " .. reg.name .. " identity")
    reg, err = ctx.registries:assign_identity({ id = reg.id, identity_id = ident.id, registry = reg,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not reg then return nil, err end
    ctx:step("identity", "assigned", { name = ident.name or ident.id, id = ident.id })
  end
  local ok
  ok, err = ctx:grant(vault, ident.principal_id, ident.tenant_id, ident.kind == "system" and "[system]"
    or (ident.name or ident.client_id))
  if not ok then return nil, err end

  local kid, kaction
  if given then
    kid, kaction = given.versioned or existing.key.kid, "reused"
  elseif existing and (o.new_version == false or ((o.key or o.vault) and not o.new_version)) then
    kid, kaction = existing.key.kid, "reused"
  else
    local kb
    kb, err = ctx.keys:create({ vault_url = target.vault_url, name = target.name,
      kty = (existing and existing.key and existing.key.kty) or "RSA" })
    if not kb then return nil, err end
    kid, kaction = kb.key.kid, existing and "new version" or "created"
  end
  ctx:step("key", kaction, { name = target.name, id = kid })
  local parsed = ids.parse_key_id(kid, ctx.p.cloud)
  local versionless = o.versionless
  if versionless == nil then
    if given then versionless = given.version == nil
    else versionless = current.version == nil end
  end
  local key_id = versionless and parsed.versionless or parsed.versioned
  local identity_value = ident.kind == "system" and "system" or ident.client_id

  ctx:say("rotating registry " .. reg.name .. " to " .. key_id)
  local lo = ctx:lro("registry " .. reg.name .. " encryption")
  local after
  after, err = ctx.registries:set_encryption({ id = reg.id, key_id = key_id, identity = identity_value,
    progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
  if not after then return nil, err end
  ctx:step("registry", "rotated", { name = reg.name, key_id = key_id, identity = identity_value })

  -- verify: the registry must report the version we expect (`after` is the registry as read
  -- back once the operation ended, so no second GET)
  local aenc = Registries.encryption(after) or {}
  local akvp = aenc.keyVaultProperties or {}
  local expected = parsed.versioned
  local verified = type(akvp.versionedKeyIdentifier) == "string"
    and akvp.versionedKeyIdentifier:lower() == expected:lower()
  if not verified then
    return nil, errors.new("azure", { code = "RotationNotApplied",
      message = "the registry reports key version " .. tostring(Keys.version_of(akvp.versionedKeyIdentifier))
        .. " after the rotation, expected " .. tostring(parsed.version),
      hint = "check the identity's access to the key (azcmk doctor), then run rotate again",
      before = before, after = aenc })
  end
  ctx:step("verify", "checked", { name = reg.name, versioned_key_id = akvp.versionedKeyIdentifier })
  return {
    changed = true, steps = ctx.steps, warnings = ctx.warnings,
    registry = { name = after.name, id = after.id, resource_group = rg },
    before = before, after = aenc, encryption = aenc,
    key_id = akvp.keyIdentifier, versioned_key_id = akvp.versionedKeyIdentifier,
    key_version_in_use = Keys.version_of(akvp.versionedKeyIdentifier),
      auto_rotation = akvp.keyRotationEnabled,
    identity = identity_value, verified = true,
  }
end

setmetatable(M, { __call = function(_, o) return M.rotate(o) end })
return M
