--- Spec helper: builds the CMK world over raw ARM and Key Vault calls (resource group,
-- user-assigned identity, vault with purge protection, keys, access policies / role
-- assignments, registries) against the emulator. Used by the registry, data-plane and
-- deployment specs.
local E = require("support.emulator")

local W = {}

W.ACR_API = "2025-04-01"
W.KV_API = "2026-02-01"
W.KEYS_API = "7.4"
W.RG_API = "2024-11-01"
W.MI_API = "2024-11-30"
W.AUTH_API = "2022-04-01"
W.KV_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
W.KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"

local n = 0
--- A fresh alphanumeric suffix (registry and vault names are global).
function W.uniq(prefix)
  n = n + 1
  return prefix .. string.format("%x%03d", os.time() % 0xfffff, n)
end

function W.seed() return E.seed() end

function W.rg_path(sub, rg) return "/subscriptions/" .. sub .. "/resourcegroups/" .. rg end

function W.create_rg(sub, rg, loc)
  local r = E.arm("PUT", W.rg_path(sub, rg), { location = loc or "westus" }, { api_version = W.RG_API })
  assert(r.status == 200 or r.status == 201, r.body)
end

--- Creates a user-assigned identity; returns its resource (id, properties.principalId/clientId).
function W.create_uai(sub, rg, name)
  local r = E.arm("PUT", "/subscriptions/" .. sub .. "/resourceGroups/" .. rg ..
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" .. name, { location = "westus" },
    { api_version = W.MI_API })
  assert(r.status == 200 or r.status == 201, r.body)
  return r.json
end

function W.vault_path(sub, rg, name)
  return "/subscriptions/" .. sub .. "/resourceGroups/" .. rg .. "/providers/Microsoft.KeyVault/vaults/" ..
    name
end

--- Creates a vault with soft delete + purge protection; the owner gets all key permissions
-- (access-policy vault) or Key Vault Administrator (rbac = true).
function W.create_vault(sub, rg, name, opts)
  opts = opts or {}
  local s = E.seed()
  local props = { tenantId = s.tenant_id, sku = { family = "A", name = "standard" },
    enableSoftDelete = true, softDeleteRetentionInDays = 7, enablePurgeProtection = true,
    enableRbacAuthorization = opts.rbac == true, accessPolicies = {} }
  if not opts.rbac then
    props.accessPolicies = { { tenantId = s.tenant_id, objectId = s.owner.object_id,
      permissions = { keys = { "all" } } } }
  end
  if opts.network then props.networkAcls = opts.network end
  local r = E.arm("PUT", W.vault_path(sub, rg, name), { location = "westus", properties = props },
    { api_version = W.KV_API })
  assert(r.status == 200 or r.status == 201, r.body)
  if opts.rbac then
    W.assign_role(sub, W.vault_path(sub, rg, name), W.KV_ADMIN, s.owner.object_id)
  end
  return r.json
end

--- PUT VAULT/accessPolicies/{kind} for one principal.
function W.policy(sub, rg, vault, kind, oid, perms)
  local s = E.seed()
  local entry = { tenantId = s.tenant_id, objectId = oid,
    permissions = { keys = perms or { "get", "wrapKey", "unwrapKey" } } }
  local r = E.arm("PUT", W.vault_path(sub, rg, vault) .. "/accessPolicies/" .. kind,
    { properties = { accessPolicies = { entry } } }, { api_version = W.KV_API })
  assert(r.status == 200 or r.status == 201, r.body)
  return r
end

--- PUT a role assignment; returns its id.
function W.assign_role(sub, scope, role, oid)
  local guid = string.format("%08x-%04x-4%03x-8%03x-%06x%06x", math.random(0, 0x7fffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff), math.random(0, 0xffffff),
    math.random(0, 0xffffff))
  local id = scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. guid
  local r = E.arm("PUT", id, { properties = {
    roleDefinitionId = "/subscriptions/" .. sub .. "/providers/Microsoft.Authorization/roleDefinitions/" ..
      role,
    principalId = oid, principalType = "ServicePrincipal" } }, { api_version = W.AUTH_API })
  assert(r.status == 201 or r.status == 200, r.body)
  return id
end

local vault_token
function W.kv(method, vault, path, body)
  vault_token = vault_token or E.token("https://vault.azure.net")
  local url = "https://" .. vault .. ".vault.azure.net" .. path
  url = url .. (url:find("?", 1, true) and "&" or "?") .. "api-version=" .. W.KEYS_API
  return assert(E.request({ method = method, url = url, body = body,
    headers = { Authorization = "Bearer " .. vault_token } }))
