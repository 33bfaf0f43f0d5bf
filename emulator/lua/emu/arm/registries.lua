--- emu.arm.registries: Microsoft.ContainerRegistry/registries (ARM) with the customer-managed-key
-- (CMK) rules of the service, and the internal entry points the deployment engine uses
-- (M.put_resource) so that templates go through exactly the same checks.
--
-- Record ("arm:<lower id>"): the public registry JSON, identity kept in ARM's canonical
-- casing ("UserAssigned"; GET renders ACR's camelCase "userAssigned"), plus private fields:
--   _target    the registry as it will be once the running operation completes
--   _op        id of that operation (emu.lro, action "registries.apply")
--   _sys_client  client id of the system-assigned identity
--   _key_created simulated time the key version in use was created (versionless pickup)
--   _failed_create  its create failed: the next PUT creates it again
-- "acr:name:<lower name>" -> lower id reserves the globally unique login server name.
--
-- Texts: those Azure is documented or recorded to send are Azure's; the ones marked
-- `-- synthetic` are written in the service's style because the exact text is unknown.
local arm = require("emu.arm")
local errors = require("emu.errors")
local json = require("emu.json")
local state = require("emu.state")
local clock = require("emu.clock")
local util = require("emu.util")
local lro = require("emu.lro")
local directory = require("emu.directory")
local hosts = require("emu.hosts")

local M = {}

local TYPE = "Microsoft.ContainerRegistry/registries"
local UAI_TYPE = "microsoft.managedidentity/userassignedidentities"
M.TYPE = TYPE

M.API_VERSIONS = { "2025-11-01", "2025-05-01-preview", "2025-04-01", "2025-03-01-preview", "2024-11-01-preview",
  "2023-11-01-preview", "2023-08-01-preview", "2023-07-01", "2023-06-01-preview", "2023-01-01-preview",
  "2022-12-01", "2022-02-01-preview", "2021-12-01-preview", "2021-09-01", "2021-08-01-preview",
  "2021-06-01-preview", "2020-11-01-preview", "2019-12-01-preview", "2019-06-01-preview", "2019-05-01",
  "2017-10-01", "2017-03-01" }

arm.register_type({ type = TYPE, tracked = true, api_versions = M.API_VERSIONS })

--- A new key version is adopted this long after its creation (ACR polls the vault; the
-- documented bound is "within one hour").
M.PICKUP_DELAY = 50 * 60
--- Registries per page of the list operations.
M.PAGE_SIZE = 100

local CMK_LINK = "For more information on bring your own key, please visit 'https://aka.ms/acr/cmk'."

local function access()
  return require("emu.keyvault.access")
end

local function bad(code, msg)
  errors.throw(errors.arm(400, code, msg))
end

-- ---------------------------------------------------------------- small helpers

--- t[name] with ARM's case-insensitive property matching (exact match first).
local function ci(t, name)
  if type(t) ~= "table" then return nil end
  local v = t[name]
  if v ~= nil then return v end
  local l = name:lower()
  for k, x in pairs(t) do
    if type(k) == "string" and k:lower() == l then return x end
  end
  return nil
end
M.ci = ci

local function present(v) return v ~= nil and v ~= json.null end

local function is_object(v) return type(v) == "table" and not json.is_array(v) end

-- ARM writes "resourcegroups" in lower case in identity ids (as the UAI service does).
local function uai_key(id)
  return (id:gsub("/[Rr][Ee][Ss][Oo][Uu][Rr][Cc][Ee][Gg][Rr][Oo][Uu][Pp][Ss]/", "/resourcegroups/", 1))
end

local function iso7_offset(t)
  return (clock.iso(t):gsub("Z$", "+00:00"))
end

local function reg_id(sub, rg, name)
  return "/subscriptions/" .. sub .. "/resourceGroups/" .. rg .. "/providers/" .. TYPE .. "/" .. name
end
M.id = reg_id

local function tenant_of(sub)
  local s = state.get("sub:" .. sub:lower())
  return s and s.tenantId or require("emu.seed").data.tenant_id
end

-- ---------------------------------------------------------------- validation of parts

local SKUS = { basic = "Basic", standard = "Standard", premium = "Premium", classic = "Classic" }

local function parse_sku(v, required)
  if not present(v) then
    if required then
      bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
        "'Required property 'sku' not found in JSON. Path '', line 1, position 1.'.") -- synthetic
    end
    return nil
  end
  local name = is_object(v) and ci(v, "name")
  local s = type(name) == "string" and SKUS[name:lower()]
  if not s then
    -- synthetic text:
    bad("InvalidSku", string.format("The SKU '%s' is not valid. Valid SKUs are Basic, Standard and Premium.",
      type(name) == "string" and name or tostring(name)))
  end
  if s == "Classic" then
    -- The CLI says "Classic SKU is no longer supported. Please select a managed SKU."; the service analogue:
    bad("ClassicSkuNotSupported", "Classic SKU is no longer supported. Please select a managed SKU " .. -- synthetic
      "(Basic, Standard or Premium).")
  end
  return s
end

local ID_TYPES = { none = "None", systemassigned = "SystemAssigned", userassigned = "UserAssigned",
  ["systemassigned,userassigned"] = "SystemAssigned, UserAssigned" }
local CAMEL = { SystemAssigned = "systemAssigned", UserAssigned = "userAssigned",
  ["SystemAssigned, UserAssigned"] = "systemAssigned, userAssigned", None = "none" }

local function has_user(t) return t == "UserAssigned" or t == "SystemAssigned, UserAssigned" end
local function has_system(t) return t == "SystemAssigned" or t == "SystemAssigned, UserAssigned" end

