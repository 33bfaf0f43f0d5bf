--- emu.arm.identities: Microsoft.ManagedIdentity/userAssignedIdentities.
--   PUT/GET/PATCH/DELETE /subscriptions/{sub}/resourceGroups/{rg}/providers/
--       Microsoft.ManagedIdentity/userAssignedIdentities/{name}
--   GET  .../resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities  (list)
--   GET  /subscriptions/{sub}/providers/Microsoft.ManagedIdentity/userAssignedIdentities     (list)
--   POST .../userAssignedIdentities/{name}/listAssociatedResources
--   GET  /providers/Microsoft.ManagedIdentity/operations
-- Quirk kept from the real service: ids use lower-case "resourcegroups". Creating one
-- registers its principal in the directory (tokens via IMDS once attached to the VM).
local arm = require("emu.arm")
local errors = require("emu.errors")
local json = require("emu.json")
local util = require("emu.util")
local directory = require("emu.directory")

local M = {}

M.TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
arm.register_type({ type = M.TYPE, tracked = true,
  api_versions = { "2026-05-31", "2025-05-31-preview", "2025-01-31-preview", "2024-11-30", "2023-07-31-preview",
    "2023-01-31", "2022-01-31-preview", "2021-09-30-preview", "2018-11-30", "2015-08-31-preview" } })

local PATH = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/" ..
  "userAssignedIdentities/{name}"

local function id_of(p)
  return "/subscriptions/" .. p.sub .. "/resourcegroups/" .. p.rg ..
    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" .. p.name
end

local function scope(req) return id_of(req.params) end

function M.check_name(name)
  if not name:match("^[%w][%w_%-]*$") or #name < 3 or #name > 128 then
    -- synthetic (the text below)
    return errors.arm(400, "InvalidResourceName", "Resource name " .. name .. " is invalid. The name can be " ..
      "3-128 characters long and can contain only letters, numbers, hyphens and underscores. It must start with " ..
      "a letter or number.")
  end
end

-- put: the answer of a create/update. Newer api-versions add isolationScope and
-- assignmentRestrictions; up to 2018-11-30 a PUT's answer has clientSecretUrl (recorded in
-- test_acr_identity.yaml, 2021), a GET's has not (test_acr_encryption_with_cmk.yaml, 2022).
local function render(res, api, put)
  local out = arm.render(res)
  if api >= "2026-05-31" then
    out.properties.isolationScope = "None"
    out.properties.assignmentRestrictions = { providers = json.array({}) }
  elseif api <= "2018-11-30" and put then
    out.properties.clientSecretUrl = "https://control-" .. res.location .. ".identity.azure.net" .. res.id ..
      "/credentials?tid=" .. res.properties.tenantId .. "&oid=" .. res.properties.principalId ..
      "&aid=" .. res.properties.clientId
  end
  return out
end

arm.on_delete(M.TYPE, function(res)
  directory.remove(res.properties.principalId)
  directory.index_resource_id(res.id, nil)
end)

arm.route({ method = "PUT", path = PATH, type = M.TYPE, scope = scope,
  action = "Microsoft.ManagedIdentity/userAssignedIdentities/write",
  handler = function(req)
    local p = req.params
    local st, b = M.check_name(p.name)
    if st then return st, b end
    arm.require_rg(p.sub, p.rg)
    local body = arm.body(req)
    local loc = arm.require_location(body, M.TYPE)
    local tags = arm.check_tags(body.tags)
    local id = id_of(p)
    local created = false
    local res, err = arm.update(id, function(old)
      if old then
        if old.location ~= loc then return old, "location" end
        old.tags = body.tags ~= nil and tags or old.tags
        return old
      end
      created = true
      return { id = id, name = p.name, type = M.TYPE, location = loc, tags = tags,
        properties = { tenantId = require("emu.seed").data.tenant_id, principalId = util.uuid(),
          clientId = util.uuid() } }
    end)
    if err == "location" then
      -- synthetic (the text below)
      return errors.arm(400, "InvalidResourceLocation", string.format("The resource '%s' already exists in " ..
        "location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. " ..
        "Please select a new resource name.", p.name, res.location, p.rg, loc))
    end
    if created then
      directory.add({ objectId = res.properties.principalId, appId = res.properties.clientId, displayName = p.name,
        kind = "managedIdentity", resourceId = res.id })
      directory.index_resource_id(res.id, res.properties.principalId)
    end
    local api = arm.qparam(req, "api-version")
    return created and 201 or 200, render(res, api, true), created and { Location = res.id } or nil
  end })

arm.route({ method = "GET", path = PATH, type = M.TYPE, scope = scope,
  action = "Microsoft.ManagedIdentity/userAssignedIdentities/read",
  handler = function(req)
    local res = arm.get(id_of(req.params))
    if not res then
      arm.require_rg(req.params.sub, req.params.rg)
      return arm.not_found(M.TYPE, req.params.name, req.params.rg)
    end
    return 200, render(res, arm.qparam(req, "api-version"))
  end })

