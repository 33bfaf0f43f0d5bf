-- "Rotate key": a new key version, another key, and the registry's system-assigned identity.
local azcmk = require("azcmk")
local pb = azcmk.playbook

local s = assert(pb.setup({ resource_group = "ex04-rg", location = "westus", registry = "ex04registry",
  vault = "ex04-kv" }))
print("start:                 " .. s.versioned_key_id)

local r = assert(pb.rotate({ registry = "ex04registry" }))       -- az keyvault key create + rotate-key
print("new version:           " .. r.versioned_key_id .. " (verified: " .. tostring(r.verified) .. ")")

r = assert(pb.rotate({ registry = "ex04registry", key = "ex04-second-key" }))
print("another key:           " .. r.versioned_key_id)

r = assert(pb.rotate({ registry = "ex04registry", identity = "[system]", new_version = false }))
print("system identity:       identity=" .. r.identity .. ", key " .. r.versioned_key_id)

r = assert(pb.rotate({ registry = "ex04registry", identity = s.identity.id, new_version = false }))
print("back to user identity: identity=" .. r.identity)