local function parse_id_type(v)
  if not present(v) then return "None" end
  local t = type(v) == "string" and ID_TYPES[v:lower():gsub("%s+", "")]
  if not t then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Error converting value \"" .. tostring(v) .. "\" to type " .. -- synthetic (Newtonsoft style)
      "'Microsoft.ContainerRegistry.ResourceType.ResourceIdentityType'. Path 'identity.type'.'.")
  end
  return t
end

--- The user-assigned identity resource behind an ARM id, or raises Azure's error.
local function resolve_uai(id)
  local res = type(id) == "string" and arm.get(id)
  if not res or res.type:lower() ~= UAI_TYPE then
    -- ARM's managed-identity broker error (message shape from memory): -- synthetic
    bad("FailedIdentityOperation", "Identity operation for resource '" .. tostring(id) .. "' failed with error " ..
      "'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{\"error\":{\"code\":" ..
      "\"NotFound\",\"message\":\"Resource '" .. tostring(id) .. "' does not exist or one of its parent " ..
      "resources does not exist.\"}}'.'.")
  end
  return res
end

local function uai_entry(res)
  local p = res.properties or {}
  return { principalId = p.principalId, clientId = p.clientId }
end

local no_identity_access_early -- = no_identity_access (defined below)

--- New identity from a request `identity` object. old: the registry's current identity (PATCH merges the
-- user-assigned map the ARM way: `null` removes an entry). Returns the identity table (canonical casing).
local function build_identity(v, old, patch, sub, rec)
  if present(v) and not is_object(v) then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Unexpected token for identity. Path 'identity'.'.") -- synthetic
  end
  if not present(v) then
    if patch then return old end
    return { type = "None" }
  end
  local t = parse_id_type(ci(v, "type"))
  local map_in = ci(v, "userAssignedIdentities")
  if present(map_in) and not is_object(map_in) then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Unexpected token for userAssignedIdentities. Path 'identity.userAssignedIdentities'.'.") -- synthetic
  end
  local map = {}
  if patch and old and old.userAssignedIdentities and has_user(t) then
    for k, e in pairs(old.userAssignedIdentities) do map[k:lower()] = { key = k, e = e } end
  end
  if present(map_in) then
    for k, e in pairs(map_in) do
      if e == json.null then
        map[k:lower()] = nil
      else
        local res = resolve_uai(k)
        map[k:lower()] = { key = uai_key(res.id), e = uai_entry(res) }
      end
    end
  end
  local out = { type = t }
  local n = 0
  if has_user(t) then
    out.userAssignedIdentities = {}
    for _, x in pairs(map) do
      out.userAssignedIdentities[x.key] = x.e
      n = n + 1
    end
    if n == 0 then
      -- removing the last identity of a CMK registry: the service's identity message comes first
      local enc = rec and rec.properties and rec.properties.encryption
      local kv = enc and enc.status == "enabled" and enc.keyVaultProperties
      if kv and type(kv.identity) == "string" and kv.identity:lower() ~= "system" then
        no_identity_access_early(rec.id, kv.identity, rec.name)
      end
      -- synthetic text:
      bad("BadRequest", "The identity type '" .. t .. "' requires at least one user-assigned identity in " ..
        "'identity.userAssignedIdentities'.")
    end
  elseif present(map_in) and next(map_in) ~= nil then
    local any = false
    for _, e in pairs(map_in) do if e ~= json.null then any = true end end
    if any then
      bad("BadRequest", "The identity type '" .. t .. "' does not allow user-assigned identities; use " .. -- synthetic
        "'UserAssigned' or 'SystemAssigned, UserAssigned'.")
    end
  end
  if has_system(t) then
    if old and old.principalId and has_system(old.type) then
      out.principalId, out.tenantId = old.principalId, old.tenantId
      out._client = rec and rec._sys_client
    else
      out.principalId, out.tenantId, out._client = util.uuid(), tenant_of(sub), util.uuid()
      out._new_system = true
    end
  end
  return out
end

-- Key id: https://{vault}{vault suffix of this cloud}/keys/{name}[/{32-hex version}]
local function parse_kid(kid, cloud)
  if type(kid) ~= "string" then return nil end
  local suffix = cloud.vault_suffix:gsub("%p", "%%%0")
  local vault, name, rest = kid:match("^[Hh][Tt][Tt][Pp][Ss]://([%w%-]+)" .. suffix .. "/keys/([%w%-]+)(.*)$")
  if not vault or #vault < 3 or #vault > 24 then return nil end
  if rest == "" then return { vault = vault, name = name, versionless = true } end
  local ver = rest:match("^/(%x+)$")
  if ver and #ver == 32 then return { vault = vault, name = name, version = ver:lower() } end
  return nil
end
M.parse_kid = parse_kid

--- Who the CMK identity value designates on this registry: {principal_id, client_id, system, uai_id}
-- or nil.
local function cmk_principal(identity, value, rec)
  if type(value) ~= "string" then return nil end
  if value:lower() == "system" then
    if identity and has_system(identity.type) and identity.principalId then
      return { principal_id = identity.principalId, client_id = identity._client or (rec and rec._sys_client),
        system = true }
    end
    return nil
  end
  if identity and identity.userAssignedIdentities then
    for k, e in pairs(identity.userAssignedIdentities) do
      if type(e) == "table" and type(e.clientId) == "string" and e.clientId:lower() == value:lower() then
        return { principal_id = e.principalId, client_id = e.clientId, uai_id = k }
      end
    end
  end
  return nil
end
M.cmk_principal = cmk_principal

local function no_identity_access(id, value, name)
  bad("BadRequest", string.format("Azure resource '%s' does not have access to identity '%s' Try forcibly " ..
    "adding the identity to the registry %s. %s", uai_key(id), tostring(value), name, CMK_LINK))
end

no_identity_access_early = no_identity_access

