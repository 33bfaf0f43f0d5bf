--- The doctor's safe repairs. Each failed check may name a repair; plan() turns them into an
-- ordered, de-duplicated list of actions (azcmk.playbook.plan) that say what they will write,
-- and apply() carries one out through the service clients. Repairs only add or switch on:
-- re-assign an identity, re-grant access (access policy or RBAC, per the vault's model),
-- allow trusted services, move the encryption to the system identity, recover a soft-deleted
-- key or vault, re-run the rotation. Nothing here deletes or purges anything.
local rules = require("azcmk.state.rules")
local plan = require("azcmk.playbook.plan")
local Registries = require("azcmk.client.registries")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")

local M = {}

M.ORDER = { "recover_vault", "recover_key", "reassign_identity", "enable_trusted_services",
    "use_system_identity",
  "grant", "rerun_rotation", "clear_revocation" }

local function reg_label(f) return tostring(f.reg and f.reg.name) end

local DESCRIBE = {
  recover_vault = function(f)
    return "recover the soft-deleted vault " .. f.key.vault .. " (PUT vault with createMode 'recover')"
  end,
  recover_key = function(f)
    return "recover the soft-deleted key " .. f.key.name .. " (POST "
      .. ids.deleted_key_url(f.key.vault_url, f.key.name, "recover") .. ")"
  end,
  reassign_identity = function(f, r)
    return "re-assign the user-assigned identity " .. tostring(r.uai_id):match("[^/]+$") .. " to registry "
      .. reg_label(f) .. " (PATCH registry identity)"
  end,
  enable_trusted_services = function(f)
    return "allow trusted Microsoft services through the firewall of vault " .. f.key.vault
      .. " (PATCH vault networkAcls.bypass = AzureServices)"
  end,
  use_system_identity = function(f)
    local steps = {}
    if f.vault and rules.network_blocks(f.vault, "system") == "no_trusted_services" then
      steps[#steps + 1] = "allow trusted Microsoft services on vault " .. f.key.vault
    end
    local ri = f.reg.identity or {}
    if not tostring(ri.type):lower():find("systemassigned", 1, true) then
      steps[#steps + 1] = "enable the system-assigned identity of registry " .. reg_label(f)
          .. " (PATCH identity)"
    end
    steps[#steps + 1] = "give it get, wrapKey, unwrapKey on the key (" .. (f.vault and
      (f.vault.properties or {}).enableRbacAuthorization and "role Key Vault Crypto Service Encryption User"
      or "access policy") .. ")"
    steps[#steps + 1] = "rotate registry " .. reg_label(f) .. " to identity 'system' with key id "
      .. tostring(f.kvp.keyIdentifier) .. " (PATCH encryption)"
    return table.concat(steps, "; then ")
  end,
  grant = function(f)
    local rbac = (f.vault.properties or {}).enableRbacAuthorization == true
    return "grant the registry identity " .. tostring(f.ident.principal_id) .. " access to the key: "
      .. (rbac and "role Key Vault Crypto Service Encryption User at vault " .. f.key.vault
          .. " (PUT role assignment)"
        or "access policy keys get, wrapKey, unwrapKey on vault " .. f.key.vault
            .. " (PUT accessPolicies/add)")
  end,
  clear_revocation = function(f)
    return "remove the tag " .. rules.REVOKED_TAG .. " from registry " .. reg_label(f)
      .. " (`force = true`: the repairs re-open the key path)"
  end,
  rerun_rotation = function(f)
    return "re-run the rotation: PATCH registry " .. reg_label(f) .. " encryption with keyIdentifier "
      .. tostring(f.kvp.keyIdentifier) .. " and identity " .. tostring(f.kvp.identity)
      .. " (the registry adopts the newest enabled version)"
  end,
}

-- The resource a repair writes to (its id or key URL), from the facts.
local TARGET = {
  recover_vault = function(f) return ((f.deleted_vault or {}).properties or {}).vaultId end,
  recover_key = function(f) return ids.key_url(f.key.vault_url, f.key.name) end,
  enable_trusted_services = function(f) return f.vault and f.vault.id end,
  grant = function(f) return f.vault and f.vault.id end,
}
local function target_of(k, f)
  if TARGET[k] then return TARGET[k](f) end
  return f.reg and f.reg.id
end

--- plan(f, checks, force) -> actions { repair (its name), id (the resource it writes to),
-- description, check (the check id that asked), reason (that check's summary), args =
-- { repair } } (azcmk.playbook.plan). The findings a recorded revocation explains are
-- repaired only with force = true, and then the record goes too.
function M.plan(f, checks, force)
  local wanted, by, why = {}, {}, {}
  for _, c in ipairs(checks) do
    local failed = c.status == "fail" or (force == true and c.revoked == true)
    if failed and c.repair and not wanted[c.repair.id] then
      wanted[c.repair.id] = c.repair
      by[c.repair.id], why[c.repair.id] = c.id, c.summary
    end
  end
  -- moving to the system identity replaces granting the old one and the firewall switch
  if wanted.use_system_identity then wanted.grant = nil; wanted.enable_trusted_services = nil end
  -- a deleted vault or key comes back first; the rest is judged again afterwards
  if wanted.recover_vault or wanted.recover_key then
    for _, k in ipairs(M.ORDER) do
      if k ~= "recover_vault" and k ~= "recover_key" then wanted[k] = nil end
    end
  end
  local rec = rules.revocation(f)
  if force == true and rec and next(wanted) then
    wanted.clear_revocation, by.clear_revocation = {}, "registry"
    why.clear_revocation = "`force = true` re-opens the key path of a revoked registry"
  end
  local out = {}
  for _, k in ipairs(M.ORDER) do
    if wanted[k] then
      out[#out + 1] = plan.action({ repair = k, id = target_of(k, f), kind = k, step = "repair", action = k,
        name = k, description = DESCRIBE[k](f, wanted[k]), check = by[k], reason = why[k],
        args = { repair = wanted[k] } })
    end
  end
  return out
end

local function lro(ctx, what) return ctx:lro(what) end

local function trusted(ctx, f)
  local acls = (f.vault.properties or {}).networkAcls or {}
  local new = { defaultAction = acls.defaultAction or "Deny", bypass = "AzureServices" }
  local ips = {}
  for _, r in ipairs(acls.ipRules or {}) do ips[#ips + 1] = type(r) == "table" and r.value or r end
  local ok, err = ctx.vaults:set_network_acls({ id = f.vault.id, default_action = new.defaultAction,
    bypass = "AzureServices", ip_rules = #ips > 0 and ips or nil })
  if not ok then return nil, err end
  ctx:step("vault", "updated", { name = f.key.vault, detail = "networkAcls.bypass AzureServices" })
  return true
end

local APPLY = {
  recover_vault = function(ctx, f)
    local r, err = require("azcmk.playbook.recover").recover({ pipeline = ctx.p,
        subscription = f.vault_subscription or ctx.subscription,
      vault = f.key.vault, progress = ctx.progress, interval = ctx.interval, timeout = ctx.timeout })
    if not r then return nil, err end
    for _, s in ipairs(r.steps) do ctx.steps[#ctx.steps + 1] = s end
    return true
  end,
  recover_key = function(ctx, f)
    local r, err = require("azcmk.playbook.recover").recover({ pipeline = ctx.p,
        subscription = f.vault_subscription or ctx.subscription,
      vault = f.key.vault, key = f.key.name, progress = ctx.progress, interval = ctx.interval,
      timeout = ctx.timeout })
    if not r then return nil, err end
    for _, s in ipairs(r.steps) do ctx.steps[#ctx.steps + 1] = s end
    return true
  end,
  reassign_identity = function(ctx, f, r)
    local lo = lro(ctx, "registry " .. f.reg.name .. " identity")
    local reg, err = ctx.registries:assign_identity({ id = f.reg.id, identity_id = r.uai_id, registry = f.reg,
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not reg then return nil, err end
    ctx:step("identity", "assigned", { name = tostring(r.uai_id):match("[^/]+$"), id = r.uai_id })
    return true
  end,
  enable_trusted_services = function(ctx, f) return trusted(ctx, f) end,
  use_system_identity = function(ctx, f)
    if rules.network_blocks(f.vault, "system") == "no_trusted_services" then
      local ok, err = trusted(ctx, f)
      if not ok then return nil, err end
    end
    local reg = f.reg
    local ri = reg.identity or {}
    if not (tostring(ri.type):lower():find("systemassigned", 1, true) and ri.principalId) then
      local lo = lro(ctx, "registry " .. reg.name .. " identity")
      local err
      -- PATCH only the identity type: the map is left out, so a deleted user-assigned identity in it is
      -- not named again (ARM would refuse to resolve it)
      reg, err = ctx.registries:update({ id = reg.id, progress = lo.progress, interval = lo.interval,
        timeout = lo.timeout, body = { identity = { type = Registries.identity_type(ri.type, true) } } })
      if not reg then return nil, err end
      ctx:step("identity", "enabled", { name = "[system]", principal_id = reg.identity
          and reg.identity.principalId })
    end
    local pid = reg.identity and reg.identity.principalId
    local ok, gerr = ctx:grant(f.vault, pid, reg.identity.tenantId, "[system]")
    if not ok then return nil, gerr end
    local lo = lro(ctx, "registry " .. reg.name .. " encryption")
    local after, err = ctx.registries:set_encryption({ id = reg.id, key_id = f.kvp.keyIdentifier,
        identity = "system",
      progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not after then return nil, err end
    ctx:step("registry", "rotated", { name = reg.name, key_id = f.kvp.keyIdentifier, identity = "system" })
    return true
  end,
  grant = function(ctx, f)
    local ok, err = ctx:grant(f.vault, f.ident.principal_id, f.ident.tenant_id or (f.vault.properties
        or {}).tenantId,
      f.ident.kind == "system" and "[system]" or tostring(f.ident.uai_id
          or f.ident.client_id):match("[^/]+$"))
    if not ok then return nil, err end
    return true
  end,
  clear_revocation = function(ctx, f)
    local a = common.clear_revocation_action(f.reg, rules.revocation(f),
      "`force = true`: the doctor's repairs re-open the key path")
    return plan.apply(ctx, { a }, common.REVOCATION, {})
  end,
  rerun_rotation = function(ctx, f)
    local lo = lro(ctx, "registry " .. f.reg.name .. " encryption")
    local after, err = ctx.registries:set_encryption({ id = f.reg.id, key_id = f.kvp.keyIdentifier,
      identity = f.kvp.identity, progress = lo.progress, interval = lo.interval, timeout = lo.timeout })
    if not after then return nil, err end
    ctx:step("registry", "rotated", { name = f.reg.name, key_id = f.kvp.keyIdentifier,
        identity = f.kvp.identity,
      detail = "same key id, re-applied" })
    return true
  end,
}

-- The repairs as handlers of azcmk.playbook.plan.apply: each records its own steps.
local HANDLERS = {}
for k, fn in pairs(APPLY) do
  HANDLERS[k] = function(ctx, a, f)
    local ok, err = fn(ctx, f, a.args.repair)
    if not ok then return nil, err end
    return plan.RECORDED
  end
end

--- apply(ctx, f, action) -> true | nil, err.
function M.apply(ctx, f, action)
  return plan.apply(ctx, { action }, HANDLERS, f)
end

return M
