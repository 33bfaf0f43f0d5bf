--- identity assign: re-attach a user-assigned identity to a registry, or enable its
-- system-assigned identity (`az acr identity assign`) - the article's fix for "does not have
-- access to identity" errors. PATCHes only the identity; nothing is removed.
local common = require("azcmk.playbook.common")
local Registries = require("azcmk.client.registries")
local check = common.check

local M = {}

--- assign{registry (or name), resource_group?, identity (name | resource id | client id |
-- "[system]"), pipeline?, subscription?, progress?} -> result { changed, steps, registry,
-- identity = {kind, id, client_id, principal_id} } or nil, err.
function M.assign(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", identity = "string" },
    "azcmk.playbook.identity.assign")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local reg, rg = ctx:find_registry(o.registry or o.name, o.resource_group)
  if not reg then return nil, rg end
  local ident
  ident, err = ctx:resolve_identity(o.identity, { rg = rg, registry = reg })
  if not ident then return nil, err end
  local cur = reg.identity or {}
  local lo = ctx:lro("registry " .. reg.name .. " identity")
  if ident.kind == "system" then
    if tostring(cur.type):lower():find("systemassigned", 1, true) and cur.principalId then
      ctx:step("identity", "reused", { name = "[system]", principal_id = cur.principalId })
    else
      reg, err = ctx.registries:assign_identity({ id = reg.id, system = true, registry = reg,
        progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
      if not reg then return nil, err end
      ctx:step("identity", "enabled", { name = "[system]", principal_id = reg.identity
        and reg.identity.principalId })
    end
    return { changed = ctx.changed, steps = ctx.steps, warnings = ctx.warnings,
      registry = { name = reg.name, id = reg.id, resource_group = rg },
      identity = { kind = "system", principal_id = reg.identity and reg.identity.principalId,
        tenant_id = reg.identity and reg.identity.tenantId } }
  end
  if Registries.user_identity(reg, ident.client_id) then
    ctx:step("identity", "reused", { name = ident.name, id = ident.id })
  else
    reg, err = ctx.registries:assign_identity({ id = reg.id, identity_id = ident.id, registry = reg,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not reg then return nil, err end
    ctx:step("identity", "assigned", { name = ident.name, id = ident.id })
  end
  return { changed = ctx.changed, steps = ctx.steps, warnings = ctx.warnings,
    registry = { name = reg.name, id = reg.id, resource_group = rg },
    identity = { kind = "user", id = ident.id, name = ident.name, client_id = ident.client_id,
      principal_id = ident.principal_id } }
end

return M
