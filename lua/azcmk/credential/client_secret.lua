--- Service principal with a client secret (Entra ID v2 client credentials).
-- new{ tenant_id, client_id, client_secret, authority_host | cloud, additionally_allowed_tenants }
local base = require("azcmk.credential.base")
local aad = require("azcmk.credential.aad")

local C = aad.app_class("ClientSecretCredential")

local M = {}

function M.new(opts)
  if type(opts) ~= "table" then error("azcmk.credential.client_secret: options table expected", 2) end
  return base.new(C, {
    tenant_id = opts.tenant_id, client_id = opts.client_id, client_secret = opts.client_secret,
    authority_host = opts.authority_host, cloud = opts.cloud,
    additionally_allowed_tenants = opts.additionally_allowed_tenants, ctx = opts.ctx,
  })
end

function C:available()
  if not base.valid_tenant(self.tenant_id) then return false, "tenant_id missing or invalid" end
  if not self.client_id or self.client_id == "" then return false, "client_id missing" end
  if not self.client_secret or self.client_secret == "" then return false, "client_secret missing" end
  return true
end

function C:get_token(scope, opts)
  local tenant, terr = aad.request_tenant(self, opts)
  if not tenant then return nil, terr end
  return aad.request(self, tenant, scope, { { "client_secret", self.client_secret } })
end

M.class = C
return M
