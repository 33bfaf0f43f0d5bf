--- azcmk: script the Azure Container Registry customer-managed-key life cycle from Lua.
-- Submodules load on first use, so `require "azcmk"` does no I/O and stays cheap.
local M = { _VERSION = "0.1.0" }

local lazy = {
  core = "azcmk.core", http = "azcmk.http", crypto = "azcmk.crypto",
}

return setmetatable(M, {
  __index = function(t, k)
    local name = lazy[k]
    if not name then return nil end
    local mod = require(name)
    rawset(t, k, mod)
    return mod
  end,
})
