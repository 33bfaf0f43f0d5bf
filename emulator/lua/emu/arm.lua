--- emu.arm: Azure Resource Manager plumbing shared by every ARM resource type.
--   arm.register_type{type=, api_versions=, tracked=, core=}   api-versions per resource type
--   arm.route{method=, path=, type=, action=, scope=, handler=}  an authenticated, authorized route
--   arm.get / put / delete / list / render                      the resource store ("arm:<lower id>")
--   arm.require_rg, arm.not_found, arm.check_name, arm.body     common checks and errors
-- See docs/emulator.md for how a resource type module uses them.
local router = require("emu.router")
local state = require("emu.state")
local errors = require("emu.errors")
local auth = require("emu.auth")
local rbac = require("emu.rbac")
local json = require("emu.json")
local util = require("emu.util")
local throttle = require("emu.throttle")

local M = {}

M.types = {}          -- lower(type) -> {type, api_versions = {...}, set = {...}, tracked, core}
local delete_hooks = {} -- lower(type) -> fn(resource)

M.LOCATIONS = { "westus", "westus2", "westus3", "eastus", "eastus2", "centralus", "northeurope",
  "westeurope", "uksouth", "swedencentral", "japaneast", "australiaeast", "chinanorth3", "usgovvirginia" }
local LOCSET = {}
for _, l in ipairs(M.LOCATIONS) do LOCSET[l] = true end

--- Normalises a location ("West US" -> "westus"); returns nil if unknown.
function M.location(loc)
  if type(loc) ~= "string" then return nil end
  local l = loc:lower():gsub("%s+", "")
  return LOCSET[l] and l or nil
end

--- Declares a resource type. t.type = "Microsoft.X/things" (or "Microsoft.Resources/resourceGroups"),
-- t.api_versions = {...}, t.tracked = true when it has a location and shows in
-- /subscriptions/{sub}/resources, t.core = true for ARM's own types (InvalidApiVersionParameter).
function M.register_type(t)
  local set = {}
  for _, v in ipairs(t.api_versions) do set[v:lower()] = true end
  t.set = set
  M.types[t.type:lower()] = t
  return t
end

--- Runs fn(resource) before a resource of `type` is deleted (also in cascades).
function M.on_delete(typ, fn)
  delete_hooks[typ:lower()] = fn
end

local function qparam(req, name)
  local v = req.query[name]
  if type(v) == "table" then v = v[1] end
  if v == true then v = "" end
  return v
end
M.qparam = qparam

--- Checks ?api-version for resource type `typ`; raises Azure's 400 when missing or unknown.
-- loc: the location to name in NoRegisteredProviderFound.
function M.check_api_version(req, typ, loc)
  local v = qparam(req, "api-version")
  if not v or v == "" then
    errors.throw(errors.arm(400, "MissingApiVersionParameter", -- synthetic
      "The api-version query parameter (?api-version=) is required for all requests."))
  end
  local t = M.types[typ:lower()]
  if not t or t.set[v:lower()] then return v end
  if t.core then
    errors.throw(errors.arm(400, "InvalidApiVersionParameter", string.format( -- synthetic
      "The api-version '%s' is invalid. The supported versions are '%s'.", v, table.concat(t.api_versions, ","))))
  end
  local short = t.type:match("^[^/]+/(.*)$") or t.type
  errors.throw(errors.arm(400, "NoRegisteredProviderFound", string.format( -- synthetic
    "No registered resource provider found for location '%s' and API version '%s' for type '%s'. The supported " ..
    "api-versions are '%s'. The supported locations are '%s'.", loc or (t.tracked and "westus" or "global"), v,
    short, table.concat(t.api_versions, ", "), table.concat(M.LOCATIONS, ", "))))
end

--- The seeded subscription (read-only table), or raises 404 SubscriptionNotFound.
function M.require_subscription(sub)
  local s = state.get_ro("sub:" .. tostring(sub):lower())
  if not s then
    errors.throw(errors.arm(404, "SubscriptionNotFound", "The subscription '" .. tostring(sub) .. -- synthetic
      "' could not be found."))
  end
  return s
end

--- Raises 403 AuthorizationFailed unless req.principal holds action at scope.
function M.authorize(req, action, scope)
  local ok = rbac.allowed(req.principal.oid, action, scope)
  if not ok then
    errors.throw(errors.arm(403, "AuthorizationFailed", rbac.denied_message(req.principal, action, scope), -- synthetic
      { ["x-ms-failure-cause"] = "gateway" }))
  end
