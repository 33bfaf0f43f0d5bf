--- emu.services.entra: Entra ID (Azure AD) v2 token endpoint and discovery documents, on
-- every cloud's authority host (login.microsoftonline.com, login.chinacloudapi.cn,
-- login.partner.microsoftonline.cn, login.microsoftonline.us, login.windows.net).
--   POST /{tenant}/oauth2/v2.0/token   client_credentials with client_secret, certificate
--                                      client_assertion (RS256/PS256, x5t or x5t#S256), or a
--                                      federated assertion (workload identity)
--   POST /{tenant}/oauth2/token        the v1 endpoint (resource=), same credentials
--   GET  /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/discovery/v2.0/keys,
--        /common/discovery/instance
-- Errors follow Entra's AADSTS envelope: error, error_description ("AADSTSnnn: ... Trace ID:
-- ... Correlation ID: ... Timestamp: ..."), error_codes, timestamp, trace_id, correlation_id,
-- error_uri. AADSTS50013 for a replayed jti is the emulator's choice (Entra's exact code for
-- replays was not confirmed).
local router = require("emu.router")
local errors = require("emu.errors")
local auth = require("emu.auth")
local directory = require("emu.directory")
local clock = require("emu.clock")
local json = require("emu.json")
local util = require("emu.util")
local hosts = require("emu.hosts")

local M = {}

M.ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
M.SKEW = 300             -- assertion nbf/exp tolerance
M.MAX_ASSERTION_LIFE = 3600 -- exp may lie at most this far ahead (MSAL uses 10 min)

local CERT_DOC = " Review the documentation at " ..
  "https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials ."

local function seed() return require("emu.seed").data end

local function aad(status, err, code, text)
  errors.throw(errors.aad(status, err, code, text))
end

-- Resources (token audiences) each cloud's Entra knows, by the host of the resource URL.
local function known_resource(cloud, res)
  local r = res:lower():gsub("/+$", "")
  for _, a in ipairs(cloud.arm_audiences) do if a:lower():gsub("/+$", "") == r then return true end end
  if r == cloud.vault_resource then return true end
  if cloud.hsm_suffix and r == "https://managedhsm" .. cloud.hsm_suffix:gsub("^%.managedhsm", "") then
    return true
  end
  if r == "https://containerregistry.azure.net" or r == "https://graph.microsoft.com"
    or r == "https://storage.azure.com" then
    return true
  end
  return false
end
M.known_resource = known_resource

--- The tenant of the URL: the seeded tenant id or its domain; raises AADSTS90002/900023.
local function check_tenant(t)
  local d = seed()
  local lt = t:lower()
  if lt == d.tenant_id or lt == "azcmkemulator.onmicrosoft.com" then return d.tenant_id end
  if lt == "common" or lt == "organizations" or lt == "consumers" then
    -- synthetic (the text below)
    aad(400, "invalid_request", 700016, string.format("Application with identifier '%s' was not found in the " ..
      "directory 'Microsoft Accounts'. Use a tenant-specific endpoint for the client credentials flow.", "unknown"))
  end
  if not util.is_guid(t) and not t:find(".", 1, true) then
    aad(400, "invalid_request", 900023, "Specified tenant identifier '" .. t .. -- synthetic
      "' is neither a valid DNS name, nor a valid external domain.")
  end
  -- synthetic (the text below)
  aad(400, "invalid_request", 90002, "Tenant '" .. t .. "' not found. Check to make sure you have the correct " ..
    "tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may " ..
    "happen if there are no active subscriptions for the tenant.")
end

local function iso_ms(t)
  return os.date("!%m/%d/%Y %H:%M:%S", math.floor(t))
end

local function strip_pad(s)
  return type(s) == "string" and (s:gsub("=+$", "")) or s
end

-- Valid audiences of a client assertion: the token endpoint of any authority host of this
-- cloud, with the tenant id or domain, v2 or v1 path (Entra is lenient about the form).
local function assertion_aud_ok(aud, tid)
  local list = type(aud) == "table" and aud or { aud }
  for _, a in ipairs(list) do
    if type(a) == "string" then
      local h, t, rest = a:lower():match("^https://([^/]+)/([^/]+)/(.*)$")
      if h and (t == tid or t == "azcmkemulator.onmicrosoft.com") then
        local kind = hosts.classify(h, false)
        if kind == "login" and (rest == "oauth2/v2.0/token" or rest == "oauth2/token") then return true end
      end
    end
  end
  return false
