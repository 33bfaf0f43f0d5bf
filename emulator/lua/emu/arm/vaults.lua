--- emu.arm.vaults: Microsoft.KeyVault management plane.
--   PUT/PATCH/GET/DELETE  .../resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{kv}
--   GET   .../resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults, /subscriptions/{sub}/providers/...vaults
--   PUT   .../vaults/{kv}/accessPolicies/{add|replace|remove}
--   GET   /subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{loc}/deletedVaults/{kv}
--   GET   /subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults
--   POST  /subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{loc}/deletedVaults/{kv}/purge (LRO)
--   POST  /subscriptions/{sub}/providers/Microsoft.KeyVault/checkNameAvailability
-- Vault names are global (soft-deleted ones included): emu.keyvault.store keeps the index.
-- Deleting a vault soft-deletes it (also when its resource group goes): the keys stay in
-- state, unreachable, until recover (PUT with createMode "recover") or purge. Role assignments
-- at or under the vault's scope are deleted with it (Azure's documented limitation).
-- Error texts marked "-- synthetic" are written in Azure's style where the real text is unknown.
local arm = require("emu.arm")
local json = require("emu.json")
local errors = require("emu.errors")
local state = require("emu.state")
local clock = require("emu.clock")
local lro = require("emu.lro")
local util = require("emu.util")
local store = require("emu.keyvault.store")

local M = {}

M.API_VERSIONS = { "2026-02-01", "2025-05-01", "2024-12-01-preview", "2024-11-01", "2024-04-01-preview",
  "2023-08-01-preview", "2023-07-01", "2023-02-01", "2022-11-01", "2022-07-01", "2022-02-01-preview",
  "2021-11-01-preview", "2021-10-01", "2021-06-01-preview", "2021-04-01-preview", "2020-04-01-preview",
  "2019-09-01", "2018-02-14", "2018-02-14-preview", "2016-10-01", "2015-06-01" }

local VAULT = store.VAULT_TYPE
arm.register_type({ type = VAULT, tracked = true, api_versions = M.API_VERSIONS })
arm.register_type({ type = "Microsoft.KeyVault/deletedVaults", api_versions = M.API_VERSIONS })
arm.register_type({ type = "Microsoft.KeyVault/locations/deletedVaults", api_versions = M.API_VERSIONS })
arm.register_type({ type = "Microsoft.KeyVault/checkNameAvailability", api_versions = M.API_VERSIONS })
arm.register_type({ type = "Microsoft.KeyVault/vaults/accessPolicies", api_versions = M.API_VERSIONS })

local KEY_PERMS, SECRET_PERMS, CERT_PERMS, STORAGE_PERMS = {}, {}, {}, {}
for p in ("all encrypt decrypt wrapKey unwrapKey sign verify get list create update import delete backup " ..
  "restore recover purge release rotate getrotationpolicy setrotationpolicy"):gmatch("%S+") do
  KEY_PERMS[p:lower()] = p
end
for p in ("all get list set delete backup restore recover purge"):gmatch("%S+") do SECRET_PERMS[p] = p end
for p in ("all get list delete create import update managecontacts getissuers listissuers setissuers " ..
  "deleteissuers manageissuers recover purge backup restore"):gmatch("%S+") do CERT_PERMS[p] = p end
for p in ("all get list delete set update regeneratekey recover purge backup restore setsas listsas getsas " ..
  "deletesas"):gmatch("%S+") do STORAGE_PERMS[p] = p end
local PERM_SETS = { keys = KEY_PERMS, secrets = SECRET_PERMS, certificates = CERT_PERMS, storage = STORAGE_PERMS }

local function bad(msg, code)
  errors.throw(errors.arm(400, code or "BadRequest", msg))
end

local function vault_id(sub, rg, name)
  return "/subscriptions/" .. sub .. "/resourceGroups/" .. rg .. "/providers/Microsoft.KeyVault/vaults/" .. name
end

-- ---------------------------------------------------------------- names

local function name_message(name)
  return "The vault name '" .. tostring(name) .. "' is invalid. A vault's name must be between 3-24 alphanumeric " ..
    "characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive " ..
    "hyphens. Follow this link for more information: https://go.microsoft.com/fwlink/?linkid=2147742"
end