end

--- An ARM route: authenticates (401), checks api-version for `type` (400), the subscription
-- (404) and RBAC (`action` at `scope`, 403), then calls handler(req).
-- spec.action: string or function(req) -> action; spec.scope: function(req) -> scope
-- (default: the request path without a trailing slash). spec.authorize = false skips RBAC.
function M.route(spec)
  local handler = spec.handler
  local r = {}
  for k, v in pairs(spec) do r[k] = v end
  r.kind = spec.kind or "arm"
  r.handler = function(req)
    auth.arm(req)
    throttle.arm(req) -- Azure counts a request after authentication, before anything else
    if spec.type then M.check_api_version(req, spec.type, spec.api_location and spec.api_location(req)) end
    if req.params.sub then M.require_subscription(req.params.sub) end
    if spec.action and spec.authorize ~= false then
      local action = type(spec.action) == "function" and spec.action(req) or spec.action
      local scope = spec.scope and spec.scope(req) or req.path:gsub("/+$", "")
      M.authorize(req, action, scope)
    end
    return handler(req)
  end
  return router.add(r)
end

--- The two list routes of a provider type: GET /subscriptions/{sub}/resourceGroups/{rg}/providers/<type>
-- (404 ResourceGroupNotFound first) and GET /subscriptions/{sub}/providers/<type>; each calls
-- spec.handler(req, resources of the type under the group / subscription). spec.type, spec.action;
-- spec.container_scope = true authorizes at the group / subscription id (default: the path).
function M.list_routes(spec)
  local rg_scope = spec.container_scope and function(req) return M.rg_id(req.params.sub, req.params.rg) end
  local sub_scope = spec.container_scope and function(req) return "/subscriptions/" .. req.params.sub end
  M.route({ method = "GET", path = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" .. spec.type,
    type = spec.type, action = spec.action, scope = rg_scope,
    handler = function(req)
      M.require_rg(req.params.sub, req.params.rg)
      return spec.handler(req, M.list({ type = spec.type, under = M.rg_id(req.params.sub, req.params.rg) }))
    end })
  M.route({ method = "GET", path = "/subscriptions/{sub}/providers/" .. spec.type,
    type = spec.type, action = spec.action, scope = sub_scope,
    handler = function(req)
      return spec.handler(req, M.list({ type = spec.type, under = "/subscriptions/" .. req.params.sub }))
    end })
end

-- ---------------------------------------------------------------- store

function M.get(id)
  return state.get("arm:" .. id:lower():gsub("/+$", ""))
end

--- Stores a resource (its `id` is the key, case-insensitively). Fields whose names start
-- with "_" are private: kept in state, never rendered.
function M.put(res)
  assert(res.id and res.type, "ARM resource needs id and type")
  state.put("arm:" .. res.id:lower(), res)
  return res
end

--- Creates the resource only if absent: true, or false if it exists.
function M.add(res)
  return state.add("arm:" .. res.id:lower(), res)
end

--- Atomic read-modify-write of the resource at id (fn(old) -> new | nil to delete).
function M.update(id, fn)
  return state.update("arm:" .. id:lower(), fn)
end

