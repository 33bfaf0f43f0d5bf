--- Names and identifiers: validation of resource names (before any write), ARM resource ids,
-- Key Vault key ids (versioned / versionless, and of which cloud), identity values
-- (name, resource id, client id, "[system]").
local errors = require("azcmk.errors")

local M = {}

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function M.is_uuid(s) return type(s) == "string" and s:match(UUID) ~= nil end

-- Every check takes the option the value came from (param, for the error; a default per
-- check), so that the error names it.
local function bad(what, value, rule, param, hint)
  return nil, errors.input(string.format("invalid %s '%s': %s", what, tostring(value), rule),
    { code = "InvalidName", target = what, param = param, hint = hint or ("choose a " .. what .. " that "
      .. rule) })
end

local function missing(what, param)
  return nil, errors.input("a " .. what .. " is required", { code = "MissingArgument", param = param,
    hint = "pass the " .. what .. " (`" .. param .. "`)" })
end

--- Registry: 5-50 alphanumeric characters (ACR; login server {name}.azurecr.io).
function M.check_registry_name(n, param)
  param = param or "registry"
  if type(n) ~= "string" or n == "" then return missing("registry name", param) end
  if #n < 5 or #n > 50 or not n:match("^[%a%d]+$") then
    return bad("registry name", n, "has 5-50 alphanumeric characters (a-z, A-Z, 0-9; no '-' or '_')", param)
  end
  return n
end

--- Key Vault: 3-24 characters, letters, digits and '-', starting with a letter, ending with a
-- letter or digit, no '--'.
function M.check_vault_name(n, param)
  param = param or "vault"
  if type(n) ~= "string" or n == "" then return missing("Key Vault name", param) end
  if #n < 3 or #n > 24 or not n:match("^[%a%d%-]+$") or not n:match("^%a") or n:match("%-$")
    or n:find("--", 1, true) then
    return bad("Key Vault name", n, "has 3-24 letters, digits and '-', starts with a letter, ends with a "
      .. "letter or digit and has no '--'", param)
  end
  return n
end

--- Key: 1-127 letters, digits and '-'.
function M.check_key_name(n, param)
  param = param or "key"
  if type(n) ~= "string" or n == "" then return missing("key name", param) end
  if #n > 127 or not n:match("^[%a%d%-]+$") then
    return bad("key name", n, "has 1-127 letters, digits and '-'", param)
  end
  return n
end

-- letters/digits (also non-ASCII letters), '_', '-', '.', '(', ')'
local function rg_chars(n) return n:match("^[%w_%-%.%(%)\128-\255]+$") ~= nil end

--- Resource group: 1-90 characters: letters, digits, '_', '-', '.', '(', ')'; not ending in '.'.
function M.check_resource_group(n, param)
  param = param or "resource_group"
  if type(n) ~= "string" or n == "" then return missing("resource group", param) end
  if #n > 90 or not rg_chars(n) or n:sub(-1) == "." then
    return bad("resource group name", n, "has 1-90 letters, digits, '_', '-', '.', '(' or ')' and does not "
      .. "end with '.'", param)
  end
  return n
end

--- User-assigned identity: 3-128 characters, letters, digits, '-' and '_', starting with a
-- letter or digit.
function M.check_identity_name(n, param)
  if type(n) ~= "string" or #n < 3 or #n > 128 or not n:match("^[%a%d][%w%-_]*$") then
    return bad("identity name", n, "has 3-128 letters, digits, '-' or '_' and starts with a letter or digit",
      param or "identity")
  end
  return n
end

--- Deployment: 1-64 characters like a resource group name.
function M.check_deployment_name(n, param)
  if type(n) ~= "string" or n == "" or #n > 64 or not rg_chars(n) then
    return bad("deployment name", n, "has 1-64 letters, digits, '_', '-', '.', '(' or ')'", param or "name")
  end
  return n
end

--- Location: letters and digits (westus, westeurope).
function M.check_location(l, param)
  if type(l) ~= "string" or not l:match("^[%a%d][%a%d ]*$") then
    return bad("location", l, "is an Azure region name such as westus or westeurope", param or "location")
  end
  return (l:gsub(" ", "")):lower()
end

--- Parses an ARM resource id: { subscription, resource_group, provider, type, name, id }.
function M.parse_resource_id(id)
  if type(id) ~= "string" then return nil end
  local sub, rg, ns, typ, name = id:match(
    "^/[Ss][Uu][Bb][Ss][Cc][Rr][Ii][Pp][Tt][Ii][Oo][Nn][Ss]/([^/]+)/[Rr][Ee][Ss][Oo][Uu][Rr][Cc][Ee]"
    .. "[Gg][Rr][Oo][Uu][Pp][Ss]/([^/]+)/[Pp][Rr][Oo][Vv][Ii][Dd][Ee][Rr][Ss]/([^/]+)/([^/]+)/([^/]+)/?$")
  if not sub then return nil end
  return { subscription = sub, resource_group = rg, provider = ns, type = ns .. "/" .. typ, name = name,
           id = id }
end