function M.valid_name(name)
  return type(name) == "string" and name:match("^[a-zA-Z0-9-]+$") ~= nil and #name >= 3 and #name <= 24
    and name:match("^%a") ~= nil and name:match("[%w]$") ~= nil and not name:find("--", 1, true)
end

local function in_use_message(name)
  return "The vault name '" .. name .. "' is already in use. Vault names are globally unique so it is possible " ..
    "that the name is already taken. If you are sure that the vault name was not taken then it is possible that " ..
    "a vault with the same name was recently deleted but not purged after being placed in a recoverable state. " ..
    "If the vault is in a recoverable state then the vault will need to be purged before reusing the name. For " ..
    "more information about VaultAlreadyExists, soft delete and purging a vault follow this link " ..
    "https://go.microsoft.com/fwlink/?linkid=2147740."
end

local DELETED_CONFLICT = "A vault with the same name already exists in deleted state. You need to either recover " ..
  "or purge existing key vault. Follow this link https://go.microsoft.com/fwlink/?linkid=2149745 for more " ..
  "information on soft delete."

-- ---------------------------------------------------------------- validation

local function is_obj(v) return type(v) == "table" and not json.is_array(v) end
local function is_arr(v) return type(v) == "table" and (json.is_array(v) or next(v) == nil) end

local function check_bool(props, field)
  local v = props[field]
  if v ~= nil and v ~= json.null and type(v) ~= "boolean" then
    bad("Invalid value for property '" .. field .. "': expected a boolean.") -- synthetic
  end
  if v == json.null then return nil end
  return v
end

local function check_sku(sku)
  if not is_obj(sku) then bad("The parameter sku is required.") end -- synthetic
  if type(sku.family) ~= "string" or sku.family:upper() ~= "A" then
    -- synthetic
    bad("The sku family '" .. tostring(sku.family) .. "' is not valid. The only supported sku family is 'A'.")
  end
  local n = type(sku.name) == "string" and sku.name:lower()
  if n ~= "standard" and n ~= "premium" then
    -- synthetic
    bad("The sku name '" .. tostring(sku.name) .. "' is not valid. Supported values are 'standard' and 'premium'.")
  end
  return { family = "A", name = n }
end

