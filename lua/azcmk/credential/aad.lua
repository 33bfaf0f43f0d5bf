--- Entra ID v2 token endpoint (client credentials grant).
-- Shared by the application credentials: client_secret, client_certificate and
-- workload_identity (a client secret, or a client assertion: signed JWT or federated token).
local url = require("azcmk.url")
local errors = require("azcmk.errors")
local sender = require("azcmk.sender")
local base = require("azcmk.credential.base")
local cloudm = require("azcmk.cloud")

local M = {}

M.ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

--- A credential class for an Entra ID application (tenant_id + client_id): tokens are
-- cached per tenant and client, and __tostring shows the client id only (never a secret
-- or an assertion).
function M.app_class(name)
  local C = base.class(name)
  function C:cache_key()
    return self.name .. "|" .. tostring(self.tenant_id) .. "|" .. tostring(self.client_id)
  end
  C.__tostring = function(self)
    return "azcmk.credential(" .. self.name .. " client_id=" .. tostring(self.client_id) .. ")"
  end
  return C
end

--- Authority host for a credential: opts.authority_host, else the cloud's, else
-- AZURE_AUTHORITY_HOST, else public cloud. Returns normalised https URL or nil, err.
function M.authority(opts, getenv)
  getenv = getenv or os.getenv
  local a = opts.authority_host
  if not a and opts.cloud then
    local p, err = cloudm.get(opts.cloud)
    if not p then return nil, errors.input(err) end
    a = p.authority_host
  end
  if not a and opts.ctx and type(opts.ctx.cloud) == "table" then a = opts.ctx.cloud.authority_host end
  a = a or getenv("AZURE_AUTHORITY_HOST")
  if not a or a == "" then a = cloudm.profiles.AzureCloud.authority_host end
  local n, err = cloudm.normalize_endpoint(a, "authority host")
  if not n then return nil, errors.input(err, { code = "InvalidAuthority" }) end
  return n
end

--- The tenant to use for a request: the configured one, or opts.tenant_id (from a Key Vault
-- challenge) when allowed by additionally_allowed_tenants ("*" or a list).
function M.pick_tenant(cred, opts)
  local t = opts and opts.tenant_id
  if not t or t == cred.tenant_id then return cred.tenant_id end
  local allowed = cred.additionally_allowed_tenants or {}
  for _, a in ipairs(allowed) do
    if a == "*" or a == t then return t end
  end
  return nil, errors.new("auth", { code = "TenantNotAllowed",
    message = string.format("%s is configured for tenant %s; a token for tenant %s was requested",
                            cred.name, tostring(cred.tenant_id), tostring(t)),
    hint = "add the tenant to additionally_allowed_tenants if this is intended" })
end

--- The tenant of a token request, or nil, err when the credential is unavailable (a chain
-- moves on) or the tenant is not allowed.
function M.request_tenant(cred, opts)
  local ok, why = cred:available()
  if not ok then return nil, base.unavailable(cred.name, why) end
  return M.pick_tenant(cred, opts)
end

--- POST {authority}/{tenant}/oauth2/v2.0/token with form fields; returns token or nil, err.
-- fields: list of {name, value} (grant_type and scope are added).
function M.request(cred, tenant, scope, fields)
  local ctx = cred:context()
  if not base.valid_tenant(tenant) then
    return nil, errors.input("tenant id must be non-empty and only [A-Za-z0-9.-]: " .. tostring(tenant),
                             { code = "InvalidTenant" })
  end
  local ok, serr = base.check_scope(scope)
  if not ok then return nil, serr end
  local authority, aerr = M.authority(cred, ctx.getenv)
  if not authority then return nil, aerr end
  local form = { { "grant_type", "client_credentials" }, { "client_id", cred.client_id }, { "scope", scope } }
  for _, f in ipairs(fields) do form[#form + 1] = f end
  local now = ctx.now()
  local res, err = sender.send(ctx, {
    method = "POST",
    url = authority .. "/" .. tenant .. "/oauth2/v2.0/token",
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded", ["Accept"] = "application/json",
                ["x-ms-client-request-id"] = base.uuid() },
    body = url.encode_form(form),
    idempotent = true,   -- token requests are safe to repeat
  })
  if not res then
    err.credential = cred.name
    return nil, err
  end
  local j, jerr = base.token_json(cred, res, "token endpoint")
  if not j then return nil, jerr end
  local expires_in = tonumber(j.expires_in) or 3600
  local refresh_in = tonumber(j.refresh_in)
  return base.token({ token = j.access_token, expires_on = now + expires_in,
                      refresh_on = refresh_in and (now + refresh_in) or nil, token_type = j.token_type })
end

--- Token request with a client assertion (a signed JWT or a federated token).
function M.request_with_assertion(cred, tenant, scope, assertion)
  return M.request(cred, tenant, scope, {
    { "client_assertion_type", M.ASSERTION_TYPE }, { "client_assertion", assertion },
  })
end

return M
