-- "Enable customer-managed key - template": az deployment group create with the article's
-- template (examples/cmk-template.json) - vault and key made first, as the article says.
local azcmk = require("azcmk")
local pb = azcmk.playbook

local s = assert(pb.setup({ resource_group = "ex09-rg", location = "westus", registry = "ex09base",
  vault = "ex09-kv", key = "ex09-key" }))
local d = assert(pb.deploy({ resource_group = "ex09-rg", template_file = "examples/cmk-template.json",
  parameters = { registry_name = "ex09templated", identity_name = "ex09-template-identity",
    vault_name = "ex09-kv", kek_id = s.versioned_key_id } }))
print("deployment " .. d.name .. ": " .. tostring(d.provisioning_state))
local shown = assert(pb.show({ registry = "ex09templated", probe = true }))
print("ex09templated: encryption " .. shown.encryption.status .. ", key " .. shown.key_id
  .. ", data plane " .. shown.data_plane.status)

-- the article's sample passes key_id=, but the template's parameter is kek_id: refused up front
local _, err = pb.deploy({ resource_group = "ex09-rg", template_file = "examples/cmk-template.json",
  parameters = { registry_name = "ex09other", identity_name = "x-identity", vault_name = "ex09-kv",
    key_id = s.versioned_key_id } })
print("with key_id=: " .. err.code .. " - " .. err.hint)
