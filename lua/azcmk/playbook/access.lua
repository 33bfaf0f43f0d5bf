--- revoke / restore: remove, or give back, the registry identity's access to its key - the
-- article's "Revoke key" (az keyvault delete-policy, or deleting the role assignment on an
-- RBAC vault). Revocation makes ALL registry data inaccessible until access returns, so
-- revoke refuses to act without yes = true and then only reports its plan.
--
-- Both read the registry's chain (azcmk.state: registry, encryption identity, the key's vault),
-- plan (revoke: the record of the revocation - the registry's tag azcmk-revoked = "<time> by
-- <caller>", which makes rotate, identity assign, setup and the doctor's repairs refuse - then
-- what gives the identity the use of the key; restore: the grant, or nothing, then the
-- record's removal) and apply. dry_run = true returns the plan and writes nothing (no yes
-- needed).
local errors = require("azcmk.errors")
local common = require("azcmk.playbook.common")
local plan = require("azcmk.playbook.plan")
local state = require("azcmk.state")
local rules = require("azcmk.state.rules")
local check = common.check

local M = {}

-- The registry, its encryption identity's principal (who), and the key's vault, from the
-- chain's facts; or nil, err.
local function locate(ctx, o, verb)
  local f = ctx:read(o.registry or o.name, o.resource_group, state.parts.chain)
  local reg, rg = common.registry_of(f)
  if not reg then return nil, rg end
  local enc, parsed = ctx:cmk_of(reg, verb)
  if not enc then return nil, parsed end
  local id = f.ident
  local who
  if id.kind == "system" then
    if not id.principal_id then
      return nil, errors.input("the registry's encryption uses its system-assigned identity, which is not "
        .. "enabled", { code = "IdentityNotAssigned", param = "registry",
        hint = "enable it: `identity_assign{registry = \"" .. reg.name .. "\", identity = \"[system]\"}`" })
    end
    who = { kind = "system", principal_id = id.principal_id, tenant_id = id.tenant_id, label = "[system]" }
  else
    if f.uai_err then return nil, f.uai_err end
    if not id.attached and not f.uai then
      return nil, errors.input("the encryption identity " .. tostring(id.value)
        .. " is neither attached to the registry nor found in the subscription", { code = "IdentityNotFound",
        param = "registry", hint = "re-attach the identity (`identity_assign{registry = \"" .. reg.name
          .. "\", identity = \"<its resource id>\"}`) or rotate to another one" })
    end
    who = { kind = "user", id = id.uai_id, client_id = id.uai_client_id or id.client_id,
      principal_id = id.principal_id, label = tostring(id.uai_id):match("[^/]+$") }
  end
  if f.vault_err then return nil, f.vault_err end
  if not f.vault then
    return nil, errors.new("azure", { status = 404, code = "VaultNotFound", param = "registry",
      message = "Key Vault '" .. parsed.vault .. "' of the registry's key was not found in subscription "
        .. ctx.subscription .. " nor in another subscription the caller sees",
      hint = "recover a deleted vault with `recover{vault = \"" .. parsed.vault .. "\"}` (with "
        .. "`subscription` of the vault's subscription when it is another one)" })
  end
  return { reg = reg, rg = rg, enc = enc, key = parsed, who = who, vault = f.vault, f = f }
end

-- the handlers of both verbs: the access's and the record's
local HANDLERS = {}
for k, h in pairs(common.ACCESS) do HANDLERS[k] = h end
for k, h in pairs(common.REVOCATION) do HANDLERS[k] = h end

local function summary(ctx, loc, actions)
  return { plan = plan.view(actions),
    registry = { name = loc.reg.name, id = loc.reg.id, resource_group = loc.rg }, identity = loc.who,
    vault = { name = loc.vault.name, id = loc.vault.id, access_model = common.model(loc.vault) },
    key_id = loc.enc.keyVaultProperties.keyIdentifier, warnings = ctx.warnings, steps = ctx.steps }
end

-- the record of a planned or applied revocation, for the result
local function record_of(actions, loc)
  for _, a in ipairs(actions) do
    if a.kind == "record_revocation" then return rules.revocation({ revoked_tag = a.args.value }) end
  end
  return rules.revocation(loc.f)
end

--- revoke{registry (or name), resource_group?, yes, dry_run?, pipeline?, subscription?,
-- progress?} -> result { changed, steps, plan, registry, identity, vault, revoked = {at, by,
-- value} (the record) } or nil, err.
-- Without yes = true (and without dry_run): nil, err (kind input, code ConfirmationRequired)
-- with err.plan, the actions it would take.
function M.revoke(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", yes = "boolean?",
    dry_run = "boolean?" }, "azcmk.playbook.revoke")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local loc
  loc, err = locate(ctx, o, "revoke")
  if not loc then return nil, err end
  local actions
  actions, err = ctx:revoke_actions(loc.vault, loc.who.principal_id, loc.who.label)
  if not actions then return nil, err end
  -- the record first: from then on nothing re-grants what the removals take away
  if not rules.revocation(loc.f) then
    local ra
    ra, err = ctx:record_revocation_action(loc.reg)
    if not ra then return nil, err end
    table.insert(actions, 1, ra)
  end
  common.reapply_if_failed(actions, loc.reg)
  if #actions == 0 then
    ctx:step("access", "unchanged", { name = loc.who.label, detail = "the identity has no access to remove" })
    local r = summary(ctx, loc, actions)
    r.changed, r.revoked = false, record_of(actions, loc)
    return r
  end
  if o.dry_run then
    local r = plan.dry_result(ctx, actions, summary(ctx, loc, actions))
    r.revoked = record_of(actions, loc)
    return r
  end
  if o.yes ~= true then
    local lines = {}
    for _, a in ipairs(actions) do lines[#lines + 1] = a.description end
    return nil, errors.input("revoke would " .. table.concat(lines, "; ") .. ". This makes ALL data of "
      .. "registry '" .. loc.reg.name .. "' inaccessible until access is restored",
      { code = "ConfirmationRequired", param = "yes", plan = plan.view(actions),
        hint = "re-run with `yes = true` to revoke; `restore{registry = \"" .. loc.reg.name
          .. "\"}` gives the access back" })
  end
  local ok
  ok, err = plan.apply(ctx, actions, HANDLERS, {})
  if not ok then return nil, err end
  local r = summary(ctx, loc, actions)
  r.changed, r.revoked = true, record_of(actions, loc)
  return r
end

--- restore{registry (or name), resource_group?, dry_run?, pipeline?, subscription?, progress?}
-- -> result { changed, steps, plan, registry, identity, vault } or nil, err. Idempotent. Gives
-- the access back and removes the revocation record (the tag).
function M.restore(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", dry_run = "boolean?" },
    "azcmk.playbook.restore")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local loc
  loc, err = locate(ctx, o, "restore")
  if not loc then return nil, err end
  local a
  a, err = ctx:access_action(loc.vault, loc.who.principal_id, loc.who.tenant_id, loc.who.label)
  if not a then return nil, err end
  local actions = { a }
  -- the record goes once the access is back (a failed grant leaves the registry revoked)
  local rec = rules.revocation(loc.f)
  if rec then
    actions[2] = common.clear_revocation_action(loc.reg, rec, "the revocation ends with the restore")
  end
  common.reapply_if_failed(actions, loc.reg)
  if o.dry_run then return plan.dry_result(ctx, actions, summary(ctx, loc, actions)) end
  local ok
  ok, err = plan.apply(ctx, actions, HANDLERS, {})
  if not ok then return nil, err end
  local r = summary(ctx, loc, actions)
  r.changed = ctx.changed
  return r
end

return M
