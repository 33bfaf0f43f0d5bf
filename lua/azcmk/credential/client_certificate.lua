--- Service principal with a certificate: signed client assertion.
-- new{ tenant_id, client_id, certificate_path | certificate (PEM text or PKCS#12 bytes),
--      password, alg = "PS256" (default, header x5t#S256) | "RS256" (header x5t),
--      send_certificate_chain (x5c), authority_host | cloud, additionally_allowed_tenants }
local cjson = require("cjson.safe")
local base = require("azcmk.credential.base")
local aad = require("azcmk.credential.aad")
local errors = require("azcmk.errors")

local C = aad.app_class("ClientCertificateCredential")

local M = {}

M.ASSERTION_LIFETIME = 600

function M.new(opts)
  if type(opts) ~= "table" then error("azcmk.credential.client_certificate: options table expected", 2) end
  local alg = (opts.alg or "PS256"):upper()
  if alg ~= "PS256" and alg ~= "RS256" then
    error("azcmk.credential.client_certificate: alg must be PS256 or RS256", 2) end
  return base.new(C, {
    tenant_id = opts.tenant_id, client_id = opts.client_id,
    certificate_path = opts.certificate_path, certificate_data = opts.certificate,
    password = opts.password, alg = alg, send_certificate_chain = opts.send_certificate_chain,
    authority_host = opts.authority_host, cloud = opts.cloud,
    additionally_allowed_tenants = opts.additionally_allowed_tenants, ctx = opts.ctx,
  })
end

function C:available()
  if not base.valid_tenant(self.tenant_id) then return false, "tenant_id missing or invalid" end
  if not self.client_id or self.client_id == "" then return false, "client_id missing" end
  if not self.certificate_path and not self.certificate_data then return false, "no certificate given" end
  return true
end

--- Load the certificate and key once (file I/O on first use only).
function C:_load()
  if self.loaded then return self.loaded end
  local data = self.certificate_data
  if not data then
    local f, ferr = io.open(self.certificate_path, "rb")
    if not f then
      return nil, errors.input("cannot read certificate file: " .. tostring(ferr),
        { code = "CertificateUnreadable", param = "certificate_path" })
    end
    data = f:read("*a")
    f:close()
  end
  local core = require("azcmk.core")
  local r, err
  if data:find("-----BEGIN", 1, true) then
    r, err = core.load_pem(data, self.password)
  else
    r, err = core.load_pkcs12(data, self.password or "")
  end
  if not r then
    return nil, errors.input("cannot load certificate: " .. tostring(err), { code = "CertificateInvalid",
      param = self.certificate_data and "certificate" or "certificate_path",
      hint = "give a PEM with certificate and private key, or a PKCS#12 (.pfx) with its password" })
  end
  if not r.key then
    return nil, errors.input("the certificate file holds no private key", { code = "CertificateInvalid",
      param = self.certificate_data and "certificate" or "certificate_path" })
  end
  self.loaded = r
  return r
end

--- Build the signed client assertion for `aud`.
function C:assertion(aud)
  local r, err = self:_load()
  if not r then return nil, err end
  local core = require("azcmk.core")
  local header = { alg = self.alg, typ = "JWT" }
  if self.alg == "PS256" then header["x5t#S256"] = r.cert:x5t_s256() else header.x5t = r.cert:x5t() end
  if self.send_certificate_chain then
    local x5c = { core.b64_encode(r.cert:der()) }
    for _, c in ipairs(r.chain or {}) do x5c[#x5c + 1] = core.b64_encode(c:der()) end
    header.x5c = x5c
  end
  local now = math.floor(self:settings().now())
  local claims = { aud = aud, iss = self.client_id, sub = self.client_id, jti = base.uuid(),
                   nbf = now, iat = now, exp = now + M.ASSERTION_LIFETIME }
  local jwt, jerr = core.jwt_sign(cjson.encode(header), cjson.encode(claims), r.key, self.alg)
  if not jwt then return nil, errors.input("cannot sign client assertion: " .. tostring(jerr)) end
  return jwt
end

function C:get_token(scope, opts)
  local tenant, terr = aad.request_tenant(self, opts)
  if not tenant then return nil, terr end
  if not base.valid_tenant(tenant) then
    return nil, errors.input("invalid tenant id", { code = "InvalidTenant" })
  end
  local authority, aerr = aad.authority(self, self:settings().getenv)
  if not authority then return nil, aerr end
  local jwt, err = self:assertion(authority .. "/" .. tenant .. "/oauth2/v2.0/token")
  if not jwt then return nil, err end
  return aad.request_with_assertion(self, tenant, scope, jwt)
end

M.class = C
return M
