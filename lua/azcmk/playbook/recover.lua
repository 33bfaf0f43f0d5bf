--- recover: bring a soft-deleted key or vault back (the article's "Accidental deletion of key
-- vault or key"). The registry picks its key up again once it is reachable. Never purges.
--
-- Read (the vault, or its soft-deleted record; the key, or its record), plan (the vault's
-- resource group when it is gone, the vault, the key), apply (azcmk.playbook.plan).
-- dry_run = true returns the plan. A key in a vault that is itself soft-deleted can only be
-- read once the vault is back: its action decides then (recover it, or nothing to do).
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")
local plan = require("azcmk.playbook.plan")
local check = common.check

local M = {}

M.WAIT_SECONDS = 30
M.DELETING_SECONDS = 3

local function key_not_found(o)
  return errors.input("key '" .. o.key .. "' is neither in vault '" .. o.vault .. "' nor soft-deleted there",
    { code = "KeyNotFound", param = "key", hint = "check the key name; a purged key cannot be recovered" })
end

-- The key's soft-deleted record; a key deleted a moment ago is "being deleted" (not yet
-- listed) for a few seconds, so an absent record is asked for again for a while.
local function deleted_key(ctx, vault_url, o)
  local deleted, err
  for i = 0, M.DELETING_SECONDS do
    deleted, err = ctx.keys:get_deleted({ vault_url = vault_url, name = o.key })
    if deleted or err then break end
    if i < M.DELETING_SECONDS then
      if i == 0 then ctx:say("key " .. o.key .. " is not (yet) listed as deleted; waiting a moment") end
      ctx.p.sleep(1)
    end
  end
  return deleted, err
end

--- read(ctx, o) -> facts { vault | deleted_vault, vault_rg (of the deleted one), rg (exists?),
-- caller, key | deleted_key } or nil, err (including the refusals that only need a read).
function M.read(ctx, o)
  local f = {}
  local err
  f.vault, err = ctx:find_vault(o.vault, o.resource_group)
  if err then return nil, err end
  if not f.vault then
    f.deleted_vault, err = ctx.vaults:find_deleted({ name = o.vault })
    if err then return nil, err end
    if not f.deleted_vault then
      return nil, errors.input("Key Vault '" .. o.vault .. "' is neither in subscription " .. ctx.subscription
        .. " nor soft-deleted there", { code = "VaultNotFound", param = "vault",
        hint = "check the name and `subscription`; a purged vault cannot be recovered" })
    end
    local dp = f.deleted_vault.properties or {}
    local parsed = ids.parse_resource_id(dp.vaultId or "")
    if not parsed then
      return nil, errors.new("azure", { code = "InvalidDeletedVault",
        message = "the deleted vault record has no vaultId to recover into",
        hint = "recover the vault with `az keyvault recover --name " .. o.vault .. "`, then run recover "
          .. "again" })
    end
    f.vault_rg, f.location = parsed.resource_group, dp.location
    f.caller, err = ctx:caller()
    if not f.caller then return nil, err end
    local rg, rerr = ctx.resource_groups:get({ name = parsed.resource_group })
    if rerr then return nil, rerr end   -- a failed read is no reason to PUT the group (tags would go)
    f.rg_exists = rg ~= nil
    return f
  end
  if o.key then
    local vault_url = ids.vault_url(o.vault, ctx.p.cloud)
    f.key, err = ctx.keys:get({ vault_url = vault_url, name = o.key })
    if err then return nil, err end
    if not f.key then
      f.deleted_key, err = deleted_key(ctx, vault_url, o)
      if err then return nil, err end
      if not f.deleted_key then return nil, key_not_found(o) end
    end
  end
  return f
end

