--- emu.keyvault.access: can a principal use a Key Vault key the way a CMK service does?
-- The stable interface other emulator services (Container Registry) call on every access:
--
--   access.check_key(key_id, who)
--     key_id  key URL, versioned or versionless, any cloud's vault suffix, any case
--     who     { principal_id = "<object id>", trusted_service = true|false }
--             trusted_service: the caller is an Azure trusted service using its system-assigned
--             identity (ACR with identity "system"): it passes the vault firewall when
--             networkAcls.bypass is AzureServices.
--   ->  { ok = true, version = "<32 hex>", kid = "<versioned kid>", key = <key info>,
--         expired = true?, not_yet_valid = true? }       (outside nbf/exp: unwrap works, wrap not)
--   ->  { ok = false, reason = "vault_not_found" | "vault_deleted" | "firewall" | "no_access" |
--         "key_not_found" | "key_deleted" | "version_not_found" | "key_disabled" | "key_not_rsa",
--         message = "...", can_unwrap = bool }
--   Order of checks (as Key Vault does it): vault, firewall, authorization, key, version,
--   enabled, key type.
--   access = access policy with get + wrapKey + unwrapKey for that principal (access-policy
--   vault) or RBAC data actions keys/read + keys/wrap/action + keys/unwrap/action at vault or
--   key scope (RBAC vault).
--
--   access.newest_version(key_id) -> {version=, kid=, created=, enabled=} | nil, reason
--   access.versions(key_id)       -> array of {version=, kid=, created=, enabled=} (oldest first)
--                                    | nil, reason
--
-- The data plane (emu.services.keyvault) uses the same authorization helpers:
--   access.allowed(vault, oid, perm, key_name) -> bool     perm: an access-policy permission
--   access.firewall_ok(vault, opts)            -> true | false, "acl" | "public"
local store = require("emu.keyvault.store")
local rbac = require("emu.rbac")

local M = {}

-- Access-policy permission -> RBAC data action (the mapping of Microsoft's
-- KeyVault-AccessPolicyToRBAC-CompareTool).
M.DATA_ACTIONS = {
  get = "Microsoft.KeyVault/vaults/keys/read",
  list = "Microsoft.KeyVault/vaults/keys/read",
  create = "Microsoft.KeyVault/vaults/keys/create/action",
  update = "Microsoft.KeyVault/vaults/keys/update/action",
  import = "Microsoft.KeyVault/vaults/keys/import/action",
  delete = "Microsoft.KeyVault/vaults/keys/delete",
  recover = "Microsoft.KeyVault/vaults/keys/recover/action",
  purge = "Microsoft.KeyVault/vaults/keys/purge/action",
  backup = "Microsoft.KeyVault/vaults/keys/backup/action",
  restore = "Microsoft.KeyVault/vaults/keys/restore/action",
  encrypt = "Microsoft.KeyVault/vaults/keys/encrypt/action",
  decrypt = "Microsoft.KeyVault/vaults/keys/decrypt/action",
  wrapkey = "Microsoft.KeyVault/vaults/keys/wrap/action",
  unwrapkey = "Microsoft.KeyVault/vaults/keys/unwrap/action",
  sign = "Microsoft.KeyVault/vaults/keys/sign/action",
  verify = "Microsoft.KeyVault/vaults/keys/verify/action",
  release = "Microsoft.KeyVault/vaults/keys/release/action",
  rotate = "Microsoft.KeyVault/vaults/keys/rotate/action",
  getrotationpolicy = "Microsoft.KeyVault/vaults/keyrotationpolicies/read",
  setrotationpolicy = "Microsoft.KeyVault/vaults/keyrotationpolicies/write",
  listdeleted = "Microsoft.KeyVault/vaults/keys/read",
}

