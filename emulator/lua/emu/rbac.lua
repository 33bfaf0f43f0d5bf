--- emu.rbac: built-in role definitions and the authorization check.
-- Role assignments are ARM resources (emu.arm store, type Microsoft.Authorization/roleAssignments)
-- plus an index per principal ("ra:p:<oid>" -> array of lower-case assignment ids).
local state = require("emu.state")
local json = require("emu.json")
local util = require("emu.util")

local M = {}

local KV_ACTIONS = { "Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
  "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
  "Microsoft.Support/*", "Microsoft.KeyVault/checkNameAvailability/read", "Microsoft.KeyVault/deletedVaults/read",
  "Microsoft.KeyVault/locations/*/read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/operations/read" }

-- guid -> { name, description, actions, notActions, dataActions, notDataActions }
M.BUILTIN = {
  ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635"] = { name = "Owner",
    description = "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
    actions = { "*" } },
  ["b24988ac-6180-42a0-ab88-20f7382dd24c"] = { name = "Contributor",
    description = "Grants full access to manage all resources, but does not allow you to assign roles in Azure " ..
      "RBAC, manage assignments in Azure Blueprints, or share image galleries.",
    actions = { "*" },
    notActions = { "Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
      "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Blueprint/blueprintAssignments/write",
      "Microsoft.Blueprint/blueprintAssignments/delete", "Microsoft.Compute/galleries/share/action",
      "Microsoft.Purview/consents/write", "Microsoft.Purview/consents/delete",
      "Microsoft.Resources/deploymentStacks/manageDenySetting/action" } },
  ["acdd72a7-3385-48ef-bd42-f606fba81ae7"] = { name = "Reader",
    description = "View all resources, but does not allow you to make any changes.", actions = { "*/read" } },
  ["18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"] = { name = "User Access Administrator",
    description = "Lets you manage user access to Azure resources.",
    actions = { "*/read", "Microsoft.Authorization/*", "Microsoft.Support/*" } },
  ["00482a5a-887f-4fb3-b363-3b7fe8e74483"] = { name = "Key Vault Administrator",
    description = "Perform all data plane operations on a key vault and all objects in it, including " ..
      "certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments. Only " ..
      "works for key vaults that use the 'Azure role-based access control' permission model.",
    actions = KV_ACTIONS, dataActions = { "Microsoft.KeyVault/vaults/*" } },
  ["14b46e9e-c2b7-41b4-b07b-48a6ebf60603"] = { name = "Key Vault Crypto Officer",
    description = "Perform any action on the keys of a key vault, except manage permissions. Only works for key " ..
      "vaults that use the 'Azure role-based access control' permission model.",
    actions = KV_ACTIONS,
    dataActions = { "Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*" } },
  ["e147488a-f6f5-4113-8e2d-b22465e65bf6"] = { name = "Key Vault Crypto Service Encryption User",
    description = "Read metadata of keys and perform wrap/unwrap operations. Only works for key vaults that use " ..
      "the 'Azure role-based access control' permission model.",
    actions = { "Microsoft.EventGrid/eventSubscriptions/write", "Microsoft.EventGrid/eventSubscriptions/read",
      "Microsoft.EventGrid/eventSubscriptions/delete" },
    dataActions = { "Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
      "Microsoft.KeyVault/vaults/keys/unwrap/action" } },
  ["12338af0-0e69-4776-bea7-57ae8d297424"] = { name = "Key Vault Crypto User",
    description = "Perform cryptographic operations using keys. Only works for key vaults that use the 'Azure " ..
      "role-based access control' permission model.",
    dataActions = { "Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/update/action",
      "Microsoft.KeyVault/vaults/keys/backup/action", "Microsoft.KeyVault/vaults/keys/encrypt/action",
      "Microsoft.KeyVault/vaults/keys/decrypt/action", "Microsoft.KeyVault/vaults/keys/wrap/action",
      "Microsoft.KeyVault/vaults/keys/unwrap/action", "Microsoft.KeyVault/vaults/keys/sign/action",
      "Microsoft.KeyVault/vaults/keys/verify/action" } },
  ["21090545-7ca7-4776-b22c-e363652d74d2"] = { name = "Key Vault Reader",
    description = "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive " ..
      "values such as secret contents or key material. Only works for key vaults that use the 'Azure " ..
      "role-based access control' permission model.",
    actions = KV_ACTIONS,
    dataActions = { "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action" } },
  ["f1a07417-d97a-45cb-824c-7a7467783830"] = { name = "Managed Identity Operator",
    description = "Read and Assign User Assigned Identity",
    actions = { "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
      "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", "Microsoft.Authorization/*/read",
      "Microsoft.Insights/alertRules/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
      "Microsoft.Resources/deployments/*", "Microsoft.Support/*" } },
  ["e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"] = { name = "Managed Identity Contributor",
    description = "Create, Read, Update, and Delete User Assigned Identity",
    actions = { "Microsoft.ManagedIdentity/userAssignedIdentities/read",
      "Microsoft.ManagedIdentity/userAssignedIdentities/write",
      "Microsoft.ManagedIdentity/userAssignedIdentities/delete", "Microsoft.Authorization/*/read",
      "Microsoft.Insights/alertRules/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
      "Microsoft.Resources/deployments/*", "Microsoft.Support/*" } },
  ["7f951dda-4ed3-4680-a7ca-43fe172d538d"] = { name = "AcrPull", description = "acr pull",
    actions = { "Microsoft.ContainerRegistry/registries/pull/read" } },
  ["8311e382-0749-4cb8-b61a-304f252e45ec"] = { name = "AcrPush", description = "acr push",
    actions = { "Microsoft.ContainerRegistry/registries/pull/read",
      "Microsoft.ContainerRegistry/registries/push/write" } },
}