--- plan(ctx, o, f) -> actions.
function M.plan(ctx, o, f)
  local actions = {}
  local function add(a) actions[#actions + 1] = plan.action(a) end
  if f.vault then
    add({ step = "vault", action = "reuse", name = o.vault, id = f.vault.id, detail = "not deleted",
      description = "Key Vault " .. o.vault .. " is not deleted", reason = "it exists" })
  else
    if not f.rg_exists then
      local rgid = ids.resource_group_id(ctx.subscription, f.vault_rg)
      add({ step = "resource_group", action = "create", kind = "create_rg", name = f.vault_rg, id = rgid,
        description = "create resource group " .. f.vault_rg .. " in " .. tostring(f.location)
          .. " to recover the vault into", request = "PUT " .. rgid,
        reason = "the vault's resource group was deleted" })
    end
    local vault_id = ids.resource_id(ctx.subscription, f.vault_rg, "vault", o.vault)
    add({ step = "vault", action = "recover", kind = "recover_vault", name = o.vault, id = vault_id,
      description = "recover the soft-deleted Key Vault " .. o.vault .. " into resource group " .. f.vault_rg
        .. " (PUT with createMode recover)", request = "PUT " .. vault_id, reason = "it is soft-deleted" })
  end
  if o.key then
    local vault_url = ids.vault_url(o.vault, ctx.p.cloud)
    local request = "POST " .. ids.deleted_key_url(vault_url, o.key, "recover")
    local key_id = ids.key_url(vault_url, o.key)
    if f.key then
      add({ step = "key", action = "reuse", name = o.key, id = f.key.key.kid, detail = "not deleted",
        description = "key " .. o.key .. " is not deleted", reason = "it exists" })
    elseif f.deleted_key then
      add({ step = "key", action = "recover", kind = "recover_key", name = o.key, id = key_id,
        description = "recover the soft-deleted key " .. o.key .. " in vault " .. o.vault,
        request = request, reason = "it is soft-deleted" })
    else
      add({ step = "key", action = "recover", kind = "ensure_key", name = o.key, id = key_id,
        description = "recover key " .. o.key .. " once the vault is back, if it is soft-deleted there",
        request = request, reason = "the keys of a soft-deleted vault can be read only once it is back" })
    end
  end
  return actions
end

-- Recover the key and wait until it answers: { id = its kid } or nil, err.
local function recover_key(ctx, o)
  local vault_url = ids.vault_url(o.vault, ctx.p.cloud)
  local tries, key = 0
  while true do
    local err
    key, err = ctx.keys:recover({ vault_url = vault_url, name = o.key })
    if key then break end
    if errors.is(err, 404) or errors.is(err, "KeyNotFound") then return nil, key_not_found(o) end
    if not errors.is(err, "ObjectIsBeingDeleted") or tries >= M.WAIT_SECONDS then return nil, err end
    ctx:say("key " .. o.key .. " is still being deleted; waiting to recover it")
    ctx.p.sleep(1)
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
        hint = "wait a minute and check with `show{}` on the registry" })
    end
    ctx.p.sleep(1)
    waited = waited + 1
  end
  return { id = key.key and key.key.kid }
end

--- The handlers (azcmk.playbook.plan.apply). state: o (the options), f (the facts), vault, kid.
M.HANDLERS = {
  create_rg = function(ctx, a, st)
    local rg, err = ctx.resource_groups:create_or_update({ name = a.name, location = st.f.location })
    if not rg then return nil, err end
    return {}
  end,
  recover_vault = function(ctx, a, st)
    local lo = ctx:lro("vault " .. a.name .. " recovery")
    local vault, err = ctx.vaults:recover({ resource_group = st.f.vault_rg, name = a.name,
      location = st.f.location, tenant_id = st.f.caller.tenant_id, progress = lo.progress,
        interval = lo.interval,
      timeout = lo.timeout })
    if not vault then return nil, err end
    st.vault = vault
    return { id = vault.id }
  end,
  recover_key = function(ctx, _, st)
    local r, err = recover_key(ctx, st.o)
    if not r then return nil, err end
    st.kid = r.id
    return r
  end,
  -- the key of a vault that was soft-deleted itself: read now that the vault is back
  ensure_key = function(ctx, _, st)
    local vault_url = ids.vault_url(st.o.vault, ctx.p.cloud)
    local key, err = ctx.keys:get({ vault_url = vault_url, name = st.o.key })
    if err then return nil, err end
    if key then
      st.kid = key.key.kid
      return { id = st.kid, action = "reused", detail = "not deleted" }
    end
    local deleted
    deleted, err = deleted_key(ctx, vault_url, st.o)
    if err then return nil, err end
    if not deleted then return nil, key_not_found(st.o) end
    local r
    r, err = recover_key(ctx, st.o)
    if not r then return nil, err end
    st.kid = r.id
    return r
  end,
}

--- recover{vault, key?, resource_group?, dry_run?, pipeline?, subscription?, progress?} ->
-- result { changed, steps, plan, vault = {name, id}, key = {name, kid}? } or nil, err. A vault
-- that is soft-deleted is recovered first; then the key when one is named.
function M.recover(o)
  check(o, { vault = "string", key = "string?", resource_group = "string?", dry_run = "boolean?" },
    "azcmk.playbook.recover")
  local ok, err = ids.check_vault_name(o.vault)
  if not ok then return nil, err end
  if o.key then
    ok, err = ids.check_key_name(o.key)
    if not ok then return nil, err end
  end
  local ctx
  ctx, err = common.context(o)
  if not ctx then return nil, err end
  local f
  f, err = M.read(ctx, o)
  if not f then return nil, err end
  local actions = M.plan(ctx, o, f)
  if o.dry_run then
    return plan.dry_result(ctx, actions, { vault = { name = o.vault, id = f.vault and f.vault.id },
      key = o.key and { name = o.key } or nil })
  end
  local st = { o = o, f = f, vault = f.vault, kid = f.key and f.key.key.kid }
  ok, err = plan.apply(ctx, actions, M.HANDLERS, st)
  if not ok then return nil, err end
  return { changed = ctx.changed, steps = ctx.steps, warnings = ctx.warnings, plan = plan.view(actions),
    vault = { name = o.vault, id = st.vault.id }, key = o.key and { name = o.key, kid = st.kid } or nil }
end

setmetatable(M, { __call = function(_, o) return M.recover(o) end })
return M
