--- rotate: `az acr encryption rotate-key`, checked. Rotate to a new version of the current
-- key (default), to another key (key = name, created when absent), or to a given key id
-- (key_id); with the current identity, another user-assigned identity, or the registry's
-- system-assigned identity ("[system]": enabled first, then given access to the key). After
-- the PATCH the registry is read back and must report the expected version.
--
-- Read (registry, identity, target vault and key), plan (identity, access, key, the PATCH,
-- the verification), apply (azcmk.playbook.plan). dry_run = true returns the plan.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")
local plan = require("azcmk.playbook.plan")
local identity = require("azcmk.playbook.identity")
local Registries = require("azcmk.client.registries")
local Keys = require("azcmk.client.keys")
local rules = require("azcmk.state.rules")
local check = common.check

local M = {}

local function refuse(message, code, param, hint)
  return nil, errors.input(message, { code = code, param = param, hint = hint })
end

-- The options that can be refused before anything is read.
local function validate(o)
  if o.disable then
    return refuse("encryption with a customer-managed key cannot be disabled once a registry has it",
      "CmkCannotBeDisabled", "disable", "to stop using the key, create a new registry without CMK and import "
        .. "the images (az acr import); to change the key, rotate to another key instead")
  end
  if o.key_id and (o.key or o.vault) then
    return refuse("pass either a key id (`key_id`) or a key name (`key`, `vault`), not both",
      "ConflictingArguments", "key_id", "use `key_id` alone, or `key` (and `vault`)")
  end
  if o.key then
    local ok, kerr = ids.check_key_name(o.key)
    if not ok then return nil, kerr end
  end
  if o.vault then
    local ok, verr = ids.check_vault_name(o.vault)
    if not ok then return nil, verr end
  end
  if o.identity then
    local _, ierr = ids.parse_identity(o.identity)
    if ierr then return nil, ierr end
  end
  return true
end

-- The identity the rotation uses: the given one, else the encryption's current one.
local function which_identity(ctx, o, reg, rg, enc)
  local kvp_ident = tostring(enc.keyVaultProperties.identity or "")
  if o.identity then return ctx:resolve_identity(o.identity, { rg = rg, registry = reg }) end
  if kvp_ident:lower() == "system" then return { kind = "system" } end
  local id, v = Registries.user_identity(reg, kvp_ident)
  if not id then
    return refuse("the registry's encryption identity " .. kvp_ident .. " is not attached to it",
      "IdentityNotAssigned", "identity", "re-attach it first (`identity_assign{registry = \"" .. reg.name
        .. "\", identity = \"<its resource id>\"}`), then rotate")
  end
  return { kind = "user", id = id, name = tostring(id):match("[^/]+$"), client_id = v.clientId,
    principal_id = v.principalId }
end

--- read(ctx, o) -> facts { reg, rg, revoked_tag, enc (before), current (parsed key id), given (parsed
-- key_id), ident, target {vault, vault_url, name, versionless}, vault, existing (key bundle) }
-- or nil, err (what cannot be read, or a refusal that needs no more than a read).
function M.read(ctx, o)
  local f = {}
  local err
  if o.key_id then
    f.given, err = ids.parse_key_id(o.key_id, ctx.p.cloud)
    if not f.given then return nil, err end
  end
  local facts
  f.reg, f.rg, facts = ctx:find_registry(o.registry or o.name, o.resource_group)
  if not f.reg then return nil, f.rg end
  f.revoked_tag = facts.revoked_tag
  f.enc, f.current = ctx:cmk_of(f.reg, "key rotation")
  if not f.enc then return nil, f.current end
  f.ident, err = which_identity(ctx, o, f.reg, f.rg, f.enc)
  if not f.ident then return nil, err end
  local target = f.given or { vault = o.vault or f.current.vault, name = o.key or f.current.name }
  if not f.given then
    target.vault_url = ids.vault_url(target.vault, ctx.p.cloud)
    target.versionless = ids.key_url(target.vault_url, target.name)
  end
  f.target = target
  f.vault, err = ctx:find_vault(target.vault, f.rg, true)
  if err then return nil, err end
  if f.vault then
    f.existing, err = ctx.keys:get({ vault_url = target.vault_url, name = target.name,
      version = f.given and f.given.version })
    if err then return nil, err end
  end
  return f
end

