--- recover: bring a soft-deleted key or vault back (the article's "Accidental deletion of key
-- vault or key"). The registry picks its key up again once it is reachable. Never purges.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")
local check = common.check

local M = {}

M.WAIT_SECONDS = 30
M.DELETING_SECONDS = 3

local function recover_vault(ctx, name)
  local deleted, err = ctx.vaults:find_deleted({ name = name })
  if err then return nil, err end
  if not deleted then
    return nil, errors.input("Key Vault '" .. name .. "' is neither in subscription " .. ctx.subscription
      .. " nor soft-deleted there", { code = "VaultNotFound",
      hint = "check the name and --subscription; a purged vault cannot be recovered" })
  end
  local dp = deleted.properties or {}
  local parsed = ids.parse_resource_id(dp.vaultId or "")
  if not parsed then
    return nil, errors.new("azure", { code = "InvalidDeletedVault",
      message = "the deleted vault record has no vaultId to recover into",
      hint = "recover the vault with `az keyvault recover --name " .. name .. "`, then run azcmk recover "
        .. "again" })
  end
  local caller, cerr = ctx:caller()
  if not caller then return nil, cerr end
  local rg, rerr = ctx.resource_groups:get({ name = parsed.resource_group })
  if rerr then return nil, rerr end   -- a failed read is no reason to PUT the group (tags would go)
  if not rg then
    local ok, gerr = ctx.resource_groups:create_or_update({ name = parsed.resource_group,
      location = dp.location })
    if not ok then return nil, gerr end
    ctx:step("resource_group", "created", { name = parsed.resource_group })
  end
  local lo = ctx:lro("vault " .. name .. " recovery")
  local vault, verr = ctx.vaults:recover({ resource_group = parsed.resource_group, name = name,
    location = dp.location, tenant_id = caller.tenant_id, progress = lo.progress, interval = lo.interval,
    timeout = lo.timeout })
  if not vault then return nil, verr end
  ctx:step("vault", "recovered", { name = name, id = vault.id })
  return vault
end

--- recover{vault, key?, resource_group?, pipeline?, subscription?, progress?} -> result
-- { changed, steps, vault = {name, id}, key = {name, kid}? } or nil, err. A vault that is
-- soft-deleted is recovered first; then the key when one is named.
function M.recover(o)
  check(o, { vault = "string", key = "string?", resource_group = "string?" }, "azcmk.playbook.recover")
  local ok, err = ids.check_vault_name(o.vault)
  if not ok then return nil, err end
  if o.key then
    ok, err = ids.check_key_name(o.key)
    if not ok then return nil, err end
  end
  local ctx
  ctx, err = common.context(o)
  if not ctx then return nil, err end
  local vault
  vault, err = ctx:find_vault(o.vault, o.resource_group)
  if err then return nil, err end
  if vault then
    ctx:step("vault", "reused", { name = o.vault, id = vault.id, detail = "not deleted" })
  else
    vault, err = recover_vault(ctx, o.vault)
    if not vault then return nil, err end
  end
  local result = { steps = ctx.steps, warnings = ctx.warnings, vault = { name = o.vault, id = vault.id } }
  if o.key then
    local vault_url = ids.vault_url(o.vault, ctx.p.cloud)
    local key
    key, err = ctx.keys:get({ vault_url = vault_url, name = o.key })
    if err then return nil, err end
    if key then
      ctx:step("key", "reused", { name = o.key, id = key.key.kid, detail = "not deleted" })
    else
      -- a key deleted a moment ago is "being deleted" (not yet listed) for a few seconds
      local p = ctx.p
      local deleted
      for i = 0, M.DELETING_SECONDS do
        deleted, err = ctx.keys:get_deleted({ vault_url = vault_url, name = o.key })
        if deleted or err then break end
        if i < M.DELETING_SECONDS then
          if i == 0 then ctx:say("key " .. o.key .. " is not (yet) listed as deleted; waiting a moment") end
          p.sleep(1)
        end
      end
      if err then return nil, err end
      if not deleted then
        return nil, errors.input("key '" .. o.key .. "' is neither in vault '" .. o.vault
          .. "' nor soft-deleted there", { code = "KeyNotFound",
          hint = "check the key name; a purged key cannot be recovered" })
      end
      local tries = 0
      while true do
        key, err = ctx.keys:recover({ vault_url = vault_url, name = o.key })
        if key then break end
        if errors.is(err, 404) or errors.is(err, "KeyNotFound") then
          return nil, errors.input("key '" .. o.key .. "' is neither in vault '" .. o.vault
            .. "' nor soft-deleted there", { code = "KeyNotFound",
            hint = "check the key name; a purged key cannot be recovered" })
        end
        if not errors.is(err, "ObjectIsBeingDeleted") or tries >= M.WAIT_SECONDS then return nil, err end
        ctx:say("key " .. o.key .. " is still being deleted; waiting to recover it")
        p.sleep(1)
        tries = tries + 1
      end
      -- recovery completes asynchronously: wait until the key answers again
      local waited = 0
      while true do
        local k = ctx.keys:get({ vault_url = vault_url, name = o.key })
        if k then key = k; break end
        if waited >= M.WAIT_SECONDS then
          return nil, errors.new("timeout", { code = "RecoveryPending",
            message = "key '" .. o.key .. "' was recovered but does not answer yet",
            hint = "wait a minute and check with `azcmk show`" })
        end
        p.sleep(1)
        waited = waited + 1
      end
      ctx:step("key", "recovered", { name = o.key, id = key.key and key.key.kid })
    end
    result.key = { name = o.key, kid = key.key and key.key.kid }
  end
  result.changed = ctx.changed
  return result
end

setmetatable(M, { __call = function(_, o) return M.recover(o) end })
return M