arm.route({ method = "PATCH", path = PATH, type = M.TYPE, scope = scope,
  action = "Microsoft.ManagedIdentity/userAssignedIdentities/write",
  handler = function(req)
    arm.require_rg(req.params.sub, req.params.rg)
    local body = arm.body(req)
    local res = arm.patch_tags(id_of(req.params), body, function()
      if body.location ~= nil and body.location ~= json.null then arm.require_location(body, M.TYPE) end
    end)
    if not res then return arm.not_found(M.TYPE, req.params.name, req.params.rg) end
    return 200, render(res, arm.qparam(req, "api-version"))
  end })

arm.route({ method = "DELETE", path = PATH, type = M.TYPE, scope = scope,
  action = "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
  handler = function(req)
    local res = arm.delete(id_of(req.params))
    return res and 200 or 204, nil
  end })

-- POST .../userAssignedIdentities/{name}/listAssociatedResources: the resources whose identity
-- block names this identity (registries, ...), {"totalCount", "value": [AzureResource]}.
arm.route({ method = "POST", path = PATH .. "/listAssociatedResources", type = M.TYPE, scope = scope,
  action = "Microsoft.ManagedIdentity/userAssignedIdentities/listAssociatedResources/action",
  handler = function(req)
    local p = req.params
    arm.require_rg(p.sub, p.rg)
    local id = id_of(p)
    if not arm.get(id) then
      return errors.arm(404, "ResourceNotFound", "The Resource '" .. M.TYPE .. "/" .. p.name .. -- synthetic
        "' under resource group '" .. p.rg .. "' was not found.")
    end
    local sub = arm.require_subscription(p.sub)
    local out = json.array({})
    for _, r in ipairs(arm.list({ under = "/subscriptions/" .. p.sub })) do
      local uais = type(r.identity) == "table" and r.identity.userAssignedIdentities
      if type(uais) == "table" then
        for k in pairs(uais) do
          if type(k) == "string" and k:lower() == id:lower() then
            out[#out + 1] = { id = r.id, name = r.name, type = r.type, subscriptionId = p.sub,
              resourceGroup = r.id:match("/[Rr][Ee][Ss][Oo][Uu][Rr][Cc][Ee][Gg][Rr][Oo][Uu][Pp][Ss]/([^/]+)"),
              subscriptionDisplayName = sub.displayName }
          end
        end
      end
    end
    return 200, { totalCount = #out, value = out }
  end })

-- GET /providers/Microsoft.ManagedIdentity/operations: the provider's operations, as Azure lists them.
local function op(name, resource, operation, description)
  return { name = "Microsoft.ManagedIdentity/" .. name, display = { provider = "Microsoft Managed Identity",
    resource = resource, operation = operation, description = description } }
end
M.OPERATIONS = json.array({
  op("identities/read", "System Assigned Identities", "Get System Assigned Identity",
    "Gets an existing system assigned identity"),
  op("operations/read", "Managed Identity operations", "List Managed Identity operations",
    "Lists operations available on Microsoft.ManagedIdentity resource provider"),
  op("register/action", "Managed Identity Resource Provider", "Registers the Managed Identity Resource Provider",
    "Registers the subscription for the managed identity resource provider"),
  op("userAssignedIdentities/assign/action", "User Assigned Identities", "Assign User Assigned Identity",
    "RBAC action for assigning an existing user assigned identity to a resource"),
  op("userAssignedIdentities/delete", "User Assigned Identities", "Delete User Assigned Identity",
    "Deletes an existing user assigned identity"),
  op("userAssignedIdentities/listAssociatedResources/action", "User Assigned Identities",
    "List associated resources for User Assigned Identity",
    "Lists all associated resources for an existing user assigned identity"),
  op("userAssignedIdentities/read", "User Assigned Identities", "Get User Assigned Identity",
    "Gets an existing user assigned identity"),
  op("userAssignedIdentities/write", "User Assigned Identities", "Create/Update User Assigned Identity",
    "Creates a new user assigned identity or updates the tags associated with an existing user assigned identity"),
})
arm.route({ method = "GET", path = "/providers/Microsoft.ManagedIdentity/operations", type = M.TYPE,
  handler = function() return 200, { value = M.OPERATIONS } end })

arm.list_routes({ type = M.TYPE, action = "Microsoft.ManagedIdentity/userAssignedIdentities/read",
  container_scope = true,
  handler = function(req, resources)
    local out = json.array({})
    local api = arm.qparam(req, "api-version")
    for _, r in ipairs(resources) do out[#out + 1] = render(r, api) end
    return 200, { value = out }
  end })

return M
