--- Workload identity (AKS federated token file).
-- new{ tenant_id, client_id, token_file_path, authority_host | cloud }; defaults from
-- AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST.
-- The file is re-read when its mtime or size changes (with lfs) and at least every 600 s;
-- without lfs it is re-read for every token request (rare: tokens are cached).
local base = require("azcmk.credential.base")
local aad = require("azcmk.credential.aad")
local errors = require("azcmk.errors")

local C = aad.app_class("WorkloadIdentityCredential")

local M = {}

M.REREAD_AFTER = 600

function M.new(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local env = base.env_reader(getenv)
  return base.new(C, {
    tenant_id = opts.tenant_id or env("AZURE_TENANT_ID"),
    client_id = opts.client_id or env("AZURE_CLIENT_ID"),
    token_file_path = opts.token_file_path or env("AZURE_FEDERATED_TOKEN_FILE"),
    authority_host = opts.authority_host, cloud = opts.cloud,
    additionally_allowed_tenants = opts.additionally_allowed_tenants,
    ctx = opts.ctx or { getenv = getenv },
  })
end

function C:available()
  if not self.token_file_path then return false, "AZURE_FEDERATED_TOKEN_FILE not set" end
  if not base.valid_tenant(self.tenant_id) then return false, "AZURE_TENANT_ID not set or invalid" end
  if not self.client_id then return false, "AZURE_CLIENT_ID not set" end
  return true
end

local function file_stamp(path)
  local ok, lfs = pcall(require, "lfs")
  if not ok or type(lfs) ~= "table" then return nil end
  local a = lfs.attributes(path)
  if not a then return nil end
  return tostring(a.modification) .. ":" .. tostring(a.size) .. ":" .. tostring(a.change)
end

--- The federated assertion (file contents), re-read as described above.
function C:assertion()
  local now = self:settings().now()
  local stamp = file_stamp(self.token_file_path)
  local c = self.cached
  if c and stamp and c.stamp == stamp and now - c.read_at < M.REREAD_AFTER then return c.value end
  local f, err = io.open(self.token_file_path, "rb")
  if not f then
    return nil, errors.new("auth", { code = "FederatedTokenUnreadable", credential = self.name,
      message = self.name .. ": cannot read the federated token file: " .. tostring(err) })
  end
  local v = f:read("*a")
  f:close()
  v = v:gsub("%s+$", "")
  if v == "" then
    return nil, errors.new("auth", { code = "FederatedTokenEmpty", credential = self.name,
                                     message = self.name .. ": the federated token file is empty" })
  end
  self.cached = { value = v, stamp = stamp, read_at = now }
  return v
end

function C:get_token(scope, opts)
  local tenant, terr = aad.request_tenant(self, opts)
  if not tenant then return nil, terr end
  local a, err = self:assertion()
  if not a then return nil, err end
  return aad.request_with_assertion(self, tenant, scope, a)
end

M.class = C
return M