local function check_policies(list, where)
  where = where or "accessPolicies"
  if not is_arr(list) then bad("Invalid value found at " .. where .. ": expected an array.") end -- synthetic
  if #list > 1024 then
    bad("The number of access policies exceeds the maximum of 1024.", "AccessPoliciesLimitExceeded") -- synthetic
  end
  local out = json.array({})
  for i, ap in ipairs(list) do
    local at = string.format("%s[%d]", where, i - 1)
    if not is_obj(ap) then bad("Invalid value found at " .. at .. ": expected an object.") end -- synthetic
    if not util.is_guid(ap.tenantId) then
      -- synthetic
      bad("Invalid value found at " .. at .. ".tenantId: '" .. tostring(ap.tenantId) .. "' is not a valid GUID.")
    end
    if type(ap.objectId) ~= "string" or ap.objectId == "" then
      bad("Invalid value found at " .. at .. ".objectId: the object id is required.") -- synthetic
    end
    if ap.applicationId ~= nil and ap.applicationId ~= json.null and not util.is_guid(ap.applicationId) then
      bad("Invalid value found at " .. at .. ".applicationId: '" .. tostring(ap.applicationId) ..
        "' is not a valid GUID.") -- synthetic
    end
    -- synthetic
    if not is_obj(ap.permissions) then bad("Invalid value found at " .. at .. ".permissions: required.") end
    local perms = {}
    for kind, set in pairs(PERM_SETS) do
      local l = ap.permissions[kind]
      if l ~= nil and l ~= json.null then
        if not is_arr(l) then bad("Invalid value found at " .. at .. ".permissions." .. kind .. ".") end -- synthetic
        local norm = json.array({})
        for j, p in ipairs(l) do
          local c = type(p) == "string" and set[p:lower()]
          if not c then
            -- synthetic
            bad(string.format("Invalid value found at %s.permissions.%s[%d]: %s", at, kind, j - 1, tostring(p)))
          end
          norm[#norm + 1] = p
        end
        perms[kind] = norm
      end
    end
    local entry = { tenantId = ap.tenantId, objectId = ap.objectId, permissions = perms }
    if type(ap.applicationId) == "string" then entry.applicationId = ap.applicationId end
    out[#out + 1] = entry
  end
  return out
end

local function check_network(acls)
  if acls == nil or acls == json.null then return nil end
  if not is_obj(acls) then bad("Invalid value for property 'networkAcls'.") end -- synthetic
  local out = {}
  -- a two-value enum, case-insensitive, `a` when absent: its canonical spelling, else 400
  local function enum(field, a, b)
    local v = acls[field]
    if v == nil or v == json.null then return a end
    if type(v) == "string" and v:lower() == a:lower() then return a end
    if type(v) == "string" and v:lower() == b:lower() then return b end
    bad("Invalid value '" .. tostring(v) .. "' for networkAcls." .. field .. ". Allowed values are '" .. -- synthetic
      a .. "' and '" .. b .. "'.")
  end
  out.bypass = enum("bypass", "AzureServices", "None")
  out.defaultAction = enum("defaultAction", "Allow", "Deny")
  out.ipRules = json.array({})
  if acls.ipRules ~= nil and acls.ipRules ~= json.null then
    if not is_arr(acls.ipRules) then bad("Invalid value for property 'networkAcls.ipRules'.") end -- synthetic
    for _, r in ipairs(acls.ipRules) do
      local v = is_obj(r) and r.value
      local ip, bits
      if type(v) == "string" then ip, bits = v:match("^([%d%.]+)/?(%d*)$") end
      local okbits = bits == "" or (tonumber(bits) and tonumber(bits) <= 32)
      if not ip or not require("emu.keyvault.access").ip4(ip) or not okbits then
        bad("The IP address or range '" .. tostring(v) .. "' is not valid. Specify an IPv4 address or a CIDR " ..
          "range.") -- synthetic
      end
      out.ipRules[#out.ipRules + 1] = { value = bits == "" and (ip .. "/32") or v }
    end
  end
  out.virtualNetworkRules = json.array({})
  if acls.virtualNetworkRules ~= nil and acls.virtualNetworkRules ~= json.null then
    if not is_arr(acls.virtualNetworkRules) then
      bad("Invalid value for property 'networkAcls.virtualNetworkRules'.") -- synthetic
    end
    for _, r in ipairs(acls.virtualNetworkRules) do
      if not is_obj(r) or type(r.id) ~= "string" then
        bad("Invalid value for property 'networkAcls.virtualNetworkRules': each rule needs an 'id'.") -- synthetic
      end
      out.virtualNetworkRules[#out.virtualNetworkRules + 1] = { id = r.id:lower(),
        ignoreMissingVnetServiceEndpoint = r.ignoreMissingVnetServiceEndpoint == true }
    end
  end
  return out
end

local function check_public_access(v)
  if v == nil or v == json.null then return nil end
  if type(v) ~= "string" or (v:lower() ~= "enabled" and v:lower() ~= "disabled") then
    bad("Invalid value '" .. tostring(v) .. "' for publicNetworkAccess. Allowed values are 'Enabled' and " ..
      "'Disabled'.") -- synthetic
  end
  return v:lower() == "enabled" and "Enabled" or "Disabled"
end

--- Applies the settable VaultProperties in `p` onto `props` (an existing or fresh property
-- table). create: true for a new vault. Enforces the one-way switches.
local function apply_properties(props, p, create)
  if p.tenantId ~= nil then
    if not util.is_guid(p.tenantId) then
      bad("Invalid value for property 'tenantId': '" .. tostring(p.tenantId) .. "' is not a valid GUID.") -- synthetic
    end
    props.tenantId = p.tenantId
  end
  if p.sku ~= nil then props.sku = check_sku(p.sku) end
  if p.accessPolicies ~= nil and p.accessPolicies ~= json.null then
    props.accessPolicies = check_policies(p.accessPolicies)
  end
  for _, f in ipairs({ "enabledForDeployment", "enabledForDiskEncryption", "enabledForTemplateDeployment",
    "enableRbacAuthorization" }) do
    local v = check_bool(p, f)
    if v ~= nil then props[f] = v end
  end
  local sd = check_bool(p, "enableSoftDelete")
  if sd == false then
    bad("The property \"enableSoftDelete\" cannot be set to false. Enabling the 'soft delete' functionality is an " ..
      "irreversible action.") -- synthetic (soft delete can no longer be turned off since February 2025)
  end
  local rd = p.softDeleteRetentionInDays
  if rd ~= nil and rd ~= json.null then
    if type(rd) ~= "number" or rd ~= math.floor(rd) or rd < 7 or rd > 90 then
      bad("The property \"softDeleteRetentionInDays\" has an invalid value '" .. tostring(rd) .. "'. It must be " ..
        "between 7 and 90 (days).") -- synthetic
    end
    if not create and props.softDeleteRetentionInDays and rd ~= props.softDeleteRetentionInDays then
      bad("The property \"softDeleteRetentionInDays\" has been set already and it can't be modified.") -- synthetic
    end
    props.softDeleteRetentionInDays = rd
  end
  local pp = check_bool(p, "enablePurgeProtection")
  if pp == false then
    bad("The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge protection for a vault " ..
      "is an irreversible action.") -- synthetic
  elseif pp == true then
    props.enablePurgeProtection = true
  end
  local acls = check_network(p.networkAcls)
  if acls then props.networkAcls = acls end
  local pna = check_public_access(p.publicNetworkAccess)
  if pna then props.publicNetworkAccess = pna end
  return props
end

-- ---------------------------------------------------------------- store helpers

local function system_data(req, res)
  local who = req.principal and (req.principal.appid or req.principal.oid) or "unknown"
  local now = clock.iso(req.now)
  local sd = res and res.systemData or { createdBy = who, createdByType = "Application", createdAt = now }
  sd.lastModifiedBy, sd.lastModifiedByType, sd.lastModifiedAt = who, "Application", now
  return sd
end

local function render(res, provisioning)
  local out = arm.render(res)
  if provisioning then out.properties.provisioningState = provisioning end
  return out
end

--- The vault resource at sub/rg/name, or raises 404 ResourceNotFound.
local function require_vault(req)
  local p = req.params
  arm.require_rg(p.sub, p.rg)
  local res = arm.get(vault_id(p.sub, p.rg, p.name))
  if not res then errors.throw(arm.not_found(VAULT, p.name, p.rg)) end
  return res
end

--- Soft-deletes a vault resource (the delete hook: DELETE and resource group deletion).
local function soft_delete(res)
  local now = store.now()
  local days = store.retention_days(res)
  local lname = res.name:lower()
  state.put("kv:dv:" .. lname, {
    vault = res, location = res.location, deletionDate = now, scheduledPurgeDate = now + days * store.DAY,
  })
  state.put("kv:n:" .. lname, { id = res.id, deleted = true })
end
arm.on_delete(VAULT, soft_delete)

local function deleted_body(dv, sub)
  local v = dv.vault
  return {
    id = "/subscriptions/" .. sub .. "/providers/Microsoft.KeyVault/locations/" .. dv.location ..
      "/deletedVaults/" .. v.name,
    name = v.name, type = "Microsoft.KeyVault/deletedVaults",
    properties = {
      vaultId = v.id, location = dv.location, deletionDate = clock.iso_short(dv.deletionDate),
      scheduledPurgeDate = clock.iso_short(dv.scheduledPurgeDate), tags = v.tags or {},
      -- only when on: recorded Azure answers omit it for a vault without purge protection
      purgeProtectionEnabled = store.purge_protected(v) or nil,
    },
  }
end

-- ---------------------------------------------------------------- PUT (create, update, recover)

local function recover(req, id, body)
  local p = req.params
  local dv = store.deleted_vault(p.name)
  if not dv then
    -- synthetic (the text below)
    return errors.arm(400, "SoftDeletedVaultDoesNotExist", "A soft deleted vault with the given name does not " ..
      "exist. Ensure that the name for the vault that is being attempted to recover is in a recoverable state. " ..
      "For more information on soft delete please follow this link https://go.microsoft.com/fwlink/?linkid=2149745")
  end
  if dv.vault.id:lower() ~= id:lower() then
    return errors.arm(400, "BadRequest", "The soft deleted vault '" .. p.name .. "' was deleted from '" ..
      dv.vault.id .. "' and can only be recovered there.") -- synthetic
  end
  local loc = arm.location(body.location)
  if loc and loc ~= dv.location then
    return errors.arm(400, "BadRequest", "The location '" .. tostring(body.location) .. "' does not match the " ..
      "location '" .. dv.location .. "' of the soft deleted vault.") -- synthetic
  end
  local res = dv.vault
  res.systemData = system_data(req, res)
  arm.put(res)
  state.delete("kv:dv:" .. p.name:lower())
  state.put("kv:n:" .. p.name:lower(), { id = res.id, deleted = false })
  return 200, render(res)
end

local function put_vault(req)
  local p = req.params
  arm.require_rg(p.sub, p.rg)
  -- synthetic (the text below)
  if not M.valid_name(p.name) then return errors.arm(400, "VaultNameNotValid", name_message(p.name)) end
  local body = arm.body(req)
  local id = vault_id(p.sub, p.rg, p.name)
  local props_in = body.properties
  if props_in ~= nil and not is_obj(props_in) then
    -- synthetic (the text below)
    return errors.arm(400, "InvalidRequestContent", "The request content was invalid and could not be " ..
      "deserialized: 'Error converting value to type 'VaultProperties'. Path 'properties'.'.")
  end
  props_in = props_in or {}
  local mode = props_in.createMode
  if mode ~= nil and mode ~= json.null and (type(mode) ~= "string" or (mode:lower() ~= "recover" and
    mode:lower() ~= "default")) then
    return errors.arm(400, "BadRequest", "Invalid value '" .. tostring(mode) .. "' for property 'createMode'. " ..
      "Allowed values are 'default' and 'recover'.") -- synthetic
  end
  local existing = arm.get(id)
  if type(mode) == "string" and mode:lower() == "recover" then
    if existing then return 200, render(existing) end
    return recover(req, id, body)
  end
  local loc = arm.require_location(body, VAULT)
  local tags = arm.check_tags(body.tags)
  if body.properties == nil then
    return errors.arm(400, "BadRequest", "The parameter properties is required.") -- synthetic
  end
  if props_in.tenantId == nil then
    return errors.arm(400, "BadRequest", "The parameter properties.tenantId is required.") -- synthetic
  end
  if props_in.sku == nil then
    return errors.arm(400, "BadRequest", "The parameter properties.sku is required.") -- synthetic
  end
  if props_in.accessPolicies == nil or props_in.accessPolicies == json.null then
    return errors.arm(400, "BadRequest", "The parameter accessPolicies is not specified. Access policies are " ..
      "required unless createMode is 'recover'.") -- synthetic
  end
  if existing then
    if existing.location ~= loc then
      return errors.arm(400, "LocationMismatch", "The location '" .. tostring(body.location) .. "' does not " ..
        "match the location '" .. existing.location .. "' of the existing vault. A vault cannot be moved.") -- synthetic
    end
    local props = apply_properties(json.copy(existing.properties), props_in, false)
    props.accessPolicies = check_policies(props_in.accessPolicies)
    if props_in.networkAcls == nil then props.networkAcls = nil end
    existing.properties = props
    existing.tags = tags
    existing.systemData = system_data(req, existing)
    arm.put(existing)
    return 200, render(existing)
  end
  -- create: the name is global, soft-deleted names included. The enabledFor* flags and
  -- enableRbacAuthorization appear only when they were sent: recorded Azure traffic omits unset ones.
  local props = apply_properties({
    enableSoftDelete = true, softDeleteRetentionInDays = 90,
    publicNetworkAccess = "Enabled", accessPolicies = json.array({}),
  }, props_in, true)
  props.enableSoftDelete = true
  props.vaultUri = store.base_url(p.name, req.cloud) .. "/"
  props.provisioningState = "Succeeded"
  local res = { id = id, name = p.name, type = VAULT, location = loc, tags = tags, properties = props }
  res.systemData = system_data(req, nil)
  local lname = p.name:lower()
  local _, conflict = state.update("kv:n:" .. lname, function(e)
    if e then return e, e.deleted and "deleted" or "exists" end
    return { id = id, deleted = false }
  end)
  if conflict == "deleted" and not store.deleted_vault(p.name) then
    -- its retention ended (lazy purge just removed it): try again
    _, conflict = state.update("kv:n:" .. lname, function(e)
      if e then return e, e.deleted and "deleted" or "exists" end
      return { id = id, deleted = false }
    end)
  end
  -- synthetic (the text below)
  if conflict == "deleted" then return errors.arm(409, "ConflictError", DELETED_CONFLICT) end
  if conflict == "exists" then
    -- a racing PUT of the same vault created it a moment ago: answer like an update
    local e = store.name_entry(p.name)
    local same = e and not e.deleted and e.id:lower() == id:lower()
    local now_there = same and arm.get(id)
    -- the racing PUT has claimed the name but not stored the vault yet: wait for it (bounded)
    for _ = 1, 200 do
      if now_there or not same then break end
      ngx.sleep(0.01)
      now_there = arm.get(id)
    end
    if now_there then return 200, render(now_there) end
    return errors.arm(409, "VaultAlreadyExists", in_use_message(p.name))
  end
  -- DNS registration is paced like a long-running operation (POST /_emulator/config {"lro":
  -- {"polls","seconds"}}): GETs show RegisteringDns until the `polls`-th GET once `seconds`
  -- have passed. With polls 0 and seconds 0 it is already done when the create answers.
  local pace = lro.config()
  if pace.polls == 0 and pace.seconds == 0 then
    arm.put(res)
    return 200, render(res)
  end
  res._dns = { polls = 0, polls_needed = pace.polls, done_at = clock.now() + pace.seconds }
  arm.put(res)
  return 200, render(res, "RegisteringDns")
end

--- A GET of a vault counts as a poll of its DNS registration: the vault as stored, and
-- "RegisteringDns" while the registration is still running.
local function dns_poll(res)
  if not res._dns then return res end
  local running
  local now_res = arm.update(res.id, function(cur)
    if not cur or not cur._dns then return cur end
    local d = cur._dns
    d.polls = d.polls + 1
    if d.polls >= d.polls_needed and clock.now() >= d.done_at then cur._dns = nil else running = true end
    return cur
  end)
  return now_res or res, running and "RegisteringDns" or nil
end

arm.route({ method = "PUT",
  path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}",
  type = VAULT, action = "Microsoft.KeyVault/vaults/write", handler = put_vault })

-- ---------------------------------------------------------------- PATCH

arm.route({ method = "PATCH",
  path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}",
  type = VAULT, action = "Microsoft.KeyVault/vaults/write",
  handler = function(req)
    local res = require_vault(req)
    local body = arm.body(req)
    if body.properties ~= nil and not is_obj(body.properties) then
      -- synthetic (the text below)
      return errors.arm(400, "InvalidRequestContent", "The request content was invalid and could not be " ..
        "deserialized: 'Error converting value to type 'VaultPatchProperties'. Path 'properties'.'.")
    end
    if body.tags ~= nil then res.tags = arm.check_tags(body.tags) end
    if body.properties then
      local pin = body.properties
      if pin.createMode ~= nil and pin.createMode ~= json.null and (type(pin.createMode) ~= "string" or
        (pin.createMode:lower() ~= "recover" and pin.createMode:lower() ~= "default")) then
        return errors.arm(400, "BadRequest", "Invalid value '" .. tostring(pin.createMode) .. "' for property " ..
          "'createMode'. Allowed values are 'default' and 'recover'.") -- synthetic
      end
      res.properties = apply_properties(json.copy(res.properties), pin, false)
    end
    res.systemData = system_data(req, res)
    arm.put(res)
    return 200, render(res)
  end })

-- ---------------------------------------------------------------- GET, list, DELETE

arm.route({ method = "GET",
  path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}",
  type = VAULT, action = "Microsoft.KeyVault/vaults/read",
  handler = function(req) return 200, render(dns_poll(require_vault(req))) end })

