--- azcmk.client: the service clients (layer 3). client.new(p, {subscription=}) gives one of
-- each: resource_groups, identities, vaults, keys, role_assignments, registries, deployments,
-- resources, subscriptions (each made when first used, so pairs() does not list them: iterate
-- M.NAMES). Each method takes one options table and returns the value, nil (absent, for
-- get-like calls) or nil, err.
local M = {}

M.NAMES = { "resource_groups", "identities", "vaults", "keys", "role_assignments", "registries",
  "deployments", "resources", "subscriptions" }

local KNOWN = {}
for _, n in ipairs(M.NAMES) do KNOWN[n] = true end

-- each service client is made when first used: the audit builds a set per registry and most
-- registries use one or two of them
local Set = {}
function Set.__index(c, n)
  if not KNOWN[n] then return nil end
  local sc = require("azcmk.client." .. n).new(c[Set], c[KNOWN])
  rawset(c, n, sc)
  return sc
end

function M.new(p, opts)
  -- checked now, as the service clients would (programmer errors raise at the call)
  require("azcmk.client.base").check_new("azcmk.client", p, opts)
  return setmetatable({ [Set] = p, [KNOWN] = opts }, Set)
end

return M
