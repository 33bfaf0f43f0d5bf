--- Role assignments: create (idempotent: a deterministic name per scope,
-- principal and role; RoleAssignmentExists counts as done), list, find, delete.
local base = require("azcmk.client.base")
local errors = require("azcmk.errors")
local reconcile = require("azcmk.client.reconcile")
local V = require("azcmk.client.api_versions")

local C = base.class("role_assignments")

C.ROLES = {
  crypto_service_encryption_user = "e147488a-f6f5-4113-8e2d-b22465e65bf6",
  crypto_user = "12338af0-0e69-4776-bea7-57ae8d297424",
  crypto_officer = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
  administrator = "00482a5a-887f-4fb3-b363-3b7fe8e74483",
}

-- Built-in roles whose data actions include keys read + wrap + unwrap: the ones that give a
-- registry identity the use of its key (revoke removes exactly these).
C.KEY_USE_ROLES = {
  ["e147488a-f6f5-4113-8e2d-b22465e65bf6"] = "Key Vault Crypto Service Encryption User",
  ["12338af0-0e69-4776-bea7-57ae8d297424"] = "Key Vault Crypto User",
  ["14b46e9e-c2b7-41b4-b07b-48a6ebf60603"] = "Key Vault Crypto Officer",
  ["00482a5a-887f-4fb3-b363-3b7fe8e74483"] = "Key Vault Administrator",
}

--- The KEY_USE_ROLES name of a roleDefinitionId, or nil for a role that grants no key use.
function C.key_use_role(role_definition_id)
  local guid = tostring(role_definition_id or ""):lower():match("(%x+%-%x+%-%x+%-%x+%-%x+)/?$")
  return guid and C.KEY_USE_ROLES[guid]
end

local function scope_path(scope)
  scope = base.id_path(scope)
  if scope:sub(1, 1) ~= "/" then scope = "/" .. scope end
  return (scope:gsub("/+$", ""))
end

local function role_guid(role)
  if type(role) ~= "string" then return nil end
  return C.ROLES[role] or role:match("(%x+%-%x+%-%x+%-%x+%-%x+)/?$")
end

--- A deterministic GUID from a string (so re-running a grant never duplicates it).
function C.stable_guid(s)
  local ok, crypto = pcall(require, "azcmk.crypto")
  local hex
  if ok then hex = crypto.hex(crypto.sha256(s)) else
    local h = 0
    for i = 1, #s do h = (h * 31 + s:byte(i)) % 4294967296 end
    hex = string.format("%08x", h):rep(4)
  end
  return string.format("%s-%s-4%s-%s%s-%s", hex:sub(1, 8), hex:sub(9, 12), hex:sub(14, 16),
    ({ "8", "9", "a", "b" })[(tonumber(hex:sub(17, 17), 16) % 4) + 1], hex:sub(18, 20), hex:sub(21, 32))
end

--- list{scope, principal_id? | assigned_to?} -> role assignments at (and above) scope,
-- optionally of a principal (principal_id: assigned to it directly; assigned_to: to it or to a
-- group it belongs to, the $filter=assignedTo('...') of the service).
function C:list(o)
  base.check(o, { scope = "string", principal_id = "string?", assigned_to = "string?" },
    "role_assignments:list")
  local q = {}
  if o.principal_id then q["$filter"] = "principalId eq '" .. o.principal_id .. "'"
  elseif o.assigned_to then q["$filter"] = "assignedTo('" .. o.assigned_to .. "')" end
  local out = {}
  local lp = scope_path(o.scope) .. "/providers/Microsoft.Authorization/roleAssignments"
  for item, err in self.p:arm_pages(lp, { api_version = V.role_assignments, query = q }) do
    if not item then return nil, err end
    local pr = item.properties or {}
    if not o.principal_id or tostring(pr.principalId):lower() == o.principal_id:lower() then
      out[#out + 1] = item
    end
  end
  return out
end

--- find{scope, principal_id, role} -> the assignments of role to principal that apply at
-- scope (assigned at scope or a parent scope), possibly empty.
function C:find(o)
  base.check(o, { scope = "string", principal_id = "string", role = "string" }, "role_assignments:find")
  local list, err = self:list({ scope = o.scope, principal_id = o.principal_id,
    subscription = o.subscription })
  if not list then return nil, err end
  local want = role_guid(o.role)
  local out = {}
  for _, a in ipairs(list) do
    local pr = a.properties or {}
    local sc = scope_path(tostring(pr.scope or "")):lower()
    local target = scope_path(o.scope):lower()
    local applies = sc == target or target:sub(1, #sc + 1) == sc .. "/"
    if applies and role_guid(pr.roleDefinitionId) == want then out[#out + 1] = a end
  end
  return out
end

--- create{scope, principal_id, role ("crypto_service_encryption_user" | a GUID | a role
-- definition id), principal_type = "ServicePrincipal", name?} -> the assignment.
function C:create(o)
  base.check(o, { scope = "string", principal_id = "string", role = "string", principal_type = "string?",
    name = "string?" }, "role_assignments:create")
  local guid = role_guid(o.role)
  if not guid then error("role_assignments:create: unknown role " .. tostring(o.role), 2) end
  local scope = scope_path(o.scope)
  local sub = scope:match("^/subscriptions/([^/]+)") or base.sub(self, o)
  local name = o.name or C.stable_guid(scope:lower() .. "|" .. o.principal_id:lower() .. "|" .. guid)
  local function lookup()
    local found, ferr = self:find({ scope = scope, principal_id = o.principal_id, role = guid })
    if not found then return nil, ferr end
    return found[1]
  end
  -- a PUT that fails ambiguously after its retries is looked up by principal, role and scope
  local res, err = reconcile.write(self.p, {
    what = "role assignment of " .. o.principal_id .. " at " .. scope,
    send = function()
      return self.p:arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. name,
        { api_version = V.role_assignments, body = { properties = {
          roleDefinitionId = "/subscriptions/" .. sub .. "/providers/Microsoft.Authorization/roleDefinitions/"
            .. guid,
          principalId = o.principal_id, principalType = o.principal_type or "ServicePrincipal" } } })
    end,
    read = lookup,
    check = "list the role assignments of principal " .. o.principal_id .. " at " .. scope
      .. " (az role assignment list --assignee ... --scope ...)",
  })
  if res then return res.json or res end
  if errors.is(err, "RoleAssignmentExists") then
    local found = lookup()
    if found then return found end
  end
  return nil, err
end

--- delete{id} -> true (404 counts as done).
function C:delete(o)
  base.check(o, { id = "string" }, "role_assignments:delete")
  local res, err = self.p:arm("DELETE", base.id_path(o.id), { api_version = V.role_assignments })
  if res or errors.is(err, 404) then return true end
  return nil, err
end

C.role_guid = role_guid
return C