end

local function check_times(p, now, what)
  local nbf, exp = tonumber(p.nbf), tonumber(p.exp)
  if not exp then aad(400, "invalid_client", 50027, "JWT token is invalid or malformed: the " .. what .. -- synthetic
    " has no 'exp' claim.") end
  if exp + M.SKEW < now or (nbf and nbf - M.SKEW > now) or exp - now > M.MAX_ASSERTION_LIFE + M.SKEW then
    -- synthetic (the text below)
    aad(400, "invalid_client", 700024, string.format("Client assertion is not within its valid time range. " ..
      "Current time: %s, assertion valid from %s, expiry time of assertion %s.%s", clock.iso_short(now),
      nbf and clock.iso_short(nbf) or "(none)", clock.iso_short(exp), CERT_DOC))
  end
  return exp
end

local function remember_jti(appid, jti, exp, now)
  if jti == nil then return end
  local key = "jti:" .. appid:lower() .. ":" .. tostring(jti)
  local ttl = math.max(1, exp + M.SKEW - now + 60)
  local ok, err = ngx.shared.emu_meta:add(key, true, ttl)
  if not ok and err == "exists" then
    aad(401, "invalid_client", 50013, "Assertion has been replayed: the client assertion with jti '" .. -- synthetic
      tostring(jti) .. "' was already used. Create a new assertion with a unique jti for every request.")
  end
end

