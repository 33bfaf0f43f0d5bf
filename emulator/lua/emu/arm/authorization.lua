--- emu.arm.authorization: Microsoft.Authorization role definitions and role assignments, at
-- any scope (subscription, resource group, resource, or below, e.g. a Key Vault key).
--   GET    {scope}/providers/Microsoft.Authorization/roleDefinitions[/{guid}]  ($filter=roleName eq '...')
--   PUT    {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}   201; 409 RoleAssignmentExists
--   GET    {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}
--   DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}   200 / 204
--   GET    {scope}/providers/Microsoft.Authorization/roleAssignments
--          ($filter=atScope() | assignedTo('{pid}') | principalId eq '{pid}', combinable with "and")
local arm = require("emu.arm")
local errors = require("emu.errors")
local json = require("emu.json")
local util = require("emu.util")
local rbac = require("emu.rbac")
local state = require("emu.state")
local directory = require("emu.directory")
local clock = require("emu.clock")

local M = {}

M.RA_TYPE = "Microsoft.Authorization/roleAssignments"
M.RD_TYPE = "Microsoft.Authorization/roleDefinitions"
arm.register_type({ type = M.RA_TYPE, api_versions = { "2022-04-01", "2022-01-01-preview", "2020-10-01-preview",
  "2020-08-01-preview", "2020-04-01-preview", "2020-03-01-preview", "2018-09-01-preview", "2018-01-01-preview",
  "2017-10-01-preview", "2015-07-01" } })
arm.register_type({ type = M.RD_TYPE, api_versions = { "2022-05-01-preview", "2022-04-01", "2018-01-01-preview",
  "2015-07-01" } })

local PROVIDER = "/providers/Microsoft.Authorization"

local function norm_scope(s)
  s = "/" .. (s or ""):gsub("^/+", ""):gsub("/+$", "")
  return s
end

-- The scope must exist: the subscription, and the resource group when it names one.
local function check_scope(scope)
  local sub, rest = scope:match("^/subscriptions/([^/]+)(.*)$")
  if not sub then
    if scope == "/" then return end
    errors.throw(errors.arm(400, "InvalidScope", "The scope '" .. scope .. "' is not valid.")) -- synthetic
  end
  arm.require_subscription(sub)
  local rg = rest:match("^/[rR][eE][sS][oO][uU][rR][cC][eE][gG][rR][oO][uU][pP][sS]/([^/]+)")
  if rg then arm.require_rg(sub, rg) end
end

-- ---------------------------------------------------------------- role definitions

arm.route({ method = "GET", path = "/{*scope}" .. PROVIDER .. "/roleDefinitions/{guid}", type = M.RD_TYPE,
  action = "Microsoft.Authorization/roleDefinitions/read",
  scope = function(req) return norm_scope(req.params.scope) end,
  handler = function(req)
    local scope = norm_scope(req.params.scope)
    local body = rbac.definition_body(req.params.guid, scope ~= "/" and scope or "")
    if not body then
      return errors.arm(404, "RoleDefinitionDoesNotExist", "The specified role definition with ID '" .. -- synthetic
        req.params.guid .. "' does not exist.")
    end
    return 200, body
  end })