local function failed_access(kid, client)
  -- Text: Azure's own (documented). The error code is not known: -- synthetic code
  bad("KeyVaultAccessFailed", string.format("Failed to access KeyId '%s'. Verify that identity '%s' has 'Get, " ..
    "Wrap Key, Unwrap Key' permission on key '%s'. %s", kid, tostring(client), kid, CMK_LINK))
end

--- Checks a keyVaultProperties request against the registry's identity and the vault.
-- Returns the encryption block to store and the created time of the key version in use.
local function check_encryption(kvp, identity, id, name, cloud, rec)
  if not is_object(kvp) then
    -- synthetic text:
    bad("InvalidEncryptionConfiguration", "Encryption status 'enabled' requires 'keyVaultProperties' with " ..
      "'keyIdentifier' and 'identity'. " .. CMK_LINK)
  end
  local kid, who = ci(kvp, "keyIdentifier"), ci(kvp, "identity")
  if type(kid) ~= "string" or kid == "" or type(who) ~= "string" or who == "" then
    bad("InvalidEncryptionConfiguration", "Both 'keyVaultProperties.keyIdentifier' and " .. -- synthetic
      "'keyVaultProperties.identity' are required to enable encryption with a customer-managed key. " .. CMK_LINK)
  end
  local p = cmk_principal(identity, who, rec)
  if not p then no_identity_access(id, who, name) end
  local parsed = parse_kid(kid, cloud)
  if not parsed then
    -- synthetic text:
    bad("InvalidKeyIdentifier", string.format("The key identifier '%s' is not a valid Key Vault key identifier. " ..
      "Expected 'https://{vault-name}%s/keys/{key-name}' or 'https://{vault-name}%s/keys/{key-name}/{key-version}'. %s",
      kid, cloud.vault_suffix, cloud.vault_suffix, CMK_LINK))
  end
  local r = access().check_key(kid, { principal_id = p.principal_id, trusted_service = p.system == true })
  if type(r) ~= "table" then failed_access(kid, p.client_id) end
  if not r.ok then
    if r.reason == "key_not_rsa" then
      -- synthetic text:
      bad("KeyTypeNotSupported", string.format("The key '%s' is not supported for registry encryption. Only RSA " ..
        "and RSA-HSM keys are supported. %s", kid, CMK_LINK))
    end
    failed_access(kid, p.client_id)
  end
  -- Wrapping a new data key needs a usable key: expired / not yet valid keys cannot wrap.
  if r.expired or r.not_yet_valid then failed_access(kid, p.client_id) end
  local vkid = type(r.kid) == "string" and r.kid or kid
  local created = type(r.key) == "table" and r.key.created or nil
  if not created and parsed.versionless then
    local n = access().newest_version(kid)
    created = n and n.created
  end
  return {
    status = "enabled",
    keyVaultProperties = {
      keyIdentifier = kid, versionedKeyIdentifier = vkid,
      identity = p.system and "system" or p.client_id,
      keyRotationEnabled = parsed.versionless == true,
    },
  }, created
end

local function premium_needed(what)
  bad("FeatureNotSupportedForSku", what .. " is only supported for the Premium SKU. " .. -- synthetic
    "Please upgrade the registry to the Premium SKU. " .. CMK_LINK)
end

local function trust_enabled(policies)
  local tp = ci(policies, "trustPolicy")
  local st = ci(tp, "status")
  return type(st) == "string" and st:lower() == "enabled"
end

local function content_trust_blocked(name)
  -- Exact service text, typos included (Azure/PSRule.Rules.Azure#1810).
  bad("BlockedForEncryptionEnabledRegistry", "this feature 'ContenTrust' is currently not supported when " ..
    "encryption is enable for the resource " .. name .. ". For more information on customer-managed keys, please " ..
    "visit 'https://aka.ms/acr/cmk'.")
end

local function default_policies(now)
  return {
    quarantinePolicy = { status = "disabled" },
    trustPolicy = { type = "Notary", status = "disabled" },
    retentionPolicy = { days = 7, lastUpdatedTime = iso7_offset(now), status = "disabled" },
    exportPolicy = { status = "enabled" },
  }
end

local function merge_policies(cur, v)
  if not present(v) then return cur end
  if not is_object(v) then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Unexpected token for policies. Path 'properties.policies'.'.") -- synthetic
  end
  local out = json.copy(cur)
  for _, k in ipairs({ "quarantinePolicy", "trustPolicy", "retentionPolicy", "exportPolicy",
    "azureADAuthenticationAsArmPolicy", "softDeletePolicy" }) do
    local x = ci(v, k)
    if present(x) and not is_object(x) then
      bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
        "'Unexpected token for " .. k .. ". Path 'properties.policies." .. k .. "'.'.") -- synthetic
    end
    if is_object(x) then
      out[k] = out[k] or {}
      for kk, vv in pairs(x) do
        local canon = kk:sub(1, 1):lower() .. kk:sub(2)
        if type(vv) == "string" and (canon == "status") then vv = vv:lower() end
        out[k][canon] = vv
      end
    end
  end
  return out
end

local function bool_prop(props, name, cur)
  local v = ci(props, name)
  if v == nil or v == json.null then return cur end
  if type(v) ~= "boolean" then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Could not convert string to boolean: " .. tostring(v) .. ". Path 'properties." .. name .. "'.'.") -- synthetic
  end
  return v
end

local function enum_prop(props, name, cur, allowed)
  local v = ci(props, name)
  if v == nil or v == json.null then return cur end
  if type(v) == "string" then
    for _, a in ipairs(allowed) do if a:lower() == v:lower() then return a end end
  end
  bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
    -- synthetic text:
    "'Error converting value \"" .. tostring(v) .. "\" to type '" .. name .. "'. Path 'properties." .. name ..
    "'.'.")
end

-- ---------------------------------------------------------------- settle / pickup