M.OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
M.CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
M.READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
M.KV_CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"

--- ARM body of a role definition as seen at `scope` ("" or "/subscriptions/{sub}").
function M.definition_body(guid, scope)
  local d = M.BUILTIN[guid:lower()]
  if not d then return nil end
  return {
    id = (scope or "") .. "/providers/Microsoft.Authorization/roleDefinitions/" .. guid:lower(),
    type = "Microsoft.Authorization/roleDefinitions", name = guid:lower(),
    properties = {
      roleName = d.name, type = "BuiltInRole", description = d.description,
      assignableScopes = json.array({ "/" }),
      permissions = json.array({ {
        actions = json.array(util.merge(d.actions or {})), notActions = json.array(util.merge(d.notActions or {})),
        dataActions = json.array(util.merge(d.dataActions or {})),
        notDataActions = json.array(util.merge(d.notDataActions or {})),
      } }),
      createdOn = "2015-02-02T21:55:09.8806423Z", updatedOn = "2024-01-10T18:12:05.0000000Z",
      createdBy = json.null, updatedBy = json.null,
    },
  }
end

-- Azure action wildcards: "*" matches anything; comparison ignores case.
local pat_cache = {}
local function wildcard(p)
  local c = pat_cache[p]
  if c then return c end
  c = "^" .. p:lower():gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
  pat_cache[p] = c
  return c
end

local function any_match(list, action)
  if not list then return false end
  local a = action:lower()
  for _, p in ipairs(list) do
    if a:match(wildcard(p)) then return true end
  end
  return false
end

--- Whether role `guid` grants `action` (data = true for a data action).
function M.role_allows(guid, action, data)
  local d = M.BUILTIN[guid:lower()]
  if not d then
    local custom = state.get("roledef:" .. guid:lower())
    if not custom then return false end
    d = custom
  end
  if data then
    return any_match(d.dataActions, action) and not any_match(d.notDataActions, action)
  end
  return any_match(d.actions, action) and not any_match(d.notActions, action)
end

--- The role definition GUID at the end of a roleDefinitionId.
function M.guid_of(role_definition_id)
  return type(role_definition_id) == "string" and role_definition_id:match("([%x%-]+)$"):lower() or nil
end

--- Role assignment records of a principal (each the stored ARM resource; read-only tables).
function M.assignments_of(oid)
  local ids = state.get_ro("ra:p:" .. oid:lower()) or {}
  local out = {}
  for _, id in ipairs(ids) do
    local ra = state.get_ro("arm:" .. id)
    if ra then out[#out + 1] = ra end
  end
  return out
end

function M.index_add(oid, id)
  state.update("ra:p:" .. oid:lower(), function(list)
    list = list or json.array({})
    for _, x in ipairs(list) do if x == id:lower() then return list end end
    list[#list + 1] = id:lower()
    return json.array(list)
  end)
end

function M.index_remove(oid, id)
  state.update("ra:p:" .. oid:lower(), function(list)
    if not list then return nil end
    local out = json.array({})
    for _, x in ipairs(list) do if x ~= id:lower() then out[#out + 1] = x end end
    if #out == 0 then return nil end
    return out
  end)
end

--- Does principal `oid` hold `action` at `scope`? data = true for Key Vault data actions.
-- Returns true, assignment or false.
function M.allowed(oid, action, scope, data)
  if not oid then return false end
  for _, ra in ipairs(M.assignments_of(oid)) do
    local p = ra.properties
    if util.under(scope, p.scope) and M.role_allows(M.guid_of(p.roleDefinitionId), action, data) then
      return true, ra
    end
  end
  return false
end

--- ARM's AuthorizationFailed message.
function M.denied_message(principal, action, scope)
  local who = principal.appid or principal.oid
  return string.format("The client '%s' with object id '%s' does not have authorization to perform action " ..
    "'%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your " ..
    "credentials.", who, principal.oid, action, scope)
end

return M
