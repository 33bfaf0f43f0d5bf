--- azcmk: script the Azure Container Registry customer-managed-key life cycle from Lua.
-- Submodules load on first use, so `require "azcmk"` does no I/O and stays cheap.
local M = { _VERSION = "0.1.0" }

local lazy = {
  core = "azcmk.core", http = "azcmk.http", crypto = "azcmk.crypto",
  pipeline = "azcmk.pipeline", credential = "azcmk.credential", cloud = "azcmk.cloud",
  errors = "azcmk.errors", log = "azcmk.log", retry = "azcmk.retry",
  client = "azcmk.client", playbook = "azcmk.playbook",
}

--- A pipeline with sensible defaults: cloud from AZURE_CLOUD / AZURE_AUTHORITY_HOST, the
-- default credential chain (environment, workload identity, managed identity), logging from
-- AZCMK_LOG, p.subscription from opts.subscription or AZURE_SUBSCRIPTION_ID. opts are passed
-- to azcmk.pipeline.new (credential=, cloud=, ...). No network I/O happens until the first call.
function M.new(opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.subscription == nil then
    local s = (o.getenv or os.getenv)("AZURE_SUBSCRIPTION_ID")
    if s and s ~= "" then o.subscription = s end
  end
  if o.credential == nil then
    local cred, err = require("azcmk.credential.default").new({ getenv = o.getenv, cloud = o.cloud })
    if not cred then return nil, err end
    o.credential = cred
  end
  return require("azcmk.pipeline").new(o)
end

return setmetatable(M, {
  __index = function(t, k)
    local name = lazy[k]
    if not name then return nil end
    local mod = require(name)
    rawset(t, k, mod)
    return mod
  end,
})