-- Canonical spelling of each permission (Key Vault's error texts use it).
M.PERM_NAMES = {
  get = "get", list = "list", create = "create", update = "update", import = "import", delete = "delete",
  recover = "recover", purge = "purge", backup = "backup", restore = "restore", encrypt = "encrypt",
  decrypt = "decrypt", wrapkey = "wrapKey", unwrapkey = "unwrapKey", sign = "sign", verify = "verify",
  release = "release", rotate = "rotate", getrotationpolicy = "getrotationpolicy",
  setrotationpolicy = "setrotationpolicy", listdeleted = "list",
}

--- The vault's key-permission set of a principal from its access policies (lower-case names).
function M.policy_permissions(vault, oid)
  local set = {}
  if not oid then return set end
  local tid = vault.properties and vault.properties.tenantId
  for _, ap in ipairs((vault.properties and vault.properties.accessPolicies) or {}) do
    if type(ap) == "table" and type(ap.objectId) == "string" and ap.objectId:lower() == oid:lower()
      and (not tid or type(ap.tenantId) ~= "string" or ap.tenantId:lower() == tid:lower()) then
      local keys = type(ap.permissions) == "table" and ap.permissions.keys or {}
      for _, p in ipairs(type(keys) == "table" and keys or {}) do
        if type(p) == "string" then set[p:lower()] = true end
      end
    end
  end
  return set
end

function M.rbac_mode(vault)
  return vault.properties and vault.properties.enableRbacAuthorization == true
end

--- The RBAC scope of a key (its ARM-style id under the vault), or the vault id.
function M.scope(vault, key_name)
  if key_name then return vault.id .. "/keys/" .. key_name end
  return vault.id
end

--- Whether principal oid may do `perm` (access-policy permission name, any case) on the vault
-- (key_name: for RBAC, assignments at the key's scope count too).
function M.allowed(vault, oid, perm, key_name)
  perm = perm:lower()
  if M.rbac_mode(vault) then
    local action = M.DATA_ACTIONS[perm]
    if not action then return false end
    return (rbac.allowed(oid, action, M.scope(vault, key_name), true))
  end
  if perm == "listdeleted" then perm = "list" end
  local set = M.policy_permissions(vault, oid)
  return set[perm] == true or set.all == true
end

--- IPv4 text -> number, or nil.
local function ip4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end
M.ip4 = ip4

--- Does ipRules value ("1.2.3.4", "1.2.3.0/24") contain ip?
function M.ip_in_rule(ip, rule)
  local base, bits = rule:match("^([%d%.]+)/(%d+)$")
  if not base then base, bits = rule, "32" end
  local n, x = ip4(base), ip4(ip)
  bits = tonumber(bits)
  if not n or not x or bits > 32 then return false end
  local size = 2 ^ (32 - bits)
  return math.floor(n / size) == math.floor(x / size)
end

--- Whether a request passes the vault's network rules.
-- opts.trusted_service: Azure trusted service (bypass AzureServices applies);
-- opts.ip: client address to match against ipRules (nil: none, e.g. an Azure service's own).
function M.firewall_ok(vault, opts)
  local p = vault.properties or {}
  local acls = type(p.networkAcls) == "table" and p.networkAcls or {}
  local public_disabled = type(p.publicNetworkAccess) == "string" and p.publicNetworkAccess:lower() == "disabled"
  local deny = type(acls.defaultAction) == "string" and acls.defaultAction:lower() == "deny"
  if not deny and not public_disabled then return true end
  local bypass = acls.bypass
  if bypass == nil then bypass = "AzureServices" end
  if opts.trusted_service and type(bypass) == "string" and bypass:lower():find("azureservices", 1, true) then
    return true
  end
  if public_disabled then return false, "public" end
  if opts.ip then
    for _, r in ipairs(type(acls.ipRules) == "table" and acls.ipRules or {}) do
      if type(r) == "table" and type(r.value) == "string" and M.ip_in_rule(opts.ip, r.value) then return true end
    end
  end
  return false, "acl"
end

--- Key Vault's text when public network access is disabled (innererror ForbiddenByConnection).
function M.connection_message(vault, principal)
  local tid = require("emu.seed").data.tenant_id
  local caller = principal and string.format("appid=%s;oid=%s;iss=https://sts.windows.net/%s/",
    tostring(principal.appid or principal.oid), tostring(principal.oid), principal.tid or tid) or "unknown"
  return "Public network access is disabled and request is not from a trusted service nor via an approved " ..
    "private link.\r\nCaller: " .. caller .. "\r\nVault: " .. vault.name .. ";location=" .. store.location(vault)
end

--- Key Vault's access-policy denial text.
function M.policy_denied_message(vault, principal, perm)
  local tid = require("emu.seed").data.tenant_id
  return string.format("The user, group or application 'appid=%s;oid=%s;iss=https://sts.windows.net/%s/' does " ..
    "not have keys %s permission on key vault '%s;location=%s'. For help resolving this issue, please see " ..
    "https://go.microsoft.com/fwlink/?linkid=2125287", tostring(principal.appid or principal.oid),
    tostring(principal.oid), principal.tid or tid, M.PERM_NAMES[perm:lower()] or perm, vault.name,
    store.location(vault))
end

--- Key Vault's RBAC denial text.
function M.rbac_denied_message(vault, principal, perm, key_name)
  local tid = require("emu.seed").data.tenant_id
  local resource = vault.id .. (key_name and ("/keys/" .. key_name) or "")
  return "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or " ..
    "role definitions were changed recently, please observe propagation time.\r\n" ..
    string.format("Caller: appid=%s;oid=%s;iss=https://sts.windows.net/%s/\r\n", tostring(principal.appid or
      principal.oid), tostring(principal.oid), principal.tid or tid) ..
    "Action: '" .. (M.DATA_ACTIONS[perm:lower()] or perm) .. "'\r\n" ..
    "Resource: '" .. resource:lower() .. "'\r\n" ..
    "Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n" ..
    "Vault: " .. vault.name .. ";location=" .. store.location(vault) .. "\r\n"
end

--- Key Vault's firewall denial text.
function M.firewall_message(vault, principal, ip)
  local tid = require("emu.seed").data.tenant_id
  local caller = principal and string.format("appid=%s;oid=%s;iss=https://sts.windows.net/%s/",
    tostring(principal.appid or principal.oid), tostring(principal.oid), principal.tid or tid) or "unknown"
  return "Client address is not authorized and caller is not a trusted service.\r\nClient address: " ..
    (ip or "unknown") .. "\r\nCaller: " .. caller .. "\r\nVault: " .. vault.name .. ";location=" ..
    store.location(vault)
end

-- ---------------------------------------------------------------- check_key

local function fail(reason, message, can_unwrap)
  return { ok = false, reason = reason, message = message, can_unwrap = can_unwrap == true }
end

local function key_info(vault, k, ver, base)
  local j = ver.jwk or {}
  return {
    name = k.name, vault = vault.name, version = ver.v, kid = base .. "/keys/" .. k.name .. "/" .. ver.v,
    kty = ver.kty, crv = ver.crv, key_size = ver.size, key_ops = ver.key_ops, n = j.n, e = j.e,
    enabled = ver.enabled, nbf = ver.nbf, exp = ver.exp, created = ver.created, updated = ver.updated,
    tags = ver.tags, managed = ver.managed,
  }
end

--- See the module header.
function M.check_key(key_id, who)
  who = who or {}
  local id, why = store.parse_kid(key_id)
  if not id then
    if why == "vault" then
      return fail("vault_not_found", "The key identifier '" .. tostring(key_id) .. "' does not name a key vault.")
    end
    return fail("key_not_found", "The key identifier '" .. tostring(key_id) .. "' is not a valid key identifier.")
  end
  local vault, vwhy = store.vault(id.vault)
  if not vault then
    if vwhy == "deleted" then
      return fail("vault_deleted", "The key vault '" .. id.vault .. "' is deleted (soft-deleted, recoverable).")
    end
    return fail("vault_not_found", "The key vault '" .. id.vault .. "' was not found.")
  end
  local oid = who.principal_id
  local principal = { oid = oid, appid = nil }
  if oid then
    local p = require("emu.directory").get(oid)
    if p then principal.appid = p.appId end
  end
  local net_ok, net_why = M.firewall_ok(vault, { trusted_service = who.trusted_service == true })
  if not net_ok then
    if net_why == "public" then return fail("firewall", M.connection_message(vault, principal)) end
    return fail("firewall", M.firewall_message(vault, principal, who.client_ip or "Azure service"))
  end
  local kname = id.name
  local can = {
    get = M.allowed(vault, oid, "get", kname),
    wrap = M.allowed(vault, oid, "wrapKey", kname),
    unwrap = M.allowed(vault, oid, "unwrapKey", kname),
  }
  if not (can.get and can.wrap and can.unwrap) then
    local missing = not can.get and "get" or (not can.wrap and "wrapKey" or "unwrapKey")
    local msg = M.rbac_mode(vault) and M.rbac_denied_message(vault, principal, missing, kname)
      or M.policy_denied_message(vault, principal, missing)
    -- can_unwrap: data already wrapped stays readable when only wrap/get are missing.
    local unwrap_ok = false
    if can.unwrap then
      local k = store.key(id.vault, kname)
      local ver = k and not k.deleted and store.find_version(k, id.version)
      unwrap_ok = ver and ver.enabled and (ver.kty == "RSA" or ver.kty == "RSA-HSM") or false
    end
    return fail("no_access", msg, unwrap_ok)
  end
  local k = store.auto_rotate(id.vault, kname)
  if not k then
    return fail("key_not_found", "A key with (name/id) " .. kname .. " was not found in this key vault. If you " ..
      "recently deleted this key you may be able to recover it using the correct recovery command. For help " ..
      "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
  end
  if k.deleted then
    return fail("key_deleted", "Key " .. k.name .. " is currently in a deleted but recoverable state.")
  end
  local ver = store.find_version(k, id.version)
  if not ver then
    return fail("version_not_found", "A key with (name/id) " .. kname .. "/" .. id.version .. " was not found in " ..
      "this key vault. If you recently deleted this key you may be able to recover it using the correct recovery " ..
      "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
  end
  if not ver.enabled then
    return fail("key_disabled", "Operation wrapKey is not allowed on a disabled key.")
  end
  if ver.kty ~= "RSA" and ver.kty ~= "RSA-HSM" then
    return fail("key_not_rsa", "The key '" .. kname .. "' is of type " .. tostring(ver.kty) ..
      "; only RSA and RSA-HSM keys can wrap and unwrap.")
  end
  ver = store.ensure_material(id.vault, kname, ver)
  local base = store.base_url(vault.name, id.cloud)
  local res = { ok = true, version = ver.v, kid = base .. "/keys/" .. k.name .. "/" .. ver.v,
    key = key_info(vault, k, ver, base) }
  local now = store.now()
  if ver.exp and now >= ver.exp then res.expired = true end
  if ver.nbf and now < ver.nbf then res.not_yet_valid = true end
  return res
end

-- ---------------------------------------------------------------- versions

local function resolve(key_id)
  local id, why = store.parse_kid(key_id)
  if not id then return nil, why == "vault" and "vault_not_found" or "key_not_found" end
  local vault, vwhy = store.vault(id.vault)
  if not vault then return nil, vwhy == "deleted" and "vault_deleted" or "vault_not_found" end
  local k = store.auto_rotate(id.vault, id.name)
  if not k then return nil, "key_not_found" end
  if k.deleted then return nil, "key_deleted" end
  return k, vault, id
end

local function vinfo(base, k, v)
  return { version = v.v, kid = base .. "/keys/" .. k.name .. "/" .. v.v, created = v.created, enabled = v.enabled,
    updated = v.updated, nbf = v.nbf, exp = v.exp }
end

--- The newest version of the key (after any automatic rotation the clock has made due).
function M.newest_version(key_id)
  local k, vault, id = resolve(key_id)
  if not k then return nil, vault end
  return vinfo(store.base_url(vault.name, id.cloud), k, store.newest(k))
end

--- All versions of the key, oldest first.
function M.versions(key_id)
  local k, vault, id = resolve(key_id)
  if not k then return nil, vault end
  local base = store.base_url(vault.name, id.cloud)
  local out = {}
  for _, v in ipairs(k.versions) do out[#out + 1] = vinfo(base, k, v) end
  return out
end

return M
