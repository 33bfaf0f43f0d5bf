--- Managed identity: picks the endpoint from the environment -
-- App Service (IDENTITY_ENDPOINT + IDENTITY_HEADER), Azure ML (MSI_ENDPOINT + MSI_SECRET),
-- Cloud Shell (MSI_ENDPOINT), else IMDS. Service Fabric and Azure Arc are reported as
-- unsupported. User-assigned selection: client_id, object_id or resource_id.
-- new{ client_id | object_id | resource_id, getenv, imds = {...}, app_service = {...} }
local base = require("azcmk.credential.base")

local C = base.class("ManagedIdentityCredential")

local M = {}

function M.new(opts)
  opts = opts or {}
  local n = (opts.client_id and 1 or 0) + (opts.object_id and 1 or 0) + (opts.resource_id and 1 or 0)
  if n > 1 then
    error("azcmk.credential.managed_identity: give at most one of client_id, object_id, resource_id", 2) end
  local getenv = opts.getenv or os.getenv
  return base.new(C, { client_id = opts.client_id, object_id = opts.object_id, resource_id = opts.resource_id,
                       imds_opts = opts.imds, app_service_opts = opts.app_service,
                       ctx = opts.ctx or { getenv = getenv } })
end

local function set(v) return v ~= nil and v ~= "" end

--- Which source the environment selects: "app_service", "azure_ml", "cloud_shell", "imds",
-- or nil, reason (unsupported).
function M.source(getenv)
  getenv = getenv or os.getenv
  local ie, ih = getenv("IDENTITY_ENDPOINT"), getenv("IDENTITY_HEADER")
  if set(ie) and set(ih) and set(getenv("IDENTITY_SERVER_THUMBPRINT")) then
    return nil, "Service Fabric managed identity is not supported"
  end
  if set(ie) and set(ih) then return "app_service" end
  if set(ie) and set(getenv("IMDS_ENDPOINT")) then return nil,
    "Azure Arc managed identity is not supported" end
  if set(getenv("MSI_ENDPOINT")) then
    if set(getenv("MSI_SECRET")) then return "azure_ml" end
    return "cloud_shell"
  end
  return "imds"
end

function C:_inner()
  if self.inner ~= nil or self.inner_reason then return self.inner, self.inner_reason end
  local getenv = (self.ctx and self.ctx.getenv) or os.getenv
  local src, why = M.source(getenv)
  if not src then self.inner_reason = why; return nil, why end
  local o = {}
  for k, v in pairs((src == "imds" and self.imds_opts) or self.app_service_opts or {}) do o[k] = v end
  o.client_id, o.object_id, o.resource_id = self.client_id, self.object_id, self.resource_id
  o.getenv = getenv
  o.ctx = self.ctx    -- share transport, log and clock
  if src == "imds" then
    self.inner = require("azcmk.credential.imds").new(o)
  else
    o.mode = src
    self.inner = require("azcmk.credential.app_service").new(o)
  end
  self.source_name = src
  return self.inner
end

function C:available()
  local inner, why = self:_inner()
  if not inner then return false, why end
  return inner:available()
end

function C:cache_key()
  local inner = self:_inner()
  return self.name .. "|" .. (inner and inner:cache_key() or "none")
end

function C:get_token(scope, opts)
  local inner, why = self:_inner()
  if not inner then return nil, base.unavailable(self.name, why) end
  local tok, err = inner:get_token(scope, opts)
  if not tok and err and err.unavailable then
    return nil, base.unavailable(self.name, err.reason or tostring(err.message))
  end
  if not tok and err then
    err.credential = self.name
  end
  return tok, err
end

M.class = C
return M
