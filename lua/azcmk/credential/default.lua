--- DefaultAzureCredential: EnvironmentCredential ->
-- WorkloadIdentityCredential (tenant, client and token file set) -> ManagedIdentityCredential
-- (AZURE_CLIENT_ID as user-assigned client id) -> AzureCliCredential (`az login`).
-- AZURE_TOKEN_CREDENTIALS = "prod" (the first three), "dev" (the Azure CLI) or one credential
-- name narrows the chain. Nothing is contacted until a token is needed.
-- opts: getenv, exclude_environment, exclude_workload_identity, exclude_managed_identity,
--       exclude_azure_cli, managed_identity_client_id, managed_identity_resource_id,
--       authority_host, cloud, additionally_allowed_tenants, imds (options for the IMDS
--       credential), azure_cli (options for the CLI credential).
local chain = require("azcmk.credential.chain")
local errors = require("azcmk.errors")

local M = {}

local NAMES = {
  environmentcredential = "environment", workloadidentitycredential = "workload_identity",
  managedidentitycredential = "managed_identity", azureclicredential = "azure_cli",
}

function M.new(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local ctx = opts.ctx or { getenv = getenv }
  local only
  local sel = getenv("AZURE_TOKEN_CREDENTIALS")
  if sel and sel ~= "" then
    local s = sel:lower()
    if s == "prod" then only = "prod"
    elseif s == "dev" then only = "azure_cli"
    elseif NAMES[s] then only = NAMES[s]
    else
      return chain.new({ function()
        error("AZURE_TOKEN_CREDENTIALS=" .. sel .. " names no credential azcmk supports (prod, dev, "
              .. "EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, "
              .. "AzureCliCredential)")
      end }, { name = "DefaultAzureCredential", ctx = ctx })
    end
  end
  local list = {}
  local function want(n, excluded)
    if excluded then return false end
    if only == "prod" then return n ~= "azure_cli" end
    return only == nil or only == n
  end
  if want("environment", opts.exclude_environment) then
    list[#list + 1] = require("azcmk.credential.environment").new({
      getenv = getenv, ctx = ctx, authority_host = opts.authority_host, cloud = opts.cloud,
      additionally_allowed_tenants = opts.additionally_allowed_tenants })
  end
  if want("workload_identity", opts.exclude_workload_identity) then
    list[#list + 1] = require("azcmk.credential.workload_identity").new({
      getenv = getenv, ctx = ctx, authority_host = opts.authority_host, cloud = opts.cloud,
      additionally_allowed_tenants = opts.additionally_allowed_tenants })
  end
  if want("managed_identity", opts.exclude_managed_identity) then
    local cid = opts.managed_identity_client_id
    if not cid and not opts.managed_identity_resource_id then
      cid = getenv("AZURE_CLIENT_ID")
      if cid == "" then cid = nil end
    end
    list[#list + 1] = require("azcmk.credential.managed_identity").new({
      getenv = getenv, ctx = ctx, client_id = cid, resource_id = opts.managed_identity_resource_id,
      imds = opts.imds, app_service = opts.app_service })
  end
  if want("azure_cli", opts.exclude_azure_cli) then
    local o = { getenv = getenv, ctx = ctx }
    for k, v in pairs(opts.azure_cli or {}) do o[k] = v end
    list[#list + 1] = require("azcmk.credential.azure_cli").new(o)
  end
  if #list == 0 then
    return nil, errors.input("every credential of DefaultAzureCredential is excluded")
  end
  return chain.new(list, { name = "DefaultAzureCredential", ctx = ctx })
end

return M
