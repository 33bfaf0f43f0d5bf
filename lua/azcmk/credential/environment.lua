--- EnvironmentCredential: a service principal from environment variables:
-- AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET (checked first), or
-- AZURE_CLIENT_CERTIFICATE_PATH (+ AZURE_CLIENT_CERTIFICATE_PASSWORD,
-- AZURE_CLIENT_SEND_CERTIFICATE_CHAIN).
local base = require("azcmk.credential.base")

local C = base.class("EnvironmentCredential")

local M = {}

function M.new(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local env = base.env_reader(getenv)
  local o = { ctx = opts.ctx or { getenv = getenv } }
  local tenant, client = env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID")
  if env("AZURE_CLIENT_SECRET") and tenant and client then
    o.inner = require("azcmk.credential.client_secret").new({
      tenant_id = tenant, client_id = client, client_secret = env("AZURE_CLIENT_SECRET"),
      authority_host = opts.authority_host, cloud = opts.cloud,
      additionally_allowed_tenants = opts.additionally_allowed_tenants, ctx = o.ctx })
  elseif env("AZURE_CLIENT_CERTIFICATE_PATH") and tenant and client then
    local chain = env("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
    o.inner = require("azcmk.credential.client_certificate").new({
      tenant_id = tenant, client_id = client, certificate_path = env("AZURE_CLIENT_CERTIFICATE_PATH"),
      password = env("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
      send_certificate_chain = chain == "1" or (chain and chain:lower() == "true"),
      authority_host = opts.authority_host, cloud = opts.cloud,
      additionally_allowed_tenants = opts.additionally_allowed_tenants, ctx = o.ctx })
  else
    local missing = {}
    for _, k in ipairs({ "AZURE_TENANT_ID",
      "AZURE_CLIENT_ID" }) do if not env(k) then missing[#missing + 1] = k end end
    if not env("AZURE_CLIENT_SECRET") and not env("AZURE_CLIENT_CERTIFICATE_PATH") then
      missing[#missing + 1] = "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH"
    end
    o.reason = "environment variables not fully set (missing " .. table.concat(missing, ", ") .. ")"
  end
  return base.new(C, o)
end

function C:available()
  if not self.inner then return false, self.reason end
  return self.inner:available()
end

function C:cache_key() return self.name .. "|" .. (self.inner and self.inner:cache_key() or "none") end

function C:get_token(scope, opts)
  if not self.inner then return nil, base.unavailable(self.name, self.reason) end
  local tok, err = self.inner:get_token(scope, opts)
  if err then err.credential = self.name end
  return tok, err
end

M.class = C
return M
