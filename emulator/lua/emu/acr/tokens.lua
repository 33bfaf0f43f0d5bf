--- emu.acr.tokens: the registry's token service, as ACR runs it on every login server.
--
--   POST /oauth2/exchange   grant_type=access_token, service, [tenant], access_token=<Entra ID token>
--                           (also access_token_refresh_token / refresh_token with refresh_token=)
--                           -> {"refresh_token": "<JWT>"}                     (3 h)
--   POST /oauth2/token      grant_type=refresh_token, service, scope, refresh_token=<from exchange>
--                           grant_type=password (anonymous when no credentials; JS SDK's anonymous client)
--   GET  /oauth2/token      ?service=&scope= with Basic <admin user | 00000000-...:refresh token> or none
--                           -> {"access_token": "<JWT>"}                      (75 min)
--
-- The Entra ID token must be for Resource Manager (the management scope, any of the cloud's ARM
-- audiences: what az acr login and the SDKs send) or for https://containerregistry.azure.net, issued
-- by the registry's tenant and unexpired. Scopes: "repository:<name>:<actions>" and
-- "registry:catalog:*" (several separated by spaces, or repeated). Granted actions come from ARM
-- RBAC on the registry (emu.rbac): pull = Microsoft.ContainerRegistry/registries/pull/read (Owner,
-- Contributor, Reader, AcrPull, AcrPush), push = .../push/write (Owner, Contributor, AcrPush),
-- delete = .../artifacts/delete (Owner, Contributor); the catalog needs pull. The admin user gets
-- everything; anonymous callers get pull (and the catalog) when anonymousPullEnabled. A token never
-- grants more than was asked; an action the caller may not have is left out (Docker's token rules),
-- and the registry then answers 401 insufficient_scope.
--
-- Tokens are JWTs signed by the emulator's signing key; claims as ACR's (iss "Azure Container
-- Registry", aud = login server, access [{type, name, actions}], grant_type, tenant, permissions).
local json = require("emu.json")
local clock = require("emu.clock")
local auth = require("emu.auth")
local rbac = require("emu.rbac")

local M = {}

M.REFRESH_LIFETIME = 3 * 3600
M.ACCESS_LIFETIME = 75 * 60
M.TOKEN_USER = "00000000-0000-0000-0000-000000000000"
M.ACR_AUDIENCE = "https://containerregistry.azure.net"

local ACTIONS = {
  pull = "Microsoft.ContainerRegistry/registries/pull/read",
  push = "Microsoft.ContainerRegistry/registries/push/write",
  delete = "Microsoft.ContainerRegistry/registries/artifacts/delete",
}

local function C() return require("azcmk.core") end

local function sign(claims)
  return C().jwt_sign(json.encode({ typ = "JWT", alg = "RS256", kid = auth.signing.kid }), json.encode(claims),
    auth.signing.pkey, "RS256")
end

local function jti() return C().uuid4() end

--- Parses scope strings ("repository:a/b:pull,push registry:catalog:*") into {type, name, actions[]}.
function M.parse_scopes(list)
  local out = {}
  for _, s in ipairs(list) do
    for one in tostring(s):gmatch("%S+") do
      local typ, rest = one:match("^([%w]+):(.+)$")
      local name, acts
      if rest then name, acts = rest:match("^(.*):([^:]*)$") end
      if typ and name and name ~= "" then
        local a = {}
        for x in acts:gmatch("[^,]+") do a[#a + 1] = x end
        out[#out + 1] = { type = typ, name = name, actions = a }
      end
    end
  end
  return out
end

--- Whether a principal may do `what` (pull, push, delete, catalog) on registry record rec.
-- who: {kind = "aad", oid} | {kind = "admin"} | {kind = "anonymous"}.
function M.may(who, rec, what)
  if who.kind == "admin" then return true end
  if who.kind == "anonymous" then
    return (what == "pull" or what == "catalog") and rec.properties.anonymousPullEnabled == true
  end
  local action = ACTIONS[what == "catalog" and "pull" or what]
  return action ~= nil and rbac.allowed(who.oid, action, rec.id) == true
end

--- The access list a principal gets for the requested scopes.
function M.grant(who, rec, scopes)
  local out = json.array({})
  for _, s in ipairs(scopes) do
    local granted = json.array({})
    for _, a in ipairs(s.actions) do
      local what
      if s.type == "registry" and s.name == "catalog" and a == "*" then what = "catalog"
      elseif s.type == "repository" and (a == "pull" or a == "push" or a == "delete") then what = a
      elseif s.type == "repository" and a == "*" then what = "*" end
      if what == "*" then
        for _, x in ipairs({ "pull", "push", "delete" }) do
          if M.may(who, rec, x) then granted[#granted + 1] = x end
        end
      elseif what and M.may(who, rec, what) then
        granted[#granted + 1] = a
      end
    end
    out[#out + 1] = { type = s.type, name = s.name, actions = granted }
  end
  return out
end

--- A refresh token for an Entra ID principal (claims: the token's oid, tid, appid).
function M.refresh_token(host, claims)
  local now = clock.time()
  return sign({ jti = jti(), sub = claims.oid, nbf = now, exp = now + M.REFRESH_LIFETIME, iat = now,
    iss = "Azure Container Registry", aud = host, version = "1.0", rid = C().hex(C().random_bytes(16)),
    grant_type = "refresh_token", appid = claims.appid, tenant = claims.tid,
    permissions = { actions = json.array({ "read", "write", "delete" }), notActions = json.array({}) },
    roles = json.array({}) })
end

--- An access token carrying `access` for `who`.
function M.access_token(host, who, access, grant_type)
  local now = clock.time()
  return sign({ jti = jti(), sub = who.oid or who.user or "anonymous", nbf = now, exp = now + M.ACCESS_LIFETIME,
    iat = now, iss = "Azure Container Registry", aud = host, version = "1.0", grant_type = grant_type,
    tenant = who.tid, access = access, roles = json.array({}), kind = who.kind })
end

--- Verifies a token this registry issued: claims | nil, "invalid" | "expired".
-- typ: "refresh_token" (refresh tokens) or "access" (access tokens).
function M.verify(token, host, typ)
  if type(token) ~= "string" or token == "" then return nil, "invalid" end
  local claims = auth.verify(token)
  if not claims or claims.iss ~= "Azure Container Registry" or claims.aud ~= host then return nil, "invalid" end
  if typ == "refresh_token" and claims.grant_type ~= "refresh_token" then return nil, "invalid" end
  if typ == "access" and claims.access == nil then return nil, "invalid" end
  if type(claims.exp) ~= "number" or claims.exp < clock.now() then return nil, "expired" end
  return claims
end

--- Checks an Entra ID access token for the exchange: claims | nil, reason.
function M.check_entra(token, cloud)
  local claims, why = auth.verify(token)
  if not claims then return nil, why end
  local ok_aud = claims.aud == M.ACR_AUDIENCE or claims.aud == M.ACR_AUDIENCE .. "/"
  for _, a in ipairs(cloud.arm_audiences) do if claims.aud == a then ok_aud = true end end
  if not ok_aud then return nil, "audience" end
  if type(claims.exp) ~= "number" or claims.exp + auth.SKEW < clock.now() then return nil, "expired" end
  if claims.tid ~= require("emu.seed").data.tenant_id then return nil, "tenant" end
  return claims
end

--- Decodes "Basic base64(user:password)": user, password | nil.
function M.basic(header)
  local b = type(header) == "string" and header:match("^[Bb][Aa][Ss][Ii][Cc]%s+(%S+)%s*$")
  if not b then return nil end
  local raw = C().b64_decode(b)
  local user, pw = (raw or ""):match("^([^:]*):(.*)$")
  return user, pw
end

return M