local function list_body(list, req)
  local top = tonumber(req:arg("$top"))
  local out = json.array({})
  for _, r in ipairs(list) do
    if top and #out >= top then break end
    out[#out + 1] = render(r)
  end
  return { value = out }
end

arm.list_routes({ type = VAULT, action = "Microsoft.KeyVault/vaults/read",
  handler = function(req, resources) return 200, list_body(resources, req) end })

arm.route({ method = "DELETE",
  path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}",
  type = VAULT, action = "Microsoft.KeyVault/vaults/delete",
  handler = function(req)
    local p = req.params
    arm.require_rg(p.sub, p.rg)
    local id = vault_id(p.sub, p.rg, p.name)
    if not arm.get(id) then return 204, nil end
    -- the vault (soft delete, via the hook) and everything scoped under it (role assignments)
    arm.delete_tree(id)
    return 200, nil
  end })

-- ---------------------------------------------------------------- access policies

local function same_entry(a, b)
  return a.tenantId:lower() == b.tenantId:lower() and a.objectId:lower() == b.objectId:lower() and
    (a.applicationId or ""):lower() == (b.applicationId or ""):lower()
end

local function merge_perms(cur, add, remove)
  local out = {}
  for kind in pairs(PERM_SETS) do
    local set, order = {}, json.array({})
    for _, x in ipairs(cur[kind] or {}) do
      if not set[x:lower()] then set[x:lower()] = true order[#order + 1] = x end
    end
    for _, x in ipairs((add and add[kind]) or {}) do
      if not set[x:lower()] then set[x:lower()] = true order[#order + 1] = x end
    end
    if remove and remove[kind] then
      local drop = {}
      for _, x in ipairs(remove[kind]) do drop[x:lower()] = true end
      local kept = json.array({})
      for _, x in ipairs(order) do if not drop[x:lower()] then kept[#kept + 1] = x end end
      order = kept
    end
    if #order > 0 or cur[kind] then out[kind] = order end
  end
  return out
end

local function empty_perms(perms)
  for _, l in pairs(perms) do if #l > 0 then return false end end
  return true
end

--- Applies an access-policy edit to a vault id: kind "add" | "replace" | "remove".
-- Exported for the deployments engine (Microsoft.KeyVault/vaults/accessPolicies resources).
function M.edit_access_policies(id, kind, policies)
  local res
  arm.update(id, function(v)
    if not v then return nil end
    local list = json.array({})
    for _, x in ipairs(v.properties.accessPolicies or {}) do list[#list + 1] = x end
    for _, ap in ipairs(policies) do
      local found
      for i, x in ipairs(list) do if same_entry(x, ap) then found = i break end end
      if kind == "add" then
        if found then list[found].permissions = merge_perms(list[found].permissions, ap.permissions)
        else list[#list + 1] = ap end
      elseif kind == "replace" then
        if found then list[found].permissions = ap.permissions else list[#list + 1] = ap end
      elseif found then
        local perms = merge_perms(list[found].permissions, nil, ap.permissions)
        if empty_perms(perms) then table.remove(list, found) else list[found].permissions = perms end
      end
    end
    if #list > 1024 then
      errors.throw(errors.arm(400, "AccessPoliciesLimitExceeded",
        "The number of access policies exceeds the maximum of 1024.")) -- synthetic
    end
    v.properties.accessPolicies = list
    res = v
    return v
  end)
  return res
end

arm.route({ method = "PUT",
  path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}/accessPolicies/{kind}",
  type = "Microsoft.KeyVault/vaults/accessPolicies", action = "Microsoft.KeyVault/vaults/accessPolicies/write",
  handler = function(req)
    local kind = req.params.kind:lower()
    if kind ~= "add" and kind ~= "replace" and kind ~= "remove" then
      return errors.arm(400, "BadRequest", "The access policy update kind '" .. req.params.kind .. "' is not " ..
        "valid. Allowed values are 'add', 'replace' and 'remove'.") -- synthetic
    end
    local res = require_vault(req)
    local body = arm.body(req)
    if not is_obj(body.properties) or body.properties.accessPolicies == nil then
      return errors.arm(400, "BadRequest", "The parameter properties.accessPolicies is required.") -- synthetic
    end
    local policies = check_policies(body.properties.accessPolicies, "properties.accessPolicies")
    M.edit_access_policies(res.id, kind, policies)
    return 200, { id = res.id .. "/accessPolicies/", type = "Microsoft.KeyVault/vaults/accessPolicies",
      properties = { accessPolicies = policies } }
  end })

-- ---------------------------------------------------------------- deleted vaults

local function deleted_not_found(name)
  return errors.arm(404, "ResourceNotFound", "The Resource 'Microsoft.KeyVault/deletedVaults/" .. name ..
    "' under subscription was not found. A soft deleted vault with this name does not exist in this " ..
    "location.") -- synthetic
end

local function find_deleted(req)
  local p = req.params
  local dv = store.deleted_vault(p.name)
  if not dv or dv.purging or arm.location(p.loc) ~= dv.location or
    not util.under(dv.vault.id, "/subscriptions/" .. p.sub) then
    errors.throw(deleted_not_found(p.name))
  end
  return dv
end

arm.route({ method = "GET",
  path = "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{loc}/deletedVaults/{name}",
  type = "Microsoft.KeyVault/locations/deletedVaults", action = "Microsoft.KeyVault/locations/deletedVaults/read",
  handler = function(req)
    return 200, deleted_body(find_deleted(req), req.params.sub)
  end })

arm.route({ method = "GET", path = "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults",
  type = "Microsoft.KeyVault/deletedVaults", action = "Microsoft.KeyVault/deletedVaults/read",
  handler = function(req)
    local out = json.array({})
    for _, dv in ipairs(store.deleted_vaults()) do
      if not dv.purging and util.under(dv.vault.id, "/subscriptions/" .. req.params.sub) then
        out[#out + 1] = deleted_body(dv, req.params.sub)
      end
    end
    return 200, { value = out }
  end })

-- Key Vault's own operation result (recorded Azure traffic, azure-cli test_keyvault_softdelete):
-- {"createdDateTime": "2022-04-07 07:21:31Z", "lastActionDateTime": "...", "status": "Succeeded"}
local function purge_time(t)
  return os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(t))
end

lro.register("vaults.purge", function(args, op)
  local dv = state.get("kv:dv:" .. args.name)
  if dv and dv.purging then
    store.purge_vault_data(args.name)
    store.forget(args.name)
  end
  return true, { createdDateTime = purge_time(op.start), lastActionDateTime = purge_time(clock.now()),
    status = "Succeeded" }, 200
end)

arm.route({ method = "POST",
  path = "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{loc}/deletedVaults/{name}/purge",
  type = "Microsoft.KeyVault/locations/deletedVaults",
  action = "Microsoft.KeyVault/locations/deletedVaults/purge/action",
  handler = function(req)
    local dv = find_deleted(req)
    if store.purge_protected(dv.vault) then
      -- Azure's answer (seen in the wild) names the operation only.
      return errors.arm(405, "MethodNotAllowed", "Operation 'DeletedVaultPurge' is not allowed.") -- synthetic
    end
    local lname = req.params.name:lower()
    local cfg = lro.config()
    state.update("kv:dv:" .. lname, function(d)
      if not d then return nil end
      d.purging = true
      -- the purge finishes when polled, or by itself once the LRO's time has passed
      d.purge_at = store.now() + math.max(cfg.seconds or 0, 0)
      return d
    end)
    local headers = lro.begin({ req = req, style = "location", action = "vaults.purge", args = { name = lname },
      -- Azure's poll URL hangs under the location, not under the deleted vault (recorded traffic)
      prefix = "/subscriptions/" .. req.params.sub .. "/providers/Microsoft.KeyVault/locations/" ..
        arm.location(req.params.loc) })
    return 202, nil, headers
  end })

-- ---------------------------------------------------------------- checkNameAvailability

arm.route({ method = "POST", path = "/subscriptions/{sub}/providers/Microsoft.KeyVault/checkNameAvailability",
  type = "Microsoft.KeyVault/checkNameAvailability", action = "Microsoft.KeyVault/checkNameAvailability/read",
  handler = function(req)
    local body = arm.body(req)
    if type(body.name) ~= "string" then
      return errors.arm(400, "BadRequest", "The parameter name is required.") -- synthetic
    end
    if type(body.type) ~= "string" or body.type:lower() ~= VAULT:lower() then
      return errors.arm(400, "BadRequest", "The parameter type must be 'Microsoft.KeyVault/vaults'.") -- synthetic
    end
    if not M.valid_name(body.name) then
      return 200, { nameAvailable = false, reason = "AccountNameInvalid", message = name_message(body.name) }
    end
    local e = store.name_entry(body.name)
    if e and e.deleted and not store.deleted_vault(body.name) then e = nil end
    if e then
      return 200, { nameAvailable = false, reason = "AlreadyExists", message = in_use_message(body.name) }
    end
    return 200, { nameAvailable = true }
  end })

return M
