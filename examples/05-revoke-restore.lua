-- "Revoke key": removing the identity's access makes all registry data inaccessible; giving
-- it back restores the registry.
local azcmk = require("azcmk")
local pb = azcmk.playbook

assert(pb.setup({ resource_group = "ex05-rg", location = "westus", registry = "ex05registry",
  vault = "ex05-kv" }))
local function data_plane() return assert(pb.show({ registry = "ex05registry", probe = true })).data_plane end

print("before:  data plane " .. data_plane().status)
local _, err = pb.revoke({ registry = "ex05registry" })           -- no yes: only the plan
print("without yes: " .. err.code .. " - " .. err.plan[1].description)
assert(pb.revoke({ registry = "ex05registry", yes = true }))
local dp = data_plane()
print("revoked: data plane " .. dp.status .. " " .. tostring(dp.code))
assert(pb.restore({ registry = "ex05registry" }))
print("restored: data plane " .. data_plane().status)
