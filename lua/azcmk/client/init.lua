--- azcmk.client: the service clients (layer 3). client.new(p, {subscription=}) gives one of
-- each: resource_groups, identities, vaults, keys, role_assignments, registries, deployments,
-- resources, subscriptions. Each method takes one options table and returns the value, nil (absent, for
-- get-like calls) or nil, err.
local M = {}

M.NAMES = { "resource_groups", "identities", "vaults", "keys", "role_assignments", "registries",
  "deployments", "resources", "subscriptions" }

function M.new(p, opts)
  local c = {}
  for _, n in ipairs(M.NAMES) do c[n] = require("azcmk.client." .. n).new(p, opts) end
  return c
end

return M