--- plan(ctx, f, o) -> actions, or nil, err (a refusal).
function M.plan(ctx, f, o)
  -- a revoked registry stays revoked: a rotation would give its identity the key again
  local revoked = common.revoked_refusal(f, f.reg.name, "the rotation", o.force)
  if revoked then return nil, revoked end
  local target, vault = f.target, f.vault
  if not vault then
    return refuse("Key Vault '" .. target.vault .. "' was not found in subscription " .. ctx.subscription
      .. " nor in another subscription the caller sees", "VaultNotFound", o.key_id and "key_id" or "vault",
      "check the vault name; a soft-deleted vault can be recovered with `recover{vault = \"" .. target.vault
        .. "\"}`")
  end
  if not rules.purge_protected(vault) then
    return refuse("Key Vault '" .. target.vault .. "' has no purge protection, which a registry's key vault "
      .. "needs", "PurgeProtectionRequired", o.key_id and "key_id" or "vault", "switch it on first "
      .. "(irreversible): run setup for this vault with `enable_purge_protection = true`, or "
      .. "`az keyvault update --enable-purge-protection`")
  end
  local existing = f.existing
  if existing then
    local kty = tostring((existing.key or {}).kty)
    if not rules.supported_kty(kty) then
      return refuse("key '" .. target.name .. "' is a " .. kty .. " key; Azure Container Registry supports "
        .. "only RSA or RSA-HSM keys", "UnsupportedKeyType", o.key_id and "key_id" or "key",
        "rotate to an RSA key")
    end
  elseif f.given or not (o.key or o.vault) then
    return refuse("the key " .. (f.given and f.given.id or target.versionless) .. " does not exist",
      "KeyNotFound", f.given and "key_id" or "registry", "check the key id; a deleted key can be recovered "
        .. "with `recover{vault = \"" .. target.vault .. "\", key = \"" .. target.name .. "\"}`")
  end
  local ident = f.ident
  local blocks = rules.network_blocks(vault, ident.kind)
  if blocks == "user_identity_blocked" then
    return refuse("Key Vault '" .. target.vault .. "' has its firewall on; a user-assigned identity cannot "
      .. "pass it as a trusted service", "VaultFirewallBlocksUserIdentity", "identity",
      "rotate with `identity = [system]` (and keep 'Allow trusted Microsoft services' on)")
  elseif blocks == "no_trusted_services" then
    return refuse("Key Vault '" .. target.vault .. "' has its firewall on without 'Allow trusted Microsoft "
      .. "services'", "VaultFirewallNoTrustedServices", "vault",
      "set the vault's network bypass to AzureServices, then rotate again")
  end

  local actions = {}
  local reg = f.reg
  -- 1. the identity: enabled or attached first
  local ia = identity.action(reg, ident)
  actions[#actions + 1] = ia
  if ident.kind == "system" and not ia.kind then
    ident.principal_id = reg.identity.principalId
    ident.tenant_id = reg.identity.tenantId
  end
  -- 2. its access to the key (a [system] identity enabled by step 1 has no principal yet)
  local label = ident.kind == "system" and "[system]" or (ident.name or ident.client_id)
  local aa, err = ctx:access_action(vault, ident.principal_id, ident.tenant_id, label)
  if not aa then return nil, err end
  actions[#actions + 1] = aa
  -- 3. the key version
  local versionless = o.versionless
  if versionless == nil then
    if f.given then versionless = f.given.version == nil else versionless = f.current.version == nil end
  end
  local ka
  if f.given then
    ka = plan.action({ step = "key", action = "reuse", name = target.name, id = f.given.versioned
      or existing.key.kid, description = "use the given key id " .. f.given.id,
      reason = "a key id was given" })
  elseif existing and (o.new_version == false or ((o.key or o.vault) and not o.new_version)) then
    ka = plan.action({ step = "key", action = "reuse", name = target.name, id = existing.key.kid,
      description = "use the current version of key " .. target.name,
      reason = "no new version was asked for" })
  else
    ka = plan.action({ step = "key", action = "create", done = existing and "new version" or "created",
      kind = "create_key", name = target.name,
      description = (existing and "create a new version of key " or "create the RSA key ") .. target.name
        .. " in vault " .. target.vault,
      request = "POST " .. ids.key_url(target.vault_url, target.name, "create"),
      id = target.versionless, reason = existing and "a rotation to the current key makes a new version"
        or "the key does not exist", args = { vault_url = target.vault_url, kty = (existing and existing.key
        and existing.key.kty) or "RSA", versionless = target.versionless,
        in_use = f.enc.keyVaultProperties.versionedKeyIdentifier } })
  end
  actions[#actions + 1] = ka
  -- 4. the PATCH of the encryption, 5. the read-back that verifies it
  local identity_value = ident.kind == "system" and "system" or ident.client_id
  local shown = ka.id and ids.parse_key_id(ka.id, ctx.p.cloud)
  local key_text = versionless and target.versionless or (shown and shown.versioned
    or ("the new version of " .. target.versionless))
  actions[#actions + 1] = plan.action({ step = "registry", action = "rotate", kind = "set_encryption",
    name = reg.name, id = reg.id, reason = "the rotation itself",
    description = "rotate registry " .. reg.name .. " to " .. key_text .. " with identity "
      .. (identity_value or "[system]") .. " (PATCH encryption)", request = "PATCH " .. reg.id,
    args = { versionless = versionless, identity = identity_value, kid = ka.id } })
  actions[#actions + 1] = plan.action({ step = "verify", action = "check", kind = "verify", name = reg.name,
    id = reg.id, reason = "a write is read back, never guessed",
    description = "read registry " .. reg.name .. " back: it must report the new key version" })
  -- 6. forced on a revoked registry: the key path is open again, so the record goes
  local rec = rules.revocation(f)
  if rec then
    actions[#actions + 1] = common.clear_revocation_action(reg, rec,
      "`force = true`: the rotation re-opened the key path")
  end
  return actions
end

--- The handlers (azcmk.playbook.plan.apply): the identity's and the access's, and the key,
-- PATCH and verification. state: reg, kid, after.
M.HANDLERS = {
  enable_system = identity.HANDLERS.enable_system,
  assign_user = identity.HANDLERS.assign_user,
  grant = common.ACCESS.grant,
  clear_revocation = common.REVOCATION.clear_revocation,
  create_key = function(ctx, a, st)
    -- once: a re-run of this rotation (same job, or the registry still on the same version)
    -- reuses the version an interrupted run made instead of making another
    local kb, err = ctx.keys:create({ vault_url = a.args.vault_url, name = a.name, kty = a.args.kty,
      once = Keys.intent("rotate", st.reg.id, a.args.versionless, ctx.p.operation_id or a.args.in_use) })
    if not kb then return nil, err end
    st.kid = kb.key.kid
    return { id = st.kid, action = kb.reused and "reused (made by an earlier run)" or nil }
  end,
  set_encryption = function(ctx, a, st)
    local kid = st.kid or a.args.kid
    local parsed = ids.parse_key_id(kid, ctx.p.cloud)
    local key_id = a.args.versionless and parsed.versionless or parsed.versioned
    local identity_value = a.args.identity or "system"
    st.expected = parsed
    ctx:say("rotating registry " .. st.reg.name .. " to " .. key_id)
    local lo = ctx:lro("registry " .. st.reg.name .. " encryption")
    local after, err = ctx.registries:set_encryption({ id = st.reg.id, key_id = key_id,
      identity = identity_value,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not after then return nil, err end
    st.after, st.identity_value = after, identity_value
    return { key_id = key_id, identity = identity_value }
  end,
  -- `after` is the registry as read back once the operation ended, so no second GET
  verify = function(_, _, st)
    local aenc = Registries.encryption(st.after) or {}
    local akvp = aenc.keyVaultProperties or {}
    if type(akvp.versionedKeyIdentifier) ~= "string"
      or akvp.versionedKeyIdentifier:lower() ~= st.expected.versioned:lower() then
      return nil, errors.new("azure", { code = "RotationNotApplied",
        message = "the registry reports key version "
          .. tostring(Keys.version_of(akvp.versionedKeyIdentifier))
          .. " after the rotation, expected " .. tostring(st.expected.version),
        hint = "check the identity's access to the key (`doctor{registry = \"" .. st.reg.name
          .. "\"}`), then "
          .. "rotate again", before = st.before, after = aenc })
    end
    return { versioned_key_id = akvp.versionedKeyIdentifier }
  end,
}

--- rotate{registry (or name), resource_group?, key_id? | key? (name in vault, or the current
-- vault) | new_version? (default when neither), vault?, identity?, versionless?, force?,
-- dry_run?, pipeline?, subscription?, progress?} -> result { changed, steps, plan, before, after, key_id,
-- versioned_key_id, identity, verified } or nil, err.
function M.rotate(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", key_id = "string?",
    key = "string?", vault = "string?", identity = "string?", versionless = "boolean?",
    new_version = "boolean?", disable = "boolean?", dry_run = "boolean?", force = "boolean?" },
    "azcmk.playbook.rotate")
  local ok, err = validate(o)
  if not ok then return nil, err end
  local ctx
  ctx, err = common.context(o)
  if not ctx then return nil, err end
  local f
  f, err = M.read(ctx, o)
  if not f then return nil, err end
  local actions
  actions, err = M.plan(ctx, f, o)
  if not actions then return nil, err end
  local registry = { name = f.reg.name, id = f.reg.id, resource_group = f.rg }
  if o.dry_run then return plan.dry_result(ctx, actions, { registry = registry, before = f.enc }) end
  local st = { reg = f.reg, before = f.enc }
  ok, err = plan.apply(ctx, actions, M.HANDLERS, st)
  if not ok then return nil, err end
  local aenc = Registries.encryption(st.after) or {}
  local akvp = aenc.keyVaultProperties or {}
  return {
    changed = true, steps = ctx.steps, warnings = ctx.warnings, plan = plan.view(actions),
    registry = { name = st.after.name, id = st.after.id, resource_group = f.rg },
    before = f.enc, after = aenc, encryption = aenc,
    key_id = akvp.keyIdentifier, versioned_key_id = akvp.versionedKeyIdentifier,
    key_version_in_use = Keys.version_of(akvp.versionedKeyIdentifier),
    auto_rotation = akvp.keyRotationEnabled,
    identity = st.identity_value, verified = true,
  }
end

setmetatable(M, { __call = function(_, o) return M.rotate(o) end })
return M
