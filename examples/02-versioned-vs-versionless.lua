-- "Choose key ID with or without key version": a versioned key id pins the version (manual
-- rotation); a versionless one lets the registry adopt new versions within an hour.
local azcmk = require("azcmk")
local pb = azcmk.playbook

local base = { resource_group = "ex02-rg", location = "westus", vault = "ex02-kv" }
local function with(t)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(t) do o[k] = v end
  return o
end

local pinned = assert(pb.setup(with({ registry = "ex02pinned", key = "ex02-key" })))
local floating = assert(pb.setup(with({ registry = "ex02floating", key = "ex02-key", versionless = true })))
print("versioned key id:   " .. pinned.key_id)
print("versionless key id: " .. floating.key_id)

-- a new version of the key (az keyvault key create on the same name)
local p = assert(azcmk.new())
local c = azcmk.client.new(p, { subscription = os.getenv("AZURE_SUBSCRIPTION_ID") })
local k = assert(c.keys:create({ vault = base.vault, name = "ex02-key" }))
print("\nnew key version:    " .. k.key.kid)

for _, name in ipairs({ "ex02pinned", "ex02floating" }) do
  local s = assert(pb.show({ registry = name }))
  print(string.format("%-13s auto rotation %-5s  in use %s  newest %s", name, tostring(s.auto_rotation),
    s.key_version_in_use, s.newest_key_version))
end
print("\nex02pinned stays on its version until `azcmk rotate`;"
  .. " ex02floating adopts the new one within an hour.")

-- On the emulator only: move its simulated clock one hour on and look again.
if os.getenv("AZCMK_EMULATOR_DIR") then
  assert(p:send({ method = "POST", url = "https://management.azure.com/_emulator/clock", auth = false,
    body = { advance = 3600 } }))
  print("\n(emulator) one hour later:")
  for _, name in ipairs({ "ex02pinned", "ex02floating" }) do
    local s = assert(pb.show({ registry = name, pipeline = p }))
    print(string.format("%-13s in use %s  %s", name, s.key_version_in_use,
      s.up_to_date and "(the newest)" or "(an older version)"))
  end
end