end
function W.reset_tokens() vault_token = nil end

--- A spec's start: the seeded state (E.fresh) and no cached vault token; returns the seed.
function W.fresh()
  W.reset_tokens()
  return E.fresh()
end

--- Creates (or adds a version to) a key; returns the versioned kid.
function W.create_key(vault, name, kty)
  local r = W.kv("POST", vault, "/keys/" .. name .. "/create", { kty = kty or "RSA", key_size = 2048,
    attributes = { enabled = true } })
  assert(r.status == 200, r.body)
  return r.json.key.kid
end

function W.set_key_enabled(kid, enabled)
  local vault, path = kid:match("^https://([^.]+)%.vault%.azure%.net(/keys/.+)$")
  local r = W.kv("PATCH", vault, path, { attributes = { enabled = enabled } })
  assert(r.status == 200, r.body)
end

function W.versionless(kid) return (kid:gsub("/[%x]+$", "")) end

function W.reg_path(sub, rg, name)
  return "/subscriptions/" .. sub .. "/resourceGroups/" .. rg ..
    "/providers/Microsoft.ContainerRegistry/registries/" .. name
end

--- Polls an Azure-AsyncOperation URL until it is terminal; returns the status body.
function W.wait(res)
  local url = res.headers["azure-asyncoperation"]
  assert(url, "no Azure-AsyncOperation header: " .. tostring(res.status) .. " " .. tostring(res.body))
  for _ = 1, 30 do
    local r = E.request({ method = "GET", url = url,
      headers = { Authorization = "Bearer " .. E.arm_token() } })
    assert(r.status == 200, r.body)
    if r.json.status ~= "InProgress" and r.json.status ~= "Running" and r.json.status ~= "Accepted" then
      return r.json
    end
  end
  error("operation did not finish")
end

--- The CMK create body for a registry with one user-assigned identity.
function W.cmk_body(uai, kid, extra)
  local b = { location = "westus", sku = { name = "Premium" },
    identity = { type = "UserAssigned", userAssignedIdentities = { [uai.id] = {} } },
    properties = { adminUserEnabled = false, encryption = { status = "enabled",
      keyVaultProperties = { keyIdentifier = kid, identity = uai.properties.clientId } } } }
  for k, v in pairs(extra or {}) do b[k] = v end
  return b
end

function W.get_registry(sub, rg, name)
  return E.arm("GET", W.reg_path(sub, rg, name), nil, { api_version = W.ACR_API })
end

--- Data-plane GET https://{name}.azurecr.io/v2/
function W.v2(name, suffix)
  local url = "https://" .. name:lower() .. (suffix or ".azurecr.io") .. "/v2/"
  return assert(E.request({ method = "GET", url = url }))
end

--- A full CMK world: rg, uai, vault (access policy for the uai), key; registry created with it.
function W.world(opts)
  opts = opts or {}
  local s = E.seed()
  local sub = s.subscription_id
  -- opts.vault_sub: the vault lives in another subscription of the tenant (same rg name).
  local w = { sub = sub, rg = opts.rg or W.uniq("cmkrg") }
  w.vault_sub = opts.vault_sub or sub
  W.create_rg(sub, w.rg)
  if w.vault_sub ~= sub then W.create_rg(w.vault_sub, w.rg) end
  w.uai = W.create_uai(sub, w.rg, opts.uai or "cmk-uai")
  w.vault = opts.vault or W.uniq("kv")
  local vsub = w.vault_sub
  W.create_vault(vsub, w.rg, w.vault, { rbac = opts.rbac, network = opts.network })
  if opts.rbac then
    w.assignment = W.assign_role(vsub, W.vault_path(vsub, w.rg, w.vault), W.KV_CRYPTO_SERVICE_ENCRYPTION_USER,
      w.uai.properties.principalId)
  elseif opts.grant ~= false then
    W.policy(vsub, w.rg, w.vault, "add", w.uai.properties.principalId)
  end
  w.kid = W.create_key(w.vault, opts.key or "cmkkey", opts.kty)
  if opts.registry ~= false then
    w.reg = opts.registry or W.uniq("cmkreg")
    local kid = opts.versionless and W.versionless(w.kid) or w.kid
    local r = E.arm("PUT", W.reg_path(sub, w.rg, w.reg), W.cmk_body(w.uai, kid),
      { api_version = W.ACR_API })
    assert(r.status == 201, r.body)
    assert(W.wait(r).status == "Succeeded")
  end
  return w
end

return W
