-- Troubleshoot "Removing managed identity": Azure refuses to remove the identity the
-- encryption uses ("does not have access to identity ... Try forcibly adding"); re-assign it
-- (az acr identity assign), switch the encryption to another identity, then remove the old one.
local azcmk = require("azcmk")
local pb = azcmk.playbook

local s = assert(pb.setup({ resource_group = "ex06-rg", location = "westus", registry = "ex06registry",
  vault = "ex06-kv" }))
local p = assert(azcmk.new())
local c = azcmk.client.new(p, { subscription = os.getenv("AZURE_SUBSCRIPTION_ID") })

-- when run again: the encryption back on the user-assigned identity first
assert(pb.identity_assign({ registry = "ex06registry", identity = s.identity.id }))
assert(pb.rotate({ registry = "ex06registry", identity = s.identity.id, new_version = false }))

-- try to drop the user-assigned identity from the registry
local _, err = c.registries:update({ id = s.registry.id, body = { identity = { type = "SystemAssigned",
  userAssignedIdentities = { [s.identity.id] = require("cjson").null } } } })
print("removing the CMK identity: " .. (err and (tostring(err.code) .. ": " .. tostring(err.message))
  or "accepted"))

local r = assert(pb.identity_assign({ registry = "ex06registry", identity = s.identity.id }))
print("identity assign: " .. (r.changed and "re-attached" or "already attached") .. " " .. r.identity.id)

r = assert(pb.identity_assign({ registry = "ex06registry", identity = "[system]" }))
print("system identity: principal " .. tostring(r.identity.principal_id))
r = assert(pb.rotate({ registry = "ex06registry", identity = "[system]", new_version = false }))
print("encryption now uses: " .. r.identity .. " - the user-assigned identity may be removed afterwards")

-- On the emulator only: what a FORCED removal leaves behind (Azure refuses it, as above; the
-- emulator can simulate it). The registry then answers 403 "The identity associated with the
-- registry is inactive"; `az acr identity assign` (identity_assign) is the fix.
if os.getenv("AZCMK_EMULATOR_DIR") then
  assert(pb.rotate({ registry = "ex06registry", identity = s.identity.id, new_version = false }))
  assert(p:send({ method = "POST", url = "https://management.azure.com/_emulator/registries/remove-identity",
    auth = false, body = { id = s.registry.id, identity = s.identity.id } }))
  local shown = assert(pb.show({ registry = "ex06registry", probe = true }))
  print("\nforced removal (emulator): data plane " .. shown.data_plane.status .. " - "
    .. tostring(shown.data_plane.message):sub(1, 60) .. "...")
  print("  show warns: " .. tostring(shown.warnings[1]))
  r = assert(pb.identity_assign({ registry = "ex06registry", identity = s.identity.id }))
  shown = assert(pb.show({ registry = "ex06registry", probe = true }))
  print("identity assign: " .. (r.changed and "re-attached" or "unchanged") .. "; data plane "
    .. shown.data_plane.status)
end
