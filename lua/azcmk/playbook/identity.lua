--- identity assign: re-attach a user-assigned identity to a registry, or enable its
-- system-assigned identity (`az acr identity assign`) - the article's fix for "does not have
-- access to identity" errors. PATCHes only the identity; nothing is removed. Plan, then
-- apply (azcmk.playbook.plan); rotate plans its identity step with the same action.
local common = require("azcmk.playbook.common")
local plan = require("azcmk.playbook.plan")
local Registries = require("azcmk.client.registries")
local check = common.check

local M = {}

--- The action that makes identity `ident` (from ctx:resolve_identity) usable by registry
-- `reg`: "reuse" when it is there, else "enable" ([system]) or "assign" (a user-assigned one).
function M.action(reg, ident)
  local cur = reg.identity or {}
  if ident.kind == "system" then
    if tostring(cur.type):lower():find("systemassigned", 1, true) and cur.principalId then
      return plan.action({ step = "identity", action = "reuse", name = "[system]",
        principal_id = cur.principalId, reason = "it is enabled",
        description = "the system-assigned identity of registry " .. reg.name .. " is enabled" })
    end
    return plan.action({ step = "identity", action = "enable", kind = "enable_system", name = "[system]",
      id = reg.id, reason = "the registry's system-assigned identity is not enabled",
      description = "enable the system-assigned identity of registry " .. reg.name .. " (PATCH identity)",
      request = "PATCH " .. reg.id })
  end
  if Registries.user_identity(reg, ident.client_id) then
    return plan.action({ step = "identity", action = "reuse", name = ident.name, id = ident.id,
      description = "identity " .. tostring(ident.name) .. " is attached to registry " .. reg.name,
      reason = "it is attached" })
  end
  return plan.action({ step = "identity", action = "assign", kind = "assign_user", name = ident.name,
    id = ident.id, reason = "it is not attached to the registry",
    description = "attach the user-assigned identity " .. tostring(ident.name or ident.id)
      .. " to registry " .. reg.name .. " (PATCH identity)", request = "PATCH " .. reg.id })
end

--- The handlers (azcmk.playbook.plan.apply). state.reg: the registry, replaced by the
-- registry after the PATCH; enabling [system] sets state.principal_id and state.tenant_id.
M.HANDLERS = {
  enable_system = function(ctx, _, st)
    local lo = ctx:lro("registry " .. st.reg.name .. " identity")
    local reg, err = ctx.registries:assign_identity({ id = st.reg.id, system = true, registry = st.reg,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not reg then return nil, err end
    st.reg = reg
    st.principal_id = reg.identity and reg.identity.principalId
    st.tenant_id = reg.identity and reg.identity.tenantId
    return { principal_id = st.principal_id }
  end,
  assign_user = function(ctx, a, st)
    local lo = ctx:lro("registry " .. st.reg.name .. " identity")
    local reg, err = ctx.registries:assign_identity({ id = st.reg.id, identity_id = a.id, registry = st.reg,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not reg then return nil, err end
    st.reg = reg
    return {}
  end,
}

--- assign{registry (or name), resource_group?, identity (name | resource id | client id |
-- "[system]"), force?, dry_run?, pipeline?, subscription?, progress?} -> result { changed, steps,
-- plan, registry, identity = {kind, id, client_id, principal_id} } or nil, err. A revoked
-- registry (the tag azcmk-revoked) is refused (RegistryRevoked) unless force = true; force
-- leaves the record in place (no access is given here: `restore` gives it back).
function M.assign(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", identity = "string",
    dry_run = "boolean?", force = "boolean?" }, "azcmk.playbook.identity.assign")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local reg, rg, f = ctx:find_registry(o.registry or o.name, o.resource_group)
  if not reg then return nil, rg end
  -- a revoked registry stays revoked: an identity attached now could reach the key again
  local revoked = common.revoked_refusal(f, reg.name, "assigning an identity", o.force)
  if revoked then return nil, revoked end
  local ident
  ident, err = ctx:resolve_identity(o.identity, { rg = rg, registry = reg })
  if not ident then return nil, err end
  local actions = { M.action(reg, ident) }
  local who = ident.kind == "system" and { kind = "system" } or { kind = "user", id = ident.id,
    name = ident.name, client_id = ident.client_id, principal_id = ident.principal_id }
  if o.dry_run then
    return plan.dry_result(ctx, actions, { registry = { name = reg.name, id = reg.id, resource_group = rg },
      identity = who })
  end
  local st = { reg = reg }
  local ok
  ok, err = plan.apply(ctx, actions, M.HANDLERS, st)
  if not ok then return nil, err end
  reg = st.reg
  if ident.kind == "system" then
    who.principal_id = reg.identity and reg.identity.principalId
    who.tenant_id = reg.identity and reg.identity.tenantId
  end
  return { changed = ctx.changed, steps = ctx.steps, warnings = ctx.warnings, plan = plan.view(actions),
    registry = { name = reg.name, id = reg.id, resource_group = rg }, identity = who }
end

return M
