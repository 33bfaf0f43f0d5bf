-- The CMK job of conformance/cmk-flow.mjs, done by azcmk's pipeline (p:arm, p:arm_lro,
-- p:vault) with the same REST calls and api-versions as the Azure SDK for JavaScript, for
-- the peer benchmark (bench/conformance.sh). Needs the environment of
-- `azcmk emulator start` (AZCMK_CONNECT_TO, AZCMK_CA_FILE, AZURE_*).
-- Prints "ok <step>" / "FAIL <step>: ..." and "N passed, N failed"; exit 1 on a failure.
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
local abi = (rawget(_G, "jit") and "jit") or "5.4"
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/" .. abi .. "/?.so;" .. package.cpath

local azcmk = require("azcmk")
local crypto = require("azcmk.crypto")
local cjson = require("cjson")
local clock = require("azcmk.clock")
local function sleep(s) clock.sleep(s) end   -- returns nothing: keeps a repeat loop going
local TIMING = os.getenv("CONFORMANCE_TIMING")   -- per-step milliseconds on stderr, as cmk-flow.mjs

local V = { rg = "2025-04-01", msi = "2024-11-30", kv = "2026-02-01", authz = "2022-04-01",
            acr = "2025-11-01" }
local LOCATION = "westeurope"
local SES_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
local CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"

local p = assert(azcmk.new({ lro_interval = 0.02 }))   -- as cmk-flow.mjs (updateIntervalInMs 20)
local sub = assert(os.getenv("AZURE_SUBSCRIPTION_ID"), "AZURE_SUBSCRIPTION_ID")
local tenant = assert(os.getenv("AZURE_TENANT_ID"), "AZURE_TENANT_ID")
local tag = crypto.hex(crypto.random_bytes(4))
local n = { rg = "bench-" .. tag, uai = "bench-uai-" .. tag, kv = "benchkv" .. tag,
            kv2 = "benchrbac" .. tag, reg = "benchreg" .. tag, reg2 = "benchrbac" .. tag,
            regStd = "benchstd" .. tag,
            regEc = "benchec" .. tag, regPlain = "benchplain" .. tag }
local rg_path = "/subscriptions/" .. sub .. "/resourcegroups/" .. n.rg
local function prov(what)
  return "/subscriptions/" .. sub .. "/resourceGroups/" .. n.rg .. "/providers/" .. what
end
local vault_url = "https://" .. n.kv .. ".vault.azure.net"
local vault2_url = "https://" .. n.kv2 .. ".vault.azure.net"

local ctx, done, passed, failed = {}, {}, 0, 0
local function step(name, needs, fn)
  for _, d in ipairs(needs) do
    if not done[d] then
      failed = failed + 1
      print("FAIL " .. name .. ": not run, needs " .. d)
      return
    end
  end
  local t0 = clock.ms()
  local ok, err = pcall(fn)
  if TIMING then io.stderr:write(string.format("  %s: %.1f ms\n", name, clock.ms() - t0)) end
  if ok then
    passed = passed + 1; done[name] = true; print("ok " .. name)
  else
    failed = failed + 1; print("FAIL " .. name .. ": " .. tostring(err))
  end
end
local function must(res, err) if not res then error(tostring(err), 0) end return res end
local function check(c, what) if not c then error(what, 0) end end
local function uuid() return crypto.uuid4() end
local function expect_error(status, res, err)
  check(not res, "want an error " .. status .. ", the call succeeded")
  check(err.status == status and err.code, "want " .. status .. ", got " .. tostring(err))
end

step("token", {}, function() must(p:token("https://management.azure.com/.default")) end)

step("resource-group", { "token" }, function()
  must(p:arm("PUT", rg_path, { api_version = V.rg, body = { location = LOCATION } }))
  must(p:arm("GET", rg_path, { api_version = V.rg }))
end)

step("identity", { "resource-group" }, function()
  local r = must(p:arm("PUT", prov("Microsoft.ManagedIdentity/userAssignedIdentities/" .. n.uai),
    { api_version = V.msi, body = { location = LOCATION } }))
  ctx.uai = r.json
  must(p:arm("GET", r.json.id, { api_version = V.msi }))
end)

local function vault_body(rbac, policies)
  return { location = LOCATION, properties = { tenantId = tenant, sku = { family = "A", name = "standard" },
    enableSoftDelete = true, softDeleteRetentionInDays = 7, enablePurgeProtection = true,
    enableRbacAuthorization = rbac, accessPolicies = policies } }
end

