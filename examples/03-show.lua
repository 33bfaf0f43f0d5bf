-- "Show encryption status": az acr encryption show, plus the version really in use.
local azcmk = require("azcmk")
local pb = azcmk.playbook

assert(pb.setup({ resource_group = "ex03-rg", location = "westus", registry = "ex03registry",
  vault = "ex03-kv" }))
local s = assert(pb.show({ registry = "ex03registry", probe = true }))
local kvp = s.encryption.keyVaultProperties
print("status:                 " .. s.encryption.status)
print("keyIdentifier:          " .. kvp.keyIdentifier)
print("versionedKeyIdentifier: " .. kvp.versionedKeyIdentifier)
print("keyRotationEnabled:     " .. tostring(kvp.keyRotationEnabled))
print("identity (client id):   " .. kvp.identity)
print("version in use:         " .. s.key_version_in_use .. (s.up_to_date and " (the newest)" or ""))
print("data plane:             " .. s.data_plane.status .. (s.data_plane.ok and " (serving)" or " (denied)"))