-- Certificate credential: header x5t#S256 / x5t names a registered certificate; the
-- signature must verify with its public key; iss = sub = client_id; aud = token endpoint.
local function certificate_assertion(app, creds, tok, header, p, tid)
  local core = require("azcmk.core")
  local alg = header.alg
  local cert
  for _, c in ipairs(creds.certs or {}) do
    if (header["x5t#S256"] and strip_pad(header["x5t#S256"]) == c.x5t_s256)
      or (header.x5t and strip_pad(header.x5t) == c.x5t) then
      cert = c
      break
    end
  end
  if not cert then
    local thumb = header["x5t#S256"] or header.x5t
    -- synthetic (the text below)
    aad(401, "invalid_client", 700027, string.format("The certificate with identifier used to sign the client " ..
      "assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by " ..
      "client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured " ..
      "keys for app Id '%s'.]", tostring(thumb or "(no x5t or x5t#S256 header)"), app.appId))
  end
  local c = core.cert_from_pem(cert.pem)
  local pk = c:pubkey()
  local ok = core.jwt_verify(tok, pk, alg)
  pk:close()
  c:close()
  if not ok then
    aad(401, "invalid_client", 700027, "Client assertion failed signature validation." .. CERT_DOC) -- synthetic
  end
  if p.iss ~= app.appId or p.sub ~= app.appId then
    -- synthetic (the text below)
    aad(400, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' " ..
      "parameter." .. CERT_DOC)
  end
  if not assertion_aud_ok(p.aud, tid) then
    -- synthetic (the text below)
    aad(400, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer." .. CERT_DOC)
  end
  local now = clock.now()
  local exp = check_times(p, now, "client assertion")
  remember_jti(app.appId, p.jti, exp, now)
  return "2"
end

-- Federated credential (workload identity): a token of the emulator's OIDC issuer whose
-- iss, sub and aud match a federated identity credential of the app.
local function federated_assertion(creds, tok, header, p)
  local core = require("azcmk.core")
  local aud = type(p.aud) == "table" and p.aud or { p.aud }
  local match
  for _, f in ipairs(creds.federated or {}) do
    if f.issuer == p.iss and f.subject == p.sub then
      for _, a in ipairs(aud) do
        for _, fa in ipairs(f.audiences) do if a == fa then match = f end end
      end
    end
  end
  if not match then
    -- synthetic (the text below)
    aad(400, "invalid_request", 70021, string.format("No matching federated identity record found for presented " ..
      "assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'. " ..
      "https://docs.microsoft.com/azure/active-directory/develop/workload-identity-federation",
      tostring(p.iss), tostring(p.sub), table.concat(aud, ",")))
  end
  if header.alg ~= "RS256" or not core.jwt_verify(tok, auth.oidc.pkey, "RS256") then
    -- synthetic (the text below)
    aad(401, "invalid_client", 700027, "Client assertion failed signature validation. [Reason - The key was " ..
      "not found in the issuer's signing keys (" .. tostring(p.iss) .. ").]")
  end
  local now = clock.now()
  local exp = tonumber(p.exp)
  if not exp or exp + M.SKEW < now or (tonumber(p.nbf) and p.nbf - M.SKEW > now) then
    -- synthetic (the text below)
    aad(400, "invalid_client", 700024, string.format("Client assertion is not within its valid time range. " ..
      "Current time: %s, expiry time of assertion %s.", clock.iso_short(now), exp and clock.iso_short(exp) or "?"))
  end
  return "2"
end

local function common(req)
  local tid = check_tenant(req.params.tenant)
  local ctype = (req:header("content-type") or ""):lower()
  if not ctype:find("application/x-www-form-urlencoded", 1, true) then
    -- synthetic (the text below)
    aad(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
  end
  local f = req:form()
  if not f.grant_type or f.grant_type == "" then
    -- synthetic (the text below)
    aad(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
  end
  if f.grant_type ~= "client_credentials" then
    -- synthetic (the text below)
    aad(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '" .. f.grant_type .. "'.")
  end
  if not f.client_id or f.client_id == "" then
    -- synthetic (the text below)
    aad(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
  end
  return tid, f
end

local function authenticate(f, tid)
  local app = directory.by_app(f.client_id)
  local creds = app and app.kind == "app" and directory.credentials(app.appId)
  if not creds then
    -- synthetic (the text below)
    aad(400, "unauthorized_client", 700016, string.format("Application with identifier '%s' was not found in the " ..
      "directory 'azcmk emulator'. This can happen if the application has not been installed by the administrator " ..
      "of the tenant or consented to by any user in the tenant. You may have sent your authentication request to " ..
      "the wrong tenant.", f.client_id))
  end
  local acr
  if f.client_secret and f.client_assertion then
    -- synthetic (the text below)
    aad(401, "invalid_client", 7000218, "The request body must contain only one of the following parameters: " ..
      "'client_assertion' or 'client_secret'.")
  elseif f.client_secret then
    local ok = false
    for _, s in ipairs(creds.secrets or {}) do if s == f.client_secret then ok = true end end
    if not ok then
      -- synthetic (the text below)
      aad(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the " ..
        "request is the client secret value, not the client secret ID, for a secret added to app '" ..
        app.appId .. "'.")
    end
    acr = "1"
  elseif f.client_assertion then
    if f.client_assertion_type ~= M.ASSERTION_TYPE then
      -- synthetic (the text below)
      aad(400, "invalid_request", 90014, "The required field 'client_assertion_type' is missing from the " ..
        "credential or is not '" .. M.ASSERTION_TYPE .. "'. Ensure that you have all the necessary parameters " ..
        "for the login request.")
    end
    local core = require("azcmk.core")
    local hj, pj = core.jwt_decode(f.client_assertion)
    local header, p = json.decode(hj or ""), json.decode(pj or "")
    if type(header) ~= "table" or type(p) ~= "table" then
      aad(400, "invalid_client", 50027, "JWT token is invalid or malformed.") -- synthetic
    end
    if header.alg ~= "RS256" and header.alg ~= "PS256" then
      -- synthetic (the text below)
      aad(400, "invalid_client", 5002738, string.format("Invalid JWT token. '%s' is not a supported signature " ..
        "algorithm. Supported signing algorithms are: 'RS256, PS256'", tostring(header.alg)))
    end
    if p.iss == app.appId then
      acr = certificate_assertion(app, creds, f.client_assertion, header, p, tid)
    else
      acr = federated_assertion(creds, f.client_assertion, header, p)
    end
  else
    aad(401, "invalid_client", 7000218, "The request body must contain the following parameter: " .. -- synthetic
      "'client_assertion' or 'client_secret'.")
  end
  return app, acr
end

-- The resource must be one this cloud's Entra knows (400 invalid_resource), then the client
-- authenticates: returns app, acr.
local function known_and_authenticated(req, f, tid, resource)
  if not known_resource(req.cloud, resource) then
    -- synthetic (the text below)
    aad(400, "invalid_resource", 500011, "The resource principal named " .. resource .. " was not found in the " ..
      "tenant named azcmk emulator. This can happen if the application has not been installed by the " ..
      "administrator of the tenant or consented to by any user in the tenant. You might have sent your " ..
      "authentication request to the wrong tenant.")
  end
  return authenticate(f, tid)
end

local function token(req)
  local tid, f = common(req)
  if not f.scope or f.scope == "" then
    aad(400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.") -- synthetic
  end
  local scopes = {}
  for s in f.scope:gmatch("%S+") do scopes[#scopes + 1] = s end
  if #scopes ~= 1 then
    -- synthetic (the text below)
    aad(400, "invalid_scope", 70011, "The provided request must include a 'scope' input parameter. The provided " ..
      "value for the input parameter 'scope' is not valid. The scope " .. f.scope .. " is not valid.")
  end
  local resource = scopes[1]:match("^(.-)/%.default$")
  if not resource then
    -- synthetic (the text below)
    aad(400, "invalid_scope", 1002012, "The provided value for scope " .. scopes[1] .. " is not valid. Client " ..
      "credential flows must have a scope value with /.default suffixed to the resource identifier " ..
      "(application ID URI).")
  end
  local app, acr = known_and_authenticated(req, f, tid, resource)
  local tok = auth.issue({ tid = tid, oid = app.objectId, appid = app.appId, aud = resource, appidacr = acr })
  ngx.ctx.principal = app.objectId
  return 200, { token_type = "Bearer", expires_in = auth.LIFETIME - 1, ext_expires_in = auth.LIFETIME - 1,
    access_token = tok }
end

-- v1 endpoint (resource= instead of scope=): string values, expires_on and resource in the answer.
local function token_v1(req)
  local tid, f = common(req)
  local resource = f.resource
  if not resource or resource == "" then
    -- synthetic (the text below)
    aad(400, "invalid_request", 900144, "The request body must contain the following parameter: 'resource'.")
  end
  local app, acr = known_and_authenticated(req, f, tid, resource)
  local tok, c = auth.issue({ tid = tid, oid = app.objectId, appid = app.appId, aud = resource, appidacr = acr })
  ngx.ctx.principal = app.objectId
  local life = tostring(auth.LIFETIME - 1)
  return 200, { token_type = "Bearer", expires_in = life, ext_expires_in = life, expires_on = tostring(c.exp),
    not_before = tostring(c.nbf), resource = resource, access_token = tok }
end

router.add({ kind = "login", method = "POST", path = "/{tenant}/oauth2/v2.0/token", handler = token })
router.add({ kind = "login", method = "POST", path = "/{tenant}/oauth2/token", handler = token_v1 })
router.add({ kind = "login", method = "GET", path = "/{tenant}/oauth2/v2.0/token", handler = function()
  return errors.aad(400, "invalid_request", 900561, "The endpoint only accepts POST, OPTIONS requests. " .. -- synthetic
    "Received a GET request.")
end })

local function base(req) return "https://" .. req.host end

router.add({ kind = "login", method = "GET", path = "/{tenant}/v2.0/.well-known/openid-configuration",
  handler = function(req)
    local tid = check_tenant(req.params.tenant)
    local b = base(req)
    return 200, {
      token_endpoint = b .. "/" .. tid .. "/oauth2/v2.0/token",
      token_endpoint_auth_methods_supported = json.array({ "client_secret_post", "private_key_jwt",
        "client_secret_basic" }),
      jwks_uri = b .. "/" .. tid .. "/discovery/v2.0/keys",
      response_modes_supported = json.array({ "query", "fragment", "form_post" }),
      subject_types_supported = json.array({ "pairwise" }),
      id_token_signing_alg_values_supported = json.array({ "RS256" }),
      issuer = b .. "/" .. tid .. "/v2.0",
      authorization_endpoint = b .. "/" .. tid .. "/oauth2/v2.0/authorize",
      tenant_region_scope = "WW", cloud_instance_name = req.host:gsub("^login%.", ""),
    }
  end })

router.add({ kind = "login", method = "GET", path = "/{tenant}/discovery/v2.0/keys", handler = function()
  local jwk = auth.signing.jwk
  return 200, { keys = json.array({ { kty = "RSA", use = "sig", kid = auth.signing.kid, x5t = auth.signing.kid,
    n = jwk.n, e = jwk.e, issuer = "https://sts.windows.net/" .. seed().tenant_id .. "/" } }) }
end })

router.add({ kind = "login", method = "GET", path = "/common/discovery/instance", handler = function(req)
  return 200, {
    tenant_discovery_endpoint = base(req) .. "/" .. seed().tenant_id .. "/v2.0/.well-known/openid-configuration",
    ["api-version"] = "1.1",
    metadata = json.array({ { preferred_network = req.host, preferred_cache = req.host,
      aliases = json.array({ req.host }) } }),
  }
end })

M._iso = iso_ms
return M