--- Deletes one resource (runs its type's delete hook).
function M.delete(id)
  local res = M.get(id)
  if not res then return nil end
  local hook = delete_hooks[res.type:lower()]
  if hook then hook(res) end
  state.delete("arm:" .. id:lower())
  return res
end

--- Deletes every resource at or under scope (resource group delete).
function M.delete_tree(scope)
  local prefix = "arm:" .. scope:lower()
  for _, k in ipairs(state.keys(prefix)) do
    if k == prefix or k:sub(#prefix + 1, #prefix + 1) == "/" then M.delete(k:sub(5)) end
  end
end

--- The public representation: a deep copy without "_" fields.
function M.render(res)
  if type(res) ~= "table" then return res end
  local out = {}
  for k, v in pairs(res) do
    if type(k) ~= "string" or k:sub(1, 1) ~= "_" then out[k] = json.copy(v) end
  end
  return setmetatable(out, getmetatable(res))
end

--- Resources matching filter: {type=, under=scope, tracked=true}.
function M.list(f)
  f = f or {}
  local ltype = f.type and f.type:lower()
  -- keys are "arm:" .. the lower-case id: a scope narrows the keys before any value is decoded
  -- (a fleet's list reads its subscription's records, not every record)
  local prefix = "arm:" .. (f.under and f.under:lower():gsub("/+$", "") or "")
  return state.list(prefix, function(r)
    if ltype and r.type:lower() ~= ltype then return false end
    if f.under and not util.under(r.id, f.under) then return false end
    if f.tracked then
      local t = M.types[r.type:lower()]
      if not t or not t.tracked then return false end
    end
    return true
  end)
end

-- ---------------------------------------------------------------- common checks

function M.rg_id(sub, rg)
  return "/subscriptions/" .. sub .. "/resourceGroups/" .. rg
end

--- The resource group, or raises 404 ResourceGroupNotFound.
function M.require_rg(sub, rg)
  local r = M.get(M.rg_id(sub, rg))
  if not r then
    -- synthetic (the text below)
    errors.throw(errors.arm(404, "ResourceGroupNotFound", "Resource group '" .. rg .. "' could not be found."))
  end
  return r
end

--- 404 ResourceNotFound for a resource of `typ` named `name` in resource group `rg`.
function M.not_found(typ, name, rg)
  return errors.arm(404, "ResourceNotFound", string.format( -- synthetic
    "The Resource '%s/%s' under resource group '%s' was not found. For more details please go to " ..
    "https://aka.ms/ARMResourceNotFoundFix", typ, name, rg))
end

--- The request's JSON body (object), raising ARM's 400 InvalidRequestContent when it is
-- missing (unless opts.optional) or not a JSON object.
function M.body(req, opts)
  local raw = req:body()
  if raw == nil or raw:match("^%s*$") then
    if opts and opts.optional then return {} end
    errors.throw(errors.arm(400, "InvalidRequestContent", -- synthetic
      "The request content was invalid and could not be deserialized: 'Request body is missing.'."))
  end
  -- Resource Manager reads JSONC (comments, unquoted names, trailing commas): az relies on it
  return M.require_object(require("emu.jsonc").decode(raw))
end

--- v when it is a JSON object (a body decoded here or handed over by the deployment engine),
-- else raises ARM's 400 InvalidRequestContent.
function M.require_object(v)
  if type(v) ~= "table" or json.is_array(v) then
    -- synthetic (the text below)
    errors.throw(errors.arm(400, "InvalidRequestContent", "The request content was invalid and could not be " ..
      "deserialized: 'Unexpected character encountered while parsing value. Path '', line 1, position 1.'."))
  end
  return v
end

--- The body's location, normalised; raises 400 LocationRequired / LocationNotAvailableForResourceType.
function M.require_location(body, typ)
  if body.location == nil or body.location == json.null or body.location == "" then
    -- synthetic (the text below)
    errors.throw(errors.arm(400, "LocationRequired", "The location property is required for this definition."))
  end
  local loc = M.location(body.location)
  if not loc then
    errors.throw(errors.arm(400, "LocationNotAvailableForResourceType", string.format( -- synthetic
      "The provided location '%s' is not available for resource type '%s'. List of available regions for the " ..
      "resource type is '%s'.", tostring(body.location), typ, table.concat(M.LOCATIONS, ","))))
  end
  return loc
end

--- PATCH of a resource's tags (ARM's PATCH of a resource group / identity): checks body.tags,
-- then runs check() if given, then updates atomically. Returns the resource, or nil if absent.
function M.patch_tags(id, body, check)
  local tags = body.tags ~= nil and M.check_tags(body.tags) or nil
  if check then check() end
  return M.update(id, function(old)
    if not old then return nil end
    if tags then old.tags = tags end
    return old
  end)
end

--- tags must be an object of strings (at most 50).
function M.check_tags(tags)
  if tags == nil or tags == json.null then return {} end
  if type(tags) ~= "table" or json.is_array(tags) then
    errors.throw(errors.arm(400, "InvalidRequestContent", -- synthetic
      "The request content was invalid and could not be deserialized: 'Error converting value to type " ..
      "'System.Collections.Generic.Dictionary`2[System.String,System.String]'. Path 'tags'.'."))
  end
  local n = 0
  for k, v in pairs(tags) do
    n = n + 1
    if type(v) ~= "string" then
      errors.throw(errors.arm(400, "InvalidTagNameCharacters", "The tag '" .. tostring(k) .. -- synthetic
        "' has an invalid value; tag values must be strings."))
    end
  end
  if n > 50 then
    errors.throw(errors.arm(400, "InvalidTagCount", "The number of tags exceeds the limit of 50.")) -- synthetic
  end
  return tags
end

return M
