--- emu.services.acr: a minimal Container Registry data plane on https://{registry}.azurecr.io
-- (.cn, .us): the Docker Registry v2 API root and anything under /v2/.
--
--   unknown registry                 -> 404 (synthetic: in Azure the name would not resolve in DNS)
--   registry reachable               -> 401 Bearer challenge, ACR's UNAUTHORIZED body (as Azure)
--   CMK registry, key unreachable    -> 403 DENIED (synthetic text): the registry's data is
--                                       encrypted with a key its identity cannot unwrap, so ACR
--                                       cannot serve anything; computed live on every request, so
--                                       it recovers as soon as access returns
--   CMK identity gone (removed by force) -> keeps working until the identity's credential expires
--                                       (registries.IDENTITY_GRACE, ~3 months of simulated time), then
--                                       403 "The identity associated with the registry is inactive..."
--                                       (Azure's text, azure-wire §7.2)
-- An expired or not-yet-valid key still unwraps, so it does not block the data plane.
local router = require("emu.router")
local state = require("emu.state")
local clock = require("emu.clock")
local json = require("emu.json")

local M = {}

local API_HEADER = { ["Docker-Distribution-Api-Version"] = "registry/2.0" }

-- ACR writes its error fields in the order code, message, detail: keep that byte for byte.
local function acr_error(status, code, message, detail, headers)
  local h = { ["Content-Type"] = "application/json; charset=utf-8" }
  for k, v in pairs(headers or {}) do h[k] = v end
  return status, '{"errors":[{"code":' .. json.encode(code) .. ',"message":' .. json.encode(message) ..
    ',"detail":' .. json.encode(detail == nil and json.null or detail) .. '}]}', h
end

local function with(h, extra)
  local out = {}
  for k, v in pairs(h) do out[k] = v end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

--- The registry record a data-plane host name designates, or nil.
local function registry_of(req)
  local name = req.subname
  if type(name) ~= "string" or name == "" then return nil end
  local id = state.get("acr:name:" .. name:lower())
  if not id then return nil end
  local regs = require("emu.arm.registries")
  local rec = regs.current(id)
  if not rec or type(rec.properties) ~= "table" then return nil end
  -- the login server is per cloud: myreg.azurecr.io does not answer as myreg.azurecr.cn
  if type(rec.properties.loginServer) ~= "string" or rec.properties.loginServer:lower() ~= req.host then return nil end
  return rec
end

--- nil when the registry can use its key, else status, body, headers of the refusal.
function M.cmk_block(rec, host)
  local enc = rec.properties.encryption
  if not (enc and enc.status == "enabled" and type(enc.keyVaultProperties) == "table") then return nil end
  local kvp = enc.keyVaultProperties
  local regs = require("emu.arm.registries")
  local p = regs.cmk_principal(rec.identity, kvp.identity, rec)
  local inactive = not p
  local lost = p and regs.identity_lost_since(rec)
  if lost and clock.now() >= lost + regs.IDENTITY_GRACE then inactive = true end
  if inactive then
    return acr_error(403, "DENIED", "The identity associated with the registry is inactive. This could be due to " ..
      "attempted removal of the identity. Reassign the identity manually", nil, API_HEADER)
  end
  local r = require("emu.keyvault.access").check_key(kvp.versionedKeyIdentifier or kvp.keyIdentifier,
    { principal_id = p.principal_id, trusted_service = p.system == true })
  if type(r) == "table" and r.ok then return nil end
  local reason = type(r) == "table" and r.reason or "unknown"
  local why = ({
    vault_not_found = "the key vault was not found", vault_deleted = "the key vault is deleted",
    key_not_found = "the key was not found", key_deleted = "the key is deleted",
    version_not_found = "the key version was not found", key_disabled = "the key is disabled",
    key_not_rsa = "the key is not an RSA key", firewall = "the key vault firewall denies the registry identity",
    no_access = "the registry identity has no 'Get, Wrap Key, Unwrap Key' access to the key",
  })[reason] or reason
  -- synthetic: ACR's exact data-plane text for a revoked key is not documented.
  return acr_error(403, "DENIED", string.format("The registry %s is encrypted with a customer-managed key that " ..
    "the registry identity '%s' cannot access (%s): key '%s'. Registry data is inaccessible until access to the " ..
    "key is restored. For more information on customer-managed keys, please visit 'https://aka.ms/acr/cmk'.",
    host, tostring(p.client_id or kvp.identity), why, tostring(kvp.versionedKeyIdentifier or kvp.keyIdentifier)),
    nil, API_HEADER)
end

local function handle(req)
  local rec = registry_of(req)
  if not rec then
    -- synthetic: real clients get a DNS failure for an unknown registry name.
    return acr_error(404, "NOT_FOUND", "registry '" .. req.host .. "' not found (in Azure the name would not " ..
      "resolve)", nil, API_HEADER)
  end
  local st, body, h = M.cmk_block(rec, req.host)
  if st then
    if req.method == "HEAD" then return st, nil, h end
    return st, body, h
  end
  local host = rec.properties.loginServer
  local hdr = with(API_HEADER, { ["WWW-Authenticate"] = string.format(
    'Bearer realm="https://%s/oauth2/token",service="%s"', host, host) })
  if req.method == "HEAD" then return 401, nil, hdr end
  return acr_error(401, "UNAUTHORIZED", "authentication required", json.null, hdr)
end

router.add({ kind = "acr", method = { "GET", "HEAD" }, path = "/v2", handler = handle })
router.add({ kind = "acr", method = { "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE" }, path = "/v2/{*rest}",
  handler = handle })

return M
