-- Troubleshoot "Enabling key vault firewall": after the vault's firewall goes on, a
-- user-assigned identity cannot reach the key (HTTP 403). Allow trusted Microsoft services and
-- rotate to the registry's system-assigned identity (a trusted service), same key.
local azcmk = require("azcmk")
local pb = azcmk.playbook

local p = assert(azcmk.new())
local c = azcmk.client.new(p, { subscription = os.getenv("AZURE_SUBSCRIPTION_ID") })
-- when run again: open the vault before setup (setup refuses a firewalled vault for a user identity)
local old = c.vaults:get({ resource_group = "ex07-rg", name = "ex07-kv" })
if old then assert(c.vaults:set_network_acls({ id = old.id, default_action = "Allow",
  bypass = "AzureServices" })) end
local s = assert(pb.setup({ resource_group = "ex07-rg", location = "westus", registry = "ex07registry",
  vault = "ex07-kv" }))
local function dp() return assert(pb.show({ registry = "ex07registry", probe = true })).data_plane.status end

-- back to a user identity and an open vault, when run again
assert(c.vaults:set_network_acls({ id = s.vault.id, default_action = "Allow", bypass = "AzureServices" }))
assert(pb.rotate({ registry = "ex07registry", identity = s.identity.id, new_version = false }))
print("firewall off, user identity:         data plane " .. dp())

-- the firewall goes on (the caller's own address is allowed, so azcmk can still manage keys)
assert(c.vaults:set_network_acls({ id = s.vault.id, default_action = "Deny", bypass = "None",
  ip_rules = { "127.0.0.1/32" } }))
print("firewall on, no trusted services:     data plane " .. dp())

local _, err = pb.rotate({ registry = "ex07registry", identity = "[system]", new_version = false })
print("rotate to [system] now: " .. tostring(err and err.code) .. " - " .. tostring(err and err.hint))

assert(c.vaults:set_network_acls({ id = s.vault.id, default_action = "Deny", bypass = "AzureServices",
  ip_rules = { "127.0.0.1/32" } }))
local r = assert(pb.rotate({ registry = "ex07registry", identity = "[system]", new_version = false }))
print("trusted services + [system] identity: data plane " .. dp() .. " (identity " .. r.identity .. ")")