--- Case-insensitive resource id comparison (Azure returns 'resourcegroups' in some ids).
function M.same_id(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then return false end
  return (a:lower():gsub("/+$", "")) == (b:lower():gsub("/+$", ""))
end

--- Parses a Key Vault key id for the cloud profile `cloud`:
-- https://{vault}{vault_suffix}/keys/{name}[/{version}]
-- Returns { vault, vault_url, name, version (or nil), versionless, versioned (or nil), id } or
-- nil, err (kind input) naming what is wrong and what to do.
function M.parse_key_id(kid, cloud, param)
  param = param or "key_id"
  if type(kid) ~= "string" or kid == "" then
    return nil, errors.input("a key id is required", { code = "MissingArgument", param = param,
      hint = "pass a key id like https://myvault" .. (cloud and cloud.vault_suffix or ".vault.azure.net")
        .. "/keys/mykey[/version]" })
  end
  local shape_hint = "a key id looks like https://<vault>"
    .. (cloud and cloud.vault_suffix or ".vault.azure.net")
    .. "/keys/<key>[/<32-hex-version>] (take it from show's key_id or the key's kid)"
  local host, path = kid:match("^https://([^/:?#]+)(/[^?#]*)$")
  if not host then
    host, path = kid:match("^https://([^/:?#]+):443(/[^?#]*)$")
  end
  if not host then
    return nil, errors.input("the key id '" .. kid .. "' is not an https URL of a Key Vault key",
      { code = "InvalidKeyId", param = param, hint = shape_hint })
  end
  host = host:lower()
  local name, version = path:match("^/keys/([^/]+)/([^/]+)/?$")
  if not name then name = path:match("^/keys/([^/]+)/?$") end
  if not name then
    return nil, errors.input("the key id '" .. kid
      .. "' has the wrong shape (expected /keys/<name>[/<version>])",
      { code = "InvalidKeyId", param = param, hint = shape_hint })
  end
  if not name:match("^[%a%d%-]+$") or #name > 127 then
    return nil, errors.input("the key id '" .. kid .. "' names an invalid key '" .. name .. "'",
      { code = "InvalidKeyId", param = param, hint = shape_hint })
  end
  if version and not version:match("^%x+$") then
    return nil, errors.input("the key id '" .. kid .. "' has an invalid version '" .. version
      .. "' (expected 32 hexadecimal characters)", { code = "InvalidKeyId", param = param,
        hint = shape_hint })
  end
  local suffix = cloud and cloud.vault_suffix or ".vault.azure.net"
  local vault = host:sub(1, #host - #suffix)
  if host:sub(-#suffix) ~= suffix or vault == "" or vault:find(".", 1, true) then
    local other
    for _, prof in pairs(require("azcmk.cloud").profiles) do
      if host:sub(-#prof.vault_suffix) == prof.vault_suffix then other = prof.name end
    end
    if other then
      return nil, errors.input("the key id '" .. kid .. "' is of a vault in " .. other .. ", not in "
        .. (cloud and cloud.name or "AzureCloud"), { code = "KeyVaultInOtherCloud", param = param,
        hint = "use a key of a vault in " .. (cloud and cloud.name or "AzureCloud") .. " (" .. suffix
          .. "), or select the other cloud with AZURE_CLOUD=" .. other })
    end
    if host:find("managedhsm", 1, true) then
      return nil, errors.input("the key id '" .. kid .. "' is a Managed HSM key; azcmk handles Key Vault "
        .. "keys (" .. suffix .. ")", { code = "InvalidKeyId", param = param, hint = shape_hint })
    end
    return nil, errors.input("the key id '" .. kid .. "' is not on a Key Vault host (*" .. suffix .. ")",
      { code = "InvalidKeyId", param = param, hint = shape_hint })
  end
  if not M.check_vault_name(vault, param) then
    return nil, errors.input("the key id '" .. kid .. "' names an invalid vault '" .. vault .. "'",
      { code = "InvalidKeyId", param = param, hint = shape_hint })
  end
  local vault_url = "https://" .. host
  local versionless = vault_url .. "/keys/" .. name
  return { vault = vault, vault_url = vault_url, name = name, version = version, versionless = versionless,
           versioned = version and (versionless .. "/" .. version) or nil, id = version and
           (versionless .. "/" .. version) or versionless }
end

--- The vault URL of a vault name in a cloud.
function M.vault_url(vault, cloud)
  return "https://" .. vault:lower() .. (cloud and cloud.vault_suffix or ".vault.azure.net")
end

--- Vault value: a name, or a vault's resource id
-- (/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}, any case,
-- which may be in another subscription of the tenant). Returns { kind = "name" | "id", name,
-- id?, subscription?, resource_group? } or nil, err (kind input).
function M.parse_vault(v, param)
  param = param or "vault"
  if type(v) == "string" and v:sub(1, 1) == "/" then
    local r = M.parse_resource_id(v)
    local hint = "pass a vault name, or /subscriptions/<subscription id>/resourceGroups/<rg>/providers/"
      .. "Microsoft.KeyVault/vaults/<name> (e.g. from `az keyvault show --query id`)"
    if not r or r.type:lower() ~= "microsoft.keyvault/vaults" or not M.is_uuid(r.subscription) then
      return nil, errors.input("'" .. v .. "' is not the resource id of a Key Vault",
        { code = "InvalidVaultId", param = param, hint = hint })
    end
    local ok, err = M.check_resource_group(r.resource_group, param)
    if ok then ok, err = M.check_vault_name(r.name, param) end
    if not ok then return nil, err end
    return { kind = "id", name = r.name, id = (v:gsub("/+$", "")), subscription = r.subscription:lower(),
      resource_group = r.resource_group }
  end
  local ok, err = M.check_vault_name(v, param)
  if not ok then return nil, err end
  return { kind = "name", name = v }
end

--- Identity value as the Azure CLI takes it: "[system]" (or "system"), a resource id, a client
-- id (UUID), or a name. Returns { kind = "system" | "id" | "client_id" | "name", value }.
function M.parse_identity(v, param)
  param = param or "identity"
  if type(v) ~= "string" or v == "" then
    return nil, errors.input("an identity is required", { code = "MissingArgument", param = param,
      hint = "pass `" .. param .. "`: a name, a resource id, a client id, or [system]" })
  end
  local l = v:lower()
  if l == "[system]" or l == "system" then return { kind = "system", value = "system" } end
  if M.is_uuid(v) then return { kind = "client_id", value = l } end
  if v:sub(1, 1) == "/" then
    local r = M.parse_resource_id(v)
    if not r or r.type:lower() ~= "microsoft.managedidentity/userassignedidentities" then
      return nil, errors.input("'" .. v .. "' is not the resource id of a user-assigned identity",
        { code = "InvalidIdentity", param = param,
          hint = "pass /subscriptions/<sub>/resourceGroups/<rg>/providers/"
          .. "Microsoft.ManagedIdentity/userAssignedIdentities/<name>, a name, a client id or [system]" })
    end
    return { kind = "id", value = v, parsed = r }
  end
  local ok, err = M.check_identity_name(v, param)
  if not ok then return nil, err end
  return { kind = "name", value = v }
end

-- ------------------------------------------------------------------ building ids and URLs
-- Resource ids and Key Vault URLs are put together here and in the clients only: a plan
-- names the resource a write is about and the request it sends, a check names what it read,
-- with these builders (scripts/require-graph refuses a path built by hand elsewhere).

--- The resource types azcmk works with.
M.TYPES = { vault = "Microsoft.KeyVault/vaults", registry = "Microsoft.ContainerRegistry/registries",
  identity = "Microsoft.ManagedIdentity/userAssignedIdentities",
  deployment = "Microsoft.Resources/deployments" }

--- /subscriptions/{sub}
function M.subscription_id(sub) return "/subscriptions/" .. tostring(sub) end

--- /subscriptions/{sub}/resourceGroups/{rg}
function M.resource_group_id(sub, rg) return M.subscription_id(sub) .. "/resourceGroups/" .. tostring(rg) end

--- The id of resource `name` of `kind` (a key of M.TYPES, or a provider type) in a resource group.
function M.resource_id(sub, rg, kind, name)
  return M.resource_group_id(sub, rg) .. "/providers/" .. (M.TYPES[kind] or kind) .. "/" .. tostring(name)
end

--- The role assignments at scope (an id), or the assignment `name` there ("..." when its
-- name is not known yet).
function M.role_assignment_id(scope, name)
  local list = tostring(scope) .. "/providers/Microsoft.Authorization/roleAssignments"
  if name == false then return list end
  return list .. "/" .. (name or "...")
end

--- The access policy edit of a vault: op "add" or "remove".
function M.access_policy_path(vault_id, op) return tostring(vault_id) .. "/accessPolicies/" .. op end

--- The soft-deleted vaults of a subscription ("..." when it is not known).
function M.deleted_vaults_id(sub)
  return M.subscription_id(sub or "...") .. "/providers/Microsoft.KeyVault/deletedVaults"
end

--- The URL of key `name` in a vault, with more segments (a version, "create") when given.
function M.key_url(vault_url, name, ...)
  local parts = { tostring(vault_url):gsub("/+$", "") .. "/keys/" .. tostring(name), ... }
  return table.concat(parts, "/")
end

--- The URL of soft-deleted key `name` ("recover" and so on when given).
function M.deleted_key_url(vault_url, name, ...)
  local parts = { tostring(vault_url):gsub("/+$", "") .. "/deletedkeys/" .. tostring(name), ... }
  return table.concat(parts, "/")
end

--- The RBAC scope of key `name` in the vault of vault_id.
function M.key_scope(vault_id, name) return tostring(vault_id) .. "/keys/" .. tostring(name) end

--- Does s look like a Key Vault key id (an https URL with /keys/)? (parse_key_id checks it.)
function M.looks_like_key_id(s)
  return type(s) == "string" and s:match("^https://") ~= nil and s:find("/keys/", 1, true) ~= nil
end

return M