arm.route({ method = "GET", path = "/{*scope}" .. PROVIDER .. "/roleDefinitions", type = M.RD_TYPE,
  action = "Microsoft.Authorization/roleDefinitions/read",
  scope = function(req) return norm_scope(req.params.scope) end,
  handler = function(req)
    local scope = norm_scope(req.params.scope)
    local filter = arm.qparam(req, "$filter")
    local want
    if filter and filter ~= "" then
      local c = util.odata(filter)
      want = c and #c == 1 and c[1].field == "rolename" and c[1].value or nil
      if not want then
        -- synthetic (the text below)
        return errors.arm(400, "UnsupportedQuery", "The filter '" .. filter .. "' is not supported. Supported: " ..
          "roleName eq '{value}'.")
      end
    end
    local out = json.array({})
    local guids = {}
    for g in pairs(rbac.BUILTIN) do guids[#guids + 1] = g end
    table.sort(guids)
    for _, g in ipairs(guids) do
      if not want or rbac.BUILTIN[g].name:lower() == want:lower() then
        out[#out + 1] = rbac.definition_body(g, scope ~= "/" and scope or "")
      end
    end
    return 200, { value = out }
  end })

-- ---------------------------------------------------------------- role assignments

local PTYPES = { User = true, Group = true, ServicePrincipal = true, ForeignGroup = true, Device = true }

local function ra_id(scope, name)
  return (scope == "/" and "" or scope) .. PROVIDER .. "/roleAssignments/" .. name
end

arm.on_delete(M.RA_TYPE, function(res)
  rbac.index_remove(res.properties.principalId, res.id)
end)

arm.route({ method = "PUT", path = "/{*scope}" .. PROVIDER .. "/roleAssignments/{name}", type = M.RA_TYPE,
  action = "Microsoft.Authorization/roleAssignments/write",
  scope = function(req) return norm_scope(req.params.scope) end,
  handler = function(req)
    local scope = norm_scope(req.params.scope)
    local name = req.params.name
    if not util.is_guid(name) then
      -- synthetic (the text below)
      return errors.arm(400, "InvalidRoleAssignmentId", "The role assignment ID '" .. name .. "' is not valid. " ..
        "The role assignment ID must be a GUID.")
    end
    check_scope(scope)
    local body = arm.body(req)
    local p = body.properties
    if type(p) ~= "table" then
      -- synthetic (the text below)
      return errors.arm(400, "InvalidRequestContent", "The request content was invalid and could not be " ..
        "deserialized: 'Required property 'properties' not found in JSON.'.")
    end
    local rd = p.roleDefinitionId
    local guid = type(rd) == "string" and rd:match("/[Rr]ole[Dd]efinitions/([%x%-]+)$")
    if not guid or not util.is_guid(guid) then
      return errors.arm(400, "InvalidRoleDefinitionId", "The role definition ID '" .. tostring(rd) .. -- synthetic
        "' is not valid.")
    end
    guid = guid:lower()
    if not rbac.BUILTIN[guid] and not state.get("roledef:" .. guid) then
      -- synthetic (the text below)
      return errors.arm(400, "RoleDefinitionDoesNotExist", "The specified role definition with ID '" .. guid ..
        "' does not exist.")
    end
    local pid = p.principalId
    if type(pid) ~= "string" or not util.is_guid(pid) then
      -- synthetic (the text below)
      return errors.arm(400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
    end
    pid = pid:lower()
    local ptype = p.principalType
    if ptype ~= nil and not PTYPES[ptype] then
      -- synthetic (the text below)
      return errors.arm(400, "InvalidPrincipalType", "The principal type '" .. tostring(ptype) .. "' is not " ..
        "valid. Valid principal types are 'User', 'Group', 'ServicePrincipal', 'ForeignGroup' and 'Device'.")
    end
    local principal = directory.get(pid)
    local tid = require("emu.seed").data.tenant_id
    if not principal and ptype == nil then
      return errors.arm(400, "PrincipalNotFound", string.format("Principal %s does not exist in the directory %s. " ..
        "Check that you have the correct principal ID. If you are creating this principal and then immediately " ..
        "assigning a role, this error might be related to a replication delay. In this case, set the role " ..
        "assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See " ..
        "https://aka.ms/docs-principaltype", pid:gsub("%-", ""), tid))
    end
    if principal and ptype and ptype ~= principal.type then
      -- synthetic (the text below)
      return errors.arm(400, "UnmatchedPrincipalType", string.format("The PrincipalId '%s' has type '%s' , which is " ..
        "different from specified PrincipalType '%s'.", pid:gsub("%-", ""), principal.type, ptype))
    end
    local id = ra_id(scope, name:lower())
    -- Same principal + role + scope under another name: 409.
    local conflict
    state.with_lock("ra:" .. pid, function()
      for _, ra in ipairs(rbac.assignments_of(pid)) do
        local q = ra.properties
        if ra.id:lower() ~= id:lower() and q.scope:lower() == scope:lower() and rbac.guid_of(q.roleDefinitionId) == guid
        then
          conflict = ra
          return
        end
      end
      local old = arm.get(id)
      if old then
        local q = old.properties
        if q.principalId ~= pid or rbac.guid_of(q.roleDefinitionId) ~= guid then
          conflict = "update"
        else
          conflict = "same"
        end
        return
      end
      local now = clock.iso()
      arm.put({ id = id, type = M.RA_TYPE, name = name:lower(), properties = {
        roleDefinitionId = "/providers/Microsoft.Authorization/roleDefinitions/" .. guid,
        principalId = pid, principalType = ptype or (principal and principal.type) or "ServicePrincipal",
        scope = scope, condition = json.null, conditionVersion = json.null,
        createdOn = now, updatedOn = now, createdBy = req.principal.oid, updatedBy = req.principal.oid,
        delegatedManagedIdentityResourceId = json.null,
        description = type(p.description) == "string" and p.description or json.null,
      } })
      rbac.index_add(pid, id)
    end)
    if conflict == "update" then
      -- synthetic (the text below)
      return errors.arm(400, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and " ..
        "scope are not allowed to be updated.")
    elseif conflict == "same" then
      return 200, arm.render(arm.get(id))
    elseif conflict then
      return errors.arm(409, "RoleAssignmentExists", "The role assignment already exists.", nil,
        { details = json.array({ { code = "RoleAssignmentExists", message = "The existing role assignment is '" ..
          conflict.id .. "'." } }) })
    end
    return 201, arm.render(arm.get(id))
  end })

arm.route({ method = "GET", path = "/{*scope}" .. PROVIDER .. "/roleAssignments/{name}", type = M.RA_TYPE,
  action = "Microsoft.Authorization/roleAssignments/read",
  scope = function(req) return norm_scope(req.params.scope) end,
  handler = function(req)
    local res = arm.get(ra_id(norm_scope(req.params.scope), req.params.name))
    if not res then
      return errors.arm(404, "RoleAssignmentNotFound", "The role assignment '" .. req.params.name .. -- synthetic
        "' is not found.")
    end
    return 200, arm.render(res)
  end })

arm.route({ method = "DELETE", path = "/{*scope}" .. PROVIDER .. "/roleAssignments/{name}", type = M.RA_TYPE,
  action = "Microsoft.Authorization/roleAssignments/delete",
  scope = function(req) return norm_scope(req.params.scope) end,
  handler = function(req)
    local res = arm.delete(ra_id(norm_scope(req.params.scope), req.params.name))
    if not res then return 204, nil end
    return 200, arm.render(res)
  end })

--- Parses a roleAssignments $filter: {at_scope=bool, principal=oid|nil} or nil, err.
local function parse_filter(f)
  local clauses = util.odata(f)
  if not clauses then return nil end
  local out = {}
  for _, c in ipairs(clauses) do
    if c.call == "atscope" and not c.arg then out.at_scope = true
    else
      local pid = (c.call == "assignedto" and c.arg) or (c.field == "principalid" and c.value)
      if not pid or not pid:match("^[%x%-]+$") then return nil end
      out.principal = pid:lower()
    end
  end
  return out
end

arm.route({ method = "GET", path = "/{*scope}" .. PROVIDER .. "/roleAssignments", type = M.RA_TYPE,
  action = "Microsoft.Authorization/roleAssignments/read",
  scope = function(req) return norm_scope(req.params.scope) end,
  handler = function(req)
    local scope = norm_scope(req.params.scope)
    local raw = arm.qparam(req, "$filter")
    local f = parse_filter(raw)
    if not f then
      -- synthetic (the text below)
      return errors.arm(400, "UnsupportedQuery", "The filter '" .. tostring(raw) .. "' is not supported. " ..
        "Supported filters are: atScope(), assignedTo('{principalId}'), principalId eq '{principalId}'.")
    end
    check_scope(scope)
    local out = json.array({})
    local list = f.principal and rbac.assignments_of(f.principal) or arm.list({ type = M.RA_TYPE })
    for _, ra in ipairs(list) do
      local s = ra.properties.scope
      local above = util.under(scope, s)          -- assignment at or above the scope
      local below = util.under(s, scope)
      if above or (not f.at_scope and below) then out[#out + 1] = arm.render(ra) end
    end
    return 200, { value = out }
  end })

return M
