--- emu.auth: the emulator's token service. Issues RS256 access tokens signed by the
-- emulator's key (DIR/signing.key, kid = its x5t) and checks bearer tokens for ARM, Key Vault
-- and the other services. Tokens are checked for signature, issuer tenant, audience and
-- expiry on the simulated clock.
local json = require("emu.json")
local clock = require("emu.clock")
local errors = require("emu.errors")
local util = require("emu.util")

local M = {}

M.LIFETIME = 3600  -- Entra app tokens: 60-90 min; we issue exactly one hour.
M.SKEW = 300       -- ARM and Key Vault accept 5 min of clock skew.

-- Filled by emu.seed at init: { pkey = <azcmk.pkey>, kid = "...", jwk = {...} }.
M.signing = nil
M.oidc = nil

local core
local function C()
  core = core or require("azcmk.core")
  return core
end

local function b64url(s) return C().b64url_encode(s) end

--- Issues an access token. c: tid, oid, appid, aud (the resource, e.g.
-- "https://management.azure.com/"), optional idtyp ("app"), appidacr ("1" secret, "2" cert,
-- "0" managed identity/federated), xms_mirid (managed identity resource id), lifetime.
-- Returns token, claims.
function M.issue(c)
  local now = clock.time()
  local life = c.lifetime or M.LIFETIME
  local claims = {
    aud = c.aud, iss = "https://sts.windows.net/" .. c.tid .. "/",
    iat = now, nbf = now, exp = now + life,
    aio = b64url(C().random_bytes(24)),
    appid = c.appid, appidacr = c.appidacr or "1", idp = "https://sts.windows.net/" .. c.tid .. "/",
    idtyp = "app", oid = c.oid, rh = "0.AAAA" .. b64url(C().random_bytes(12)) .. ".",
    sub = c.oid, tid = c.tid, uti = b64url(C().random_bytes(16)), ver = "1.0",
    xms_mirid = c.xms_mirid, xms_tcdt = 1600000000,
  }
  local header = { typ = "JWT", alg = "RS256", x5t = M.signing.kid, kid = M.signing.kid }
  local tok = C().jwt_sign(json.encode(header), json.encode(claims), M.signing.pkey, "RS256")
  return tok, claims
end

-- Per-worker cache of tokens whose signature checked out: token -> claims.
local cache, cache_n = {}, 0

--- Verifies the signature of an emulator-issued token. Returns claims or nil, reason
-- ("malformed", "signature").
function M.verify(token)
  local hit = cache[token]
  if hit then return hit end
  if type(token) ~= "string" or not token:match("^[%w_%-]+%.[%w_%-]+%.[%w_%-]*$") then
    return nil, "malformed"
  end
  local h = C().jwt_decode(token)
  if not h then return nil, "malformed" end
  local _, payload = C().jwt_verify(token, M.signing.pkey, "RS256")
  if not payload then return nil, "signature" end
  local claims = json.decode(payload)
  if type(claims) ~= "table" then return nil, "malformed" end
  if cache_n > 5000 then cache, cache_n = {}, 0 end
  cache[token] = claims
  cache_n = cache_n + 1
  return claims
end

--- The bearer token of the Authorization header: token, or nil, "missing" | "format".
function M.bearer_token(req)
  local h = req.headers["authorization"]
  if type(h) == "table" then h = h[1] end
  if not h or h == "" then return nil, "missing" end
  local tok = h:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(%S+)%s*$")
  if not tok then return nil, "format" end
  return tok
end

local function aud_ok(aud, audiences)
  for _, a in ipairs(audiences) do if a == aud then return true end end
  return false
end

--- Full check of a bearer token against a list of accepted audiences.
-- Returns claims, or nil, reason, claims — reason is one of "missing", "format", "malformed",
-- "signature", "audience", "expired", "not_yet_valid", "tenant".
function M.check(req, audiences, tenant)
  local tok, why = M.bearer_token(req)
  if not tok then return nil, why end
  local claims, reason = M.verify(tok)
  if not claims then return nil, reason end
  if not aud_ok(claims.aud, audiences) then return nil, "audience", claims end
  local now = clock.now()
  if type(claims.exp) ~= "number" or claims.exp + M.SKEW < now then return nil, "expired", claims end
  if type(claims.nbf) == "number" and claims.nbf - M.SKEW > now then return nil, "not_yet_valid", claims end
  if tenant and claims.tid ~= tenant then return nil, "tenant", claims end
  return claims
end

