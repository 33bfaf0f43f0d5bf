-- Troubleshoot "Accidental deletion of key vault or key": recover from soft delete and the
-- registry serves again.
local azcmk = require("azcmk")
local pb = azcmk.playbook

local s = assert(pb.setup({ resource_group = "ex08-rg", location = "westus", registry = "ex08registry",
  vault = "ex08-kv", key = "ex08-key" }))
local p = assert(azcmk.new())
local c = azcmk.client.new(p, { subscription = os.getenv("AZURE_SUBSCRIPTION_ID") })
local function dp() return assert(pb.show({ registry = "ex08registry", probe = true })).data_plane.status end

assert(c.keys:delete({ vault = "ex08-kv", name = "ex08-key" }))
print("key deleted:   data plane " .. dp())
local r = assert(pb.recover({ vault = "ex08-kv", key = "ex08-key" }))
print("key recovered: data plane " .. dp() .. " (" .. r.key.kid .. ")")

assert(c.vaults:delete({ resource_group = s.registry.resource_group, name = "ex08-kv" }))
print("vault deleted: data plane " .. dp())
r = assert(pb.recover({ vault = "ex08-kv" }))
print("vault recovered: data plane " .. dp() .. " (" .. r.vault.id .. ")")