step("vault", { "identity" }, function()
  local tok = must(p:token("https://management.azure.com/.default"))
  local _, claims = crypto.jwt_decode_unverified(type(tok) == "table" and tok.token or tok)
  ctx.owner = claims.oid
  local perms = { "get", "list", "create", "delete", "recover", "wrapKey", "unwrapKey", "encrypt", "decrypt" }
  local policy = { tenantId = tenant, objectId = ctx.owner, permissions = { keys = perms } }
  local r = must(p:arm_lro("PUT", prov("Microsoft.KeyVault/vaults/" .. n.kv),
    { api_version = V.kv, body = vault_body(false, { policy }) }))
  check(r.json.properties.enablePurgeProtection == true, "purge protection")
end)

step("access-policy", { "vault" }, function()
  local policy = { tenantId = tenant, objectId = ctx.uai.properties.principalId,
    permissions = { keys = { "get", "wrapKey", "unwrapKey" } } }
  must(p:arm("PUT", prov("Microsoft.KeyVault/vaults/" .. n.kv .. "/accessPolicies/add"),
    { api_version = V.kv, body = { properties = { accessPolicies = { policy } } } }))
  must(p:arm("GET", prov("Microsoft.KeyVault/vaults/" .. n.kv), { api_version = V.kv }))
end)

local function key_path(kid) return kid:match("^https://[^/]+(/keys/.*)$") end

local function create_key(url, name, body)
  body = body or { kty = "RSA", key_size = 2048 }
  return must(p:vault("POST", url, "/keys/" .. name .. "/create", { body = body })).json
end

step("key", { "vault" }, function() ctx.key = create_key(vault_url, "cmk") end)

local function registry_body(sku, kid)
  local b = { location = LOCATION, sku = { name = sku },
    identity = { type = "UserAssigned", userAssignedIdentities = { [ctx.uai.id] = {} } },   -- {} is an object
    properties = { adminUserEnabled = false, anonymousPullEnabled = false } }
  if kid then
    b.properties.encryption = { status = "enabled",
      keyVaultProperties = { keyIdentifier = kid, identity = ctx.uai.properties.clientId } }
  end
  return b
end
local function check_enc(reg, kid)
  local kvp = reg.properties.encryption.keyVaultProperties
  check(reg.properties.encryption.status == "enabled" and kvp.keyIdentifier == kid
    and kvp.versionedKeyIdentifier == kid, "encryption " .. cjson.encode(reg.properties.encryption))
  check(reg.identity.type:lower() == "userassigned", "identity type")
end
local function reg_path(name) return prov("Microsoft.ContainerRegistry/registries/" .. name) end

step("registry-cmk", { "key", "access-policy" }, function()
  local kid = ctx.key.key.kid
  local body = registry_body("Premium", kid)
  check_enc(must(p:arm_lro("PUT", reg_path(n.reg), { api_version = V.acr, body = body })).json, kid)
end)

step("encryption-read", { "registry-cmk" }, function()
  check_enc(must(p:arm("GET", reg_path(n.reg), { api_version = V.acr })).json, ctx.key.key.kid)
end)

step("key-new-version", { "key" }, function()
  ctx.key2 = create_key(vault_url, "cmk")
  check(ctx.key2.key.kid ~= ctx.key.key.kid, "new version")
  must(p:vault("GET", vault_url, "/keys/cmk/"))
  must(p:vault("GET", vault_url, key_path(ctx.key.key.kid)))
  local versions = 0
  for item in p:vault_pages(vault_url, "/keys/cmk/versions") do
    check(item, "versions list"); versions = versions + 1
  end
  check(versions == 2, "2 versions")
  for item in p:vault_pages(vault_url, "/keys") do check(item, "keys list") end
end)

step("rotate", { "encryption-read", "key-new-version" }, function()
  local kid = ctx.key2.key.kid
  local enc = { status = "enabled",
    keyVaultProperties = { keyIdentifier = kid, identity = ctx.uai.properties.clientId } }
  must(p:arm_lro("PATCH", reg_path(n.reg),
    { api_version = V.acr, body = { properties = { encryption = enc } } }))
  local reg = must(p:arm("GET", reg_path(n.reg), { api_version = V.acr })).json
  check_enc(reg, kid)
  check(reg.properties.encryption.keyVaultProperties.lastKeyRotationTimestamp, "lastKeyRotationTimestamp")
end)

step("rbac-vault", { "identity" }, function()
  ctx.vault2 = must(p:arm_lro("PUT", prov("Microsoft.KeyVault/vaults/" .. n.kv2), { api_version = V.kv,
    body = vault_body(true, setmetatable({}, cjson.array_mt)) })).json
end)

