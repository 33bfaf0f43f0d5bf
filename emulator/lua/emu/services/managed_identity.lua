--- emu.services.managed_identity: the managed identity endpoints on the plain-http port.
--   IMDS (Azure VM):  GET http://169.254.169.254/metadata/identity/oauth2/token
--                       ?api-version=2018-02-01&resource=...[&client_id=|object_id=|msi_res_id=]
--                     header Metadata: true; every response value is a string.
--   App Service / Functions / Container Apps:
--                     GET http://127.0.0.1:N+1/msi/token?api-version=2019-08-01&resource=...
--                       [&client_id=|object_id=|principal_id=|mi_res_id=]
--                     header X-IDENTITY-HEADER: <seed.appservice.identity_header>;
--                     response has expires_on and no expires_in.
-- The hosts ("VM" and "App Service") carry their system identity plus the user-assigned
-- identities attached through /_emulator/vm/identities (or /appservice/identities).
local router = require("emu.router")
local errors = require("emu.errors")
local auth = require("emu.auth")
local directory = require("emu.directory")
local state = require("emu.state")
local hosts = require("emu.hosts")

local M = {}

local function seed() return require("emu.seed").data end

--- The identity of host `name` the selector picks: principal, or nil, why ("not_found").
local function pick(hostname, sel_kind, sel)
  local h = state.get("mihost:" .. hostname)
  local candidates = {}
  if h.system then candidates[#candidates + 1] = directory.get(h.system) end
  for _, rid in ipairs(h.user_assigned) do
    local p = directory.by_resource_id(rid)
    if p then candidates[#candidates + 1] = p end
  end
  if not sel_kind then
    if h.system then return candidates[1] end
    if #candidates == 1 then return candidates[1] end
    return nil
  end
  for _, p in ipairs(candidates) do
    local v = sel:lower()
    if (sel_kind == "client_id" and p.appId:lower() == v) or (sel_kind == "object_id" and p.objectId:lower() == v)
      or (sel_kind == "res_id" and p.resourceId and p.resourceId:lower() == v) then
      return p
    end
  end
  return nil
end

local function selector(req, names)
  local found = {}
  for arg, kind in pairs(names) do
    local v = req:arg(arg)
    if v and v ~= "" then found[#found + 1] = { kind, v, arg } end
  end
  if #found > 1 then return nil, nil, "multiple" end
  if #found == 1 then return found[1][1], found[1][2] end
  return nil
end

local function resource_ok(res)
  local r = res:gsub("/%.default$", "")
  return require("emu.services.entra").known_resource(hosts.clouds.AzureCloud, r), r
end

local function issue(p, resource)
  return auth.issue({ tid = seed().tenant_id, oid = p.objectId, appid = p.appId, aud = resource, appidacr = "2",
    xms_mirid = p.resourceId })
end

-- IMDS ----------------------------------------------------------------------------------

local function imds(req)
  if req:header("metadata") ~= "true" then
    return errors.msi(400, "invalid_request", "Required metadata header not specified") -- synthetic
  end
  if req:header("x-forwarded-for") then
    return errors.msi(400, "invalid_request", "Request contains X-Forwarded-For header") -- synthetic
  end
  local v = req:arg("api-version")
  if not v or v == "" then
    return errors.msi(400, "invalid_request", "Required query variable 'api-version' is missing") -- synthetic
  end
  if v ~= "2018-02-01" and v ~= "2019-08-01" and v ~= "2025-04-07" then
    -- synthetic (the text below)
    return errors.msi(400, "invalid_request", "Invalid api-version '" .. v .. "'. Supported versions: 2018-02-01")
  end
  local resource = req:arg("resource")
  if not resource or resource == "" then
    return errors.msi(400, "invalid_request", "Required audience parameter not specified") -- synthetic
  end
  local ok, aud = resource_ok(resource)
  if not ok then
    return errors.msi(400, "invalid_resource", "AADSTS500011: The resource principal named " .. resource .. -- synthetic
      " was not found in the tenant. This can happen if the application has not been installed by the " ..
      "administrator of the tenant or consented to by any user in the tenant.")
  end
  local kind, sel, bad = selector(req, { client_id = "client_id", object_id = "object_id", msi_res_id = "res_id" })
  if bad then
    -- synthetic (the text below)
    return errors.msi(400, "invalid_request", "Multiple identities specified; give at most one of client_id, " ..
      "object_id or msi_res_id")
  end
  local p = pick("vm", kind, sel)
  if not p then return errors.msi(400, "invalid_request", "Identity not found") end -- synthetic
  local tok, c = issue(p, aud)
  ngx.ctx.principal = p.objectId
  return 200, {
    access_token = tok, refresh_token = "", client_id = p.appId,
    expires_in = tostring(c.exp - c.iat - 1), ext_expires_in = tostring(c.exp - c.iat - 1),
    expires_on = tostring(c.exp), not_before = tostring(c.nbf),
    resource = resource, token_type = "Bearer",
  }
end

router.add({ kind = "msi", method = "GET", path = "/metadata/identity/oauth2/token", handler = imds })
router.add({ kind = "msi", method = "GET", path = "/metadata/instance", handler = function(req)
  if req:header("metadata") ~= "true" then
    return errors.msi(400, "invalid_request", "Required metadata header not specified") -- synthetic
  end
  local s = seed()
  return 200, { compute = { azEnvironment = "AzurePublicCloud", location = "westus", name = "rehearsal-vm",
    resourceGroupName = "azcmk-emulator", resourceId = s.vm.resource_id, subscriptionId = s.subscription_id,
    vmId = "0d8ec8a4-7c2b-4a0e-9f8e-6b3a2c1d0e9f" } }
end })

-- App Service ---------------------------------------------------------------------------

local function appsvc_error(status, message)
  return status, { statusCode = status, message = message, correlationId = ngx.ctx.request_id }
end

local function appservice(req)
  local h = req:header("x-identity-header")
  if not h or h == "" then
    return appsvc_error(400, "Request is missing the X-IDENTITY-HEADER header.") -- synthetic
  end
  if h ~= seed().appservice.identity_header then
    return appsvc_error(401, "The X-IDENTITY-HEADER value is not valid.") -- synthetic
  end
  local v = req:arg("api-version")
  if v ~= "2019-08-01" then
    return appsvc_error(400, "Invalid api-version '" .. tostring(v) .. "'. Supported versions: 2019-08-01") -- synthetic
  end
  local resource = req:arg("resource")
  if not resource or resource == "" then
    return appsvc_error(400, "The 'resource' query parameter is required.") -- synthetic
  end
  local ok, aud = resource_ok(resource)
  if not ok then
    -- synthetic (the text below)
    return appsvc_error(400, "AADSTS500011: The resource principal named " .. resource .. " was not found in " ..
      "the tenant.")
  end
  local kind, sel, bad = selector(req, { client_id = "client_id", object_id = "object_id",
    principal_id = "object_id", mi_res_id = "res_id" })
  -- synthetic (the text below)
  if bad then return appsvc_error(400, "Only one of client_id, object_id, principal_id, mi_res_id may be given.") end
  local p = pick("appservice", kind, sel)
  if not p then return appsvc_error(400, "Unable to load the proper Managed Identity.") end -- synthetic
  local tok, c = issue(p, aud)
  ngx.ctx.principal = p.objectId
  return 200, { access_token = tok, expires_on = tostring(c.exp), resource = resource, token_type = "Bearer",
    client_id = p.appId }
end

router.add({ kind = "msi", method = "GET", path = "/msi/token", handler = appservice })

return M
