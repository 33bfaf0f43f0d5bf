--- azcmk.playbook: the CMK playbooks (layer 4), plain Lua functions taking one options table
-- and returning a result table or nil, err. See docs/playbooks.md.
local M = {}

local lazy = {
  setup = function() return require("azcmk.playbook.setup").setup end,
  show = function() return require("azcmk.playbook.show").show end,
  rotate = function() return require("azcmk.playbook.rotate").rotate end,
  revoke = function() return require("azcmk.playbook.access").revoke end,
  restore = function() return require("azcmk.playbook.access").restore end,
  identity_assign = function() return require("azcmk.playbook.identity").assign end,
  recover = function() return require("azcmk.playbook.recover").recover end,
  deploy = function() return require("azcmk.playbook.deploy").deploy end,
  doctor = function() return require("azcmk.playbook.doctor").doctor end,
  audit = function() return require("azcmk.playbook.audit").audit end,
  verify = function() return require("azcmk.playbook.verify").verify end,
}

return setmetatable(M, {
  __index = function(t, k)
    local f = lazy[k]
    if not f then return nil end
    local v = f()
    rawset(t, k, v)
    return v
  end,
})
