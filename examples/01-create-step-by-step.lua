-- The article's "Enable customer-managed key - CLI", one Azure CLI command at a time, with the
-- service clients (layer 3). Run:
--   eval "$(bin/azcmk emulator start)"; bin/azcmk run examples/01-create-step-by-step.lua
local azcmk = require("azcmk")
local ids = require("azcmk.client.ids")

local p = assert(azcmk.new())
local sub = assert(os.getenv("AZURE_SUBSCRIPTION_ID"), "set AZURE_SUBSCRIPTION_ID")
local c = azcmk.client.new(p, { subscription = sub })
local RG, ID, KV, KEY, REG = "ex01-rg", "ex01-identity", "ex01-kv", "ex01-key", "ex01registry"

local function step(cmd) print("\n$ " .. cmd) end
local function must(v, err) if v == nil then error(tostring(err), 2) end return v end

step("az group create --name " .. RG .. " --location westus")
print(must(c.resource_groups:create_or_update({ name = RG, location = "westus" })).id)

step("az identity create --resource-group " .. RG .. " --name " .. ID)
local ident = must(c.identities:create({ resource_group = RG, name = ID, location = "westus" }))
print("id:          " .. ident.id)
print("principalId: " .. ident.properties.principalId)
print("clientId:    " .. ident.properties.clientId)

step("az keyvault create --name " .. KV .. " --resource-group " .. RG .. " --enable-purge-protection")
local vault = c.vaults:get({ resource_group = RG, name = KV })
if not vault then
  local tok = must(p:token(p.cloud.arm_scope))
  local _, claims = azcmk.crypto.jwt_decode_unverified(tok.token)
  vault = must(c.vaults:create({ resource_group = RG, name = KV, location = "westus",
    tenant_id = ident.properties.tenantId, enable_purge_protection = true,
    access_policies = { { tenantId = ident.properties.tenantId, objectId = claims.oid,
      permissions = { keys = require("azcmk.client.vaults").ADMIN_KEY_PERMISSIONS } } } }))
end
print("keyvaultID: " .. vault.id .. "  (soft delete + purge protection on)")

step("az keyvault set-policy --name " .. KV
  .. " --object-id $identityPrincipalID --key-permissions get unwrapKey wrapKey")
must(c.vaults:add_access_policy({ id = vault.id, tenant_id = ident.properties.tenantId,
  object_id = ident.properties.principalId, keys = { "get", "unwrapKey", "wrapKey" } }))
print("access policy: get, unwrapKey, wrapKey for " .. ident.properties.principalId)

step("az keyvault key create --name " .. KEY .. " --vault-name " .. KV)
local key = c.keys:get({ vault = KV, name = KEY }) or must(c.keys:create({ vault = KV, name = KEY }))
print("kid: " .. key.key.kid)

step("az acr create --name " .. REG .. " --identity $identityID --key-encryption-key $keyID --sku Premium")
local reg = c.registries:get({ resource_group = RG, name = REG }) or must(c.registries:create({
  resource_group = RG, name = REG, location = "westus", sku = "Premium", identity_id = ident.id,
  identity_client_id = ident.properties.clientId, key_id = key.key.kid,
  progress = function(i) io.stderr:write("  ", i.state, "\n") end }))
print("loginServer: " .. reg.properties.loginServer)

step("az acr encryption show --name " .. REG)
local enc = reg.properties.encryption
print("status: " .. enc.status)
print("keyIdentifier: " .. enc.keyVaultProperties.keyIdentifier)
print("versioned: " .. tostring(ids.parse_key_id(enc.keyVaultProperties.keyIdentifier,
  p.cloud).version ~= nil))