-- A failed operation (emu.lro's forced outcomes) leaves the registry "Failed", its change not made.
local function fail_target(id, opid)
  return arm.update(id, function(cur)
    if not cur or not cur._target or (opid and cur._op ~= opid) then return cur end
    cur._target, cur._op = nil, nil
    -- a create that failed leaves a Failed registry that a PUT creates again (ARM's rule for
    -- a failed create: send the PUT again), encryption included
    if cur.properties.provisioningState == "Creating" then cur._failed_create = true end
    cur.properties.provisioningState = "Failed"
    return cur
  end)
end

--- Completes a pending operation's target now (force) or when its time is due.
local function settle(id, force)
  local rec = arm.get(id)
  if not rec or not rec._op then return rec end
  local op = lro.get(rec._op)
  if not force and op and op.status == "InProgress" and clock.now() < (op.done_at or 0) then return rec end
  if op and op.forced then return fail_target(id, rec._op) end
  return arm.update(id, function(cur)
    if not cur or not cur._op or not cur._target then return cur end
    local t = cur._target
    t.properties.provisioningState = "Succeeded"
    return t
  end)
end

lro.register("registries.apply", function(args)
  local rec = arm.update(args.id, function(cur)
    if not cur or cur._op ~= args.op or not cur._target then return cur end
    local t = cur._target
    t.properties.provisioningState = "Succeeded"
    return t
  end)
  require("emu.acr.content_key").follow(rec) -- a new key version re-wraps the content key now
  return true
end, function(args) fail_target(args.id, args.op) end)

--- Versionless keys: adopt a newer enabled version once the simulated clock passed its
-- creation + PICKUP_DELAY, if the registry identity reaches it and the version in use is still
-- enabled. Otherwise the registry stays on the version in use.
local function pickup(rec)
  local enc = rec.properties and rec.properties.encryption
  local kvp = enc and enc.keyVaultProperties
  if not (enc and enc.status == "enabled" and kvp and kvp.keyRotationEnabled) then return rec end
  local ok_acc, n = pcall(function() return access().newest_version(kvp.keyIdentifier) end)
  if not ok_acc or type(n) ~= "table" or not n.kid or not n.enabled then return rec end
  if type(kvp.versionedKeyIdentifier) == "string" and n.kid:lower() == kvp.versionedKeyIdentifier:lower() then
    return rec
  end
  -- newer = later in the key's version list (creation times have one-second resolution)
  local vers = access().versions(kvp.keyIdentifier)
  local pos_cur, pos_new
  for i, v in ipairs(type(vers) == "table" and vers or {}) do
    if type(v.kid) == "string" then
      if v.kid:lower() == tostring(kvp.versionedKeyIdentifier):lower() then pos_cur = i end
      if v.kid:lower() == n.kid:lower() then pos_new = i end
    end
  end
  if pos_cur and pos_new then
    if pos_new <= pos_cur then return rec end
  elseif type(n.created) ~= "number" or n.created <= (rec._key_created or 0) then
    return rec
  end
  if type(n.created) ~= "number" then return rec end
  local due = n.created + M.PICKUP_DELAY
  if clock.now() < due then return rec end
  local p = cmk_principal(rec.identity, kvp.identity, rec)
  if not p then return rec end
  local opts = { principal_id = p.principal_id, trusted_service = p.system == true }
  local old = access().check_key(kvp.versionedKeyIdentifier, opts)
  if type(old) ~= "table" or not old.ok then return rec end      -- old version disabled/unreachable: stuck
  local new = access().check_key(n.kid, opts)
  if type(new) ~= "table" or not new.ok or new.expired or new.not_yet_valid then return rec end
  return arm.update(rec.id, function(cur)
    if not cur then return nil end
    local k = cur.properties.encryption and cur.properties.encryption.keyVaultProperties
    if not k or k.versionedKeyIdentifier ~= kvp.versionedKeyIdentifier then return cur end
    k.versionedKeyIdentifier = n.kid
    k.lastKeyRotationTimestamp = iso7_offset(due)
    cur._key_created = n.created
    if cur._target then cur._target = nil cur._op = nil end
    return cur
  end) or rec
end

--- Completes the registry's running operation now (the deployment engine waits for it).
function M.settle(id) return settle(id, true) end

--- The registry as of now (pending operation settled when due, versionless pickup applied).
function M.current(id)
  local rec = settle(id, false)
  if not rec then return nil end
  rec = pickup(rec)
  M.identity_lost_since(rec)
  require("emu.acr.content_key").follow(rec) -- a changed key version re-wraps the content key
  return rec
end

--- A user-assigned identity removed underneath the registry (its resource deleted, or re-created
-- with another client id) keeps working until its credential expires, about three months later
--; after that the registry's identity is inactive.
M.IDENTITY_GRACE = 90 * 86400

--- Simulated time since which the registry's CMK identity is gone, or nil. The first read that
-- notices starts the clock (the emulator cannot see the deletion itself).
function M.identity_lost_since(rec)
  local enc = rec and rec.properties and rec.properties.encryption
  local kvp = enc and enc.status == "enabled" and enc.keyVaultProperties
  if not kvp then return nil end
  local p = cmk_principal(rec.identity, kvp.identity, rec)
  if not p or not p.uai_id then return nil end
  local res = arm.get(p.uai_id)
  local key = "acr:lost:" .. rec.id:lower() .. "|" .. p.uai_id:lower()
  if res and res.properties and type(res.properties.clientId) == "string" and type(p.client_id) == "string"
    and res.properties.clientId:lower() == p.client_id:lower() then
    state.delete(key)
    return nil
  end
  state.add(key, clock.now())
  return state.get(key)
end

-- ---------------------------------------------------------------- rendering

local function render_identity(idn)
  if not idn or idn.type == "None" then return nil end
  local out = { type = CAMEL[idn.type] or idn.type }
  if idn.principalId then out.principalId, out.tenantId = idn.principalId, idn.tenantId end
  if idn.userAssignedIdentities then
    out.userAssignedIdentities = {}
    for k, e in pairs(idn.userAssignedIdentities) do
      out.userAssignedIdentities[k] = { principalId = e.principalId, clientId = e.clientId }
    end
  end
  return out
end

--- GET body: ACR's camelCase identity types.
function M.render(rec)
  local out = arm.render(rec)
  out.identity = render_identity(rec.identity)
  return out
end

-- Whether two identity blocks name the same identities (type and user-assigned ids).
local function same_identity(a, b)
  local function key(i)
    if type(i) ~= "table" then return "none" end
    local ids = {}
    for k in pairs(type(i.userAssignedIdentities) == "table" and i.userAssignedIdentities or {}) do
      ids[#ids + 1] = tostring(k):lower()
    end
    table.sort(ids)
    return tostring(i.type):lower():gsub("%s", "") .. "|" .. table.concat(ids, ",")
  end
  return key(a) == key(b)
end

-- The 201 body of a long-running create/update: the state before the operation. Recorded
-- traffic: a create shows no identity yet; an update that keeps the identities (a key rotation)
-- shows them as they were; one that changes them (identity assign) leaves identity out.
local function pre_body(rec, creating, target)
  local out = arm.render(rec)
  out.identity = not creating and same_identity(rec.identity, target and target.identity) and
    render_identity(rec.identity) or nil
  out.properties.provisioningState = creating and "Creating" or "Updating"
  if creating then out.properties.encryption = { status = "disabled" } end
  return out
end

-- ---------------------------------------------------------------- create / update

local function system_data(ctx, created_at, rec)
  local who = ctx.principal and (ctx.principal.appid or ctx.principal.oid) or "unknown"
  local sd = rec and rec.systemData and json.copy(rec.systemData) or {
    createdBy = who, createdByType = "Application", createdAt = iso7_offset(created_at) }
  sd.lastModifiedBy, sd.lastModifiedByType, sd.lastModifiedAt = who, "Application", iso7_offset(clock.now())
  return sd
end

local function check_name(name)
  if type(name) ~= "string" or #name < 5 or #name > 50 or not name:match("^[%w]+$") then
    -- synthetic text:
    bad("InvalidResourceName", string.format("Resource name '%s' is invalid. The name must contain only " ..
      "alphanumeric characters, be globally unique, and between 5 and 50 characters in length.", tostring(name)))
  end
end

local function cloud_of(ctx)
  return ctx.cloud or hosts.clouds.AzureCloud
end

local function finish_identity(t, rec)
  -- Moves the private client id of a system identity onto the record.
  local idn = t.identity
  if idn and idn._client then t._sys_client = idn._client end
  if idn then idn._client, idn._new_system = nil, nil end
  if idn and not has_system(idn.type) then t._sys_client = nil end
  if rec and rec._sys_client and idn and has_system(idn.type) and not t._sys_client then
    t._sys_client = rec._sys_client
  end
end

--- Validates a full PUT body against the current record (nil: create). Returns the target record.
local function prepare(ctx, sub, rg, name, b, rec, patch)
  local id = rec and rec.id or reg_id(sub, rg, name)
  local cloud = cloud_of(ctx)
  local props_in = ci(b, "properties")
  if present(props_in) and not is_object(props_in) then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Unexpected token for properties. Path 'properties'.'.") -- synthetic
  end
  if not present(props_in) then props_in = {} end
  local now = clock.now()
  local t
  if rec then
    t = json.copy(rec)
    t._target, t._op = nil, nil
  else
    t = { id = id, name = name, type = TYPE, tags = {}, properties = {} }
  end
  t.systemData = system_data(ctx, now, rec)
  -- location
  if not rec then
    t.location = arm.require_location(b, TYPE)
  elseif not patch and present(ci(b, "location")) then
    local loc = arm.location(ci(b, "location"))
    if loc and loc ~= rec.location then
      -- synthetic (the text below)
      errors.throw(errors.arm(400, "InvalidResourceLocation", string.format("The resource '%s' already exists in " ..
        "location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. " ..
        "Please select a new resource name.", name, rec.location, rg, loc)))
    end
  end
  -- tags
  local tags = ci(b, "tags")
  if tags ~= nil then t.tags = arm.check_tags(tags) elseif not patch then t.tags = rec and t.tags or {} end
  if not next(t.tags) then t.tags = {} end
  -- sku
  local sku = parse_sku(ci(b, "sku"), not rec)
  if sku then t.sku = { name = sku, tier = sku } end
  local premium = t.sku.name == "Premium"
  -- identity
  local id_in = ci(b, "identity")
  if patch or present(id_in) or not rec then
    t.identity = build_identity(id_in, rec and rec.identity, patch, sub, rec)
  else
    t.identity = build_identity(nil, rec and rec.identity, false, sub, rec)
  end
  -- properties
  local p = t.properties
  if not rec then
    p.loginServer = name:lower() .. cloud.acr_suffix
    p.creationDate = clock.iso(now)
    p.adminUserEnabled = false
    if premium then
      p.networkRuleSet = { defaultAction = "Allow", virtualNetworkRules = json.array({}), ipRules = json.array({}) }
    end
    p.policies = default_policies(now)
    p.encryption = { status = "disabled" }
    p.dataEndpointEnabled = false
    p.dataEndpointHostNames = json.array({})
    p.privateEndpointConnections = json.array({})
    p.publicNetworkAccess = "Enabled"
    p.networkRuleBypassOptions = "AzureServices"
    p.zoneRedundancy = "Disabled"
    p.anonymousPullEnabled = false
  end
  p.adminUserEnabled = bool_prop(props_in, "adminUserEnabled", p.adminUserEnabled)
  p.anonymousPullEnabled = bool_prop(props_in, "anonymousPullEnabled", p.anonymousPullEnabled)
  p.dataEndpointEnabled = bool_prop(props_in, "dataEndpointEnabled", p.dataEndpointEnabled)
  p.publicNetworkAccess = enum_prop(props_in, "publicNetworkAccess", p.publicNetworkAccess, { "Enabled", "Disabled" })
  p.networkRuleBypassOptions = enum_prop(props_in, "networkRuleBypassOptions", p.networkRuleBypassOptions,
    { "AzureServices", "None" })
  if not rec then
    p.zoneRedundancy = enum_prop(props_in, "zoneRedundancy", p.zoneRedundancy, { "Enabled", "Disabled" })
  end
  local nrs = ci(props_in, "networkRuleSet")
  if present(nrs) then
    if not is_object(nrs) then
      bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
        "'Unexpected token for networkRuleSet. Path 'properties.networkRuleSet'.'.") -- synthetic
    end
    local da = ci(nrs, "defaultAction") or "Allow"
    local ip = ci(nrs, "ipRules")
    if type(da) ~= "string" or (da:lower() ~= "allow" and da:lower() ~= "deny") then
      bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
        "'Error converting value \"" .. tostring(da) .. "\" to type 'DefaultAction'. " .. -- synthetic
        "Path 'properties.networkRuleSet.defaultAction'.'.")
    end
    if not premium and (da:lower() == "deny" or (type(ip) == "table" and #ip > 0)) then
      bad("NetworkRuleNotSupported", "Network rules are only supported for the Premium SKU. " .. -- synthetic
        "For more information, please visit https://aka.ms/acr/firewall.")
    end
    p.networkRuleSet = { defaultAction = da:sub(1, 1):upper() .. da:sub(2):lower(),
      virtualNetworkRules = json.array({}), ipRules = json.array(type(ip) == "table" and json.copy(ip) or {}) }
  end
  if p.publicNetworkAccess == "Disabled" and not premium then
    -- Real text (documented).
    bad("DisablingPublicNetworkAccessNotSupported", "Disabling public network access is not supported for the SKU " ..
      t.sku.name .. ". For more information, please visit https://aka.ms/acr/private-link.")
  end
  p.policies = merge_policies(p.policies or default_policies(now), ci(props_in, "policies"))
  -- encryption
  local was_cmk = rec and rec.properties.encryption and rec.properties.encryption.status == "enabled"
  local enc_in = ci(props_in, "encryption")
  if present(enc_in) and not is_object(enc_in) then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Unexpected token for encryption. Path 'properties.encryption'.'.") -- synthetic
  end
  local status_in = present(enc_in) and ci(enc_in, "status") or nil
  if present(status_in) and (type(status_in) ~= "string" or (status_in:lower() ~= "enabled" and
    status_in:lower() ~= "disabled")) then
    bad("InvalidRequestContent", "The request content was invalid and could not be deserialized: " ..
      "'Error converting value \"" .. tostring(status_in) .. "\" to type 'EncryptionStatus'. " .. -- synthetic
      "Path 'properties.encryption.status'.'.")
  end
  local kvp_in = present(enc_in) and ci(enc_in, "keyVaultProperties") or nil
  local wants_cmk = (type(status_in) == "string" and status_in:lower() == "enabled") or
    (not present(status_in) and present(kvp_in) and present(ci(kvp_in, "keyIdentifier")))
  local key_created
  local old_kvp = was_cmk and rec.properties.encryption.keyVaultProperties
  if not rec then
    if wants_cmk then
      if not premium then premium_needed("Encryption with a customer-managed key") end
      local enc
      enc, key_created = check_encryption(kvp_in, t.identity, id, name, cloud, t)
      p.encryption = enc
    end
  elseif not was_cmk then
    if wants_cmk then
      -- synthetic text:
      bad("EncryptionNotSupportedOnExistingRegistry", "Encryption with a customer-managed key can only be " ..
        "enabled when the registry is created; it cannot be enabled on the existing registry " .. name ..
        ". Create a new Premium registry with encryption enabled and import the images. " .. CMK_LINK)
    end
  else
    -- a CMK registry: never disabled; PUT must carry the encryption; keyVaultProperties = rotation
    local disabling = (type(status_in) == "string" and status_in:lower() == "disabled") or
      (not patch and not present(enc_in))
    if disabling then
      -- synthetic text:
      bad("EncryptionCannotBeDisabled", "Encryption with a customer-managed key cannot be disabled on the " ..
        "registry " .. name .. ". " .. CMK_LINK)
    end
    if not premium then
      -- synthetic text:
      bad("SkuDowngradeNotAllowed", "The registry " .. name .. " is encrypted with a customer-managed key " ..
        "and requires the Premium SKU; it cannot be changed to " .. t.sku.name .. ". " .. CMK_LINK)
    end
    if not patch and not present(kvp_in) then
      -- a full PUT replaces the encryption block: without keyVaultProperties it cannot be kept (this is what
      -- Azure Policy "Modify" remediation runs into: the platform redacts the CMK settings)
      bad("InvalidEncryptionConfiguration", "The encryption of the registry " .. name .. " requires " .. -- synthetic
        "'keyVaultProperties' with 'keyIdentifier' and 'identity'; they cannot be removed. " .. CMK_LINK)
    end
    if present(kvp_in) then
      local merged = { keyIdentifier = ci(kvp_in, "keyIdentifier"), identity = ci(kvp_in, "identity") }
      if patch then -- PATCH merges; PUT must carry both
        if not present(merged.keyIdentifier) then merged.keyIdentifier = old_kvp.keyIdentifier end
        if not present(merged.identity) then merged.identity = old_kvp.identity end
      end
      local enc
      enc, key_created = check_encryption(merged, t.identity, id, name, cloud, t)
      local k = enc.keyVaultProperties
      local changed = (k.versionedKeyIdentifier or ""):lower() ~= (old_kvp.versionedKeyIdentifier or ""):lower()
      if changed then
        k.lastKeyRotationTimestamp = iso7_offset(now)
      else
        k.lastKeyRotationTimestamp = old_kvp.lastKeyRotationTimestamp
        key_created = rec._key_created
      end
      p.encryption = enc
    end
    -- the identity used for CMK must stay on the registry
    local k = p.encryption.keyVaultProperties
    if not cmk_principal(t.identity, k.identity, t) then
      no_identity_access(id, k.identity == "system" and (rec.identity and rec.identity.principalId or "system")
        or k.identity, name)
    end
  end
  if p.encryption.status == "enabled" and trust_enabled(p.policies) then content_trust_blocked(name) end
  if key_created then t._key_created = key_created end
  p.provisioningState = "Succeeded"
  return t, id
end

local function reserve_name(name, id, cloud)
  local key = "acr:name:" .. name:lower()
  if state.add(key, id:lower()) then return true end
  local holder = state.get(key)
  if holder == id:lower() then return true end
  if holder and not arm.get(holder) then
    state.put(key, id:lower())
    return true
  end
  -- message shape from memory of the service: -- synthetic
  errors.throw(errors.arm(409, "AlreadyInUse", "The registry DNS name " .. name:lower() .. cloud.acr_suffix ..
    " is already in use. You can check if the name is already claimed using following API: " ..
    "https://docs.microsoft.com/en-us/rest/api/containerregistry/registries/checknameavailability"))
end

local function register_system_identity(t, name)
  local idn = t.identity
  if idn and idn._new_system then
    directory.add({ objectId = idn.principalId, appId = idn._client, displayName = name, kind = "managedIdentity",
      resourceId = t.id })
    directory.index_resource_id(t.id, idn.principalId)
  end
end

local function drop_system_identity(old, new)
  if old and old.identity and has_system(old.identity.type) and old.identity.principalId and
    not (new and new.identity and new.identity.principalId == old.identity.principalId) then
    directory.remove(old.identity.principalId)
    directory.index_resource_id(old.id, nil)
  end
end

--- Writes a validated target. opts.sync: finish immediately (deployments); else start the LRO.
-- Returns status, body, headers.
local function commit(ctx, rec, t, opts)
  opts = opts or {}
  register_system_identity(t, t.name)
  finish_identity(t, rec)
  drop_system_identity(rec, t)
  if opts.sync then
    t.properties.provisioningState = "Succeeded"
    arm.put(t)
    return rec and 200 or 201, M.render(t)
  end
  local pre
  if rec then pre = json.copy(rec) else pre = json.copy(t) end
  local fake_req = { host = ctx.host or "management.azure.com", query = { ["api-version"] = ctx.api_version } }
  local headers, op = lro.begin({ req = fake_req, prefix = t.id, style = "async", action = "registries.apply",
    args = { id = t.id }, name_prefix = "registries-", short_status = true })
  local body = pre_body(pre, rec == nil, t)
  -- the op id is known only now: store it with the target
  op.args.op = op.id
  state.put("op:" .. op.id, op)
  pre._target, pre._op = t, op.id
  pre.properties.provisioningState = rec and "Updating" or "Creating"
  if not rec then
    pre.identity = { type = "None" }
    pre.properties.encryption = { status = "disabled" }
  end
  arm.put(pre)
  -- 201 for every accepted PUT and PATCH, also a full PUT on an existing registry (recorded traffic)
  return 201, body, headers
end

--- PUT (create or replace). ctx: {cloud, principal, host, api_version}. Raises Azure's errors.
-- opts.sync: no LRO (deployment engine). Returns status, body, headers.
function M.put_resource(ctx, sub, rg, name, b, opts)
  check_name(name)
  arm.require_rg(sub, rg)
  arm.require_object(b)
  local id = reg_id(sub, rg, name)
  local rec = settle(id, true)
  local failed_create = rec and rec._failed_create
  if failed_create then rec = nil end
  local t
  t, id = prepare(ctx, sub, rg, name, b, rec, false)
  if not rec then reserve_name(name, id, cloud_of(ctx)) end
  local ok, s, body, h = pcall(commit, ctx, rec, t, opts)
  if not ok then
    if not rec and not failed_create then state.delete("acr:name:" .. name:lower()) end
    error(s, 0)
  end
  return s, body, h
end

--- PATCH (RegistryUpdateParameters: tags, sku, identity, properties). Returns status, body, headers.
function M.patch_resource(ctx, sub, rg, name, b, opts)
  arm.require_rg(sub, rg)
  arm.require_object(b)
  local id = reg_id(sub, rg, name)
  local rec = settle(id, true)
  if not rec then errors.throw(arm.not_found(TYPE, name, rg)) end
  local t = prepare(ctx, sub, rg, name, b, rec, true)
  opts = opts or {}
  opts.patch = true
  return commit(ctx, rec, t, opts)
end

-- ---------------------------------------------------------------- delete hook

arm.on_delete(TYPE, function(res)
  local key = "acr:name:" .. res.name:lower()
  if state.get(key) == res.id:lower() then state.delete(key) end
  for _, k in ipairs(state.keys("acr:lost:" .. res.id:lower() .. "|")) do state.delete(k) end
  drop_system_identity(res, nil)
  require("emu.services.acr").forget(res.id) -- content key, blobs, repositories, admin passwords
end)

-- ---------------------------------------------------------------- routes

local BASE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries"

local function ctx_of(req)
  return { cloud = req.cloud, principal = req.principal, host = req.host, api_version = req:arg("api-version") }
end

-- PUT (name rules checked: a create) and PATCH: the long-running writes.
for _, wr in ipairs({ { "PUT", "put_resource", true }, { "PATCH", "patch_resource", false } }) do
  local method, entry, new_name = wr[1], wr[2], wr[3]
  arm.route({ method = method, path = BASE .. "/{name}", type = TYPE,
    action = "Microsoft.ContainerRegistry/registries/write",
    handler = function(req)
      local p = req.params
      if new_name then check_name(p.name) end
      arm.require_rg(p.sub, p.rg)
      local b = arm.body(req)
      return M[entry](ctx_of(req), p.sub, p.rg, p.name, b)
    end })
end

arm.route({ method = "GET", path = BASE .. "/{name}", type = TYPE,
  action = "Microsoft.ContainerRegistry/registries/read",
  handler = function(req)
    local p = req.params
    arm.require_rg(p.sub, p.rg)
    local rec = M.current(reg_id(p.sub, p.rg, p.name))
    if not rec then return arm.not_found(TYPE, p.name, p.rg) end
    return 200, M.render(rec)
  end })

arm.route({ method = "DELETE", path = BASE .. "/{name}", type = TYPE,
  action = "Microsoft.ContainerRegistry/registries/delete",
  handler = function(req)
    local p = req.params
    arm.require_rg(p.sub, p.rg)
    local res = arm.delete(reg_id(p.sub, p.rg, p.name))
    if not res then return 204, nil end
    return 200, nil
  end })

local function page(req, list, base_url)
  local skip = tonumber(req:arg("$skipToken") or "") or 0
  if skip < 0 then skip = 0 end
  skip = math.floor(skip)
  local out = json.array({})
  for i = skip + 1, math.min(#list, skip + M.PAGE_SIZE) do
    local rec = list[i]
    if rec._op or (rec.properties.encryption and rec.properties.encryption.keyVaultProperties and
      rec.properties.encryption.keyVaultProperties.keyRotationEnabled) then
      rec = M.current(rec.id) or rec
    end
    out[#out + 1] = M.render(rec)
  end
  local body = { value = out }
  if skip + M.PAGE_SIZE < #list then
    body.nextLink = "https://" .. req.host .. base_url .. "?api-version=" .. (req:arg("api-version") or "") ..
      "&$skipToken=" .. (skip + M.PAGE_SIZE)
  end
  return 200, body
end

arm.list_routes({ type = TYPE, action = "Microsoft.ContainerRegistry/registries/read",
  handler = function(req, resources) return page(req, resources, req.path) end })

arm.route({ method = "POST", path = "/subscriptions/{sub}/providers/Microsoft.ContainerRegistry/checkNameAvailability",
  type = TYPE, action = "Microsoft.ContainerRegistry/checkNameAvailability/read",
  handler = function(req)
    local b = arm.body(req)
    local name, typ = ci(b, "name"), ci(b, "type")
    if type(name) ~= "string" or type(typ) ~= "string" then
      return errors.arm(400, "InvalidRequestContent", "The request content was invalid and could not be " ..
        "deserialized: 'Required properties 'name' and 'type' not found in JSON.'.") -- synthetic
    end
    if typ:lower() ~= TYPE:lower() then
      -- synthetic text:
      return errors.arm(400, "InvalidResourceType", "The resource type '" .. typ .. "' is not supported. " ..
        "Use '" .. TYPE .. "'.")
    end
    if #name < 5 or #name > 50 or not name:match("^[%w]+$") then
      -- synthetic text:
      return 200, { nameAvailable = false, reason = "Invalid", message = "The specified resource name is " ..
        "invalid. It must contain only alphanumeric characters and be between 5 and 50 characters long." }
    end
    local holder = state.get("acr:name:" .. name:lower())
    if holder and arm.get(holder) then
      return 200, { nameAvailable = false, reason = "AlreadyExists", message = "The registry " .. name .. -- synthetic
        " is already in use." }
    end
    return 200, { nameAvailable = true }
  end })


-- Control: what a forced removal of the CMK identity leaves behind. ARM refuses to remove the
-- identity a registry's encryption uses ("does not have access to identity ..."); when it is
-- removed anyway (forced), the registry loses its key (data plane 403 "The identity associated
-- with the registry is inactive ..."). POST /_emulator/registries/remove-identity
-- {"id": "<registry id>", "identity": "<user-assigned identity id>" | "system"}
require("emu.router").add({ kind = "control", method = "POST", path = "/_emulator/registries/remove-identity",
  ci = false, handler = function(req)
    local b = json.decode(req:body() or "")
    if type(b) ~= "table" or type(b.id) ~= "string" or type(b.identity) ~= "string" then
      return errors.arm(400, "BadRequest", "body must be {\"id\": registry id, \"identity\": uai id | \"system\"}")
    end
    settle(b.id, true)
    local rec = arm.update(b.id, function(cur)
      if not cur or type(cur.identity) ~= "table" then return cur end
      local idn = cur.identity
      local sys, user = has_system(idn.type), has_user(idn.type)
      if b.identity:lower() == "system" then
        sys = false
        idn.principalId, idn.tenantId, idn._client = nil, nil, nil
      elseif idn.userAssignedIdentities then
        for k in pairs(idn.userAssignedIdentities) do
          if k:lower() == b.identity:lower() then idn.userAssignedIdentities[k] = nil end
        end
        if next(idn.userAssignedIdentities) == nil then idn.userAssignedIdentities = nil; user = false end
      end
      idn.type = (sys and user) and "SystemAssigned, UserAssigned" or sys and "SystemAssigned"
        or user and "UserAssigned" or "None"
      return cur
    end)
    if not rec then return errors.arm(404, "ResourceNotFound", "registry not found") end
    return 200, M.render(rec)
  end })

return M
