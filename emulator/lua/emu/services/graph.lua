--- emu.services.graph: the few Microsoft Graph reads the Azure CLI makes for the CMK job, over
-- the principals of emu.directory (service principals of apps and managed identities; the
-- emulated tenant has no users or groups):
--   GET  /v1.0/me                          app-only tokens: 400, as Graph answers them
--   GET  /v1.0/servicePrincipals[?$filter=]  servicePrincipalNames/any(c:c eq '…'), appId eq,
--                                         id eq, displayName eq, startswith(displayName,'…')
--   GET  /v1.0/servicePrincipals/{id}
--   GET  /v1.0/users[?$filter=]            always empty
--   POST /v1.0/directoryObjects/getByIds   {"ids": [...], "types": [...]}
-- `az keyvault create` asks /me and falls back to the servicePrincipals filter on the login's
-- app id; `az role assignment create --assignee <object id>` tries the filter, then getByIds.
-- Errors use Graph's envelope {"error":{"code","message","innerError":{date, request-id,
-- client-request-id}}}.
local router = require("emu.router")
local auth = require("emu.auth")
local errors = require("emu.errors")
local directory = require("emu.directory")
local state = require("emu.state")
local json = require("emu.json")

local M = {}

-- The tenant that owns Microsoft's first-party apps, which managed identities report as owner.
local MANAGED_IDENTITY_OWNER = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"

local function seed() return require("emu.seed").data end

local function throw(_, status, code, message)
  errors.throw(errors.graph(status, code, message))
end

local function authenticate(req)
  local res = "https://" .. req.cloud.graph
  local claims, reason = auth.check(req, { res, res .. "/", "00000003-0000-0000-c000-000000000000" },
    seed().tenant_id)
  if claims then return auth.set_principal(req, claims) end
  local msg = ({
    missing = "Access token is empty.",
    expired = "Lifetime validation failed, the token is expired.",
    audience = "Access token validation failure. Invalid audience.",
  })[reason] or "Access token validation failure." -- synthetic (all but the first two)
  throw(req, 401, "InvalidAuthenticationToken", msg)
end