--- Records the caller on the request (and for the log).
function M.set_principal(req, claims)
  req.principal = { oid = claims.oid, appid = claims.appid, tid = claims.tid, claims = claims }
  ngx.ctx.principal = claims.oid
  return req.principal
end

local function tenant_id()
  return require("emu.seed").data.tenant_id
end

--- ARM authentication: returns the principal, or raises ARM's 401 (with WWW-Authenticate).
function M.arm(req)
  local audiences = req.cloud.arm_audiences
  local claims, reason, bad = M.check(req, audiences, tenant_id())
  if claims then return M.set_principal(req, claims) end
  local tid = tenant_id()
  local function fail(code, msg, desc)
    errors.throw(errors.arm(401, code, msg, { ["x-ms-failure-cause"] = "gateway",
      ["WWW-Authenticate"] = string.format(
      'Bearer authorization_uri="https://login.windows.net/%s", error="invalid_token", error_description="%s"',
      tid, desc or msg) }))
  end
  if reason == "missing" then
    fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", -- synthetic
      "The authentication failed because of missing 'Authorization' header.")
  elseif reason == "format" then
    -- synthetic (the text below)
    fail("AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format.",
      "The authentication failed because of invalid 'Authorization' header.")
  elseif reason == "audience" then
    fail("InvalidAuthenticationTokenAudience", string.format( -- synthetic
      "The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of " ..
      "the allowed audiences '%s'.", tostring(bad.aud), table.concat(audiences, "','")),
      "The access token has been obtained from wrong audience or resource.")
  elseif reason == "expired" then
    fail("ExpiredAuthenticationToken", string.format( -- synthetic
      "The access token expiry UTC time '%s' is earlier than current UTC time '%s'.",
      clock.us(bad.exp), clock.us(clock.now())), "The access token expiry UTC time '" .. clock.us(bad.exp) ..
      "' is earlier than current UTC time '" .. clock.us(clock.now()) .. "'.")
  elseif reason == "tenant" then
    fail("InvalidAuthenticationTokenTenant", string.format( -- synthetic
      "The access token is from the wrong issuer 'https://sts.windows.net/%s/'. It must match the tenant " ..
      "'https://sts.windows.net/%s/' associated with this subscription. Please use the authority (URL) " ..
      "'https://login.windows.net/%s' to get the token. Note, if the subscription is transferred to another " ..
      "tenant there is no impact to the services, but information about new tenant could take time to " ..
      "propagate (up to an hour). If you just transferred your subscription and see this error message, " ..
      "please try back later.", tostring(bad.tid), tid, tid))
  end
  fail("InvalidAuthenticationToken", "The access token is invalid.", "The access token is invalid.") -- synthetic
end

--- Key Vault data-plane authentication (for the Key Vault service): returns the principal,
-- or raises Key Vault's 401 with the challenge
--   WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tid}",
--     resource="https://vault.azure.net"
-- (the cloud's first login host: recorded Azure traffic of 2023 names login.microsoftonline.com,
-- older recordings login.windows.net; clients take only the tenant from it)
-- resource: the audience to accept (default: the cloud's vault resource, with or without "/").
function M.vault(req, resource)
  resource = resource or req.cloud.vault_resource
  local tid = tenant_id()
  local claims, reason, bad = M.check(req, { resource, resource .. "/" }, tid)
  if claims then return M.set_principal(req, claims) end
  local h = {
    ["WWW-Authenticate"] = string.format('Bearer authorization="https://%s/%s", resource="%s"',
      req.cloud.login[1], tid, resource),
    ["x-ms-keyvault-service-version"] = "1.9.2956.1",
    ["x-ms-keyvault-network-info"] = "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
    ["x-ms-keyvault-region"] = "westus",
  }
  if reason == "missing" then
    errors.throw(errors.kv(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", nil, h))
  elseif reason == "expired" then
    -- synthetic (the text below)
    errors.throw(errors.kv(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/"
      .. tid .. "/, found expired token; the token expired at " .. clock.iso_short(bad.exp) .. ".", nil, h))
  elseif reason == "audience" then
    errors.throw(errors.kv(401, "Unauthorized", "AKV10022: Invalid audience. Expected " .. resource .. -- synthetic
      ", found: " .. tostring(bad.aud) .. ".", nil, h))
  elseif reason == "tenant" then
    -- synthetic (the text below)
    errors.throw(errors.kv(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/"
      .. tid .. "/, found https://sts.windows.net/" .. tostring(bad.tid) .. "/.", nil, h))
  end
  errors.throw(errors.kv(401, "Unauthorized", "Unauthorized: The access token is invalid.", nil, h)) -- synthetic
end

M._uuid = util.uuid
return M
