--- The doctor's evidence: every REST fact the checks judge, gathered once, in the order of
-- reliability.md §5, as the caller (never as the registry's identity). Each fact keeps the
-- call that produced it (`calls`), so a check can show where its evidence came from. Failures
-- of a call are facts too (an error table, never raised). No secret is kept: tokens are read
-- for their claims (oid, tid, appid) only.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local url = require("azcmk.url")
local V = require("azcmk.client.api_versions")
local Registries = require("azcmk.client.registries")
local Keys = require("azcmk.client.keys")

local M = {}

-- Roles whose data actions include keys read + wrap + unwrap (the registry identity's needs).
M.KEY_ROLES = {
  ["e147488a-f6f5-4113-8e2d-b22465e65bf6"] = "Key Vault Crypto Service Encryption User",
  ["12338af0-0e69-4776-bea7-57ae8d297424"] = "Key Vault Crypto User",
  ["14b46e9e-c2b7-41b4-b07b-48a6ebf60603"] = "Key Vault Crypto Officer",
  ["00482a5a-887f-4fb3-b363-3b7fe8e74483"] = "Key Vault Administrator",
}

local function guid_of(role_definition_id)
  return type(role_definition_id) == "string" and role_definition_id:match("([%x%-]+)/?$") or nil
end
M.guid_of = guid_of

--- The service's clock from x-ms-routing-request-id ("REGION:20261122T050102Z:guid"), else
-- the Date header, else nil.
function M.service_time(headers)
  headers = headers or {}
  local r = headers["x-ms-routing-request-id"]
  if type(r) == "string" then
    local y, mo, d, h, mi, s = r:match(":(%d%d%d%d)(%d%d)(%d%d)T(%d%d)(%d%d)(%d%d)Z:")
    if y then return require("azcmk.clock").timegm(tonumber(y), tonumber(mo), tonumber(d), tonumber(h),
      tonumber(mi), tonumber(s)) end
  end
  if type(headers.date) == "string" then return require("azcmk.clock").parse_http_date(headers.date) end
  return nil
end

local function record(f, call, res, err)
  f.calls[#f.calls + 1] = { call = call, status = res and res.status or (err and err.status),
    code = err and err.code or nil, request_id = (res and res.request_id) or (err and err.request_id) }
  if res and res.headers then
    local reads = tonumber(res.headers["x-ms-ratelimit-remaining-subscription-reads"])
    if reads and (not f.reads_left or reads < f.reads_left) then f.reads_left = reads end
    -- the service's clock: ARM's routing header wins over any Date header
    local routed = res.headers["x-ms-routing-request-id"] ~= nil
    local t = M.service_time(res.headers)
    if t and (routed or not f.service_now_routed) then
      f.service_now, f.service_now_routed = t, routed or f.service_now_routed
    end
  end
  if (res and res.status == 429) or (err and err.status == 429) then f.throttled = (f.throttled or 0) + 1 end
  -- the pipeline retried 429s / 5xx on its own: count the extra tries
  local tries = tonumber(res and res.attempts or (err and type(err.attempts) == "number" and err.attempts))
  if tries and tries > 1 then f.retried = (f.retried or 0) + tries - 1 end
end

-- GET an ARM path: json | nil (404) | nil, err; records the call.
local function arm_get(ctx, f, path, api_version, query)
  local res, err = ctx.p:arm("GET", path, { api_version = api_version, query = query })
  record(f, "GET " .. path:gsub("%?.*", ""), res, err)
  if res then return res.json end
  if errors.is(err, 404) then return nil end
  return nil, err
end

local function vault_get(ctx, f, vault_url, path, query)
  local res, err = ctx.p:vault("GET", vault_url, path, { api_version = V.keys, query = query })
  record(f, "GET " .. vault_url .. path, res, err)
  if res then return res.json end
  return nil, err
end

local function claims_of(token)
  local ok, crypto = pcall(require, "azcmk.crypto")
  if not ok then return nil end
  local _, claims = crypto.jwt_decode_unverified(token)
  if type(claims) ~= "table" then return nil end
  return { oid = claims.oid, tid = claims.tid, appid = claims.appid or claims.azp, upn = claims.upn }
end

--- gather(ctx, o) -> facts. o: registry (name), resource_group.
function M.gather(ctx, o)
  local p = ctx.p
  local f = { calls = {}, cloud = p.cloud.name, subscription = ctx.subscription,
      input = { registry = o.registry,
      resource_group = o.resource_group } }

  -- 0. inputs
  local ok, verr = ids.check_registry_name(o.registry)
  if not ok then f.input.registry_err = verr; return f end
  if o.resource_group then
    local rok, rerr = ids.check_resource_group(o.resource_group)
    if not rok then f.input.rg_err = rerr; return f end
  end

  -- 1. tokens: ARM
  local tok, terr = p:token(p.cloud.arm_scope)
  if not tok then f.arm_token_err = terr; return f end
  f.caller = claims_of(tok.token) or {}

  -- 2. registry
  local reg_path
  if o.resource_group then
    reg_path = "/subscriptions/" .. ctx.subscription .. "/resourceGroups/" .. o.resource_group
      .. "/providers/" .. Registries.TYPE .. "/" .. o.registry
  else
    local found, ferr = ctx.resources:find({ type = Registries.TYPE, name = o.registry })
    f.calls[#f.calls + 1] = { call = "GET /subscriptions/" .. ctx.subscription
      .. "/resources?$filter=resourceType eq '" .. Registries.TYPE .. "' and name eq '" .. o.registry .. "'",
      status = ferr and ferr.status or 200, code = ferr and ferr.code }
    if ferr then f.reg_err = ferr; return f end
    if found then reg_path = found.id end
  end
  if reg_path then
    local reg, rerr = arm_get(ctx, f, reg_path, V.registries)
    if rerr then f.reg_err = rerr; return f end
    f.reg = reg
  end
  if not f.reg then return f end
  f.rg = (ids.parse_resource_id(f.reg.id) or {}).resource_group
  local props = f.reg.properties or {}
  f.login_server = props.loginServer
  if f.login_server then
    f.data_plane = ctx.registries:probe({ login_server = f.login_server })
    f.calls[#f.calls + 1] = { call = "GET https://" .. f.login_server .. "/v2/ (anonymous)",
      status = f.data_plane and f.data_plane.status }
  end
  f.cmk = Registries.cmk_enabled(f.reg)
  if not f.cmk then return f end
  f.kvp = props.encryption.keyVaultProperties
  local kid = f.kvp.keyIdentifier or f.kvp.versionedKeyIdentifier
  f.key, f.key_err = ids.parse_key_id(kid, p.cloud)
  if f.kvp.versionedKeyIdentifier then
    f.key_inuse = ids.parse_key_id(f.kvp.versionedKeyIdentifier, p.cloud)
  end

  -- 3. identity binding (from the registry GET)
  local ident = tostring(f.kvp.identity or "")
  local ri = f.reg.identity or {}
  local rtype = tostring(ri.type or "None"):lower()
  if ident:lower() == "system" then
    f.ident = { kind = "system", value = "system", principal_id = ri.principalId, tenant_id = ri.tenantId,
      attached = rtype:find("systemassigned", 1, true) ~= nil and ri.principalId ~= nil }
  else
    local uid, v = Registries.user_identity(f.reg, ident)
    f.ident = { kind = "user", value = ident, client_id = ident, uai_id = uid, attached = uid ~= nil,
      principal_id = v and v.principalId }
    -- 4. the user-assigned identity itself
    if uid then
      f.uai, f.uai_err = arm_get(ctx, f, uid, V.identities)
      f.uai_checked = true
    else
      local found, ferr = ctx.identities:find({ client_id = ident })
      f.calls[#f.calls + 1] = { call = "GET /subscriptions/" .. ctx.subscription
        .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities", status = ferr and ferr.status
            or 200 }
      f.uai, f.uai_err = found, ferr
      f.uai_found_detached = found ~= nil
    end
    if f.uai then
      local up = f.uai.properties or {}
      f.ident.uai_id = f.ident.uai_id or f.uai.id
      f.ident.principal_id = f.ident.principal_id or up.principalId
      f.ident.tenant_id = up.tenantId
      f.ident.uai_client_id = up.clientId
      f.ident.uai_principal_id = up.principalId
    end
  end
  if not f.key then return f end

  -- 5. vault: resolvable (the generic resource list) in the registry's subscription, else in the
  -- other subscriptions the caller sees (reliability.md §4 item 14); management-plane GET; or deleted
  local search, serr = ctx:search_vault(f.key.vault, function(call, err)
    f.calls[#f.calls + 1] = { call = call, status = err and err.status or 200, code = err and err.code }
  end)
  local subs = search and search.subscriptions or { ctx.subscription }
  if serr then
    f.vault_err = serr
  elseif search.found then
    f.vault_subscription = search.subscription
    f.vault, f.vault_err = arm_get(ctx, f, search.found.id, V.vaults)
  end
  if not f.vault and not f.vault_err then
    for _, s in ipairs(subs) do
      local del, derr = ctx.vaults:find_deleted({ name = f.key.vault, subscription = s })
      f.calls[#f.calls + 1] = { call = "GET /subscriptions/" .. s
          .. "/providers/Microsoft.KeyVault/deletedVaults",
        status = derr and derr.status or 200 }
      if del or (derr and s == ctx.subscription) then
        f.deleted_vault, f.deleted_vault_err, f.vault_subscription = del, derr, s
        break
      end
    end
    return f
  end
  if not f.vault then return f end

  -- 1 (cont.): the vault's 401 challenge names the tenant Key Vault wants tokens from
  local probe, perr = vault_get(ctx, f, f.key.vault_url, "/keys", { maxresults = "1" })
  f.vault_probe_err = not probe and perr or nil
  local pu = url.parse(f.key.vault_url)
  local ch = pu and p.challenges and p.challenges:get(url.origin(pu))
  f.challenge_tenant = ch and ch.tenant

  -- 7. permissions of the registry identity, read from the vault (policy) and from ARM (RBAC)
  local pid = f.ident.principal_id
  if pid then
    local list, lerr = {}, nil
    for item, ierr in p:arm_pages(f.vault.id .. "/providers/Microsoft.Authorization/roleAssignments",
      { api_version = V.role_assignments, query = { ["$filter"] = "assignedTo('" .. pid .. "')" } }) do
      if not item then lerr = ierr; break end
      list[#list + 1] = item
    end
    f.calls[#f.calls + 1] = { call = "GET " .. f.vault.id
      .. "/providers/Microsoft.Authorization/roleAssignments?$filter=assignedTo('" .. pid .. "')",
      status = lerr and lerr.status or 200, code = lerr and lerr.code }
    f.role_assignments, f.role_assignments_err = not lerr and list or nil, lerr
  end

  -- 8. the key: the version in use, the current (newest) one, all versions
  local in_use_version = f.key_inuse and f.key_inuse.version or f.key.version
  f.key_bundle, f.key_bundle_err = vault_get(ctx, f, f.key.vault_url, "/keys/" .. url.encode(f.key.name)
    .. "/" .. (in_use_version and url.encode(in_use_version) or ""))
  if f.key_bundle_err and errors.is(f.key_bundle_err, 404) then
    -- 9. deleted?
    local del, derr = vault_get(ctx, f, f.key.vault_url, "/deletedkeys/" .. url.encode(f.key.name))
    f.key_missing = true
    f.deleted_key = del
    f.deleted_key_err = derr and not errors.is(derr, 404) and derr or nil
    return f
  end
  if f.key_bundle_err then return f end
  local versions, verr2 = ctx.keys:versions({ vault_url = f.key.vault_url, name = f.key.name })
  f.calls[#f.calls + 1] = { call = "GET " .. f.key.vault_url .. "/keys/" .. f.key.name .. "/versions",
    status = verr2 and verr2.status or 200, code = verr2 and verr2.code }
  f.versions, f.versions_err = versions, verr2
  -- the current version: the versionless GET answers the newest one (list order has 1 s resolution)
  local cur = vault_get(ctx, f, f.key.vault_url, "/keys/" .. url.encode(f.key.name))
  if cur and cur.key then
    f.newest = { kid = cur.key.kid, version = Keys.version_of(cur.key.kid), attributes = cur.attributes
        or {} }
    f.newest_bundle = f.newest.version == in_use_version and f.key_bundle or cur
  end
  -- 11. rotation policy
  f.rotation_policy, f.rotation_policy_err = vault_get(ctx, f, f.key.vault_url, "/keys/"
    .. url.encode(f.key.name) .. "/rotationpolicy")
  return f
end

return M
