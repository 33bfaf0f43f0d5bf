--- revoke / restore: remove, or give back, the registry identity's access to its key - the
-- article's "Revoke key" (az keyvault delete-policy, or deleting the role assignment on an
-- RBAC vault). Revocation makes ALL registry data inaccessible until access returns, so
-- revoke refuses to act without yes = true and then only reports its plan.
local errors = require("azcmk.errors")
local common = require("azcmk.playbook.common")
local Registries = require("azcmk.client.registries")
local check = common.check

local M = {}

-- The registry, its encryption identity's principal, and the key's vault.
local function locate(ctx, o, verb)
  local reg, rg = ctx:find_registry(o.registry or o.name, o.resource_group)
  if not reg then return nil, rg end
  local enc, parsed = ctx:cmk_of(reg, verb)
  if not enc then return nil, parsed end
  local kvp = enc.keyVaultProperties
  local ident = tostring(kvp.identity or "")
  local who
  if ident:lower() == "system" then
    local pid = reg.identity and reg.identity.principalId
    if not pid then
      return nil,
        errors.input("the registry's encryption uses its system-assigned identity, which is not enabled",
        { code = "IdentityNotAssigned", hint = "azcmk identity assign -n " .. reg.name
          .. " --identity [system]" })
    end
    who = { kind = "system", principal_id = pid, tenant_id = reg.identity.tenantId, label = "[system]" }
  else
    local id, v = Registries.user_identity(reg, ident)
    if not id then
      -- detached identity: look it up in the subscription by client id
      local found, ferr = ctx.identities:find({ client_id = ident })
      if ferr then return nil, ferr end
      if not found then
        return nil, errors.input("the encryption identity " .. ident
          .. " is neither attached to the registry nor "
          .. "found in the subscription", { code = "IdentityNotFound",
          hint = "re-attach the identity (azcmk identity assign) or rotate to another one" })
      end
      id, v = found.id, found.properties
    end
    who = { kind = "user", id = id, client_id = v.clientId, principal_id = v.principalId,
      label = id:match("[^/]+$") }
  end
  local vault, verr = ctx:find_vault(parsed.vault, rg, true)
  if verr then return nil, verr end
  if not vault then
    return nil, errors.new("azure", { status = 404, code = "VaultNotFound",
      message = "Key Vault '" .. parsed.vault .. "' of the registry's key was not found in subscription "
        .. ctx.subscription .. " nor in another subscription the caller sees",
      hint = "recover a deleted vault with `azcmk recover --vault " .. parsed.vault
        .. "` (with --subscription of the vault's subscription when it is another one)" })
  end
  return { reg = reg, rg = rg, enc = enc, key = parsed, who = who, vault = vault }
end

local function describe(plan, loc)
  local lines = {}
  for _, item in ipairs(plan) do
    if item.action == "remove access policy" then
      lines[#lines + 1] = "remove the key permissions " .. table.concat(item.keys, ", ") .. " of "
        .. loc.who.label .. " (object id " .. loc.who.principal_id
        .. ") from the access policies of Key Vault " .. loc.vault.name
    else
      lines[#lines + 1] = "delete role assignment " .. tostring(item.id)
        .. " (" .. tostring(require("azcmk.client.role_assignments").key_use_role(item.role)) .. ")"
    end
    if item.note then lines[#lines] = lines[#lines] .. " - note: " .. item.note end
  end
  return lines
end

--- revoke{registry (or name), resource_group?, yes, pipeline?, subscription?, progress?} ->
-- result { changed, steps, plan, registry, identity, vault } or nil, err. Without yes = true:
-- nil, err (kind input, code ConfirmationRequired) with err.plan describing what would happen.
function M.revoke(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", yes = "boolean?" },
    "azcmk.playbook.revoke")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local loc
  loc, err = locate(ctx, o, "revoke")
  if not loc then return nil, err end
  local plan
  plan, err = ctx:revoke_plan(loc.vault, loc.who.principal_id)
  if not plan then return nil, err end
  local text = describe(plan, loc)
  local result = { plan = text, registry = { name = loc.reg.name, id = loc.reg.id, resource_group = loc.rg },
    identity = loc.who, vault = { name = loc.vault.name, id = loc.vault.id,
      access_model = common.model(loc.vault) },
    key_id = loc.enc.keyVaultProperties.keyIdentifier, warnings = ctx.warnings }
  if #plan == 0 then
    result.changed = false
    result.steps = ctx.steps
    ctx:step("access", "unchanged", { name = loc.who.label, detail = "the identity has no access to remove" })
    return result
  end
  if o.yes ~= true then
    return nil, errors.input("revoke would " .. table.concat(text, "; ")
      .. ". This makes ALL data of registry '"
      .. loc.reg.name .. "' inaccessible until access is restored", { code = "ConfirmationRequired",
      hint = "re-run with --yes (yes = true in Lua) to revoke; `azcmk restore` gives the access back",
        plan = text })
  end
  local ok
  ok, err = ctx:revoke(loc.vault, loc.who.principal_id, plan, loc.who.label)
  if not ok then return nil, err end
  result.changed = true
  result.steps = ctx.steps
  return result
end

--- restore{registry (or name), resource_group?, pipeline?, subscription?, progress?} ->
-- result { changed, steps, registry, identity, vault } or nil, err. Idempotent.
function M.restore(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?" }, "azcmk.playbook.restore")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local loc
  loc, err = locate(ctx, o, "restore")
  if not loc then return nil, err end
  local ok
  ok, err = ctx:grant(loc.vault, loc.who.principal_id, loc.who.tenant_id, loc.who.label)
  if not ok then return nil, err end
  return { changed = ctx.changed, steps = ctx.steps, warnings = ctx.warnings,
    registry = { name = loc.reg.name, id = loc.reg.id, resource_group = loc.rg }, identity = loc.who,
    vault = { name = loc.vault.name, id = loc.vault.id, access_model = common.model(loc.vault) },
    key_id = loc.enc.keyVaultProperties.keyIdentifier }
end

return M