step("role-assignment", { "rbac-vault" }, function()
  local scope = ctx.vault2.id
  for _, a in ipairs({ { SES_USER, ctx.uai.properties.principalId }, { CRYPTO_OFFICER, ctx.owner } }) do
    local def = "/subscriptions/" .. sub .. "/providers/Microsoft.Authorization/roleDefinitions/" .. a[1]
    local props = { roleDefinitionId = def, principalId = a[2], principalType = "ServicePrincipal" }
    must(p:arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. uuid(),
      { api_version = V.authz, body = { properties = props } }))
  end
  local list = scope .. "/providers/Microsoft.Authorization/roleAssignments"
  for item in p:arm_pages(list, { api_version = V.authz }) do
    check(item, "role assignment list")
  end
end)

step("rbac-key", { "role-assignment" }, function()
  ctx.rbac_key = create_key(vault2_url, "cmk", { kty = "RSA", key_size = 2048 })
end)

step("registry-rbac", { "rbac-key" }, function()
  local kid = ctx.rbac_key.key.kid
  local body = registry_body("Premium", kid)
  check_enc(must(p:arm_lro("PUT", reg_path(n.reg2), { api_version = V.acr, body = body })).json, kid)
end)

step("wrap-unwrap", { "key-new-version" }, function()
  local cek = crypto.random_bytes(32)
  local path = key_path(ctx.key2.key.kid)
  local w = must(p:vault("POST", vault_url, path .. "/wrapkey",
    { body = { alg = "RSA-OAEP-256", value = crypto.b64url_encode(cek) } })).json
  local u = must(p:vault("POST", vault_url, path .. "/unwrapkey",
    { body = { alg = "RSA-OAEP-256", value = w.value } })).json
  check(crypto.b64url_decode(u.value) == cek, "round trip")
end)

step("local-wrap-emulator-unwrap", { "key-new-version" }, function()
  local pub = must(crypto.pkey_from_jwk({ kty = "RSA", n = ctx.key2.key.n, e = ctx.key2.key.e }))
  local cek = crypto.random_bytes(32)
  local path = key_path(ctx.key2.key.kid)
  for _, alg in ipairs({ "RSA-OAEP-256", "RSA-OAEP" }) do
    local value = crypto.b64url_encode(pub:encrypt(alg, cek))
    local u = must(p:vault("POST", vault_url, path .. "/unwrapkey",
      { body = { alg = alg, value = value } })).json
    check(crypto.b64url_decode(u.value) == cek, alg .. " unwrap")
  end
end)

step("delete-recover", { "key" }, function()
  create_key(vault_url, "scratch", { kty = "EC", crv = "P-256" })   -- as cmk-flow.mjs
  must(p:vault("DELETE", vault_url, "/keys/scratch"))
  -- poll like the SDK's delete/recover pollers (intervalInMs 100)
  repeat local r = p:vault("GET", vault_url, "/deletedkeys/scratch") until r or sleep(0.1)
  local _, err = p:vault("GET", vault_url, "/keys/scratch/")
  check(err and err.status == 404, "get after delete")
  must(p:vault("POST", vault_url, "/deletedkeys/scratch/recover"))
  repeat local r = p:vault("GET", vault_url, "/keys/scratch/") until r or sleep(0.1)
end)

step("rule-ec-key", { "access-policy" }, function()
  local ec = create_key(vault_url, "ec", { kty = "EC", crv = "P-256" })
  expect_error(400, p:arm_lro("PUT", reg_path(n.regEc),
    { api_version = V.acr, body = registry_body("Premium", ec.key.kid) }))
end)

step("rule-standard-sku", { "key" }, function()
  expect_error(400, p:arm_lro("PUT", reg_path(n.regStd),
    { api_version = V.acr, body = registry_body("Standard", ctx.key.key.kid) }))
end)

step("rule-cmk-existing", { "key", "identity" }, function()
  must(p:arm_lro("PUT", reg_path(n.regPlain), { api_version = V.acr, body = registry_body("Premium", nil) }))
  local enc = { status = "enabled",
    keyVaultProperties = { keyIdentifier = ctx.key.key.kid, identity = ctx.uai.properties.clientId } }
  expect_error(400, p:arm_lro("PATCH", reg_path(n.regPlain),
    { api_version = V.acr, body = { properties = { encryption = enc } } }))
end)

step("emulator-health", {}, function()
  local r = must(p:send({ method = "GET", url = "https://management.azure.com/_emulator/health",
    auth = false }))
  check(r.json.internal_errors == 0, "internal_errors " .. tostring(r.json.internal_errors))
end)

print(passed .. " passed, " .. failed .. " failed")
os.exit(failed == 0 and 0 or 1)