-- Directory reads need Graph permissions; the seeded no-access principal has none.
local function authorize(req)
  if req.principal.oid == seed().noaccess.object_id then
    throw(req, 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
  end
end

local function context(req, what)
  return "https://" .. req.cloud.graph .. "/v1.0/$metadata#" .. what
end

local function sp_json(p, typed)
  local mi = p.kind == "managedIdentity"
  local out = {
    id = p.objectId, appId = p.appId, displayName = p.displayName or p.appId,
    appDisplayName = not mi and (p.displayName or p.appId) or json.null,
    accountEnabled = true,
    servicePrincipalType = mi and "ManagedIdentity" or "Application",
    servicePrincipalNames = json.array(mi and { p.appId, "https://identity.azure.net/" .. p.objectId } or
      { p.appId }),
    alternativeNames = json.array(mi and p.resourceId and { "isExplicit=" .. (p.resourceId:lower():find(
      "/microsoft.managedidentity/userassignedidentities/", 1, true) and "True" or "False"), p.resourceId } or {}),
    appOwnerOrganizationId = mi and MANAGED_IDENTITY_OWNER or seed().tenant_id,
    signInAudience = mi and json.null or "AzureADMyOrg",
    tags = json.array({}),
  }
  if typed then out["@odata.type"] = "#microsoft.graph.servicePrincipal" end
  return out
end

local function principals()
  return state.list("dir:")
end

-- One $filter clause over service principals: a predicate, or nil when Graph would refuse it.
local function sp_filter(f)
  local function unq(s) return (s:gsub("''", "'")) end
  local _, v = f:match("^%s*servicePrincipalNames/any%(%s*(%a+)%s*:%s*%1%s+eq%s+'(.*)'%s*%)%s*$")
  if v then
    v = unq(v):lower()
    return function(p)
      for _, n in ipairs(sp_json(p).servicePrincipalNames) do if n:lower() == v then return true end end
      return false
    end
  end
  local field, val = f:match("^%s*(%a+)%s+eq%s+'(.*)'%s*$")
  local fields = { appid = "appId", id = "objectId", displayname = "displayName" }
  if field and fields[field:lower()] then
    val = unq(val):lower()
    local k = fields[field:lower()]
    return function(p) return (p[k] or ""):lower() == val end
  end
  local prefix = f:match("^%s*startswith%(%s*displayName%s*,%s*'(.*)'%s*%)%s*$")
  if prefix then
    prefix = unq(prefix):lower()
    return function(p) return (p.displayName or ""):lower():sub(1, #prefix) == prefix end
  end
  return nil
end

local function list_sps(req)
  authenticate(req)
  authorize(req)
  local filter = req:arg("$filter")
  local pred = function() return true end
  if filter and filter ~= "" then
    pred = sp_filter(filter)
    if not pred then
      throw(req, 400, "BadRequest", "Invalid filter clause: the emulator understands servicePrincipalNames/any(c:c " ..
        "eq '…'), appId eq, id eq, displayName eq and startswith(displayName,'…').") -- synthetic
    end
  end
  local value = {}
  for _, p in ipairs(principals()) do
    if pred(p) then value[#value + 1] = sp_json(p) end
  end
  return 200, { ["@odata.context"] = context(req, "servicePrincipals"), value = json.array(value) }
end

local function not_found(req, id)
  throw(req, 404, "Request_ResourceNotFound", "Resource '" .. id ..
    "' does not exist or one of its queried reference-property objects are not present.")
end

local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

local function get_sp(req)
  authenticate(req)
  authorize(req)
  local key = req.params.key
  if not key:match(GUID) then throw(req, 400, "Request_BadRequest", "Invalid object identifier '" .. key .. "'.") end
  local p = directory.get(key)
  if not p then not_found(req, key) end
  local body = sp_json(p)
  body["@odata.context"] = context(req, "servicePrincipals/$entity")
  return 200, body
end

local TYPES = { user = true, group = true, serviceprincipal = true, device = true, application = true,
  orgcontact = true, directoryobjectpartnerreference = true, directoryobject = true }

local function get_by_ids(req)
  authenticate(req)
  authorize(req)
  local body = req:json()
  if type(body) ~= "table" or type(body.ids) ~= "table" then
    throw(req, 400, "Request_BadRequest", "The request body must contain the 'ids' parameter.") -- synthetic
  end
  local want_sp = true
  if type(body.types) == "table" and #body.types > 0 then
    want_sp = false
    for _, t in ipairs(body.types) do
      local name = type(t) == "string" and t:lower():gsub("^microsoft%.graph%.", "") or ""
      if not TYPES[name] then
        throw(req, 400, "Request_BadRequest", "Invalid type '" .. tostring(t) .. "'.") -- synthetic
      end
      if name == "serviceprincipal" or name == "directoryobject" then want_sp = true end
    end
  end
  local value = {}
  for _, id in ipairs(body.ids) do
    if type(id) ~= "string" or not id:match(GUID) then
      throw(req, 400, "Request_BadRequest", "Invalid object identifier '" .. tostring(id) .. "'.")
    end
    local p = want_sp and directory.get(id)
    if p then value[#value + 1] = sp_json(p, true) end
  end
  return 200, { ["@odata.context"] = context(req, "directoryObjects"), value = json.array(value) }
end

router.add({ kind = "graph", method = { "GET" }, path = "/v1.0/me", handler = function(req)
  authenticate(req)
  -- every emulated principal is an application: Graph refuses /me for app-only tokens
  return errors.graph(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
end })
router.add({ kind = "graph", method = { "GET" }, path = "/v1.0/servicePrincipals", handler = list_sps })
router.add({ kind = "graph", method = { "GET" }, path = "/v1.0/servicePrincipals/{key}", handler = get_sp })
router.add({ kind = "graph", method = { "GET" }, path = "/v1.0/users", handler = function(req)
  authenticate(req)
  authorize(req)
  return 200, { ["@odata.context"] = context(req, "users"), value = json.array({}) }
end })
router.add({ kind = "graph", method = { "POST" }, path = "/v1.0/directoryObjects/getByIds", handler = get_by_ids })

return M
